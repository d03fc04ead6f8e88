"""`ConnectionHost`: what a `Connection` needs from the endpoint that drives it."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Protocol

from aioquic.quic.connection import NetworkAddress

if TYPE_CHECKING:
    from qrpc.transport.connection import Connection

__all__ = ["ConnectionHost"]


class ConnectionHost(Protocol):
    """What a `Connection` needs from the endpoint that drives it."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop timers run on."""

    def sendto(self, data: bytes, addr: NetworkAddress) -> None:
        """Send one datagram."""

    def send_batch(self, datagrams: list[tuple[bytes, NetworkAddress]]) -> None:
        """Send datagrams in order (runs to one address in one system call if it can)."""

    def schedule_flush(self, conn: Connection) -> None:
        """Call `conn.transmit()` at the end of this event-loop turn."""

    def route(self, cid: bytes, conn: Connection | None) -> None:
        """Send datagrams for connection ID `cid` to `conn` (None: stop)."""

    def handshake_completed(self, conn: Connection) -> None:
        """TLS finished, both certificates verified."""

    def connection_promoted(self, conn: Connection) -> None:
        """The owner admitted the link: it is no longer half-open."""

    def connection_closed(self, conn: Connection) -> None:
        """The connection terminated: forget it."""
