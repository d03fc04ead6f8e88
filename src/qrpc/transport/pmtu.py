"""Path MTU discovery: send datagrams as large as the path to the peer carries.

QUIC starts every path at 1200 bytes, the size every path must carry, and
aioquic never goes above its configured size.  Bytes per packet decide
throughput in Python (each packet costs tens of microseconds to build,
encrypt and acknowledge), so a link searches for the largest datagram its
path carries, in the manner of RFC 8899 (DPLPMTUD): it sends a probe padded
to the size under test and uses the size only once the peer confirmed it.

A probe is a QUIC DATAGRAM frame (RFC 9221, unreliable: never retransmitted)
with no application data in its packet, so a probe the path drops loses
nothing.  The peer answers each probe with a small DATAGRAM frame (wire
format in ``docs/protocol.md``)::

    PROBE      0x01 | token (4 bytes) | padding
    PROBE_ACK  0x02 | token (4 bytes)

`PathMtuSearch` decides which size to try (sans-IO); `PathProber` runs it for
one connection (re-probing the size in use every 10 s, and at once when QUIC's
probe timeouts fire twice in a row): it sends probes through the connection's transmit, the one
place that flushes, and applies a confirmed size to the aioquic connection.
The sending socket sets Don't Fragment, so a datagram larger than a link
on the path is dropped, not split into IP fragments.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from typing import Final

from aioquic.buffer import size_uint_var
from aioquic.quic.connection import NetworkAddress, QuicConnection
from aioquic.quic.packet_builder import PACKET_NUMBER_SEND_SIZE

__all__ = [
    "BASE_SIZE",
    "MAX_PROBES",
    "PATH_PRIVATE_API",
    "PLATEAUS",
    "PathMtuSearch",
    "PathProber",
]

logger = logging.getLogger("qrpc.transport")

BASE_SIZE: Final = 1200
"""Every QUIC path carries it (RFC 9000 section 14): the floor, never probed."""
PLATEAUS: Final = (9000, 1500, 1492, 1400, 1280)
"""Link MTUs tried, largest first, below a size the path dropped (jumbo frames,
Ethernet, PPPoE, common tunnels, IPv6's minimum); less IP and UDP headers."""
MAX_PROBES: Final = 3
"""Probes of one size without an answer before the path counts as not carrying it."""
REVALIDATE_INTERVAL: Final = 10.0
"""Seconds between probes of the size in use: a path that stopped carrying it
(a route change, a black hole) is noticed and the link falls back to 1200."""
RAISE_INTERVAL: Final = 60.0
"""Seconds before a search that found nothing above 1200 starts again (RFC 8899's
PMTU_RAISE_TIMER, shorter: a search costs a few probes, and a link that fell
back during an outage should not wait ten minutes for its size)."""
SUSPECT_PTOS: Final = 2
"""QUIC probe timeouts in a row that make the size in use suspect (a black hole:
large packets vanish while small ones pass) and start its revalidation at once."""
PROBE_TIMEOUT_MIN: Final = 0.05
PROBE_TIMEOUT_MAX: Final = 1.0
ECHOES_PER_SECOND: Final = 20
"""Probes answered per second; more are ignored (a peer's honest search sends a
few)."""
PROBE: Final = 0x01
PROBE_ACK: Final = 0x02
_TOKEN: Final = 4
_AEAD_TAG: Final = 16
PATH_PRIVATE_API: Final = (
    "_max_datagram_size",
    "_datagrams_pending",
    "_streams_queue",
    "_probe_pending",
    "_remote_max_datagram_frame_size",
    "_peer_cid",
    "_loss._pacer._max_datagram_size",
    "_loss._cc._max_datagram_size",
    "_loss._rtt_smoothed",
    "_loss._rtt_initialized",
    "_loss._pto_count",
)
"""Attributes of an aioquic `QuicConnection` the prober reads or sets (a test checks them)."""

Datagram = tuple[bytes, NetworkAddress]


class PathMtuSearch:
    """Which datagram size to probe next, and which one is in use (sans-IO).

    The first probe is the ceiling; a size that fails `MAX_PROBES` times is
    replaced by the next plateau below it; the first size confirmed ends the
    search.  `revalidate()` re-probes the size in use; if that fails, the size
    falls back to `BASE_SIZE` and the search starts over.
    """

    __slots__ = ("_candidates", "_ceiling", "_failures", "_header", "_validating", "current")

    def __init__(self, ceiling: int, header: int) -> None:
        self._ceiling = ceiling
        self._header = header
        self.current = BASE_SIZE
        "The size in use (confirmed by the peer, or the floor)."
        self._failures = 0
        self._validating = False
        self._candidates = self._sizes()

    def _sizes(self) -> list[int]:
        below = (mtu - self._header for mtu in PLATEAUS)
        sizes = {self._ceiling, *(size for size in below if BASE_SIZE < size < self._ceiling)}
        return sorted((size for size in sizes if size > BASE_SIZE), reverse=True)

    @property
    def target(self) -> int | None:
        """The size to probe, or None when there is nothing to probe now."""
        if self._validating:
            return self.current
        return self._candidates[0] if self._candidates else None

    def confirmed(self) -> None:
        """The peer answered the probe of `target`: use it; the search is over."""
        if self.target is not None:
            self.current = self.target
        self._candidates = []
        self._validating = False
        self._failures = 0

    def lost(self) -> None:
        """A probe of `target` got no answer in time."""
        self._failures += 1
        if self._failures < MAX_PROBES:
            return
        self._failures = 0
        if self._validating:  # the path no longer carries the size in use
            self._validating = False
            self.current = BASE_SIZE
            self._candidates = self._sizes()
        elif self._candidates:
            self._candidates.pop(0)

    def revalidate(self) -> bool:
        """Probe the size in use again; False if there is none above the floor."""
        if not self._candidates and self.current > BASE_SIZE:
            self._validating = True
        return self._validating

    def restart(self) -> None:
        """Search again from the ceiling (the path may carry more than it did)."""
        if not self._validating:
            self._candidates = self._sizes()


class PathProber:
    """Runs `PathMtuSearch` for one aioquic connection, and answers the peer's probes.

    Args:
        quic: the connection whose datagram size it sets.
        loop: for the probe and revalidation timers.
        want_flush: asks the owner for a transmit (which calls `take_probe`).
        ceiling: the largest size to probe, or None to only answer probes.
        header: IP and UDP header bytes on this path (28 for IPv4, 48 for IPv6).
    """

    __slots__ = (
        "_ceiling",
        "_echo_window",
        "_echoes",
        "_header",
        "_loop",
        "_quic",
        "_search",
        "_timer",
        "_token",
        "_want_flush",
        "due",
    )

    def __init__(
        self,
        quic: QuicConnection,
        *,
        loop: asyncio.AbstractEventLoop,
        want_flush: Callable[[], None],
        ceiling: int | None,
        header: int,
    ) -> None:
        self._quic = quic
        self._loop = loop
        self._want_flush = want_flush
        self._ceiling = ceiling
        self._header = header
        self._search: PathMtuSearch | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._token: bytes | None = None  # of the probe in flight
        self._echoes = 0
        self._echo_window = 0.0
        self.due = False
        "A probe waits for the next transmit."

    @property
    def size(self) -> int:
        """The datagram size the connection sends now."""
        return int(self._quic._max_datagram_size)

    def start(self) -> None:
        """Begin the search (once the link is established), if the peer takes probes."""
        peer_limit = self._quic._remote_max_datagram_frame_size
        if self._ceiling is None or peer_limit is None or self._search is not None:
            return
        ceiling = min(self._ceiling, peer_limit)
        if ceiling > self.size:
            self._search = PathMtuSearch(ceiling, self._header)
            self._next()

    def check_losses(self) -> None:
        """After QUIC's timer ran: if its probe timeouts keep firing, the path may
        have stopped carrying the size in use; probe it now."""
        search = self._search
        if (
            search is not None
            and self._quic._loss._pto_count >= SUSPECT_PTOS
            and self._token is None
            and not self.due
            and search.revalidate()
        ):
            self._next()

    def stop(self) -> None:
        """The connection is gone: cancel the timers."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._search = None
        self.due = False

    def datagram_received(self, data: bytes) -> str | None:
        """Handle one DATAGRAM frame from the peer; return why it is invalid, if it is."""
        kind = data[0] if data else None
        if kind == PROBE and len(data) >= 1 + _TOKEN:
            now = self._loop.time()
            if now - self._echo_window >= 1.0:
                self._echo_window, self._echoes = now, 0
            # RFC 9221: no DATAGRAM frame to a peer that did not announce it takes them.
            takes = self._quic._remote_max_datagram_frame_size or 0
            if self._echoes < ECHOES_PER_SECOND and takes > 16:
                self._echoes += 1
                self._quic.send_datagram_frame(bytes([PROBE_ACK]) + data[1 : 1 + _TOKEN])
                self._want_flush()
            return None
        if kind == PROBE_ACK and len(data) == 1 + _TOKEN:
            if self._token is not None and data[1:] == self._token:
                self._answered()
            return None
        return "a DATAGRAM frame is neither a path probe nor its answer"

    def take_probe(self, now: float) -> list[Datagram]:
        """Build the due probe: one packet of the size under test, no stream data in it.

        Called from the connection's transmit, before the stream data: a probe
        may exceed the congestion window by one packet (as a QUIC PTO probe does).
        """
        search = self._search
        size = search.target if search is not None else None
        self.due = False
        if size is None:
            return []
        quic = self._quic
        token = os.urandom(_TOKEN)
        overhead = 1 + len(quic._peer_cid.cid) + PACKET_NUMBER_SEND_SIZE + _AEAD_TAG
        length = size - overhead - 1 - 1  # less a PING, the frame type...
        length -= size_uint_var(length)  # ...and the frame's length field
        payload = bytes([PROBE]) + token + bytes(length - 1 - _TOKEN)
        saved_size, saved_queue = quic._max_datagram_size, quic._streams_queue
        saved_probe = quic._probe_pending
        quic._max_datagram_size, quic._streams_queue = size, []
        quic._probe_pending = True  # lets the packet exceed the congestion window
        quic.send_datagram_frame(payload)
        try:
            datagrams = quic.datagrams_to_send(now=now)
        finally:
            quic._max_datagram_size = saved_size
            quic._streams_queue = saved_queue + quic._streams_queue
            pending = quic._datagrams_pending
            sent = not (pending and pending[-1] is payload)
            if not sent:
                pending.pop()  # paced out or crowded: try again at the next timeout
                quic._probe_pending = saved_probe
        self._token = token if sent else None
        self._arm(self._timeout(), self._expired)
        return datagrams

    # -- internals -------------------------------------------------------------

    def _answered(self) -> None:
        search = self._search
        self._token = None
        if search is None:
            return
        search.confirmed()
        self._apply(search.current)
        self._next()

    def _expired(self) -> None:
        self._timer = None
        search = self._search
        if search is None:
            return
        if self._token is not None:  # sent, never answered
            self._token = None
            before = search.current
            search.lost()
            if search.current != before:
                logger.info(
                    "path to %s stopped carrying %d-byte datagrams: back to %d",
                    self._quic.get_peer_address(),
                    before,
                    search.current,
                )
                self._apply(search.current)
        self._next()

    def _next(self) -> None:
        search = self._search
        if search is None:
            return
        if search.target is not None:
            self.due = True
            self._want_flush()
        elif search.revalidate():
            self._arm(REVALIDATE_INTERVAL, self._probe_later, False)
        else:
            self._arm(RAISE_INTERVAL, self._probe_later, True)

    def _arm(self, delay: float, callback: Callable[..., None], *args: object) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_later(delay, callback, *args)

    def _probe_later(self, restart: bool) -> None:
        self._timer = None
        search = self._search
        if search is not None:
            if restart:
                search.restart()
            self._next()

    def _timeout(self) -> float:
        loss = self._quic._loss
        rtt = loss._rtt_smoothed if loss._rtt_initialized else PROBE_TIMEOUT_MAX / 3
        return min(max(3 * rtt, PROBE_TIMEOUT_MIN), PROBE_TIMEOUT_MAX)

    def _apply(self, size: int) -> None:
        quic = self._quic
        if size == quic._max_datagram_size:
            return
        quic._max_datagram_size = size
        loss = quic._loss
        loss._pacer._max_datagram_size = size
        congestion = loss._cc
        if hasattr(congestion, "_max_datagram_size"):
            congestion._max_datagram_size = size
        if hasattr(congestion, "additive_increase_factor"):
            congestion.additive_increase_factor = size
        logger.debug("path to %s carries %d-byte datagrams", quic.get_peer_address(), size)
