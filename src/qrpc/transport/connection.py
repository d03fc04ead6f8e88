"""`Connection`: one QUIC connection driven by an `Endpoint` (transport layer).

It runs the aioquic loop for its `QrpcQuicConnection` -- feed datagrams,
drain events, hand stream bytes up, transmit, re-arm one timer -- and
nothing else.  It knows its endpoint only through `ConnectionHost`, the
few calls it makes on it.  The owner (a `qrpc.runtime` link) attaches
three callbacks:

- ``on_data(bytes)``: bytes received on the link's stream;
- ``pull_data() -> bytes``: bytes to send, pulled once per flush;
- ``on_closed(connection)``: called once, when the connection is gone.

qrpc uses one long-lived bidirectional stream (stream 0, opened by the
dialer), never a stream per message (docs/protocol.md says why); a peer using
any other stream is closed with BAD_STREAM.  Writes are coalesced:
`want_flush()` marks the connection dirty and the endpoint transmits every
dirty connection once per event-loop turn.

`close_error()` turns how it ended into a qrpc exception
(`qrpc.transport.closing`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Final

from aioquic import tls
from aioquic.quic import events
from aioquic.quic.connection import NetworkAddress

from qrpc.codes import ErrorCode
from qrpc.errors import (
    ConnectError,
)
from qrpc.tls.identity import PeerIdentity
from qrpc.transport.closing import close_error
from qrpc.transport.host import ConnectionHost
from qrpc.transport.mtls import QrpcQuicConnection
from qrpc.transport.pmtu import PathProber

__all__ = ["Connection"]

STREAM_ID: Final = 0  # the link's stream: client-initiated bidirectional
SEND_BUFFER: Final = 1024 * 1024  # bytes: hand aioquic more only while fewer are unacked,
SEND_PACKETS: Final = 256  # or fewer than this many datagrams of the size in use, if more
_MAX_EARLY_DATA: Final = 64 * 1024  # bytes buffered before the owner attaches


def _ignore(*args: Any) -> None:
    return None


class Connection:
    """One QUIC connection of an `Endpoint`."""

    __slots__ = (
        "_close_timer",
        "_deadline",
        "_dirty",
        "_early",
        "_early_size",
        "_handshake_timeout",
        "_host",
        "_progress",
        "_received",
        "_reset",
        "_silent_for",
        "_timer",
        "_timer_at",
        "answered",
        "close_code",
        "close_frame_type",
        "close_reason",
        "closed",
        "closed_locally",
        "handshake",
        "is_client",
        "last_received",
        "on_closed",
        "on_data",
        "path",
        "promoted",
        "pull_data",
        "quic",
        "timed_out",
    )

    def __init__(
        self,
        host: ConnectionHost[Connection],
        quic: QrpcQuicConnection,
        *,
        is_client: bool,
        handshake_timeout: float,
        progress_timeout: float | None = None,
        probe_ceiling: int | None = None,
        ip_header: int = 28,
    ) -> None:
        self._host = host
        self.quic = quic
        self.path = PathProber(
            quic,
            loop=host.loop,
            want_flush=self.want_flush,
            ceiling=probe_ceiling,
            header=ip_header,
        )
        "Path MTU discovery: probes up to `probe_ceiling` (None: answers probes only)."
        self.is_client = is_client
        self.on_data: Callable[[bytes], None] | None = None
        self.on_closed: Callable[[Connection], None] = _ignore
        self.pull_data: Callable[[], bytes] | None = None
        loop = host.loop
        self.handshake: asyncio.Future[None] = loop.create_future()
        self.promoted = False
        "Set by the owner once HELLO completed: ends the handshake deadline and half-open count."
        self.closed = False
        self.closed_locally = False
        "True when this side chose to close (its code is in `close_code`)."
        self.close_frame_type: int | None = None
        "None for an application close, else the QUIC frame type of a transport close."
        self.timed_out = False
        self.answered = False
        "Whether any datagram arrived from the peer."
        self.close_code: int | None = None
        self.close_reason = ""
        self._dirty = False
        self._reset = False  # the link's stream was reset: never write on it again
        self._early: list[bytes] = []
        self._early_size = 0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        self.last_received = loop.time()
        "Loop time of the last datagram from the peer (keep-alive and dead-peer checks)."
        self._received = 0
        self._handshake_timeout = handshake_timeout
        self._silent_for: float | None = None  # set when a dial got no answer at all
        self._deadline = loop.call_later(handshake_timeout, self._handshake_expired)
        self._progress = (
            loop.call_later(progress_timeout, self._check_progress)
            if progress_timeout is not None
            else None
        )

    def __repr__(self) -> str:
        role = "dialed" if self.is_client else "accepted"
        peer = self.peer_identity.node_id if self.peer_identity else "?"
        return f"<Connection {role} {peer}@{self.remote_address}{' closed' if self.closed else ''}>"

    # -- owner API -----------------------------------------------------------

    @property
    def peer_identity(self) -> PeerIdentity | None:
        """The peer's verified identity (set during the TLS handshake)."""
        return self.quic.peer_identity

    @property
    def remote_address(self) -> NetworkAddress | None:
        """Where datagrams to the peer go (may change if the peer migrates)."""
        return self.quic.get_peer_address()

    def attach(
        self,
        on_data: Callable[[bytes], None],
        pull_data: Callable[[], bytes],
        on_closed: Callable[[Connection], None],
    ) -> None:
        """Install the owner's callbacks and deliver bytes that arrived before."""
        self.on_data = on_data
        self.pull_data = pull_data
        self.on_closed = on_closed
        early, self._early = self._early, []
        for data in early:
            on_data(data)
        if early:
            self.want_flush()  # as `datagram_received` does after new data

    def promote(self) -> None:
        """Mark the link established (HELLO done): no more handshake deadline."""
        if not self.promoted:
            self.promoted = True
            self._deadline.cancel()
            self.path.start()
            self._host.connection_promoted(self)

    def want_flush(self) -> None:
        """Ask for a transmit at the end of this event-loop turn."""
        if not self._dirty and not self.closed:
            self._dirty = True
            self._host.schedule_flush(self)

    def close(self, code: int = ErrorCode.NO_ERROR, reason: str = "") -> None:
        """Close with an application error code; the peer sees `code` and `reason`."""
        if self.closed:
            return
        if self.close_code is None:
            self.close_code = code
            self.close_reason = reason
            self.closed_locally = True
        self.quic.close(error_code=code, reason_phrase=reason)
        self.transmit()

    def close_later(self, delay: float, code: int, reason: str) -> None:
        """Close after `delay` seconds unless the connection ends before."""
        if self._close_timer is None and not self.closed:
            self._close_timer = self._host.loop.call_later(delay, self.close, code, reason)

    def ping(self) -> None:
        """Send a QUIC PING (keep-alive)."""
        if not self.closed:
            self.quic.send_ping(0)
            self.want_flush()

    def close_error(self) -> ConnectError:
        """The exception a dialer should see for how this connection ended."""
        return close_error(
            auth_error=self.quic.auth_error,
            timed_out=self.timed_out,
            address=self.remote_address,
            silent_for=self._silent_for,
            handshake_timeout=self._handshake_timeout,
            code=self.close_code,
            reason=self.close_reason,
            closed_locally=self.closed_locally,
            frame_type=self.close_frame_type,
        )

    # -- endpoint API --------------------------------------------------------

    def datagram_received(self, data: bytes, addr: NetworkAddress, now: float) -> None:
        """Feed one datagram (called by the endpoint)."""
        self.answered = True
        self.last_received = now
        self._received += 1
        self.quic.receive_datagram(data, addr, now=now)
        self._process_events()
        self.want_flush()

    def transmit(self) -> None:
        """Send what is pending now and re-arm the timer (called by the endpoint)."""
        self._dirty = False
        if self.closed:
            return
        quic = self.quic
        pull = self.pull_data
        if (
            pull is not None
            and not self._reset
            and quic.unacked_stream_bytes(STREAM_ID)
            < max(SEND_BUFFER, SEND_PACKETS * self.path.size)
        ):
            data = pull()
            if data:
                quic.send_stream_data(STREAM_ID, data)
                # Carry a delayed ACK with the data (RFC 9000 section 13.2.1): aioquic
                # waits 1 ms before acknowledging, so a reply would leave without it
                # and an ACK-only packet follow.
                space = quic._spaces[tls.Epoch.ONE_RTT]
                if space.ack_at is not None:
                    space.ack_at = 0.0
        host = self._host
        loop = host.loop
        now = loop.time()
        probe = self.path.take_probe(now) if self.path.due else None  # built first
        datagrams = quic.datagrams_to_send(now=now)
        if probe:
            datagrams = probe + datagrams
        if datagrams:
            host.send_batch(datagrams)
        timer_at = quic.get_timer()
        if timer_at != self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = (
                loop.call_at(timer_at, self._handle_timer) if timer_at is not None else None
            )
            self._timer_at = timer_at

    def fail(self, code: int, reason: str) -> None:
        """Abandon the connection after a local fault (its transmit raised): queue a
        CONNECTION_CLOSE without touching the stream, send what can be sent, drop it."""
        if self.closed:
            return
        if self.close_code is None:
            self.close_code = code
            self.close_reason = reason
            self.closed_locally = True
        self._reset = True
        try:
            self.quic.close(error_code=code, reason_phrase=reason)
            for datagram, addr in self.quic.datagrams_to_send(now=self._host.loop.time()):
                self._host.sendto(datagram, addr)
        finally:
            self.terminate()

    def terminate(self) -> None:
        """Drop the connection now, without waiting for QUIC's closing period."""
        if not self.closed:
            self._terminated(None)

    # -- internals -------------------------------------------------------------

    def _handle_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self.quic.handle_timer(now=self._host.loop.time())
        self._process_events()
        self.path.check_losses()
        self.transmit()

    def _check_progress(self) -> None:
        # An accepted client silent after its first flight: free its half-open slot.
        if self._received <= 1 and not self.promoted and not self.closed:
            self.timed_out = True
            self.terminate()

    def reset_received(self) -> None:
        """The peer sent a stateless reset: it lost this connection (it restarted)."""
        if not self.closed:
            self.close_code = ErrorCode.PEER_RESTARTED
            self.close_reason = "the peer restarted (stateless reset)"
            self.terminate()

    def _handshake_expired(self) -> None:
        if not self.promoted and not self.closed:
            self.timed_out = True
            self.close(ErrorCode.HANDSHAKE_TIMEOUT, "handshake timeout")
            self.terminate()

    def expire_if_silent(self, after: float) -> None:
        """Give up a dial to which the peer never answered in `after` seconds
        (``Limits.connect_timeout``).

        Nothing is sent: the peer holds no state for us, and a CONNECTION_CLOSE
        would only reach a node that starts on that port later as a stray
        Initial.
        """
        if not self.answered and not self.closed:
            self.timed_out = True
            self._silent_for = after
            self.terminate()

    def _process_events(self) -> None:
        quic = self.quic
        event = quic.next_event()
        while event is not None:
            kind = type(event)
            if kind is events.StreamDataReceived:
                self._stream_data(event)  # type: ignore[arg-type]
            elif kind is events.HandshakeCompleted:
                self._host.handshake_completed(self)
                if not self.handshake.done():
                    self.handshake.set_result(None)
            elif kind is events.ConnectionIdIssued:
                self._host.route(event.connection_id, self)  # type: ignore[attr-defined]
            elif kind is events.ConnectionIdRetired:
                self._host.route(event.connection_id, None)  # type: ignore[attr-defined]
            elif kind is events.DatagramFrameReceived:
                invalid = self.path.datagram_received(event.data)  # type: ignore[attr-defined]
                if invalid is not None:
                    self.close(ErrorCode.BAD_DATAGRAM, invalid)
            elif kind is events.StopSendingReceived or kind is events.StreamReset:
                self._stream_reset(event.stream_id)  # type: ignore[attr-defined]
            elif kind is events.ConnectionTerminated:
                self._terminated(event)  # type: ignore[arg-type]
                return
            event = quic.next_event()

    def _stream_reset(self, stream_id: int) -> None:
        # aioquic resets our sending side on STOP_SENDING: the link is over for good.
        if stream_id == STREAM_ID:
            self._reset = True
            self.close(ErrorCode.STREAM_RESET, "the link's stream was reset")
        else:
            self.close(ErrorCode.BAD_STREAM, "qrpc uses stream 0 only")

    def _stream_data(self, event: events.StreamDataReceived) -> None:
        if event.stream_id != STREAM_ID:
            self.close(ErrorCode.BAD_STREAM, "qrpc uses stream 0 only")
            return
        if event.end_stream:
            # The peer finished its only stream: nothing more can arrive.
            self.close(ErrorCode.PROTOCOL_VIOLATION, "stream finished")
        data = event.data
        if not data:
            return
        on_data = self.on_data
        if on_data is not None:
            on_data(data)
            return
        self._early.append(data)
        self._early_size += len(data)
        if self._early_size > _MAX_EARLY_DATA:
            self.close(ErrorCode.PROTOCOL_VIOLATION, "too much data before HELLO")

    def _terminated(self, event: events.ConnectionTerminated | None) -> None:
        self.closed = True
        self.quic.end_qlog()
        self.path.stop()
        if self._progress is not None:
            self._progress.cancel()
        if event is not None and self.close_code is None:
            self.close_code = event.error_code
            self.close_reason = event.reason_phrase
            self.close_frame_type = event.frame_type
        self._deadline.cancel()
        if self._close_timer is not None:
            self._close_timer.cancel()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._host.connection_closed(self)
        if not self.handshake.done():
            self.handshake.set_exception(self.close_error())
            self.handshake.exception()  # retrieved: a dial may have been abandoned
        on_closed, self.on_closed = self.on_closed, _ignore
        on_closed(self)
