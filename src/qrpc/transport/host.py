"""`ConnectionHost`: what a `Connection` needs from the endpoint that drives it."""

from __future__ import annotations

import asyncio
from typing import Protocol, TypeVar

from aioquic.quic.connection import NetworkAddress

__all__ = ["ConnectionHost"]

C_contra = TypeVar("C_contra", contravariant=True)


class ConnectionHost(Protocol[C_contra]):
    """What a connection (a `qrpc.transport.connection.Connection`, `C_contra`)
    needs from the endpoint that drives it."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop timers run on."""

    def sendto(self, data: bytes, addr: NetworkAddress) -> None:
        """Send one datagram."""

    def send_batch(self, datagrams: list[tuple[bytes, NetworkAddress]]) -> None:
        """Send datagrams in order (runs to one address in one system call if it can)."""

    def schedule_flush(self, conn: C_contra) -> None:
        """Call `conn.transmit()` at the end of this event-loop turn."""

    def route(self, cid: bytes, conn: C_contra | None) -> None:
        """Send datagrams for connection ID `cid` to `conn` (None: stop)."""

    def handshake_completed(self, conn: C_contra) -> None:
        """TLS finished, both certificates verified."""

    def connection_promoted(self, conn: C_contra) -> None:
        """The owner admitted the link: it is no longer half-open."""

    def connection_closed(self, conn: C_contra) -> None:
        """The connection terminated: forget it."""
