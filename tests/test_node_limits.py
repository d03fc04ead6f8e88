"""Limits and protocol violations: each is refused cleanly with its own code, and
nothing from the network crashes the node or grows it without bound."""

from __future__ import annotations

import asyncio
import os
import random

import msgspec
import pytest
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection

import qrpc
from qrpc.codes import ErrorCode
from qrpc.testing import TestPKI
from qrpc.transport.connection import Connection
from qrpc.transport.endpoint import Endpoint
from qrpc.transport.mtls import ALPN, PeerPolicy
from qrpc.wire import FrameKind, encode_frame
from qrpc.wire.frames import HEADER, PROTOCOL_VERSION
from qrpc_codecs import get_codec
from tests.conftest import Count, NodeFactory, Ping, Pong, connect, eventually, next_event
from tests.hostile.rawpeer import RawClient


async def test_one_peer_too_many_is_refused_while_others_keep_talking(
    make_node: NodeFactory,
) -> None:
    hub = await make_node(limits=qrpc.Limits(max_peers=1))

    @hub.handler(1)
    async def echo(ctx: qrpc.Context, msg: Ping) -> Pong:
        return Pong(msg.text)

    first = await make_node()
    await connect(first, hub)
    second = await make_node()
    events = second.events()
    second.add_peer(qrpc.Peer(*hub.address))
    failed = await next_event(events, qrpc.ConnectFailed)
    assert isinstance(failed.error, qrpc.ConnectionLimitReached)
    assert failed.kind is qrpc.FailureKind.TRANSIENT
    assert failed.retry_in is not None
    assert hub.peers() == [first.id]
    assert await first.request(hub.id, Ping("still"), reply=Pong, timeout=5) == Pong("still")


def _silent_initial(target: tuple[str, int]) -> list[bytes]:
    """The first flight of a QUIC client that will never answer."""
    client = QuicConnection(configuration=QuicConfiguration(is_client=True, alpn_protocols=[ALPN]))
    client.connect(target, now=0.0)
    return [data for data, _ in client.datagrams_to_send(now=0.0)]


async def _blast(target: tuple[str, int], datagrams: list[bytes]) -> None:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, remote_addr=target)
    try:
        for data in datagrams:
            transport.sendto(data)
            await asyncio.sleep(0)
    finally:
        transport.close()


async def test_half_open_handshakes_are_capped_and_reaped(make_node: NodeFactory) -> None:
    """Past half of `max_half_open`, new clients must first pass address validation:
    a Retry answers them and they hold no slot until they come back with its token."""
    limits = qrpc.Limits(max_half_open=4, handshake_timeout=1.0)
    node = await make_node(limits=limits)
    flights = [d for _ in range(10) for d in _silent_initial(node.address)]
    await _blast(node.address, flights)
    await eventually(lambda: node.endpoint.stats.datagrams_in >= len(flights), timeout=5)
    assert node.endpoint.half_open == 2
    assert node.endpoint.stats.stateless_replies == 8  # Retry packets
    assert node.endpoint.stats.initials_dropped == 0
    # Reaped by qrpc's handshake deadline, not aioquic's idle timeout.
    await eventually(lambda: node.endpoint.half_open == 0, timeout=3)
    peer = await make_node()
    await connect(peer, node)


async def test_garbage_datagrams_do_not_disturb_a_live_link(make_node: NodeFactory) -> None:
    seed = 1234
    rng = random.Random(seed)
    node = await make_node(limits=qrpc.Limits(max_half_open=8, handshake_timeout=1.0))
    peer = await make_node()

    @node.handler(1)
    async def echo(ctx: qrpc.Context, msg: Ping) -> Pong:
        return Pong(msg.text)

    await connect(peer, node)
    garbage = [rng.randbytes(rng.randrange(1, 1400)) for _ in range(1500)]
    # Initial-shaped garbage: long header, version 1, random connection IDs, 1252 bytes.
    garbage += [
        bytes([0xC0])
        + (1).to_bytes(4, "big")
        + bytes([8])
        + rng.randbytes(8)
        + bytes([8])
        + rng.randbytes(8)
        + rng.randbytes(1252 - 23)
        for _ in range(500)
    ]
    rng.shuffle(garbage)
    blast = asyncio.create_task(_blast(node.address, garbage))
    for i in range(20):
        reply = await peer.request(node.id, Ping(str(i)), reply=Pong, timeout=2)
        assert reply == Pong(str(i)), f"seed {seed}"
    await blast
    assert node.endpoint.half_open <= 8
    assert node.peers() == [peer.id]
    await eventually(lambda: node.endpoint.half_open == 0, timeout=3)


async def _inject(pki: TestPKI, receiver: qrpc.Node, raw: bytes) -> qrpc.Disconnected:
    """Link a raw peer to `receiver`, write `raw` on the link after the HELLO exchange
    and return the receiver's Disconnected event."""
    events = receiver.events()
    async with RawClient.connect(pki, receiver) as peer:
        await asyncio.wait_for(peer.got_hello.wait(), 5)
        await receiver.wait_for_peer(peer.node_id, timeout=5)
        peer.send_frame(raw)
        return await next_event(events, qrpc.Disconnected)


async def test_declared_length_over_the_limit_closes_with_frame_too_large(
    make_node: NodeFactory, qrpc_pki: TestPKI
) -> None:
    limits = qrpc.Limits(max_message_size=64 * 1024, inbound_window=128 * 1024)
    receiver = await make_node(limits=limits)
    header = HEADER.pack(PROTOCOL_VERSION, FrameKind.MESSAGE, 0, 2**32 - 1, 3, 0)
    gone = await _inject(qrpc_pki, receiver, header)
    assert gone.code == ErrorCode.FRAME_TOO_LARGE
    assert receiver.peers() == []


async def test_sending_beyond_credit_closes_with_flow_control(
    make_node: NodeFactory, qrpc_pki: TestPKI
) -> None:
    limits = qrpc.Limits(max_message_size=4096, inbound_window=8192)
    receiver = await make_node(limits=limits)

    @receiver.handler(3)
    async def stuck(ctx: qrpc.Context, msg: Count) -> None:
        await asyncio.Event().wait()

    body = msgspec.msgpack.encode(Count(0, b"x" * 2000))
    frames = b"".join(encode_frame(FrameKind.MESSAGE, body, cmd_id=3) for _ in range(8))
    gone = await _inject(qrpc_pki, receiver, frames)
    assert gone.code == ErrorCode.FLOW_CONTROL


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (HEADER.pack(9, FrameKind.MESSAGE, 0, 0, 1, 0), ErrorCode.UNSUPPORTED_VERSION),
        (HEADER.pack(PROTOCOL_VERSION, 200, 0, 0, 0, 0), ErrorCode.UNKNOWN_FRAME_KIND),
        (HEADER.pack(PROTOCOL_VERSION, FrameKind.MESSAGE, 0x4, 0, 1, 0), ErrorCode.MALFORMED_FRAME),
        (encode_frame(FrameKind.HELLO, b"\x90"), ErrorCode.PROTOCOL_VIOLATION),
    ],
    ids=["bad-version", "unknown-kind", "unknown-flag", "second-hello"],
)
async def test_protocol_violations_close_with_their_code(
    make_node: NodeFactory, qrpc_pki: TestPKI, raw: bytes, code: ErrorCode
) -> None:
    receiver = await make_node()
    gone = await _inject(qrpc_pki, receiver, raw)
    assert gone.code == code
    assert receiver.peers() == []


async def _raw_link(pki: TestPKI, target: qrpc.Node) -> tuple[Endpoint, Connection]:
    endpoint = await Endpoint.open(
        "127.0.0.1",
        0,
        tls=pki.node_tls(),
        settings=qrpc.QuicSettings(),
        limits=qrpc.Limits(),
        on_accept=lambda conn: None,
    )
    conn = await endpoint.connect(target.address, policy=PeerPolicy((pki.ca.cert,), pki.domain))
    return endpoint, conn


async def test_message_before_hello_closes_with_hello_required(
    make_node: NodeFactory, qrpc_pki: TestPKI
) -> None:
    target = await make_node()
    endpoint, conn = await _raw_link(qrpc_pki, target)
    try:
        closed = asyncio.get_running_loop().create_future()
        outgoing = [encode_frame(FrameKind.MESSAGE, msgspec.msgpack.encode(Count(0)), cmd_id=3)]
        conn.attach(
            lambda data: None, lambda: outgoing.pop() if outgoing else b"", closed.set_result
        )
        conn.want_flush()
        await asyncio.wait_for(closed, 5)
        assert conn.close_code == ErrorCode.HELLO_REQUIRED
        assert target.peers() == []
    finally:
        endpoint.close()


async def test_other_streams_close_with_bad_stream(
    make_node: NodeFactory, qrpc_pki: TestPKI
) -> None:
    target = await make_node()
    endpoint, conn = await _raw_link(qrpc_pki, target)
    try:
        closed = asyncio.get_running_loop().create_future()
        conn.attach(lambda data: None, lambda: b"", closed.set_result)
        conn.quic.send_stream_data(4, os.urandom(10))
        conn.want_flush()
        await asyncio.wait_for(closed, 5)
        assert conn.close_code == ErrorCode.BAD_STREAM
    finally:
        endpoint.close()


async def test_silent_hello_is_reaped_by_the_handshake_deadline(
    make_node: NodeFactory, qrpc_pki: TestPKI
) -> None:
    target = await make_node(limits=qrpc.Limits(handshake_timeout=0.5))
    endpoint, conn = await _raw_link(qrpc_pki, target)
    try:
        closed = asyncio.get_running_loop().create_future()
        conn.attach(lambda data: None, lambda: b"", closed.set_result)
        await asyncio.wait_for(closed, 5)
        assert conn.close_code == ErrorCode.HANDSHAKE_TIMEOUT
        assert target.endpoint.half_open == 0
    finally:
        endpoint.close()


async def test_broadcast_too_large_for_one_codec_queues_nothing_to_anyone(
    make_node: NodeFactory,
) -> None:
    message = Count(1, b"\xff" * 1500)  # msgpack: ~1.5 kB; JSON (base64): ~2 kB
    msgpack_size = len(get_codec("msgpack").encode(message))
    json_size = len(get_codec("json").encode(message))
    assert msgpack_size < json_size
    hub = await make_node(
        codecs=("msgpack", "json"), limits=qrpc.Limits(max_message_size=msgpack_size)
    )
    got: dict[str, list[int]] = {"msgpack": [], "json": []}
    spokes = {}
    for name in got:
        spoke = spokes[name] = await make_node(codecs=(name,))

        @spoke.handler(3)
        async def on_count(ctx: qrpc.Context, msg: Count, name: str = name) -> None:
            got[name].append(msg.seq)

        await connect(spoke, hub)
    with pytest.raises(qrpc.MessageTooLarge):
        await hub.broadcast(message)  # fits msgpack, not JSON: nobody gets it
    assert await hub.broadcast(Count(2)) == 2
    await eventually(lambda: got == {"msgpack": [2], "json": [2]})
