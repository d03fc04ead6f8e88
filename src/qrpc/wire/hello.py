"""The HELLO body: what each side tells the other before any message flows.

Encoded with msgpack as an array (``docs/protocol.md``), whatever message
codec the link later uses.  A newer peer may append fields; this version
ignores them, which is how the HELLO grows without a version bump.
"""

from __future__ import annotations

from typing import Annotated, Final

import msgspec

from qrpc.errors import BadHello
from qrpc.ids import is_node_id

__all__ = ["MAX_SCHEMA_SIZE", "MIN_WINDOW", "Hello", "decode_hello", "encode_hello"]

MIN_WINDOW: Final = 1024  # bytes: smallest credit window / max frame size a peer may announce
MAX_SCHEMA_SIZE: Final = 48 * 1024  # bytes: the registry description in a HELLO
_U32 = Annotated[int, msgspec.Meta(ge=0, le=0xFFFF_FFFF)]
_U63 = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]  # msgspec bounds must fit an int64
_CodecName = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class Hello(msgspec.Struct, array_like=True, frozen=True):
    """One side's HELLO."""

    node_id: Annotated[str, msgspec.Meta(min_length=1, max_length=63)]
    """The sender's node ID; must match the identity in its certificate."""
    incarnation: _U63
    """Random per node start: tells a restarted peer from a second link of a live one."""
    codecs: Annotated[list[_CodecName], msgspec.Meta(min_length=1, max_length=16)]
    """Dialer: the codecs it accepts, preferred first.  Acceptor: the one it chose."""
    max_frame_size: _U32
    """Largest frame body, in bytes, the sender accepts."""
    window: _U32
    """Message credit, in bytes, the sender grants to the receiver of this HELLO."""
    max_header_bytes: Annotated[int, msgspec.Meta(ge=0, le=0xFFFF)]
    """Largest headers section, in bytes, the sender accepts (0: no headers)."""
    schema: Annotated[bytes, msgspec.Meta(max_length=MAX_SCHEMA_SIZE)]
    """The sender's registry, described for the schema check (`qrpc.schema`);
    empty when the sender does not check."""


_encoder: Final = msgspec.msgpack.Encoder()
_decoder: Final = msgspec.msgpack.Decoder(Hello)


def encode_hello(hello: Hello) -> bytes:
    """Return the HELLO frame body for `hello`."""
    return _encoder.encode(hello)


def decode_hello(body: bytes) -> Hello:
    """Decode and validate a HELLO frame body.

    Raises:
        BadHello: the body is not a valid HELLO.
    """
    try:
        hello = _decoder.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise BadHello(f"undecodable HELLO: {exc}") from None
    if not is_node_id(hello.node_id):
        raise BadHello(f"HELLO node ID {hello.node_id!r} is not a canonical node ID")
    if hello.max_frame_size < MIN_WINDOW or hello.window < MIN_WINDOW:
        raise BadHello(f"HELLO limits below {MIN_WINDOW} bytes")
    return hello
