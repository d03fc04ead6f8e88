"""`FrameWriter`: the sending direction of one link, without IO.

It owns what this side sends on the link's stream: the bytes queued for it
(pulled with `take`), the peer's message credit and the MESSAGE/REQUEST
frames waiting for it, the count of requests the peer has yet to answer,
and whether anything more may be sent.  `LinkProtocol` owns one
(``link.writer``) and tells it when the link opens, when credit comes back
and when the link fails; the application sends through its commands.

- MESSAGE and REQUEST frames go out within the peer's credit, in order;
  the rest wait (``credit.pending_bytes`` is the backpressure signal).
- RESPONSE, ERROR, CANCEL, DRAINING and CREDIT are exempt from credit.
- Once `done` (this side sent GOODBYE, or the link failed) messages and
  requests raise `PeerDisconnected` and every other command is a no-op.
"""

from __future__ import annotations

from typing import Final

from qrpc.errors import PeerDisconnected, ProtocolError
from qrpc.wire.credit import SendCredit
from qrpc.wire.frames import HEADER, PROTOCOL_VERSION, Flags, FrameKind, encode_code_text

__all__ = ["FrameWriter"]

_MESSAGE: Final = int(FrameKind.MESSAGE)
_REQUEST: Final = int(FrameKind.REQUEST)
_RESPONSE: Final = int(FrameKind.RESPONSE)
_ERROR: Final = int(FrameKind.ERROR)
_CANCEL: Final = int(FrameKind.CANCEL)
_DRAINING_FRAME: Final = HEADER.pack(PROTOCOL_VERSION, int(FrameKind.DRAINING), 0, 0, 0, 0)


class FrameWriter:
    """What one side of a link sends (see the module docstring)."""

    __slots__ = (
        "_draining",
        "credit",
        "done",
        "hello_sent",
        "opened",
        "out",
        "unanswered",
        "unsent_bytes",
    )

    def __init__(self) -> None:
        self.credit = SendCredit()
        """Credit the peer grants (``credit.available``) and the MESSAGE/REQUEST
        frames waiting for it (``credit.pending_bytes``)."""
        self.out: list[bytes] = []
        "Bytes queued for the stream, in order."
        self.unsent_bytes = 0
        "Bytes of MESSAGE/REQUEST frames released but not yet taken."
        self.unanswered = 0
        "Requests sent minus RESPONSE/ERROR frames received."
        self.hello_sent = False
        self.opened = False
        "Both HELLOs exchanged: the peer's window is credit."
        self.done = False
        "This side said GOODBYE or the link failed: nothing more is sent."
        self._draining = False  # DRAINING asked for before the link opened

    def take(self) -> bytes:
        """Return and forget the bytes queued for the stream."""
        out = self.out
        if not out:
            return b""
        self.out = []
        self.unsent_bytes = 0
        return out[0] if len(out) == 1 else b"".join(out)

    # -- driven by the link ---------------------------------------------------

    def open(self, window: int) -> None:
        """Both HELLOs are exchanged: the peer's HELLO `window` is credit."""
        self.opened = True
        if self._draining and not self.done:
            self.out.append(_DRAINING_FRAME)
        self.credit.grant(window)
        self.unsent_bytes += self.credit.release(self.out)

    def refund(self, amount: int, window: int) -> None:
        """The peer returned `amount` bytes of credit (checked against `window`)."""
        self.credit.refund(amount, window)
        self.unsent_bytes += self.credit.release(self.out)

    def answered(self) -> None:
        """A RESPONSE or ERROR arrived.

        Raises:
            ProtocolError: more answers than requests were sent (forged answers).
        """
        if not self.unanswered:
            raise ProtocolError("a RESPONSE or ERROR for a request that was never sent")
        self.unanswered -= 1

    def stop(self) -> int:
        """Nothing more is sent; drop what waits for credit; return how many frames."""
        self.done = True
        return self.credit.clear()

    def fail(self) -> None:
        """The link failed: drop everything queued."""
        self.stop()
        self.out = []
        self.unsent_bytes = 0

    # -- commands -------------------------------------------------------------

    def message(self, cmd_id: int, body: bytes, headers: bytes = b"") -> None:
        """Send a one-way message, or queue it until credit arrives.

        `headers` is an encoded headers section (`sections.encode_headers`).

        Raises:
            PeerDisconnected: this side sent GOODBYE, or the link failed.
        """
        if headers:
            header = _header(_MESSAGE, Flags.HEADERS, headers, body, cmd_id, 0)
        else:
            header = HEADER.pack(PROTOCOL_VERSION, _MESSAGE, 0, len(body), cmd_id, 0)
        self._counted(header, body)

    def request(
        self, cmd_id: int, request_id: int, body: bytes, deadline: bytes = b"", headers: bytes = b""
    ) -> None:
        """Send a request (credit and errors as `message`); `deadline` is an encoded
        deadline section (`sections.encode_deadline`)."""
        flags = (Flags.DEADLINE if deadline else 0) | (Flags.HEADERS if headers else 0)
        self._counted(_header(_REQUEST, flags, deadline + headers, body, cmd_id, request_id), body)
        self.unanswered += 1

    def _counted(self, header: bytes, body: bytes) -> None:
        if self.done:
            raise PeerDisconnected("the link is closing: nothing more can be sent on it")
        credit = self.credit
        size = len(header) + len(body)
        if credit.pending or size > credit.available:
            credit.pending.append((header, body, size))
            credit.pending_bytes += size
            return
        credit.available -= size
        self.unsent_bytes += size
        out = self.out
        out.append(header)
        out.append(body)

    def response(self, request_id: int, cmd_id: int, body: bytes, headers: bytes = b"") -> None:
        """Answer a request (cmd_id 0 with an empty body: "no value")."""
        if not self.done:
            flags = Flags.HEADERS if headers else 0
            self.out += (_header(_RESPONSE, flags, headers, body, cmd_id, request_id), body)

    def error(
        self, request_id: int, code: int, text: str, limit: int, headers: bytes = b""
    ) -> None:
        """Fail a request with `code` and `text` (cut to `limit` bytes)."""
        if not self.done:
            body = encode_code_text(code, text, limit)
            flags = Flags.HEADERS if headers else 0
            self.out += (_header(_ERROR, flags, headers, body, 0, request_id), body)

    def cancel(self, request_id: int) -> None:
        """This side no longer waits for its request `request_id`: if the request
        still waits for credit it is dropped unsent, else the peer is sent CANCEL."""
        if self.done:
            return
        credit = self.credit
        for index, (header, _, size) in enumerate(credit.pending):
            if header[1] == _REQUEST and int.from_bytes(header[12:16], "big") == request_id:
                del credit.pending[index]
                credit.pending_bytes -= size
                self.unanswered -= 1
                return
        if self.opened:  # before that every request still waits for credit
            self.out.append(HEADER.pack(PROTOCOL_VERSION, _CANCEL, 0, 0, 0, request_id))

    def draining(self) -> None:
        """Tell the peer this side takes no new requests; before both HELLOs are
        exchanged (a peer refuses anything but GOODBYE then) it is sent when the
        link opens."""
        if self.done:
            return
        if self.opened:
            self.out.append(_DRAINING_FRAME)
        else:
            self._draining = True


def _header(
    kind: int, flags: int, prefix: bytes, body: bytes, cmd_id: int, request_id: int
) -> bytes:
    # The frame header, followed by the sections that open the body.
    length = len(prefix) + len(body)
    return HEADER.pack(PROTOCOL_VERSION, kind, flags, length, cmd_id, request_id) + prefix
