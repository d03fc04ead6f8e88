"""`Network`: a whole qrpc network on loopback for tests, every link through a fault proxy.

Nodes get certificates from a `TestPKI` and settings that notice a dead link
within about a second (`TEST_DEFAULTS`).  ``link(a, b)`` makes `a` dial `b`
through its own seeded `UdpProxy`, so any pair of linked nodes can be
impaired, partitioned and healed; ``restart(b)`` brings `b` back with the same
identity, port, settings and handlers.  The pytest fixture ``qrpc_network``
builds these and closes them at teardown (`qrpc.testing.pytest_plugin`).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from qrpc.config import Limits, PeerAddress, QuicSettings
from qrpc.node import Node
from qrpc.policy import Backoff
from qrpc.registry import Registry
from qrpc.testing.pki import TestPKI
from qrpc.testing.proxy import Impairment, UdpProxy

__all__ = ["TEST_DEFAULTS", "Network", "NetworkFactory"]

TEST_DEFAULTS: Final[Mapping[str, Any]] = {
    "autoload_plugins": False,  # only the plugins a test names
    "quic": QuicSettings(keepalive_interval=0.2, dead_peer_timeout=1.0),
    "limits": Limits(connect_timeout=0.5, shutdown_timeout=1.0),
    "backoff": Backoff(base=0.05, factor=2.0, cap=0.5, stable_after=0.5),
}
"""`Node` keyword arguments every network node starts from (a test's own win):
dead links noticed within about 1 s, redials within 0.5 s, shutdown within 1 s."""


@dataclass
class _Link:
    dialer: str
    target: str
    proxy: UdpProxy


@dataclass
class _Member:
    node: Node
    kwargs: dict[str, Any]
    port: int


class Network:
    """Nodes on 127.0.0.1 that share `registry` and trust one CA.

    Args:
        registry: the application's registry, given to every node.
        pki: issues each node's certificate.
        host: the loopback address nodes and proxies bind.
    """

    def __init__(self, registry: Registry, *, pki: TestPKI, host: str = "127.0.0.1") -> None:
        self.registry = registry
        self.pki = pki
        self.host = host
        self._members: dict[str, _Member] = {}
        self._links: dict[frozenset[str], _Link] = {}
        self._retired: list[Node] = []
        self._seeds = itertools.count(1)
        self._closed = False

    # -- building ------------------------------------------------------------------

    async def node(self, **node_kwargs: Any) -> Node:
        """Start one node (not linked to anyone) and return it.

        `node_kwargs` go to `qrpc.Node` over `TEST_DEFAULTS`; without ``tls``
        the node gets a fresh certificate from the network's CA.
        """
        self._check_open()
        kwargs = {**TEST_DEFAULTS, **node_kwargs}
        kwargs.setdefault("tls", self.pki.node_tls())
        kwargs.setdefault("listen", (self.host, 0))
        node = Node(self.registry, **kwargs)
        await node.start()
        self._members[node.id] = _Member(node, kwargs, node.address[1])
        return node

    async def nodes(self, count: int, *, timeout: float = 10.0, **node_kwargs: Any) -> list[Node]:
        """Start `count` nodes and link every pair; return them once all links are up."""
        if count < 1:
            raise ValueError(f"count must be at least 1, got {count}")
        started = [await self.node(**node_kwargs) for _ in range(count)]
        pairs = itertools.combinations(started, 2)
        await asyncio.gather(*(self.link(later, first, timeout=timeout) for first, later in pairs))
        return started

    async def link(
        self, a: Node, b: Node, *, seed: int | None = None, timeout: float = 10.0
    ) -> None:
        """Make `a` dial `b` through a new proxy; return once both ends see the link.

        The proxy is seeded with `seed`, else with the network's link count
        (1, 2, ...), so a test gets the same seeds whatever ran before it.

        Raises:
            ValueError: a node is not in this network, or the pair is already linked.
            TimeoutError: the link was not up within `timeout` seconds.
        """
        self._check_open()
        self._member(a), self._member(b)
        key = frozenset((a.id, b.id))
        if len(key) == 1:
            raise ValueError("a node cannot be linked to itself")
        if key in self._links:
            raise ValueError(f"{a.id} and {b.id} are already linked")
        proxy = UdpProxy(
            (self.host, self._members[b.id].port), seed=next(self._seeds) if seed is None else seed
        )
        await proxy.start(self.host)
        self._links[key] = _Link(a.id, b.id, proxy)
        a.add_peer(PeerAddress(*proxy.address, expected_id=b.id))
        await self.wait_linked(a, b, timeout=timeout)

    # -- faults --------------------------------------------------------------------

    def proxy(self, a: Node, b: Node) -> UdpProxy:
        """The proxy between `a` and `b` (its ``upstream_stats`` / ``downstream_stats``
        count what it did; upstream is dialer -> target)."""
        link = self._links.get(frozenset((a.id, b.id)))
        if link is None:
            raise ValueError(f"{a.id} and {b.id} are not linked; call link(a, b) first")
        return link.proxy

    def impair(
        self,
        a: Node,
        b: Node,
        *,
        loss: float = 0.0,
        reorder: float = 0.0,
        duplicate: float = 0.0,
        delay: float = 0.0,
        jitter: float = 0.0,
        corrupt: float = 0.0,
        seed: int | None = None,
    ) -> None:
        """Impair both directions between `a` and `b` from now on (replacing any
        earlier impairment).  Shares are 0..1, times in seconds; `reorder` holds
        that share of datagrams back 20 ms.  With `seed`, the faults restart
        from it: the same seed gives the n-th datagram each way the same fate."""
        impairment = Impairment(
            loss=loss,
            reorder=reorder,
            duplicate=duplicate,
            delay=delay,
            jitter=jitter,
            corrupt=corrupt,
        )
        self.proxy(a, b).configure(impairment, seed=seed)

    def partition(self, a: Node, b: Node) -> None:
        """Drop every datagram between `a` and `b` until `heal`.  The link dies
        after the dead-peer timeout (about 1 s with `TEST_DEFAULTS`)."""
        self.proxy(a, b).configure(Impairment(blackhole=True))

    def heal(self, a: Node, b: Node) -> None:
        """End a partition or impairment between `a` and `b`: the dialer redials
        (within its backoff) if the link died meanwhile."""
        self.proxy(a, b).configure(Impairment())

    # -- waiting -------------------------------------------------------------------

    async def wait_linked(self, a: Node, b: Node, *, timeout: float = 10.0) -> None:
        """Return once `a` and `b` both see a live link to each other.

        Raises:
            TimeoutError: not within `timeout` seconds (says which side is missing).
        """
        await self._wait(a, b, timeout, want=True)

    async def wait_unlinked(self, a: Node, b: Node, *, timeout: float = 10.0) -> None:
        """Return once neither `a` nor `b` sees a link to the other.

        Raises:
            TimeoutError: not within `timeout` seconds.
        """
        await self._wait(a, b, timeout, want=False)

    async def _wait(self, a: Node, b: Node, timeout: float, *, want: bool) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            a, b = self._current(a), self._current(b)
            sides = (a.is_connected(b.id), b.is_connected(a.id))
            if sides == (want, want):
                return
            if loop.time() >= deadline:
                state = f"{a.id} sees {b.id}: {sides[0]}, {b.id} sees {a.id}: {sides[1]}"
                raise TimeoutError(
                    f"{'link' if want else 'no link'} between the nodes after {timeout} s ({state})"
                )
            await asyncio.sleep(0.01)

    # -- restarting ----------------------------------------------------------------

    async def restart(self, node: Node, *, crash: bool = False, timeout: float = 10.0) -> Node:
        """Close `node` and start a new `Node` with the same identity, port,
        arguments, state and handlers; return it once it is linked again to
        every node it was linked to.  Use the returned node from then on.

        Args:
            node: a node of this network (running, or closed by the test).
            crash: drop the socket first without telling anyone (no GOODBYE),
                as a killed process would.
            timeout: seconds to wait for every link to come back.

        Raises:
            TimeoutError: some link was not back within `timeout` seconds.
        """
        member = self._member(node, closed_ok=True)
        if crash and not node.closed:
            node.endpoint.abort()
        await node.close()
        self._retired.append(node)
        kwargs = {**member.kwargs, "listen": (self.host, member.port)}
        kwargs["peers"] = [*kwargs.get("peers", ()), *self._dials_of(node.id)]
        reborn = Node(self.registry, **kwargs)
        for cmd_id, spec in node.handlers.items():
            reborn.handler(cmd_id, concurrency=spec.concurrency)(spec.fn)
        await reborn.start()
        self._members[node.id] = _Member(reborn, member.kwargs, member.port)
        partners = [self._members[other].node for other in self._partners(node.id)]
        await asyncio.gather(*(self.wait_linked(reborn, p, timeout=timeout) for p in partners))
        return reborn

    def _dials_of(self, node_id: str) -> Iterable[PeerAddress]:
        for link in self._links.values():
            if link.dialer == node_id:
                yield PeerAddress(*link.proxy.address, expected_id=link.target)

    def _partners(self, node_id: str) -> list[str]:
        return [other for key in self._links if node_id in key for other in key - {node_id}]

    # -- teardown ------------------------------------------------------------------

    @property
    def members(self) -> list[Node]:
        """The current nodes (restarted ones replaced by their new node)."""
        return [member.node for member in self._members.values()]

    async def close(self) -> None:
        """Heal every link, close every node, then every proxy; safe to call twice."""
        self._closed = True
        for proxy in self._proxies():
            proxy.configure(Impairment())  # so GOODBYEs get through
        await asyncio.gather(*(node.close() for node in self.members))
        for proxy in self._proxies():
            proxy.close()

    def leftovers(self) -> list[str]:
        """What is still open after `close`: nodes, sockets, proxies (empty when clean)."""
        left = []
        for node in [*self._retired, *self.members]:
            if not node.closed:
                left.append(f"node {node.id} is not closed")
            elif not node.endpoint.closed:
                left.append(f"the socket of node {node.id} is still open")
        left += [f"proxy {p.address} is open" for p in self._proxies() if not p.closed]
        return left

    # -- helpers -------------------------------------------------------------------

    def _member(self, node: Node, *, closed_ok: bool = False) -> _Member:
        member = self._members.get(node.id)
        if member is None or member.node is not node:
            raise ValueError(
                f"{node!r} is not a node of this network"
                " (after restart(), use the node it returned)"
            )
        if node.closed and not closed_ok:
            raise ValueError(f"node {node.id} is closed; restart(node) brings it back")
        return member

    def _proxies(self) -> list[UdpProxy]:
        return [link.proxy for link in self._links.values()]

    def _current(self, node: Node) -> Node:
        member = self._members.get(node.id)
        return member.node if member is not None else node

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the network is closed")


NetworkFactory = Callable[[Registry], Network]
"""The type of the ``qrpc_network`` fixture: ``def test_x(qrpc_network: NetworkFactory)``."""
