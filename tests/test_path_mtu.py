"""Datagram size: what aioquic can build, and what the path carries."""

from __future__ import annotations

import asyncio

import pytest
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection

import qrpc
from qrpc.config import MAX_DATAGRAM_SIZE
from qrpc.testing import Impairment, UdpProxy
from qrpc.transport import pmtu
from qrpc.transport.pmtu import BASE_SIZE, PathMtuSearch

from .conftest import Count, NodeFactory, connect, eventually


def test_a_datagram_size_aioquic_cannot_build_is_refused() -> None:
    # aioquic writes a STREAM frame's length in two bytes (at most 16383): a
    # larger packet is built with a corrupt length and the peer closes the link.
    with pytest.raises(qrpc.ConfigError, match="16383"):
        qrpc.QuicSettings(max_datagram_size=16384)


async def test_loopback_links_send_the_largest_datagrams_aioquic_builds(
    make_node: NodeFactory,
) -> None:
    a, b = await make_node(), await make_node()
    got: list[bytes] = []

    @b.handler(3)
    async def on_count(ctx: qrpc.Context, msg: Count) -> None:
        got.append(msg.payload)

    await connect(a, b)
    await eventually(lambda: a.link_stats(b.id).datagram_size == MAX_DATAGRAM_SIZE)
    await eventually(lambda: b.link_stats(a.id).datagram_size == MAX_DATAGRAM_SIZE)
    payload = bytes(range(256)) * 1024
    for seq in range(4):
        await a.send(b.id, Count(seq, payload))
    await eventually(lambda: len(got) == 4)
    assert got == [payload] * 4


async def _counting(make_node: NodeFactory) -> tuple[qrpc.Node, qrpc.Node, list[int]]:
    """Two nodes; the second records the seq of every `Count` it handles."""
    a, b = await make_node(), await make_node()
    got: list[int] = []

    @b.handler(3)
    async def on_count(ctx: qrpc.Context, msg: Count) -> None:
        got.append(msg.seq)

    return a, b, got


async def _through(proxy_to: qrpc.Node, dialer: qrpc.Node, impairment: Impairment) -> UdpProxy:
    proxy = UdpProxy(proxy_to.address, seed=1, both=impairment)
    host, port = await proxy.start()
    dialer.add_peer(qrpc.Peer(host, port, expected_id=proxy_to.id))
    await dialer.wait_for_peer(proxy_to.id, timeout=5)
    return proxy


async def test_a_path_that_drops_large_datagrams_settles_on_what_it_carries(
    make_node: NodeFactory,
) -> None:
    """Loopback says 65536, but a hop in the middle carries 1500-byte packets."""
    a, b, got = await _counting(make_node)
    proxy = await _through(b, a, Impairment(max_datagram=1500 - 28))
    try:
        payload = b"x" * 300_000
        for seq in range(10):  # during the search: nothing may be lost
            await a.send(b.id, Count(seq, payload))
        await eventually(lambda: a.link_stats(b.id).datagram_size == 1500 - 28)
        await eventually(lambda: b.link_stats(a.id).datagram_size == 1500 - 28)
        await eventually(lambda: len(got) == 10)
        assert got == list(range(10))
        assert proxy.upstream_stats.too_large > 0  # larger sizes were tried
        assert proxy.downstream_stats.too_large > 0
    finally:
        await a.close()  # while the proxy still carries its goodbye
        proxy.close()


async def test_a_path_that_stops_carrying_large_datagrams_falls_back(
    make_node: NodeFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pmtu, "REVALIDATE_INTERVAL", 0.2)
    a, b, got = await _counting(make_node)
    proxy = await _through(b, a, Impairment())
    try:
        await eventually(lambda: a.link_stats(b.id).datagram_size == MAX_DATAGRAM_SIZE)
        proxy.configure(Impairment(max_datagram=1500 - 28))  # the route changed
        sizes: set[int] = set()

        def settled() -> bool:
            sizes.add(a.link_stats(b.id).datagram_size)
            return a.link_stats(b.id).datagram_size == 1500 - 28

        for seq in range(20):
            await a.send(b.id, Count(seq, b"y" * 20_000))
        await eventually(settled, timeout=10, interval=0.001)
        await eventually(lambda: len(got) == 20, timeout=10)
        assert got == list(range(20))
        assert BASE_SIZE in sizes  # it fell back to the floor, then searched again
    finally:
        await a.close()  # while the proxy still carries its goodbye
        proxy.close()


async def test_the_ceiling_caps_the_search(make_node: NodeFactory) -> None:
    quic = qrpc.QuicSettings(max_datagram_size=4000)
    a, b = await make_node(quic=quic), await make_node()
    await connect(a, b)
    await eventually(lambda: a.link_stats(b.id).datagram_size == 4000)
    await eventually(lambda: b.link_stats(a.id).datagram_size == MAX_DATAGRAM_SIZE)


async def test_without_discovery_the_configured_size_is_sent_from_the_start(
    make_node: NodeFactory,
) -> None:
    quic = qrpc.QuicSettings(max_datagram_size=9000, path_mtu_discovery=False)
    a, b = await make_node(quic=quic), await make_node(quic=quic)
    await connect(a, b)
    assert a.link_stats(b.id).datagram_size == 9000
    assert b.link_stats(a.id).datagram_size == 9000


def test_the_search_tries_the_ceiling_then_plateaus_below_it() -> None:
    search = PathMtuSearch(16383, header=28)
    assert search.target == 16383
    for _ in range(pmtu.MAX_PROBES):
        search.lost()
    assert (search.target, search.current) == (9000 - 28, BASE_SIZE)
    for _ in range(pmtu.MAX_PROBES):
        search.lost()
    assert search.target == 1500 - 28
    search.confirmed()
    assert _state(search) == (None, 1500 - 28)


def _state(search: PathMtuSearch) -> tuple[int | None, int]:
    return search.target, search.current


def test_one_lost_probe_is_not_a_verdict() -> None:
    search = PathMtuSearch(9000 - 48, header=48)
    for _ in range(pmtu.MAX_PROBES - 1):
        search.lost()
    assert search.target == 9000 - 48
    search.confirmed()
    assert search.current == 9000 - 48


def test_a_size_in_use_that_fails_revalidation_falls_back_to_the_floor() -> None:
    search = PathMtuSearch(16383, header=28)
    search.confirmed()
    assert search.revalidate()
    assert search.target == 16383
    search.lost()
    assert search.current == 16383  # one loss: still in use
    for _ in range(pmtu.MAX_PROBES - 1):
        search.lost()
    assert (search.current, search.target) == (BASE_SIZE, 16383)  # searching again


def test_a_search_that_found_nothing_has_nothing_to_revalidate() -> None:
    search = PathMtuSearch(1250, header=28)
    for _ in range(pmtu.MAX_PROBES):
        search.lost()
    assert (search.target, search.current) == (None, BASE_SIZE)
    assert not search.revalidate()
    search.restart()
    assert search.target == 1250


@pytest.mark.parametrize("path", pmtu.PATH_PRIVATE_API)
def test_the_aioquic_internals_the_prober_sets_still_exist(path: str) -> None:
    """If this fails after an aioquic upgrade, re-check how the new release sizes
    its packets before adapting `qrpc.transport.pmtu`."""
    owner: object = QuicConnection(configuration=QuicConfiguration(is_client=True))
    for name in path.split("."):
        assert hasattr(owner, name), f"QuicConnection().{path} is gone"
        owner = getattr(owner, name)


async def test_a_black_hole_is_noticed_by_the_lost_packets_not_the_revalidation_timer(
    make_node: NodeFactory,
) -> None:
    """Data in flight when the path stops carrying the size makes QUIC probe (PTO);
    two probe timeouts in a row start the revalidation at once instead of up to
    `REVALIDATE_INTERVAL` (10 s) later."""
    a, b, got = await _counting(make_node)
    proxy = await _through(b, a, Impairment())
    try:
        await eventually(lambda: a.link_stats(b.id).datagram_size == MAX_DATAGRAM_SIZE)
        proxy.configure(Impairment(max_datagram=1500 - 28))
        loop = asyncio.get_running_loop()
        started = loop.time()
        for seq in range(10):
            await a.send(b.id, Count(seq, b"z" * 50_000))
        await eventually(lambda: a.link_stats(b.id).datagram_size < MAX_DATAGRAM_SIZE, timeout=5)
        assert loop.time() - started < pmtu.REVALIDATE_INTERVAL / 2
        await eventually(lambda: len(got) == 10, timeout=10)
        assert got == list(range(10))
    finally:
        await a.close()
        proxy.close()
