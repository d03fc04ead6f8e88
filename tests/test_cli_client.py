"""``qrpc ping | call | peers | stats`` end to end: the command in a subprocess, a
real node served from the test's event loop, certificates written to tmp_path."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import qrpc
from qrpc.targets import load_target, registry_of
from qrpc.testing import TestPKI

APP = """
import msgspec
import qrpc

class Greet(msgspec.Struct):
    name: str
    times: int = 1

class Greeting(msgspec.Struct):
    text: str

registry = qrpc.Registry()
registry.register(10, Greet)
registry.register(11, Greeting)
"""


@dataclass
class Result:
    status: int
    out: str
    err: str


@dataclass
class Client:
    """Runs the qrpc command with a client certificate of the test CA."""

    pki: TestPKI
    cwd: Path
    node_id: str
    flags: list[str]

    async def __call__(self, *args: str, flags: list[str] | None = None) -> Result:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "qrpc",
            *args,
            *(self.flags if flags is None else flags),
            cwd=self.cwd,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(process.communicate(), 30)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise
        assert process.returncode is not None
        return Result(process.returncode, out.decode(), err.decode())


def _flags(pki: TestPKI, cert: Path, key: Path) -> list[str]:
    return ["--ca", str(pki.ca_path), "--cert", str(cert), "--key", str(key)]


@pytest.fixture
def pki(tmp_path: Path) -> TestPKI:
    return TestPKI(tmp_path / "pki")


@pytest.fixture
def client(pki: TestPKI, tmp_path: Path) -> Client:
    issued = pki.issue()
    cert, key = pki.write(issued)
    assert issued.node_id is not None
    return Client(pki, tmp_path, issued.node_id, _flags(pki, cert, key))


@pytest.fixture
def app(tmp_path: Path) -> str:
    (tmp_path / "greeter.py").write_text(APP)
    return str(tmp_path / "greeter.py") + ":registry"


ServerFactory = Callable[..., Awaitable[qrpc.Node]]


@pytest.fixture
async def serve(pki: TestPKI) -> AsyncIterator[ServerFactory]:
    async with AsyncExitStack() as stack:

        async def start(registry: qrpc.Registry | None = None, **kwargs: Any) -> qrpc.Node:
            node = qrpc.Node(
                registry or qrpc.Registry(), tls=pki.node_tls(), autoload_plugins=False, **kwargs
            )
            stack.push_async_callback(node.close)
            await node.start()
            return node

        yield start


def _where(node: qrpc.Node) -> str:
    host, port = node.address
    return f"{host}:{port}"


async def test_ping_prints_one_line_per_reply(serve: ServerFactory, client: Client) -> None:
    node = await serve()
    result = await client("ping", _where(node), "--count", "3", "--interval", "0.05")
    assert result.status == 0, result.err
    lines = result.out.splitlines()
    assert len(lines) == 3
    for line in lines:
        assert line.startswith(f"reply from {node.id}: time=")
        assert " ms protocol=2 " in line
        assert line.endswith("peers=1")


async def test_ping_names_a_node_that_is_not_there(client: Client) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = await client("ping", f"127.0.0.1:{port}", "--timeout", "1")
    assert result.status == 1
    assert result.out == ""
    assert result.err.count("\n") == 1
    assert result.err.startswith(f"qrpc: cannot connect to 127.0.0.1:{port}: ")


async def test_ping_names_a_refused_certificate(
    serve: ServerFactory, client: Client, tmp_path: Path
) -> None:
    node = await serve()
    foreign = TestPKI(tmp_path / "foreign", name="foreign CA")
    cert, key = foreign.write(foreign.issue())
    result = await client("ping", _where(node), flags=_flags(foreign, cert, key))
    assert result.status == 1
    assert result.err.count("\n") == 1
    assert "not a trusted CA" in result.err
    assert "Traceback" not in result.err


async def test_call_converts_json_and_prints_the_reply(
    serve: ServerFactory, client: Client, app: str
) -> None:
    registry = registry_of(load_target(app))
    node = await serve(registry)
    greeting = registry.type_of(11)

    @node.handler(10)
    async def greet(ctx, msg):
        if msg.name == "nobody":
            raise LookupError("no such person")
        return greeting(" ".join([f"hello {msg.name}"] * msg.times))

    where = _where(node)
    result = await client("call", where, "10", '{"name": "ada", "times": 2}', "--app", app)
    assert result.status == 0, result.err
    assert json.loads(result.out) == {"text": "hello ada hello ada"}

    result = await client("call", where, "10", '{"name": "nobody"}', "--app", app)
    assert result.status == 1
    assert result.err == f"qrpc: {where} answered HANDLER_ERROR (1): LookupError: no such person\n"


@pytest.mark.parametrize(
    ("cmd_id", "body", "problem"),
    [
        ("10", '{"name": 5}', "Expected `str`, got `int` - at `$.name`"),
        ("10", "{not json", "JSON for Greet (cmd_id 10): "),
        ("12", "{}", "cmd_id '12' is not in the registry"),
    ],
)
async def test_call_mistakes_are_one_line_exit_2(
    client: Client, app: str, cmd_id: str, body: str, problem: str
) -> None:
    result = await client("call", "127.0.0.1:9", cmd_id, body, "--app", app)
    assert result.status == 2
    assert result.err.startswith("qrpc: ")
    assert result.err.count("\n") == 1
    assert problem in result.err


async def test_peers_and_stats_are_refused_by_default(serve: ServerFactory, client: Client) -> None:
    node = await serve()
    for command in ("peers", "stats"):
        result = await client(command, _where(node))
        assert result.status == 1
        assert result.err == (
            f"qrpc: {_where(node)} answered NOT_AUTHORIZED (9): introspection is off on this node\n"
        )


async def test_peers_and_stats_for_a_listed_client(serve: ServerFactory, client: Client) -> None:
    node = await serve(introspection=[client.node_id])
    other = await serve()
    other.add_peer(qrpc.PeerAddress(*node.address))
    await node.wait_for_peer(other.id, timeout=5)

    result = await client("peers", _where(node))
    assert result.status == 0, result.err
    header, *rows = result.out.splitlines()
    assert header.split()[:4] == ["PEER", "ADDRESS", "ROLE", "RTT_MS"]
    by_peer = {row.split()[0]: row.split() for row in rows}
    assert set(by_peer) == {other.id, client.node_id}
    assert by_peer[other.id][2] == "accepted"

    result = await client("stats", _where(node), "--json")
    assert result.status == 0, result.err
    stats = json.loads(result.out)
    assert stats["node_id"] == node.id
    assert {p["peer_id"] for p in stats["peers"]} == {other.id, client.node_id}
    assert stats["uptime"] > 0

    result = await client("stats", _where(node))
    assert result.status == 0, result.err
    assert result.out.startswith(f"node      {node.id}\n")
    assert "peers     2\n" in result.out


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["ping", "127.0.0.1"], "is not HOST:PORT"),
        (["ping", "127.0.0.1:1", "--count", "0"], "--count must be at least 1"),
        (["stats", "127.0.0.1:1", "--timeout", "0"], "--timeout must be positive"),
    ],
)
async def test_usage_mistakes_exit_2(client: Client, args: list[str], problem: str) -> None:
    result = await client(*args)
    assert result.status == 2
    assert result.err.count("\n") == 1
    assert problem in result.err


async def test_a_missing_key_file_is_a_usage_error(client: Client, tmp_path: Path) -> None:
    flags = [*client.flags[:-1], str(tmp_path / "missing.key")]
    result = await client("ping", "127.0.0.1:1", flags=flags)
    assert result.status == 2
    assert "check --ca, --cert and --key" in result.err
