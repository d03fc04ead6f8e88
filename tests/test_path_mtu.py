"""Datagram size: what aioquic can build, and what the path carries."""

from __future__ import annotations

import pytest

import qrpc


def test_a_datagram_size_aioquic_cannot_build_is_refused() -> None:
    # aioquic writes a STREAM frame's length in two bytes (at most 16383): a
    # larger packet is built with a corrupt length and the peer closes the link.
    with pytest.raises(qrpc.ConfigError, match="16383"):
        qrpc.QuicSettings(max_datagram_size=16384)
