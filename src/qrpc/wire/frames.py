"""The qrpc frame: a fixed 16-byte header followed by a body.

Byte layout (all integers big-endian; see ``docs/protocol.md``)::

    offset  size  field
    0       1     version      PROTOCOL_VERSION (2)
    1       1     kind         FrameKind
    2       2     flags        Flags: sections that open the body (else 0)
    4       4     length       body length in bytes (<= the receiver's max frame size)
    8       4     cmd_id       MESSAGE, REQUEST, RESPONSE; else 0
    12      4     request_id   REQUEST, RESPONSE, ERROR, CANCEL (>= 1); else 0
    16      ...   body         [deadline section][headers section] payload

The optional sections (`qrpc.wire.sections`) cost nothing when absent: a
frame without flags is header plus payload, as in version 1.

A fixed header costs a few bytes on small messages but decodes with one
`struct.unpack_from`, which matters more at 150k frames/s in Python.
"""

from __future__ import annotations

import struct
from enum import IntEnum
from typing import Final, NamedTuple

__all__ = [
    "DEFAULT_MAX_FRAME_SIZE",
    "HEADER",
    "HEADER_SIZE",
    "MAX_ID",
    "PROTOCOL_VERSION",
    "Flags",
    "Frame",
    "FrameKind",
    "encode_code_text",
    "encode_frame",
    "encode_header",
]

PROTOCOL_VERSION: Final = 2
HEADER: Final = struct.Struct("!BBHIII")
HEADER_SIZE: Final = HEADER.size  # bytes (16)
DEFAULT_MAX_FRAME_SIZE: Final = 4 * 1024 * 1024  # bytes of body
MAX_ID: Final = 0xFFFF_FFFF  # largest cmd_id / request_id (u32)
_CODE: Final = struct.Struct("!I")


class FrameKind(IntEnum):
    """What a frame carries; the value is the header's kind byte."""

    HELLO = 1
    """Node ID, incarnation, codecs and limits; the first frame each way."""
    MESSAGE = 2
    """A one-way message: cmd_id + encoded body."""
    REQUEST = 3
    """A message that expects a RESPONSE or ERROR with the same request_id."""
    RESPONSE = 4
    """The reply to a REQUEST; cmd_id 0 with an empty body means "no value"."""
    ERROR = 5
    """A REQUEST failed remotely: body is a u32 code and UTF-8 text."""
    GOODBYE = 6
    """Graceful close: body is a u32 code and UTF-8 reason; nothing follows."""
    CREDIT = 7
    """Grants the peer more message credit: body is a u32 byte count."""
    CANCEL = 8
    """The sender no longer waits for its request `request_id`: stop its handler
    (it is still answered, with ERROR CANCELLED).  Empty body."""
    DRAINING = 9
    """The sender is shutting down: send it no new REQUEST.  Empty body."""


class Flags:
    """Bits of the header's flags field: which sections open the body."""

    DEADLINE = 0x0001
    """REQUEST only: a u32 section, the milliseconds the requester still waits."""
    HEADERS = 0x0002
    """MESSAGE, REQUEST, RESPONSE, ERROR: a headers section (u16 length + msgpack map)."""


class Frame(NamedTuple):
    """One decoded frame (its body still holds the sections its flags announce)."""

    kind: FrameKind
    flags: int
    cmd_id: int
    request_id: int
    body: bytes


def encode_header(
    kind: int, length: int, cmd_id: int = 0, request_id: int = 0, flags: int = 0
) -> bytes:
    """Return the 16-byte header of a frame whose body is `length` bytes."""
    return HEADER.pack(PROTOCOL_VERSION, kind, flags, length, cmd_id, request_id)


def encode_frame(
    kind: int, body: bytes = b"", cmd_id: int = 0, request_id: int = 0, flags: int = 0
) -> bytes:
    """Return a complete frame (header and body)."""
    return HEADER.pack(PROTOCOL_VERSION, kind, flags, len(body), cmd_id, request_id) + body


def encode_code_text(code: int, text: str, limit: int) -> bytes:
    """Return an ERROR or GOODBYE body: u32 `code`, then `text` cut to fit `limit` bytes."""
    raw = text.encode("utf-8", "replace")[: max(0, limit - _CODE.size)]
    return _CODE.pack(code) + raw


def decode_code_text(body: bytes) -> tuple[int, str]:
    """Split an ERROR or GOODBYE body; the caller has checked it is >= 4 bytes."""
    (code,) = _CODE.unpack_from(body)
    return code, body[_CODE.size :].decode("utf-8", "replace")
