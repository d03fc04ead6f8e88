"""`Node`: a qrpc peer -- listens, dials, routes typed messages to handlers.

The node owns one `Endpoint` (one UDP port for accepting and dialing), a
table of registered peers (`PeerLink`, at most one per peer ID), one
`DialLoop` per bootstrap peer and the table of outstanding requests.  The
decisions it takes -- who may register, which of two links survives, how
long to wait before redialing -- are made by `qrpc.policy` and the plugin
hooks; this module does the IO around them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar, overload

import msgspec

from qrpc._dial import DialLoop
from qrpc._handshake import Handshake
from qrpc._peer import HandlerSpec, PeerLink
from qrpc._peers import PeerTable
from qrpc._requests import RequestTable
from qrpc.codes import ErrorCode, RemoteErrorCode
from qrpc.config import Limits, Peer, QuicSettings
from qrpc.context import Context
from qrpc.errors import (
    ConfigError,
    MessageTooLarge,
    NodeClosed,
    PeerNotFound,
    PeerWaitTimeout,
    RegistryError,
    RemoteError,
)
from qrpc.events import EventHub, EventStream
from qrpc.hooks import get_plugin_manager
from qrpc.identity import PeerIdentity
from qrpc.ids import normalize_node_id
from qrpc.policy import Backoff
from qrpc.registry import Registry
from qrpc.security import TLS
from qrpc.transport import Endpoint
from qrpc.wire.events import ErrorReceived, ResponseReceived
from qrpc_codecs import Codec, CodecError, get_codec, register_codec

__all__ = ["Node"]

log = logging.getLogger("qrpc.node")
R = TypeVar("R", bound=msgspec.Struct)
HandlerT = TypeVar("HandlerT", bound=Callable[[Context, Any], Awaitable[Any]])
_YIELD_EVERY = 64 * 1024  # bytes queued for the wire before `send` yields once


class Node(PeerTable):
    """A qrpc node: one UDP port that accepts and dials mutually authenticated links.

    Args:
        registry: cmd_id <-> message type table shared by the application's nodes.
        tls: the node's certificate, key and CA (`qrpc.TLS`).
        listen: (host, port) to bind; port 0 picks a free port.
        peers: bootstrap peers, dialed and redialed with backoff.
        id: the node ID; must equal the one in the certificate (default: taken
            from it).
        state: any object handlers reach as ``ctx.state``.
        codecs: codec names in order of preference (first = default).
        limits: per-node and per-peer limits.
        quic: QUIC settings.
        backoff: reconnect delays for the built-in reconnect policy.
        plugins: plugin modules or instances to register.
        autoload_plugins: also load plugins from the ``qrpc`` entry-point group.

    Raises:
        ConfigError: at construction, for any unusable argument.
    """

    def __init__(
        self,
        registry: Registry,
        *,
        tls: TLS,
        listen: tuple[str, int] = ("127.0.0.1", 0),
        peers: Iterable[Peer] = (),
        id: str | None = None,
        state: Any = None,
        codecs: Sequence[str] = ("msgpack",),
        limits: Limits | None = None,
        quic: QuicSettings | None = None,
        backoff: Backoff | None = None,
        plugins: Iterable[object] = (),
        autoload_plugins: bool = True,
    ) -> None:
        if not isinstance(registry, Registry):
            raise ConfigError("Node.registry", f"must be a qrpc.Registry, got {registry!r}")
        if not isinstance(tls, TLS):
            raise ConfigError("Node.tls", f"must be a qrpc.TLS, got {tls!r}")
        self.registry = registry
        self.tls = tls
        self.id = tls.node_id
        if id is not None:
            try:
                wanted = normalize_node_id(id)
            except ValueError as exc:
                raise ConfigError("Node.id", str(exc)) from None
            if wanted != self.id:
                raise ConfigError(
                    tls.cert_path, f"certificate proves node ID {self.id!r}, not {wanted!r}"
                )
        self.state = state
        self.limits = limits if limits is not None else Limits()
        self.quic = quic if quic is not None else QuicSettings()
        self.backoff = backoff if backoff is not None else Backoff()
        self._listen = _check_listen(listen)
        self._bootstrap = [_check_peer(p) for p in peers]
        self.plugin_manager = get_plugin_manager(plugins, autoload=autoload_plugins)
        self.codecs = self._resolve_codecs(codecs)
        self.incarnation = random.getrandbits(63)
        "Random per node object: tells peers a restarted node from a second link."
        self._handlers: dict[int, HandlerSpec] = {}
        self._peers: dict[str, PeerLink] = {}
        self._dialing: dict[str, Handshake] = {}
        self._dial_loops: list[DialLoop] = []
        self._gone_waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._peer_waiters: dict[str | None, list[asyncio.Future[str]]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._links: set[PeerLink] = set()
        "Every PeerLink whose dispatcher still runs, registered or not."
        self._hub = EventHub()
        self._endpoint: Endpoint | None = None
        self._requests: RequestTable | None = None
        self._keepalive: asyncio.TimerHandle | None = None
        self._started = False
        self._closed = False
        self._stopping = asyncio.Event()

    def _resolve_codecs(self, names: Sequence[str]) -> list[Codec]:
        for result in self.plugin_manager.hook.qrpc_register_codecs(node=self):
            for codec in result or ():
                try:
                    register_codec(codec, replace=True)
                except CodecError as exc:
                    raise ConfigError("qrpc_register_codecs", str(exc)) from None
        if isinstance(names, str) or not names:
            raise ConfigError("Node.codecs", "must be a non-empty sequence of codec names")
        codecs = []
        for name in names:
            try:
                codec = get_codec(name)
                self.registry.decoders(codec)  # every registered type must fit the codec
            except (CodecError, RegistryError) as exc:
                raise ConfigError(f"Node.codecs[{name!r}]", str(exc)) from None
            codecs.append(codec)
        return codecs

    def __repr__(self) -> str:
        where = f"{self.address[0]}:{self.address[1]}" if self._endpoint else "not started"
        return f"<Node {self.id} {where}, {len(self._peers)} peer(s)>"

    # -- handlers ----------------------------------------------------------------

    def handler(self, cmd_id: int, *, concurrency: int = 1) -> Callable[[HandlerT], HandlerT]:
        """Route messages of `cmd_id` to the decorated ``async def f(ctx, msg)``.

        The function is returned unchanged.  Its return value answers a
        request (None answers "no value").  By default a peer's messages are
        handled one at a time in arrival order; `concurrency` > 1 lets up to
        that many calls run at once per peer (order is then not kept).

        Raises:
            RegistryError: `cmd_id` is unknown, already has a handler, or the
                handler's message annotation names another type.
        """
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise RegistryError(f"concurrency must be a positive int, got {concurrency!r}")

        def decorate(fn: HandlerT) -> HandlerT:
            self.registry.check_handler(cmd_id, fn)
            if cmd_id in self._handlers:
                raise RegistryError(f"cmd_id {cmd_id} already has a handler")
            self._handlers[cmd_id] = HandlerSpec(fn, concurrency)
            return fn

        return decorate

    # -- lifecycle ---------------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port); valid once started."""
        if self._endpoint is None:
            raise RuntimeError("the node is not started")
        return self._endpoint.local_address

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
        self._requests = RequestTable(self.limits.max_concurrent_requests)
        host, port = self._listen
        endpoint = await Endpoint.open(
            host,
            port,
            tls=self.tls,
            settings=self.quic,
            limits=self.limits,
            on_accept=self._on_accept,
        )
        if self.closed:  # close() ran while the port was being bound
            endpoint.close()
            raise NodeClosed("the node was closed while starting")
        self._endpoint = endpoint
        for peer in self._bootstrap:
            self._dial_loops.append(DialLoop(self, peer))
        self._schedule_keepalive()
        self.plugin_manager.hook.qrpc_node_started(node=self)
        log.info("node %s listening on %s:%d", self.id, *self.address)

    async def __aenter__(self) -> Node:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def serve(self) -> None:
        """Start (if needed) and run until `close()` is called or SIGINT/SIGTERM arrives."""
        await self.start()
        loop = asyncio.get_running_loop()
        installed = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self._stopping.set)
                installed.append(sig)
        try:
            await self._stopping.wait()
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
            await self.close()

    async def close(self) -> None:
        """Shut down gracefully.

        Pending requests fail with `NodeClosed`; messages queued for credit
        get up to `Limits.shutdown_timeout` to leave; every peer gets a
        GOODBYE and the node waits (same bound) for each to acknowledge it;
        then every task ends and the socket closes.  Safe to call twice.
        """
        if self._closed:
            return
        self._closed = True
        self._stopping.set()
        if self._endpoint is None:  # never started, or start() is still binding
            self._hub.close()
            return
        deadline = asyncio.get_running_loop().time() + self.limits.shutdown_timeout
        if self._keepalive is not None:
            self._keepalive.cancel()
        for loop_ in self._dial_loops:
            loop_.cancel()
        await asyncio.gather(*(d.task for d in self._dial_loops), return_exceptions=True)
        assert self._requests is not None
        self._requests.fail_all(NodeClosed("the node is shutting down"))
        peers = list(self._peers.values())
        await _bounded(deadline, *(pl.drain() for pl in peers))
        for pl in peers:
            pl.goodbye(ErrorCode.NO_ERROR, "shutdown")
        await _bounded(deadline, *(pl.farewell() for pl in peers))
        for pl in peers:
            self._close_peer(pl, ErrorCode.NO_ERROR, "shutdown")
        current = asyncio.current_task()  # close() may run inside a handler or accept task
        for task in list(self._tasks):
            if task is not current:
                task.cancel()
        links = list(self._links)  # includes links that closed with handlers still running
        others = [t for t in self._tasks if t is not current]
        await asyncio.gather(
            *others, *(pl.stop(keep=current) for pl in links), return_exceptions=True
        )
        assert self._endpoint is not None
        self._endpoint.close()
        for waiters in self._peer_waiters.values():
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(NodeClosed("the node was closed"))
        self._hub.close()
        self.plugin_manager.hook.qrpc_node_stopped(node=self)
        log.info("node %s stopped", self.id)

    @property
    def closed(self) -> bool:
        """True once `close()` has begun."""
        return self._closed

    @property
    def running(self) -> bool:
        """True between a completed `start()` and `close()`."""
        return self._endpoint is not None and not self._closed

    def _schedule_keepalive(self) -> None:
        interval = self.quic.keepalive_interval
        if interval is not None:
            self._keepalive = asyncio.get_running_loop().call_later(interval, self._send_keepalives)

    def _send_keepalives(self) -> None:
        for pl in self._peers.values():
            pl.conn.ping()
        self._schedule_keepalive()

    # -- peers ---------------------------------------------------------------------

    def peers(self) -> list[str]:
        """IDs of the peers with a live link, sorted."""
        return sorted(self._peers)

    def is_connected(self, peer_id: str) -> bool:
        """Whether `peer_id` has a live link."""
        return peer_id in self._peers

    def identity(self, peer_id: str) -> PeerIdentity:
        """The verified certificate identity of a connected peer.

        Raises:
            PeerNotFound: no live link to `peer_id`.
        """
        return self._peer(peer_id).identity

    def add_peer(self, peer: Peer) -> None:
        """Start dialing another bootstrap peer (the node must be started)."""
        if self._closed:
            raise NodeClosed("the node is closed")
        if not self._started:
            self._bootstrap.append(_check_peer(peer))
            return
        self._dial_loops.append(DialLoop(self, _check_peer(peer)))

    async def wait_for_peer(self, peer_id: str | None = None, timeout: float | None = None) -> str:
        """Wait until `peer_id` (or, if None, any peer) is connected; return its ID.

        Raises:
            PeerWaitTimeout: not connected within `timeout` seconds.
            NodeClosed: the node closed while waiting.
        """
        if self._closed:
            raise NodeClosed("the node is closed")
        if peer_id is not None:
            peer_id = normalize_node_id(peer_id)
            if peer_id in self._peers:
                return peer_id
        elif self._peers:
            return next(iter(self._peers))
        waiter: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._peer_waiters.setdefault(peer_id, []).append(waiter)
        try:
            return await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            raise PeerWaitTimeout(
                f"peer {peer_id or '(any)'} did not connect within {timeout} s"
            ) from None
        finally:
            waiters = self._peer_waiters.get(peer_id)
            if waiters is not None and waiter in waiters:
                waiters.remove(waiter)

    def events(self) -> EventStream:
        """Return an async iterator of peer lifecycle events from now on."""
        return self._hub.subscribe()

    async def _wait_peer_gone(self, peer_id: str | None) -> None:
        loop = asyncio.get_running_loop()
        while peer_id is not None and peer_id in self._peers:
            waiter: asyncio.Future[None] = loop.create_future()
            self._gone_waiters.setdefault(peer_id, []).append(waiter)
            await waiter

    def _peer(self, peer_id: str) -> PeerLink:
        pl = self._peers.get(peer_id)
        if pl is None:
            if self._closed:
                raise NodeClosed("the node is closed")
            raise PeerNotFound(peer_id)
        return pl

    # -- sending ---------------------------------------------------------------------

    async def send(self, peer_id: str, message: msgspec.Struct) -> None:
        """Queue a one-way message to `peer_id`; wait if its queue is full.

        Messages to one peer arrive in the order sent.  Returning means the
        message is queued for transmission, not that it was handled: for an
        acknowledged send, ``await request(peer_id, message)`` -- it returns
        once the peer's handler has run (None from a handler without a reply)
        and raises if the handler failed or the link dropped first.

        Raises:
            PeerNotFound: no live link to `peer_id`.
            PeerDisconnected: the link broke while waiting for room.
            MessageTooLarge: the encoded message exceeds the size limit.
            RegistryError: the message type is not registered.
        """
        pl = self._peer(peer_id)
        cmd_id, body = pl.encode(message)
        if pl.link.pending_bytes >= self.limits.outbound_high_water:
            await pl.wait_writable()
        link = pl.link
        link.send_message(cmd_id, body)
        pl.conn.want_flush()
        if pl.tracers:
            for tracer in pl.tracers:
                tracer.on_send(peer_id, cmd_id, message, len(body))
        if link.unsent_bytes >= _YIELD_EVERY:
            # A tight send loop must let the loop transmit and read ACKs now and then,
            # instead of encoding a whole window before the first packet leaves.
            await asyncio.sleep(0)

    @overload
    async def request(
        self, peer_id: str, message: msgspec.Struct, *, reply: type[R], timeout: float | None = None
    ) -> R: ...

    @overload
    async def request(
        self,
        peer_id: str,
        message: msgspec.Struct,
        *,
        reply: None = None,
        timeout: float | None = None,
    ) -> Any: ...

    async def request(
        self,
        peer_id: str,
        message: msgspec.Struct,
        *,
        reply: type[R] | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Send a request and return the peer handler's reply.

        Args:
            peer_id: the peer to ask.
            message: the request.
            reply: the expected reply type; another type raises `RemoteError`
                (code BAD_REPLY).  Also types the result for type checkers.
            timeout: seconds to wait (default `Limits.request_timeout`).

        Raises:
            RequestTimeout: no reply in time (also a `TimeoutError`).
            RemoteError: the peer's handler raised, or it could not route the request.
            PeerDisconnected: the link dropped before the reply.
            PeerNotFound, MessageTooLarge, RegistryError: as for `send`.
        """
        pl = self._peer(peer_id)
        cmd_id, body = pl.encode(message)
        if pl.link.pending_bytes >= self.limits.outbound_high_water:
            await pl.wait_writable()
        assert self._requests is not None
        wait = self.limits.request_timeout if timeout is None else timeout
        request_id, pending = self._requests.open(pl.peer_id, reply, wait)
        pl.link.send_request(cmd_id, request_id, body)
        pl.conn.want_flush()
        if pl.tracers:
            for tracer in pl.tracers:
                tracer.on_send(peer_id, cmd_id, message, len(body))
        try:
            return await pending.future
        finally:
            self._requests.discard(request_id)

    async def broadcast(self, message: msgspec.Struct) -> int:
        """Queue `message` to every connected peer; return how many got it.

        Peers whose queue is full are waited for after the message was
        queued to all.  A peer whose own size limit is below the message is
        skipped (and logged).

        Raises:
            MessageTooLarge: the message, in any peer's codec, exceeds this
                node's size limit; it was queued to no one.
            RegistryError: the message type is not registered.
        """
        cmd_id = self.registry.cmd_id_of(type(message))
        peers = list(self._peers.values())
        bodies: dict[str, bytes] = {}
        for pl in peers:  # encode (once per codec) and check before anything is queued
            if pl.codec.name not in bodies:
                body = bodies[pl.codec.name] = pl.codec.encode(message)
                if len(body) > self.limits.max_message_size:
                    raise MessageTooLarge(len(body), self.limits.max_message_size)
        full: list[PeerLink] = []
        count = 0
        high_water = self.limits.outbound_high_water
        for pl in peers:
            body = bodies[pl.codec.name]
            if len(body) > pl.max_body:
                log.warning(
                    "broadcast skipped %s: message of %d bytes exceeds its limit",
                    pl.peer_id,
                    len(body),
                )
                continue
            pl.link.send_message(cmd_id, body)
            pl.conn.want_flush()
            for tracer in pl.tracers:
                tracer.on_send(pl.peer_id, cmd_id, message, len(body))
            count += 1
            if pl.link.pending_bytes >= high_water:
                full.append(pl)
        if full:
            await asyncio.gather(*(pl.wait_writable() for pl in full), return_exceptions=True)
        return count

    # -- replies from peers (called by PeerLink) ------------------------------------

    def _on_response(self, pl: PeerLink, event: ResponseReceived) -> None:
        assert self._requests is not None
        pending = self._requests.pop(event.request_id, pl.peer_id)
        if pending is None:
            log.debug("late or unknown reply %d from %s dropped", event.request_id, pl.peer_id)
            return
        value: Any = None
        error: RemoteError | None = None
        if event.cmd_id:
            decode = pl.decoders.get(event.cmd_id)
            if decode is None:
                error = RemoteError(
                    RemoteErrorCode.BAD_REPLY, f"reply cmd_id {event.cmd_id} is not registered"
                )
            else:
                try:
                    value = decode(event.body)
                except CodecError as exc:
                    error = RemoteError(RemoteErrorCode.BAD_REPLY, f"undecodable reply: {exc}")
        expected = pending.reply_type
        if error is None and expected is not None and not isinstance(value, expected):
            error = RemoteError(
                RemoteErrorCode.BAD_REPLY,
                f"expected a {expected.__name__} reply, got {type(value).__name__}",
            )
        if not pending.future.done():
            if error is not None:
                pending.future.set_exception(error)
            else:
                pending.future.set_result(value)

    def _on_remote_error(self, pl: PeerLink, event: ErrorReceived) -> None:
        assert self._requests is not None
        pending = self._requests.pop(event.request_id, pl.peer_id)
        if pending is not None and not pending.future.done():
            pending.future.set_exception(RemoteError(event.code, event.text))

    async def _traced_call(
        self, pl: PeerLink, spec: HandlerSpec, ctx: Context, cmd_id: int, message: Any
    ) -> Any:
        with contextlib.ExitStack() as stack:
            for tracer in pl.tracers:
                scope = tracer.handler_scope(pl.peer_id, cmd_id, message)
                if scope is not None:
                    stack.enter_context(scope)
            return await spec.fn(ctx, message)


async def _bounded(deadline: float, *aws: Awaitable[Any]) -> None:
    if not aws:
        return
    remaining = max(0.0, deadline - asyncio.get_running_loop().time())
    tasks = [asyncio.ensure_future(a) for a in aws]
    _, pending = await asyncio.wait(tasks, timeout=remaining)
    for task in pending:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _check_listen(listen: object) -> tuple[str, int]:
    if (
        not isinstance(listen, tuple)
        or len(listen) != 2
        or not isinstance(listen[0], str)
        or isinstance(listen[1], bool)
        or not isinstance(listen[1], int)
        or not 0 <= listen[1] <= 65535
    ):
        raise ConfigError(
            "Node.listen", f"must be (host, port) with port in 0..65535, got {listen!r}"
        )
    return listen[0], listen[1]


def _check_peer(peer: object) -> Peer:
    if not isinstance(peer, Peer):
        raise ConfigError("Node.peers", f"entries must be qrpc.Peer, got {peer!r}")
    return peer
