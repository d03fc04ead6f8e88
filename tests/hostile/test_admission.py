"""Hostile peers during link admission: what they can make a node buffer or do."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

import qrpc
from qrpc.testing import TestPKI
from qrpc.wire import FrameKind, encode_frame
from qrpc.wire.frames import encode_header
from tests.conftest import NodeFactory
from tests.hostile.rawpeer import RawClient, RawProtocol, RawServer, hello_frame


class _SlowAuth:
    """An async auth hook that takes its time (an allowlist service, say)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    @qrpc.hookimpl
    def qrpc_authorize_peer(self) -> Any:
        async def decide() -> bool:
            await asyncio.sleep(self.seconds)
            return True

        return decide()


async def test_acceptor_flood_while_the_dialer_authorizes_is_bounded(
    make_node: NodeFactory, qrpc_pki: TestPKI
) -> None:
    """The acceptor answers HELLO, then floods frames that need no credit while the
    dialer's async auth hook runs: the dialer closes the link instead of buffering."""
    flood = encode_frame(FrameKind.RESPONSE, request_id=1) * 4096  # 64 KiB of bogus replies
    writers: list[asyncio.Task[None]] = []
    sent = 0

    async def keep_flooding(proto: RawProtocol) -> None:
        nonlocal sent
        for _ in range(20_000):  # bounded: at most ~128 MiB in 2,000 writes
            if proto.terminated.done() or sent > 128 * 1024 * 1024:
                return
            if proto.unacked() < 1024 * 1024:
                proto.send_frame(flood)
                sent += len(flood)
            await asyncio.sleep(0.001)

    def on_frame(proto: RawProtocol, frame: Any) -> None:
        if frame.kind is FrameKind.HELLO:
            proto.send_frame(hello_frame(server.node_id))
            writers.append(asyncio.create_task(keep_flooding(proto)))

    server = await RawServer.start(qrpc_pki, on_frame)
    try:
        dialer = await make_node(plugins=[_SlowAuth(20)], peers=[server.peer()])
        await asyncio.wait_for(asyncio.shield(_first_protocol(server)), 5)
        try:
            terminated = await asyncio.wait_for(server.protocols[0].terminated, 10)
        except TimeoutError:
            raise AssertionError(f"link still open after {sent:,} bytes of flood") from None
        assert terminated.error_code == qrpc.ErrorCode.EARLY_DATA_LIMIT
        assert dialer.peers() == []
    finally:
        for task in writers:
            task.cancel()
        server.close()


async def _first_protocol(server: RawServer) -> None:
    for _ in range(500):
        if server.protocols:
            return
        await asyncio.sleep(0.01)


async def test_a_huge_hello_is_refused_on_its_header(
    make_node: NodeFactory, qrpc_pki: TestPKI
) -> None:
    """Before HELLO, a frame may not declare more than a HELLO needs: a peer must not be
    able to pin megabytes per never-admitted link for the whole handshake deadline."""
    node = await make_node()
    async with RawClient.connect(qrpc_pki, node, hello=False) as peer:
        peer.send_frame(encode_header(FrameKind.HELLO, 4 * 1024 * 1024))
        for _ in range(16):  # trickle a megabyte of "HELLO body"
            if peer.terminated.done():
                break
            peer.send_frame(b"\x00" * 65536)
            await asyncio.sleep(0.01)
        terminated = await asyncio.wait_for(asyncio.shield(peer.terminated), 3)
        assert terminated.error_code == qrpc.ErrorCode.FRAME_TOO_LARGE


def test_a_per_peer_ca_requires_the_expected_id(qrpc_pki: TestPKI, tmp_path: Path) -> None:
    """A partner CA may mint a certificate for any node ID, one of ours included: a
    bootstrap entry trusting it must say which node it expects."""
    partner = TestPKI(tmp_path / "partner")
    with pytest.raises(qrpc.ConfigError, match="expected_id"):
        qrpc.Peer("127.0.0.1", 20001, ca=partner.ca_path)
    qrpc.Peer("127.0.0.1", 20001, ca=partner.ca_path, expected_id=qrpc.new_node_id())
