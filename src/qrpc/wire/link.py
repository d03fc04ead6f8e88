"""`LinkProtocol`: the sans-IO state of one qrpc link (one QUIC connection).

Rules this module protects:

- Each side sends HELLO first and exactly once.  A frame other than HELLO
  before both HELLOs have been exchanged closes the link with
  HELLO_REQUIRED; a second HELLO with PROTOCOL_VIOLATION.
- The sender of every frame is the authenticated peer of the connection.
  No frame carries a sender field, so none can claim another origin
  (DESIGN §3).
- Message credit (``docs/protocol.md``): MESSAGE and REQUEST frames,
  counted header + body, may only be sent within the credit the receiver
  granted (its HELLO window, then CREDIT frames).  A peer that exceeds it is
  closed with FLOW_CONTROL.  The receiver grants credit back only once the
  application has *handled* a frame (`consumed`), so a slow handler pushes
  back on the sender instead of growing memory: QUIC flow control alone does
  not (SECURITY-NOTES §2.6).  RESPONSE, ERROR, GOODBYE and CREDIT frames are
  exempt, so a reply can always reach a requester whose inbound window is
  full of messages.
- After GOODBYE nothing more is sent; a frame after the peer's GOODBYE is a
  PROTOCOL_VIOLATION.
- Any `ProtocolError` moves the link to CLOSED and emits one `LinkFailed`
  carrying the code to close the connection with.

Inputs are `receive_data(data)`; commands are the `send_*` methods and
`consumed`; outputs are pulled with `events()` and `data_to_send()`.
Nothing here reads the clock, touches a socket or awaits.
"""

from __future__ import annotations

from collections import deque
from enum import Enum
from typing import Final

from qrpc.errors import (
    FlowControlViolation,
    HelloRequired,
    MalformedFrame,
    ProtocolError,
)
from qrpc.wire.decoder import FrameDecoder
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
from qrpc.wire.frames import (
    HEADER,
    HEADER_SIZE,
    PROTOCOL_VERSION,
    Frame,
    FrameKind,
    decode_code_text,
    encode_code_text,
    encode_frame,
)
from qrpc.wire.hello import Hello, decode_hello, encode_hello

__all__ = ["LinkProtocol", "LinkState"]

_MESSAGE: Final = int(FrameKind.MESSAGE)
_REQUEST: Final = int(FrameKind.REQUEST)
_RESPONSE: Final = int(FrameKind.RESPONSE)
_CREDIT_FRACTION: Final = 8  # grant credit back once 1/8 of the window is consumed
_IDLE_CREDIT_FRACTION: Final = 64  # ...or, when idle, once 1/64 is (see `consumed`)
_MAX_CREDIT: Final = 0xFFFF_FFFF


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
    """

    __slots__ = (
        "_credit",
        "_decoder",
        "_done_sending",
        "_events",
        "_hello_sent",
        "_idle_grant_at",
        "_out",
        "_pending",
        "_recv_used",
        "_unreported",
        "credit_step",
        "peer_goodbye",
        "peer_hello",
        "pending_bytes",
        "state",
        "unsent_bytes",
        "window",
    )

    def __init__(self, *, max_frame_size: int, window: int) -> None:
        self.window = window
        self.state = LinkState.HELLO
        self.peer_hello: Hello | None = None
        self.peer_goodbye: GoodbyeReceived | None = None
        self.pending_bytes = 0
        "Bytes of MESSAGE/REQUEST frames queued here, waiting for credit."
        self.unsent_bytes = 0
        "Bytes of MESSAGE/REQUEST frames released but not yet pulled by `data_to_send()`."
        self._decoder = FrameDecoder(max_frame_size)
        self._hello_sent = False
        self._done_sending = False
        self._out: list[bytes] = []
        self._events: list[LinkEvent] = []
        self._credit = 0
        self._pending: deque[tuple[bytes, bytes, int]] = deque()
        self._recv_used = 0
        self._unreported = 0
        self.credit_step = max(1, window // _CREDIT_FRACTION)
        "Handled bytes after which `consumed()` grants credit back, idle or not."
        # Idle grants wait for 1/64 of the window, but never so long that the
        # largest frame this side accepts would not fit in the peer's credit.
        self._idle_grant_at = max(
            1, min(window // _IDLE_CREDIT_FRACTION, window - max_frame_size - HEADER_SIZE + 1)
        )

    # -- outputs -----------------------------------------------------------

    def events(self) -> list[LinkEvent]:
        """Return and forget the events produced since the last call."""
        events = self._events
        self._events = []
        return events

    def data_to_send(self) -> bytes:
        """Return and forget the bytes to write to the link's stream."""
        out = self._out
        if not out:
            return b""
        self._out = []
        self.unsent_bytes = 0
        return out[0] if len(out) == 1 else b"".join(out)

    @property
    def send_credit(self) -> int:
        """Bytes of MESSAGE/REQUEST frames that may be sent right now."""
        return self._credit

    @property
    def inbound_bytes(self) -> int:
        """Bytes of received MESSAGE/REQUEST frames not yet re-granted as credit."""
        return self._recv_used

    # -- input -------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Feed bytes received on the link's stream; then call `events()` and
        `data_to_send()`."""
        if self.state is LinkState.CLOSED:
            return
        try:
            if not self._decoder.feed(data):
                return  # inside a large frame's body: nothing to parse yet
        except ProtocolError as exc:
            self._fail(exc)
            return
        frames: list[tuple[int, int, int, bytes]] = []
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
        if error is not None:
            self._fail(error)

    def _handle_frames(self, frames: list[tuple[int, int, int, bytes]]) -> None:
        events = self._events
        append = events.append
        window = self.window
        used = self._recv_used
        receiving = self._receiving()
        for kind, cmd_id, request_id, body in frames:
            if kind in (_MESSAGE, _REQUEST):
                if not receiving:
                    self._recv_used = used
                    self._refuse_inbound(FrameKind(kind))
                size = HEADER_SIZE + len(body)
                used += size
                if used > window:
                    self._recv_used = used - size
                    raise FlowControlViolation(f"{used} bytes outstanding, window is {window}")
                if kind == _MESSAGE:
                    append(MessageReceived(cmd_id, body, size))
                else:
                    append(RequestReceived(cmd_id, request_id, body, size))
            else:
                self._recv_used = used
                self._handle_control(Frame(FrameKind(kind), cmd_id, request_id, body))
                used = self._recv_used
                receiving = self._receiving()
        self._recv_used = used

    def _receiving(self) -> bool:
        state = self.state
        return (state is LinkState.OPEN or state is LinkState.CLOSING) and self.peer_goodbye is None

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
            self._credit = hello.window
            if self._hello_sent and self.state is LinkState.HELLO:
                self.state = LinkState.OPEN
            self._release_pending()
            self._events.append(HelloReceived(hello))
            return
        if self.peer_hello is None or (
            self.state is LinkState.HELLO and kind is not FrameKind.GOODBYE
        ):
            # A peer may leave during setup, but nothing else precedes both HELLOs.
            raise HelloRequired(f"{kind.name} before the HELLO exchange")
        if self.peer_goodbye is not None:
            raise ProtocolError(f"{kind.name} after GOODBYE")
        if kind is FrameKind.RESPONSE:
            if frame.cmd_id == 0 and frame.body:
                raise MalformedFrame("RESPONSE without cmd_id has a body")
            self._events.append(ResponseReceived(frame.request_id, frame.cmd_id, frame.body))
        elif kind is FrameKind.ERROR:
            code, text = decode_code_text(frame.body)
            self._events.append(ErrorReceived(frame.request_id, code, text))
        elif kind is FrameKind.CREDIT:
            amount = int.from_bytes(frame.body, "big")
            self._credit = min(self._credit + amount, _MAX_CREDIT)
            self._release_pending()
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
        self._done_sending = True
        self._pending.clear()
        self.pending_bytes = 0
        self._out = []
        self._events.append(LinkFailed(exc.code, exc.reason))

    # -- commands ----------------------------------------------------------

    def send_hello(self, hello: Hello) -> None:
        """Send our HELLO (once); then call `data_to_send()`."""
        if self._hello_sent:
            raise RuntimeError("HELLO already sent")
        self._hello_sent = True
        self._out.append(encode_frame(FrameKind.HELLO, encode_hello(hello)))
        if self.peer_hello is not None:
            self.state = LinkState.OPEN

    def send_message(self, cmd_id: int, body: bytes) -> None:
        """Send a one-way message, or queue it until credit arrives; then call
        `data_to_send()`.  Check `pending_bytes` for backpressure."""
        self._send_counted(HEADER.pack(PROTOCOL_VERSION, _MESSAGE, 0, len(body), cmd_id, 0), body)

    def send_request(self, cmd_id: int, request_id: int, body: bytes) -> None:
        """Send a request (credit rules as `send_message`); then call `data_to_send()`."""
        header = HEADER.pack(PROTOCOL_VERSION, _REQUEST, 0, len(body), cmd_id, request_id)
        self._send_counted(header, body)

    def _send_counted(self, header: bytes, body: bytes) -> None:
        if self._done_sending:
            return  # after our GOODBYE nothing more is sent
        size = HEADER_SIZE + len(body)
        if self._pending or size > self._credit:
            self._pending.append((header, body, size))
            self.pending_bytes += size
            return
        self._credit -= size
        self.unsent_bytes += size
        out = self._out
        out.append(header)
        out.append(body)

    def _release_pending(self) -> None:
        pending = self._pending
        out = self._out
        while pending and pending[0][2] <= self._credit:
            header, body, size = pending.popleft()
            self._credit -= size
            self.pending_bytes -= size
            self.unsent_bytes += size
            out.append(header)
            out.append(body)

    def send_response(self, request_id: int, cmd_id: int, body: bytes) -> None:
        """Answer a request (exempt from credit); then call `data_to_send()`.

        Like every command, a no-op once our GOODBYE is sent."""
        if self._done_sending:
            return
        out = self._out
        out.append(HEADER.pack(PROTOCOL_VERSION, _RESPONSE, 0, len(body), cmd_id, request_id))
        out.append(body)

    def send_error(self, request_id: int, code: int, text: str, limit: int) -> None:
        """Fail a request with `code` and `text` (cut to `limit` bytes); then call
        `data_to_send()`."""
        if self._done_sending:
            return
        body = encode_code_text(code, text, limit)
        self._out.append(encode_frame(FrameKind.ERROR, body, request_id=request_id))

    def send_goodbye(self, code: int = 0, reason: str = "") -> int:
        """Close gracefully: send GOODBYE, after which nothing more is sent;
        then call `data_to_send()`.

        Messages still queued for credit are dropped: wait for
        `pending_bytes` to reach 0 first if they matter.

        Returns:
            How many queued messages were dropped.
        """
        if self.state is LinkState.CLOSED or self.state is LinkState.CLOSING:
            return 0
        dropped = len(self._pending)
        self._pending.clear()
        self.pending_bytes = 0
        self._out.append(encode_frame(FrameKind.GOODBYE, encode_code_text(code, reason, 256)))
        self._done_sending = True
        self.state = LinkState.CLOSED if self.peer_goodbye is not None else LinkState.CLOSING
        return dropped

    def consumed(self, size: int, *, idle: bool) -> None:
        """Report that a received MESSAGE/REQUEST of `size` bytes was handled.

        Credit goes back to the peer once 1/8 of the window has been handled,
        or, when `idle` (nothing else from this peer waits to be handled), once
        1/64 has: a quiet link ends with all but less than 1/64 of its window
        open, and always with room for the largest frame this side accepts.
        Small exchanges (a request and its reply) so cost no CREDIT frame, and
        no packet of their own.  Then call `data_to_send()`.
        """
        unreported = self._unreported + size
        if self.state is not LinkState.OPEN:
            # Closing: no more credit goes out, the accounting just ends.
            self._unreported = 0
            self._recv_used -= unreported
        elif unreported >= self.credit_step or (idle and unreported >= self._idle_grant_at):
            self._unreported = 0
            self._recv_used -= unreported
            self._out.append(encode_frame(FrameKind.CREDIT, unreported.to_bytes(4, "big")))
        else:
            self._unreported = unreported
