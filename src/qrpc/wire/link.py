"""`LinkProtocol`: the sans-IO state of one qrpc link (one QUIC connection).

Rules this module protects:

- Each side sends HELLO first and exactly once (messages queued before it
  follow it; a GOODBYE before it is not sent).  Any other frame but a
  GOODBYE before both HELLOs closes the link with HELLO_REQUIRED, a second
  HELLO with PROTOCOL_VIOLATION; frames before the peer's HELLO may declare
  at most `MAX_HELLO_SIZE` bytes.  On the dialer (which sent HELLO first)
  nothing after the peer's HELLO is parsed until `admit()`: it is held, up
  to the window plus `MAX_HELLO_SIZE` bytes (more: EARLY_DATA_LIMIT), so a
  peer cannot make this side act on, or buffer without bound, frames sent
  while its admission (auth hooks included) is decided.
- No frame carries a sender field: the sender is the authenticated peer.
- Message credit (`qrpc.wire.credit`): MESSAGE and REQUEST frames only
  within the credit the receiver granted (else FLOW_CONTROL), returned
  only once frames were handled (`consumed`).  RESPONSE, ERROR, GOODBYE
  and CREDIT are exempt, so a reply always reaches a full requester.
- After our GOODBYE nothing more is sent (messages and requests raise
  `PeerDisconnected`); a frame after the peer's GOODBYE is a
  PROTOCOL_VIOLATION.  Flagged sections (deadline, headers) are split off
  message bodies here (`qrpc.wire.sections`); a peer's CANCEL and DRAINING
  become events.
- Any `ProtocolError` moves the link to CLOSED and emits one `LinkFailed`
  carrying the code to close the connection with.

Input `receive_data`; commands `send_hello`, `send_goodbye`, `admit`,
`consumed`, and the frame commands of ``link.writer`` (`FrameWriter`:
messages, requests, answers, CANCEL, DRAINING); outputs pulled with
`events()` and `data_to_send()`.  No clock, no socket, no awaiting.
"""

from __future__ import annotations

from enum import Enum
from typing import Final

from qrpc.errors import (
    EarlyDataLimit,
    FlowControlViolation,
    HelloRequired,
    MalformedFrame,
    ProtocolError,
)
from qrpc.wire.credit import ReceiveCredit
from qrpc.wire.decoder import DecodedFrame, FrameDecoder
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
from qrpc.wire.frames import (
    HEADER_SIZE,
    Frame,
    FrameKind,
    decode_code_text,
    encode_code_text,
    encode_frame,
)
from qrpc.wire.hello import Hello, decode_hello, encode_hello
from qrpc.wire.sections import split_sections
from qrpc.wire.writer import FrameWriter

__all__ = ["MAX_HELLO_SIZE", "LinkProtocol", "LinkState"]

MAX_HELLO_SIZE: Final = 64 * 1024  # bytes: largest frame accepted before the peer's HELLO

_MESSAGE: Final = int(FrameKind.MESSAGE)
_REQUEST: Final = int(FrameKind.REQUEST)


class LinkState(Enum):
    """Where a link is in its life."""

    HELLO = "hello"
    """Waiting for one or both HELLOs."""
    OPEN = "open"
    """Both HELLOs exchanged: messages flow."""
    CLOSING = "closing"
    """We sent GOODBYE; the peer may still send until its own GOODBYE."""
    CLOSED = "closed"
    """Both GOODBYEs exchanged, or a protocol error."""


class LinkProtocol:
    """Per-connection framing, HELLO exchange and message credit, without IO.

    Args:
        max_frame_size: largest frame body, in bytes, this side accepts.
        window: message credit, in bytes, this side grants the peer: the bound
            on received-but-unhandled message bytes.
        max_header_bytes: largest headers section this side accepts.
    """

    __slots__ = (
        "_decoder",
        "_events",
        "_hold_limit",
        "_holding",
        "_max_frame_size",
        "_max_header_bytes",
        "peer_draining",
        "peer_goodbye",
        "peer_hello",
        "receive",
        "state",
        "window",
        "writer",
    )

    def __init__(self, *, max_frame_size: int, window: int, max_header_bytes: int) -> None:
        self.window = window
        self.state = LinkState.HELLO
        self.peer_hello: Hello | None = None
        self.peer_goodbye: GoodbyeReceived | None = None
        self.peer_draining = False
        "The peer sent DRAINING: it takes no new requests."
        self._decoder = FrameDecoder(MAX_HELLO_SIZE)  # a HELLO may exceed max_frame_size
        self._max_frame_size = max_frame_size
        self._max_header_bytes = max_header_bytes
        self._hold_limit = window + MAX_HELLO_SIZE
        self._holding = False
        self._events: list[LinkEvent] = []
        self.writer = FrameWriter()
        """The sending direction: frame commands, the peer's credit
        (``writer.credit``) and the bytes queued for the stream."""
        self.receive = ReceiveCredit(window, max_frame_size)
        """The receiving direction: bytes received and not yet granted back
        (``receive.used``), and when handled bytes go back as credit."""

    # -- outputs -----------------------------------------------------------

    def events(self) -> list[LinkEvent]:
        """Return and forget the events produced since the last call."""
        events = self._events
        self._events = []
        return events

    def data_to_send(self) -> bytes:
        """Return and forget the bytes to write to the link's stream."""
        return self.writer.take()

    @property
    def sending(self) -> bool:
        """False once this side sent GOODBYE or the link failed: commands are no-ops then."""
        return not self.writer.done

    # -- input -------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Feed bytes received on the link's stream; then call `events()` and
        `data_to_send()`."""
        if self.state is LinkState.CLOSED:
            return
        try:
            complete = self._decoder.feed(data)
        except ProtocolError as exc:
            self._fail(exc)
            return
        if self.peer_hello is None:
            self._parse_setup()
        elif not self._holding and complete:  # else: inside a large frame's body
            self._parse()
        self._check_hold()

    def admit(self) -> None:
        """The local side admitted the peer: handle what arrived since its HELLO;
        then call `events()` and `data_to_send()`."""
        if self._holding:
            self._holding = False
            if self.state is not LinkState.CLOSED:
                self._parse()

    def _parse_setup(self) -> None:
        # Until the peer's HELLO, one frame at a time: its HELLO raises the frame
        # limit, and on the dialer what follows it is held, unparsed (`_holding`).
        decoder = self._decoder
        for _ in range(1_000_000):  # bounded by the bytes fed; ends at HELLO or a failure
            try:
                frame = decoder.next_frame()
            except ProtocolError as exc:
                self._fail(exc)
                return
            if frame is None:
                return
            try:
                self._handle_frames([frame])
            except ProtocolError as exc:
                self._fail(exc)
                return
            if self.peer_hello is not None or self.state is LinkState.CLOSED:
                break
        if not self._holding and self.state is not LinkState.CLOSED:
            self._parse()

    def _check_hold(self) -> None:
        if self._holding and self._decoder.buffered > self._hold_limit:
            held = self._decoder.buffered
            self._fail(EarlyDataLimit(f"{held} bytes before admission, limit {self._hold_limit}"))

    def _parse(self) -> None:
        frames: list[DecodedFrame] = []
        error: ProtocolError | None = None
        try:
            self._decoder.drain_into(frames)
        except ProtocolError as exc:
            error = exc  # frames before the bad one are still handled
        try:
            self._handle_frames(frames)
        except ProtocolError as exc:
            self._fail(exc)
            return
        if error is not None and self.state is not LinkState.CLOSED:
            self._fail(error)

    def _handle_frames(self, frames: list[DecodedFrame] | list[Frame]) -> None:
        events = self._events
        append = events.append
        window = self.window
        receive = self.receive
        used = receive.used
        receiving = self._receiving()
        for kind, flags, cmd_id, request_id, body in frames:
            if kind in (_MESSAGE, _REQUEST):
                if not receiving:
                    receive.used = used
                    self._refuse_inbound(FrameKind(kind))
                size = HEADER_SIZE + len(body)
                if used + size > window:
                    receive.used = used
                    raise FlowControlViolation(
                        f"{used + size} bytes outstanding, window is {window}"
                    )
                deadline = headers = None
                if flags:
                    receive.used = used  # a bad section leaves the frames before it counted
                    deadline, headers, body = split_sections(flags, body, self._max_header_bytes)
                used += size
                if kind == _MESSAGE:
                    append(MessageReceived(cmd_id, body, size, headers))
                else:
                    append(RequestReceived(cmd_id, request_id, body, size, deadline, headers))
            else:
                receive.used = used
                self._handle_control(Frame(FrameKind(kind), flags, cmd_id, request_id, body))
                if self.state is LinkState.CLOSED:  # both GOODBYEs: nothing more is read
                    return
                used = receive.used
                receiving = self._receiving()
        receive.used = used

    def _receiving(self) -> bool:
        return (
            self.writer.opened and self.state is not LinkState.CLOSED and self.peer_goodbye is None
        )

    def _refuse_inbound(self, kind: FrameKind) -> None:
        if self.peer_goodbye is not None:
            raise ProtocolError(f"{kind.name} after GOODBYE")
        raise HelloRequired(f"{kind.name} before the HELLO exchange")

    def _handle_control(self, frame: Frame) -> None:
        kind = frame.kind
        if kind is FrameKind.HELLO:
            if self.peer_hello is not None:
                raise ProtocolError("second HELLO")
            hello = decode_hello(frame.body)
            self.peer_hello = hello
            self._decoder.max_frame_size = self._max_frame_size
            self._holding = self.writer.hello_sent  # the dialer opens here: hold until admit()
            if self.writer.hello_sent:
                self._open()
            self._events.append(HelloReceived(hello))
            return
        if self.peer_hello is None or (not self.writer.opened and kind is not FrameKind.GOODBYE):
            # A peer may leave during setup, but nothing else precedes both HELLOs.
            raise HelloRequired(f"{kind.name} before the HELLO exchange")
        if self.peer_goodbye is not None:
            raise ProtocolError(f"{kind.name} after GOODBYE")
        if kind is FrameKind.RESPONSE or kind is FrameKind.ERROR:
            headers = None
            body = frame.body
            if frame.flags:
                _, headers, body = split_sections(frame.flags, body, self._max_header_bytes)
            # The frame's shape first, then whether it answers a request of ours.
            if kind is FrameKind.ERROR:
                if len(body) < 4:
                    raise MalformedFrame("ERROR frame body shorter than its code")
                code, text = decode_code_text(body)
                self.writer.answered()
                self._events.append(ErrorReceived(frame.request_id, code, text, headers))
            elif frame.cmd_id == 0 and body:
                raise MalformedFrame("RESPONSE without cmd_id has a body")
            else:
                self.writer.answered()
                self._events.append(ResponseReceived(frame.request_id, frame.cmd_id, body, headers))
        elif kind is FrameKind.CANCEL:
            self._events.append(CancelReceived(frame.request_id))
        elif kind is FrameKind.DRAINING:
            self.peer_draining = True
            self._events.append(DrainingReceived())
        elif kind is FrameKind.CREDIT:
            amount = int.from_bytes(frame.body, "big")
            self.writer.refund(amount, self.peer_hello.window)
            self._events.append(CreditReceived(amount))
        elif kind is FrameKind.GOODBYE:
            code, reason = decode_code_text(frame.body)
            goodbye = GoodbyeReceived(code, reason)
            self.peer_goodbye = goodbye
            if self.state is LinkState.CLOSING:
                self.state = LinkState.CLOSED
            self._events.append(goodbye)
        else:  # pragma: no cover - the decoder only returns known kinds
            raise ProtocolError(f"unexpected {kind.name}")

    def _fail(self, exc: ProtocolError) -> None:
        self.state = LinkState.CLOSED
        self._holding = False
        self.writer.fail()
        self._events.append(LinkFailed(exc.code, exc.reason))

    # -- commands ----------------------------------------------------------

    def send_hello(self, hello: Hello) -> None:
        """Send our HELLO (once; a no-op once the link is closing or failed); then
        call `data_to_send()`.  Messages queued before it follow it."""
        writer = self.writer
        if writer.hello_sent:
            raise RuntimeError("HELLO already sent")
        writer.hello_sent = True
        if writer.done:
            return
        writer.out.append(encode_frame(FrameKind.HELLO, encode_hello(hello)))
        if self.peer_hello is not None:
            self._open()

    def _open(self) -> None:
        # Both HELLOs exchanged (even if this side is already closing): the peer's
        # window becomes usable credit.
        if self.state is LinkState.HELLO:
            self.state = LinkState.OPEN
        if self.peer_hello is not None:
            self.writer.open(self.peer_hello.window)

    def send_goodbye(self, code: int = 0, reason: str = "") -> int:
        """Close gracefully: send GOODBYE, after which nothing more is sent; then
        call `data_to_send()`.  Returns how many messages still queued for credit
        were dropped (wait for ``writer.credit.pending_bytes`` to reach 0 if they matter)."""
        if self.state is LinkState.CLOSED or self.state is LinkState.CLOSING:
            return 0
        writer = self.writer
        dropped = writer.stop()
        if not writer.hello_sent:  # a peer refuses anything before our HELLO: say nothing
            self.state = LinkState.CLOSED
            return dropped
        writer.out.append(encode_frame(FrameKind.GOODBYE, encode_code_text(code, reason, 256)))
        self.state = LinkState.CLOSED if self.peer_goodbye is not None else LinkState.CLOSING
        return dropped

    def consumed(self, size: int, *, idle: bool) -> None:
        """Report that received MESSAGE/REQUEST frames of `size` bytes were handled;
        credit goes back when due (`ReceiveCredit.consumed`).  Then call
        `data_to_send()`."""
        grant = self.receive.consumed(size, idle=idle, granting=self.state is LinkState.OPEN)
        if grant:
            self.writer.out.append(encode_frame(FrameKind.CREDIT, grant.to_bytes(4, "big")))
