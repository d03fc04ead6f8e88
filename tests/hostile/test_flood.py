"""A 20 s flood from one source -- Initial-shaped noise and real ClientHellos -- while a
legitimate peer works: new peers still connect within 1 s, the existing peer's request
p99 stays under 20 ms, and the node's memory stays inside its bound."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest

import qrpc
from tests.conftest import NodeFactory, Ping, Pong
from tests.hostile.test_unauthenticated import RSS_BOUND, _rss

FLOODER = Path(__file__).with_name("flooder.py")
SECONDS = 20.0
RATE = 2000  # datagrams per second


@pytest.mark.slow
async def test_a_20_s_flood_leaves_legitimate_peers_fast(make_node: NodeFactory) -> None:
    node = await make_node()

    @node.handler(1)
    async def on_ping(ctx: qrpc.Context, msg: Ping) -> Pong:
        return Pong(msg.text)

    worker = await make_node(listen=("127.0.0.2", 0))
    worker.add_peer(qrpc.Peer(*node.address, expected_id=node.id))
    await worker.wait_for_peer(node.id, timeout=5)
    before = _rss()
    flood = await asyncio.create_subprocess_exec(
        sys.executable,
        str(FLOODER),
        *map(str, (*node.address, SECONDS, RATE, 20)),
        stdout=asyncio.subprocess.PIPE,
    )
    loop = asyncio.get_running_loop()
    end = loop.time() + SECONDS - 1.0
    times: list[float] = []
    connects: list[float] = []
    next_connect = loop.time() + 2.0
    try:
        for index in range(100_000):  # bounded by the flood's end, about 1,500 requests
            if loop.time() >= end:
                break
            start = time.perf_counter()
            reply = await worker.request(node.id, Ping(str(index)), reply=Pong, timeout=5)
            times.append(time.perf_counter() - start)
            assert reply.text == str(index)
            if loop.time() >= next_connect:  # a new legitimate peer, every few seconds
                newcomer = await make_node(listen=("127.0.0.2", 0))
                began = loop.time()
                newcomer.add_peer(qrpc.Peer(*node.address, expected_id=node.id))
                await newcomer.wait_for_peer(node.id, timeout=5)
                connects.append(loop.time() - began)
                await newcomer.close()
                next_connect = loop.time() + 4.0
            await asyncio.sleep(0.01)
        grew = _rss() - before
    finally:
        output, _ = await asyncio.wait_for(flood.communicate(), 30)
    sent = int(output.split()[1])
    assert sent >= SECONDS * RATE * 0.8, f"the flooder sent only {sent} datagrams"
    assert node.endpoint.stats.datagrams_in >= sent * 0.5
    times.sort()
    p99 = times[int(len(times) * 0.99) - 1]
    stats = node.endpoint.stats
    print(  # shown with pytest -s: the figures docs/security.md quotes
        f"flood: {sent} datagrams, {len(times)} requests, "
        f"p50 {times[len(times) // 2] * 1000:.2f} ms p99 {p99 * 1000:.2f} ms, "
        f"connects {[round(c, 3) for c in connects]} s, "
        f"RSS +{grew / 2**20:.1f} MiB, dropped {stats.initials_dropped}, "
        f"undecryptable {stats.initials_undecryptable}, replies {stats.stateless_replies}"
    )
    assert len(connects) >= 3
    assert max(connects) < 1.0, f"new peers took {connects} s to connect"
    assert p99 < 0.020, f"request p99 {p99 * 1000:.1f} ms during the flood"
    assert grew < RSS_BOUND, f"RSS grew {grew / 2**20:.0f} MiB"
