"""`UdpSocket`: the node's one UDP socket -- bind, batched reads, queued writes.

Reading drains up to `READ_BATCH` datagrams per readiness event before the
owner's ``on_batch`` runs, so the ACKs and replies for a burst leave
together (asyncio's datagram transport reads one datagram per loop
iteration).  A send that finds the socket buffer full is queued and retried
when the socket is writable, in order.

`send_batch` hands the kernel a run of datagrams to one address in one
system call where the OS segments UDP itself (Linux ``UDP_SEGMENT``, GSO):
the run's datagrams have one size but the last, which may be shorter, at
most `GSO_SEGMENTS` of them.  A device that cannot segment fails the call
with EIO; GSO is then turned off for the socket and the run sent one by one.

For path MTU discovery (`qrpc.transport.pmtu`) `set_dont_fragment` makes the
kernel drop a datagram larger than a link on its path instead of fragmenting
it, and `route_payload` reads the local route's MTU: the first size to probe.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import struct
import sys
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from aioquic.quic.connection import NetworkAddress

from qrpc.errors import ConfigError

__all__ = ["GSO_SEGMENTS", "READ_BATCH", "SOCKET_BUFFER", "EndpointStats", "UdpSocket"]

READ_BATCH: Final = 64  # datagrams read per readiness event
SOCKET_BUFFER: Final = 4 * 1024 * 1024  # bytes requested for SO_RCVBUF / SO_SNDBUF
GSO_SEGMENTS: Final = 64  # datagrams per segmented send (the kernel allows 64)
_GSO_BYTES: Final = 65000  # bytes per segmented send (a UDP payload is at most 65507)
_UDP_SEGMENT: Final = getattr(socket, "UDP_SEGMENT", 103)  # Linux <netinet/udp.h>
_SEGMENT: Final = struct.Struct("=H")
_PMTUDISC_PROBE: Final = 3  # Linux: set Don't Fragment, ignore the kernel's path MTU cache
_IP_MTU_DISCOVER: Final = getattr(socket, "IP_MTU_DISCOVER", 10)
_IPV6_MTU_DISCOVER: Final = getattr(socket, "IPV6_MTU_DISCOVER", 23)
_IP_MTU: Final = getattr(socket, "IP_MTU", 14)
_IPV6_MTU: Final = getattr(socket, "IPV6_MTU", 24)

_IP_FAMILIES: Final = (socket.AF_INET, socket.AF_INET6)

Datagram = tuple[bytes, NetworkAddress]


def gso_supported() -> bool:
    """Whether this OS segments UDP sends (Linux 4.18+ ``UDP_SEGMENT``)."""
    if not sys.platform.startswith("linux"):
        return False
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.setsockopt(socket.SOL_UDP, _UDP_SEGMENT, 0)
        except OSError:
            return False
    return True


@dataclass(slots=True)
class EndpointStats:
    """Counters for tests and diagnostics (`Endpoint.stats`)."""

    datagrams_in: int = 0
    datagrams_out: int = 0
    send_calls: int = 0
    """System calls that sent datagrams (fewer than `datagrams_out` with GSO)."""
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

    __slots__ = (
        "_closed",
        "_loop",
        "_queue",
        "_sock",
        "_stats",
        "dont_fragment",
        "gso",
        "on_batch",
        "on_datagram",
    )

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
        self.gso = sock.family in _IP_FAMILIES and _GSO
        "Whether runs of datagrams are sent segmented (off after a device refused)."
        self.dont_fragment = False
        "Whether datagrams leave with Don't Fragment (`set_dont_fragment`)."
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

    @property
    def header_size(self) -> int:
        """IP and UDP header bytes in front of each datagram (IPv4 28, IPv6 48)."""
        return 48 if self._sock.family == socket.AF_INET6 else 28

    def set_dont_fragment(self) -> bool:
        """Send every datagram with Don't Fragment (Linux); False where the OS cannot."""
        if not sys.platform.startswith("linux") or self._sock.family not in _IP_FAMILIES:
            return False
        try:
            if self._sock.family == socket.AF_INET6:
                self._sock.setsockopt(socket.IPPROTO_IPV6, _IPV6_MTU_DISCOVER, _PMTUDISC_PROBE)
            with contextlib.suppress(OSError):  # an IPv6 socket also sends to IPv4 peers
                self._sock.setsockopt(socket.IPPROTO_IP, _IP_MTU_DISCOVER, _PMTUDISC_PROBE)
        except OSError:
            return False
        self.dont_fragment = True
        return True

    def route_payload(self, addr: NetworkAddress, at_most: int) -> int:
        """The largest UDP payload the local route to `addr` carries -- its link's
        MTU less the IP and UDP headers (Linux) -- and at most `at_most`."""
        family = self._sock.family
        level, option = (
            (socket.IPPROTO_IPV6, _IPV6_MTU)
            if family == socket.AF_INET6
            else (socket.IPPROTO_IP, _IP_MTU)
        )
        with socket.socket(family, socket.SOCK_DGRAM) as route:
            try:
                route.connect(addr)
                mtu = route.getsockopt(level, option)
            except OSError:
                return at_most
        return min(at_most, int(mtu) - self.header_size)

    def sendto(self, data: bytes, addr: NetworkAddress) -> None:
        """Send one datagram, queueing it if the socket buffer is full."""
        self._stats.datagrams_out += 1
        if self._queue:
            self._queue.append((data, addr))
            return
        self._stats.send_calls += 1
        try:
            self._sock.sendto(data, addr)
        except BlockingIOError:
            self._queue_from([(data, addr)], 0)
        except OSError:
            pass  # unreachable destination: QUIC's loss recovery and timeouts handle it

    def send_batch(self, datagrams: list[Datagram]) -> None:
        """Send `datagrams` in order: each run to one address in one system call
        with GSO, else one by one; what the socket buffer cannot take is queued."""
        if not self.gso or len(datagrams) == 1:
            for data, addr in datagrams:
                self.sendto(data, addr)
            return
        stats = self._stats
        stats.datagrams_out += len(datagrams)
        if self._queue:
            self._queue.extend(datagrams)
            return
        start = 0
        while start < len(datagrams):
            end = _run_end(datagrams, start)
            stats.send_calls += 1
            try:
                self._send_run(datagrams, start, end)
            except BlockingIOError:
                self._queue_from(datagrams, start)
                return
            except OSError as exc:
                if exc.errno == errno.EIO and end - start > 1:  # the device cannot segment
                    self.gso = False
                    stats.datagrams_out -= len(datagrams) - start
                    for data, addr in datagrams[start:]:
                        self.sendto(data, addr)
                    return
            start = end

    def _send_run(self, datagrams: list[Datagram], start: int, end: int) -> None:
        data, addr = datagrams[start]
        if end - start == 1:
            self._sock.sendto(data, addr)
            return
        run = b"".join([d for d, _ in datagrams[start:end]])
        segment = [(socket.SOL_UDP, _UDP_SEGMENT, _SEGMENT.pack(len(data)))]
        self._sock.sendmsg([run], segment, 0, addr)

    def _queue_from(self, datagrams: list[Datagram], start: int) -> None:
        self._stats.send_queued += len(datagrams) - start
        self._queue.extend(datagrams[start:])
        self._loop.add_writer(self._sock.fileno(), self._write_ready)

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


def _run_end(datagrams: list[Datagram], start: int) -> int:
    """The end of the run that starts at `start`: one address, one size (a shorter
    datagram ends it), at most `GSO_SEGMENTS` datagrams and `_GSO_BYTES` bytes."""
    data, addr = datagrams[start]
    size = len(data)
    total = size
    end = start + 1
    limit = min(len(datagrams), start + GSO_SEGMENTS)
    while end < limit:
        data, to = datagrams[end]
        if to != addr or len(data) > size or total + len(data) > _GSO_BYTES:
            break
        total += len(data)
        end += 1
        if len(data) < size:
            break
    return end


_GSO: Final = gso_supported()
