"""qrpc's default behaviours, as a plugin registered before any other.

Decision hooks are ``trylast``, so any plugin that returns a non-None
result overrides them (pytest's default-plugin pattern).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from qrpc.hooks.specs import hookimpl
from qrpc.hooks.view import NodeView
from qrpc.policy import FailureKind

if TYPE_CHECKING:
    from qrpc.config import PeerAddress
    from qrpc.tls.identity import PeerIdentity


@hookimpl(trylast=True)
def qrpc_certified_node_id(identity: PeerIdentity) -> str | None:
    """A certificate proves the node ID in its identity SAN."""
    return identity.node_id


@hookimpl(trylast=True)
def qrpc_next_reconnect_delay(
    node: NodeView, peer: PeerAddress, attempt: int, kind: FailureKind
) -> float | Literal[False]:
    """Stop on permanent failures; otherwise back off exponentially with jitter."""
    if kind is FailureKind.PERMANENT:
        return False
    return node.backoff.delay(attempt)
