"""Message credit, both ways: what a link may send, and what it grants back.

MESSAGE and REQUEST frames, counted header + body, may only be sent within
the credit the receiver granted: its HELLO window at first, then what its
CREDIT frames return.  The receiver returns credit only once the
application has *handled* frames, so a slow handler pushes back on the
sender instead of growing memory (QUIC flow control alone does not:
aioquic raises its windows as bytes arrive, not as they are read).

- `SendCredit`: the credit the peer granted and the frames waiting for it.
- `ReceiveCredit`: the window this side grants, what the peer has used of
  it, and when handled bytes are worth a CREDIT frame.

Both are plain bookkeeping for `LinkProtocol`; neither builds frames.
"""

from __future__ import annotations

from collections import deque
from typing import Final

from qrpc.errors import FlowControlViolation
from qrpc.wire.frames import HEADER_SIZE

__all__ = ["ReceiveCredit", "SendCredit"]

_CREDIT_FRACTION: Final = 8  # grant credit back once 1/8 of the window is consumed
_IDLE_CREDIT_FRACTION: Final = 64  # ...or, when idle, once 1/64 is (see `consumed`)
_MAX_CREDIT: Final = 0xFFFF_FFFF


class SendCredit:
    """Credit for sending MESSAGE/REQUEST frames, and the frames waiting for it.

    `LinkProtocol` spends it inline on its hot path: a frame goes out if
    nothing is queued and it fits in `available`, else it joins `pending`.
    """

    __slots__ = ("available", "pending", "pending_bytes")

    def __init__(self) -> None:
        self.available = 0
        "Bytes that may be sent right now (0 until the peer's HELLO)."
        self.pending: deque[tuple[bytes, bytes, int]] = deque()
        "(header, body, size) of frames waiting for credit, in order."
        self.pending_bytes = 0
        "Total size of `pending`."

    def grant(self, amount: int) -> None:
        """The peer granted `amount` bytes: its HELLO window."""
        self.available = min(self.available + amount, _MAX_CREDIT)

    def refund(self, amount: int, window: int) -> None:
        """The peer returned `amount` bytes (a CREDIT frame) of its `window`.

        Raises:
            FlowControlViolation: it returned more than was ever spent, which
                would let the peer, not this side, decide how much is buffered.
        """
        if self.available + amount > window:
            raise FlowControlViolation(
                f"CREDIT of {amount} bytes: {self.available + amount} would exceed "
                f"the {window}-byte window"
            )
        self.available += amount

    def release(self, out: list[bytes]) -> int:
        """Append to `out` the queued frames the credit now covers; return their bytes."""
        pending = self.pending
        released = 0
        while pending and pending[0][2] <= self.available:
            header, body, size = pending.popleft()
            self.available -= size
            released += size
            out.append(header)
            out.append(body)
        self.pending_bytes -= released
        return released

    def clear(self) -> int:
        """Drop every queued frame; return how many there were."""
        dropped = len(self.pending)
        self.pending.clear()
        self.pending_bytes = 0
        return dropped


class ReceiveCredit:
    """The window this side grants and when handled bytes go back as credit.

    Args:
        window: bytes of received-but-unhandled frames the peer may have.
        max_frame_size: the largest frame body this side accepts.
    """

    __slots__ = ("idle_grant_at", "step", "unreported", "used", "window")

    def __init__(self, window: int, max_frame_size: int) -> None:
        self.window = window
        self.used = 0
        "Bytes received and not yet granted back."
        self.unreported = 0
        "Bytes handled but not yet granted back."
        self.step = max(1, window // _CREDIT_FRACTION)
        "Handled bytes after which credit goes back, idle or not."
        # Idle grants wait for 1/64 of the window, but never so long that the
        # largest frame this side accepts would not fit in the peer's credit.
        self.idle_grant_at = max(
            1, min(window // _IDLE_CREDIT_FRACTION, window - max_frame_size - HEADER_SIZE + 1)
        )

    def consumed(self, size: int, *, idle: bool, granting: bool) -> int:
        """`size` more bytes were handled; return the credit to grant now (0: none yet).

        Credit goes back once 1/8 of the window has been handled, or, when
        `idle` (nothing else from the peer waits), once 1/64 has: a quiet
        link ends with all but less than 1/64 of its window open, and always
        with room for the largest frame this side accepts.  Small exchanges
        (a request and its reply) so cost no CREDIT frame.  When not
        `granting` (the link is closing), the accounting just ends.
        """
        unreported = self.unreported + size
        if not granting or unreported >= self.step or (idle and unreported >= self.idle_grant_at):
            self.unreported = 0
            self.used -= unreported
            return unreported if granting else 0
        self.unreported = unreported
        return 0
