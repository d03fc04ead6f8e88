"""Mutual TLS on aioquic: the only module that touches aioquic internals.

aioquic has no public API to request or verify client certificates
(aioquic issues 541, 548, 586): a stock server that sets the private flag
to ask for one accepts an empty certificate, a foreign CA, an expired or
self-signed leaf alike, checking only the CertificateVerify signature.  Its
client-side check is weaker than qrpc's too (it accepts a server
certificate without serverAuth, or with an RSA-1024 key).  `QrpcQuicConnection` therefore swaps
the class of its TLS context, right after aioquic creates it in
`QuicConnection._initialize`, for `_VerifyingContext`, which:

- on a server, sets the private `_request_client_certificate` flag, so a
  CertificateRequest is sent;
- refuses an empty client Certificate message (`certificate_required`);
- after aioquic has checked the CertificateVerify signature (proof that the
  peer holds the key), runs `qrpc.tls.identity.verify_peer` on the peer's chain
  -- on both sides -- and raises a TLS alert on failure.

The alert aborts the handshake before any application byte from the peer
is decrypted.  The alert's reason on the wire is generic; the detailed
`PeerAuthError` stays local in `auth_error` (and goes to the connection's
``on_refused`` callback, which logs it).

aioquic logs every connection error it raises -- the TLS alert of a
refused certificate, a peer's protocol violation such as an Initial without
a CRYPTO frame -- as a WARNING of logger ``quic``.  qrpc reports those
itself (refusals, close codes), so a `QrpcQuicConnection` logs them at INFO
instead (`_QuicLog`, the connection's ``_logger``).  Everything used here is
checked by `tests/test_mtls_internals.py`, which fails loudly if aioquic
changes under us; keep the aioquic pin in pyproject.toml narrow.

`quic_configuration` builds the aioquic configuration for one role.  It
never enables session tickets: a resumed session skips the client
certificate (aioquic sends a CertificateRequest only without a PSK).
"""

from __future__ import annotations

import datetime as dt
import hmac
import logging
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, TextIO, cast

from aioquic import tls
from aioquic._buffer import Buffer
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection, QuicConnectionAdapter
from aioquic.quic.logger import QuicLogger
from aioquic.quic.recovery import QuicPacketSpace
from aioquic.quic.stream import QuicStreamSender
from cryptography import x509

from qrpc.config import MAX_DATAGRAM_SIZE, QuicSettings
from qrpc.errors import HandshakeError, PeerAuthError, PeerIdMismatch
from qrpc.tls.credentials import TLS
from qrpc.tls.identity import Alert, PeerIdentity, Role, verify_peer
from qrpc.transport.pmtu import BASE_SIZE

__all__ = ["ALPN", "PRIVATE_API", "PeerPolicy", "QrpcQuicConnection", "quic_configuration"]

ALPN: Final = "qrpc/2"

PRIVATE_API: Final = (
    (QuicConnection, "_initialize"),
    (QuicConnection, "_logger"),
    (QuicConnection, "_quic_logger"),
    (QuicConnection, "_configuration"),
    (tls.Context, "_request_client_certificate"),
    (tls.Context, "_server_handle_certificate"),
    (tls.Context, "_server_handle_certificate_verify"),
    (tls.Context, "_client_handle_certificate_verify"),
    (tls.Context, "_peer_certificate"),
    (tls.Context, "_peer_certificate_chain"),
    (QuicConnection, "_streams"),
    (QuicStreamSender, "_buffer_start"),
    (QuicStreamSender, "_buffer_stop"),
    (QuicConnection, "_host_cids"),
    (QuicConnection, "_replenish_connection_ids"),
    (QuicConnection, "_peer_cid"),
    (QuicConnection, "_peer_cid_available"),
    (QuicConnection, "_spaces"),
    (QuicPacketSpace, "largest_received_packet"),
    (tls.Context, "_supported_groups"),
)
"""(owner, attribute) pairs this module relies on; the internals test checks them."""


@dataclass(frozen=True, slots=True)
class PeerPolicy:
    """How to judge the certificate of the peer of one connection."""

    trust: Sequence[x509.Certificate]
    """CA certificates the peer's chain must end in."""
    domain: str
    """Trust domain of identity SANs."""
    expected_id: str | None = None
    """The node ID a dialer expects (None: learn it from the certificate)."""
    ca_file: str | None = None
    """Where `trust` came from (named when a certificate is refused)."""


class _QuicLog(QuicConnectionAdapter):
    """aioquic's per-connection logger, with WARNING demoted to INFO."""

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        super().log(logging.INFO if level == logging.WARNING else level, msg, *args, **kwargs)


class _RefusedCertificate(tls.Alert):
    """A TLS alert whose description is chosen per instance."""

    def __init__(self, alert: int) -> None:
        super().__init__("peer certificate refused")
        self.description = tls.AlertDescription(alert)


class _VerifyingContext(tls.Context):
    """aioquic's TLS context plus qrpc's certificate checks (never instantiated
    directly: `QrpcQuicConnection` assigns it as the class of aioquic's context)."""

    qrpc_policy: PeerPolicy
    qrpc_identity: PeerIdentity | None
    qrpc_error: HandshakeError | None
    qrpc_on_refused: Callable[[HandshakeError], None] | None

    def _server_handle_certificate(self, input_buf: Buffer) -> None:
        super()._server_handle_certificate(input_buf)
        if self._peer_certificate is None:
            # aioquic accepts an empty Certificate as anonymous (RFC 8446 §4.4.2.4).
            self._qrpc_refuse(
                PeerAuthError("peer sent no certificate", alert=Alert.CERTIFICATE_REQUIRED)
            )

    def _server_handle_certificate_verify(self, input_buf: Buffer) -> None:
        super()._server_handle_certificate_verify(input_buf)
        self._qrpc_verify("client")

    def _client_handle_certificate_verify(self, input_buf: Buffer) -> None:
        # verify_mode is CERT_NONE, so aioquic checks only the signature here.
        super()._client_handle_certificate_verify(input_buf)
        self._qrpc_verify("server")

    def _qrpc_verify(self, role: Role) -> None:
        policy = self.qrpc_policy
        try:
            self.qrpc_identity = verify_peer(
                self._peer_certificate,
                self._peer_certificate_chain,
                trust=policy.trust,
                domain=policy.domain,
                role=role,
                now=dt.datetime.now(dt.UTC),
                expected_id=policy.expected_id,
                ca_file=policy.ca_file,
            )
        except (PeerAuthError, PeerIdMismatch) as exc:
            self._qrpc_refuse(exc)

    def _qrpc_refuse(self, error: HandshakeError) -> None:
        self.qrpc_error = error
        if self.qrpc_on_refused is not None:
            self.qrpc_on_refused(error)
        alert = error.alert if isinstance(error, PeerAuthError) else None
        raise _RefusedCertificate(alert or Alert.BAD_CERTIFICATE) from None


class QrpcQuicConnection(QuicConnection):
    """A `QuicConnection` that verifies its peer's certificate the qrpc way.

    Its own connection IDs carry stateless-reset tokens derived from the node's
    secret (`reset_token`), not random ones, so that the node, restarted with
    the same identity, can still reset the links it lost (RFC 9000 section
    10.3): its peers learn of the restart at their next packet.

    Args:
        configuration: from `quic_configuration`.
        policy: how to judge the peer's certificate.
        reset_token: the stateless-reset token of one of our connection IDs.
        on_refused: called with the reason when this side refuses the peer's
            certificate.
        **kwargs: passed to `QuicConnection` (never session-ticket hooks).
    """

    def __init__(
        self,
        *,
        configuration: QuicConfiguration,
        policy: PeerPolicy,
        reset_token: Callable[[bytes], bytes],
        on_refused: Callable[[HandshakeError], None] | None = None,
        **kwargs: Any,
    ) -> None:
        self._qrpc_policy = policy
        self._qrpc_reset_token = reset_token
        self._qrpc_on_refused = on_refused
        super().__init__(configuration=configuration, **kwargs)
        self._logger = _QuicLog(self._logger.logger, self._logger.extra)
        self._qrpc_sign_cids()

    def _replenish_connection_ids(self) -> None:
        super()._replenish_connection_ids()
        self._qrpc_sign_cids()

    def _qrpc_sign_cids(self) -> None:
        for host_cid in self._host_cids:
            if host_cid.stateless_reset_token is not None and not host_cid.was_sent:
                host_cid.stateless_reset_token = self._qrpc_reset_token(host_cid.cid)
        first = self._host_cids[0]
        if not self._is_client and first.sequence_number == 0:  # sent in transport params
            first.stateless_reset_token = self._qrpc_reset_token(first.cid)

    def is_stateless_reset(self, datagram: bytes) -> bool:
        """Whether `datagram` ends with a stateless-reset token the peer gave us."""
        if len(datagram) < 21:
            return False
        tail = datagram[-16:]
        tokens = [self._peer_cid.stateless_reset_token]
        tokens += [cid.stateless_reset_token for cid in self._peer_cid_available]
        return any(token and hmac.compare_digest(token, tail) for token in tokens)

    def initial_decrypted(self) -> bool:
        """Whether an Initial packet of the peer was decrypted (a server's first
        datagram that never decrypts is noise, and its connection can be dropped).

        A ClientHello refused on the spot (no common ALPN: a peer of another
        qrpc version) decrypted too, though aioquic stopped before counting
        its packet: it left a close to send."""
        space = self._spaces.get(tls.Epoch.INITIAL)
        decrypted = space is not None and space.largest_received_packet >= 0
        return decrypted or self._close_event is not None

    def _initialize(self, peer_cid: bytes) -> None:
        super()._initialize(peer_cid)
        self.tls.__class__ = _VerifyingContext
        context = cast("_VerifyingContext", self.tls)
        context.qrpc_policy = self._qrpc_policy
        context.qrpc_identity = None
        context.qrpc_error = None
        context.qrpc_on_refused = self._qrpc_on_refused
        if not self._is_client:
            context._request_client_certificate = True
        else:  # one key share, not aioquic's four (P-384 and X448 keys cost 0.33 ms)
            context._supported_groups = [tls.Group.X25519]

    def unacked_stream_bytes(self, stream_id: int) -> int:
        """Bytes written to a stream and not yet acknowledged by the peer.

        aioquic buffers whatever it is given and trims the buffer from the
        front on every ACK, so an unbounded buffer costs time per ACK; the
        transport uses this to keep it small.
        """
        stream = self._streams.get(stream_id)
        if stream is None:
            return 0
        sender = stream.sender
        return sender._buffer_stop - sender._buffer_start

    def end_qlog(self) -> None:
        """Write this connection's qlog trace now (``QuicSettings.qlog_dir``), if it
        has one: a connection dropped without QUIC's closing period never ends it."""
        trace = self._quic_logger
        quic_logger = self._configuration.quic_logger
        if trace is not None and quic_logger is not None:
            self._quic_logger = None
            quic_logger.end_trace(trace)

    @property
    def peer_identity(self) -> PeerIdentity | None:
        """The verified identity of the peer, once its certificate passed."""
        context = getattr(self, "tls", None)
        return getattr(context, "qrpc_identity", None)

    @property
    def auth_error(self) -> HandshakeError | None:
        """Why this side refused the peer's certificate, if it did."""
        context = getattr(self, "tls", None)
        return getattr(context, "qrpc_error", None)


def quic_configuration(
    tls: TLS,
    *,
    is_client: bool,
    settings: QuicSettings,
    quic_logger: QuicLogger | None = None,
    key_log: TextIO | None = None,
) -> QuicConfiguration:
    """Return an aioquic configuration for one role, carrying `tls`'s credentials
    (and, for debugging, a qlog writer and an open TLS key log file).

    The client-side `verify_mode` is CERT_NONE because qrpc verifies the
    server certificate itself, inside the handshake, with the same rules as
    for clients (`_VerifyingContext`); aioquic's own check is weaker.
    """
    config = QuicConfiguration(
        is_client=is_client,
        alpn_protocols=[ALPN],
        verify_mode=ssl.CERT_NONE,
        idle_timeout=settings.idle_timeout,
        max_datagram_size=BASE_SIZE if settings.path_mtu_discovery else settings.max_datagram_size,
        max_datagram_frame_size=MAX_DATAGRAM_SIZE,  # path probes (qrpc.transport.pmtu)
        max_data=settings.max_data,
        max_stream_data=settings.max_stream_data,
        congestion_control_algorithm=settings.congestion_control,
        quic_logger=quic_logger,
        secrets_log_file=key_log,
    )
    config.certificate = tls.certificate
    config.certificate_chain = list(tls.chain)
    config.private_key = tls.private_key
    return config
