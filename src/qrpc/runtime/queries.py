"""`NodeQueries`: the read-only questions a `Node` answers about its peers and itself.

A mixin of `qrpc.Node` (kept apart so the node module stays small): who is
connected, their identities, link snapshots, dial loops and `stats()`.
"""

from __future__ import annotations

from typing import Protocol

from qrpc.runtime.core import Runtime
from qrpc.runtime.dialer import DialState
from qrpc.runtime.link import LinkStats, PeerLink
from qrpc.runtime.services import Services
from qrpc.runtime.stats import LinkTotals, NodeStats, snapshot
from qrpc.tls.identity import PeerIdentity

__all__ = ["NodeQueries"]


class _Node(Protocol):
    """What the queries need of the node they are mixed into."""

    _run: Runtime | None
    _services: Services

    @property
    def id(self) -> str: ...

    def _running_link(self, peer_id: str) -> tuple[Runtime, PeerLink]: ...


class NodeQueries:
    """Peer and statistics queries of a node (mixed into `qrpc.Node`)."""

    def peers(self: _Node) -> list[str]:
        """IDs of the peers with a live link, sorted."""
        return self._run.table.ids() if self._run is not None else []

    def is_connected(self: _Node, peer_id: str) -> bool:
        """Whether `peer_id` (in any spelling) has a live link."""
        return self._run is not None and self._run.table.find(peer_id) is not None

    def identity(self: _Node, peer_id: str) -> PeerIdentity:
        """The verified certificate identity of a connected peer (else `PeerNotFound`)."""
        return self._running_link(peer_id)[1].identity

    def link_stats(self: _Node, peer_id: str) -> LinkStats:
        """A snapshot of the link to `peer_id` (else `PeerNotFound`): queues, credit,
        messages and bytes either way, RTT."""
        return self._running_link(peer_id)[1].stats()

    def dial_states(self: _Node) -> list[DialState]:
        """What the dial loop of each bootstrap peer is doing, in the order added."""
        return [loop.state() for loop in self._run.loops] if self._run is not None else []

    def stats(self: _Node) -> NodeStats:
        """A snapshot of the node: a `LinkStats` per live link, and totals since start
        (messages and bytes either way, closed links included, uptime)."""
        run = self._run
        uptime = self._services.uptime()
        if run is None:
            return snapshot(self.id, uptime, (), LinkTotals())
        return snapshot(self.id, uptime, run.table.links(), run.table.closed_totals)
