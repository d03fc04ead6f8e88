"""qrpc.registry.Registry: the cmd_id <-> Struct table, its decoders and handler checks."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import msgspec
import pytest

from qrpc.errors import RegistryError
from qrpc.registry import MAX_CMD_ID, RESERVED_CMD_IDS, Registry
from qrpc_codecs import get_codec
from qrpc_codecs.json import codec as json_codec
from qrpc_codecs.msgpack import codec as msgpack_codec
from qrpc_codecs.raw import codec as raw_codec


class Ping(msgspec.Struct):
    text: str


class Pong(msgspec.Struct):
    text: str


class Blob(msgspec.Struct):
    data: bytes


class Chunk(msgspec.Struct):
    payload: bytes


@dataclasses.dataclass
class NotAStruct:
    text: str


@pytest.fixture
def registry() -> Registry:
    reg = Registry()
    reg.register(1, Ping)
    reg.register(2, Pong)
    return reg


@pytest.fixture
def raw_registry() -> Registry:
    """Only types the raw codec can carry."""
    reg = Registry()
    reg.register(10, Blob)
    return reg


def _snapshot(reg: Registry) -> tuple[list[tuple[int, type[msgspec.Struct]]], str]:
    return list(reg), repr(reg)


# -- register ----------------------------------------------------------------------


def test_register_maps_both_directions(registry: Registry) -> None:
    assert registry.type_of(1) is Ping
    assert registry.type_of(2) is Pong
    assert registry.cmd_id_of(Ping) == 1
    assert registry.cmd_id_of(Pong) == 2


def test_register_returns_the_type() -> None:
    assert Registry().register(7, Ping) is Ping


@pytest.mark.parametrize(
    "cmd_id",
    [1, 2, 0xFFFF, RESERVED_CMD_IDS.start - 1],
    ids=["1", "2", "u16-max", "below-reserved"],
)
def test_register_accepts_every_cmd_id_in_range(cmd_id: int) -> None:
    reg = Registry()
    reg.register(cmd_id, Ping)
    assert reg.type_of(cmd_id) is Ping


@pytest.mark.parametrize("cmd_id", [RESERVED_CMD_IDS.start, MAX_CMD_ID])
def test_the_built_in_services_range_is_refused(cmd_id: int) -> None:
    with pytest.raises(RegistryError, match="reserved"):
        Registry().register(cmd_id, Ping)


def test_max_cmd_id_is_the_u32_maximum() -> None:
    assert MAX_CMD_ID == 2**32 - 1


@pytest.mark.parametrize(
    "cmd_id",
    [
        pytest.param(0, id="zero-reserved"),
        pytest.param(-1, id="negative"),
        pytest.param(2**32, id="beyond-u32"),
        pytest.param(True, id="bool"),
        pytest.param("1", id="str"),
        pytest.param(1.0, id="float"),
        pytest.param(None, id="none"),
    ],
)
def test_register_refuses_cmd_id_out_of_range(cmd_id: Any) -> None:
    reg = Registry()
    with pytest.raises(RegistryError) as excinfo:
        reg.register(cmd_id, Ping)
    assert str(excinfo.value) == f"cmd_id must be an int in 1..4294967295, got {cmd_id!r}"
    assert len(reg) == 0


@pytest.mark.parametrize(
    "type_",
    [
        pytest.param(int, id="int"),
        pytest.param(object, id="object"),
        pytest.param(NotAStruct, id="dataclass"),
        pytest.param(Ping("x"), id="struct-instance"),
        pytest.param("Ping", id="type-name"),
    ],
)
def test_register_refuses_non_struct_types(type_: Any) -> None:
    reg = Registry()
    with pytest.raises(RegistryError, match=r"must be msgspec\.Struct subclasses"):
        reg.register(1, type_)
    assert len(reg) == 0


def test_register_refuses_a_duplicate_cmd_id_naming_both_types(registry: Registry) -> None:
    before = _snapshot(registry)
    with pytest.raises(RegistryError) as excinfo:
        registry.register(1, Blob)
    message = str(excinfo.value)
    assert "cmd_id 1" in message
    assert "Ping" in message
    assert "Blob" in message
    assert _snapshot(registry) == before
    assert Blob not in registry


def test_register_refuses_a_duplicate_type_naming_it_and_both_ids(registry: Registry) -> None:
    before = _snapshot(registry)
    with pytest.raises(RegistryError) as excinfo:
        registry.register(5, Ping)
    message = str(excinfo.value)
    assert "Ping" in message
    assert "cmd_id 1" in message
    assert "5" in message
    assert _snapshot(registry) == before
    assert 5 not in registry


def test_registry_error_is_a_value_error(registry: Registry) -> None:
    with pytest.raises(ValueError, match="already registered"):
        registry.register(1, Ping)


# -- lookups ----------------------------------------------------------------------


def test_cmd_id_of_an_unregistered_type(registry: Registry) -> None:
    with pytest.raises(RegistryError) as excinfo:
        registry.cmd_id_of(Blob)
    assert str(excinfo.value) == "Blob is not registered"


def test_type_of_an_unregistered_cmd_id(registry: Registry) -> None:
    with pytest.raises(RegistryError) as excinfo:
        registry.type_of(99)
    assert str(excinfo.value) == "cmd_id 99 is not registered"


def test_lookup_errors_do_not_chain_the_key_error(registry: Registry) -> None:
    with pytest.raises(RegistryError) as excinfo:
        registry.type_of(99)
    assert excinfo.value.__cause__ is None
    assert excinfo.value.__suppress_context__


# -- container protocol and repr ---------------------------------------------------


def test_iteration_is_sorted_by_cmd_id() -> None:
    reg = Registry()
    reg.register(30, Blob)
    reg.register(2, Pong)
    reg.register(100, Chunk)
    reg.register(7, Ping)
    assert list(reg) == [(2, Pong), (7, Ping), (30, Blob), (100, Chunk)]


def test_len_counts_registrations() -> None:
    reg = Registry()
    assert len(reg) == 0
    reg.register(1, Ping)
    reg.register(2, Pong)
    assert len(reg) == 2


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        pytest.param(1, True, id="registered-cmd-id"),
        pytest.param(Ping, True, id="registered-type"),
        pytest.param(3, False, id="unknown-cmd-id"),
        pytest.param(Blob, False, id="unknown-type"),
        pytest.param("1", False, id="cmd-id-as-str"),
        pytest.param("Ping", False, id="type-name-as-str"),
    ],
)
def test_contains_checks_cmd_ids_and_types(
    registry: Registry, item: object, expected: bool
) -> None:
    assert (item in registry) is expected


def test_repr_lists_entries_sorted() -> None:
    reg = Registry()
    assert repr(reg) == "Registry({})"
    reg.register(2, Pong)
    reg.register(1, Ping)
    assert repr(reg) == "Registry({1: Ping, 2: Pong})"


# -- decoders ---------------------------------------------------------------------


def test_decoders_decode_each_registered_type(registry: Registry) -> None:
    table = registry.decoders(msgpack_codec)
    assert sorted(table) == [1, 2]
    assert table[1](msgpack_codec.encode(Ping("hi"))) == Ping("hi")
    assert table[2](msgpack_codec.encode(Pong("ho"))) == Pong("ho")


def test_decoders_are_built_once_per_codec(registry: Registry) -> None:
    first = registry.decoders(msgpack_codec)
    assert registry.decoders(msgpack_codec) is first
    assert registry.decoders(json_codec) is not first
    assert registry.decoders(json_codec) is registry.decoders(json_codec)


def test_decoders_are_extended_when_a_type_is_registered_later(registry: Registry) -> None:
    msgpack_table = registry.decoders(msgpack_codec)
    json_table = registry.decoders(json_codec)
    registry.register(3, Blob)
    assert registry.decoders(msgpack_codec) is msgpack_table
    assert sorted(msgpack_table) == [1, 2, 3]
    assert sorted(json_table) == [1, 2, 3]
    assert msgpack_table[3](msgpack_codec.encode(Blob(b"\x00"))) == Blob(b"\x00")
    assert json_table[3](json_codec.encode(Blob(b"\x00"))) == Blob(b"\x00")


def test_decoders_rebuilt_for_another_codec_object_of_the_same_name(registry: Registry) -> None:
    from qrpc_codecs._msgspec import MsgspecCodec

    first = registry.decoders(msgpack_codec)
    impostor = MsgspecCodec("msgpack", msgspec.msgpack.Encoder(), msgspec.msgpack.Decoder)
    second = registry.decoders(impostor)
    assert second is not first
    assert sorted(second) == [1, 2]


def test_decoders_for_raw_carry_bytes_messages(raw_registry: Registry) -> None:
    table = raw_registry.decoders(raw_codec)
    assert table[10](b"\x01\x02") == Blob(b"\x01\x02")


def test_decoders_for_raw_refuse_a_type_it_cannot_carry(registry: Registry) -> None:
    with pytest.raises(RegistryError) as excinfo:
        registry.decoders(get_codec("raw"))
    message = str(excinfo.value)
    assert message.startswith("codec 'raw' cannot carry Ping: ")
    # Nothing half-built is kept: asking again fails again.
    with pytest.raises(RegistryError):
        registry.decoders(raw_codec)


def test_register_refuses_a_type_the_raw_decoders_cannot_carry(raw_registry: Registry) -> None:
    table = raw_registry.decoders(raw_codec)
    before = _snapshot(raw_registry)
    with pytest.raises(RegistryError) as excinfo:
        raw_registry.register(11, Ping)
    assert str(excinfo.value).startswith("codec 'raw' cannot carry Ping: ")
    assert _snapshot(raw_registry) == before
    assert 11 not in raw_registry
    assert Ping not in raw_registry
    assert sorted(table) == [10]
    # The cmd_id and the type stay free for a type that fits.
    raw_registry.register(11, Chunk)
    assert sorted(table) == [10, 11]


def test_refused_register_leaves_every_decoder_table_unchanged(raw_registry: Registry) -> None:
    """A type refused by one codec's decoders must not linger in another's table."""
    msgpack_table = raw_registry.decoders(msgpack_codec)
    raw_table = raw_registry.decoders(raw_codec)
    with pytest.raises(RegistryError):
        raw_registry.register(11, Ping)
    assert sorted(raw_table) == [10]
    assert sorted(msgpack_table) == [10]


# -- check_handler ----------------------------------------------------------------


def test_check_handler_accepts_an_unannotated_async_handler(registry: Registry) -> None:
    async def on_ping(ctx, msg):
        pass

    registry.check_handler(1, on_ping)


def test_check_handler_accepts_a_matching_annotation(registry: Registry) -> None:
    async def on_ping(ctx: object, msg: Ping) -> None:
        pass

    registry.check_handler(1, on_ping)


def test_check_handler_accepts_a_matching_evaluated_annotation(registry: Registry) -> None:
    async def on_ping(ctx: object, msg: Ping) -> None:
        pass

    on_ping.__annotations__["msg"] = Ping  # as without `from __future__ import annotations`
    registry.check_handler(1, on_ping)


def test_check_handler_accepts_a_base_class_annotation(registry: Registry) -> None:
    async def on_any(ctx: object, msg: msgspec.Struct) -> None:
        pass

    on_any.__annotations__["msg"] = msgspec.Struct
    registry.check_handler(1, on_any)


def test_check_handler_accepts_extra_optional_parameters(registry: Registry) -> None:
    async def on_ping(ctx: object, msg: Ping, retries: int = 3) -> None:
        pass

    registry.check_handler(1, on_ping)


@pytest.mark.parametrize(
    "annotation", ["Ping", "tests.test_registry.Ping", "mod.Ping"], ids=["bare", "dotted", "other"]
)
def test_check_handler_compares_string_annotations_by_name(
    registry: Registry, annotation: str
) -> None:
    async def on_ping(ctx, msg):
        pass

    on_ping.__annotations__["msg"] = annotation
    registry.check_handler(1, on_ping)


def test_check_handler_accepts_a_plain_def_handler(registry: Registry) -> None:
    def on_ping(ctx: object, msg: Ping) -> None:
        pass

    registry.check_handler(1, on_ping)


def test_check_handler_refuses_generators(registry: Registry) -> None:
    async def on_ping(ctx: object, msg: Ping) -> Any:
        yield

    def on_pong(ctx: object, msg: Ping) -> Any:
        yield

    for handler in (on_ping, on_pong):
        with pytest.raises(RegistryError) as excinfo:
            registry.check_handler(1, handler)
        assert "is a generator: make it an async def (or a plain def)" in str(excinfo.value)
        assert handler.__name__ in str(excinfo.value)


@pytest.mark.parametrize("arity", [0, 1])
def test_check_handler_refuses_too_few_parameters(registry: Registry, arity: int) -> None:
    async def no_args() -> None:
        pass

    async def ctx_only(ctx: object) -> None:
        pass

    handlers: list[Callable[..., Any]] = [no_args, ctx_only]
    handler = handlers[arity]
    with pytest.raises(RegistryError) as excinfo:
        registry.check_handler(1, handler)
    assert "must be callable as handler(ctx, msg)" in str(excinfo.value)


def test_check_handler_refuses_a_handler_that_needs_a_third_argument(registry: Registry) -> None:
    """The node calls handler(ctx, msg); a third required argument fails every call."""

    async def on_ping(ctx: object, msg: Ping, extra: int) -> None:
        pass

    with pytest.raises(RegistryError):
        registry.check_handler(1, on_ping)


def test_check_handler_mismatch_names_both_types(registry: Registry) -> None:
    async def on_ping(ctx: object, msg: Pong) -> None:
        pass

    on_ping.__annotations__["msg"] = Pong
    with pytest.raises(RegistryError) as excinfo:
        registry.check_handler(1, on_ping)
    message = str(excinfo.value)
    assert "Pong" in message
    assert "Ping" in message
    assert "cmd_id 1" in message


def test_check_handler_string_mismatch_names_both_types(registry: Registry) -> None:
    async def on_ping(ctx: object, msg: Pong) -> None:
        pass

    assert on_ping.__annotations__["msg"] == "Pong"  # this module defers annotations
    with pytest.raises(RegistryError) as excinfo:
        registry.check_handler(1, on_ping)
    message = str(excinfo.value)
    assert "annotates its message as Pong" in message
    assert "registered to Ping" in message


def test_check_handler_refuses_a_similar_name_that_is_not_the_type(registry: Registry) -> None:
    async def on_ping(ctx, msg):
        pass

    on_ping.__annotations__["msg"] = "PingPong"
    with pytest.raises(RegistryError, match="PingPong"):
        registry.check_handler(1, on_ping)


def test_check_handler_refuses_an_unknown_cmd_id(registry: Registry) -> None:
    async def on_ping(ctx: object, msg: Ping) -> None:
        pass

    with pytest.raises(RegistryError, match="cmd_id 42 is not registered"):
        registry.check_handler(42, on_ping)
