"""`Endpoint`: one UDP socket per node that both accepts and dials.

It owns the node's `UdpSocket` and its QUIC `Connection`s: it routes each
datagram by destination connection ID, asks the `Gate` what to do with the
ones that match no connection (accept, Retry, Version Negotiation,
stateless reset, drop), transmits every dirty connection once per
event-loop turn, pings links that have been quiet, closes those whose
peer stopped answering (`QuicSettings.dead_peer_timeout`), and gives each
connection the ceiling of its path MTU search (`QuicSettings.max_datagram_size`,
at most what the local route carries).

Limits enforced here (aioquic's own server keeps a connection object, about
85 KiB, for every Initial of an unknown connection ID, until its 60 s idle
timeout): at most `max_half_open` accepted connections that have not
completed TLS + HELLO, `max_half_open_per_source` of them from one host,
Retry for new clients once half the slots are taken; a connection whose
first Initial does not decrypt is freed at once, one whose client sends
nothing more within `PROGRESS_TIMEOUT` soon after, and every one by the
handshake deadline.

Refused certificates are logged by its `RefusalLog` (rate-limited per
source); the debugging files of `QuicSettings` are `DebugFiles`.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from typing import Final

from aioquic._buffer import Buffer
from aioquic.quic.connection import NetworkAddress
from aioquic.quic.packet import pull_quic_header

from qrpc.codes import ErrorCode
from qrpc.config import Limits, QuicSettings
from qrpc.errors import ConnectError
from qrpc.tls.credentials import TLS
from qrpc.tls.identity import identity_name
from qrpc.transport.connection import Connection
from qrpc.transport.debugging import DebugFiles
from qrpc.transport.gate import CID_LENGTH, Accept, Drop, Gate, reset_token_function
from qrpc.transport.mtls import PeerPolicy, QrpcQuicConnection, quic_configuration
from qrpc.transport.refusals import RefusalLog
from qrpc.transport.udp import EndpointStats, UdpSocket

__all__ = ["Endpoint"]

log = logging.getLogger("qrpc.transport")
PROGRESS_TIMEOUT: Final = 3.0  # seconds an accepted client gets to send its second flight
AcceptHandler = Callable[[Connection], None]


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
        refusals: RefusalLog | None = None,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._handshake_timeout = limits.handshake_timeout
        self.stats = EndpointStats()
        self._tls = tls
        self._settings = settings
        self._refusals = refusals or RefusalLog()
        self._debug = DebugFiles(settings)
        self._server_config, self._client_config = (
            quic_configuration(
                tls,
                is_client=is_client,
                settings=settings,
                quic_logger=self._debug.qlog,
                key_log=self._debug.key_log,
            )
            for is_client in (False, True)
        )
        self._server_policy = PeerPolicy(trust=tls.trust, domain=tls.domain, ca_file=tls.ca_path)
        self._on_accept = on_accept
        self._reset_token = reset_token_function(tls.secret_seed)
        self._gate = Gate(
            supported_versions=self._server_config.supported_versions,
            retry=settings.retry,
            max_half_open=limits.max_half_open,
            max_half_open_per_source=limits.max_half_open_per_source,
            reset_token=self._reset_token,
        )
        self._half_open_hosts: Counter[str] = Counter()
        self._by_addr: dict[NetworkAddress, Connection] = {}
        self._by_cid: dict[bytes, Connection] = {}
        self.connections: set[Connection] = set()
        self._half_open: dict[Connection, str] = {}
        "Accepted connections not yet past TLS + HELLO, and the host each came from."
        self._dirty: list[Connection] = []
        self._flush_handle: asyncio.Handle | None = None
        self._closed = False
        self._keepalive: asyncio.TimerHandle | None = None
        self._udp = UdpSocket(
            sock, self.stats, on_datagram=self._datagram_received, on_batch=self._batch_read
        )
        self.local_address = self._udp.address
        self._probing = settings.path_mtu_discovery and self._udp.set_dont_fragment()
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
        refusals: RefusalLog | None = None,
    ) -> Endpoint:
        """Bind a UDP socket on (`host`, `port`) and start reading.

        `refusals` logs why peers were refused (one is made if None).

        Raises:
            ConfigError: the address cannot be resolved or bound, or a
                debugging file of `settings` cannot be opened.
        """
        sock = await UdpSocket.bind(host, port)
        try:
            return cls(
                sock,
                tls=tls,
                settings=settings,
                limits=limits,
                on_accept=on_accept,
                refusals=refusals,
            )
        except BaseException:
            sock.close()
            raise

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop the endpoint runs on."""
        return self._loop

    @property
    def family(self) -> int:
        """The socket's address family (peers are resolved in it)."""
        return self._udp.family

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
        quic = QrpcQuicConnection(
            configuration=config, policy=policy, reset_token=self._reset_token
        )
        conn = self._add(quic, is_client=True, addr=addr)
        quic.connect(addr, now=self._loop.time())
        conn.transmit()
        silence = (
            self._loop.call_later(answer_timeout, conn.expire_if_silent, answer_timeout)
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

    def _add(
        self, quic: QrpcQuicConnection, *, is_client: bool, addr: NetworkAddress
    ) -> Connection:
        conn = Connection(
            self,
            quic,
            is_client=is_client,
            handshake_timeout=self._handshake_timeout,
            progress_timeout=None if is_client else PROGRESS_TIMEOUT,
            probe_ceiling=self._udp.route_payload(addr, self._settings.max_datagram_size)
            if self._probing
            else None,
            ip_header=self._udp.header_size,
        )
        self.connections.add(conn)
        self._by_cid[quic.host_cid] = conn
        self._by_addr[addr] = conn
        if not is_client:
            host = str(addr[0])
            self._half_open[conn] = host
            self._half_open_hosts[host] += 1
        return conn

    def _forget_half_open(self, conn: Connection) -> None:
        host = self._half_open.pop(conn, None)
        if host is not None:
            self._half_open_hosts[host] -= 1
            if self._half_open_hosts[host] <= 0:
                del self._half_open_hosts[host]

    def handshake_completed(self, conn: Connection) -> None:
        """TLS finished for `conn`: hand accepted connections to the owner."""
        if not conn.is_client:
            self._on_accept(conn)

    def connection_promoted(self, conn: Connection) -> None:
        """`conn` finished HELLO: it no longer counts as half-open."""
        self._forget_half_open(conn)

    def connection_closed(self, conn: Connection) -> None:
        """`conn` terminated: forget every route to it."""
        self.connections.discard(conn)
        self._forget_half_open(conn)
        for cid in [cid for cid, c in self._by_cid.items() if c is conn]:
            del self._by_cid[cid]
        for addr in [addr for addr, c in self._by_addr.items() if c is conn]:
            del self._by_addr[addr]

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
        # PING only links that heard nothing for an interval (busy ones need none);
        # close those silent for the dead-peer timeout.
        now = self._loop.time()
        interval = self._settings.keepalive_interval or 0.0
        dead_after = self._settings.dead_after
        for conn in list(self.connections):
            if not conn.promoted:
                continue
            silent = now - conn.last_received
            if dead_after is not None and silent >= dead_after:
                conn.close(ErrorCode.PEER_UNRESPONSIVE, f"no answer for {silent:.1f} s")
            elif silent >= interval * 0.9:
                conn.ping()
        self._schedule_keepalive()

    # -- datagrams -------------------------------------------------------------

    def sendto(self, data: bytes, addr: NetworkAddress) -> None:
        """Send one datagram (queued if the socket buffer is full)."""
        self._udp.sendto(data, addr)

    def send_batch(self, datagrams: list[tuple[bytes, NetworkAddress]]) -> None:
        """Send datagrams in order (`UdpSocket.send_batch`: GSO where the OS has it)."""
        self._udp.send_batch(datagrams)

    def _batch_read(self) -> None:
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
            else:
                self._unknown_short(data, addr, now)
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
        decision = self._gate.decide(
            header,
            len(data),
            addr,
            now,
            half_open=len(self._half_open),
            half_open_here=self._half_open_hosts[str(addr[0])],
        )
        if not isinstance(decision, Accept):
            self._stateless(decision, addr)
            return
        refusals = self._refusals
        quic = QrpcQuicConnection(
            configuration=self._server_config,
            policy=self._server_policy,
            reset_token=self._reset_token,
            on_refused=lambda error: refusals.refused(addr, str(error)),
            original_destination_connection_id=decision.original_destination_cid,
            retry_source_connection_id=decision.retry_source_cid,
        )
        conn = self._add(quic, is_client=False, addr=addr)
        self._by_cid[header.destination_cid] = conn
        conn.datagram_received(data, addr, now)
        if not quic.initial_decrypted():  # noise shaped like an Initial: keep nothing
            self.stats.initials_undecryptable += 1
            conn.terminate()

    def _unknown_short(self, data: bytes, addr: NetworkAddress, now: float) -> None:
        conn = self._by_addr.get(addr)
        if conn is not None and conn.quic.is_stateless_reset(data):
            self.stats.resets_received += 1
            conn.reset_received()
            return
        if not self._closed:
            self._stateless(self._gate.reset(data, addr, now), addr)

    def _stateless(self, reply: bytes | Drop, addr: NetworkAddress) -> None:
        if isinstance(reply, bytes):
            self.stats.stateless_replies += 1
            self.sendto(reply, addr)
        elif reply is Drop.FULL or reply is Drop.BUSY:
            self.stats.initials_dropped += 1
        elif reply is Drop.BUDGET:
            self.stats.replies_refused += 1

    # -- shutdown --------------------------------------------------------------

    def close(self) -> None:
        """Close every connection (sending CONNECTION_CLOSE once) and the socket."""
        self._shut(graceful=True)

    def abort(self) -> None:
        """Drop every connection and close the socket *without sending anything*,
        as a crashed process would (for fault-injection tests)."""
        self._shut(graceful=False)

    def _shut(self, *, graceful: bool) -> None:
        if self._closed:
            return
        self._closed = True
        if self._keepalive is not None:
            self._keepalive.cancel()
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        self._dirty.clear()
        for conn in list(self.connections) if graceful else ():
            conn.close()
        self._udp.close(flush=graceful)
        for conn in list(self.connections):
            conn.terminate()
        self._debug.close()

    @property
    def closed(self) -> bool:
        """Whether `close()` was called."""
        return self._closed
