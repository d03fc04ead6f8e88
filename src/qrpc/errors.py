"""Every exception qrpc raises.

The tree::

    QrpcError
    ├── ConfigError (also ValueError)        bad configuration, raised at construction
    ├── RegistryError (also ValueError)      bad cmd_id / type / handler registration
    ├── ProtocolError                        a wire rule was broken; carries .code
    │   ├── UnsupportedVersion
    │   ├── UnknownFrameKind
    │   ├── FrameTooLarge
    │   ├── MalformedFrame
    │   ├── HelloRequired
    │   ├── BadHello
    │   ├── FlowControlViolation
    │   ├── EarlyDataLimit
    │   └── HeadersTooLarge
    ├── ConnectError                         dialing a peer failed
    │   ├── AddressError                     the address cannot be resolved or used
    │   ├── ConnectTimeout (also TimeoutError)  no answer, or no handshake, in time
    │   ├── ConnectionRefused                the peer closed the link during setup
    │   │   ├── ConnectionLimitReached       ... because it is full
    │   │   ├── DuplicateLink                ... because a link to it already exists
    │   │   └── NoCommonCodec                ... because no message codec is shared
    │   └── HandshakeError                   the peer or we refused the other's identity
    │       ├── PeerAuthError                certificate or auth hook refused
    │       ├── PeerIdMismatch               node ID is not the expected / certified one
    │       ├── SelfConnection               the peer is this node
    │       ├── IncompatiblePeer             the peer speaks another qrpc protocol version
    │       └── SchemaMismatch               the registries disagree on a shared cmd_id
    ├── PeerNotFound (also KeyError)         no link to that peer ID
    ├── PeerDisconnected                     the link broke (remote or network)
    ├── NodeClosed                           you closed the node
    ├── MessageTooLarge (also ValueError)    refused at the sender, nothing sent
    ├── MessageEncodeError (also TypeError)  the codec cannot encode it, nothing sent
    ├── HeaderError (also ValueError)        headers break a rule or a limit, nothing sent
    ├── PeerDraining                         the peer is shutting down: ask another
    ├── RequestLimitReached                  too many requests outstanding
    ├── RemoteError                          the peer's handler failed; .code, .text
    ├── RequestTimeout (also TimeoutError)   no reply in time
    └── PeerWaitTimeout (also TimeoutError)  wait_for_peer gave up

`qrpc_codecs` has its own small tree (`CodecError`); the node wraps those
errors where they cross into qrpc.

Closed versus broken follows trio: `NodeClosed` means *you* closed the node
and using it again is a bug in the caller; `PeerDisconnected` means the link
broke under you and retrying later may work.
"""

from __future__ import annotations

from typing import ClassVar

from qrpc.codes import ErrorCode, RemoteErrorCode

__all__ = [
    "AddressError",
    "BadHello",
    "ConfigError",
    "ConnectError",
    "ConnectTimeout",
    "ConnectionLimitReached",
    "ConnectionRefused",
    "DuplicateLink",
    "EarlyDataLimit",
    "FlowControlViolation",
    "FrameTooLarge",
    "HandshakeError",
    "HeaderError",
    "HeadersTooLarge",
    "IncompatiblePeer",
    "HelloRequired",
    "MalformedFrame",
    "MessageEncodeError",
    "MessageTooLarge",
    "NoCommonCodec",
    "NodeClosed",
    "PeerAuthError",
    "PeerDisconnected",
    "PeerDraining",
    "PeerIdMismatch",
    "PeerNotFound",
    "PeerWaitTimeout",
    "ProtocolError",
    "QrpcError",
    "RegistryError",
    "RemoteError",
    "RequestLimitReached",
    "RequestTimeout",
    "SchemaMismatch",
    "SelfConnection",
    "UnknownFrameKind",
    "UnsupportedVersion",
]


class QrpcError(Exception):
    """Root of every qrpc exception; catch it to handle any qrpc failure."""


class ConfigError(QrpcError, ValueError):
    """A configuration value or file is unusable.

    Raised when a `Node`, `TLS` or other config object is constructed, never
    later.  The caller is at fault: fix the file or argument named in
    `path` and `reason`.
    """

    def __init__(self, path: object, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class RegistryError(QrpcError, ValueError):
    """A cmd_id, message type or handler was registered inconsistently.

    The application is at fault: a duplicate cmd_id or type, an unknown
    cmd_id or type, or a handler whose annotation does not match the type
    registered for its cmd_id.
    """


class ProtocolError(QrpcError):
    """A peer broke a wire rule; the link is closed with `code`.

    Raised by the sans-IO layer (`qrpc.wire`).  The node turns it into a
    close of the link in one place, so applications normally see it only
    as the cause of a `PeerDisconnected`.
    """

    code: ClassVar[ErrorCode] = ErrorCode.PROTOCOL_VIOLATION

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"{self.code.name}: {reason}")


class UnsupportedVersion(ProtocolError):
    """A frame header carried an unknown protocol version (peer too new or not qrpc)."""

    code = ErrorCode.UNSUPPORTED_VERSION


class UnknownFrameKind(ProtocolError):
    """A frame header carried an unknown kind (peer too new or corrupt)."""

    code = ErrorCode.UNKNOWN_FRAME_KIND


class FrameTooLarge(ProtocolError):
    """A frame declared a body above the limit; refused before buffering it."""

    code = ErrorCode.FRAME_TOO_LARGE


class MalformedFrame(ProtocolError):
    """A header field or body is invalid for the frame's kind (peer bug or attack)."""

    code = ErrorCode.MALFORMED_FRAME


class HelloRequired(ProtocolError):
    """A frame came before the HELLO exchange completed (peer bug or attack)."""

    code = ErrorCode.HELLO_REQUIRED


class BadHello(ProtocolError):
    """A HELLO could not be decoded or carried invalid values."""

    code = ErrorCode.BAD_HELLO


class FlowControlViolation(ProtocolError):
    """The peer sent more message bytes than the credit it was granted."""

    code = ErrorCode.FLOW_CONTROL


class EarlyDataLimit(ProtocolError):
    """The peer sent more before its link was admitted than this node holds for it."""

    code = ErrorCode.EARLY_DATA_LIMIT


class HeadersTooLarge(ProtocolError):
    """A frame's headers exceed the size this node announced (`Limits.max_header_bytes`)."""

    code = ErrorCode.HEADERS_TOO_LARGE


class ConnectError(QrpcError):
    """Dialing a peer failed.

    Whether retrying may help is decided by the subclass, never by the
    message text: see `qrpc.policy.FAILURE_KINDS`.
    """


class AddressError(ConnectError):
    """The peer's address cannot be resolved or used: fix the `Peer` entry."""


class ConnectTimeout(ConnectError, TimeoutError):
    """The peer did not answer within ``Limits.connect_timeout``, or the TLS +
    HELLO exchange did not finish within ``Limits.handshake_timeout``.

    The port may be closed, filtered or silent, or the peer overloaded;
    retrying later may work.
    """


class ConnectionRefused(ConnectError):
    """The link was refused during setup with an application error code.

    `code` is the `ErrorCode` and `reason` its short reason; `by_peer` tells
    whether the peer refused (the usual case) or this node did.
    """

    def __init__(self, code: int, reason: str, *, by_peer: bool = True) -> None:
        self.code = code
        self.reason = reason
        self.by_peer = by_peer
        try:
            name = ErrorCode(code).name
        except ValueError:
            name = hex(code)
        who = "peer refused the link" if by_peer else "link refused"
        super().__init__(f"{who}: {name} {reason}".rstrip())


class ConnectionLimitReached(ConnectionRefused):
    """The peer already has its maximum number of links; retry later."""


class DuplicateLink(ConnectionRefused):
    """A link to this peer already exists, so the new one was dropped.

    Not a failure of the peer: the dial loop waits for the existing link to
    end before it dials again.  `peer_id` is the peer's ID when known.
    """

    peer_id: str | None = None


class NoCommonCodec(ConnectionRefused):
    """The two nodes share no message codec (`Node(codecs=...)`).

    Permanent: retrying cannot help until one side is configured with a
    codec the other speaks.
    """


class HandshakeError(ConnectError):
    """One side refused the other's identity, in TLS or in the HELLO exchange.

    Permanent: retrying with the same certificates cannot succeed.
    """


class PeerAuthError(HandshakeError):
    """A certificate was refused (chain, validity, key usage, key type,
    identity SAN) or an auth hook rejected the peer.

    `alert` holds the TLS alert number when the refusal happened in TLS.
    """

    def __init__(self, reason: str, *, alert: int | None = None) -> None:
        self.reason = reason
        self.alert = alert
        super().__init__(reason)


class IncompatiblePeer(HandshakeError):
    """The peer speaks another version of the qrpc protocol (TLS ALPN found no
    common ``qrpc/<version>``): upgrade both sides to the same qrpc release."""


class SchemaMismatch(HandshakeError):
    """The two registries disagree on a message type both use, and
    ``Node(schema=...)`` refuses that (`cmd_ids` lists them)."""

    def __init__(self, detail: str, cmd_ids: tuple[int, ...] = ()) -> None:
        self.cmd_ids = cmd_ids
        super().__init__(detail)


class PeerIdMismatch(HandshakeError):
    """The peer's node ID is not the one expected or the one its certificate proves."""

    def __init__(self, expected: str | None, actual: str | None, detail: str = "") -> None:
        self.expected = expected
        self.actual = actual
        if expected is None and actual is None:  # the peer refused us; it did not say more
            message = detail or "node ID does not match the certificate"
        else:
            message = f"expected node ID {expected!r}, peer is {actual!r}"
            message = f"{message}: {detail}" if detail else message
        super().__init__(message)


class SelfConnection(HandshakeError):
    """The peer presented this node's own node ID: the dialed address is this node
    itself, or the same certificate is in use by two nodes."""


class PeerNotFound(QrpcError, KeyError):
    """No live link to that peer ID; wait for it with `Node.wait_for_peer`."""

    def __str__(self) -> str:
        return f"no live link to peer {self.args[0]!r}" if self.args else "peer not found"


class PeerDisconnected(QrpcError):
    """The link to the peer broke (the peer left, crashed or the network failed).

    A message sent just before may or may not have reached the peer's
    handler; use `request` when you need to know.
    """


class NodeClosed(QrpcError):
    """The node was shut down (by you); create a new `Node` to continue."""


class MessageTooLarge(QrpcError, ValueError):
    """The encoded message exceeds the maximum message size; nothing was sent.

    `limit` is this node's ``Limits.max_message_size``, or -- when `peer_id`
    is set -- the largest message that peer announced it accepts (its own
    ``Limits.max_message_size``).
    """

    def __init__(self, size: int, limit: int, *, peer_id: str | None = None) -> None:
        self.size = size
        self.limit = limit
        self.peer_id = peer_id
        if peer_id is None:
            detail = (
                f"this node's Limits.max_message_size is {limit} bytes: raise it (on the "
                "receiving nodes too, which enforce their own), or send smaller messages"
            )
        else:
            detail = (
                f"peer {peer_id} announced it accepts at most {limit} bytes: raise "
                "Limits.max_message_size on that receiving node, or send smaller messages"
            )
        super().__init__(f"encoded message is {size} bytes; {detail}")


class MessageEncodeError(QrpcError, TypeError):
    """The link's codec cannot encode the message (say, an integer msgpack cannot
    carry); nothing was sent.  The codec's own error is the ``__cause__``."""


class HeaderError(QrpcError, ValueError):
    """The headers given to `send` or `request` break a rule (key syntax, value
    type, a reserved key) or exceed the peer's limit; nothing was sent."""


class PeerDraining(QrpcError):
    """The peer announced it is shutting down (`Node.drain`): it takes no new
    requests.  Ask another peer, or wait for it to come back."""


class RequestLimitReached(QrpcError):
    """This node already has `Limits.max_concurrent_requests` requests outstanding;
    wait for some to finish, or raise the limit."""


class RemoteError(QrpcError):
    """The peer could not answer the request: its handler raised, or it could
    not decode or route the request.

    `code` is a `RemoteErrorCode` (or another integer from a newer peer) and
    `text` the peer's description.
    """

    def __init__(self, code: int, text: str) -> None:
        self.code = code
        self.text = text
        try:
            name = RemoteErrorCode(code).name
        except ValueError:
            name = str(code)
        super().__init__(f"{name}: {text}")


class RequestTimeout(QrpcError, TimeoutError):
    """No reply arrived within the timeout; the peer may still process the request."""


class PeerWaitTimeout(QrpcError, TimeoutError):
    """`Node.wait_for_peer` timed out: the peer did not connect in time."""
