"""`Handshake`: a link between TLS completion and registration (the HELLO exchange).

Both roles wait here for the peer's HELLO.  The dialer sends its HELLO
first, with every codec it accepts; the acceptor answers with its own HELLO
naming the one codec it chose -- only after its checks passed, which is
what tells the dialer it was accepted (a TLS handshake alone proves
nothing: in TLS 1.3 the client finishes before the server has judged its
certificate, SECURITY-NOTES §2.2).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from qrpc.connection import Connection
from qrpc.errors import ConnectError
from qrpc.identity import PeerIdentity
from qrpc.wire.events import HelloReceived, LinkEvent, LinkFailed
from qrpc.wire.hello import Hello
from qrpc.wire.link import LinkProtocol

if TYPE_CHECKING:
    from qrpc.node import Node

__all__ = ["Handshake"]


class Handshake:
    """One connection waiting for the peer's HELLO."""

    __slots__ = ("conn", "dialed", "early_events", "hello", "identity", "link", "node")

    def __init__(self, node: Node, conn: Connection, *, dialed: bool) -> None:
        identity = conn.peer_identity
        assert identity is not None  # the TLS hook set it before HandshakeCompleted
        self.node = node
        self.conn = conn
        self.identity: PeerIdentity = identity
        self.dialed = dialed
        limits = node.limits
        self.link = LinkProtocol(
            max_frame_size=limits.max_message_size, window=limits.inbound_window
        )
        self.hello: asyncio.Future[Hello] = asyncio.get_running_loop().create_future()
        self.early_events: list[LinkEvent] = []
        """Events after the peer's HELLO that arrived before registration (the
        acceptor may send right after its HELLO); bounded by our credit window."""
        conn.attach(self._on_data, self.link.data_to_send, self._on_closed)

    def _on_data(self, data: bytes) -> None:
        link = self.link
        link.receive_data(data)
        for event in link.events():
            if isinstance(event, HelloReceived):
                if not self.hello.done():
                    self.hello.set_result(event.hello)
            elif isinstance(event, LinkFailed):
                self.conn.close(event.code, "bad HELLO")
                if not self.hello.done():
                    self.hello.set_exception(ConnectError(f"bad HELLO: {event.reason}"))
            else:
                self.early_events.append(event)
        self.conn.want_flush()

    def _on_closed(self, conn: Connection) -> None:
        if not self.hello.done():
            self.hello.set_exception(conn.close_error())
            self.hello.exception()  # mark retrieved; the owner may already be gone

    def send_hello(self, hello: Hello) -> None:
        """Send our HELLO."""
        self.link.send_hello(hello)
        self.conn.want_flush()

    def refuse(self, error: ConnectError, code: int, reason: str) -> ConnectError:
        """Close the connection with `code` and return `error` for the caller to raise."""
        self.conn.close(code, reason)
        return error

    def check_open(self) -> None:
        """Raise the connection's close error if it closed meanwhile.

        Raises:
            ConnectError: the connection is gone.
        """
        if self.conn.closed or self.conn.closed_locally:
            raise self.conn.close_error()
