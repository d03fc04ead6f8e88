"""qrpc-codec-cbor: the codec conformance suite, entry-point discovery, hostile
input, and two real nodes on 127.0.0.1 talking CBOR."""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import enum
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from importlib.metadata import entry_points
from typing import Any

import cbor2
import msgspec
import pytest
from qrpc_codec_cbor import MAX_DEPTH, CborCodec, codec

import qrpc
import qrpc_codecs
from qrpc.testing import TestPKI
from qrpc_codecs.testing import check_codec

NodeFactory = Callable[..., Awaitable[qrpc.Node]]
TIMEOUT = 5.0  # seconds any single wait may take


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Point(msgspec.Struct, array_like=True):
    x: int
    y: int


class Reading(msgspec.Struct):
    sensor: str
    values: list[float]
    raw: bytes
    labels: dict[int, str]
    taken: dt.datetime
    id: uuid.UUID
    amount: decimal.Decimal
    colour: Colour
    tags: frozenset[str]
    where: Point | None
    huge: int  # beyond 64 bits: a CBOR bignum
    buffer: bytearray = msgspec.field(default_factory=bytearray)


class Ask(msgspec.Struct):
    question: str


class Answer(msgspec.Struct):
    text: str
    reading: Reading


class Small(msgspec.Struct):
    a: int


READING = Reading(
    sensor="thermo-7",
    values=[1.5, -0.0, 1e300],
    raw=bytes(range(256)),
    labels={1: "one", -2: "minus two"},
    taken=dt.datetime(2026, 11, 25, 8, 30, 1, 250_000, tzinfo=dt.UTC),
    id=uuid.UUID("12345678-1234-5678-1234-567812345678"),
    amount=decimal.Decimal("12.50"),
    colour=Colour.BLUE,
    tags=frozenset({"a", "b"}),
    where=Point(3, -4),
    huge=2**70 + 1,
    buffer=bytearray(b"\x00\x01"),
)


# -- the codec alone ------------------------------------------------------------------


def test_check_codec_passes() -> None:
    check_codec(codec, samples=[READING, Answer("yes", READING), Point(1, 2)])


def test_found_through_its_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    [ep] = entry_points(group="qrpc.codecs", name="cbor")
    assert ep.value == "qrpc_codec_cbor:codec"
    assert ep.load() is codec
    # An empty registry, so get_codec has to go through the entry point.
    monkeypatch.setattr(qrpc_codecs, "_registry", {})
    assert "cbor" in qrpc_codecs.available_codecs()
    assert qrpc_codecs.get_codec("cbor") is codec


def test_round_trip_of_many_types() -> None:
    data = codec.encode(READING)
    assert codec.decoder(Reading)(data) == READING
    assert cbor2.loads(data)["raw"] == bytes(range(256))  # a CBOR byte string, not base64
    assert cbor2.loads(codec.encode(Point(3, -4))) == [3, -4]  # array_like -> CBOR array


def test_encoding_is_plain_cbor() -> None:
    assert codec.encode(Small(1)) == bytes.fromhex("a1 61 61 01")  # {"a": 1}
    assert codec.decoder(Small)(bytes.fromhex("a1 61 61 01")) == Small(1)


def test_unencodable_value_is_an_encode_error() -> None:
    with pytest.raises(qrpc_codecs.EncodeError, match=r"^cbor cannot encode object: "):
        codec.encode(object())


def test_untypeable_type_is_a_codec_error() -> None:
    with pytest.raises(qrpc_codecs.CodecError, match=r"^cbor cannot decode 5: "):
        codec.decoder(5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        pytest.param(bytes.fromhex("a1616101 00"), "1 bytes after the CBOR item", id="trailing"),
        pytest.param(bytes.fromhex("d81c80"), "semantic tag 28", id="value-sharing"),
        pytest.param(bytes.fromhex("d9010000"), "semantic tag 256", id="string-ref"),
        pytest.param(bytes.fromhex("c100"), "semantic tag 1", id="epoch-datetime"),
        pytest.param(bytes.fromhex("d9010280"), "semantic tag 258", id="set"),
        pytest.param(bytes.fromhex("d903e700"), "semantic tag 999", id="unknown-tag"),
        pytest.param(bytes.fromhex("bf616101ff"), "indefinite length", id="indefinite-map"),
        pytest.param(bytes.fromhex("a2616101616102"), "Duplicate map key: 'a'", id="dup-key"),
        pytest.param(bytes.fromhex("a10101"), "map key must be a text string", id="int-key"),
        pytest.param(
            b"\x81" * (MAX_DEPTH + 1) + b"\x00",
            f"maximum container nesting depth ({MAX_DEPTH}) exceeded",
            id="too-deep",
        ),
        pytest.param(
            bytes.fromhex("a1616161 78"), "Expected `int`, got `str` - at `$.a`", id="type"
        ),
        pytest.param(bytes.fromhex("a1 62 fffe 01"), "error decoding text string", id="utf8"),
        pytest.param(b"", "premature end of stream", id="empty"),
    ],
)
def test_hostile_input_is_a_decode_error(data: bytes, reason: str) -> None:
    with pytest.raises(qrpc_codecs.DecodeError) as caught:
        codec.decoder(Small)(data)
    message = str(caught.value)
    assert message.startswith("invalid cbor Small: ")
    assert reason in message


def _tagged(tag: int, payload: bytes) -> bytes:
    if tag < 24:
        return bytes([0xC0 | tag]) + payload
    for extra, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if tag < 1 << (8 * size):
            return bytes([0xC0 | extra]) + tag.to_bytes(size, "big") + payload
    raise ValueError(tag)


def test_every_tag_but_bignums_is_refused() -> None:
    """Guards against a cbor2 release that decodes more tags natively."""
    decode: Callable[[bytes], object] = codec.decoder(Any)  # only the CBOR layer refuses
    tags = [*range(2048), 55799, 55800, 65535, 2**32 - 1, 2**64 - 1]
    payloads = (b"\x00", b"\x80", b"\x41\x05", b"\x61\x61", b"\xa0", b"\xf9\x3c\x00")
    accepted = set()
    for tag in tags:
        for payload in payloads:
            try:
                decode(_tagged(tag, payload))
            except qrpc_codecs.DecodeError:
                continue
            accepted.add(tag)
    assert accepted == {2, 3}
    assert decode(_tagged(2, b"\x41\x05")) == 5
    assert decode(_tagged(3, b"\x41\x05")) == -6


def test_bignums_are_accepted() -> None:
    assert codec.decoder(Small)(bytes.fromhex("a16161 c2 41 05")) == Small(5)


def test_codec_is_one_instance_with_a_fixed_name() -> None:
    assert isinstance(codec, qrpc_codecs.Codec)
    assert type(codec) is CborCodec
    assert codec.name == "cbor"
    assert repr(codec) == "<qrpc codec 'cbor'>"


# -- two nodes talking CBOR -----------------------------------------------------------


@pytest.fixture
async def cbor_nodes(qrpc_pki: TestPKI) -> AsyncIterator[NodeFactory]:
    """Start nodes on 127.0.0.1:0 (no autoloaded plugins); closed at teardown."""
    registry = qrpc.Registry()
    registry.register(1, Ask)
    registry.register(2, Answer)
    registry.register(3, Reading)
    async with AsyncExitStack() as stack:

        async def make(**kwargs: Any) -> qrpc.Node:
            node = qrpc.Node(registry, tls=qrpc_pki.node_tls(), autoload_plugins=False, **kwargs)
            return await stack.enter_async_context(node)

        yield make


async def test_two_nodes_exchange_messages_in_cbor(cbor_nodes: NodeFactory) -> None:
    server = await cbor_nodes(codecs=("cbor",))
    client = await cbor_nodes(codecs=("cbor",))
    assert [c.name for c in server.codecs] == [c.name for c in client.codecs] == ["cbor"]
    readings: asyncio.Queue[Reading] = asyncio.Queue()

    @server.handler(3)
    async def on_reading(ctx: qrpc.Context, msg: Reading) -> None:
        readings.put_nowait(msg)

    @server.handler(1)
    async def on_ask(ctx: qrpc.Context, msg: Ask) -> Answer:
        return Answer(f"re: {msg.question}", READING)

    client.add_peer(qrpc.Peer(*server.address, expected_id=server.id))
    await client.wait_for_peer(server.id, timeout=TIMEOUT)
    await client.send(server.id, READING)
    async with asyncio.timeout(TIMEOUT):
        assert await readings.get() == READING
    answer = await client.request(server.id, Ask("temperature?"), reply=Answer, timeout=TIMEOUT)
    assert answer == Answer("re: temperature?", READING)


async def test_cbor_only_and_msgpack_only_nodes_cannot_agree(cbor_nodes: NodeFactory) -> None:
    server = await cbor_nodes(codecs=("cbor",))
    client = await cbor_nodes(codecs=("msgpack",))
    events = client.events()
    client.add_peer(qrpc.Peer(*server.address, expected_id=server.id))
    async with asyncio.timeout(TIMEOUT):
        async for event in events:
            if isinstance(event, qrpc.ConnectFailed):
                break
    assert isinstance(event, qrpc.ConnectFailed)
    assert isinstance(event.error, qrpc.ConnectError)
    assert "no common codec" in event.detail
    assert server.peers() == client.peers() == []
