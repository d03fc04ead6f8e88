"""Events a `LinkProtocol` emits, pulled with `LinkProtocol.events()`.

Each is a small slotted class, named in the past tense for what the peer
did.  `size` fields count the whole frame (header and body): the unit of
message credit.
"""

from __future__ import annotations

from qrpc.wire.hello import Hello
from qrpc.wire.sections import Headers

__all__ = [
    "CancelReceived",
    "CreditReceived",
    "DrainingReceived",
    "ErrorReceived",
    "GoodbyeReceived",
    "HelloReceived",
    "LinkEvent",
    "LinkFailed",
    "MessageReceived",
    "RequestReceived",
    "ResponseReceived",
]


class LinkEvent:
    """Base class of link events."""

    __slots__ = ()

    def __repr__(self) -> str:
        names: tuple[str, ...] = self.__slots__
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in names)
        return f"{type(self).__name__}({fields})"


class HelloReceived(LinkEvent):
    """The peer's HELLO arrived (decoded and validated)."""

    __slots__ = ("hello",)

    def __init__(self, hello: Hello) -> None:
        self.hello = hello
        "The peer's HELLO."


class MessageReceived(LinkEvent):
    """A one-way message arrived.  Call `LinkProtocol.consumed(size)` once handled."""

    __slots__ = ("body", "cmd_id", "headers", "size")
    request_id = 0
    "Always 0: a one-way message expects no reply."
    deadline = None
    "Always None: a one-way message has no deadline."

    def __init__(self, cmd_id: int, body: bytes, size: int, headers: Headers | None) -> None:
        self.cmd_id = cmd_id
        "The message's command ID."
        self.body = body
        "The encoded message."
        self.size = size
        "Frame size in bytes, to return as credit."
        self.headers = headers
        "The frame's headers, or None."


class RequestReceived(LinkEvent):
    """A request arrived.  Call `LinkProtocol.consumed(size)` once handled."""

    __slots__ = ("body", "cmd_id", "deadline", "expires", "headers", "request_id", "size")

    def __init__(
        self,
        cmd_id: int,
        request_id: int,
        body: bytes,
        size: int,
        deadline: int | None,
        headers: Headers | None,
    ) -> None:
        self.cmd_id = cmd_id
        "The request's command ID."
        self.request_id = request_id
        "Echo it in the RESPONSE or ERROR."
        self.body = body
        "The encoded request."
        self.size = size
        "Frame size in bytes, to return as credit."
        self.deadline = deadline
        "Milliseconds the requester still waited when it sent the request, or None."
        self.headers = headers
        "The frame's headers, or None."
        self.expires: float | None = None
        "The deadline as a clock time, set by whoever gives the request a clock."


class ResponseReceived(LinkEvent):
    """The reply to one of our requests arrived."""

    __slots__ = ("body", "cmd_id", "headers", "request_id")

    def __init__(
        self, request_id: int, cmd_id: int, body: bytes, headers: Headers | None = None
    ) -> None:
        self.request_id = request_id
        "The request being answered."
        self.cmd_id = cmd_id
        "The reply's command ID; 0 means the handler returned nothing."
        self.body = body
        "The encoded reply (empty when cmd_id is 0)."
        self.headers = headers
        "The frame's headers, or None."


class ErrorReceived(LinkEvent):
    """One of our requests failed on the peer."""

    __slots__ = ("code", "headers", "request_id", "text")

    def __init__(
        self, request_id: int, code: int, text: str, headers: Headers | None = None
    ) -> None:
        self.request_id = request_id
        "The request that failed."
        self.code = code
        "A `RemoteErrorCode` value (or a newer one)."
        self.text = text
        "The peer's description."
        self.headers = headers
        "The frame's headers, or None."


class CancelReceived(LinkEvent):
    """The peer no longer waits for its request `request_id` (it may be answered already)."""

    __slots__ = ("request_id",)

    def __init__(self, request_id: int) -> None:
        self.request_id = request_id
        "The peer's request to stop."


class DrainingReceived(LinkEvent):
    """The peer is shutting down: send it no new requests."""

    __slots__ = ()


class GoodbyeReceived(LinkEvent):
    """The peer closed the link gracefully; nothing more will arrive on it."""

    __slots__ = ("code", "reason")

    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        "An `ErrorCode` value (NO_ERROR for a normal shutdown)."
        self.reason = reason
        "The peer's short reason."


class CreditReceived(LinkEvent):
    """The peer granted credit; queued messages may have been released to send."""

    __slots__ = ("amount",)

    def __init__(self, amount: int) -> None:
        self.amount = amount
        "Bytes of credit granted."


class LinkFailed(LinkEvent):
    """The peer broke a protocol rule; close the connection with `code`."""

    __slots__ = ("code", "reason")

    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        "The `ErrorCode` to close the connection with."
        self.reason = reason
        "What went wrong (for the local log)."
