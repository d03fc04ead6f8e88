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

**Sending** goes through the link's `Outbox`, which owns the duty to
flush.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, Protocol, cast

import msgspec

from qrpc.codes import ErrorCode
from qrpc.errors import ConnectionRefused, HandshakeError
from qrpc.hooks.tracer import Tracer
from qrpc.registry import Registry
from qrpc.runtime.outbox import Outbox
from qrpc.tls.identity import PeerIdentity
from qrpc.transport.connection import STREAM_ID, Connection
from qrpc.wire.events import (
    CancelReceived,
    CreditReceived,
    DrainingReceived,
    ErrorReceived,
    GoodbyeReceived,
    HelloReceived,
    LinkEvent,
    LinkFailed,
    MessageReceived,
    RequestReceived,
    ResponseReceived,
)
from qrpc.wire.hello import Hello
from qrpc.wire.link import LinkProtocol
from qrpc_codecs import Codec

__all__ = ["Inbound", "LinkStats", "MessageSink", "PeerLink", "ReplyHandler"]

log = logging.getLogger("qrpc.node")
Inbound = MessageReceived | RequestReceived
ReplyHandler = Callable[["PeerLink", ResponseReceived | ErrorReceived], None]
_ERROR_TEXT_LIMIT: Final = 1024  # bytes of error text sent to a requester
_GOODBYE_GRACE: Final = 2.0  # seconds a peer that said GOODBYE gets to close the link itself


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
    """Bytes of messages and requests queued here: waiting for the peer's credit, or
    for QUIC to take them."""
    send_credit: int
    """Bytes the peer lets this node send right now."""
    inbound_bytes: int
    """Bytes of received messages not yet handled (or not yet credited back)."""
    draining: bool
    """The peer announced it is shutting down: it takes no new requests."""
    identity: str = ""
    """The subject of the peer's verified certificate."""
    rtt: float | None = None
    """QUIC's smoothed round-trip time in seconds (None before the first sample)."""
    messages_in: int = 0
    """Messages and requests received on the link (replies not counted)."""
    messages_out: int = 0
    """Messages and requests sent on the link (`send`, `request`, `broadcast`; replies
    not counted)."""
    bytes_in: int = 0
    """Bytes the peer sent on the link's stream (every frame, HELLO included)."""
    bytes_out: int = 0
    """Bytes this node wrote to the link's stream (every frame, HELLO included)."""
    datagram_size: int = 1200
    """The UDP payload size the link sends now: 1200 until path MTU discovery
    confirms a larger one (`QuicSettings.path_mtu_discovery`)."""


class MessageSink(Protocol):
    """Where an open link puts the messages and requests it receives (the peer's inbox)."""

    def put(self, link: PeerLink, events: list[Inbound], requests: int) -> None:
        """Queue the messages and requests of one received batch, in arrival order
        (`requests` of them are requests)."""

    def cancel(self, link: PeerLink, request_id: int) -> None:
        """The peer no longer waits for its request `request_id` sent on `link`."""


class PeerLink:
    """One link (see the module docstring).

    Args:
        conn: the connection, its TLS handshake complete.
        registry: the node's message types.
        max_message_size: this node's limit on message bodies, either way.
        window: message credit granted to the peer, in bytes.
        max_header_bytes: the largest headers section this node accepts.
        high_water: bytes queued for credit before `send` waits.
        dialed: True if this node dialed the link.

    Raises:
        HandshakeError: the connection carries no verified identity.
    """

    __slots__ = (
        "_expiry",
        "_inbox",
        "_max_message_size",
        "_on_gone",
        "_on_reply",
        "_registry",
        "_route",
        "close_code",
        "close_reason",
        "closed",
        "conn",
        "decoders",
        "dialed",
        "hello",
        "identity",
        "messages_in",
        "messages_out",
        "outbox",
        "peer_hello",
        "peer_id",
        "protocol",
    )

    def __init__(
        self,
        conn: Connection,
        *,
        registry: Registry,
        max_message_size: int,
        window: int,
        max_header_bytes: int,
        high_water: int,
        dialed: bool,
    ) -> None:
        identity = conn.peer_identity
        if identity is None:  # never: the TLS hook sets it before HandshakeCompleted
            raise HandshakeError("the connection has no verified peer identity")
        self.conn = conn
        self.identity: PeerIdentity = identity
        self.dialed = dialed
        self.protocol = LinkProtocol(
            max_frame_size=max_message_size, window=window, max_header_bytes=max_header_bytes
        )
        self.hello: asyncio.Future[Hello] = asyncio.get_running_loop().create_future()
        "The peer's HELLO; fails if the link ends before it arrives."
        self.peer_hello: Hello | None = None
        self.peer_id = identity.node_id or "?"
        "The peer's node ID (its certified one once the link is open)."
        self.outbox = Outbox(
            self.protocol, conn.want_flush, registry=registry, high_water=high_water
        )
        "Where everything this node sends on the link goes."
        self.decoders: Mapping[int, Callable[[bytes], msgspec.Struct]] = {}
        self.messages_in = 0
        "Messages and requests received (counted per batch, in `_route_open`)."
        self.messages_out = 0
        "Messages and requests sent (counted by the node's send, request and broadcast)."
        self.closed = False
        self.close_code = 0
        self.close_reason = ""
        self._registry = registry
        self._max_message_size = max_message_size
        self._inbox: MessageSink | None = None
        self._on_reply: ReplyHandler | None = None
        self._on_gone: Callable[[PeerLink], None] | None = None
        self._route: Callable[[list[LinkEvent]], None] = self._route_setup
        self._expiry: asyncio.TimerHandle | None = None
        conn.attach(self._on_data, self.outbox.pull, self._conn_closed)

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open" if self._inbox is not None else "setup"
        return f"<PeerLink {self.peer_id} {state} {self.conn!r}>"

    # -- setup -------------------------------------------------------------------

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
        self.decoders = self._registry.decoders(codec)
        self.outbox.open(
            hello.node_id, codec, hello, max_message_size=self._max_message_size, tracers=tracers
        )
        self._inbox = inbox
        self._on_reply = on_reply
        self._on_gone = on_gone
        self._route = self._route_open
        self.conn.promote()
        identity = self.identity
        until = identity.chain_valid_until or identity.not_valid_after
        delay = max(0.0, (until - dt.datetime.now(dt.UTC)).total_seconds())
        self._expiry = asyncio.get_running_loop().call_later(delay, self._expired)

    def _expired(self) -> None:
        log.warning("the certificate of %s expired: closing its link", self.peer_id)
        self.close(ErrorCode.CERTIFICATE_EXPIRED, "certificate expired")

    def admit_held(self) -> None:
        """Handle what the peer sent since its HELLO, held until the link was open."""
        protocol = self.protocol
        protocol.admit()
        events = protocol.events()
        if events:
            self._route(events)
        self.outbox.transmit()

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
        inbox = cast("MessageSink", self._inbox)  # both set by open(), before this route
        on_reply = cast("ReplyHandler", self._on_reply)
        inbound: list[Inbound] = []
        requests = 0
        now = -1.0
        for event in events:
            kind = type(event)
            if kind is MessageReceived:
                inbound.append(event)  # type: ignore[arg-type]
            elif kind is RequestReceived:
                request = cast("RequestReceived", event)
                if request.deadline is not None:  # its clock starts on arrival
                    if now < 0:
                        now = asyncio.get_running_loop().time()
                    request.expires = now + request.deadline / 1000
                inbound.append(request)
                requests += 1
            elif kind is ResponseReceived or kind is ErrorReceived:
                on_reply(self, event)  # type: ignore[arg-type]
            elif kind is CreditReceived:
                self.outbox.credit_arrived()
            elif kind is CancelReceived:
                if inbound:  # the request may be in this batch: queue it first
                    self.messages_in += len(inbound)
                    inbox.put(self, inbound, requests)
                    inbound, requests = [], 0
                inbox.cancel(self, cast("CancelReceived", event).request_id)
            elif kind is DrainingReceived:
                log.info("peer %s is draining: no new requests to it", self.peer_id)
            elif kind is GoodbyeReceived:
                self._goodbye_received(event)  # type: ignore[arg-type]
            elif kind is LinkFailed:
                failed = cast("LinkFailed", event)
                log.warning("peer %s broke the protocol: %s", self.peer_id, failed.reason)
                self.close(failed.code, "protocol violation")
        if inbound:
            self.messages_in += len(inbound)
            inbox.put(self, inbound, requests)

    def _goodbye_received(self, event: GoodbyeReceived) -> None:
        self.outbox.goodbye(ErrorCode.NO_ERROR, "goodbye")  # the answer; no-op if already sent
        self._mark_closed(event.code, event.reason or "goodbye")
        self.conn.close_later(_GOODBYE_GRACE, ErrorCode.NO_ERROR, "goodbye")

    def stats(self) -> LinkStats:
        """A snapshot of the link's queues, credit, counters and RTT."""
        protocol = self.protocol
        host, port = self.conn.remote_address or ("?", 0)
        rtt, bytes_in, bytes_out = _quic_figures(self.conn)
        return LinkStats(
            self.peer_id,
            self.dialed,
            (str(host), int(port)),
            self.outbox.queued_bytes,
            protocol.writer.credit.available,
            protocol.receive.used,
            protocol.peer_draining,
            self.identity.subject,
            rtt,
            self.messages_in,
            self.messages_out,
            bytes_in,
            bytes_out,
            self.conn.path.size,
        )

    @property
    def draining(self) -> bool:
        """The peer announced it takes no new requests (`Node.drain`)."""
        return self.protocol.peer_draining

    @property
    def credit_step(self) -> int:
        """Handled bytes after which credit goes back, idle or not."""
        return self.protocol.receive.step

    # -- closing -------------------------------------------------------------------

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
        if self._expiry is not None:
            self._expiry.cancel()
        self.outbox.shut(reason)
        on_gone = self._on_gone
        if on_gone is not None:
            on_gone(self)


def _quic_figures(conn: Connection) -> tuple[float | None, int, int]:
    """(smoothed RTT or None, bytes received, bytes written) of the link's stream,
    read from aioquic's state (it keeps them anyway; nothing is counted per message)."""
    quic = conn.quic
    loss = quic._loss
    rtt = loss._rtt_smoothed if loss._rtt_initialized else None
    stream = quic._streams.get(STREAM_ID)
    if stream is None:
        return rtt, 0, 0
    return rtt, stream.receiver.starting_offset(), stream.sender._buffer_stop
