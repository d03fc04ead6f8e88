"""The optional sections that open a frame body, announced by the header's flags.

Byte layout, in this order, each present only if its flag is set::

    Flags.DEADLINE   u32        milliseconds the requester still waits (REQUEST only)
    Flags.HEADERS    u16 n      then n bytes: a msgpack map, str keys -> str or bin values
    payload                     the message, encoded with the link's codec

A frame without flags is header plus payload: headers and deadlines cost
nothing when they are not used.

Header rules, checked by the sender (`HeaderError`, nothing sent) and again
by the receiver (the link closes): keys are 1-64 characters of ``a-z 0-9 - _ .``
(lower case, as gRPC metadata), values are str or bytes, at most
`MAX_HEADER_COUNT` entries, and the encoded section at most the receiver's
announced ``max_header_bytes`` (HEADERS_TOO_LARGE).  Keys starting with
``qrpc-`` are reserved for qrpc; ``traceparent`` and ``tracestate`` carry W3C
trace context and belong to tracing plugins.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

import msgspec

from qrpc.errors import HeaderError, HeadersTooLarge, MalformedFrame
from qrpc.wire.frames import Flags

__all__ = [
    "EMPTY_HEADERS",
    "MAX_HEADER_COUNT",
    "RESERVED_PREFIX",
    "Headers",
    "check_user_headers",
    "encode_deadline",
    "encode_headers",
    "split_sections",
]

Headers = Mapping[str, str | bytes]
EMPTY_HEADERS: Final[Headers] = MappingProxyType({})
MAX_HEADER_COUNT: Final = 64
RESERVED_PREFIX: Final = "qrpc-"
MAX_DEADLINE_MS: Final = 0xFFFF_FFFF

_KEY: Final = re.compile(r"[a-z0-9_.-]{1,64}")
_U16: Final = struct.Struct("!H")
_U32: Final = struct.Struct("!I")
_encoder: Final = msgspec.msgpack.Encoder()
_decoder: Final = msgspec.msgpack.Decoder(dict[str, Any])  # msgspec has no str | bytes


def check_user_headers(headers: Headers) -> None:
    """Refuse keys an application may not set (the reserved ``qrpc-`` prefix).

    Raises:
        HeaderError: a reserved key.
    """
    for key in headers:
        if isinstance(key, str) and key.startswith(RESERVED_PREFIX):
            raise HeaderError(
                f"header {key!r}: keys starting with {RESERVED_PREFIX!r} are reserved"
            )


def encode_headers(headers: Headers, limit: int) -> bytes:
    """Return the headers section for `headers` (empty bytes for no headers).

    Args:
        headers: str keys (see the module rules) to str or bytes values.
        limit: the receiver's ``max_header_bytes``.

    Raises:
        HeaderError: a key or value breaks a rule, or the section exceeds `limit`.
    """
    if not headers:
        return b""
    if len(headers) > MAX_HEADER_COUNT:
        raise HeaderError(f"{len(headers)} headers, at most {MAX_HEADER_COUNT} are allowed")
    for key, value in headers.items():
        if not isinstance(key, str) or _KEY.fullmatch(key) is None:
            raise HeaderError(f"header key {key!r}: use 1-64 characters of a-z, 0-9, '-', '_', '.'")
        if not isinstance(value, str | bytes):
            raise HeaderError(
                f"header {key!r}: the value must be str or bytes, not {type(value).__name__}"
            )
    try:
        encoded = _encoder.encode(dict(headers))
    except UnicodeEncodeError as exc:
        raise HeaderError(f"a header is not encodable as UTF-8: {exc.reason}") from None
    if len(encoded) > limit:
        raise HeaderError(f"headers take {len(encoded)} bytes, the peer accepts {limit}")
    return _U16.pack(len(encoded)) + encoded


def encode_deadline(seconds: float) -> bytes:
    """Return the deadline section: `seconds` left, in whole milliseconds rounded
    down (at least 1), so the peer's deadline never runs past the requester's
    by more than the time the request spends in transit."""
    if seconds >= MAX_DEADLINE_MS / 1000:  # includes an unbounded (infinite) wait
        return _U32.pack(MAX_DEADLINE_MS)
    return _U32.pack(max(1, int(seconds * 1000)))


def split_sections(
    flags: int, body: bytes, max_header_bytes: int
) -> tuple[int | None, Headers | None, bytes]:
    """Split a flagged frame body into (deadline in ms, headers, payload).

    The decoder has already checked that `flags` are allowed for the kind.

    Raises:
        MalformedFrame: a section is cut short or does not decode, or breaks a rule.
        HeadersTooLarge: the headers section exceeds `max_header_bytes`.
    """
    pos = 0
    deadline: int | None = None
    headers: Headers | None = None
    if flags & Flags.DEADLINE:
        if len(body) < _U32.size:
            raise MalformedFrame("frame body shorter than its deadline section")
        (deadline,) = _U32.unpack_from(body)
        pos = _U32.size
    if flags & Flags.HEADERS:
        if len(body) - pos < _U16.size:
            raise MalformedFrame("frame body shorter than its headers section")
        (size,) = _U16.unpack_from(body, pos)
        if size > max_header_bytes:
            raise HeadersTooLarge(f"headers of {size} bytes, limit {max_header_bytes}")
        start = pos + _U16.size
        if len(body) - start < size:
            raise MalformedFrame("headers section longer than the frame body")
        headers = _decode_headers(body[start : start + size])
        pos = start + size
    return deadline, headers, body[pos:] if pos else body


def _decode_headers(data: bytes) -> Headers:
    try:
        headers = _decoder.decode(data)
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError) as exc:
        raise MalformedFrame(f"undecodable headers: {exc}") from None
    if len(headers) > MAX_HEADER_COUNT:
        raise MalformedFrame(f"{len(headers)} headers, at most {MAX_HEADER_COUNT}")
    for key, value in headers.items():
        if _KEY.fullmatch(key) is None:
            raise MalformedFrame(f"header key {key[:80]!r} breaks the key rules")
        if not isinstance(value, str | bytes):
            raise MalformedFrame(f"header {key!r}: a {type(value).__name__} value")
    return headers
