"""`PeerLink`: one link from TLS completion to close -- connection, wire state, codec.

**Setup.**  A link is created as soon as TLS completes (both certificates
verified) and attaches itself to its `Connection`.  It then waits for the
peer's HELLO (`hello`); the wire layer parses nothing after it until the
link is admitted, so whatever a peer sends while its admission is decided
(auth hooks included) is held, bounded, and not acted on.

**Open.**  `open()` is called by the peer table when the link is admitted.
From then on the link routes what the peer sends: messages and requests to
the peer's `MessageSink` (its inbox), replies to the request table, credit
to waiting senders, GOODBYE to a graceful close, a protocol violation to a
close with the violation's code.  Every way a link ends -- local close,
GOODBYE, protocol violation, QUIC termination -- passes through one place,
`_mark_closed`, which reports it to the owner once.

**Flush duty.**  Every command below (HELLO, message, request, response,
error, credit, GOODBYE) ends with exactly one flush request, and nothing
else in the runtime asks the connection to transmit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

import msgspec

from qrpc.codes import ErrorCode, RemoteErrorCode
from qrpc.errors import ConnectionRefused, HandshakeError, MessageTooLarge, PeerDisconnected
from qrpc.hooks.tracer import Tracer
from qrpc.registry import Registry
from qrpc.tls.identity import PeerIdentity
from qrpc.transport.connection import Connection
from qrpc.wire.events import (
    CreditReceived,
    ErrorReceived,
    GoodbyeReceived,
    HelloReceived,
    LinkEvent,
    LinkFailed,
    MessageReceived,
    RequestReceived,
    ResponseReceived,
)
from qrpc.wire.frames import HEADER_SIZE
from qrpc.wire.hello import Hello
from qrpc.wire.link import LinkProtocol
from qrpc_codecs import Codec

__all__ = ["Inbound", "LinkStats", "MessageSink", "PeerLink", "ReplyHandler"]

log = logging.getLogger("qrpc.node")
Inbound = MessageReceived | RequestReceived
ReplyHandler = Callable[["PeerLink", ResponseReceived | ErrorReceived], None]
_ERROR_TEXT_LIMIT: Final = 1024  # bytes of error text sent to a requester
_GOODBYE_GRACE: Final = 2.0  # seconds a peer that said GOODBYE gets to close the link itself
_YIELD_EVERY: Final = 64 * 1024  # bytes queued for the wire before `send` yields once


@dataclass(frozen=True, slots=True)
class LinkStats:
    """A snapshot of one peer's link (`Node.link_stats()`), for diagnostics and metrics."""

    peer_id: str
    """The peer's node ID."""
    dialed: bool
    """True if this node dialed the link."""
    remote_address: tuple[str, int]
    """Where the peer's datagrams come from."""
    queued_bytes: int
    """Bytes of messages and requests queued here, waiting for the peer's credit."""
    send_credit: int
    """Bytes the peer lets this node send right now."""
    inbound_bytes: int
    """Bytes of received messages not yet handled (or not yet credited back)."""


class MessageSink(Protocol):
    """Where an open link puts the messages and requests it receives (the peer's inbox)."""

    def put(self, link: PeerLink, event: Inbound) -> None:
        """Queue one message or request, in arrival order."""

    def wake(self) -> None:
        """New items were queued (called once per received batch)."""


class PeerLink:
    """One link (see the module docstring).

    Args:
        conn: the connection, its TLS handshake complete.
        registry: the node's message types.
        max_message_size: this node's limit on message bodies, either way.
        window: message credit granted to the peer, in bytes.
        high_water: bytes queued for credit before `send` waits.
        dialed: True if this node dialed the link.

    Raises:
        HandshakeError: the connection carries no verified identity.
    """

    __slots__ = (
        "_high_water",
        "_inbox",
        "_max_message_size",
        "_on_gone",
        "_on_reply",
        "_registry",
        "_route",
        "_writers",
        "close_code",
        "close_reason",
        "closed",
        "codec",
        "conn",
        "decoders",
        "dialed",
        "hello",
        "identity",
        "max_body",
        "peer_hello",
        "peer_id",
        "protocol",
        "tracers",
    )

    def __init__(
        self,
        conn: Connection,
        *,
        registry: Registry,
        max_message_size: int,
        window: int,
        high_water: int,
        dialed: bool,
    ) -> None:
        identity = conn.peer_identity
        if identity is None:  # never: the TLS hook sets it before HandshakeCompleted
            raise HandshakeError("the connection has no verified peer identity")
        self.conn = conn
        self.identity: PeerIdentity = identity
        self.dialed = dialed
        self.protocol = LinkProtocol(max_frame_size=max_message_size, window=window)
        self.hello: asyncio.Future[Hello] = asyncio.get_running_loop().create_future()
        "The peer's HELLO; fails if the link ends before it arrives."
        self.peer_hello: Hello | None = None
        self.peer_id = identity.node_id or "?"
        "The peer's node ID (its certified one once the link is open)."
        self.codec: Codec | None = None
        self.decoders: Mapping[int, Callable[[bytes], msgspec.Struct]] = {}
        self.max_body = 0
        self.tracers: list[Tracer] = []
        self.closed = False
        self.close_code = 0
        self.close_reason = ""
        self._registry = registry
        self._max_message_size = max_message_size
        self._high_water = high_water
        self._writers: list[asyncio.Future[None]] = []
        self._inbox: MessageSink | None = None
        self._on_reply: ReplyHandler | None = None
        self._on_gone: Callable[[PeerLink], None] | None = None
        self._route: Callable[[list[LinkEvent]], None] = self._route_setup
        conn.attach(self._on_data, self.protocol.data_to_send, self._conn_closed)

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open" if self.codec is not None else "setup"
        return f"<PeerLink {self.peer_id} {state} {self.conn!r}>"

    # -- setup -------------------------------------------------------------------

    def send_hello(self, hello: Hello) -> None:
        """Send our HELLO."""
        self.protocol.send_hello(hello)
        self._flush()

    def check_open(self) -> None:
        """Raise the connection's close error if the link ended during setup.

        Raises:
            ConnectError: the link is gone.
        """
        conn = self.conn
        if self.closed or conn.closed or conn.closed_locally:
            raise conn.close_error()

    def open(
        self,
        codec: Codec,
        *,
        inbox: MessageSink,
        on_reply: ReplyHandler,
        on_gone: Callable[[PeerLink], None],
        tracers: list[Tracer],
    ) -> None:
        """The link is admitted: route what the peer sends from now on (call
        `admit_held` next for what it sent before).

        `on_gone(link)` is called once when the link ends, however it ends.
        """
        hello = self.peer_hello
        if hello is None:
            raise RuntimeError("open() before the peer's HELLO")
        self.peer_id = hello.node_id
        self.codec = codec
        self.decoders = self._registry.decoders(codec)
        self.max_body = min(
            self._max_message_size, hello.max_frame_size, hello.window - HEADER_SIZE
        )
        self.tracers = tracers
        self._inbox = inbox
        self._on_reply = on_reply
        self._on_gone = on_gone
        self._route = self._route_open
        self.conn.promote()

    def admit_held(self) -> None:
        """Handle what the peer sent since its HELLO, held until the link was open."""
        protocol = self.protocol
        protocol.admit()
        events = protocol.events()
        if events:
            self._route(events)
        self._flush()

    # -- receiving -----------------------------------------------------------------

    def _on_data(self, data: bytes) -> None:
        # The connection transmits after every datagram (`Connection.datagram_received`).
        protocol = self.protocol
        protocol.receive_data(data)
        events = protocol.events()
        if events:
            self._route(events)

    def _route_setup(self, events: list[LinkEvent]) -> None:
        for event in events:
            if isinstance(event, HelloReceived):
                self.peer_hello = event.hello
                if not self.hello.done():
                    self.hello.set_result(event.hello)
            elif isinstance(event, LinkFailed):
                log.info("link from %s failed during setup: %s", self.peer_id, event.reason)
                self._fail_setup(ConnectionRefused(event.code, event.reason, by_peer=False))
                self.close(event.code, "bad HELLO")
            elif isinstance(event, GoodbyeReceived):
                self._fail_setup(ConnectionRefused(event.code, event.reason or "goodbye"))
                self.close(ErrorCode.NO_ERROR, "goodbye")

    def _fail_setup(self, error: BaseException) -> None:
        if not self.hello.done():
            self.hello.set_exception(error)
            self.hello.exception()  # retrieved: the owner may be gone already

    def _route_open(self, events: list[LinkEvent]) -> None:
        inbox = self._inbox
        on_reply = self._on_reply
        assert inbox is not None  # set by open()
        assert on_reply is not None
        queued = False
        for event in events:
            kind = type(event)
            if kind is MessageReceived or kind is RequestReceived:
                inbox.put(self, event)  # type: ignore[arg-type]
                queued = True
            elif kind is ResponseReceived or kind is ErrorReceived:
                on_reply(self, event)  # type: ignore[arg-type]
            elif kind is CreditReceived:
                self._wake_writers()
            elif kind is GoodbyeReceived:
                self._goodbye_received(event)  # type: ignore[arg-type]
            elif kind is LinkFailed:
                assert isinstance(event, LinkFailed)
                log.warning("peer %s broke the protocol: %s", self.peer_id, event.reason)
                self.close(event.code, "protocol violation")
        if queued:
            inbox.wake()

    def _goodbye_received(self, event: GoodbyeReceived) -> None:
        self.goodbye(ErrorCode.NO_ERROR, "goodbye")  # the acknowledgement; no-op if already sent
        self._mark_closed(event.code, event.reason or "goodbye")
        self.conn.close_later(_GOODBYE_GRACE, ErrorCode.NO_ERROR, "goodbye")

    def consumed(self, size: int, *, idle: bool) -> None:
        """`size` bytes of received messages were handled: return credit when due."""
        self.protocol.consumed(size, idle=idle)
        self._flush()

    def stats(self) -> LinkStats:
        """A snapshot of the link's queues and credit."""
        protocol = self.protocol
        host, port = self.conn.remote_address or ("?", 0)
        return LinkStats(
            self.peer_id,
            self.dialed,
            (str(host), int(port)),
            protocol.pending_bytes,
            protocol.send_credit,
            protocol.inbound_bytes,
        )

    @property
    def credit_step(self) -> int:
        """Handled bytes after which credit goes back, idle or not."""
        return self.protocol.credit_step

    # -- sending -------------------------------------------------------------------

    def encode(self, message: msgspec.Struct) -> tuple[int, bytes]:
        """Return (cmd_id, body) for `message` on this link.

        Raises:
            RegistryError: the message type is not registered.
            MessageTooLarge: the body exceeds what the peer accepts.
        """
        cmd_id = self._registry.cmd_id_of(type(message))
        assert self.codec is not None  # encode() is for open links
        body = self.codec.encode(message)
        if len(body) > self.max_body:
            raise MessageTooLarge(len(body), self.max_body)
        return cmd_id, body

    @property
    def writable(self) -> bool:
        """Whether a message may be queued without waiting."""
        return self.protocol.pending_bytes < self._high_water

    async def wait_writable(self) -> None:
        """Wait until the queue waiting for credit is under the high-water mark.

        Raises:
            PeerDisconnected: the link ended (or is ending) while waiting.
        """
        loop = asyncio.get_running_loop()
        while self.protocol.pending_bytes >= self._high_water:
            self._check_sending()
            waiter = loop.create_future()
            self._writers.append(waiter)
            await waiter
        self._check_sending()

    def _check_sending(self) -> None:
        if self.closed or not self.protocol.sending:
            reason = self.close_reason or "it is closing"
            raise PeerDisconnected(f"link to {self.peer_id} closed: {reason}")

    async def send(self, message: msgspec.Struct) -> None:
        """Queue a one-way message, waiting for room first if the queue is full.

        Raises:
            PeerDisconnected, MessageTooLarge, RegistryError: see `Node.send`.
        """
        cmd_id, body = self.encode(message)
        if self.protocol.pending_bytes >= self._high_water:
            await self.wait_writable()
        self.send_message(cmd_id, body, message)
        if self.protocol.unsent_bytes >= _YIELD_EVERY:
            # A tight send loop must let the loop transmit and read ACKs now and then,
            # instead of encoding a whole window before the first packet leaves.
            await asyncio.sleep(0)

    def send_message(self, cmd_id: int, body: bytes, message: Any) -> None:
        """Queue an encoded one-way message now (no waiting for room).

        Raises:
            PeerDisconnected: the link ended or is ending.
        """
        self._check_sending()
        self.protocol.send_message(cmd_id, body)
        self._flush()
        if self.tracers:
            self._trace_send(cmd_id, message, HEADER_SIZE + len(body))

    def send_request(self, cmd_id: int, request_id: int, body: bytes, message: Any) -> None:
        """Queue an encoded request now (no waiting for room).

        Raises:
            PeerDisconnected: the link ended or is ending.
        """
        self._check_sending()
        self.protocol.send_request(cmd_id, request_id, body)
        self._flush()
        if self.tracers:
            self._trace_send(cmd_id, message, HEADER_SIZE + len(body))

    def reply(self, request_id: int, message: msgspec.Struct) -> None:
        """Answer request `request_id` with `message` (``ctx.reply``).

        Raises:
            RegistryError, MessageTooLarge: `message` cannot be sent; nothing was.
        """
        cmd_id, body = self.encode(message)
        self._send_response(request_id, cmd_id, body, message)

    def respond(self, request_id: int, value: Any) -> None:
        """Answer request `request_id` with a handler's return value (None: "no value").

        A value that cannot be sent becomes an ERROR for the requester.
        """
        if value is None:
            self._send_response(request_id, 0, b"", None)
            return
        try:
            cmd_id, body = self.encode(value)
        except MessageTooLarge as exc:
            self.fail_request(request_id, RemoteErrorCode.REPLY_TOO_LARGE, str(exc))
        except Exception as exc:  # unregistered type, or any codec failure
            log.error("handler returned an unsendable reply for %s: %s", self.peer_id, exc)
            self.fail_request(request_id, RemoteErrorCode.BAD_REPLY, str(exc))
        else:
            self._send_response(request_id, cmd_id, body, value)

    def _send_response(self, request_id: int, cmd_id: int, body: bytes, message: Any) -> None:
        if self.closed or not self.protocol.sending:
            log.debug("reply to %s dropped: the link is closed", self.peer_id)
            return
        self.protocol.send_response(request_id, cmd_id, body)
        self._flush()
        if self.tracers and cmd_id:
            self._trace_send(cmd_id, message, HEADER_SIZE + len(body))

    def fail_request(self, request_id: int, code: int, text: str) -> None:
        """Answer request `request_id` with an ERROR (`code`, `text`)."""
        if self.closed or not self.protocol.sending:
            return
        self.protocol.send_error(request_id, code, text, _ERROR_TEXT_LIMIT)
        self._flush()

    def _trace_send(self, cmd_id: int, message: Any, size: int) -> None:
        for tracer in self.tracers:
            try:
                tracer.on_send(self.peer_id, cmd_id, message, size)
            except Exception:
                log.exception("a tracer's on_send raised; ignored")

    def _flush(self) -> None:
        """The one flush request of a command: transmit at the end of this loop turn."""
        self.conn.want_flush()

    # -- closing -------------------------------------------------------------------

    def goodbye(self, code: int = ErrorCode.NO_ERROR, reason: str = "") -> None:
        """Send GOODBYE (messages still waiting for credit are dropped and logged)."""
        dropped = self.protocol.send_goodbye(code, reason)
        if dropped:
            log.warning(
                "%d queued message(s) to %s were not sent: no credit before GOODBYE",
                dropped,
                self.peer_id,
            )
        self._flush()
        self._wake_writers()  # senders waiting for room learn the link is closing

    async def drain(self) -> None:
        """Wait until no message waits for credit, or the link ended."""
        loop = asyncio.get_running_loop()
        while self.protocol.pending_bytes and not self.closed:
            waiter = loop.create_future()
            self._writers.append(waiter)
            await waiter

    async def farewell(self) -> None:
        """Wait until the link has ended (after our GOODBYE: the peer's answer)."""
        loop = asyncio.get_running_loop()
        while not self.closed:
            waiter = loop.create_future()
            self._writers.append(waiter)
            await waiter

    def close(self, code: int, reason: str) -> None:
        """Close the connection with `code` and end the link now."""
        self.conn.close(code, reason)
        self._mark_closed(code, reason)

    def _conn_closed(self, conn: Connection) -> None:
        self._fail_setup(conn.close_error())
        self._mark_closed(conn.close_code or 0, conn.close_reason)

    def _mark_closed(self, code: int, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        self.close_code = code
        self.close_reason = reason
        self._wake_writers()
        on_gone = self._on_gone
        if on_gone is not None:
            on_gone(self)

    def _wake_writers(self) -> None:
        """Wake everything waiting on the send queue; each waiter rechecks."""
        if self._writers:
            writers, self._writers = self._writers, []
            for waiter in writers:
                if not waiter.done():
                    waiter.set_result(None)
