"""`UdpProxy`: a seeded user-space UDP impairment proxy for fault-injection tests.

Not every machine has netem, and loopback has no loss: the proxy sits between
a dialer and a node and, per direction, drops, duplicates, reorders, delays,
corrupts or blackholes datagrams, or drops those above a size::

    proxy = UdpProxy(node.address, seed=7, both=Impairment(loss=0.05, delay=0.01))
    host, port = await proxy.start()
    dialer.add_peer(qrpc.PeerAddress(host, port, expected_id=node.id))
    ...
    assert proxy.upstream_stats.dropped > 0   # prove the impairment happened
    proxy.close()

Each direction draws from its own RNG seeded from `seed`, so for a given seed
the n-th datagram of a direction always meets the same fate.  (Which bytes
are the n-th datagram depends on QUIC's timers: a replay repeats the faults,
not necessarily the exact packet trace.)  `qrpc.testing.Network` puts one
proxy on every link it makes.

Each client address gets its own connected socket towards the target, so
replies map back to the right client.  "upstream" is client -> target,
"downstream" target -> client.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field, replace
from typing import Any, cast

__all__ = ["DirectionStats", "Impairment", "UdpProxy"]

Address = tuple[Any, ...]


@dataclass
class Impairment:
    """What happens to datagrams in one direction (probabilities in 0..1, times in seconds)."""

    loss: float = 0.0
    duplicate: float = 0.0
    """Share of datagrams sent twice."""
    reorder: float = 0.0
    """Share of datagrams held back by `reorder_delay` so later ones overtake them."""
    reorder_delay: float = 0.02
    delay: float = 0.0
    jitter: float = 0.0
    corrupt: float = 0.0
    """Share of datagrams with one bit flipped."""
    blackhole: bool = False
    """Drop everything (toggle at run time)."""
    max_datagram: int | None = None
    """Drop datagrams larger than this many bytes, as a path through a link of a
    smaller MTU does with Don't Fragment set (change at run time)."""

    def __post_init__(self) -> None:
        for name in ("loss", "duplicate", "reorder", "corrupt"):
            share = getattr(self, name)
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"Impairment.{name} must be in 0..1, got {share!r}")
        for name in ("reorder_delay", "delay", "jitter"):
            if getattr(self, name) < 0:
                raise ValueError(f"Impairment.{name} must be >= 0 seconds")
        if self.max_datagram is not None and self.max_datagram < 1:
            raise ValueError("Impairment.max_datagram must be a positive number of bytes")


@dataclass
class DirectionStats:
    """Counters for one direction."""

    seen: int = 0
    dropped: int = 0
    too_large: int = 0
    """Of the dropped: larger than `Impairment.max_datagram`."""
    duplicated: int = 0
    reordered: int = 0
    corrupted: int = 0
    forwarded: int = 0
    bytes: int = 0


@dataclass
class _Pipe:
    impairment: Impairment
    rng: random.Random
    stats: DirectionStats = field(default_factory=DirectionStats)


class _Listener(asyncio.DatagramProtocol):
    def __init__(self, proxy: UdpProxy) -> None:
        self.proxy = proxy

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.proxy._from_client(data, addr)


class _Upstream(asyncio.DatagramProtocol):
    def __init__(self, proxy: UdpProxy, client: Address) -> None:
        self.proxy = proxy
        self.client = client
        self.transport: asyncio.DatagramTransport | None = None
        self.waiting: list[bytes] = []
        "Datagrams to send once the upstream socket exists."

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = datagrams = cast("asyncio.DatagramTransport", transport)
        if self.proxy._upstreams.get(self.client) is not self:  # rebound or closed meanwhile
            datagrams.close()
            return
        waiting, self.waiting = self.waiting, []
        for data in waiting:
            datagrams.sendto(data)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.proxy._from_target(data, self.client)


class UdpProxy:
    """Forward UDP between clients and `target`, impairing each direction.

    Args:
        target: the (host, port) to forward to.
        seed: seeds the RNG; log it in tests so failures replay.
        upstream: impairment for client -> target.
        downstream: impairment for target -> client.
        both: shorthand setting the same impairment both ways.
    """

    def __init__(
        self,
        target: tuple[str, int],
        *,
        seed: int,
        upstream: Impairment | None = None,
        downstream: Impairment | None = None,
        both: Impairment | None = None,
    ) -> None:
        self.target = target
        self.seed = seed
        self.up = _Pipe(upstream or both or Impairment(), random.Random(f"{seed}:up"))
        self.down = _Pipe(
            downstream or (replace(both) if both else Impairment()), random.Random(f"{seed}:down")
        )
        self._listener: asyncio.DatagramTransport | None = None
        self._upstreams: dict[Address, _Upstream] = {}
        self._pending: set[asyncio.TimerHandle] = set()
        self._opening: set[asyncio.Task[Any]] = set()
        self.address: tuple[str, int] = ("", 0)

    @property
    def upstream_stats(self) -> DirectionStats:
        """Counters for client -> target."""
        return self.up.stats

    @property
    def downstream_stats(self) -> DirectionStats:
        """Counters for target -> client."""
        return self.down.stats

    def configure(self, impairment: Impairment, *, seed: int | None = None) -> None:
        """Apply `impairment` to both directions from now on; with `seed`, restart
        both RNGs from it (the counters keep counting)."""
        self.up.impairment, self.down.impairment = impairment, replace(impairment)
        if seed is not None:
            self.seed = seed
            self.up.rng, self.down.rng = random.Random(f"{seed}:up"), random.Random(f"{seed}:down")

    async def start(self, host: str = "127.0.0.1") -> tuple[str, int]:
        """Listen on `host` (a free port); return the address clients should use."""
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Listener(self), local_addr=(host, 0)
        )
        self._listener = transport
        self.address = transport.get_extra_info("sockname")[:2]
        return self.address

    def rebind(self, client: Address | None = None) -> None:
        """Close the upstream socket of `client` (all if None): its next datagram
        leaves from a new port, as after a NAT rebinding."""
        for key in [client] if client is not None else list(self._upstreams):
            upstream = self._upstreams.pop(key, None)
            if upstream is not None and upstream.transport is not None:
                upstream.transport.close()

    def close(self) -> None:
        """Stop forwarding and close every socket."""
        for handle in self._pending:
            handle.cancel()
        self._pending.clear()
        for task in self._opening:
            task.cancel()
        self.rebind()
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    @property
    def closed(self) -> bool:
        """True once `close()` ran (or before `start()`)."""
        return self._listener is None

    # -- forwarding ------------------------------------------------------------

    def _from_client(self, data: bytes, client: Address) -> None:
        upstream = self._upstreams.get(client)
        if upstream is None:
            upstream = _Upstream(self, client)
            self._upstreams[client] = upstream
            loop = asyncio.get_running_loop()
            opening = loop.create_task(
                loop.create_datagram_endpoint(lambda: upstream, remote_addr=self.target)
            )
            self._opening.add(opening)
            opening.add_done_callback(self._opening.discard)
        self._impair(self.up, data, lambda d: self._send_up(upstream, d))

    def _send_up(self, upstream: _Upstream, data: bytes) -> None:
        if upstream.transport is None:
            upstream.waiting.append(data)
        elif not upstream.transport.is_closing():
            upstream.transport.sendto(data)

    def _from_target(self, data: bytes, client: Address) -> None:
        self._impair(self.down, data, lambda d: self._send_down(client, d))

    def _send_down(self, client: Address, data: bytes) -> None:
        if self._listener is not None:
            self._listener.sendto(data, client)

    def _impair(self, pipe: _Pipe, data: bytes, send: Any) -> None:
        rule, stats, rng = pipe.impairment, pipe.stats, pipe.rng
        stats.seen += 1
        if rule.max_datagram is not None and len(data) > rule.max_datagram:
            stats.too_large += 1
            stats.dropped += 1
            return
        if rule.blackhole or rng.random() < rule.loss:
            stats.dropped += 1
            return
        copies = 1
        if rule.duplicate and rng.random() < rule.duplicate:
            copies = 2
            stats.duplicated += 1
        for _ in range(copies):
            payload = data
            if rule.corrupt and rng.random() < rule.corrupt:
                flipped = bytearray(data)
                flipped[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
                payload = bytes(flipped)
                stats.corrupted += 1
            delay = rule.delay + (rng.uniform(-rule.jitter, rule.jitter) if rule.jitter else 0.0)
            if rule.reorder and rng.random() < rule.reorder:
                delay += rule.reorder_delay
                stats.reordered += 1
            stats.forwarded += 1
            stats.bytes += len(payload)
            if delay <= 0:
                send(payload)
            else:
                self._later(max(0.0, delay), send, payload)

    def _later(self, delay: float, send: Any, payload: bytes) -> None:
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle

        def fire() -> None:
            self._pending.discard(handle)
            send(payload)

        handle = loop.call_later(delay, fire)
        self._pending.add(handle)
