"""`Context`: what a handler knows about the message it is handling.

A request's context answers it at most once: the handler's return value,
or one `reply()` before the handler returns.  A second `reply()`, or one
after the handler returned, raises `RuntimeError` in the caller.

A request's context also knows its deadline (`time_remaining`): requests
made through ``ctx.request`` never wait longer than it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, overload

import msgspec

from qrpc.errors import RequestTimeout
from qrpc.tls.identity import PeerIdentity
from qrpc.wire.sections import EMPTY_HEADERS, Headers

if TYPE_CHECKING:
    from qrpc.runtime.link import PeerLink

__all__ = ["Context", "NodeHandle"]

R = TypeVar("R", bound=msgspec.Struct)


class NodeHandle(Protocol):
    """The node as a handler reaches it through ``ctx.node`` (`qrpc.Node` is one)."""

    @property
    def id(self) -> str:
        """The node's ID."""

    @property
    def state(self) -> Any:
        """The application state given to ``Node(state=...)``."""

    def peers(self) -> list[str]:
        """IDs of the peers with a live link."""

    def is_connected(self, peer_id: str) -> bool:
        """Whether `peer_id` has a live link."""

    def identity(self, peer_id: str) -> PeerIdentity:
        """The verified certificate identity of a connected peer."""

    async def send(
        self, peer_id: str, message: msgspec.Struct, *, headers: Headers | None = None
    ) -> None:
        """`Node.send`."""

    @overload
    async def request(
        self,
        peer_id: str,
        message: msgspec.Struct,
        *,
        reply: type[R],
        timeout: float | None = None,
        headers: Headers | None = None,
    ) -> R: ...

    @overload
    async def request(
        self,
        peer_id: str,
        message: msgspec.Struct,
        *,
        reply: None = None,
        timeout: float | None = None,
        headers: Headers | None = None,
    ) -> Any: ...

    async def request(
        self,
        peer_id: str,
        message: msgspec.Struct,
        *,
        reply: type[R] | None = None,
        timeout: float | None = None,
        headers: Headers | None = None,
    ) -> Any:
        """`Node.request`."""

    async def broadcast(self, message: msgspec.Struct) -> int:
        """`Node.broadcast`."""

    async def close(self) -> None:
        """`Node.close`."""


class Context:
    """Passed to every handler with the decoded message.

    ``ctx.peer_id`` is always the authenticated sender: no frame field can
    claim another origin.
    """

    __slots__ = ("_link", "_node", "_returned", "expires", "headers", "replied", "request_id")

    def __init__(
        self,
        link: PeerLink,
        request_id: int,
        node: NodeHandle,
        headers: Headers = EMPTY_HEADERS,
        expires: float | None = None,
    ) -> None:
        self._link = link
        self._node = node
        self._returned = False
        self.request_id = request_id
        "The request's ID, or 0 for a one-way message."
        self.headers: Mapping[str, str | bytes] = headers
        "The headers the sender attached (empty if none)."
        self.expires = expires
        "The request's deadline as event-loop time, or None (one-way, or none given)."
        self.replied = False
        "Whether `reply` has answered the request already."

    @property
    def node(self) -> NodeHandle:
        """The node that received the message."""
        return self._node

    @property
    def peer_id(self) -> str:
        """Node ID of the sender, as proven by its certificate."""
        return self._link.peer_id

    @property
    def identity(self) -> PeerIdentity:
        """The sender's verified certificate identity."""
        return self._link.identity

    @property
    def peer(self) -> PeerIdentity:
        """The first name of `identity`, kept so existing handlers keep working."""
        return self._link.identity

    @property
    def state(self) -> Any:
        """The shared application state given to ``Node(state=...)``."""
        return self._node.state

    @property
    def is_request(self) -> bool:
        """True if the sender awaits a reply."""
        return self.request_id != 0

    def time_remaining(self) -> float | None:
        """Seconds until the request's deadline (0 once passed), or None without one.

        The requester's timeout travels with the request; at the deadline the
        handler is cancelled and the requester told DEADLINE_EXCEEDED."""
        if self.expires is None:
            return None
        return max(0.0, self.expires - asyncio.get_running_loop().time())

    async def reply(self, message: msgspec.Struct) -> None:
        """Answer the sender.

        For a request, `message` becomes the reply (once, before the handler
        returns; the handler's return value is then ignored).  For a one-way
        message, `message` is sent back to the sender as a one-way message.

        Raises:
            RuntimeError: the request was already answered, or its handler
                already returned.
            RegistryError, MessageTooLarge: `message` cannot be sent.
            PeerNotFound / PeerDisconnected: the sender is gone (one-way).
        """
        if not self.request_id:
            await self._node.send(self._link.peer_id, message)
            return
        if self.replied:
            raise RuntimeError("this request was already answered")
        if self._returned:
            raise RuntimeError("this request's handler already returned: reply() must come before")
        self._link.outbox.reply(self.request_id, message)
        self.replied = True

    def handler_returned(self) -> None:
        """Called by the dispatcher when the handler returned: no reply after this."""
        self._returned = True

    async def send(
        self, peer_id: str, message: msgspec.Struct, *, headers: Headers | None = None
    ) -> None:
        """Send a one-way message to any peer (`Node.send`)."""
        await self._node.send(peer_id, message, headers=headers)

    async def broadcast(self, message: msgspec.Struct) -> int:
        """Send to every peer (`Node.broadcast`); returns how many got it."""
        return await self._node.broadcast(message)

    @overload
    async def request(
        self,
        peer_id: str,
        message: msgspec.Struct,
        *,
        reply: type[R],
        timeout: float | None = None,
        headers: Headers | None = None,
    ) -> R: ...

    @overload
    async def request(
        self,
        peer_id: str,
        message: msgspec.Struct,
        *,
        reply: None = None,
        timeout: float | None = None,
        headers: Headers | None = None,
    ) -> Any: ...

    async def request(
        self,
        peer_id: str,
        message: msgspec.Struct,
        *,
        reply: type[R] | None = None,
        timeout: float | None = None,
        headers: Headers | None = None,
    ) -> Any:
        """Send a request to any peer and await its reply (`Node.request`), never
        waiting past this request's own deadline (`time_remaining`).

        Raises:
            RequestTimeout: the deadline has passed already (nothing is sent), or
                no reply came in time.
        """
        remaining = self.time_remaining()
        if remaining is not None:
            if remaining <= 0:
                raise RequestTimeout("this request's deadline has passed: nothing was sent")
            timeout = remaining if timeout is None else min(timeout, remaining)
        return await self._node.request(
            peer_id, message, reply=reply, timeout=timeout, headers=headers
        )

    def __repr__(self) -> str:
        kind = f"request {self.request_id}" if self.request_id else "message"
        return f"<Context {kind} from {self.peer_id}>"
