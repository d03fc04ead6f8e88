"""Sans-IO decisions of the node: reconnect backoff, failure kinds, duplicate links.

**Failure kinds.**  A failed dial is *permanent* when retrying with the same
configuration cannot succeed -- a refused certificate, a node ID mismatch, a
connection to oneself, no codec in common -- and *transient* otherwise: a
name that does not resolve (yet), a silent or refusing port, a full peer, a
handshake timeout.  The decision
is made by exception type, in the table `FAILURE_KINDS`, never by message
text (the Rust original matched lower-cased strings).

**Backoff.**  Exponential with jitter: ``base * factor ** (attempt - 1)``,
capped at `cap`, then spread by +/- `jitter` (default 1 s doubling to a
30 s cap, as the original crate, with 20 % jitter).

**Duplicate links.**  At most one link per peer survives.  When a second
link to a peer completes HELLO while one exists (`resolve_duplicate`):

1. different incarnation -- the peer restarted: the new link replaces the
   stale one;
2. same incarnation, same dialer -- the dialer gave up on the old link (it
   dials only when it has none): the newest link wins;
3. same incarnation, different dialers -- both nodes dialed each other at
   once: the link dialed by the node with the lower ID wins, on both sides,
   so both keep the same link.  The loser is refused at HELLO, before any
   message is sent on it, so nothing is duplicated or lost.

A dialer also checks, once TLS tells it the peer's ID, whether that peer is
already connected, and then abandons the dial before HELLO.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import Enum
from typing import Final

from qrpc.errors import (
    AddressError,
    ConfigError,
    ConnectError,
    HandshakeError,
    NoCommonCodec,
)

__all__ = [
    "FAILURE_KINDS",
    "Backoff",
    "FlapDetector",
    "FailureKind",
    "LinkFacts",
    "Resolution",
    "classify_failure",
    "resolve_duplicate",
]


class FailureKind(Enum):
    """Whether retrying a failed dial may help."""

    TRANSIENT = "transient"
    PERMANENT = "permanent"


FAILURE_KINDS: Final[tuple[tuple[type[BaseException], FailureKind], ...]] = (
    (HandshakeError, FailureKind.PERMANENT),  # certificate refused, ID mismatch, self
    (NoCommonCodec, FailureKind.PERMANENT),
    (ConfigError, FailureKind.PERMANENT),
    (AddressError, FailureKind.TRANSIENT),  # DNS may answer next time
    (ConnectError, FailureKind.TRANSIENT),  # timeouts, refusals, full peer
    (OSError, FailureKind.TRANSIENT),
)
"""Exception type -> kind, first match wins; anything else is transient."""


def classify_failure(error: BaseException) -> FailureKind:
    """Return the `FailureKind` of a dial failure."""
    for type_, kind in FAILURE_KINDS:
        if isinstance(error, type_):
            return kind
    return FailureKind.TRANSIENT


@dataclass(frozen=True, slots=True)
class Backoff:
    """Reconnect delays: exponential, capped, with jitter.

    Args:
        base: seconds before the first retry.
        factor: growth per failed attempt.
        cap: the longest delay, in seconds.
        jitter: relative spread, 0.2 = +/- 20 %; spreads reconnect storms.
        stable_after: seconds a link must last to count as a success; one that
            ends sooner counts as a failed attempt, so two processes using one
            identity, or a peer that accepts and drops, are redialed with
            growing delays instead of at once, forever.
    """

    base: float = 1.0
    factor: float = 2.0
    cap: float = 30.0
    jitter: float = 0.2
    stable_after: float = 5.0

    def __post_init__(self) -> None:
        if not (
            self.base > 0
            and self.factor >= 1
            and self.cap >= self.base
            and 0 <= self.jitter < 1
            and self.stable_after >= 0
        ):
            raise ConfigError(
                "Backoff",
                "need base > 0, factor >= 1, cap >= base, 0 <= jitter < 1 and stable_after >= 0",
            )

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        exponent = min(max(attempt, 1) - 1, 64)
        try:
            delay = min(self.cap, self.base * self.factor**exponent)
        except OverflowError:
            delay = self.cap
        if self.jitter:
            spread = (rng or random).uniform(-self.jitter, self.jitter)
            delay *= 1 + spread
        return delay


class FlapDetector:
    """Tells when one peer ID keeps coming up: `links` links within `window` seconds.

    Two processes started with one certificate replace each other's link at
    every peer; a peer behind a broken path reconnects over and over.  Either
    way the node should say so, once per window rather than per link.
    """

    __slots__ = ("_reported", "_seen", "links", "window")

    def __init__(self, links: int = 4, window: float = 10.0) -> None:
        self.links = links
        self.window = window
        self._seen: dict[str, list[float]] = {}
        self._reported: dict[str, float] = {}

    def link_up(self, peer_id: str, now: float) -> int | None:
        """Record a new link of `peer_id` at `now`; return how many came up within the
        window when that makes it flapping (and it was not reported this window)."""
        times = [t for t in self._seen.get(peer_id, ()) if now - t < self.window]
        times.append(now)
        self._seen[peer_id] = times
        if len(self._seen) > 4096:  # forget peers that came up once, long ago
            for key in [k for k, v in self._seen.items() if now - v[-1] >= self.window]:
                del self._seen[key]
                self._reported.pop(key, None)
        if len(times) < self.links or now - self._reported.get(peer_id, -self.window) < self.window:
            return None
        self._reported[peer_id] = now
        return len(times)


class Resolution(Enum):
    """What to do with a second link to a peer."""

    KEEP_EXISTING = "keep-existing"
    """Refuse the new link with DUPLICATE_LINK."""
    REPLACE_EXISTING = "replace-existing"
    """Close the existing link with REPLACED and keep the new one."""


@dataclass(frozen=True, slots=True)
class LinkFacts:
    """What the tie-break needs to know about one link."""

    dialed_by_local: bool
    """True if this node dialed the link."""
    incarnation: int | None
    """The peer's incarnation from its HELLO; None while unknown (dial in flight)."""


def resolve_duplicate(
    *, local_id: str, peer_id: str, existing: LinkFacts, new: LinkFacts
) -> Resolution:
    """Decide between two links to `peer_id` (rules in the module docstring)."""
    if (
        existing.incarnation is not None
        and new.incarnation is not None
        and existing.incarnation != new.incarnation
    ):
        return Resolution.REPLACE_EXISTING
    if existing.dialed_by_local == new.dialed_by_local:
        return Resolution.REPLACE_EXISTING
    lower_is_local = local_id < peer_id
    existing_dialed_by_lower = existing.dialed_by_local == lower_is_local
    return Resolution.KEEP_EXISTING if existing_dialed_by_lower else Resolution.REPLACE_EXISTING
