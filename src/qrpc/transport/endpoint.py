"""`Endpoint`: one UDP socket per node that both accepts and dials.

This is the only module (with `qrpc.transport.connection`) that does
socket IO.  It owns the socket, demultiplexes datagrams to `Connection`s by
destination connection ID, creates a server-side connection for each
acceptable Initial packet, transmits every dirty connection once per
event-loop turn, and pings established connections as keep-alive.

Reading drains up to `READ_BATCH` datagrams per readiness event before
transmitting, so the ACKs and replies for a burst leave together (asyncio's
datagram transport reads one datagram per loop iteration).

Limits enforced here (aioquic's own server keeps a connection object, about
85 KiB, for every Initial of an unknown connection ID, until its 60 s idle
timeout): at most `max_half_open` accepted connections that have not
completed TLS + HELLO (further Initials are dropped before any state is
allocated), a handshake deadline per connection, and optional address
validation with Retry packets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Final

from aioquic._buffer import Buffer
from aioquic.quic.connection import NetworkAddress
from aioquic.quic.packet import (
    pull_quic_header,
)

from qrpc.codes import ErrorCode
from qrpc.config import Limits, QuicSettings
from qrpc.errors import ConfigError, ConnectError
from qrpc.tls.credentials import TLS
from qrpc.tls.identity import identity_name
from qrpc.transport.connection import Connection
from qrpc.transport.gate import CID_LENGTH, Drop, Gate
from qrpc.transport.mtls import PeerPolicy, QrpcQuicConnection, quic_configuration

__all__ = ["Endpoint", "EndpointStats"]

log = logging.getLogger("qrpc.transport")
READ_BATCH: Final = 64  # datagrams read per readiness event
SOCKET_BUFFER: Final = 4 * 1024 * 1024  # bytes requested for SO_RCVBUF / SO_SNDBUF
AcceptHandler = Callable[[Connection], None]


@dataclass(slots=True)
class EndpointStats:
    """Counters for tests and diagnostics."""

    datagrams_in: int = 0
    datagrams_out: int = 0
    initials_dropped: int = 0
    """Initials dropped because `max_half_open` handshakes were in progress."""
    send_queued: int = 0
    """Datagrams queued because the socket buffer was full."""


class Endpoint:
    """A bound UDP socket plus the QUIC connections that use it.

    Create with `await Endpoint.open(...)`.  `on_accept` is called for each
    accepted connection when its TLS handshake (with client-certificate
    verification) completes.
    """

    def __init__(
        self,
        sock: socket.socket,
        *,
        tls: TLS,
        settings: QuicSettings,
        limits: Limits,
        on_accept: AcceptHandler,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._handshake_timeout = limits.handshake_timeout
        self.stats = EndpointStats()
        self._sock = sock
        self._tls = tls
        self._settings = settings
        self._server_config = quic_configuration(tls, is_client=False, settings=settings)
        self._client_config = quic_configuration(tls, is_client=True, settings=settings)
        self._server_policy = PeerPolicy(trust=tls.trust, domain=tls.domain)
        self._on_accept = on_accept
        self._gate = Gate(
            supported_versions=self._server_config.supported_versions,
            retry=settings.retry,
            max_half_open=limits.max_half_open,
        )
        self._by_cid: dict[bytes, Connection] = {}
        self.connections: set[Connection] = set()
        self._half_open: set[Connection] = set()
        self._dirty: list[Connection] = []
        self._flush_handle: asyncio.Handle | None = None
        self._send_queue: deque[tuple[bytes, NetworkAddress]] = deque()
        self._closed = False
        self._keepalive: asyncio.TimerHandle | None = None
        self.local_address: tuple[str, int] = sock.getsockname()[:2]
        self._loop.add_reader(sock.fileno(), self._read_ready)
        self._schedule_keepalive()

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        *,
        tls: TLS,
        settings: QuicSettings,
        limits: Limits,
        on_accept: AcceptHandler,
    ) -> Endpoint:
        """Bind a UDP socket on (`host`, `port`) and start reading.

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
        return cls(sock, tls=tls, settings=settings, limits=limits, on_accept=on_accept)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop the endpoint runs on."""
        return self._loop

    @property
    def family(self) -> int:
        """The socket's address family (peers are resolved in it)."""
        return self._sock.family

    @property
    def half_open(self) -> int:
        """Accepted connections that have not completed TLS + HELLO."""
        return len(self._half_open)

    # -- dialing -------------------------------------------------------------

    async def connect(
        self, addr: NetworkAddress, *, policy: PeerPolicy, answer_timeout: float | None = None
    ) -> Connection:
        """Dial `addr` and return once the TLS handshake (both certificates
        verified) completes.  The caller then runs the HELLO exchange and
        calls `Connection.promote()`, or closes it.

        If nothing at all comes back within `answer_timeout` seconds, the
        dial fails with `ConnectTimeout` at once instead of waiting for the
        handshake deadline.

        Raises:
            ConnectError: the handshake failed; the subclass says why.
        """
        if self._closed:
            raise ConnectError("endpoint is closed")
        config = self._client_config
        if policy.expected_id is not None:
            config = replace(config, server_name=identity_name(policy.expected_id, policy.domain))
        quic = QrpcQuicConnection(configuration=config, policy=policy)
        conn = self._add(quic, is_client=True)
        quic.connect(addr, now=self._loop.time())
        conn.transmit()
        silence = (
            self._loop.call_later(answer_timeout, conn.expire_if_silent)
            if answer_timeout is not None
            else None
        )
        try:
            await conn.handshake
        except asyncio.CancelledError:
            conn.close()
            conn.terminate()
            raise
        finally:
            if silence is not None:
                silence.cancel()
        return conn

    # -- ConnectionHost: called by the connections ------------------------------

    def _add(self, quic: QrpcQuicConnection, *, is_client: bool) -> Connection:
        conn = Connection(
            self, quic, is_client=is_client, handshake_timeout=self._handshake_timeout
        )
        self.connections.add(conn)
        self._by_cid[quic.host_cid] = conn
        if not is_client:
            self._half_open.add(conn)
        return conn

    def handshake_completed(self, conn: Connection) -> None:
        """TLS finished for `conn`: hand accepted connections to the owner."""
        if not conn.is_client:
            self._on_accept(conn)

    def connection_promoted(self, conn: Connection) -> None:
        """`conn` finished HELLO: it no longer counts as half-open."""
        self._half_open.discard(conn)

    def connection_closed(self, conn: Connection) -> None:
        """`conn` terminated: forget every route to it."""
        self.connections.discard(conn)
        self._half_open.discard(conn)
        for cid in [cid for cid, c in self._by_cid.items() if c is conn]:
            del self._by_cid[cid]

    def route(self, cid: bytes, conn: Connection | None) -> None:
        """Route connection ID `cid` of ours to `conn`, or stop routing it (None)."""
        if conn is None:
            self._by_cid.pop(cid, None)
        else:
            self._by_cid[cid] = conn

    def schedule_flush(self, conn: Connection) -> None:
        """Transmit `conn` at the end of this event-loop turn."""
        self._dirty.append(conn)
        if self._flush_handle is None:
            self._flush_handle = self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_handle = None
        dirty, self._dirty = self._dirty, []
        for conn in dirty:
            try:
                conn.transmit()
            except Exception:  # one connection's fault must not stall the others' transmits
                log.exception("transmit failed on %r; closing it", conn)
                conn.fail(ErrorCode.INTERNAL_ERROR, "internal error")

    def _schedule_keepalive(self) -> None:
        interval = self._settings.keepalive_interval
        if interval is not None and not self._closed:
            self._keepalive = self._loop.call_later(interval, self._send_keepalives)

    def _send_keepalives(self) -> None:
        for conn in self.connections:
            if conn.promoted:
                conn.ping()
        self._schedule_keepalive()

    # -- socket IO -------------------------------------------------------------

    def sendto(self, data: bytes, addr: NetworkAddress) -> None:
        """Send one datagram, queueing it if the socket buffer is full."""
        self.stats.datagrams_out += 1
        if self._send_queue:
            self._send_queue.append((data, addr))
            return
        try:
            self._sock.sendto(data, addr)
        except BlockingIOError:
            self.stats.send_queued += 1
            self._send_queue.append((data, addr))
            self._loop.add_writer(self._sock.fileno(), self._write_ready)
        except OSError:
            pass  # unreachable destination: QUIC's loss recovery and timeouts handle it

    def _write_ready(self) -> None:
        queue = self._send_queue
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
        for _ in range(READ_BATCH):
            try:
                data, addr = sock.recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                continue  # e.g. an ICMP error reported on the socket
            self.stats.datagrams_in += 1
            self._datagram_received(data, addr, now)
        if self._flush_handle is not None:
            # Move the transmit behind the handler wake-ups this batch scheduled,
            # so replies leave with the ACKs instead of one loop turn later.
            self._flush_handle.cancel()
            self._flush_handle = self._loop.call_soon(self._flush)

    def _datagram_received(self, data: bytes, addr: NetworkAddress, now: float) -> None:
        if data and not data[0] & 0x80:  # short header: DCID right after the first byte
            conn = self._by_cid.get(data[1 : 1 + CID_LENGTH])
            if conn is not None:
                conn.datagram_received(data, addr, now)
            return
        try:
            header = pull_quic_header(Buffer(data=data), host_cid_length=CID_LENGTH)
        except ValueError:
            return
        conn = self._by_cid.get(header.destination_cid)
        if conn is not None:
            conn.datagram_received(data, addr, now)
            return
        if self._closed:
            return
        decision = self._gate.decide(header, len(data), addr, now, half_open=len(self._half_open))
        if isinstance(decision, Drop):
            if decision is Drop.FULL:
                self.stats.initials_dropped += 1
            return
        if isinstance(decision, bytes):
            self.sendto(decision, addr)
            return
        quic = QrpcQuicConnection(
            configuration=self._server_config,
            policy=self._server_policy,
            original_destination_connection_id=decision.original_destination_cid,
            retry_source_connection_id=decision.retry_source_cid,
        )
        conn = self._add(quic, is_client=False)
        self._by_cid[header.destination_cid] = conn
        conn.datagram_received(data, addr, now)

    # -- shutdown --------------------------------------------------------------

    def close(self) -> None:
        """Close every connection (sending CONNECTION_CLOSE once) and the socket."""
        if self._closed:
            return
        self._closed = True
        if self._keepalive is not None:
            self._keepalive.cancel()
        for conn in list(self.connections):
            conn.close()
            conn.terminate()
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        self._write_ready_final()
        self._loop.remove_reader(self._sock.fileno())
        self._sock.close()

    def abort(self) -> None:
        """Drop every connection and close the socket *without sending anything*,
        as a crashed process would (for fault-injection tests)."""
        if self._closed:
            return
        self._closed = True
        if self._keepalive is not None:
            self._keepalive.cancel()
        self._send_queue.clear()
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        self._dirty.clear()
        with contextlib.suppress(ValueError, OSError):
            self._loop.remove_writer(self._sock.fileno())
        self._loop.remove_reader(self._sock.fileno())
        self._sock.close()
        for conn in list(self.connections):
            conn.terminate()

    def _write_ready_final(self) -> None:
        if self._send_queue:
            self._loop.remove_writer(self._sock.fileno())
            while self._send_queue:
                data, addr = self._send_queue.popleft()
                with contextlib.suppress(OSError):
                    self._sock.sendto(data, addr)

    @property
    def closed(self) -> bool:
        """Whether `close()` was called."""
        return self._closed
