"""Numeric codes that cross the wire.

`ErrorCode` values are QUIC *application* error codes: they travel in
CONNECTION_CLOSE frames and GOODBYE frames, so both peers learn why a link
ended.  `RemoteErrorCode` values travel in ERROR frames, answering one
request.  Both are part of the protocol (``docs/protocol.md``): never
renumber a member, only add new ones.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["ErrorCode", "RemoteErrorCode"]


class ErrorCode(IntEnum):
    """Why a link was closed (QUIC application error code)."""

    NO_ERROR = 0x00
    """Graceful close (GOODBYE, node shutdown)."""
    PROTOCOL_VIOLATION = 0x01
    """A frame broke a rule of the link state machine."""
    UNSUPPORTED_VERSION = 0x02
    """A frame header carried a protocol version this node does not speak."""
    UNKNOWN_FRAME_KIND = 0x03
    """A frame header carried a kind this node does not know."""
    FRAME_TOO_LARGE = 0x04
    """A frame declared a body larger than the receiver's limit."""
    MALFORMED_FRAME = 0x05
    """A header field or body was not valid for the frame's kind."""
    HELLO_REQUIRED = 0x06
    """A frame other than HELLO arrived before the HELLO exchange finished."""
    BAD_HELLO = 0x07
    """The HELLO body could not be decoded or carried invalid values."""
    NO_COMMON_CODEC = 0x08
    """The peers share no message codec."""
    FLOW_CONTROL = 0x09
    """The peer sent more data than the credit it was granted."""
    PEER_ID_MISMATCH = 0x10
    """The node ID in HELLO is not the one the peer's certificate proves."""
    SELF_CONNECTION = 0x11
    """The peer is this node itself."""
    DUPLICATE_LINK = 0x12
    """Another link to the same peer won the tie-break; this one is redundant."""
    AUTH_REJECTED = 0x13
    """An auth hook refused the peer."""
    CONNECTION_LIMIT = 0x14
    """The node already has its maximum number of peers."""
    HANDSHAKE_TIMEOUT = 0x15
    """TLS and HELLO did not complete within the handshake deadline."""
    REPLACED = 0x16
    """A newer link from the same peer replaced this one."""
    BAD_STREAM = 0x17
    """The peer used a QUIC stream that qrpc does not define."""
    INTERNAL_ERROR = 0x18
    """The closing node hit a bug; details are in its log."""
    EARLY_DATA_LIMIT = 0x19
    """The peer sent more before its link was admitted than the receiver holds."""
    STREAM_RESET = 0x1A
    """The peer reset the link's stream, or asked this side to stop sending on it."""
    CERTIFICATE_EXPIRED = 0x1B
    """The peer's certificate, or one above it in its chain, expired while the link was up."""
    AUTH_REVOKED = 0x1C
    """An auth hook no longer admits the peer (`Node.reauthorize`)."""
    PEER_UNRESPONSIVE = 0x1D
    """Nothing arrived from the peer for `QuicSettings.dead_peer_timeout`."""
    PEER_RESTARTED = 0x1E
    """The peer answered with a stateless reset: it restarted and lost the link
    (local only: the peer, being gone, is never sent this code)."""
    HEADERS_TOO_LARGE = 0x1F
    """A frame's headers exceed the size the receiver announced in its HELLO."""
    SCHEMA_MISMATCH = 0x20
    """The registries disagree on a message type both use (``Node(schema=...)``)."""
    BAD_DATAGRAM = 0x21
    """A QUIC DATAGRAM frame carried neither a path probe nor its answer."""


class RemoteErrorCode(IntEnum):
    """Why a request failed on the remote side (carried in ERROR frames)."""

    HANDLER_ERROR = 1
    """The handler raised an exception."""
    UNKNOWN_COMMAND = 2
    """The receiver's registry has no type for the request's cmd_id."""
    NO_HANDLER = 3
    """The cmd_id is registered but no handler is installed for it."""
    DECODE_ERROR = 4
    """The request body did not decode as the registered type."""
    REPLY_TOO_LARGE = 5
    """The handler's reply exceeded the requester's maximum message size."""
    BAD_REPLY = 6
    """The handler returned something that is not a registered message."""
    CANCELLED = 7
    """The requester cancelled the request (it timed out or was cancelled); the
    handler was cancelled, or never started."""
    DEADLINE_EXCEEDED = 8
    """The request's deadline passed before the handler finished; it was cancelled."""
    NOT_AUTHORIZED = 9
    """The sender may not use this service (built-in introspection: ``docs/services.md``)."""
