"""From a registry: `describe` (for HELLO) and `export` (a JSON document for `diff`)."""

from __future__ import annotations

import re
import weakref
from collections.abc import Iterable
from typing import Any, Final

import msgspec
import msgspec.inspect
import msgspec.structs

from qrpc.errors import RegistryError
from qrpc.schema.digest import message_schema, shorten
from qrpc.schema.model import (
    MAX_FIELDS,
    MAX_MESSAGES,
    MAX_NAME_LENGTH,
    MessageSchema,
    RegistrySchema,
)

__all__ = ["EXPORT_VERSION", "describe", "export", "type_text"]

EXPORT_VERSION: Final = 1  # the "qrpc_schema" key of an export
Items = Iterable[tuple[int, type[msgspec.Struct]]]  # a Registry iterates as (cmd_id, type)

_described: weakref.WeakKeyDictionary[type, MessageSchema] = weakref.WeakKeyDictionary()
_type_texts: dict[bytes, str] = {}  # field digest -> a local annotation, for `check`'s texts
_MAX_TYPE_TEXTS: Final = 4096


def type_text(field_digest: bytes) -> str | None:
    """How a described field of this process with `field_digest` is annotated."""
    return _type_texts.get(field_digest)


def _schema_hook(type_: type) -> dict[str, Any]:
    """Types JSON Schema cannot express (a codec's extension types), by qualname
    (not module: a file target is loaded under a made-up module name)."""
    return {"x-qrpc-type": type_.__qualname__}


def _layout(type_: type[msgspec.Struct]) -> tuple[msgspec.inspect.StructType, list[str], bool]:
    """type_info, encoded field names (tag first) and omit_defaults of a registered type."""
    try:
        info = msgspec.inspect.type_info(type_)
    except (TypeError, ValueError, NameError) as exc:
        raise RegistryError(f"cannot describe {_name(type_)}: {exc}") from exc
    if not isinstance(info, msgspec.inspect.StructType):
        raise RegistryError(f"cannot describe {_name(type_)}: not a msgspec Struct")
    names = [info.tag_field] if info.tag_field is not None else []
    names += [field.encode_name for field in info.fields]
    return info, names, bool(type_.__struct_config__.omit_defaults)


def _json_schema(type_: type[msgspec.Struct]) -> dict[str, Any]:
    try:
        return msgspec.json.schema(type_, schema_hook=_schema_hook)
    except (TypeError, ValueError, NameError) as exc:
        raise RegistryError(f"cannot describe {_name(type_)}: {exc}") from exc


def _name(obj: object) -> str:
    return getattr(obj, "__qualname__", None) or repr(obj)


def _annotation_text(annotation: Any) -> str:
    text = annotation.__qualname__ if isinstance(annotation, type) else repr(annotation)
    return shorten(re.sub(r"\b(?:[A-Za-z_]\w*\.)+(?=[A-Za-z_])", "", text))


def _describe_type(type_: type[msgspec.Struct]) -> MessageSchema:
    cached = _described.get(type_)
    if cached is not None:
        return cached
    info, names, omit_defaults = _layout(type_)
    qualname = type_.__qualname__
    if len(names) > MAX_FIELDS:
        raise RegistryError(f"{qualname} has {len(names)} fields; a schema holds {MAX_FIELDS}")
    for name in names:
        if len(name) > MAX_NAME_LENGTH:
            raise RegistryError(
                f"{qualname}: field name {name[:20]!r}... is longer than {MAX_NAME_LENGTH}"
            )
    short = qualname if len(qualname) <= MAX_NAME_LENGTH else "…" + qualname[1 - MAX_NAME_LENGTH :]
    schema, _ = message_schema(
        short,
        _json_schema(type_),
        array_like=info.array_like,
        forbid=info.forbid_unknown_fields,
        omit_defaults=omit_defaults,
        names=names,
    )
    annotations = {f.encode_name: f.type for f in msgspec.structs.fields(type_)}
    for field in schema.fields:
        if len(_type_texts) < _MAX_TYPE_TEXTS:
            shown = _annotation_text(annotations[field.name]) if field.name in annotations else None
            _type_texts.setdefault(field.digest, shown or f"tag {info.tag!r}")
    _described[type_] = schema
    return schema


def describe(registry: Items) -> RegistrySchema:
    """Describe every message of `registry` (a `qrpc.Registry`, or its items)
    for the schema check.  Results are cached per type.

    Raises:
        RegistryError: a type cannot be described, has more than `MAX_FIELDS`
            fields or a field name longer than `MAX_NAME_LENGTH`, or there are
            more than `MAX_MESSAGES` messages.
    """
    described = {cmd_id: _describe_type(type_) for cmd_id, type_ in registry}
    if len(described) > MAX_MESSAGES:
        raise RegistryError(f"{len(described)} messages; a schema holds {MAX_MESSAGES}")
    return described


def export(registry: Items) -> dict[str, Any]:
    """Return `registry` as a JSON-able document for `diff` (and for review).

    ``{"qrpc_schema": 1, "messages": {"<cmd_id>": {...}}}``, cmd_ids in order;
    each message has its ``name`` (qualname), ``array_like``,
    ``forbid_unknown_fields``, ``omit_defaults``, ``fields`` (encoded names in
    encoding order, tag first) and ``schema`` (``msgspec.json.schema``).

    Raises:
        RegistryError: a type cannot be described.
    """
    messages: dict[str, Any] = {}
    for cmd_id, type_ in sorted(registry, key=lambda item: item[0]):
        info, names, omit_defaults = _layout(type_)
        messages[str(cmd_id)] = {
            "name": type_.__qualname__,
            "array_like": info.array_like,
            "forbid_unknown_fields": info.forbid_unknown_fields,
            "omit_defaults": omit_defaults,
            "fields": names,
            "schema": _json_schema(type_),
        }
    return {"qrpc_schema": EXPORT_VERSION, "messages": messages}
