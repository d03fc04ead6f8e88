"""Name-free digests of ``msgspec.json.schema`` documents.

Titles, descriptions and examples are dropped and each ``$ref`` is replaced
by the digest of the definition it names, so renaming a class or editing a
docstring changes nothing, while a change inside a nested Struct changes
every field that uses it.  Digests are sha256 of canonical JSON (sorted
keys, no whitespace): the same in every process.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, Final

from qrpc.schema.model import DIGEST_SIZE, FieldSchema, MessageSchema

__all__ = ["DROPPED", "canonical", "digest", "message_schema", "shorten"]

DROPPED: Final = frozenset(
    {"title", "description", "examples", "$comment", "deprecated", "readOnly", "writeOnly"}
)
_SUBSCHEMA: Final = frozenset(
    {"items", "additionalProperties", "not", "contains", "propertyNames", "if", "then", "else"}
)
_SUBSCHEMA_LISTS: Final = frozenset({"anyOf", "oneOf", "allOf", "prefixItems"})
_UNORDERED: Final = frozenset({"anyOf", "oneOf"})
_SUBSCHEMA_MAPS: Final = frozenset({"properties", "patternProperties", "dependentSchemas"})
_REF_PREFIX: Final = "#/$defs/"


def canonical(value: Any) -> str:
    """`value` as canonical JSON: sorted keys, no whitespace, ASCII."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def digest(value: Any) -> bytes:
    """The first `DIGEST_SIZE` bytes of the sha256 of `canonical` (`value`)."""
    return hashlib.sha256(canonical(value).encode()).digest()[:DIGEST_SIZE]


def _mapping(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError(f"{what} must be a JSON array, got {type(value).__name__}")
    return value


class _Normalizer:
    """Rewrites one JSON Schema document without names: annotations dropped, a
    ``$ref`` replaced by the digest of its definition (``{"$rec": n}`` for a
    reference to the definition n levels up, i.e. recursion)."""

    def __init__(self, defs: Mapping[str, Any]) -> None:
        self._defs = defs
        self._memo: dict[tuple[str, ...], str] = {}

    def ref(self, ref: Any, stack: tuple[str, ...]) -> Any:
        if not isinstance(ref, str) or not ref.startswith(_REF_PREFIX):
            raise ValueError(f"unsupported $ref {ref!r}")
        name = ref[len(_REF_PREFIX) :]
        if name in stack:
            return {"$rec": len(stack) - stack.index(name)}
        if name not in self._defs:
            raise ValueError(f"$ref {ref!r} names no definition in $defs")
        key = (*stack, name)
        if key not in self._memo:
            self._memo[key] = digest(self.schema(self._defs[name], key)).hex()
        return self._memo[key]

    def schema(self, node: Any, stack: tuple[str, ...]) -> Any:
        if isinstance(node, bool):
            return node
        out: dict[str, Any] = {}
        for key, value in _mapping(node, "a schema").items():
            if key in DROPPED:
                continue
            if key == "$ref":
                out[key] = self.ref(value, stack)
            elif key in _SUBSCHEMA:
                out[key] = self.schema(value, stack)
            elif key in _SUBSCHEMA_LISTS:
                items = [self.schema(item, stack) for item in _list(value, key)]
                out[key] = sorted(items, key=canonical) if key in _UNORDERED else items
            elif key in _SUBSCHEMA_MAPS:
                out[key] = {k: self.schema(v, stack) for k, v in _mapping(value, key).items()}
            elif key == "discriminator":
                out[key] = {
                    k: {tag: self.ref(r, stack) for tag, r in _mapping(v, k).items()}
                    if k == "mapping"
                    else v
                    for k, v in _mapping(value, key).items()
                }
            elif key == "required":
                out[key] = sorted(str(name) for name in _list(value, key))
            elif key != "$defs":
                out[key] = value
        return out


def message_schema(
    name: str,
    document: Mapping[str, Any],
    *,
    array_like: bool,
    forbid: bool,
    omit_defaults: bool,
    names: list[str] | None,
) -> tuple[MessageSchema, dict[bytes, str]]:
    """The `MessageSchema` of one ``msgspec.json.schema`` document, and a short
    text per field digest (for messages).  `names` are the encoded field names
    of an array_like message (JSON Schema has none there); ``None``: by position.

    Raises:
        ValueError: `document` is not shaped like msgspec's schema of a Struct.
    """
    defs = _mapping(document.get("$defs", {}), "$defs")
    root_ref = document.get("$ref")
    if not isinstance(root_ref, str) or not root_ref.startswith(_REF_PREFIX):
        raise ValueError("the schema has no $ref to the message's definition")
    stack = (root_ref[len(_REF_PREFIX) :],)
    root = _mapping(defs.get(stack[0]), f"definition {stack[0]!r}")
    normalizer = _Normalizer(defs)
    if array_like:
        items = _list(root.get("prefixItems", []), "prefixItems")
        min_items = root.get("minItems", 0)
        names = names if names is not None else [f"#{index}" for index in range(len(items))]
        if len(names) != len(items) or not isinstance(min_items, int):
            raise ValueError(f"{len(names)} field names for {len(items)} prefixItems")
        entries = [
            (n, s, index < min_items) for index, (n, s) in enumerate(zip(names, items, strict=True))
        ]
    else:
        required = set(_list(root.get("required", []), "required"))
        properties = _mapping(root.get("properties", {}), "properties")
        entries = [(n, s, n in required) for n, s in properties.items()]
    fields = []
    texts: dict[bytes, str] = {}
    for field_name, prop, is_required in entries:
        prop = _mapping(prop, f"property {field_name!r}")
        normalized = normalizer.schema({k: v for k, v in prop.items() if k != "default"}, stack)
        field_digest = digest(normalized)
        default = b"" if is_required or "default" not in prop else digest(prop["default"])
        fields.append(FieldSchema(str(field_name), field_digest, is_required, default))
        shown = {k: v for k, v in prop.items() if k not in DROPPED and k != "default"}
        texts[field_digest] = shorten(canonical(shown))
    whole = [normalizer.schema(root, stack), array_like, forbid, omit_defaults]
    message_digest = digest([*whole, [f.name for f in fields]])
    return MessageSchema(name, message_digest, array_like, forbid, fields, omit_defaults), texts


def shorten(text: str, limit: int = 60) -> str:
    """`text`, cut to `limit` characters for a one-line message."""
    return text if len(text) <= limit else text[: limit - 3] + "..."
