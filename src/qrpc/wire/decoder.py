"""`FrameDecoder`: turns a byte stream, fed in arbitrary chunks, into frames.

Rules it enforces, in the order it checks them (each failure raises a
`ProtocolError` subclass whose `code` closes the link):

1. the version byte is `PROTOCOL_VERSION` (`UnsupportedVersion`);
2. the kind is a known `FrameKind` (`UnknownFrameKind`);
3. flags name only sections the kind may carry (`MalformedFrame`);
4. the declared body length is at most `max_frame_size`
   (`FrameTooLarge`) -- checked on the header alone, *before* any of the
   body is buffered;
5. cmd_id / request_id / body length are what the kind allows
   (`MalformedFrame`).

The sections a frame's flags announce stay in its body; the link splits
them off (`qrpc.wire.sections`).

Bound: once `next_frame()` has returned None, the decoder holds fewer than
``HEADER_SIZE + max_frame_size`` bytes, whatever it was fed.  After an error
the decoder is unusable (the stream is desynchronised); close the link.
"""

from __future__ import annotations

from typing import Final, cast

from qrpc.errors import (
    FrameTooLarge,
    MalformedFrame,
    ProtocolError,
    UnknownFrameKind,
    UnsupportedVersion,
)
from qrpc.wire.frames import (
    DEFAULT_MAX_FRAME_SIZE,
    HEADER,
    HEADER_SIZE,
    PROTOCOL_VERSION,
    Flags,
    Frame,
    FrameKind,
)

__all__ = ["FrameDecoder"]

_KINDS: Final = {k.value: k for k in FrameKind}
_MESSAGE: Final = int(FrameKind.MESSAGE)
_SMALL: Final = 4096  # bytes: a leftover this small is re-joined as bytes
_NEEDS_REQUEST_ID: Final = frozenset(
    {FrameKind.REQUEST, FrameKind.RESPONSE, FrameKind.ERROR, FrameKind.CANCEL}
)
_HAS_CMD_ID: Final = frozenset({FrameKind.MESSAGE, FrameKind.REQUEST, FrameKind.RESPONSE})
_ALLOWED_FLAGS: Final = {
    FrameKind.MESSAGE: Flags.HEADERS,
    FrameKind.REQUEST: Flags.HEADERS | Flags.DEADLINE,
    FrameKind.RESPONSE: Flags.HEADERS,
    FrameKind.ERROR: Flags.HEADERS,
}
_EMPTY_BODY: Final = frozenset({FrameKind.CANCEL, FrameKind.DRAINING})
_CREDIT_BODY: Final = 4  # bytes: a u32
_CODE: Final = 4  # bytes: the u32 code opening GOODBYE (and ERROR, after its sections)
DecodedFrame = tuple[int, int, int, int, bytes]
"(kind, flags, cmd_id, request_id, body): the hot-path form of a `Frame`."


class FrameDecoder:
    """Incremental, sans-IO frame decoder: `feed(data)`, then `next_frame()` until None."""

    __slots__ = ("_broken", "_buf", "_pos", "_wanted", "max_frame_size")

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        self.max_frame_size = max_frame_size
        self._buf: bytes | bytearray = b""
        self._pos = 0
        self._wanted = 0  # buffer length needed before the next frame can complete
        self._broken: ProtocolError | None = None

    @property
    def buffered(self) -> int:
        """Bytes fed but not yet returned as frames."""
        return len(self._buf) - self._pos

    def feed(self, data: bytes) -> bool:
        """Append received bytes; then call `next_frame()` until it returns None.

        Returns False when the bytes buffered so far cannot complete a frame
        (the middle of a large body): there is nothing to parse yet.
        """
        if self._broken is not None:
            raise self._broken
        buf = self._buf
        if self._pos >= len(buf):
            # Nothing left over: parse straight from the caller's bytes (an
            # immutable copy, so a later feed never appends to the caller's buffer).
            self._buf = data if type(data) is bytes else bytes(data)
            self._pos = 0
            self._wanted = 0
            return True
        rest = len(buf) - self._pos
        if rest <= _SMALL:
            # Small leftover (the usual partial frame at a datagram's end): one
            # immutable buffer, so bodies are plain fast slices.
            buf = bytes(memoryview(buf)[self._pos :]) + data
            self._wanted = max(0, self._wanted - self._pos)
            self._pos = 0
        else:
            if not isinstance(buf, bytearray) or self._pos:
                buf = bytearray(memoryview(buf)[self._pos :])
                self._wanted = max(0, self._wanted - self._pos)
                self._pos = 0
            buf += data  # large frames accumulate in place: linear, not quadratic
        self._buf = buf
        return len(buf) >= self._wanted

    def next_frame(self) -> Frame | None:
        """Return the next complete frame, or None if more bytes are needed.

        Raises:
            ProtocolError: the stream broke a rule listed in the module docstring.
        """
        buf = self._buf
        pos = self._pos
        if len(buf) - pos < HEADER_SIZE:
            return None
        version, kind, flags, length, cmd_id, request_id = HEADER.unpack_from(buf, pos)
        frame_kind = self._check(version, kind, flags, length, cmd_id, request_id)
        start = pos + HEADER_SIZE
        end = start + length
        if len(buf) < end:
            return None
        body = buf[start:end] if type(buf) is bytes else bytes(memoryview(buf)[start:end])
        self._pos = end
        return Frame(frame_kind, flags, cmd_id, request_id, body)

    def drain_into(self, out: list[DecodedFrame]) -> None:
        """Append every complete frame as a ``(kind, flags, cmd_id, request_id, body)``
        tuple to `out` -- the hot-path form of calling `next_frame()` until None.

        Frames before a bad one are appended before the error is raised.

        Raises:
            ProtocolError: as `next_frame`.
        """
        buf = self._buf
        size = len(buf)
        if size < self._wanted:
            return  # still inside a partial frame: nothing to parse yet
        pos = self._pos
        limit = self.max_frame_size
        unpack = HEADER.unpack_from
        is_bytes = type(buf) is bytes
        append = out.append
        while size - pos >= HEADER_SIZE:
            version, kind, flags, length, cmd_id, request_id = unpack(buf, pos)
            if not (
                kind == _MESSAGE
                and version == PROTOCOL_VERSION
                and not flags
                and not request_id
                and length <= limit
            ):  # anything but a plain MESSAGE takes the full check
                self._pos = pos
                kind = self._check(version, kind, flags, length, cmd_id, request_id)
            start = pos + HEADER_SIZE
            end = start + length
            if end > size:
                self._pos = pos
                self._wanted = end
                return
            body = buf[start:end] if is_bytes else bytes(memoryview(buf)[start:end])
            append((kind, flags, cmd_id, request_id, body))  # type: ignore[arg-type]
            pos = end
        self._pos = pos
        self._wanted = pos + HEADER_SIZE

    def _check(
        self, version: int, kind: int, flags: int, length: int, cmd_id: int, request_id: int
    ) -> FrameKind:
        error: ProtocolError | None = None
        frame_kind = _KINDS.get(kind)
        if version != PROTOCOL_VERSION:
            error = UnsupportedVersion(f"frame version {version}, expected {PROTOCOL_VERSION}")
        elif frame_kind is None:
            error = UnknownFrameKind(f"frame kind {kind}")
        elif flags & ~_ALLOWED_FLAGS.get(frame_kind, 0):
            error = MalformedFrame(f"{frame_kind.name} frame with flags {flags:#x}")
        elif length > self.max_frame_size:
            error = FrameTooLarge(
                f"{frame_kind.name} frame declares {length} bytes, limit {self.max_frame_size}"
            )
        elif (request_id != 0) != (frame_kind in _NEEDS_REQUEST_ID):
            error = MalformedFrame(f"{frame_kind.name} frame with request_id {request_id}")
        elif cmd_id and frame_kind not in _HAS_CMD_ID:
            error = MalformedFrame(f"{frame_kind.name} frame with cmd_id {cmd_id}")
        elif length < _CODE and (
            frame_kind is FrameKind.GOODBYE or (frame_kind is FrameKind.ERROR and not flags)
        ):
            error = MalformedFrame(f"{frame_kind.name} frame body shorter than its code")
        elif frame_kind is FrameKind.CREDIT and length != _CREDIT_BODY:
            error = MalformedFrame(f"CREDIT frame body of {length} bytes")
        elif length and frame_kind in _EMPTY_BODY:
            error = MalformedFrame(f"{frame_kind.name} frame with a {length}-byte body")
        if error is None:
            return cast("FrameKind", frame_kind)  # no error means a known kind
        self._broken = error
        self._buf = b""
        self._pos = 0
        raise error
