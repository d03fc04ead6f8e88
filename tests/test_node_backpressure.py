"""Backpressure: a blocked handler bounds what its sender can make the receiver buffer,
without slowing other peers."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

import qrpc
from qrpc.wire import HEADER_SIZE
from tests.conftest import Count, NodeFactory, Ping, Pong, connect, eventually

KiB = 1024
WINDOW = 256 * KiB
HIGH_WATER = 128 * KiB
LIMITS = qrpc.Limits(
    max_message_size=16 * KiB, inbound_window=WINDOW, outbound_high_water=HIGH_WATER
)


async def test_blocked_handler_bounds_buffering_and_other_peers_still_flow(
    make_node: NodeFactory,
) -> None:
    receiver = await make_node(limits=LIMITS)
    flooder = await make_node(limits=LIMITS)
    other = await make_node(limits=LIMITS)
    release = asyncio.Event()
    flooded: list[int] = []

    @receiver.handler(3)
    async def on_count(ctx: qrpc.Context, msg: Count) -> None:
        if ctx.peer_id == flooder.id:
            await release.wait()
            flooded.append(msg.seq)

    @receiver.handler(1)
    async def on_ping(ctx: qrpc.Context, msg: Ping) -> Pong:
        return Pong(msg.text)

    await connect(flooder, receiver)
    await connect(other, receiver)

    sent = 0
    payload = b"x" * 4000

    async def flood() -> None:
        nonlocal sent
        for seq in range(5000):  # 20 MB offered
            await flooder.send(receiver.id, Count(seq, payload))
            sent += 1

    flooding = asyncio.create_task(flood())
    peak = 0
    # While the flood is blocked, the other peer's requests are answered promptly.
    for i in range(50):
        reply = await other.request(receiver.id, Ping(f"still there {i}"), reply=Pong, timeout=2)
        assert reply == Pong(f"still there {i}")
        peak = max(peak, receiver.link_stats(flooder.id).inbound_bytes)
        await asyncio.sleep(0.005)
    assert not flooding.done(), "the sender was never pushed back"
    assert 0 < peak <= WINDOW
    # The sender queued at most its window of credit plus its high-water mark.
    frame = HEADER_SIZE + len(msgspec.msgpack.encode(Count(4999, payload)))
    assert sent * frame <= WINDOW + HIGH_WATER + 2 * frame
    assert flooder.link_stats(receiver.id).queued_bytes >= HIGH_WATER

    release.set()
    await asyncio.wait_for(flooding, 60)
    await eventually(lambda: len(flooded) == 5000, timeout=30)
    assert flooded == list(range(5000))
    assert receiver.link_stats(flooder.id).inbound_bytes <= WINDOW


async def test_send_waits_when_the_queue_is_full_and_fails_if_the_peer_leaves(
    make_node: NodeFactory,
) -> None:
    receiver = await make_node(limits=LIMITS)
    sender = await make_node(limits=LIMITS)

    @receiver.handler(3)
    async def stuck(ctx: qrpc.Context, msg: Count) -> None:
        await asyncio.Event().wait()

    await connect(sender, receiver)
    blocked = asyncio.Event()

    async def fill() -> None:
        for seq in range(1000):
            if sender.link_stats(receiver.id).queued_bytes >= HIGH_WATER:
                blocked.set()
            await sender.send(receiver.id, Count(seq, b"y" * 8000))

    task = asyncio.create_task(fill())
    await asyncio.wait_for(blocked.wait(), 10)
    await receiver.close()
    with pytest.raises((qrpc.PeerDisconnected, qrpc.PeerNotFound)):  # not: sends keep succeeding
        await asyncio.wait_for(task, 10)
