"""Links over an impaired network (seeded UDP proxy on loopback): loss, reordering,
duplication, delay and blackholes never lose, duplicate or reorder messages."""

from __future__ import annotations

import asyncio

import pytest

import qrpc
from qrpc.testing import Impairment, UdpProxy
from tests.conftest import Count, NodeFactory, Ping, Pong, eventually

SEEDS = [1, 2]


async def _through_proxy(
    make_node: NodeFactory, proxy_for: object, seed: int, **node_kwargs: object
) -> tuple[qrpc.Node, qrpc.Node, UdpProxy]:
    target = await make_node(**node_kwargs)
    proxy = UdpProxy(target.address, seed=seed, both=proxy_for)  # type: ignore[arg-type]
    host, port = await proxy.start()
    dialer = await make_node(peers=[qrpc.Peer(host, port, expected_id=target.id)], **node_kwargs)
    return target, dialer, proxy


@pytest.mark.parametrize("seed", SEEDS)
async def test_lossy_link_delivers_everything_once_in_order(
    make_node: NodeFactory, seed: int
) -> None:
    impairment = Impairment(loss=0.05, reorder=0.10, duplicate=0.02, delay=0.005, jitter=0.002)
    target, dialer, proxy = await _through_proxy(make_node, impairment, seed)
    got: list[int] = []

    @target.handler(3)
    async def on_count(ctx: qrpc.Context, msg: Count) -> None:
        got.append(msg.seq)

    try:
        await dialer.wait_for_peer(target.id, timeout=15)
        for seq in range(3000):
            await dialer.send(target.id, Count(seq, b"p" * 200))
        await eventually(lambda: len(got) >= 3000, timeout=30)
        assert got == list(range(3000)), f"seed {seed}"
        for stats in (proxy.upstream_stats, proxy.downstream_stats):
            assert stats.dropped > 0, f"seed {seed}: no loss happened"
            assert stats.reordered > 0, f"seed {seed}: no reordering happened"
        assert proxy.upstream_stats.duplicated > 0, f"seed {seed}"
    finally:
        await dialer.close()  # while the path still works, so GOODBYE gets through
        proxy.close()


async def test_handshakes_succeed_under_heavy_loss(make_node: NodeFactory) -> None:
    impairment = Impairment(loss=0.30, delay=0.0075)  # ~15 ms RTT
    target = await make_node()
    proxies = []
    dialers: list[qrpc.Node] = []
    try:
        for seed in range(8):
            proxy = UdpProxy(target.address, seed=100 + seed, both=impairment)
            host, port = await proxy.start()
            proxies.append(proxy)
            dialers.append(
                await make_node(
                    peers=[qrpc.Peer(host, port, expected_id=target.id)],
                    backoff=qrpc.Backoff(base=0.2, cap=1.0),
                    limits=qrpc.Limits(shutdown_timeout=1.0),
                )
            )
        await asyncio.gather(*(d.wait_for_peer(target.id, timeout=15) for d in dialers))
        assert sorted(target.peers()) == sorted(d.id for d in dialers)
        assert sum(p.upstream_stats.dropped for p in proxies) > 0
    finally:
        for dialer in dialers:
            await dialer.close()
        for proxy in proxies:
            proxy.close()


async def test_short_blackhole_is_survived(make_node: NodeFactory) -> None:
    settings = qrpc.QuicSettings(idle_timeout=5.0, keepalive_interval=1.0)
    target, dialer, proxy = await _through_proxy(make_node, Impairment(), seed=3, quic=settings)

    @target.handler(1)
    async def echo(ctx: qrpc.Context, msg: Ping) -> Pong:
        return Pong(msg.text)

    try:
        await dialer.wait_for_peer(target.id, timeout=10)
        events = dialer.events()
        proxy.up.impairment.blackhole = proxy.down.impairment.blackhole = True
        request = asyncio.create_task(
            dialer.request(target.id, Ping("through"), reply=Pong, timeout=10)
        )
        await asyncio.sleep(1.5)  # the outage itself: shorter than the 5 s idle timeout
        proxy.up.impairment.blackhole = proxy.down.impairment.blackhole = False
        assert await request == Pong("through")
        assert dialer.peers() == [target.id]
        events.close()
        assert [e async for e in events if isinstance(e, qrpc.Disconnected)] == []
    finally:
        await dialer.close()  # while the path still works, so GOODBYE gets through
        proxy.close()


async def test_long_blackhole_is_detected_and_the_link_comes_back(make_node: NodeFactory) -> None:
    settings = qrpc.QuicSettings(idle_timeout=1.0, keepalive_interval=0.3)
    fast = {
        "quic": settings,
        "limits": qrpc.Limits(connect_timeout=0.3),
        "backoff": qrpc.Backoff(base=0.2, cap=0.5),
    }
    target, dialer, proxy = await _through_proxy(make_node, Impairment(), seed=4, **fast)
    try:
        await dialer.wait_for_peer(target.id, timeout=10)
        events = dialer.events()
        proxy.up.impairment.blackhole = proxy.down.impairment.blackhole = True
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with asyncio.timeout(10):
            async for event in events:
                if isinstance(event, qrpc.Disconnected):
                    break
        # Declared down within the idle timeout (+ 1 s of slack for QUIC's PTO floor).
        assert loop.time() - started <= settings.idle_timeout + 1.0
        proxy.up.impairment.blackhole = proxy.down.impairment.blackhole = False
        healed = loop.time()
        await dialer.wait_for_peer(target.id, timeout=10)
        assert loop.time() - healed <= 0.5 + 0.3 + 1.0  # backoff cap + answer timeout + 1 s
    finally:
        await dialer.close()  # while the path still works, so GOODBYE gets through
        proxy.close()
