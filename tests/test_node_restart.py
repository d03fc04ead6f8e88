"""A peer killed with SIGKILL and restarted on the same port and identity is noticed
quickly by a node it does not dial back: the new process answers the old link's
packets with a stateless reset."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import qrpc
from qrpc.testing import TestPKI
from tests.conftest import NodeFactory, Ping, Pong, next_event

SCRIPT = Path(__file__).with_name("peer_process.py")


@contextlib.asynccontextmanager
async def _peer_process(
    pki: TestPKI, cert: Path, key: Path, port: int
) -> AsyncIterator[tuple[asyncio.subprocess.Process, int]]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(SCRIPT),
        str(pki.ca_path),
        str(cert),
        str(key),
        str(port),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 20)
        words = line.decode().split()
        assert words[:1] == ["ready"], line
        yield process, int(words[1])
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGKILL)
        await asyncio.wait_for(process.wait(), 10)


@pytest.mark.slow
async def test_a_restarted_peer_is_noticed_within_3_s(
    make_node: NodeFactory, qrpc_pki: TestPKI
) -> None:
    issued = qrpc_pki.issue()
    cert, key = qrpc_pki.write(issued)
    peer_id = issued.node_id
    assert peer_id is not None
    async with _peer_process(qrpc_pki, cert, key, 0) as (first, port):
        a = await make_node(
            peers=[qrpc.Peer("127.0.0.1", port, expected_id=peer_id)],
            limits=qrpc.Limits(shutdown_timeout=0.5),  # its peer is killed before teardown
        )
        await a.wait_for_peer(peer_id, timeout=10)
        assert (await a.request(peer_id, Ping("before"), reply=Pong, timeout=5)).text == "before"
        events = a.events()
        first.send_signal(signal.SIGKILL)
        await first.wait()
    async with _peer_process(qrpc_pki, cert, key, port):
        restarted = asyncio.get_running_loop().time()
        gone = await next_event(events, qrpc.Disconnected, timeout=10)
        noticed = asyncio.get_running_loop().time() - restarted
        assert gone.peer_id == peer_id
        assert noticed < 3.0, f"the restart was noticed after {noticed:.1f} s"
        await a.wait_for_peer(peer_id, timeout=10)
        assert (await a.request(peer_id, Ping("after"), reply=Pong, timeout=5)).text == "after"
