"""Links over an impaired network (the seeded UDP proxy of `qrpc.testing` on loopback):
loss, reordering, duplication, delay and blackholes never lose, duplicate or reorder
messages."""

from __future__ import annotations

import asyncio

import pytest

import qrpc
from qrpc.testing import Impairment, NetworkFactory, UdpProxy
from tests.conftest import Count, NodeFactory, Ping, Pong, eventually

SEEDS = [1, 2]


@pytest.mark.parametrize("seed", SEEDS)
async def test_lossy_link_delivers_everything_once_in_order(
    qrpc_network: NetworkFactory, registry: qrpc.Registry, seed: int
) -> None:
    net = qrpc_network(registry)
    target, dialer = await net.nodes(2)  # the later node dials
    got: list[int] = []

    @target.handler(3)
    async def on_count(ctx: qrpc.Context, msg: Count) -> None:
        got.append(msg.seq)

    net.impair(
        dialer,
        target,
        loss=0.05,
        reorder=0.10,
        duplicate=0.02,
        delay=0.005,
        jitter=0.002,
        seed=seed,
    )
    for seq in range(3000):
        await dialer.send(target.id, Count(seq, b"p" * 2000))  # hundreds of datagrams
    await eventually(lambda: len(got) >= 3000, timeout=30)
    assert got == list(range(3000)), f"seed {seed}"
    proxy = net.proxy(dialer, target)
    for stats in (proxy.upstream_stats, proxy.downstream_stats):
        assert stats.dropped > 0, f"seed {seed}: no loss happened"
        assert stats.reordered > 0, f"seed {seed}: no reordering happened"
    assert proxy.upstream_stats.duplicated > 0, f"seed {seed}"


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


async def test_short_blackhole_is_survived(
    qrpc_network: NetworkFactory, registry: qrpc.Registry
) -> None:
    net = qrpc_network(registry)
    settings = qrpc.QuicSettings(idle_timeout=5.0, keepalive_interval=1.0)
    target = await net.node(quic=settings)
    dialer = await net.node(quic=settings)
    await net.link(dialer, target)

    @target.handler(1)
    async def echo(ctx: qrpc.Context, msg: Ping) -> Pong:
        return Pong(msg.text)

    events = dialer.events()
    net.partition(dialer, target)
    request = asyncio.create_task(
        dialer.request(target.id, Ping("through"), reply=Pong, timeout=10)
    )
    await asyncio.sleep(1.5)  # the outage itself: shorter than the 5 s idle timeout
    net.heal(dialer, target)
    assert await request == Pong("through")
    assert dialer.peers() == [target.id]
    events.close()
    assert [e async for e in events if isinstance(e, qrpc.Disconnected)] == []


async def test_long_blackhole_is_detected_and_the_link_comes_back(
    qrpc_network: NetworkFactory, registry: qrpc.Registry
) -> None:
    net = qrpc_network(registry)
    settings = qrpc.QuicSettings(idle_timeout=1.0, keepalive_interval=0.3)
    fast = {
        "quic": settings,
        "limits": qrpc.Limits(connect_timeout=0.3),
        "backoff": qrpc.Backoff(base=0.2, cap=0.5),
    }
    target = await net.node(**fast)
    dialer = await net.node(**fast)
    await net.link(dialer, target)
    events = dialer.events()
    net.partition(dialer, target)
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with asyncio.timeout(10):
        async for event in events:
            if isinstance(event, qrpc.Disconnected):
                break
    # Declared down within the idle timeout (+ 1 s of slack for QUIC's PTO floor).
    assert loop.time() - started <= settings.idle_timeout + 1.0
    net.heal(dialer, target)
    healed = loop.time()
    await dialer.wait_for_peer(target.id, timeout=10)
    assert loop.time() - healed <= 0.5 + 0.3 + 1.0  # backoff cap + answer timeout + 1 s
