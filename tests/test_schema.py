"""qrpc.schema: describe/check (the HELLO schema check) and export/diff (documents)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, strategies as st

from qrpc.errors import RegistryError
from qrpc.registry import Registry
from qrpc.schema import (
    MAX_FIELDS,
    Change,
    FieldSchema,
    MessageSchema,
    RegistrySchema,
    SchemaDocumentError,
    SchemaMode,
    check,
    decode_schema,
    describe,
    diff,
    encode_schema,
    export,
)

MODES: tuple[SchemaMode, ...] = ("strict", "compatible", "off")
ROOT = Path(__file__).resolve().parent.parent


class Inner(msgspec.Struct):
    a: int


class Ping(msgspec.Struct):
    """A fixed message: its digests are hard-coded below."""

    text: str
    inner: Inner | None = None
    tags: list[str] = []


def _reg(*types: type[msgspec.Struct], start: int = 1) -> Registry:
    reg = Registry()
    for offset, type_ in enumerate(types):
        reg.register(start + offset, type_)
    return reg


def _one(type_: type[msgspec.Struct], cmd_id: int = 1) -> RegistrySchema:
    return describe(_reg(type_, start=cmd_id))


def _struct(name: str, *fields: Any, **options: Any) -> type[msgspec.Struct]:
    return msgspec.defstruct(name, list(fields), **options)


def _problems(mode: SchemaMode, a: type[msgspec.Struct], b: type[msgspec.Struct]) -> list[str]:
    return check(mode, _one(a), _one(b))


# -- digests --------------------------------------------------------------------------

PING_DIGESTS = {
    "message": "3f370489e71ab63a",
    "text": "00404e686415370f",
    "inner": "04a88701a122877b",
    "tags": "681004346c78d5f3",
}


def _digests(schema: RegistrySchema) -> dict[str, str]:
    message = schema[1]
    return {"message": message.digest.hex()} | {f.name: f.digest.hex() for f in message.fields}


def test_digests_are_fixed_for_a_fixed_struct() -> None:
    assert _digests(_one(Ping)) == PING_DIGESTS


def test_digests_are_the_same_in_another_process() -> None:
    code = (
        "from tests.test_schema import Ping, _digests, _one; import json; "
        "print(json.dumps(_digests(_one(Ping))))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    ).stdout
    assert msgspec.json.decode(out) == PING_DIGESTS


class Inner2(msgspec.Struct):
    """Documented, renamed."""

    a: int


class Renamed(msgspec.Struct):
    text: str
    inner: Inner2 | None = None
    tags: list[str] = []


class Tree(msgspec.Struct):
    kids: list[Tree] = []


class Forest(msgspec.Struct):
    tree: Tree
    other: Tree | None = None


def test_names_and_docs_are_not_part_of_the_digest() -> None:
    assert _one(Renamed)[1].digest == _one(Ping)[1].digest
    assert _problems("strict", Renamed, Ping) == []


def test_a_tag_derived_from_the_class_name_is_part_of_the_digest() -> None:
    first = _struct("First", ("x", int), tag=True)
    second = _struct("Second", ("x", int), tag=True)
    assert _one(first)[1].digest != _one(second)[1].digest
    assert _problems("compatible", first, second) != []


def test_recursive_types_are_described() -> None:
    assert _problems("strict", Forest, Forest) == []
    fields = _one(Forest)[1].fields
    assert fields[0].digest != fields[1].digest
    assert diff(export(_reg(Forest)), export(_reg(Forest))) == []


# -- check ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_identical_registries_pass_every_mode(mode: SchemaMode) -> None:
    assert check(mode, describe(_reg(Ping, Inner)), describe(_reg(Ping, Inner))) == []


def test_strict_refuses_a_changed_field_type_naming_the_cmd_id() -> None:
    changed = _struct("Ping", ("text", int), ("inner", Inner | None, None), ("tags", list[str], []))
    problems = check("strict", _one(Ping, 7), _one(changed, 7))
    assert problems == [
        "cmd_id 7 (Ping): field 'text' is str here and a different type on the peer"
    ]
    assert check("compatible", _one(Ping, 7), _one(changed, 7)) == problems


def test_off_never_refuses() -> None:
    assert check("off", _one(Ping), _one(Inner)) == []


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="schema mode"):
        check("lenient", {}, {})  # type: ignore[arg-type]


def test_extra_cmd_ids_on_one_side_are_ignored() -> None:
    assert check("strict", describe(_reg(Ping, Inner)), describe(_reg(Ping))) == []
    assert check("strict", describe(_reg(Ping)), describe(_reg(Ping, Inner))) == []


V1 = _struct("Msg", ("text", str))
V2_OPTIONAL = _struct("Msg", ("text", str), ("extra", int, 0))
V2_REQUIRED = _struct("Msg", ("text", str), ("extra", int))


@pytest.mark.parametrize(("a", "b"), [(V1, V2_OPTIONAL), (V2_OPTIONAL, V1)])
def test_compatible_accepts_an_added_optional_field_both_ways(
    a: type[msgspec.Struct], b: type[msgspec.Struct]
) -> None:
    assert _problems("compatible", a, b) == []
    assert _problems("strict", a, b) != []


def test_compatible_refuses_an_added_required_field() -> None:
    assert _problems("compatible", V1, V2_REQUIRED) == [
        "cmd_id 1 (Msg): field 'extra' is only on the peer, where it is required"
    ]
    assert _problems("compatible", V2_REQUIRED, V1) == [
        "cmd_id 1 (Msg): field 'extra' is only here, where it is required"
    ]


def test_compatible_refuses_a_field_towards_a_peer_that_forbids_unknown_fields() -> None:
    strict_v1 = _struct("Msg", ("text", str), forbid_unknown_fields=True)
    assert _problems("compatible", V2_OPTIONAL, strict_v1) == [
        "cmd_id 1 (Msg): field 'extra' is only here; the peer forbids unknown fields"
    ]
    assert _problems("compatible", strict_v1, V2_OPTIONAL) != []
    assert _problems("compatible", strict_v1, V1) == []  # same fields: the flag alone is fine
    assert _problems("strict", strict_v1, V1) != []


def test_required_against_optional_is_refused_only_where_defaults_are_omitted() -> None:
    required = _struct("Msg", ("n", int))
    optional = _struct("Msg", ("n", int, 0))
    omitting = _struct("Msg", ("n", int, 0), omit_defaults=True)
    assert _problems("compatible", required, optional) == []
    assert _problems("compatible", required, omitting) == [
        "cmd_id 1 (Msg): field 'n' is required here and optional on the peer "
        "and omit_defaults there may leave it out"
    ]
    assert _problems("compatible", omitting, required) != []


def test_different_defaults_matter_only_where_defaults_are_omitted() -> None:
    zero = _struct("Msg", ("n", int, 0))
    one = _struct("Msg", ("n", int, 1))
    one_omitting = _struct("Msg", ("n", int, 1), omit_defaults=True)
    assert _problems("compatible", zero, one) == []
    assert _problems("strict", zero, one) != []
    assert _problems("compatible", zero, one_omitting) != []


def test_nested_struct_changes_are_detected() -> None:
    inner_v2 = _struct("Inner", ("a", str))
    ping_v2 = _struct(
        "Ping", ("text", str), ("inner", inner_v2 | None, None), ("tags", list[str], [])
    )
    for mode in ("strict", "compatible"):
        problems = check(mode, _one(Ping), _one(ping_v2))
        assert problems == [
            "cmd_id 1 (Ping): field 'inner' is Inner | None here and a different type on the peer"
        ]


def test_array_like_fields_are_positional() -> None:
    base = _struct("Row", ("a", int), ("b", str), array_like=True)
    appended = _struct("Row", ("a", int), ("b", str), ("c", int, 0), array_like=True)
    inserted = _struct("Row", ("a", int), ("c", int, 0), ("b", str, ""), array_like=True)
    swapped = _struct("Row", ("b", int), ("a", int), array_like=True)
    same_types = _struct("Row", ("x", int), ("y", int), array_like=True)
    required_end = _struct("Row", ("a", int), ("b", str), ("c", int), array_like=True)
    assert _problems("compatible", base, appended) == []
    assert _problems("compatible", appended, base) == []
    assert _problems("compatible", base, inserted) != []
    assert _problems("compatible", same_types, swapped) == [
        "cmd_id 1 (Row): position 0 is field 'x' here and 'b' on the peer",
        "cmd_id 1 (Row): position 1 is field 'y' here and 'a' on the peer",
    ]
    assert _problems("compatible", base, required_end) != []
    assert _problems("compatible", base, _struct("Row", ("a", int), ("b", str))) == [
        "cmd_id 1 (Row): array_like is True here and False on the peer"
    ]


# -- the soundness of "compatible", against msgspec itself ----------------------------

_TYPES: dict[str, tuple[Any, Any, Any]] = {  # type, a value, another default
    "int": (int, 7, 1),
    "str": (str, "s", "x"),
    "list": (list[int], [1, 2], None),
}


@st.composite
def _versions(draw: st.DrawFn) -> tuple[type[msgspec.Struct], type[msgspec.Struct]]:
    array_like = draw(st.booleans())
    made = []
    for index in range(2):
        names = draw(st.lists(st.sampled_from("abcd"), unique=True, max_size=4))
        fields: list[Any] = []
        for name in names:
            kind = draw(st.sampled_from(sorted(_TYPES)))
            type_, _, other = _TYPES[kind]
            default = draw(st.sampled_from(["required", "zero", "other"]))
            if default == "required":
                fields.insert(0, (name, type_))  # required fields come first
            elif kind == "list":
                fields.append((name, type_, msgspec.field(default_factory=list)))
            else:
                fields.append((name, type_, type_() if default == "zero" else other))
        options = {
            "forbid_unknown_fields": draw(st.booleans()),
            "omit_defaults": draw(st.booleans()),
        }
        made.append(_struct(f"V{index}", *fields, array_like=array_like, **options))
    return made[0], made[1]


def _instances(type_: type[msgspec.Struct]) -> list[msgspec.Struct]:
    fields = msgspec.structs.fields(type_)
    samples = {}
    for f in fields:
        kind = next(k for k, (t, _, _) in _TYPES.items() if t == f.type)
        samples[f.name] = _TYPES[kind][1]
    with_values = type_(**samples)
    required = {f.name: samples[f.name] for f in fields if f.required}
    return [with_values, type_(**required)]


def _shared(a: type[msgspec.Struct], b: type[msgspec.Struct]) -> list[tuple[str, str]]:
    names_a = [f.name for f in msgspec.structs.fields(a)]
    names_b = [f.name for f in msgspec.structs.fields(b)]
    if a.__struct_config__.array_like:
        return list(zip(names_a, names_b, strict=False))
    return [(name, name) for name in names_a if name in names_b]


@given(_versions())
def test_compatible_means_both_sides_decode_each_others_messages(
    pair: tuple[type[msgspec.Struct], type[msgspec.Struct]],
) -> None:
    a, b = pair
    problems = _problems("compatible", a, b)
    breaking = [c for c in diff(export(_reg(a)), export(_reg(b))) if c.breaking]
    if problems:
        assert breaking, "diff must be at least as strict as compatible mode"
        return
    for sender, receiver in ((a, b), (b, a)):
        for message in _instances(sender):
            for module in (msgspec.msgpack, msgspec.json):
                got = module.decode(module.encode(message), type=receiver)
                for sent_name, got_name in _shared(sender, receiver):
                    assert getattr(got, got_name) == getattr(message, sent_name)


# -- HELLO safety ---------------------------------------------------------------------


def test_a_description_round_trips_through_msgpack() -> None:
    described = describe(_reg(Ping, Inner, V2_OPTIONAL))
    data = msgspec.msgpack.encode(described)
    assert msgspec.msgpack.decode(data, type=RegistrySchema) == described
    assert decode_schema(encode_schema(described)) == described


def _message(name: str = "M", fields: list[FieldSchema] | None = None) -> MessageSchema:
    return MessageSchema(name, b"12345678", False, False, fields or [])


@pytest.mark.parametrize(
    "payload",
    [
        {1: _message(name="x" * 10_000)},
        {1: _message(fields=[FieldSchema("f", b"12345678", True)] * 100_000)},
        {1: _message(fields=[FieldSchema("f" * 10_000, b"12345678", True)])},
        {1: MessageSchema("M", b"123", False, False, [])},
        {0: _message()},
        {1: ["M", "not bytes", False, False, []]},
        {"1": _message()},
        [1, 2, 3],
    ],
    ids=[
        "long-name",
        "many-fields",
        "long-field",
        "short-digest",
        "cmd-0",
        "ill-typed",
        "str-key",
        "list",
    ],
)
def test_oversized_or_ill_typed_descriptions_fail_to_decode(payload: object) -> None:
    data = msgspec.msgpack.encode(payload)
    with pytest.raises(msgspec.ValidationError):
        msgspec.msgpack.decode(data, type=RegistrySchema)
    with pytest.raises(ValueError, match="invalid registry schema"):
        decode_schema(data)


def test_describe_refuses_what_a_peer_could_not_decode() -> None:
    wide = _struct("Wide", *[(f"f{i}", int, 0) for i in range(MAX_FIELDS + 1)])
    with pytest.raises(RegistryError, match="257 fields"):
        _one(wide)
    long_name = _struct("Long", ("x" * 200, int))
    with pytest.raises(RegistryError, match="longer than 128"):
        _one(long_name)


def test_size_of_a_typical_description() -> None:
    types = [_struct(f"M{i}", *[(f"field_{j}", int, 0) for j in range(6)]) for i in range(50)]
    assert len(encode_schema(describe(_reg(*types)))) < 16 * 1024


# -- export and diff ------------------------------------------------------------------


def test_export_is_json_with_one_entry_per_cmd_id() -> None:
    document = export(_reg(Ping, Inner, start=9))
    assert msgspec.json.decode(msgspec.json.encode(document)) == document
    assert document["qrpc_schema"] == 1
    assert list(document["messages"]) == ["9", "10"]
    entry = document["messages"]["9"]
    assert entry["name"] == "Ping"
    assert (entry["array_like"], entry["forbid_unknown_fields"]) == (False, False)
    assert entry["schema"] == msgspec.json.schema(Ping)


def test_diff_of_identical_exports_is_empty() -> None:
    assert diff(export(_reg(Ping)), export(_reg(Ping))) == []


def test_diff_reports_changes_by_cmd_id() -> None:
    old = export(_reg(V1, Inner))
    new = export(_reg(V2_OPTIONAL, start=1))
    assert diff(old, new) == [
        Change(1, False, "field 'extra' added (optional)"),
        Change(2, True, "message Inner removed"),
    ]
    assert diff(new, old) == [
        Change(1, True, "field 'extra' removed"),
        Change(2, False, "message Inner added"),
    ]
    assert diff(old, export(_reg(V2_REQUIRED))) == [
        Change(1, True, "field 'extra' added (required)"),
        Change(2, True, "message Inner removed"),
    ]


def test_diff_sees_a_nested_change_and_array_like_insertions() -> None:
    inner_v2 = _struct("Inner", ("a", str))
    ping_v2 = _struct(
        "Ping", ("text", str), ("inner", inner_v2 | None, None), ("tags", list[str], [])
    )
    [change] = diff(export(_reg(Ping)), export(_reg(ping_v2)))
    assert change.breaking
    assert change.text.startswith("field 'inner' changed type")
    old = export(_reg(_struct("Row", ("a", int), array_like=True)))
    at_end = export(_reg(_struct("Row", ("a", int), ("b", int, 0), array_like=True)))
    at_start = export(_reg(_struct("Row", ("b", int, 0), ("a", int, 0), array_like=True)))
    assert [c.breaking for c in diff(old, at_end)] == [False]
    assert any(c.breaking for c in diff(old, at_start))


def test_diff_flags_changed_array_like_and_forbid_unknown_fields() -> None:
    old = export(_reg(V1))
    assert diff(old, export(_reg(_struct("Msg", ("text", str), array_like=True)))) == [
        Change(1, True, "array_like changed from False to True")
    ]
    assert diff(old, export(_reg(_struct("Msg", ("text", str), forbid_unknown_fields=True)))) == [
        Change(1, True, "forbid_unknown_fields changed from False to True")
    ]


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ([], r"not a qrpc schema export \(a JSON list, not an object\)"),
        ({"messages": {}}, "no 'qrpc_schema' key"),
        ({"qrpc_schema": 2, "messages": {}}, "unsupported qrpc_schema 2"),
        ({"qrpc_schema": 1}, "missing required field `messages`"),
        ({"qrpc_schema": 1, "messages": {"x": {}}}, "missing required field"),
        (
            {"qrpc_schema": 1, "messages": {"one": export(_reg(V1))["messages"]["1"]}},
            "not a cmd_id",
        ),
        (
            {
                "qrpc_schema": 1,
                "messages": {"1": {**export(_reg(V1))["messages"]["1"], "schema": {}}},
            },
            "cmd_id 1: unusable schema",
        ),
    ],
)
def test_diff_rejects_documents_that_are_not_exports(document: Any, problem: str) -> None:
    with pytest.raises(SchemaDocumentError, match=problem) as caught:
        diff(export(_reg(V1)), document)
    assert caught.value.document == "new"
    assert str(caught.value).startswith("new document: ")
