"""`Node`: a qrpc peer -- configuration checks, handlers, lifecycle, `send` / `request` /
`broadcast`.  The running parts are a `qrpc.runtime.core.Runtime`
(``docs/architecture.md``); none of them imports this module."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar, overload

import msgspec

from qrpc.config import (
    Limits,
    PeerAddress,
    QuicSettings,
    check_listen,
    check_node_id,
    check_peer,
    check_peers,
    check_registry,
    check_schema_mode,
    resolve_codecs,
)
from qrpc.errors import NodeClosed, PeerDisconnected, PeerNotFound
from qrpc.hooks.manager import get_plugin_manager
from qrpc.hooks.plugins import Plugins
from qrpc.ids import normalize_node_id
from qrpc.policy import Backoff
from qrpc.registry import Registry
from qrpc.runtime.core import Runtime, until_signalled
from qrpc.runtime.events import EventHub, EventStream
from qrpc.runtime.handlers import HandlerSpec, HandlerT, HandlerTable
from qrpc.runtime.link import PeerLink
from qrpc.runtime.queries import NodeQueries
from qrpc.runtime.services import Services
from qrpc.schema import SchemaMode
from qrpc.tls.credentials import TLS
from qrpc.transport.endpoint import Endpoint
from qrpc.wire.sections import Headers

__all__ = ["Node"]

log = logging.getLogger("qrpc.node")
R = TypeVar("R", bound=msgspec.Struct)


class Node(NodeQueries):
    """A qrpc node: one UDP port that accepts and dials mutually authenticated links.

    Args:
        registry: cmd_id <-> message type table shared by the application's nodes.
        tls: the node's certificate, key and CA (`qrpc.TLS`).
        listen: (host, port) to bind; port 0 picks a free port.
        peers: bootstrap peers (`PeerAddress`), dialed and redialed with backoff.
        id: the node ID; must equal the one in the certificate (default: taken
            from it).
        state: any object handlers reach as ``ctx.state``.
        codecs: codec names in order of preference (first = default).
        limits: per-node and per-peer limits.
        quic: QUIC settings.
        backoff: reconnect delays for the built-in reconnect policy.
        schema: refuse a peer whose registry differs on a shared cmd_id unless it
            decodes safely both ways (``"compatible"``), at all (``"strict"``), or never.
        plugins: plugin modules or instances to register.
        autoload_plugins: also load plugins from the ``qrpc`` entry-point group.
        introspection: the built-in ``peers``/``stats`` service: False (off), True,
            or node IDs allowed to use it (``docs/services.md``).

    Raises:
        ConfigError: at construction, for any unusable argument.
    """

    def __init__(
        self,
        registry: Registry,
        *,
        tls: TLS,
        listen: tuple[str, int] = ("127.0.0.1", 0),
        peers: Iterable[PeerAddress] = (),
        id: str | None = None,
        state: Any = None,
        codecs: Sequence[str] = ("msgpack",),
        limits: Limits | None = None,
        quic: QuicSettings | None = None,
        backoff: Backoff | None = None,
        schema: SchemaMode = "compatible",
        plugins: Iterable[object] = (),
        autoload_plugins: bool = True,
        introspection: bool | Iterable[str] = False,
    ) -> None:
        self.id = check_node_id(id, tls)
        self.registry = check_registry(registry)
        self.tls = tls
        self.state = state
        self.limits = limits if limits is not None else Limits()
        self.quic = quic if quic is not None else QuicSettings()
        self.backoff = backoff if backoff is not None else Backoff()
        self.schema = check_schema_mode(schema)
        self._listen = check_listen(listen)
        self._bootstrap = check_peers(peers)
        self.plugin_manager = get_plugin_manager(plugins, autoload=autoload_plugins)
        self._plugins = Plugins(self.plugin_manager, self)
        self.codecs = resolve_codecs(codecs, registry, bundled=self._plugins.codecs())
        self._services = Services(
            self.registry,
            introspection,
            authorize=self._plugins.authorize_introspection,
            stats=self.stats,
        )
        self._handlers = HandlerTable(self.registry, self._services.handlers)
        self._hub = EventHub()
        self._run: Runtime | None = None
        self._started = False
        self._closed = False
        self._stopping = asyncio.Event()

    def __repr__(self) -> str:
        where = f"{self.address[0]}:{self.address[1]}" if self._run else "not started"
        return f"<Node {self.id} {where}, {len(self.peers())} peer(s)>"

    # -- handlers ----------------------------------------------------------------

    def handler(self, cmd_id: int, *, concurrency: int = 1) -> Callable[[HandlerT], HandlerT]:
        """Route messages of `cmd_id` to the decorated ``async def f(ctx, msg)`` or
        plain ``def f(ctx, msg)`` (run inline: cheaper, but it holds the loop and a
        deadline cannot cancel it).

        The function is returned unchanged; its return value answers a request
        (None: "no value").  A peer's messages are handled one at a time in arrival
        order; `concurrency` > 1 lets that many run at once per peer (unordered).
        Handlers may be added while the node runs.

        Raises:
            RegistryError: `cmd_id` is unknown, already has a handler, or the
                handler's message annotation names another type.
        """
        return self._handlers.decorator(cmd_id, concurrency)

    @property
    def handlers(self) -> Mapping[int, HandlerSpec]:
        """The handlers by cmd_id (read-only): each `HandlerSpec` has ``fn`` and ``concurrency``."""
        return self._handlers

    # -- lifecycle ---------------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port); valid once started."""
        return self.endpoint.local_address

    @property
    def endpoint(self) -> Endpoint:
        """The node's transport endpoint (for diagnostics and tests)."""
        if self._run is None:
            raise RuntimeError("the node is not started")
        return self._run.endpoint

    async def start(self) -> None:
        """Bind the port and start dialing the bootstrap peers.

        Raises:
            ConfigError: the listen address cannot be bound.
            NodeClosed: the node was closed (a node starts once).
        """
        if self._closed:
            raise NodeClosed("a closed node cannot be restarted; create a new Node")
        if self._started:
            return
        self._started = True
        run = await Runtime.open(
            node=self,
            listen=self._listen,
            tls=self.tls,
            schema=self.schema,
            registry=self._services.registry,
            codecs=self.codecs,
            handlers=self._handlers.view,
            limits=self.limits,
            settings=self.quic,
            plugins=self._plugins,
            emit=self._hub.emit,
            stable_after=self.backoff.stable_after,
        )
        if self.closed:  # close() ran while the port was being bound
            run.abandon()
            raise NodeClosed("the node was closed while starting")
        self._run = run
        self._services.start()
        for peer in self._bootstrap:
            run.dial(peer)
        run.discover(self._bootstrap, self.limits)
        self._plugins.node_started()
        log.info("node %s listening on %s:%d", self.id, *self.address)

    async def __aenter__(self) -> Node:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def serve(self) -> None:
        """Start (if needed); run until `close()`, or SIGINT/SIGTERM (then `drain()`)."""
        await self.start()
        try:
            await until_signalled(self._stopping)
            if not self._closed:
                await self.drain()
        finally:
            await self.close()

    async def drain(self, timeout: float | None = None) -> bool:
        """Take no new requests, let those in flight finish, then `close()`.

        Every peer is told DRAINING at once (new ones on arrival): its `request`
        here raises `PeerDraining`, so it can ask elsewhere; one-way messages
        still flow.  Requests already sent are answered, for up to `timeout`
        seconds (default `Limits.drain_timeout`); returns whether all were."""
        self._closed_instead("the node is closed")
        answered = True
        if self._run is not None:
            wait = self.limits.drain_timeout if timeout is None else timeout
            answered = await self._run.drain(asyncio.get_running_loop().time() + wait)
        await self.close()
        return answered

    async def close(self) -> None:
        """Shut down gracefully; safe to call twice.

        From the first call on, `send`, `request` and `broadcast` raise `NodeClosed`,
        and pending requests fail with it.  Queued messages get `Limits.shutdown_timeout`
        to leave, then every peer gets a GOODBYE (answered within the same bound);
        tasks are cancelled (a handler ignoring it is abandoned after 1 s)."""
        if self._closed:
            return
        self._closed = True
        self._stopping.set()
        run = self._run
        if run is None:  # never started, or start() is still binding
            self._hub.close()
            return
        await run.close(asyncio.get_running_loop().time() + self.limits.shutdown_timeout)
        self._hub.close()
        self._plugins.node_stopped()
        log.info("node %s stopped", self.id)

    @property
    def closed(self) -> bool:
        """True once `close()` has begun."""
        return self._closed

    @property
    def running(self) -> bool:
        """True between a completed `start()` and `close()`."""
        return self._run is not None and not self._closed

    # -- peers (and the queries of `NodeQueries`: peers, identity, stats, ...) -------

    async def reauthorize(self) -> list[str]:
        """Run the auth hooks again for every live link; close those they no longer
        admit (AUTH_REVOKED) and return their peer IDs, sorted.  Call it after
        changing what an auth plugin admits (an allowlist or deny-list reload)."""
        self._closed_instead("the node is closed")
        if self._run is None:
            return []
        return await self._run.admission.reauthorize()

    def add_peer(self, peer: PeerAddress) -> None:
        """Dial another bootstrap peer (now if the node runs, else at `start()`)."""
        self._closed_instead("the node is closed")
        if self._run is None:
            self._bootstrap.append(check_peer(peer))
        else:
            self._run.dial(check_peer(peer))

    async def wait_for_peer(self, peer_id: str | None = None, timeout: float | None = None) -> str:
        """Wait until `peer_id` (or, if None, any peer) is connected; return its ID.

        Raises:
            PeerWaitTimeout: not connected within `timeout` seconds.
            NodeClosed: the node closed while waiting.
        """
        self._closed_instead("the node is closed")
        if self._run is None:
            raise RuntimeError("the node is not started")
        wanted = normalize_node_id(peer_id) if peer_id is not None else None
        return await self._run.table.wait_for(wanted, timeout)

    def events(self) -> EventStream:
        """Return an async iterator of peer lifecycle events from now on."""
        return self._hub.subscribe()

    def _running_link(self, peer_id: str) -> tuple[Runtime, PeerLink]:
        """The runtime and the open link to `peer_id` (`NodeClosed`, `PeerNotFound`)."""
        if self._closed:  # _check_open, inlined: this is on every send's path
            raise NodeClosed("the node is closed")
        run = self._run
        if run is None:
            raise PeerNotFound(peer_id)
        return run, run.link_to(peer_id)

    # -- sending ---------------------------------------------------------------------

    async def send(
        self, peer_id: str, message: msgspec.Struct, *, headers: Headers | None = None
    ) -> None:
        """Queue a one-way message to `peer_id`; wait if its queue is full.

        Messages to one peer arrive in the order sent.  Returning means queued,
        not handled: ``await request(peer_id, message)`` returns once the peer's
        handler ran (None without a reply), and raises if it failed or the link
        dropped.  `headers` (str keys, str or bytes values) reach ``ctx.headers``.

        Raises:
            NodeClosed: `close()` has begun.
            PeerNotFound: no live link to `peer_id`.
            PeerDisconnected: the link broke while waiting for room.
            MessageTooLarge: the encoded message exceeds the size limit.
            HeaderError: `headers` break a rule or the peer's limit.
            RegistryError: the message type is not registered.
        """
        run, link = self._running_link(peer_id)
        try:
            if (waiting := run.send(link, message, headers)) is not None:
                await waiting
        except PeerDisconnected:
            self._closed_instead("the node closed while the message waited for room")
            raise

    @overload
    async def request(
        self,
        peer_id: str,
        message: msgspec.Struct,
        *,
        reply: type[R],
        timeout: float | None = None,
        headers: Headers | None = None,
    ) -> R: ...

    @overload
    async def request(
        self,
        peer_id: str,
        message: msgspec.Struct,
        *,
        reply: None = None,
        timeout: float | None = None,
        headers: Headers | None = None,
    ) -> Any: ...

    async def request(
        self,
        peer_id: str,
        message: msgspec.Struct,
        *,
        reply: type[R] | None = None,
        timeout: float | None = None,
        headers: Headers | None = None,
    ) -> Any:
        """Send a request and return the peer handler's reply.

        Args:
            peer_id: the peer to ask.
            message: the request.
            reply: the expected reply type; another type raises `RemoteError`
                (code BAD_REPLY).  Also types the result for type checkers.
            timeout: seconds the whole call may take, waiting for room to
                send included (default `Limits.request_timeout`).  It travels
                with the request: the peer's handler is cancelled at the
                deadline, and when this call times out or is cancelled.
            headers: str keys to str or bytes values (``ctx.headers``).

        Raises:
            ValueError: `timeout` is not a positive number of seconds; nothing was sent.
            RequestTimeout: no reply in time (also a `TimeoutError`).
            RemoteError: the peer's handler raised, or it could not route the request.
            PeerDisconnected: the link dropped before the reply.
            PeerDraining: the peer is shutting down (`drain`); nothing was sent.
            NodeClosed, PeerNotFound, MessageTooLarge, HeaderError, RegistryError: see `send`.
        """
        run, link = self._running_link(peer_id)
        wait = self.limits.request_timeout if timeout is None else timeout
        try:
            return await run.request(link, message, reply, wait, headers)
        except PeerDisconnected:
            self._closed_instead("the node closed before the reply")
            raise

    def _closed_instead(self, text: str) -> None:
        if self._closed:
            raise NodeClosed(text) from None

    async def broadcast(self, message: msgspec.Struct) -> int:
        """Queue `message` to every connected peer; return how many got it.

        Peers whose queue is full are waited for after the message was
        queued to all.  A peer whose own size limit is below the message is
        skipped (and logged).

        Raises:
            NodeClosed: `close()` has begun.
            MessageTooLarge: the message, in any peer's codec, exceeds this
                node's size limit; it was queued to no one.
            RegistryError: the message type is not registered.
        """
        self._closed_instead("the node is closed")
        cmd_id = self.registry.cmd_id_of(type(message))
        if self._run is None:
            return 0
        return await self._run.table.broadcast(cmd_id, message, self.limits.max_message_size)
