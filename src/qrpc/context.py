"""`Context`: what a handler knows about the message it is handling."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar, overload

import msgspec

if TYPE_CHECKING:
    from qrpc._peer import PeerLink
    from qrpc.identity import PeerIdentity
    from qrpc.node import Node

__all__ = ["Context"]

R = TypeVar("R", bound=msgspec.Struct)


class Context:
    """Passed to every handler with the decoded message.

    ``ctx.peer_id`` is always the authenticated sender: no frame field can
    claim another origin.
    """

    __slots__ = ("_peer", "replied", "request_id")

    def __init__(self, peer: PeerLink, request_id: int) -> None:
        self._peer = peer
        self.request_id = request_id
        "The request's ID, or 0 for a one-way message."
        self.replied = False
        "Whether `reply` has answered the request already."

    @property
    def node(self) -> Node:
        """The node that received the message."""
        return self._peer.node

    @property
    def peer_id(self) -> str:
        """Node ID of the sender, as proven by its certificate."""
        return self._peer.peer_id

    @property
    def peer(self) -> PeerIdentity:
        """The sender's verified certificate identity."""
        return self._peer.identity

    @property
    def state(self) -> Any:
        """The shared application state given to `Node(state=...)`."""
        return self._peer.node.state

    @property
    def is_request(self) -> bool:
        """True if the sender awaits a reply."""
        return self.request_id != 0

    async def reply(self, message: msgspec.Struct) -> None:
        """Answer the sender.

        For a request, `message` becomes the reply (once; the handler's
        return value is then ignored).  For a one-way message, `message` is
        sent back to the sender as a one-way message.

        Raises:
            RuntimeError: the request was already answered.
            PeerNotFound / PeerDisconnected: the sender is gone.
        """
        if self.request_id:
            if self.replied:
                raise RuntimeError("this request was already answered")
            self.replied = True
            self._peer.respond(self.request_id, message)
        else:
            await self._peer.node.send(self._peer.peer_id, message)

    async def send(self, peer_id: str, message: msgspec.Struct) -> None:
        """Send a one-way message to any peer (`Node.send`)."""
        await self._peer.node.send(peer_id, message)

    async def broadcast(self, message: msgspec.Struct) -> int:
        """Send to every peer (`Node.broadcast`); returns how many got it."""
        return await self._peer.node.broadcast(message)

    @overload
    async def request(
        self, peer_id: str, message: msgspec.Struct, *, reply: type[R], timeout: float | None = None
    ) -> R: ...

    @overload
    async def request(
        self,
        peer_id: str,
        message: msgspec.Struct,
        *,
        reply: None = None,
        timeout: float | None = None,
    ) -> Any: ...

    async def request(
        self,
        peer_id: str,
        message: msgspec.Struct,
        *,
        reply: type[R] | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Send a request to any peer and await its reply (`Node.request`)."""
        return await self._peer.node.request(peer_id, message, reply=reply, timeout=timeout)

    def __repr__(self) -> str:
        kind = f"request {self.request_id}" if self.request_id else "message"
        return f"<Context {kind} from {self.peer_id}>"
