"""An authenticated peer that misbehaves on its link: every case closes *its* link with a
specific code, and the node keeps serving its other peers promptly."""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

import msgspec
import pytest

import qrpc
from qrpc.testing import TestPKI
from qrpc.transport import pmtu
from qrpc.wire import FrameKind, encode_frame
from qrpc.wire.frames import encode_header
from tests.conftest import Count, NodeFactory, Ping, Pong, connect, eventually
from tests.hostile.rawpeer import RawClient, RawProtocol

PING = msgspec.msgpack.encode(Ping("x"))


async def _serving(make_node: NodeFactory, **kwargs: Any) -> tuple[qrpc.Node, qrpc.Node]:
    """A node with a Ping handler, and a well-behaved peer linked to it."""
    node = await make_node(**kwargs)

    @node.handler(1)
    async def on_ping(ctx: qrpc.Context, msg: Ping) -> Pong:
        return Pong(msg.text)

    other = await make_node()
    await connect(other, node)
    return node, other


async def _latencies(other: qrpc.Node, node: qrpc.Node, count: int) -> list[float]:
    """Request/reply times in seconds of `count` requests from `other` to `node`."""
    times = []
    for index in range(count):
        start = time.perf_counter()
        reply = await other.request(node.id, Ping(str(index)), reply=Pong, timeout=10)
        assert reply.text == str(index)
        times.append(time.perf_counter() - start)
        await asyncio.sleep(0.005)
    return times


async def _closed_with(peer: RawProtocol, timeout: float = 3.0) -> int:
    terminated = await asyncio.wait_for(asyncio.shield(peer.terminated), timeout)
    return int(terminated.error_code)


async def test_stop_sending_on_the_link_stream_closes_that_link_only(
    make_node: NodeFactory, qrpc_pki: TestPKI
) -> None:
    node, other = await _serving(make_node)
    async with RawClient.connect(qrpc_pki, node) as peer:
        await asyncio.wait_for(peer.got_hello.wait(), 5)
        peer.quic.stop_stream(0, 0x77)  # "stop sending to me on stream 0"
        peer.transmit()

        async def provoke() -> None:  # requests make the node write on the reset stream
            for index in range(200):
                if peer.terminated.done():
                    return
                peer.send_frame(
                    encode_frame(FrameKind.REQUEST, PING, cmd_id=1, request_id=index + 1)
                )
                await asyncio.sleep(0.005)

        provoking = asyncio.create_task(provoke())
        try:
            times = await _latencies(other, node, 40)
        finally:
            provoking.cancel()
        assert max(times) < 1.0, f"another peer waited {max(times):.1f} s for a reply"
        assert await _closed_with(peer) == qrpc.ErrorCode.STREAM_RESET
    assert node.peers() == [other.id]


async def test_reset_of_the_link_stream_closes_the_link(
    make_node: NodeFactory, qrpc_pki: TestPKI
) -> None:
    node, other = await _serving(make_node)
    async with RawClient.connect(qrpc_pki, node) as peer:
        await asyncio.wait_for(peer.got_hello.wait(), 5)
        peer.quic.reset_stream(0, 0x77)
        peer.transmit()
        assert await _closed_with(peer) == qrpc.ErrorCode.STREAM_RESET
    assert (await other.request(node.id, Ping("ok"), reply=Pong, timeout=5)).text == "ok"


async def test_credit_beyond_what_was_granted_closes_with_flow_control(
    make_node: NodeFactory, qrpc_pki: TestPKI
) -> None:
    """A peer may only return credit for bytes it received: a CREDIT frame that
    grants more than the window is a flow-control violation, not extra buffer room."""
    node = await make_node()
    async with RawClient.connect(qrpc_pki, node) as peer:
        await asyncio.wait_for(peer.got_hello.wait(), 5)
        peer.send_frame(encode_frame(FrameKind.CREDIT, (64 * 1024 * 1024).to_bytes(4, "big")))
        assert await _closed_with(peer) == qrpc.ErrorCode.FLOW_CONTROL


async def test_a_peer_that_never_reads_cannot_make_send_buffer_without_bound(
    make_node: NodeFactory, qrpc_pki: TestPKI
) -> None:
    """The peer advertises a 4 GiB window and never lets QUIC data through (it stops
    acknowledging): `send` must block once our own high-water mark is queued."""
    node = await make_node(limits=qrpc.Limits(outbound_high_water=256 * 1024))
    async with RawClient.connect(qrpc_pki, node, window=0xFFFF_FFFF) as peer:
        await asyncio.wait_for(peer.got_hello.wait(), 5)
        await node.wait_for_peer(peer.node_id, timeout=5)
        peer.stop_reading()
        sent = 0
        payload = b"x" * 60_000

        async def fill() -> None:
            nonlocal sent
            for _ in range(10_000):  # 600 MB if nothing pushes back
                await node.send(peer.node_id, Count(0, payload))
                sent += len(payload)

        filling = asyncio.create_task(fill())
        with pytest.raises(TimeoutError):  # send() must be blocked, not done
            await asyncio.wait_for(asyncio.shield(filling), 3)
        filling.cancel()
        assert sent < 16 * 1024 * 1024, f"send queued {sent / 2**20:.0f} MiB without blocking"


@pytest.mark.parametrize(
    ("frames", "code"),
    [
        (encode_frame(FrameKind.RESPONSE, request_id=99), qrpc.ErrorCode.PROTOCOL_VIOLATION),
        (
            encode_frame(FrameKind.ERROR, b"\x00\x00\x00\x01forged", request_id=5),
            qrpc.ErrorCode.PROTOCOL_VIOLATION,
        ),
        (encode_header(200, 0), qrpc.ErrorCode.UNKNOWN_FRAME_KIND),
        (b"\x00" * 64, qrpc.ErrorCode.UNSUPPORTED_VERSION),
    ],
    ids=["response-never-asked", "error-never-asked", "unknown-kind", "garbage-after-hello"],
)
async def test_forged_and_garbage_frames_after_hello_close_the_link(
    make_node: NodeFactory, qrpc_pki: TestPKI, frames: bytes, code: int
) -> None:
    node, other = await _serving(make_node)
    async with RawClient.connect(qrpc_pki, node) as peer:
        await asyncio.wait_for(peer.got_hello.wait(), 5)
        peer.send_frame(frames)
        assert await _closed_with(peer) == code
    assert (await other.request(node.id, Ping("ok"), reply=Pong, timeout=5)).text == "ok"


async def test_a_flood_beyond_the_window_closes_with_flow_control_and_others_stay_fast(
    make_node: NodeFactory, qrpc_pki: TestPKI
) -> None:
    """A peer that ignores credit and floods messages at a stuck handler is closed
    with FLOW_CONTROL once it passes its window; the other peer's requests stay fast."""
    limits = qrpc.Limits(inbound_window=256 * 1024, max_message_size=64 * 1024)
    node, other = await _serving(make_node, limits=limits)

    @node.handler(3)
    async def stuck(ctx: qrpc.Context, msg: Count) -> None:
        await asyncio.Event().wait()

    count = msgspec.msgpack.encode(Count(0, b"y" * 100))
    async with RawClient.connect(qrpc_pki, node) as peer:
        await asyncio.wait_for(peer.got_hello.wait(), 5)
        flood = encode_frame(FrameKind.MESSAGE, count, cmd_id=3) * 400  # 48 KB a write
        for _ in range(20):  # 960 KB: well past the 256 KiB window
            peer.send_frame(flood)
            await asyncio.sleep(0)
        times = await _latencies(other, node, 20)
        assert await _closed_with(peer) == qrpc.ErrorCode.FLOW_CONTROL
    assert statistics.median(times) < 0.2
    assert node.peers() == [other.id]


async def test_opening_other_streams_closes_with_bad_stream(
    make_node: NodeFactory, qrpc_pki: TestPKI
) -> None:
    node, other = await _serving(make_node)
    async with RawClient.connect(qrpc_pki, node) as peer:
        await asyncio.wait_for(peer.got_hello.wait(), 5)
        for stream_id in range(4, 4 * 50, 4):  # many client-initiated bidirectional streams
            peer.quic.send_stream_data(stream_id, b"junk")
        peer.transmit()
        assert await _closed_with(peer) == qrpc.ErrorCode.BAD_STREAM
    assert (await other.request(node.id, Ping("ok"), reply=Pong, timeout=5)).text == "ok"


async def test_a_datagram_frame_that_is_no_path_probe_closes_with_bad_datagram(
    make_node: NodeFactory, qrpc_pki: TestPKI
) -> None:
    node, other = await _serving(make_node)
    async with RawClient.connect(qrpc_pki, node, datagrams=True) as peer:
        await asyncio.wait_for(peer.got_hello.wait(), 5)
        peer.quic.send_datagram_frame(b"\x07junk")
        peer.transmit()
        assert await _closed_with(peer) == qrpc.ErrorCode.BAD_DATAGRAM
    assert node.peers() == [other.id]


async def test_path_probes_are_answered_at_a_bounded_rate(
    make_node: NodeFactory, qrpc_pki: TestPKI
) -> None:
    node, _ = await _serving(make_node)
    async with RawClient.connect(qrpc_pki, node, datagrams=True) as peer:
        await asyncio.wait_for(peer.got_hello.wait(), 5)
        started = time.monotonic()
        for index in range(200):  # a flood of well-formed probes
            peer.quic.send_datagram_frame(b"\x01" + index.to_bytes(4, "big") + bytes(100))
        peer.transmit()
        first = b"\x02" + (0).to_bytes(4, "big")
        await eventually(lambda: first in peer.datagrams)  # answered with its token
        await _request_round_trip(peer)  # everything sent before it was read
        elapsed = time.monotonic() - started
        answers = [d for d in peer.datagrams if d[:1] == b"\x02"]
        allowed = pmtu.ECHOES_PER_SECOND * (1 + int(elapsed))
        assert 0 < len(answers) <= allowed < 200
        assert not peer.terminated.done()


async def test_a_peer_that_takes_no_datagram_frames_gets_no_probes(
    make_node: NodeFactory, qrpc_pki: TestPKI
) -> None:
    node, _ = await _serving(make_node)
    async with RawClient.connect(qrpc_pki, node) as peer:  # no max_datagram_frame_size
        await asyncio.wait_for(peer.got_hello.wait(), 5)
        await _request_round_trip(peer)
        link = node.link_stats(peer.node_id)
        assert link.datagram_size == pmtu.BASE_SIZE
        assert not peer.terminated.done()  # aioquic closes on an unannounced DATAGRAM


async def _request_round_trip(peer: RawProtocol) -> None:
    """Send a request and wait for its reply: the node has read what came before."""
    before = len(peer.frames)
    peer.send_frame(encode_frame(FrameKind.REQUEST, PING, cmd_id=1, request_id=99))
    await eventually(lambda: any(f.kind is FrameKind.RESPONSE for f in peer.frames[before:]))
