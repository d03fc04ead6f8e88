"""`UdpSocket`: the node's one UDP socket -- bind, batched reads, queued writes.

Reading drains up to `READ_BATCH` datagrams per readiness event before the
owner's ``on_batch`` runs, so the ACKs and replies for a burst leave
together (asyncio's datagram transport reads one datagram per loop
iteration).  A send that finds the socket buffer full is queued and retried
when the socket is writable, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from aioquic.quic.connection import NetworkAddress

from qrpc.errors import ConfigError

__all__ = ["READ_BATCH", "SOCKET_BUFFER", "EndpointStats", "UdpSocket"]

READ_BATCH: Final = 64  # datagrams read per readiness event
SOCKET_BUFFER: Final = 4 * 1024 * 1024  # bytes requested for SO_RCVBUF / SO_SNDBUF


@dataclass(slots=True)
class EndpointStats:
    """Counters for tests and diagnostics (`Endpoint.stats`)."""

    datagrams_in: int = 0
    datagrams_out: int = 0
    send_queued: int = 0
    """Datagrams queued because the socket buffer was full."""
    initials_dropped: int = 0
    """Initials dropped: `max_half_open` handshakes were in progress (in all, or from
    their source host), or their host opened connections faster than allowed."""
    initials_undecryptable: int = 0
    """Initials that never decrypted: their connection was freed at once."""
    stateless_replies: int = 0
    """Version Negotiation, Retry and stateless reset packets sent."""
    replies_refused: int = 0
    """Stateless replies not sent: the reply budget was spent."""
    resets_received: int = 0
    """Stateless resets that ended a connection (its peer restarted)."""


class UdpSocket:
    """A bound, non-blocking UDP socket driven by the event loop's reader.

    Args:
        sock: the bound socket.
        stats: where the datagram counters go.
        on_datagram: called with (data, address, loop time) for each datagram read.
        on_batch: called after each batch of reads.
    """

    __slots__ = ("_closed", "_loop", "_queue", "_sock", "_stats", "on_batch", "on_datagram")

    def __init__(
        self,
        sock: socket.socket,
        stats: EndpointStats,
        *,
        on_datagram: Callable[[bytes, NetworkAddress, float], None],
        on_batch: Callable[[], None],
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._sock = sock
        self._stats = stats
        self._queue: deque[tuple[bytes, NetworkAddress]] = deque()
        self._closed = False
        self.on_datagram = on_datagram
        self.on_batch = on_batch
        self._loop.add_reader(sock.fileno(), self._read_ready)

    @staticmethod
    async def bind(host: str, port: int) -> socket.socket:
        """Resolve and bind a UDP socket on (`host`, `port`), with large buffers.

        Raises:
            ConfigError: the address cannot be resolved or bound.
        """
        loop = asyncio.get_running_loop()
        where = f"listen {host}:{port}"
        try:
            infos = await loop.getaddrinfo(
                host, port, type=socket.SOCK_DGRAM, flags=socket.AI_PASSIVE
            )
        except socket.gaierror as exc:
            raise ConfigError(where, f"cannot resolve: {exc.strerror}") from None
        family, _, proto, _, sockaddr = infos[0]
        sock = socket.socket(family, socket.SOCK_DGRAM, proto)
        try:
            sock.setblocking(False)
            for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER)
            sock.bind(sockaddr)
        except OSError as exc:
            sock.close()
            raise ConfigError(where, f"cannot bind: {exc.strerror or exc}") from None
        return sock

    @property
    def family(self) -> int:
        """The socket's address family."""
        return self._sock.family

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port)."""
        host, port = self._sock.getsockname()[:2]
        return host, port

    def sendto(self, data: bytes, addr: NetworkAddress) -> None:
        """Send one datagram, queueing it if the socket buffer is full."""
        self._stats.datagrams_out += 1
        if self._queue:
            self._queue.append((data, addr))
            return
        try:
            self._sock.sendto(data, addr)
        except BlockingIOError:
            self._stats.send_queued += 1
            self._queue.append((data, addr))
            self._loop.add_writer(self._sock.fileno(), self._write_ready)
        except OSError:
            pass  # unreachable destination: QUIC's loss recovery and timeouts handle it

    def _write_ready(self) -> None:
        queue = self._queue
        while queue:
            data, addr = queue[0]
            try:
                self._sock.sendto(data, addr)
            except BlockingIOError:
                return
            except OSError:
                pass
            queue.popleft()
        self._loop.remove_writer(self._sock.fileno())

    def _read_ready(self) -> None:
        sock = self._sock
        now = self._loop.time()
        on_datagram = self.on_datagram
        for _ in range(READ_BATCH):
            try:
                data, addr = sock.recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                continue  # e.g. an ICMP error reported on the socket
            self._stats.datagrams_in += 1
            on_datagram(data, addr, now)
        self.on_batch()

    def close(self, *, flush: bool) -> None:
        """Stop reading and close; with `flush`, send what is queued first (best
        effort), else drop it, as a crashed process would."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(ValueError, OSError):
            self._loop.remove_writer(self._sock.fileno())
        while flush and self._queue:
            data, addr = self._queue.popleft()
            with contextlib.suppress(OSError):
                self._sock.sendto(data, addr)
        self._queue.clear()
        self._loop.remove_reader(self._sock.fileno())
        self._sock.close()
