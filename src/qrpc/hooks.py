"""Plugin hooks (pluggy): every hook qrpc calls, and how plugins are found.

Write a plugin as a module or an object with functions marked
``@qrpc.hookimpl``, named after the specs below (impls may take a subset
of the arguments).  Register it with ``Node(plugins=[...])`` or publish it
in the entry-point group ``qrpc`` (the value is a module or an instance,
never a class).  Set ``QRPC_DISABLE_PLUGIN_AUTOLOAD=1`` or pass
``autoload_plugins=False`` to load only the plugins given in code.

The node calls hooks with keyword arguments only, so specs can grow new
arguments without breaking plugins.  Default behaviour lives in
`qrpc._builtin_plugin`, registered first with ``trylast=True`` impls, so
any plugin overrides it.  Hook names are checked when the node starts: a
misspelt ``qrpc_*`` function fails loudly (`pm.check_pending()`).

Cost classes: "per link" hooks run once per peer connection; nothing here
runs per message.  Per-message tracing goes through the `Tracer` object a
plugin returns from `qrpc_link_tracer`, so tracing that is off costs one
list check per message.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Iterable
from contextlib import AbstractContextManager
from importlib.metadata import entry_points
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

import pluggy

from qrpc.errors import ConfigError

if TYPE_CHECKING:
    from qrpc.config import Peer
    from qrpc.identity import PeerIdentity
    from qrpc.node import Node
    from qrpc.policy import FailureKind
    from qrpc.wire.hello import Hello
    from qrpc_codecs import Codec

__all__ = [
    "ENTRY_POINT_GROUP",
    "BaseTracer",
    "Tracer",
    "get_plugin_manager",
    "hookimpl",
    "hookspec",
]

PROJECT: Final = "qrpc"
ENTRY_POINT_GROUP: Final = "qrpc"
AUTOLOAD_ENV: Final = "QRPC_DISABLE_PLUGIN_AUTOLOAD"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


class Tracer(Protocol):
    """Per-link tracing object returned by `qrpc_link_tracer`.

    Called from the node's event loop, per message: keep it cheap.
    """

    def on_send(self, peer_id: str, cmd_id: int, message: Any, size: int) -> None:
        """A message, request or reply was queued for `peer_id` (`size` bytes framed)."""

    def on_receive(self, peer_id: str, cmd_id: int, message: Any, size: int) -> None:
        """A message or request from `peer_id` was decoded, before its handler runs."""

    def handler_scope(
        self, peer_id: str, cmd_id: int, message: Any
    ) -> AbstractContextManager[Any] | None:
        """Return a context manager entered around the handler call, or None.

        An OpenTelemetry span (``tracer.start_as_current_span(...)``) is one.
        """


class BaseTracer:
    """A `Tracer` that does nothing; subclass it and override what you need."""

    def on_send(self, peer_id: str, cmd_id: int, message: Any, size: int) -> None:
        """See `Tracer.on_send`."""

    def on_receive(self, peer_id: str, cmd_id: int, message: Any, size: int) -> None:
        """See `Tracer.on_receive`."""

    def handler_scope(
        self, peer_id: str, cmd_id: int, message: Any
    ) -> AbstractContextManager[Any] | None:
        """See `Tracer.handler_scope`."""
        return None


class HookSpecs:
    """The hook specifications (namespace for pluggy; never instantiated)."""

    # -- lifecycle -------------------------------------------------------------

    @hookspec
    def qrpc_node_started(self, node: Node) -> None:
        """The node is listening and its dial loops are running.

        Called once per node start, from the task that entered the node.
        May not be async.  Cost: once per node.

        :param node: the node.
        """

    @hookspec
    def qrpc_node_stopped(self, node: Node) -> None:
        """The node has shut down: links closed, tasks finished, socket closed.

        Called once, from the task that closed the node.  May not be async.

        :param node: the node.
        """

    @hookspec
    def qrpc_peer_connected(self, node: Node, peer_id: str, identity: PeerIdentity) -> None:
        """A peer completed TLS and HELLO and was registered.

        Called from the event loop; may not be async.  Cost: once per link.

        :param node: the node.
        :param peer_id: the peer's node ID.
        :param identity: its verified certificate identity.
        """

    @hookspec
    def qrpc_peer_disconnected(self, node: Node, peer_id: str, code: int, reason: str) -> None:
        """A registered peer's link ended (GOODBYE, error, timeout or replacement).

        Called from the event loop; may not be async.  Cost: once per link.

        :param node: the node.
        :param peer_id: the peer's node ID.
        :param code: the close `ErrorCode` (0 for a graceful GOODBYE).
        :param reason: a short reason.
        """

    # -- peer admission (auth) -----------------------------------------------

    @hookspec(firstresult=True)
    def qrpc_certified_node_id(self, node: Node, identity: PeerIdentity) -> str | None:
        """Return the node ID that a verified certificate proves.

        The built-in impl (trylast) returns the ID in the identity SAN
        ``<node-id>.node.<domain>``.  Override it to admit certificates from
        a PKI with another naming scheme.  The peer's HELLO must claim
        exactly this ID, else the link is closed with PEER_ID_MISMATCH.
        Stops at the first non-None result.  May not be async.  Cost: once
        per link.

        :param node: the node.
        :param identity: the peer's verified certificate identity.
        """

    @hookspec
    def qrpc_authorize_peer(
        self, node: Node, identity: PeerIdentity, hello: Hello, dialed: bool
    ) -> bool | Awaitable[bool | None] | None:
        """Approve or reject a peer after TLS, on its HELLO.

        Every impl is called and awaitables are awaited; the peer is
        rejected (AUTH_REJECTED, a permanent failure for the dialer) if any
        impl returns False.  None or True approve.  May be async (return an
        awaitable).  Runs before the peer is registered: no handler sees a
        rejected peer.  Cost: once per link.

        :param node: the node.
        :param identity: the peer's verified certificate identity.
        :param hello: the peer's HELLO (node_id, incarnation, codecs, limits).
        :param dialed: True if this node dialed the peer.
        """

    # -- reconnect policy -------------------------------------------------------

    @hookspec(firstresult=True)
    def qrpc_next_reconnect_delay(
        self, node: Node, peer: Peer, attempt: int, error: BaseException, kind: FailureKind
    ) -> float | Literal[False] | None:
        """Decide what a dial loop does after a failed attempt.

        Return a delay in seconds before the next attempt, False to stop
        dialing this peer, or None to leave the decision to the next impl.
        The built-in impl (trylast) stops on permanent failures and
        otherwise applies the node's `Backoff`.  Stops at the first non-None
        result.  May not be async.  Cost: once per failed attempt.

        :param node: the node.
        :param peer: the bootstrap entry being dialed.
        :param attempt: failed attempts in a row, starting at 1.
        :param error: the failure (a `ConnectError` subclass, usually).
        :param kind: its `FailureKind` from `qrpc.policy.classify_failure`.
        """

    # -- tracing ---------------------------------------------------------------

    @hookspec
    def qrpc_link_tracer(self, node: Node, peer_id: str, identity: PeerIdentity) -> Tracer | None:
        """Return a `Tracer` for a new link, or None to not trace it.

        Called once per link when the peer is registered; the node then
        calls each returned tracer per message sent, received and handled.
        May not be async.  Cost: once per link.

        :param node: the node.
        :param peer_id: the peer's node ID.
        :param identity: its verified certificate identity.
        """

    # -- codecs ----------------------------------------------------------------

    @hookspec
    def qrpc_register_codecs(self, node: Node) -> Iterable[Codec] | None:
        """Return codecs to make available (registered by name, like
        `qrpc_codecs.register_codec`).

        Called once when the node is constructed, before codec names in
        ``Node(codecs=...)`` are resolved.  May not be async.

        :param node: the node.
        """


def get_plugin_manager(
    plugins: Iterable[object] = (), *, autoload: bool = True
) -> pluggy.PluginManager:
    """Return a plugin manager with the built-in plugin, entry-point plugins
    (unless disabled) and `plugins`, checked for misspelt hooks.

    Raises:
        ConfigError: a plugin fails to load, is a class, or implements an
            unknown ``qrpc_*`` hook.
    """
    from qrpc import _builtin_plugin

    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(HookSpecs)
    pm.register(_builtin_plugin, name="qrpc.builtin")
    if autoload and not os.environ.get(AUTOLOAD_ENV):
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            dist = ep.dist.name if ep.dist is not None else "?"
            where = f"entry point {ep.name!r} ({ep.value}) of {dist}"
            try:
                plugin = ep.load()
            except Exception as exc:
                raise ConfigError(where, f"failed to load: {exc!r}") from exc
            _register(pm, plugin, where, name=f"{dist}:{ep.name}")
    for plugin in plugins:
        _register(pm, plugin, f"plugin {plugin!r}")
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise ConfigError("plugins", str(exc)) from None
    return pm


def _register(
    pm: pluggy.PluginManager, plugin: object, where: str, name: str | None = None
) -> None:
    if isinstance(plugin, type):
        raise ConfigError(where, "is a class; register a module or an instance (pluggy issue 643)")
    if not isinstance(plugin, ModuleType) and not any(
        name_.startswith("qrpc_") for name_ in dir(plugin)
    ):
        raise ConfigError(where, "implements no qrpc_* hook")
    try:
        pm.register(plugin, name=name)
    except (ValueError, pluggy.PluginValidationError) as exc:
        raise ConfigError(where, str(exc)) from None
