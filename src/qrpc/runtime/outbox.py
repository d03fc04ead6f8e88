"""`Outbox`: the sending half of a link, and the one place that asks it to transmit.

Every frame this node writes on a link -- HELLO, message, request,
response, error, credit, GOODBYE -- is queued here, and every such command
ends with exactly one flush request (`_flush`, the connection's
``want_flush``).  Nothing else in the runtime requests a transmit.

Backpressure: messages and requests wait in the wire layer for the peer's
credit, and then for the connection to take them (it takes more only while
QUIC has little unacknowledged).  Both count: `wait_writable` makes a sender
wait while more than `high_water` bytes are queued either way, so neither
a peer that grants huge credit nor one that stops acknowledging decides how
much this node buffers for it.  Once the link is ending (`shut`) or this side said GOODBYE,
sends raise `PeerDisconnected` instead of vanishing; replies to a peer
that is gone are dropped (its requester already failed).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Final

import msgspec

from qrpc.codes import ErrorCode, RemoteErrorCode
from qrpc.errors import HeaderError, MessageEncodeError, MessageTooLarge, PeerDisconnected
from qrpc.hooks.tracer import TraceEvent, TraceKind, Tracer
from qrpc.registry import Registry
from qrpc.wire.frames import HEADER_SIZE
from qrpc.wire.hello import Hello
from qrpc.wire.link import LinkProtocol
from qrpc.wire.sections import Headers, encode_headers
from qrpc_codecs import Codec

__all__ = ["Outbox", "encode_error"]

log = logging.getLogger("qrpc.node")
_ERROR_TEXT_LIMIT: Final = 1024  # bytes of error text sent to a requester
_YIELD_EVERY: Final = 64 * 1024  # bytes queued for one transmit before a sender should yield


class Outbox:
    """The sending half of one link.

    Args:
        protocol: the link's sans-IO state.
        flush: asks the connection to transmit at the end of this loop turn.
        registry: the node's message types.
        high_water: bytes queued for credit before senders wait.
    """

    __slots__ = (
        "_credit",
        "_flush",
        "_high_water",
        "_max_frame",
        "_max_header_bytes",
        "_max_message_size",
        "_protocol",
        "_registry",
        "_shut_reason",
        "_writer",
        "_writers",
        "codec",
        "max_body",
        "peer_id",
        "tracers",
    )

    def __init__(
        self,
        protocol: LinkProtocol,
        flush: Callable[[], None],
        *,
        registry: Registry,
        high_water: int,
    ) -> None:
        self._protocol = protocol
        self._writer = protocol.writer
        self._credit = protocol.writer.credit
        self._high_water = high_water
        self._flush = flush
        self._registry = registry
        self._writers: list[asyncio.Future[None]] = []
        self._shut_reason: str | None = None
        self.codec: Codec | None = None
        "The message codec agreed at HELLO (None during setup)."
        self.max_body = 0
        "The largest body the peer accepts (and this node sends)."
        self._max_frame = 0  # the largest frame body (sections included) the peer accepts
        self._max_header_bytes = 0
        self._max_message_size = 0  # this node's own limit
        self.peer_id = "?"
        self.tracers: list[Tracer] = []

    def open(
        self,
        peer_id: str,
        codec: Codec,
        hello: Hello,
        *,
        max_message_size: int,
        tracers: list[Tracer],
    ) -> None:
        """The link is admitted: messages may now be encoded with `codec`."""
        self.peer_id = peer_id
        self.codec = codec
        self._max_frame = min(hello.max_frame_size, hello.window - HEADER_SIZE)
        self.max_body = min(max_message_size, self._max_frame)
        self._max_message_size = max_message_size
        self._max_header_bytes = hello.max_header_bytes
        self.tracers = tracers

    # -- messages and requests ---------------------------------------------------

    def encode(self, message: msgspec.Struct) -> tuple[int, bytes]:
        """Return (cmd_id, body) for `message` on this link.

        Raises:
            RegistryError: the message type is not registered.
            MessageEncodeError: the codec cannot encode it.
            MessageTooLarge: the body exceeds what the peer accepts.
        """
        cmd_id = self._registry.cmd_id_of(type(message))
        codec = self.codec
        if codec is None:
            raise PeerDisconnected(f"link to {self.peer_id} is not open")
        try:
            body = codec.encode(message)
        except Exception as exc:  # CodecError, or anything a third-party codec raises
            raise encode_error(message, codec, exc) from exc
        if len(body) > self.max_body:
            raise self.too_large(len(body))
        return cmd_id, body

    def too_large(self, size: int) -> MessageTooLarge:
        """The `MessageTooLarge` for a body of `size` bytes, naming whose limit it is:
        this node's ``Limits.max_message_size``, or what the peer announced."""
        if self.max_body < self._max_message_size:
            return MessageTooLarge(size, self.max_body, peer_id=self.peer_id)
        return MessageTooLarge(size, self.max_body)

    def encode_headers(self, headers: Headers | None, body: bytes) -> bytes:
        """Return the headers section for `headers` sent with `body` (b"" for none).

        Raises:
            HeaderError: a header breaks a rule, or the headers exceed what the
                peer accepts (alone, or with `body` in one frame).
        """
        if not headers:
            return b""
        section = encode_headers(headers, self._max_header_bytes)
        if len(section) + len(body) > self._max_frame:
            raise HeaderError(
                f"message and headers take {len(section) + len(body)} bytes; "
                f"{self.peer_id} accepts {self._max_frame} in one frame"
            )
        return section

    @property
    def queued_bytes(self) -> int:
        """Message and request bytes queued here: waiting for credit, or for the
        connection to take them."""
        return self._credit.pending_bytes + self._writer.unsent_bytes

    @property
    def writable(self) -> bool:
        """Whether a message may be queued without waiting."""
        return self._credit.pending_bytes + self._writer.unsent_bytes < self._high_water

    def pull(self) -> bytes:
        """What the connection transmits next (its ``pull_data``); senders waiting
        for room are woken when it takes bytes."""
        data = self._protocol.data_to_send()
        if data and self._writers:
            self.credit_arrived()
        return data

    async def wait_writable(self) -> None:
        """Wait until the queue waiting for credit is under the high-water mark.

        Raises:
            PeerDisconnected: the link ended (or is ending) while waiting.
        """
        loop = asyncio.get_running_loop()
        while not self.writable:
            self._check_sending()
            waiter = loop.create_future()
            self._writers.append(waiter)
            await waiter
        self._check_sending()

    def _check_sending(self) -> None:
        if self._shut_reason is not None or not self._protocol.sending:
            self._closed_error()

    def _closed_error(self) -> None:
        reason = self._shut_reason or "it is closing"
        raise PeerDisconnected(f"link to {self.peer_id} closed: {reason}") from None

    def send_message(
        self,
        cmd_id: int,
        body: bytes,
        message: Any,
        headers: bytes = b"",
        event: TraceEvent | None = None,
    ) -> bool:
        """Queue an encoded one-way message now (no waiting for room).

        Returns:
            True once enough bytes wait for this loop turn's transmit that a
            sender in a tight loop should yield, so packets leave and ACKs
            come in before it encodes a whole window.

        Raises:
            PeerDisconnected: the link ended or is ending.
        """
        if self._shut_reason is not None:
            self._closed_error()
        try:
            self._writer.message(cmd_id, body, headers)
        except PeerDisconnected:
            self._closed_error()
        self._flush()
        if self.tracers:
            size = HEADER_SIZE + len(headers) + len(body)
            self._trace_send(event, "message", cmd_id, message, size, 0)
        return self._writer.unsent_bytes >= _YIELD_EVERY

    def send_request(
        self,
        cmd_id: int,
        request_id: int,
        body: bytes,
        message: Any,
        deadline: bytes = b"",
        headers: bytes = b"",
        event: TraceEvent | None = None,
    ) -> None:
        """Queue an encoded request now (no waiting for room); `deadline` and
        `headers` are encoded sections (`qrpc.wire.sections`); `event` is the
        request as the tracers' `sending_scope` saw it.

        Raises:
            PeerDisconnected: the link ended or is ending.
        """
        if self._shut_reason is not None:
            self._closed_error()
        try:
            self._writer.request(cmd_id, request_id, body, deadline, headers)
        except PeerDisconnected:
            self._closed_error()
        self._flush()
        if self.tracers:
            size = HEADER_SIZE + len(deadline) + len(headers) + len(body)
            self._trace_send(event, "request", cmd_id, message, size, request_id)

    def cancel(self, request_id: int) -> None:
        """Tell the peer this node stopped waiting for request `request_id`."""
        if self._shut_reason is None:
            self._writer.cancel(request_id)
            self._flush()

    def draining(self) -> None:
        """Tell the peer this node takes no new requests (`Node.drain`)."""
        if self._shut_reason is None:
            self._writer.draining()
            self._flush()

    # -- answers -------------------------------------------------------------------

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
        if self._shut_reason is not None or not self._protocol.sending:
            log.debug("reply to %s dropped: the link is closed", self.peer_id)
            return
        self._writer.response(request_id, cmd_id, body)
        self._flush()
        if self.tracers:
            self._trace_send(None, "reply", cmd_id, message, HEADER_SIZE + len(body), request_id)

    def fail_request(self, request_id: int, code: int, text: str) -> None:
        """Answer request `request_id` with an ERROR (`code`, `text`)."""
        if self._shut_reason is not None or not self._protocol.sending:
            return
        self._writer.error(request_id, code, text, _ERROR_TEXT_LIMIT)
        self._flush()

    def _trace_send(
        self,
        event: TraceEvent | None,
        kind: TraceKind,
        cmd_id: int,
        message: Any,
        size: int,
        request_id: int,
    ) -> None:
        if event is None:
            event = TraceEvent(kind, self.peer_id, cmd_id, message, request_id, size)
        else:
            event.request_id = request_id
            event.size = size
        for tracer in self.tracers:
            try:
                tracer.on_sent(event)
            except Exception:
                log.exception("a tracer's on_sent raised; ignored")

    # -- control -------------------------------------------------------------------

    def send_hello(self, hello: Hello) -> None:
        """Send our HELLO."""
        self._protocol.send_hello(hello)
        self._flush()

    def grant(self, size: int, *, idle: bool) -> None:
        """`size` bytes of received messages were handled: return credit when due."""
        self._protocol.consumed(size, idle=idle)
        self._flush()

    def transmit(self) -> None:
        """Send what the wire layer queued on its own (after admitting held frames)."""
        self._flush()

    def credit_arrived(self) -> None:
        """The peer granted credit: wake senders waiting for room; each rechecks."""
        if self._writers:
            writers, self._writers = self._writers, []
            for waiter in writers:
                if not waiter.done():
                    waiter.set_result(None)

    def goodbye(self, code: int = ErrorCode.NO_ERROR, reason: str = "") -> None:
        """Send GOODBYE (messages still waiting for credit are dropped and logged)."""
        dropped = self._protocol.send_goodbye(code, reason)
        if dropped:
            log.warning(
                "%d queued message(s) to %s were not sent: no credit before GOODBYE",
                dropped,
                self.peer_id,
            )
        self._flush()
        self.credit_arrived()  # senders waiting for room learn the link is closing

    async def drain(self) -> None:
        """Wait until no message waits for credit, or the link ended."""
        loop = asyncio.get_running_loop()
        while self._credit.pending_bytes and self._shut_reason is None:
            waiter = loop.create_future()
            self._writers.append(waiter)
            await waiter

    async def farewell(self) -> None:
        """Wait until the link has ended (after our GOODBYE: the peer's answer)."""
        loop = asyncio.get_running_loop()
        while self._shut_reason is None:
            waiter = loop.create_future()
            self._writers.append(waiter)
            await waiter

    def shut(self, reason: str) -> None:
        """The link ended: nothing more is sent; waiting senders fail."""
        if self._shut_reason is None:
            self._shut_reason = reason
            self.credit_arrived()


def encode_error(message: object, codec: Codec, cause: Exception) -> MessageEncodeError:
    """The `MessageEncodeError` for `codec` failing on `message` with `cause`."""
    return MessageEncodeError(
        f"cannot encode {type(message).__name__} with codec {codec.name!r}: {cause}"
    )
