"""Every example runs and does what its docstring says."""

from __future__ import annotations

import asyncio
import importlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

import qrpc
from qrpc.cli import main as qrpc_cli

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture
def examples() -> Iterator[None]:
    sys.path.insert(0, str(EXAMPLES))
    try:
        yield
    finally:
        sys.path.remove(str(EXAMPLES))


def _load(name: str) -> ModuleType:
    return importlib.import_module(name)


@pytest.mark.usefixtures("examples")
async def test_two_nodes() -> None:
    heard = await _load("two_nodes").main()
    assert heard == ["bob heard 'hi bob, alice here'", "alice heard 'hi alice, bob here'"]


@pytest.mark.usefixtures("examples")
async def test_reply_via_context() -> None:
    assert await _load("reply_via_context").main() == ["you asked 'what is qrpc?'"]


@pytest.mark.usefixtures("examples")
async def test_request_reply() -> None:
    assert await _load("request_reply").main() == [
        "reply: HELLO",
        "remote error: HANDLER_ERROR: ZeroDivisionError: no",
    ]


@pytest.mark.usefixtures("examples")
async def test_broadcast() -> None:
    lines = await _load("broadcast").main()
    assert lines[0] == "broadcast reached 2 peers"
    assert len(lines) == 3
    assert all("heard 'hello everyone'" in line for line in lines[1:])


@pytest.mark.usefixtures("examples")
async def test_mesh() -> None:
    lines = await _load("mesh").main()
    assert lines[:3] == ["A: B, C", "B: A, C", "C: A, B"]
    assert lines[3:] == sorted(
        f"{dst} <- {src}: direct from {src} to {dst}"
        for src in "ABC"
        for dst in "ABC"
        if src != dst
    )


@pytest.mark.usefixtures("examples")
async def test_serving_node_answers_and_stops_on_sigint(tmp_path: Path) -> None:
    assert qrpc_cli(["certs", str(tmp_path), "--nodes", "2"]) == 0
    common = _load("_common")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLES / "serving_node.py"),
        str(tmp_path),
        "--port",
        "0",
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONASYNCIODEBUG": ""},
    )
    try:
        assert proc.stdout is not None
        banner = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        assert banner.startswith("serving node ")
        server_id = banner.split()[2]
        port = int(banner.rsplit(":", 1)[1])
        tls = qrpc.TLS(tmp_path / "ca.crt", tmp_path / "node-2.crt", tmp_path / "node-2.key")
        client = qrpc.Node(
            common.registry,
            tls=tls,
            peers=[qrpc.Peer("127.0.0.1", port, expected_id=server_id)],
            autoload_plugins=False,
        )
        async with client:
            await client.wait_for_peer(server_id, timeout=10)
            answer = await client.request(server_id, common.Question("hi"), timeout=5)
            assert answer == common.Answer(f"{server_id} heard 'hi' from {client.id}")
        proc.send_signal(signal.SIGINT)
        rest = (await asyncio.wait_for(proc.stdout.read(), 20)).decode()
        assert await asyncio.wait_for(proc.wait(), 20) == 0
        assert rest.strip().endswith("stopped")
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def test_demo_runs_and_reports() -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "demo.py")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for expected in (
        "all three nodes connected",
        "broadcast queued to 2 peers",
        "reply from A:",
        "restarting C",
        "C is back and connected to A and B",
        "reply from C:",
        "all nodes shut down cleanly",
    ):
        assert expected in out, f"{expected!r} missing from demo output:\n{out}"
    assert "Traceback" not in result.stderr
