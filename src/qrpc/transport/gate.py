"""`Gate`: what to do with a datagram that matches no connection -- decided without IO.

A long-header datagram whose destination connection ID is unknown gets one of:

- nothing (`Drop`): not an Initial of at least 1,200 bytes; too many
  handshakes in progress, in all or from its source address; a Retry token
  that does not validate; or an answer it would deserve but the reply
  budget is spent;
- a Version Negotiation packet: a version this node does not speak, in a
  datagram of at least 1,200 bytes (RFC 9000 section 5.2.2: an answer to a
  smaller one would make the node an amplifier), never in answer to a
  Version Negotiation packet (which would loop);
- a Retry packet: address validation is on -- configured, or switched on by
  itself while half the half-open slots are taken -- and the Initial
  carries no token, so the client must prove it receives at its address
  before any state is kept for it;
- `Accept`: create a server-side connection.

A short-header datagram of an unknown connection ID gets a stateless reset
(`reset`): the connection ID may be one this node issued before it
restarted, and the token, derived from the node's identity, tells the peer
so at once.

Every stateless reply (Version Negotiation, Retry, reset) spends from a
budget per source host and one for all, and so does every new connection:
a flood gets a trickle of answers, each smaller than what provoked it, and
costs the node a bounded number of handshakes per second.  `Endpoint` asks and does what
the answer says.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Final

from aioquic.quic.configuration import SMALLEST_MAX_DATAGRAM_SIZE
from aioquic.quic.connection import NetworkAddress
from aioquic.quic.packet import (
    QuicHeader,
    QuicPacketType,
    encode_quic_retry,
    encode_quic_version_negotiation,
)
from aioquic.quic.retry import QuicRetryTokenHandler

__all__ = ["CID_LENGTH", "Accept", "Budget", "Drop", "Gate", "reset_token_function"]

CID_LENGTH: Final = 8  # bytes, aioquic's default host connection ID length
RESET_MIN: Final = 21  # bytes: the smallest stateless reset (RFC 9000 section 10.3)
RESET_MAX: Final = 43  # bytes: as large as a short packet with a small payload
REPLIES_PER_SOURCE: Final = 20.0  # stateless replies per second to one host...
REPLIES_ALL: Final = 1000.0  # ...and to all of them together (bursts: twice as many)
INITIALS_PER_SOURCE: Final = 50.0  # new connections per second from one host...
INITIALS_ALL: Final = 500.0  # ...and from all of them together


class Drop(Enum):
    """Why a datagram was dropped (for the endpoint's counters)."""

    IGNORED = "ignored"
    """Not something a server may answer (too short, wrong type, ...)."""
    FULL = "full"
    """Too many handshakes in progress, in all or from this source address."""
    BAD_TOKEN = "bad-token"
    """A Retry token that does not validate."""
    BUDGET = "budget"
    """It deserved a stateless reply, but the reply budget is spent."""
    BUSY = "busy"
    """Its source host (or every host) opened connections faster than allowed."""


@dataclass(frozen=True, slots=True)
class Accept:
    """Create a connection for this Initial."""

    original_destination_cid: bytes
    """The client's first destination CID (before any Retry)."""
    retry_source_cid: bytes | None
    """The CID our Retry packet used, if the client came back with a token."""


def reset_token_function(secret_seed: bytes) -> Callable[[bytes], bytes]:
    """Return ``token(cid)``: the stateless-reset token of connection ID `cid`.

    The key is derived from the node's private key (`TLS.secret_seed`), so a
    node restarted with the same identity computes the same tokens for the
    connection IDs its previous process issued, and no one without the key
    can forge them.
    """
    key = hashlib.sha256(b"qrpc stateless reset token key\x00" + secret_seed).digest()

    def token(cid: bytes) -> bytes:
        return hmac.new(key, cid, hashlib.sha256).digest()[:16]

    return token


class Budget:
    """Token buckets: `per_host` events per second for each source host, `overall`
    for all of them together, each allowing a burst of twice its rate."""

    __slots__ = ("_all", "_hosts", "_overall", "_per_host")

    def __init__(self, per_host: float, overall: float) -> None:
        self._per_host = per_host
        self._overall = overall
        self._all = (2 * overall, 0.0)
        self._hosts: dict[str, tuple[float, float]] = {}

    def spend(self, host: str, now: float) -> bool:
        """Take one for `host` at `now`; False when either bucket is empty."""
        rate, burst = self._per_host, 2 * self._per_host
        tokens, last = self._hosts.get(host, (burst, now))
        tokens = min(burst, tokens + (now - last) * rate)
        all_tokens, all_last = self._all
        all_tokens = min(2 * self._overall, all_tokens + (now - all_last) * self._overall)
        ok = tokens >= 1 and all_tokens >= 1
        spent = 1.0 if ok else 0.0
        self._hosts[host] = (tokens - spent, now)
        self._all = (all_tokens - spent, now)
        if len(self._hosts) > 4096:  # forget hosts whose bucket has refilled
            self._hosts = {h: v for h, v in self._hosts.items() if now - v[1] < 2.0}
        return ok


class Gate:
    """The decisions for datagrams of unknown connection IDs (module docstring).

    Args:
        supported_versions: QUIC versions this node speaks.
        retry: always validate client addresses with Retry before keeping state.
        max_half_open: accepted connections allowed before TLS + HELLO completes.
        max_half_open_per_source: the same, from one source host.
        reset_token: the stateless-reset token of one of our connection IDs.
    """

    __slots__ = (
        "_budget",
        "_initials",
        "_max_half_open",
        "_per_source",
        "_reset_token",
        "_retry",
        "_retry_always",
        "_versions",
    )

    def __init__(
        self,
        *,
        supported_versions: Sequence[int],
        retry: bool,
        max_half_open: int,
        max_half_open_per_source: int,
        reset_token: Callable[[bytes], bytes],
    ) -> None:
        self._versions = list(supported_versions)
        self._retry = QuicRetryTokenHandler()
        self._retry_always = retry
        self._max_half_open = max_half_open
        self._per_source = max_half_open_per_source
        self._reset_token = reset_token
        self._budget = Budget(REPLIES_PER_SOURCE, REPLIES_ALL)
        self._initials = Budget(INITIALS_PER_SOURCE, INITIALS_ALL)

    def decide(
        self,
        header: QuicHeader,
        size: int,
        addr: NetworkAddress,
        now: float,
        *,
        half_open: int,
        half_open_here: int,
    ) -> Accept | bytes | Drop:
        """Return `Accept`, a datagram to send back, or why to drop it.

        Args:
            header: the parsed long header.
            size: the datagram's length in bytes.
            addr: where it came from.
            now: the loop time.
            half_open: accepted connections still in TLS or HELLO.
            half_open_here: those of them from `addr`'s host.
        """
        if (
            header.packet_type != QuicPacketType.VERSION_NEGOTIATION
            and header.version is not None
            and header.version not in self._versions
        ):
            if size < SMALLEST_MAX_DATAGRAM_SIZE:
                return Drop.IGNORED
            if not self._budget.spend(str(addr[0]), now):
                return Drop.BUDGET
            return encode_quic_version_negotiation(
                source_cid=header.destination_cid,
                destination_cid=header.source_cid,
                supported_versions=self._versions,
            )
        if header.packet_type != QuicPacketType.INITIAL or size < SMALLEST_MAX_DATAGRAM_SIZE:
            return Drop.IGNORED
        if half_open >= self._max_half_open or half_open_here >= self._per_source:
            return Drop.FULL
        pressure = half_open >= self._max_half_open // 2
        if not header.token:
            if not (self._retry_always or pressure):
                if not self._initials.spend(str(addr[0]), now):
                    return Drop.BUSY
                return Accept(header.destination_cid, None)
            if not self._budget.spend(str(addr[0]), now):
                return Drop.BUDGET
            return self._retry_packet(header, addr, now)
        try:
            odcid = self._retry.validate_token(
                address=addr, destination_cid=header.destination_cid, token=header.token, now=now
            )
        except ValueError:
            return Drop.BAD_TOKEN
        if not self._initials.spend(str(addr[0]), now):
            return Drop.BUSY
        return Accept(odcid, header.destination_cid)

    def reset(self, datagram: bytes, addr: NetworkAddress, now: float) -> bytes | Drop:
        """A stateless reset for a short-header `datagram` of an unknown connection ID,
        smaller than the datagram; or why not (too small to answer, or no budget)."""
        size = len(datagram)
        if size <= RESET_MIN:
            return Drop.IGNORED
        if not self._budget.spend(str(addr[0]), now):
            return Drop.BUDGET
        length = min(size - 1, RESET_MAX)
        token = self._reset_token(datagram[1 : 1 + CID_LENGTH])
        first = 0x40 | (os.urandom(1)[0] & 0x3F)  # looks like a short-header packet
        return bytes([first]) + os.urandom(length - 17) + token

    def _retry_packet(self, header: QuicHeader, addr: NetworkAddress, now: float) -> bytes | Drop:
        if header.version is None:
            return Drop.IGNORED
        source_cid = os.urandom(CID_LENGTH)
        return encode_quic_retry(
            version=header.version,
            source_cid=source_cid,
            destination_cid=header.source_cid,
            original_destination_cid=header.destination_cid,
            retry_token=self._retry.create_token(
                address=addr,
                original_destination_connection_id=header.destination_cid,
                retry_source_connection_id=source_cid,
                now=now,
            ),
        )
