"""`Gate`: what to do with a datagram that matches no connection -- decided without IO.

A datagram whose destination connection ID is unknown gets one of:

- nothing (dropped): not a long-header Initial of at least 1,200 bytes,
  or too many handshakes are already in progress, or a Retry token that
  does not validate;
- a Version Negotiation packet: a long header with a version this node
  does not speak (never in answer to a Version Negotiation packet, which
  would loop);
- a Retry packet, when address validation is on and the Initial carries no
  token: the client must prove it receives at its address before any state
  is kept for it;
- `Accept`: create a server-side connection for it.

`Endpoint` asks and does what the answer says.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
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

__all__ = ["Accept", "Drop", "Gate"]

CID_LENGTH: Final = 8  # bytes, aioquic's default host connection ID length


class Drop(Enum):
    """Why a datagram was dropped (for the endpoint's counters)."""

    IGNORED = "ignored"
    """Not an Initial a server may answer (short, other type, ...)."""
    FULL = "full"
    """Too many handshakes in progress."""
    BAD_TOKEN = "bad-token"
    """A Retry token that does not validate."""


@dataclass(frozen=True, slots=True)
class Accept:
    """Create a connection for this Initial."""

    original_destination_cid: bytes
    """The client's first destination CID (before any Retry)."""
    retry_source_cid: bytes | None
    """The CID our Retry packet used, if the client came back with a token."""


class Gate:
    """The decisions for datagrams of unknown connection IDs (module docstring).

    Args:
        supported_versions: QUIC versions this node speaks.
        retry: validate client addresses with Retry before keeping state.
        max_half_open: accepted connections allowed before TLS + HELLO completes.
    """

    __slots__ = ("_max_half_open", "_retry", "_versions")

    def __init__(
        self, *, supported_versions: Sequence[int], retry: bool, max_half_open: int
    ) -> None:
        self._versions = list(supported_versions)
        self._retry = QuicRetryTokenHandler() if retry else None
        self._max_half_open = max_half_open

    def decide(
        self, header: QuicHeader, size: int, addr: NetworkAddress, now: float, *, half_open: int
    ) -> Accept | bytes | Drop:
        """Return `Accept`, a datagram to send back, or why to drop it.

        Args:
            header: the parsed long header.
            size: the datagram's length in bytes.
            addr: where it came from.
            now: the loop time.
            half_open: accepted connections still in TLS or HELLO.
        """
        if (
            header.packet_type != QuicPacketType.VERSION_NEGOTIATION
            and header.version is not None
            and header.version not in self._versions
        ):
            return encode_quic_version_negotiation(
                source_cid=header.destination_cid,
                destination_cid=header.source_cid,
                supported_versions=self._versions,
            )
        if header.packet_type != QuicPacketType.INITIAL or size < SMALLEST_MAX_DATAGRAM_SIZE:
            return Drop.IGNORED
        if half_open >= self._max_half_open:
            return Drop.FULL
        retry = self._retry
        if retry is None:
            return Accept(header.destination_cid, None)
        if not header.token:
            return self._retry_packet(retry, header, addr, now)
        try:
            odcid = retry.validate_token(
                address=addr, destination_cid=header.destination_cid, token=header.token, now=now
            )
        except ValueError:
            return Drop.BAD_TOKEN
        return Accept(odcid, header.destination_cid)

    @staticmethod
    def _retry_packet(
        retry: QuicRetryTokenHandler, header: QuicHeader, addr: NetworkAddress, now: float
    ) -> bytes | Drop:
        if header.version is None:
            return Drop.IGNORED
        source_cid = os.urandom(CID_LENGTH)
        return encode_quic_retry(
            version=header.version,
            source_cid=source_cid,
            destination_cid=header.source_cid,
            original_destination_cid=header.destination_cid,
            retry_token=retry.create_token(
                address=addr,
                original_destination_connection_id=header.destination_cid,
                retry_source_connection_id=source_cid,
                now=now,
            ),
        )
