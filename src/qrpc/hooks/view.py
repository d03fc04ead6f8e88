"""`NodeView`: the read-only face of a node that hooks receive as ``node``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from qrpc.policy import Backoff

__all__ = ["NodeView"]


class NodeView(Protocol):
    """What a hook implementation may read about the node that calls it (and the one
    thing it may ask of it: `reauthorize`).

    `qrpc.Node` satisfies it; a hook receives the node itself, typed as this
    view, so a plugin that only reads stays independent of the runtime.
    """

    @property
    def id(self) -> str:
        """The node's ID."""

    @property
    def state(self) -> Any:
        """The application state given to ``Node(state=...)``."""

    @property
    def backoff(self) -> Backoff:
        """The node's reconnect delays (used by the built-in reconnect policy)."""

    def peers(self) -> list[str]:
        """IDs of the peers with a live link, sorted."""

    def is_connected(self, peer_id: str) -> bool:
        """Whether `peer_id` has a live link."""

    async def reauthorize(self) -> list[str]:
        """Run the auth hooks again for every live link; close those now refused.

        The one action a plugin may take on the node: an auth plugin calls it
        when what it admits changes (`Node.reauthorize`)."""
