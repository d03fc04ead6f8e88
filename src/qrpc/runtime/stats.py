"""`NodeStats`: a snapshot of a node and its links (`Node.stats()`, the ``stats`` service).

Nothing here counts on the hot path: links count messages in plain integers
per received batch and per send, and the byte counts and RTT are read from
aioquic's own state when a snapshot is taken (`PeerLink.stats`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from qrpc.runtime.link import LinkStats, PeerLink

__all__ = ["LinkTotals", "NodeStats", "snapshot"]


@dataclass(slots=True)
class LinkTotals:
    """What the links that already closed had counted (kept by the peer table)."""

    messages_in: int = 0
    messages_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0

    def add(self, stats: LinkStats) -> None:
        """Count a closed link's figures."""
        self.messages_in += stats.messages_in
        self.messages_out += stats.messages_out
        self.bytes_in += stats.bytes_in
        self.bytes_out += stats.bytes_out


@dataclass(frozen=True, slots=True)
class NodeStats:
    """A snapshot of a node (`Node.stats()`): its live links and its totals."""

    node_id: str
    """The node's ID."""
    uptime: float
    """Seconds since the node started (0 before `start()`)."""
    peers: tuple[LinkStats, ...]
    """One `LinkStats` per live link, sorted by peer ID."""
    messages_in: int
    """Messages and requests received since start, on every link (closed ones too)."""
    messages_out: int
    """Messages and requests sent since start, on every link (closed ones too)."""
    bytes_in: int
    """Bytes received on the links' streams since start (closed links too)."""
    bytes_out: int
    """Bytes written to the links' streams since start (closed links too)."""

    @property
    def peer_count(self) -> int:
        """How many peers have a live link."""
        return len(self.peers)


def snapshot(
    node_id: str, uptime: float, links: Iterable[PeerLink], closed: LinkTotals
) -> NodeStats:
    """Build a `NodeStats` from the live `links` and the totals of the `closed` ones."""
    peers = tuple(sorted((link.stats() for link in links), key=lambda s: s.peer_id))
    return NodeStats(
        node_id,
        uptime,
        peers,
        closed.messages_in + sum(s.messages_in for s in peers),
        closed.messages_out + sum(s.messages_out for s in peers),
        closed.bytes_in + sum(s.bytes_in for s in peers),
        closed.bytes_out + sum(s.bytes_out for s in peers),
    )
