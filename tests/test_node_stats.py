"""`Node.stats()` and the counters of `LinkStats`, on real nodes."""

from __future__ import annotations

import asyncio

import qrpc
from qrpc.runtime.stats import NodeStats

from .conftest import Count, NodeFactory, Ping, Pong, connect, eventually


async def test_a_node_not_started_has_empty_stats(make_node: NodeFactory) -> None:
    node = await make_node(start=False)
    stats = node.stats()
    assert isinstance(stats, NodeStats)
    assert stats == NodeStats(node.id, 0.0, (), 0, 0, 0, 0)
    assert stats.peer_count == 0


async def test_counts_match_what_was_sent(make_node: NodeFactory) -> None:
    a, b = await make_node(), await make_node()
    handled: list[int] = []

    @b.handler(3)
    async def on_count(ctx: qrpc.Context, msg: Count) -> None:
        handled.append(msg.seq)

    @b.handler(1)
    async def on_ping(ctx: qrpc.Context, msg: Ping) -> Pong:
        return Pong(msg.text)

    await connect(a, b)
    for seq in range(25):
        await a.send(b.id, Count(seq, b"x" * 100))
    for _ in range(4):
        await a.request(b.id, Ping("hi"), reply=Pong, timeout=5)
    assert await a.broadcast(Count(99)) == 1
    await eventually(lambda: len(handled) == 26)

    sent, got = a.link_stats(b.id), b.link_stats(a.id)
    assert (sent.messages_out, sent.messages_in) == (30, 0)  # replies are not counted
    assert (got.messages_in, got.messages_out) == (30, 0)
    await eventually(lambda: a.link_stats(b.id).bytes_out == b.link_stats(a.id).bytes_in)
    await eventually(lambda: b.link_stats(a.id).bytes_out == a.link_stats(b.id).bytes_in)
    sent = a.link_stats(b.id)
    assert sent.bytes_out > 25 * 100
    assert sent.rtt is not None
    assert 0 < sent.rtt < 1
    assert sent.identity == a.identity(b.id).subject
    assert sent.dialed
    assert not got.dialed

    stats = b.stats()
    assert stats.node_id == b.id
    assert stats.peers == (b.link_stats(a.id),)
    assert (stats.messages_in, stats.messages_out) == (30, 0)
    assert stats.bytes_in == got.bytes_in
    assert stats.uptime > 0


async def test_totals_keep_the_links_that_closed(make_node: NodeFactory) -> None:
    hub = await make_node()
    first, second = await make_node(), await make_node()
    handled: list[int] = []

    @hub.handler(3)
    async def on_count(ctx: qrpc.Context, msg: Count) -> None:
        handled.append(msg.seq)

    await connect(first, hub)
    await connect(second, hub)
    for seq in range(5):
        await first.send(hub.id, Count(seq))
    for seq in range(7):
        await second.send(hub.id, Count(seq))
    await eventually(lambda: len(handled) == 12)
    before = hub.stats()
    assert [p.peer_id for p in before.peers] == sorted([first.id, second.id])
    assert before.messages_in == 12

    await first.close()
    await eventually(lambda: not hub.is_connected(first.id))
    after = hub.stats()
    assert [p.peer_id for p in after.peers] == [second.id]
    assert after.messages_in == 12
    assert after.bytes_in >= before.bytes_in
    assert after.peers[0].messages_in == 7


async def test_uptime_grows(make_node: NodeFactory) -> None:
    node = await make_node()
    first = node.stats().uptime
    await asyncio.sleep(0.05)
    assert node.stats().uptime >= first + 0.04
