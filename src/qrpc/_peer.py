"""`PeerLink`: a registered peer -- its connection, link protocol, codec and dispatcher.

Inbound messages of one peer wait in one queue and are handled in arrival
order by one dispatcher task per peer, so a slow handler stalls only its own
peer.  Credit goes back to the peer only after a handler finished with a
message, which bounds what a peer can make this node buffer (the link's
window).  Handlers registered with ``concurrency=N`` run up to N at once
per peer, each in its own task.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import msgspec

from qrpc.codes import ErrorCode, RemoteErrorCode
from qrpc.connection import Connection
from qrpc.context import Context
from qrpc.errors import MessageTooLarge, PeerDisconnected, RegistryError
from qrpc.identity import PeerIdentity
from qrpc.wire.events import (
    CreditReceived,
    ErrorReceived,
    GoodbyeReceived,
    LinkEvent,
    LinkFailed,
    MessageReceived,
    RequestReceived,
    ResponseReceived,
)
from qrpc.wire.frames import HEADER_SIZE
from qrpc.wire.hello import Hello
from qrpc.wire.link import LinkProtocol
from qrpc_codecs import Codec, CodecError

if TYPE_CHECKING:
    from qrpc.hooks import Tracer
    from qrpc.node import Node

__all__ = ["HandlerSpec", "PeerLink"]

log = logging.getLogger("qrpc.node")
_ERROR_TEXT_LIMIT: Final = 1024  # bytes of error text sent to a requester
Inbound = MessageReceived | RequestReceived


@dataclass(slots=True)
class HandlerSpec:
    """A handler and how many of its calls may run at once per peer."""

    fn: Callable[[Context, Any], Awaitable[Any]]
    concurrency: int = 1
    slots: dict[str, asyncio.Semaphore] = field(default_factory=dict)


class PeerLink:
    """One registered peer (internal to the node)."""

    __slots__ = (
        "_message_context",
        "_tasks",
        "_wake",
        "_writers",
        "close_code",
        "close_reason",
        "closed",
        "codec",
        "conn",
        "decoders",
        "dialed_by_local",
        "dispatcher",
        "hello",
        "identity",
        "inbound",
        "link",
        "max_body",
        "node",
        "peer_id",
        "tracers",
    )

    def __init__(
        self,
        node: Node,
        conn: Connection,
        link: LinkProtocol,
        hello: Hello,
        identity: PeerIdentity,
        codec: Codec,
        *,
        dialed_by_local: bool,
        tracers: list[Tracer],
    ) -> None:
        self.node = node
        self.peer_id = hello.node_id
        self.conn = conn
        self.link = link
        self.hello = hello
        self.identity = identity
        self.codec = codec
        self.decoders = node.registry.decoders(codec)
        self.dialed_by_local = dialed_by_local
        self.tracers = tracers
        limit = node.limits.max_message_size
        self.max_body = min(limit, hello.max_frame_size, hello.window - HEADER_SIZE)
        self.inbound: deque[Inbound] = deque()
        self.closed = False
        self.close_code = 0
        self.close_reason = ""
        self._wake: asyncio.Future[None] | None = None
        self._writers: list[asyncio.Future[None]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._message_context = Context(self, 0)
        self.dispatcher = asyncio.get_running_loop().create_task(
            self._dispatch(), name=f"qrpc-dispatch-{self.peer_id}"
        )

    def __repr__(self) -> str:
        return f"<PeerLink {self.peer_id} {self.conn!r}>"

    # -- receiving -------------------------------------------------------------

    def on_data(self, data: bytes) -> None:
        """Bytes from the connection: decode frames and route their events.

        The connection transmits afterwards (`Connection.datagram_received`)."""
        link = self.link
        link.receive_data(data)
        events = link.events()
        if events:
            self.route(events)

    def route(self, events: list[LinkEvent]) -> None:
        """Act on link events: queue messages, settle requests, handle control frames."""
        inbound = self.inbound
        node = self.node
        for event in events:
            kind = type(event)
            if kind is MessageReceived or kind is RequestReceived:
                inbound.append(event)  # type: ignore[arg-type]
            elif kind is ResponseReceived:
                node._on_response(self, event)  # type: ignore[arg-type]
            elif kind is ErrorReceived:
                node._on_remote_error(self, event)  # type: ignore[arg-type]
            elif kind is CreditReceived:
                self._wake_writers()
            elif kind is GoodbyeReceived:
                node._on_goodbye(self, event)  # type: ignore[arg-type]
            elif kind is LinkFailed:
                assert isinstance(event, LinkFailed)
                log.warning("peer %s broke the protocol: %s", self.peer_id, event.reason)
                node._close_peer(self, event.code, "protocol violation")
        wake = self._wake
        if inbound and wake is not None and not wake.done():
            wake.set_result(None)

    async def _dispatch(self) -> None:
        inbound = self.inbound
        handlers = self.node._handlers
        link = self.link
        loop = asyncio.get_running_loop()
        chunk = link.credit_step
        handled = 0  # bytes handled but not yet reported: credit goes back per batch
        while True:
            if not inbound:
                if handled:
                    link.consumed(handled, idle=True)
                    self.conn.want_flush()
                    handled = 0
                if self.closed:
                    return
                self._wake = loop.create_future()
                await self._wake
                self._wake = None
                continue
            event = inbound.popleft()
            spec = handlers.get(event.cmd_id)
            if spec is not None and spec.concurrency > 1:
                await self._start_concurrent(spec, event)
                continue
            await self._handle(event, spec)
            handled += event.size
            if handled >= chunk:
                link.consumed(handled, idle=not inbound)
                self.conn.want_flush()
                handled = 0

    async def _start_concurrent(self, spec: HandlerSpec, event: Inbound) -> None:
        slots = spec.slots.get(self.peer_id)
        if slots is None:
            slots = spec.slots[self.peer_id] = asyncio.Semaphore(spec.concurrency)
        await slots.acquire()
        task = asyncio.get_running_loop().create_task(
            self._run_concurrent(spec, event, slots), name=f"qrpc-handler-{self.peer_id}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_concurrent(
        self, spec: HandlerSpec, event: Inbound, slots: asyncio.Semaphore
    ) -> None:
        try:
            await self._handle(event, spec)
        finally:
            slots.release()
            self._consumed(event.size)

    def _consumed(self, size: int) -> None:
        self.link.consumed(size, idle=not self.inbound)
        self.conn.want_flush()

    async def _handle(self, event: Inbound, spec: HandlerSpec | None) -> None:
        cmd_id = event.cmd_id
        request_id = event.request_id
        decode = self.decoders.get(cmd_id)
        if decode is None:
            self._refuse(
                request_id, RemoteErrorCode.UNKNOWN_COMMAND, f"cmd_id {cmd_id} is not registered"
            )
            return
        try:
            message = decode(event.body)
        except CodecError as exc:
            self._refuse(request_id, RemoteErrorCode.DECODE_ERROR, f"cmd_id {cmd_id}: {exc}")
            return
        for tracer in self.tracers:
            tracer.on_receive(self.peer_id, cmd_id, message, event.size)
        if spec is None:
            self._refuse(request_id, RemoteErrorCode.NO_HANDLER, f"no handler for cmd_id {cmd_id}")
            return
        # One-way messages share one context (it holds nothing per message).
        ctx = Context(self, request_id) if request_id else self._message_context
        try:
            if self.tracers:
                result = await self.node._traced_call(self, spec, ctx, cmd_id, message)
            else:
                result = await spec.fn(ctx, message)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if request_id:
                self._send_error(
                    request_id, RemoteErrorCode.HANDLER_ERROR, f"{type(exc).__name__}: {exc}"
                )
                log.info("handler for cmd_id %d from %s raised %r", cmd_id, self.peer_id, exc)
            else:
                log.exception("handler for cmd_id %d from %s raised", cmd_id, self.peer_id)
            return
        if request_id and not ctx.replied:
            self.respond(request_id, result)
        elif result is not None and not request_id:
            log.debug("handler for one-way cmd_id %d returned a value; ignored", cmd_id)

    def _refuse(self, request_id: int, code: RemoteErrorCode, text: str) -> None:
        if request_id:
            self._send_error(request_id, code, text)
        else:
            log.warning("dropped a message from %s: %s", self.peer_id, text)

    # -- sending -------------------------------------------------------------

    def encode(self, message: msgspec.Struct) -> tuple[int, bytes]:
        """Return (cmd_id, body) for `message` on this link.

        Raises:
            RegistryError: the message type is not registered.
            MessageTooLarge: the body exceeds what the peer accepts.
        """
        cmd_id = self.node.registry.cmd_id_of(type(message))
        body = self.codec.encode(message)
        if len(body) > self.max_body:
            raise MessageTooLarge(len(body), self.max_body)
        return cmd_id, body

    def respond(self, request_id: int, value: Any) -> None:
        """Send the reply to request `request_id` (None: "no value")."""
        if self.closed:
            log.debug("reply to %s dropped: link closed", self.peer_id)
            return
        if value is None:
            self.link.send_response(request_id, 0, b"")
        else:
            try:
                cmd_id, body = self.encode(value)
            except MessageTooLarge as exc:
                self._send_error(request_id, RemoteErrorCode.REPLY_TOO_LARGE, str(exc))
                return
            except (RegistryError, CodecError) as exc:
                self._send_error(request_id, RemoteErrorCode.BAD_REPLY, str(exc))
                log.error("handler returned an unsendable reply for %s: %s", self.peer_id, exc)
                return
            self.link.send_response(request_id, cmd_id, body)
            for tracer in self.tracers:
                tracer.on_send(self.peer_id, cmd_id, value, HEADER_SIZE + len(body))
        self.conn.want_flush()

    def _send_error(self, request_id: int, code: int, text: str) -> None:
        if not self.closed:
            self.link.send_error(request_id, code, text, _ERROR_TEXT_LIMIT)
            self.conn.want_flush()

    async def wait_writable(self) -> None:
        """Wait until the peer's outbound queue is under the high-water mark.

        Raises:
            PeerDisconnected: the link closed while waiting.
        """
        high_water = self.node.limits.outbound_high_water
        loop = asyncio.get_running_loop()
        while self.link.pending_bytes >= high_water:
            if self.closed:
                raise PeerDisconnected(f"link to {self.peer_id} closed: {self.close_reason}")
            waiter = loop.create_future()
            self._writers.append(waiter)
            await waiter
        if self.closed:
            raise PeerDisconnected(f"link to {self.peer_id} closed: {self.close_reason}")

    async def drain(self) -> None:
        """Wait until no message waits for credit, or the link closed."""
        loop = asyncio.get_running_loop()
        while self.link.pending_bytes and not self.closed:
            waiter = loop.create_future()
            self._writers.append(waiter)
            await waiter

    async def farewell(self) -> None:
        """Wait until the link is closed (after our GOODBYE: the peer's reply)."""
        loop = asyncio.get_running_loop()
        while not self.closed:
            waiter = loop.create_future()
            self._writers.append(waiter)
            await waiter

    def _wake_writers(self) -> None:
        """Wake everything waiting on the send queue; each waiter rechecks."""
        if self._writers:
            writers, self._writers = self._writers, []
            for waiter in writers:
                if not waiter.done():
                    waiter.set_result(None)

    # -- closing -------------------------------------------------------------

    def mark_closed(self, code: int, reason: str) -> None:
        """The link is gone: wake writers and let the dispatcher finish the queue."""
        if self.closed:
            return
        self.closed = True
        self.close_code = code
        self.close_reason = reason
        self._wake_writers()
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    async def stop(self, keep: asyncio.Task[Any] | None = None) -> None:
        """Cancel the dispatcher and handler tasks, except `keep` (the task of a
        handler that is closing the node itself), and wait for them."""
        tasks = [t for t in (self.dispatcher, *self._tasks) if t is not keep]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def goodbye(self, code: int = ErrorCode.NO_ERROR, reason: str = "") -> None:
        """Send GOODBYE (messages still waiting for credit are dropped and logged)."""
        dropped = self.link.send_goodbye(code, reason)
        if dropped:
            log.warning(
                "%d queued message(s) to %s were not sent: no credit before GOODBYE",
                dropped,
                self.peer_id,
            )
        self.conn.want_flush()
