"""`RefusalLog`: why this node refused a peer, logged once per source address at most
every few seconds.

A refused peer usually retries (a dial loop with backoff, or many
misconfigured processes at once), so logging every refusal would flood the
log; logging none leaves the operator of the accepting node with aioquic's
bare "peer certificate refused".  `RefusalLog.refused` logs one WARNING
naming the source address and the reason, then counts further refusals from
that address for `interval` seconds and reports the count with its next line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Final

from qrpc.transport.closing import format_address

__all__ = ["REFUSAL_LOG_INTERVAL", "RefusalLog"]

log = logging.getLogger("qrpc.node")
REFUSAL_LOG_INTERVAL: Final = 10.0  # seconds between two lines about one source address
_MAX_SOURCES: Final = 4096  # addresses remembered; older ones are forgotten first


class RefusalLog:
    """Rate-limited WARNINGs about refused peers, per source address.

    Args:
        interval: seconds during which further refusals from one address are
            only counted.
        clock: monotonic time in seconds (tests pass their own).
    """

    __slots__ = ("_clock", "_interval", "_sources")

    def __init__(
        self,
        interval: float = REFUSAL_LOG_INTERVAL,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._interval = interval
        self._clock = clock
        self._sources: dict[str, tuple[float, int]] = {}
        "Per address: when its last line was logged, and refusals not logged since."

    def refused(self, address: tuple[Any, ...] | None, reason: str) -> None:
        """A peer at `address` was refused because of `reason`: log it, unless a line
        about that address was logged less than `interval` seconds ago."""
        source = format_address(address)
        now = self._clock()
        sources = self._sources
        last = sources.pop(source, None)
        if last is not None and now - last[0] < self._interval:
            sources[source] = (last[0], last[1] + 1)
            return
        sources[source] = (now, 0)
        if len(sources) > _MAX_SOURCES:
            del sources[next(iter(sources))]  # the address heard from longest ago
        suppressed = last[1] if last is not None else 0
        more = (
            f" (and {suppressed} more refusal(s) of it not logged since the last line)"
            if suppressed
            else ""
        )
        log.warning("refused the peer at %s: %s%s", source, reason, more)
