"""The hook specifications: every hook qrpc calls, with when, how often and from where.

Write a plugin as a module or an object with functions marked
``@qrpc.hookimpl``, named after the specs below (impls may take a subset
of the arguments).  The node calls hooks with keyword arguments only, so
specs can grow new arguments without breaking plugins.

Hooks run after the state change they report is complete.  An observer
hook that raises is logged and ignored; a decision hook that raises fails
safe (`qrpc.hooks.plugins`).  Cost classes: "per link" hooks run once per
peer connection; nothing here runs per message.  Per-message tracing goes
through the `Tracer` object a plugin returns from `qrpc_link_tracer`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable
from typing import TYPE_CHECKING, Final, Literal

import pluggy

from qrpc.hooks.tracer import Tracer
from qrpc.hooks.view import NodeView

if TYPE_CHECKING:
    from qrpc.config import PeerAddress
    from qrpc.policy import FailureKind
    from qrpc.tls.identity import PeerIdentity
    from qrpc.wire.hello import Hello
    from qrpc_codecs import Codec

__all__ = ["PROJECT", "HookSpecs", "hookimpl", "hookspec"]

PROJECT: Final = "qrpc"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


class HookSpecs:
    """The hook specifications (namespace for pluggy; never instantiated)."""

    # -- lifecycle -------------------------------------------------------------

    @hookspec
    def qrpc_node_started(self, node: NodeView) -> None:
        """The node is listening and its dial loops are running.

        Called once per node start, from the task that entered the node.
        May not be async.  An impl that raises is logged and ignored.  Cost:
        once per node.

        :param node: the node.
        """

    @hookspec
    def qrpc_node_stopped(self, node: NodeView) -> None:
        """The node has shut down: links closed, tasks finished, socket closed.

        Called once, from the task that closed the node.  May not be async.
        An impl that raises is logged and ignored.

        :param node: the node.
        """

    @hookspec
    def qrpc_peer_connected(self, node: NodeView, peer_id: str, identity: PeerIdentity) -> None:
        """A peer completed TLS and HELLO and was registered.

        Called from the event loop after the peer is reachable (`send` works,
        `wait_for_peer` has returned, the `Connected` event is out).  May not
        be async.  An impl that raises is logged and ignored.  Cost: once per
        link.

        :param node: the node.
        :param peer_id: the peer's node ID.
        :param identity: its verified certificate identity.
        """

    @hookspec
    def qrpc_peer_disconnected(self, node: NodeView, peer_id: str, code: int, reason: str) -> None:
        """A registered peer's link ended (GOODBYE, error, timeout or replacement).

        Called from the event loop after the peer is unregistered, its
        requests failed and its dial loop told.  May not be async.  An impl
        that raises is logged and ignored.  Cost: once per link.

        :param node: the node.
        :param peer_id: the peer's node ID.
        :param code: the close `ErrorCode` (0 for a graceful GOODBYE).
        :param reason: a short reason.
        """

    # -- peer admission (auth) -----------------------------------------------

    @hookspec(firstresult=True)
    def qrpc_certified_node_id(self, node: NodeView, identity: PeerIdentity) -> str | None:
        """Return the node ID that a verified certificate proves.

        The built-in impl (trylast) returns the ID in the identity SAN
        ``<node-id>.node.<domain>``.  Override it to admit certificates from
        a PKI with another naming scheme.  The peer's HELLO must claim
        exactly this ID, else the link is closed with PEER_ID_MISMATCH.
        An impl that raises refuses the peer.  Stops at the first non-None
        result.  May not be async.  Cost: once per link.

        :param node: the node.
        :param identity: the peer's verified certificate identity.
        """

    @hookspec
    def qrpc_authorize_peer(
        self, node: NodeView, identity: PeerIdentity, hello: Hello, dialed: bool
    ) -> bool | Awaitable[bool | None] | None:
        """Approve or reject a peer after TLS, on its HELLO.

        Every impl is called and awaitables are awaited; the peer is
        rejected (AUTH_REJECTED, a permanent failure for the dialer) if any
        impl returns False or raises.  None or True approve.  May be async
        (return an awaitable).  Runs before the peer is registered: no handler sees a
        rejected peer.  Cost: once per link.

        :param node: the node.
        :param identity: the peer's verified certificate identity.
        :param hello: the peer's HELLO (node_id, incarnation, codecs, limits).
        :param dialed: True if this node dialed the peer.
        """

    @hookspec
    def qrpc_authorize_introspection(
        self, node: NodeView, peer_id: str, identity: PeerIdentity
    ) -> bool | None:
        """Allow or refuse a peer the built-in introspection service (``peers``, ``stats``).

        Asked only when introspection is on (``Node(introspection=...)``), for
        each such request.  Every impl is called: any False -- or any impl
        raising -- refuses (NOT_AUTHORIZED); otherwise any True allows, and
        None leaves it to the node IDs the node lists.  May not be async.
        Cost: once per introspection request.

        :param node: the node.
        :param peer_id: the requester's node ID.
        :param identity: its verified certificate identity.
        """

    # -- reconnect policy -------------------------------------------------------

    @hookspec(firstresult=True)
    def qrpc_next_reconnect_delay(
        self,
        node: NodeView,
        peer: PeerAddress,
        attempt: int,
        error: BaseException,
        kind: FailureKind,
    ) -> float | Literal[False] | None:
        """Decide what a dial loop does after a failed attempt.

        Return a delay in seconds before the next attempt, False to stop
        dialing this peer, or None to leave the decision to the next impl.
        The built-in impl (trylast) stops on permanent failures and
        otherwise applies the node's `Backoff`; it is also what happens when
        an impl raises.  Stops at the first non-None result.  May not be
        async.  Cost: once per failed attempt.

        :param node: the node.
        :param peer: the bootstrap entry being dialed.
        :param attempt: failed attempts in a row, starting at 1.
        :param error: the failure (a `ConnectError` subclass, usually).
        :param kind: its `FailureKind` from `qrpc.policy.classify_failure`.
        """

    # -- discovery -------------------------------------------------------------

    @hookspec
    def qrpc_discover_peers(
        self, node: NodeView
    ) -> Iterable[PeerAddress] | Awaitable[Iterable[PeerAddress] | None] | None:
        """Return the peers this plugin knows of (an ``async def`` impl is fine).

        Called when the node starts and then every ``Limits.discovery_interval``
        seconds; the node dials each address it has no dial loop for yet, like a
        bootstrap peer (redials, backoff, events).  Return every peer each time:
        the node keeps the set.  An impl that raises, or takes longer than the
        interval, contributes nothing that round (logged).  Cost: once per round.

        :param node: the node.
        """

    # -- tracing ---------------------------------------------------------------

    @hookspec
    def qrpc_link_tracer(
        self, node: NodeView, peer_id: str, identity: PeerIdentity
    ) -> Tracer | None:
        """Return a `Tracer` for a new link, or None to not trace it.

        Called once per link when the peer is registered; the node then
        calls each returned tracer per message sent, received and handled.
        An impl that raises is logged and the link is not traced by it.  May
        not be async.  Cost: once per link.

        :param node: the node.
        :param peer_id: the peer's node ID.
        :param identity: its verified certificate identity.
        """

    # -- codecs ----------------------------------------------------------------

    @hookspec
    def qrpc_register_codecs(self, node: NodeView) -> Iterable[Codec] | None:
        """Return codecs to make available (registered by name, like
        `qrpc_codecs.register_codec`).

        Called once when the node is constructed, before codec names in
        ``Node(codecs=...)`` are resolved.  May not be async.

        :param node: the node.
        """
