"""qrpc_codecs: the Codec protocol, the built-in codecs, the registry and entry points."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, distributions
from pathlib import Path
from typing import Any

import msgspec
import pytest

import qrpc_codecs
from qrpc_codecs import (
    ENTRY_POINT_GROUP,
    Codec,
    CodecError,
    DecodeError,
    EncodeError,
    UnknownCodec,
    available_codecs,
    get_codec,
    register_codec,
)
from qrpc_codecs.testing import GARBAGE, check_codec
from tests.plugins import fake_codec

BUILTIN = ["json", "msgpack", "raw"]
MSGSPEC_CODECS = ["msgpack", "json"]


class Typical(msgspec.Struct):
    count: int
    name: str
    ratio: float
    values: list[int]
    flag: bool
    blob: bytes


class Small(msgspec.Struct):
    seq: int
    label: str


class Large(msgspec.Struct):
    blob: bytes
    items: list[Small]


class Blob(msgspec.Struct):
    data: bytes


class Text(msgspec.Struct):
    text: str


class Loose(msgspec.Struct):
    data: Any


TYPICAL = Typical(7, "héllo", 1.5, list(range(10)), True, bytes(range(64)))
LARGE = Large(bytes(range(256)) * 256, [Small(i, f"item-{i}") for i in range(1000)])
BIG_BLOB = Blob(bytes(range(256)) * 256)


@pytest.fixture(autouse=True)
def isolated_codecs(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh codec registry and no installed entry points, for every test."""
    monkeypatch.setattr(qrpc_codecs, "_registry", {})
    monkeypatch.setattr(qrpc_codecs, "entry_points", _fake_entry_points([]))


def _fake_entry_points(eps: list[EntryPoint]) -> Callable[..., list[EntryPoint]]:
    def entry_points(*, group: str, name: str | None = None) -> list[EntryPoint]:
        return [ep for ep in eps if ep.group == group and (name is None or ep.name == name)]

    return entry_points


def _nested_list(depth: int) -> Any:
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


def _self_referential_list() -> list[Any]:
    value: list[Any] = []
    value.append(value)
    return value


# -- the protocol and the conformance suite --------------------------------------


@pytest.mark.parametrize("name", BUILTIN)
def test_builtin_codec_passes_check_codec(name: str) -> None:
    samples = (
        [Blob(b"\x00\xffraw")]
        if name == "raw"
        else [Typical(1, "a", 0.5, [1], True, b"x"), Large(b"\x01" * 300, [Small(1, "s")] * 3)]
    )
    check_codec(get_codec(name), samples=samples)


def test_check_codec_requires_every_sample_to_be_supported() -> None:
    with pytest.raises(AssertionError, match="raw cannot decode Typical"):
        check_codec(get_codec("raw"), samples=[Typical(1, "a", 0.5, [1], True, b"x")])


@pytest.mark.parametrize("name", BUILTIN)
def test_builtin_codec_implements_the_protocol_and_carries_its_name(name: str) -> None:
    codec = get_codec(name)
    assert isinstance(codec, Codec)
    assert codec.name == name


def test_check_codec_passes_a_third_party_codec() -> None:
    check_codec(fake_codec.codec)


class _LeakyCodec:
    """Lets msgspec's own exceptions escape its decoders."""

    name = "leaky"

    def encode(self, value: Any) -> bytes:
        try:
            return msgspec.msgpack.encode(value)
        except TypeError as exc:
            raise EncodeError(str(exc)) from exc

    def decoder(self, type_: type[Any]) -> Callable[[bytes], Any]:
        return msgspec.msgpack.Decoder(type_).decode


class _PermissiveCodec:
    """Encodes anything, even objects that are not messages."""

    name = "permissive"

    def encode(self, value: Any) -> bytes:
        try:
            return msgspec.msgpack.encode(value)
        except TypeError:
            return b""

    def decoder(self, type_: type[Any]) -> Callable[[bytes], Any]:
        return get_codec("msgpack").decoder(type_)


class _RawErrorCodec(_PermissiveCodec):
    """Lets msgspec's TypeError escape `encode`."""

    def encode(self, value: Any) -> bytes:
        return msgspec.msgpack.encode(value)


class _PickyCodec:
    """Supports no message type at all."""

    name = "picky"

    def encode(self, value: Any) -> bytes:
        raise EncodeError("never")

    def decoder(self, type_: type[Any]) -> Callable[[bytes], Any]:
        raise CodecError("no type is good enough")


@pytest.mark.parametrize(
    ("codec", "complaint"),
    [
        pytest.param(_LeakyCodec(), "expected DecodeError", id="decoder-leaks-msgspec-errors"),
        pytest.param(_PermissiveCodec(), "accepted an arbitrary object", id="encodes-anything"),
        pytest.param(_RawErrorCodec(), "expected EncodeError", id="encode-leaks-type-error"),
        pytest.param(_PickyCodec(), "supports none of the sample", id="supports-no-type"),
        pytest.param(object(), "does not implement Codec", id="not-a-codec"),
    ],
)
def test_check_codec_reports_the_broken_rule(codec: Any, complaint: str) -> None:
    with pytest.raises(AssertionError, match=complaint):
        check_codec(codec)


# -- round trips -----------------------------------------------------------------


@pytest.mark.parametrize("name", MSGSPEC_CODECS)
@pytest.mark.parametrize(
    "message", [pytest.param(TYPICAL, id="typical"), pytest.param(LARGE, id="large")]
)
def test_msgspec_codec_round_trips(name: str, message: msgspec.Struct) -> None:
    codec = get_codec(name)
    decoded = codec.decoder(type(message))(codec.encode(message))
    assert decoded == message
    assert type(decoded) is type(message)


def test_large_message_really_is_large() -> None:
    assert len(LARGE.blob) == 65536
    assert len(LARGE.items) == 1000
    assert LARGE.items[999] == Small(999, "item-999")


@pytest.mark.parametrize(
    ("name", "encoded"),
    [
        pytest.param("msgpack", b"\x81\xa4text\xa2hi", id="msgpack"),
        pytest.param("json", b'{"text":"hi"}', id="json"),
    ],
)
def test_msgspec_codec_wire_format(name: str, encoded: bytes) -> None:
    codec = get_codec(name)
    assert codec.encode(Text("hi")) == encoded
    assert codec.decoder(Text)(encoded) == Text("hi")


@pytest.mark.parametrize(
    "message", [Blob(b""), Blob(b"\x00\xff"), BIG_BLOB], ids=["empty", "2-bytes", "64KiB"]
)
def test_raw_codec_round_trips_a_bytes_message(message: Blob) -> None:
    codec = get_codec("raw")
    assert codec.decoder(Blob)(codec.encode(message)) == message


def test_raw_codec_sends_the_field_as_is() -> None:
    payload = b"\x01\x02\x03"
    assert get_codec("raw").encode(Blob(payload)) == payload


def test_raw_codec_encodes_without_copying() -> None:
    message = BIG_BLOB
    assert get_codec("raw").encode(message) is message.data


@pytest.mark.parametrize("data", GARBAGE, ids=[f"garbage-{i}" for i in range(len(GARBAGE))])
def test_raw_codec_accepts_any_bytes(data: bytes) -> None:
    assert get_codec("raw").decoder(Blob)(data) == Blob(data)


class _OneStr(msgspec.Struct):
    data: str


class _OptionalBytes(msgspec.Struct):
    data: bytes | None


class _TwoBytes(msgspec.Struct):
    head: bytes
    tail: bytes


class _NoFields(msgspec.Struct):
    pass


class _NotAStruct:
    data: bytes


@pytest.mark.parametrize(
    "type_",
    [
        pytest.param(Typical, id="many-fields"),
        pytest.param(_OneStr, id="one-str-field"),
        pytest.param(_OptionalBytes, id="optional-bytes"),
        pytest.param(_TwoBytes, id="two-bytes-fields"),
        pytest.param(_NoFields, id="no-fields"),
        pytest.param(_NotAStruct, id="not-a-struct"),
        pytest.param(bytes, id="bytes-itself"),
    ],
)
def test_raw_codec_refuses_other_types_at_decoder(type_: type[Any]) -> None:
    with pytest.raises(CodecError, match="raw codec"):
        get_codec("raw").decoder(type_)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(Typical(1, "", 0.0, [], False, b""), id="many-fields"),
        pytest.param(b"bare bytes", id="bare-bytes"),
        pytest.param(Blob(bytearray(b"x")), id="bytearray-in-field"),  # type: ignore[arg-type]
        pytest.param(Blob("text"), id="str-in-field"),  # type: ignore[arg-type]
    ],
)
def test_raw_codec_refuses_to_encode_other_values(value: object) -> None:
    with pytest.raises(EncodeError, match="raw codec"):
        get_codec("raw").encode(value)


# -- bad input: decoders raise DecodeError and nothing else ------------------------

# Inputs for which msgspec raises something other than DecodeError.
MSGPACK_BAD_UTF8 = b"\x81\xa4text\xa2\xff\xfe"
JSON_BAD_UTF8 = b'{"text":"\xff\xfe"}'
MSGPACK_DEEP = b"\x81\xa4data" + b"\x91" * 100_000 + b"\xc0"
JSON_DEEP = b'{"data":' + b"[" * 100_000 + b"]" * 100_000 + b"}"

# (type, input) per codec; each row is something msgspec refuses.
_BAD_MSGPACK: list[Any] = [
    pytest.param(Typical, b"", id="empty"),
    pytest.param(Typical, b"\xc1", id="never-used-byte"),
    pytest.param(Typical, b"\x96\x07", id="truncated-array"),
    pytest.param(Text, b"\x81\xa4text\xa5hel", id="truncated-str"),
    pytest.param(Text, b"\x81\xa4text\xa2hi\x00", id="trailing-bytes"),
    pytest.param(Text, b"\x81\xa4text\x07", id="int-for-str"),
    pytest.param(Typical, b"\x07", id="int-for-struct"),
    pytest.param(Text, MSGPACK_BAD_UTF8, id="invalid-utf8-in-str"),
    pytest.param(Loose, MSGPACK_DEEP, id="100k-deep-array"),
    pytest.param(Text, b"\xdd\xff\xff\xff\xff", id="4G-array-header-no-body"),
]
_BAD_JSON: list[Any] = [
    pytest.param(Typical, b"", id="empty"),
    pytest.param(Typical, b"{", id="truncated-object"),
    pytest.param(Text, b'{"text":"hel', id="truncated-str"),
    pytest.param(Text, b'{"text":"hi"} x', id="trailing-bytes"),
    pytest.param(Text, b'{"text":7}', id="int-for-str"),
    pytest.param(Typical, b'{"count": "x"}', id="str-for-int"),
    pytest.param(Text, JSON_BAD_UTF8, id="invalid-utf8-in-str"),
    pytest.param(Loose, JSON_DEEP, id="100k-deep-array"),
    pytest.param(Text, b"\xff\xfe\xfd", id="binary-garbage"),
]


def _assert_only_decode_error(name: str, type_: type[Any], data: bytes) -> None:
    decode = get_codec(name).decoder(type_)
    with pytest.raises(DecodeError) as excinfo:
        decode(data)
    assert type(excinfo.value) is DecodeError
    assert str(excinfo.value).startswith(f"{name}: ")


@pytest.mark.parametrize(("type_", "data"), _BAD_MSGPACK)
def test_msgpack_decoder_raises_only_decode_error(type_: type[Any], data: bytes) -> None:
    _assert_only_decode_error("msgpack", type_, data)


@pytest.mark.parametrize(("type_", "data"), _BAD_JSON)
def test_json_decoder_raises_only_decode_error(type_: type[Any], data: bytes) -> None:
    _assert_only_decode_error("json", type_, data)


@pytest.mark.parametrize("name", MSGSPEC_CODECS)
@pytest.mark.parametrize("data", GARBAGE, ids=[f"garbage-{i}" for i in range(len(GARBAGE))])
def test_msgspec_decoder_refuses_garbage(name: str, data: bytes) -> None:
    _assert_only_decode_error(name, Typical, data)


@pytest.mark.parametrize("name", MSGSPEC_CODECS)
def test_msgspec_decoder_refuses_every_truncation_of_a_message(name: str) -> None:
    codec = get_codec(name)
    encoded = codec.encode(TYPICAL)
    decode = codec.decoder(Typical)
    for end in range(len(encoded)):
        with pytest.raises(DecodeError):
            decode(encoded[:end])


@pytest.mark.parametrize(
    ("module", "type_", "data", "escape"),
    [
        pytest.param(
            msgspec.msgpack, Text, MSGPACK_BAD_UTF8, UnicodeDecodeError, id="msgpack-utf8"
        ),
        pytest.param(msgspec.json, Text, JSON_BAD_UTF8, UnicodeDecodeError, id="json-utf8"),
        pytest.param(msgspec.msgpack, Loose, MSGPACK_DEEP, RecursionError, id="msgpack-deep"),
        pytest.param(msgspec.json, Loose, JSON_DEEP, RecursionError, id="json-deep"),
    ],
)
def test_inputs_reach_the_msgspec_escapes(
    module: Any, type_: type[Any], data: bytes, escape: type[Exception]
) -> None:
    """The rows above really make msgspec raise something other than DecodeError."""
    with pytest.raises(escape):
        module.decode(data, type=type_)


# -- encode: unsupported values raise EncodeError -------------------------------------


class _Holder(msgspec.Struct):
    value: Any


_UNENCODABLE: list[Any] = [
    pytest.param(object(), id="plain-object"),
    pytest.param(_Holder(object()), id="object-in-field"),
    pytest.param(_Holder({1, 2}.__iter__()), id="iterator-in-field"),
    pytest.param(Text("\ud800"), id="lone-surrogate"),
]


@pytest.mark.parametrize("name", MSGSPEC_CODECS)
@pytest.mark.parametrize("value", _UNENCODABLE)
def test_msgspec_encode_refuses_unsupported_values(name: str, value: object) -> None:
    with pytest.raises(EncodeError, match=f"^{name} cannot encode"):
        get_codec(name).encode(value)


def test_msgpack_encode_refuses_an_int_beyond_64_bits() -> None:
    with pytest.raises(EncodeError):
        get_codec("msgpack").encode(_Holder(2**64))


@pytest.mark.parametrize("name", MSGSPEC_CODECS)
@pytest.mark.parametrize(
    "make_value",
    [
        pytest.param(_self_referential_list, id="self-referential-list"),
        pytest.param(lambda: _nested_list(100_000), id="100k-deep-list"),
    ],
)
def test_msgspec_encode_refuses_too_deep_values(name: str, make_value: Callable[[], Any]) -> None:
    """The Codec contract: encode raises only EncodeError.

    msgspec raises RecursionError here, which ENCODE_ERRORS does not list.
    """
    with pytest.raises(EncodeError):
        get_codec(name).encode(_Holder(make_value()))


# -- the registry: register_codec, get_codec, available_codecs ----------------------


def test_available_codecs_lists_the_builtins_sorted() -> None:
    assert available_codecs() == BUILTIN


def test_get_codec_returns_the_same_builtin_instance_each_time() -> None:
    assert get_codec("msgpack") is get_codec("msgpack")
    assert get_codec("msgpack") is qrpc_codecs.msgpack.codec


def test_get_codec_unknown_name_lists_what_is_available() -> None:
    register_codec(fake_codec.FakeCodec("custom"))
    with pytest.raises(UnknownCodec) as excinfo:
        get_codec("nope")
    assert str(excinfo.value) == "no codec named 'nope'; available: custom, json, msgpack, raw"
    assert isinstance(excinfo.value, LookupError)
    assert isinstance(excinfo.value, CodecError)


def test_register_codec_makes_it_available_by_name() -> None:
    codec = fake_codec.FakeCodec("custom")
    register_codec(codec)
    assert get_codec("custom") is codec
    assert available_codecs() == ["custom", *BUILTIN]


def test_register_codec_twice_with_the_same_object_is_harmless() -> None:
    codec = fake_codec.FakeCodec("custom")
    register_codec(codec)
    register_codec(codec)
    assert get_codec("custom") is codec


def test_register_codec_name_clash_is_refused_without_replace() -> None:
    first = fake_codec.FakeCodec("custom")
    register_codec(first)
    with pytest.raises(CodecError, match="'custom' is already registered"):
        register_codec(fake_codec.FakeCodec("custom"))
    assert get_codec("custom") is first


def test_register_codec_name_clash_with_replace_wins() -> None:
    register_codec(fake_codec.FakeCodec("custom"))
    second = fake_codec.FakeCodec("custom")
    register_codec(second, replace=True)
    assert get_codec("custom") is second


def test_register_codec_can_replace_a_builtin() -> None:
    builtin = get_codec("msgpack")
    mine = fake_codec.FakeCodec("msgpack")
    with pytest.raises(CodecError):
        register_codec(mine)
    register_codec(mine, replace=True)
    assert get_codec("msgpack") is mine
    assert builtin is not mine


@pytest.mark.parametrize(
    "obj",
    [
        pytest.param(object(), id="object"),
        pytest.param("msgpack", id="str"),
        pytest.param(None, id="none"),
        pytest.param(fake_codec.FakeCodecClass, id="codec-class-not-instance"),
    ],
)
def test_register_codec_refuses_non_codecs(obj: Any) -> None:
    with pytest.raises(CodecError):
        register_codec(obj)
    assert available_codecs() == BUILTIN


@pytest.mark.parametrize(
    "name",
    [pytest.param("", id="empty"), pytest.param("x" * 65, id="65-chars")],
)
def test_register_codec_refuses_bad_names(name: str) -> None:
    with pytest.raises(CodecError, match="1-64 characters"):
        register_codec(fake_codec.FakeCodec(name))


def test_register_codec_accepts_a_64_character_name() -> None:
    codec = fake_codec.FakeCodec("x" * 64)
    register_codec(codec)
    assert get_codec("x" * 64) is codec


def test_codec_errors_are_rooted_and_typed() -> None:
    assert issubclass(EncodeError, CodecError)
    assert issubclass(EncodeError, TypeError)
    assert issubclass(DecodeError, CodecError)
    assert issubclass(DecodeError, ValueError)
    assert issubclass(UnknownCodec, CodecError)
    assert issubclass(UnknownCodec, LookupError)


# -- entry points (group "qrpc.codecs") ---------------------------------------------

DIST_NAME = "qrpc-codec-fake"


@dataclass
class Installed:
    """The fake distribution's entry points and the calls made to `entry_points`."""

    entry_points: dict[str, EntryPoint]
    calls: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Installed:
    """A fake distribution on disk whose entry points are the only ones
    `qrpc_codecs` sees (real EntryPoint objects, with .dist set)."""
    info = tmp_path / "qrpc_codec_fake-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {DIST_NAME}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\n"
        "fake = tests.plugins.fake_codec:codec\n"
        "fake-misnamed = tests.plugins.fake_codec:misnamed\n"
        "fake-class = tests.plugins.fake_codec:FakeCodecClass\n"
        "fake-string = tests.plugins.fake_codec:not_a_codec\n"
        "fake-missing-module = tests.plugins.no_such_module:codec\n"
        "fake-missing-attr = tests.plugins.fake_codec:no_such_attr\n"
        "\n[qrpc]\n"
        "fake-in-other-group = tests.plugins.fake_codec:codec\n"
    )
    (dist,) = distributions(path=[str(tmp_path)])
    result = Installed({ep.name: ep for ep in dist.entry_points})
    fake = _fake_entry_points(list(result.entry_points.values()))

    def entry_points(**kwargs: Any) -> list[EntryPoint]:
        result.calls.append(kwargs)
        return fake(**kwargs)

    monkeypatch.setattr(qrpc_codecs, "entry_points", entry_points)
    return result


def test_entry_point_codec_is_loaded_by_name(installed: Installed) -> None:
    assert get_codec("fake") is fake_codec.codec
    assert installed.calls == [{"group": "qrpc.codecs", "name": "fake"}]


def test_entry_point_codec_is_loaded_once(installed: Installed) -> None:
    get_codec("fake")
    installed.calls.clear()
    assert get_codec("fake") is fake_codec.codec
    assert installed.calls == []


def test_entry_point_names_are_listed_as_available(installed: Installed) -> None:
    assert available_codecs() == [
        "fake",
        "fake-class",
        "fake-misnamed",
        "fake-missing-attr",
        "fake-missing-module",
        "fake-string",
        *BUILTIN,
    ]


def test_entry_point_in_another_group_is_not_a_codec(installed: Installed) -> None:
    with pytest.raises(UnknownCodec):
        get_codec("fake-in-other-group")


def test_entry_point_codec_passes_check_codec(installed: Installed) -> None:
    check_codec(get_codec("fake"))


def test_builtin_names_never_consult_entry_points(installed: Installed) -> None:
    get_codec("json")
    assert installed.calls == []


@pytest.mark.parametrize(
    ("name", "value", "cause"),
    [
        pytest.param(
            "fake-missing-module",
            "tests.plugins.no_such_module:codec",
            ModuleNotFoundError,
            id="module-does-not-import",
        ),
        pytest.param(
            "fake-missing-attr",
            "tests.plugins.fake_codec:no_such_attr",
            AttributeError,
            id="attribute-missing",
        ),
    ],
)
def test_entry_point_that_fails_to_load_names_itself_and_its_distribution(
    installed: Installed, name: str, value: str, cause: type[Exception]
) -> None:
    with pytest.raises(CodecError) as excinfo:
        get_codec(name)
    message = str(excinfo.value)
    assert f"entry point {name!r} = {value!r}" in message
    assert f"distribution {DIST_NAME!r}" in message
    assert type(excinfo.value) is CodecError
    assert isinstance(excinfo.value.__cause__, cause)
    assert name not in qrpc_codecs._registry


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("fake-class", id="class-not-instance"),
        pytest.param("fake-string", id="str-not-codec"),
    ],
)
def test_entry_point_resolving_to_a_non_codec_is_refused(installed: Installed, name: str) -> None:
    with pytest.raises(CodecError, match=f"codec {name!r} resolved to"):
        get_codec(name)
    assert name not in qrpc_codecs._registry


def test_entry_point_whose_codec_has_another_name_is_refused(installed: Installed) -> None:
    with pytest.raises(CodecError) as excinfo:
        get_codec("fake-misnamed")
    assert str(excinfo.value) == (
        "codec registered as 'fake-misnamed' calls itself 'something-else'"
    )
    assert qrpc_codecs._registry == {}
