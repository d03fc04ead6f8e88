"""Hostile peers during link admission: what they can make a node buffer or do."""

from __future__ import annotations

import asyncio
from typing import Any

import qrpc
from qrpc.testing import TestPKI
from qrpc.wire import FrameKind, encode_frame
from tests.conftest import NodeFactory
from tests.hostile.rawpeer import RawProtocol, RawServer, hello_frame


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
