"""Comparing schemas: `check` (two registries at connect), `diff` (two exports)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple, TypeAlias

import msgspec

from qrpc.schema.describe import EXPORT_VERSION, type_text
from qrpc.schema.digest import message_schema
from qrpc.schema.model import (
    Change,
    FieldSchema,
    MessageSchema,
    RegistrySchema,
    SchemaDocumentError,
    SchemaMode,
)

__all__ = ["check", "diff"]


class _Diff(NamedTuple):
    kind: str
    breaking: bool  # by the compatible-mode rules
    field: str = ""
    a: Any = None
    b: Any = None


def _compare(a: MessageSchema, b: MessageSchema) -> list[_Diff]:
    """Every difference between `a` and `b`, each marked breaking or not."""
    found = [
        _Diff(flag, flag == "array_like", "", getattr(a, flag), getattr(b, flag))
        for flag in ("array_like", "forbid_unknown_fields", "omit_defaults")
        if getattr(a, flag) != getattr(b, flag)
    ]
    if a.array_like != b.array_like:
        return found
    if a.array_like:
        shared = min(len(a.fields), len(b.fields))
        for index, (fa, fb) in enumerate(zip(a.fields, b.fields, strict=False)):
            if fa.name != fb.name:
                found.append(_Diff("position", True, fa.name, index, fb.name))
            found.extend(_compare_field(fa, fb, a, b))
        only_a, only_b = a.fields[shared:], b.fields[shared:]
    else:
        in_b = {f.name: f for f in b.fields}
        in_a = {f.name for f in a.fields}
        for fa in a.fields:
            if fa.name in in_b:
                found.extend(_compare_field(fa, in_b[fa.name], a, b))
        only_a = [f for f in a.fields if f.name not in in_b]
        only_b = [f for f in b.fields if f.name not in in_a]
    forbid_a, forbid_b = a.forbid_unknown_fields, b.forbid_unknown_fields
    found += [_Diff("only_a", f.required or forbid_b, f.name, f.required, forbid_b) for f in only_a]
    found += [_Diff("only_b", f.required or forbid_a, f.name, f.required, forbid_a) for f in only_b]
    return found


def _compare_field(
    fa: FieldSchema, fb: FieldSchema, a: MessageSchema, b: MessageSchema
) -> Iterator[_Diff]:
    # omit_defaults leaves fields out of maps only: array_like encodes every field
    omits_a = a.omit_defaults and not a.array_like
    omits_b = b.omit_defaults and not b.array_like
    if fa.digest != fb.digest:
        yield _Diff("type", True, fa.name, fa.digest, fb.digest)
    elif fa.required != fb.required:
        yield _Diff("required", omits_b if fa.required else omits_a, fa.name, fa.required)
    elif not fa.required and fa.default != fb.default:
        yield _Diff("default", omits_a or omits_b, fa.name)


def _need(required: bool) -> str:
    return "required" if required else "optional"


def _check_text(d: _Diff) -> str:
    name = repr(d.field)
    match d.kind:
        case "array_like" | "forbid_unknown_fields" | "omit_defaults":
            return f"{d.kind} is {d.a} here and {d.b} on the peer"
        case "position":
            return f"position {d.a} is field {name} here and {d.b!r} on the peer"
        case "type":
            shown = type_text(d.a)
            here = f"is {shown} here and a different type" if shown else "has a different type here"
            return f"field {name} {here} on the peer"
        case "required":
            text = f"field {name} is {_need(d.a)} here and {_need(not d.a)} on the peer"
            if d.breaking:
                text += " and omit_defaults " + ("there" if d.a else "here") + " may leave it out"
            return text
        case "default":
            text = f"field {name} has a different default here than on the peer"
            return text + (" and omit_defaults may leave it out" if d.breaking else "")
        case "only_a" | "only_b":
            where, other = (
                ("here", "the peer") if d.kind == "only_a" else ("on the peer", "this side")
            )
            text = f"field {name} is only {where}" + (", where it is required" if d.a else "")
            return text + (f"; {other} forbids unknown fields" if d.b else "")
    raise ValueError(f"unknown difference {d.kind!r}")  # pragma: no cover


def check(mode: SchemaMode, local: RegistrySchema, remote: RegistrySchema) -> list[str]:
    """The problems that refuse a link under `mode`, one text each, naming the
    cmd_id; ``[]`` means the link may proceed.  Only cmd_ids both sides
    registered are compared; the texts are written from the local side.

    Raises:
        ValueError: `mode` is not a `SchemaMode`.
    """
    if mode not in ("strict", "compatible", "off"):
        raise ValueError(f"schema mode must be 'strict', 'compatible' or 'off', got {mode!r}")
    problems: list[str] = []
    if mode == "off":
        return problems
    for cmd_id in sorted(local.keys() & remote.keys()):
        here, there = local[cmd_id], remote[cmd_id]
        if here.digest == there.digest:
            continue
        diffs = _compare(here, there)
        texts = [_check_text(d) for d in diffs if d.breaking or mode == "strict"]
        if mode == "strict" and not texts:
            texts = ["the message schema differs from the peer's"]
        problems += [f"cmd_id {cmd_id} ({here.name}): {text}" for text in texts]
    return problems


# -- diff: two exported documents ----------------------------------------------------


class _ExportedMessage(msgspec.Struct):
    name: str
    array_like: bool
    forbid_unknown_fields: bool
    schema: dict[str, Any]
    omit_defaults: bool = False
    fields: list[str] | None = None


class _Export(msgspec.Struct):
    qrpc_schema: int
    messages: dict[str, _ExportedMessage]


_Read: TypeAlias = dict[int, tuple[MessageSchema, dict[bytes, str]]]


def _read(document: Any, which: str) -> _Read:
    if not isinstance(document, Mapping):
        problem = f"a JSON {type(document).__name__}, not an object"
        raise SchemaDocumentError(which, f"not a qrpc schema export ({problem})")
    if "qrpc_schema" not in document:
        raise SchemaDocumentError(which, "not a qrpc schema export (no 'qrpc_schema' key)")
    try:
        parsed = msgspec.convert(dict(document), _Export)
    except msgspec.ValidationError as exc:
        raise SchemaDocumentError(which, f"not a valid qrpc schema export: {exc}") from None
    if parsed.qrpc_schema != EXPORT_VERSION:
        raise SchemaDocumentError(which, f"unsupported qrpc_schema {parsed.qrpc_schema}")
    read: _Read = {}
    for key, entry in parsed.messages.items():
        if not re.fullmatch(r"[1-9][0-9]{0,9}", key):
            raise SchemaDocumentError(which, f"message key {key!r} is not a cmd_id")
        try:
            read[int(key)] = message_schema(
                entry.name,
                entry.schema,
                array_like=entry.array_like,
                forbid=entry.forbid_unknown_fields,
                omit_defaults=entry.omit_defaults,
                names=entry.fields,
            )
        except (ValueError, TypeError, RecursionError) as exc:
            raise SchemaDocumentError(which, f"cmd_id {key}: unusable schema: {exc}") from None
    return read


def _diff_text(d: _Diff, old: dict[bytes, str], new: dict[bytes, str]) -> str:
    name = repr(d.field)
    match d.kind:
        case "array_like" | "forbid_unknown_fields" | "omit_defaults":
            return f"{d.kind} changed from {d.a} to {d.b}"
        case "position":
            return f"field at position {d.a} changed from {name} to {d.b!r}"
        case "type":
            before, after = old.get(d.a, "?"), new.get(d.b, "?")
            if before == after:
                return f"field {name} changed type: a definition it uses changed ({after})"
            return f"field {name} changed type: {before} -> {after}"
        case "required":
            text = f"field {name} is now {_need(not d.a)}"
            return text + (" while omit_defaults may leave it out" if d.breaking else "")
        case "default":
            return f"field {name} default changed" + (" under omit_defaults" if d.breaking else "")
        case "only_a":
            return f"field {name} removed"
        case "only_b":
            text = f"field {name} added ({_need(d.a)})"
            return text + (", but the old version forbids unknown fields" if d.b else "")
    return "schema changed outside its fields"


def diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Change]:
    """Compare two `export` documents: every change, breaking or not, by cmd_id.

    Breaking is what compatible mode would refuse between old and new nodes,
    and also a removed message or field and a changed ``forbid_unknown_fields``.

    Raises:
        SchemaDocumentError: (a ValueError) a document is not a qrpc schema export.
    """
    before, after = _read(old, "old"), _read(new, "new")
    changes: list[Change] = []
    for cmd_id in sorted(before.keys() | after.keys()):
        if cmd_id not in after:
            changes.append(Change(cmd_id, True, f"message {before[cmd_id][0].name} removed"))
            continue
        if cmd_id not in before:
            changes.append(Change(cmd_id, False, f"message {after[cmd_id][0].name} added"))
            continue
        (a, old_texts), (b, new_texts) = before[cmd_id], after[cmd_id]
        if a.name != b.name:
            changes.append(Change(cmd_id, False, f"renamed from {a.name} to {b.name}"))
        if a.digest == b.digest:
            continue
        diffs = _compare(a, b) or [_Diff("schema", True)]
        for d in diffs:
            breaking = d.breaking or d.kind in ("only_a", "forbid_unknown_fields")
            changes.append(Change(cmd_id, breaking, _diff_text(d, old_texts, new_texts)))
    return changes
