"""Contender: raw aioquic driven by hand, the way qrpc's transport drives it.

Same frames, bodies, handler, certificates and knobs as `raw_aioquic`, but
instead of asyncio's datagram transport (one datagram per loop iteration,
a transmit after each), each connection's `QuicConnection` is driven
directly: the socket is read in batches of up to 64 datagrams per
readiness event, and every connection that has something to send is
transmitted once per event-loop turn.  That is the strategy of
``qrpc.transport`` (written here independently, importing nothing from
qrpc), so qrpc's ratio against this contender isolates the cost of qrpc's
layers above the transport: mutual TLS checks, HELLO, credit, the
dispatcher task, contexts and async handlers.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Final

from aioquic._buffer import Buffer
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import NetworkAddress, QuicConnection
from aioquic.quic.events import (
    ConnectionIdIssued,
    ConnectionIdRetired,
    ConnectionTerminated,
    HandshakeCompleted,
    StreamDataReceived,
)
from aioquic.quic.packet import QuicPacketType, pull_quic_header

from benchmarks.bench_transport._common import Worker, WorkerSpec, tune_socket
from benchmarks.bench_transport.raw_aioquic import Link, Server, setup_with

__all__ = ["BatchedDriver", "label", "metrics", "notes", "setup"]

label: Final = "raw_aioquic_batched"
notes: Final = (
    "aioquic QuicConnection driven like qrpc's transport (64 datagrams per read, one "
    "transmit per loop turn), one stream, qrpc framing + msgpack; server certificate only"
)
metrics: Final = frozenset({"throughput", "rtt", "connect", "broadcast"})

READ_BATCH: Final = 64
CID_LENGTH: Final = 8


class _Conn(Link):
    """One connection: feeds its `QuicConnection`, keeps one timer, transmits when dirty."""

    def __init__(self, endpoint: _Endpoint, quic: QuicConnection) -> None:
        self._endpoint = endpoint
        self._quic = quic
        self._loop = endpoint.loop
        self._dirty = False
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self.handshake: asyncio.Future[None] = self._loop.create_future()
        self.terminated: asyncio.Future[None] = self._loop.create_future()
        self._link_init()

    def datagram_received(self, data: bytes, addr: NetworkAddress, now: float) -> None:
        self._quic.receive_datagram(data, addr, now=now)
        self._process_events()
        self._acked()
        self._transmit_soon()

    def _process_events(self) -> None:
        quic = self._quic
        event = quic.next_event()
        while event is not None:
            kind = type(event)
            if kind is StreamDataReceived:
                self._stream_data(event)  # type: ignore[arg-type]
            elif kind is HandshakeCompleted:
                if not self.handshake.done():
                    self.handshake.set_result(None)
            elif kind is ConnectionIdIssued:
                self._endpoint.routes[event.connection_id] = self  # type: ignore[attr-defined]
            elif kind is ConnectionIdRetired:
                self._endpoint.routes.pop(event.connection_id, None)  # type: ignore[attr-defined]
            elif kind is ConnectionTerminated:
                self._terminated()
                return
            event = quic.next_event()

    def _terminated(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._endpoint.forget(self)
        if not self.handshake.done():
            self.handshake.set_exception(ConnectionError("connection terminated"))
        if not self.terminated.done():
            self.terminated.set_result(None)

    def _transmit_soon(self) -> None:
        if not self._dirty:
            self._dirty = True
            self._endpoint.schedule(self)

    def transmit(self) -> None:
        self._dirty = False
        if self.terminated.done():
            return
        endpoint = self._endpoint
        for datagram, addr in self._quic.datagrams_to_send(now=self._loop.time()):
            endpoint.sendto(datagram, addr)
        timer_at = self._quic.get_timer()
        if timer_at != self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self._loop.call_at(timer_at, self._on_timer) if timer_at else None
            self._timer_at = timer_at

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self._quic.handle_timer(now=self._loop.time())
        self._process_events()
        self.transmit()

    def close(self) -> None:
        if not self.terminated.done():
            self._quic.close()
            self.transmit()


class _Endpoint:
    """One UDP socket: batched reads, connection-ID routing, coalesced transmits."""

    def __init__(
        self,
        sock: socket.socket,
        server_config: QuicConfiguration | None = None,
        on_link: Callable[[Link], None] | None = None,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.sock = sock
        self.server_config = server_config
        self.on_link = on_link
        self.routes: dict[bytes, _Conn] = {}
        self.conns: set[_Conn] = set()
        self._dirty: list[_Conn] = []
        self._flush_handle: asyncio.Handle | None = None
        self._queue: deque[tuple[bytes, NetworkAddress]] = deque()
        self.address: tuple[str, int] = sock.getsockname()[:2]
        self.loop.add_reader(sock.fileno(), self._read_ready)

    def add(self, quic: QuicConnection, *cids: bytes) -> _Conn:
        conn = _Conn(self, quic)
        self.conns.add(conn)
        for cid in (quic.host_cid, *cids):
            self.routes[cid] = conn
        return conn

    def forget(self, conn: _Conn) -> None:
        self.conns.discard(conn)
        for cid in [cid for cid, c in self.routes.items() if c is conn]:
            del self.routes[cid]

    def schedule(self, conn: _Conn) -> None:
        self._dirty.append(conn)
        if self._flush_handle is None:
            self._flush_handle = self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_handle = None
        dirty, self._dirty = self._dirty, []
        for conn in dirty:
            conn.transmit()

    def sendto(self, data: bytes, addr: NetworkAddress) -> None:
        if self._queue:
            self._queue.append((data, addr))
            return
        try:
            self.sock.sendto(data, addr)
        except BlockingIOError:
            self._queue.append((data, addr))
            self.loop.add_writer(self.sock.fileno(), self._write_ready)
        except OSError:
            pass

    def _write_ready(self) -> None:
        while self._queue:
            data, addr = self._queue[0]
            try:
                self.sock.sendto(data, addr)
            except BlockingIOError:
                return
            except OSError:
                pass
            self._queue.popleft()
        self.loop.remove_writer(self.sock.fileno())

    def _read_ready(self) -> None:
        sock = self.sock
        now = self.loop.time()
        for _ in range(READ_BATCH):
            try:
                data, addr = sock.recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                continue
            self._datagram(data, addr, now)
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush()

    def _datagram(self, data: bytes, addr: NetworkAddress, now: float) -> None:
        if data and not data[0] & 0x80:  # short header
            conn = self.routes.get(data[1 : 1 + CID_LENGTH])
            if conn is not None:
                conn.datagram_received(data, addr, now)
            return
        try:
            header = pull_quic_header(Buffer(data=data), host_cid_length=CID_LENGTH)
        except ValueError:
            return
        conn = self.routes.get(header.destination_cid)
        if conn is None:
            if self.server_config is None or header.packet_type != QuicPacketType.INITIAL:
                return
            quic = QuicConnection(
                configuration=self.server_config,
                original_destination_connection_id=header.destination_cid,
            )
            conn = self.add(quic, header.destination_cid)
            if self.on_link is not None:
                self.on_link(conn)
        conn.datagram_received(data, addr, now)

    def close(self) -> None:
        for conn in list(self.conns):
            conn.close()
        if self._flush_handle is not None:
            self._flush_handle.cancel()
        with contextlib.suppress(ValueError, OSError):
            self.loop.remove_writer(self.sock.fileno())
        self.loop.remove_reader(self.sock.fileno())
        self.sock.close()


def _socket(host: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    tune_socket(sock)
    sock.bind((host, 0))
    return sock


class BatchedDriver:
    """`Driver` on `_Endpoint`."""

    async def serve(
        self, host: str, config: QuicConfiguration, on_link: Callable[[Link], None]
    ) -> Server:
        return _Endpoint(_socket(host), config, on_link)

    @asynccontextmanager
    async def connect(self, host: str, port: int, config: QuicConfiguration) -> AsyncIterator[Link]:
        endpoint = _Endpoint(_socket("0.0.0.0"))
        try:
            quic = QuicConnection(configuration=config)
            conn = endpoint.add(quic)
            quic.connect((host, port), now=endpoint.loop.time())
            conn.transmit()
            await asyncio.wait_for(conn.handshake, 30)
            yield conn
            conn.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(conn.terminated), 5)
        finally:
            endpoint.close()


async def setup(role: str, spec: WorkerSpec) -> Worker:
    """Build one side (see `benchmarks.bench_transport._common`)."""
    return await setup_with(BatchedDriver(), role, spec)
