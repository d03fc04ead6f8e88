"""How a connection ended, as the qrpc exception a dialer sees: the one place that
maps QUIC terminations (and qrpc's application close codes) onto `ConnectError`s."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Final

from aioquic.quic.packet import QuicErrorCode

from qrpc.codes import ErrorCode
from qrpc.errors import (
    ConnectError,
    ConnectionLimitReached,
    ConnectionRefused,
    ConnectTimeout,
    DuplicateLink,
    HandshakeError,
    IncompatiblePeer,
    NoCommonCodec,
    PeerAuthError,
    PeerIdMismatch,
    SchemaMismatch,
    SelfConnection,
)
from qrpc.tls.identity import Alert

__all__ = ["close_error", "format_address"]

_CRYPTO_ERROR: Final = 0x100  # QUIC CRYPTO_ERROR range: 0x100 + TLS alert
_PADDING: Final = 0x00  # frame type aioquic reports with its idle-timeout INTERNAL_ERROR
_NO_APPLICATION_PROTOCOL: Final = 120  # TLS alert: no ALPN in common (another qrpc version)

_REFUSALS: Final[dict[int, Callable[[int, str], ConnectError]]] = {
    ErrorCode.CONNECTION_LIMIT: ConnectionLimitReached,
    ErrorCode.DUPLICATE_LINK: DuplicateLink,
    ErrorCode.NO_COMMON_CODEC: NoCommonCodec,
    ErrorCode.PEER_ID_MISMATCH: lambda code, reason: PeerIdMismatch(None, None, reason),
    ErrorCode.SELF_CONNECTION: lambda code, reason: SelfConnection(reason or "connected to itself"),
    ErrorCode.AUTH_REJECTED: lambda code, reason: PeerAuthError(reason or "peer rejected us"),
    ErrorCode.SCHEMA_MISMATCH: lambda code, reason: SchemaMismatch(
        f"the peer refused our registry: {reason}",
        tuple(int(n) for n in re.findall(r"cmd_id (\d+)", reason)),
    ),
}


def format_address(address: tuple[Any, ...] | None) -> str:
    """``host:port`` (``[host]:port`` for IPv6) of a socket address, for messages."""
    if address is None:
        return "the peer"
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


def close_error(
    *,
    auth_error: HandshakeError | None,
    timed_out: bool,
    address: tuple[Any, ...] | None = None,
    silent_for: float | None = None,
    handshake_timeout: float | None = None,
    code: int | None,
    reason: str,
    closed_locally: bool,
    frame_type: int | None,
) -> ConnectError:
    """The exception for a connection that ended this way.

    Args:
        auth_error: why this side refused the peer's certificate, if it did.
        timed_out: the handshake deadline (or the silence timer) ended it.
        address: the peer's address.
        silent_for: set when the peer never answered: ``Limits.connect_timeout``.
        handshake_timeout: ``Limits.handshake_timeout``.
        code: the close code (None: it dropped without one).
        reason: the close reason.
        closed_locally: this side chose to close.
        frame_type: None for an application close, else the QUIC frame type.
    """
    if auth_error is not None:  # we refused the peer's certificate
        return auth_error
    if timed_out and silent_for is not None:
        return ConnectTimeout(
            f"no answer from {format_address(address)} within connect_timeout={silent_for} s: "
            "is a node listening there?"
        )
    if timed_out:
        within = f"handshake_timeout={handshake_timeout} s" if handshake_timeout else "the deadline"
        return ConnectTimeout(
            f"no TLS + HELLO exchange with {format_address(address)} within {within}"
        )
    if code is None:
        return ConnectTimeout("connection dropped before the handshake completed")
    if closed_locally:
        return ConnectionRefused(code, reason, by_peer=False)
    if frame_type is None:  # application close sent by the peer
        refusal = _REFUSALS.get(code)
        return refusal(code, reason) if refusal is not None else ConnectionRefused(code, reason)
    if _CRYPTO_ERROR <= code < _CRYPTO_ERROR + 0x100:
        alert = code - _CRYPTO_ERROR
        if alert == _NO_APPLICATION_PROTOCOL:
            return IncompatiblePeer(
                "the peer speaks another qrpc protocol version (no common ALPN "
                "'qrpc/<version>'): run the same qrpc release on both sides"
            )
        try:
            name = f" {Alert(alert).name.lower()}"
        except ValueError:
            name = ""
        return PeerAuthError(
            f"the peer refused the TLS handshake with alert {alert}{name} (if it refused this "
            "node's certificate, its log says why: a WARNING 'refused the peer at ...')",
            alert=alert,
        )
    if code == QuicErrorCode.INTERNAL_ERROR and frame_type == _PADDING:
        return ConnectTimeout(f"no answer from the peer ({reason or 'idle timeout'})")
    return ConnectionRefused(code, reason)
