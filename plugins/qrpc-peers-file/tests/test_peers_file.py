"""qrpc-peers-file: parsing, and discovery on real nodes over 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import msgspec
import pytest
import qrpc_peers_file
from qrpc_peers_file import PeersFile, parse_peers

import qrpc
from qrpc.testing import TestPKI

FAST = qrpc.Limits(discovery_interval=0.2, connect_timeout=0.5)
NodeFactory = Callable[..., Awaitable[qrpc.Node]]


class Note(msgspec.Struct):
    text: str


@pytest.fixture
async def nodes(qrpc_pki: TestPKI) -> AsyncIterator[NodeFactory]:
    registry = qrpc.Registry()
    registry.register(1, Note)
    async with AsyncExitStack() as stack:

        async def make(**kwargs: Any) -> qrpc.Node:
            kwargs.setdefault("autoload_plugins", False)
            node = qrpc.Node(registry, tls=qrpc_pki.node_tls(), **kwargs)
            stack.push_async_callback(node.close)
            await node.start()
            return node

        yield make


class _CountingPeersFile(PeersFile):
    """A `PeersFile` that counts the rounds that read it."""

    reads = 0

    def read(self) -> list[qrpc.PeerAddress]:
        self.reads += 1
        return super().read()


def test_lines_are_parsed_and_bad_ones_skipped(caplog: pytest.LogCaptureFixture) -> None:
    text = (
        "# peers\n"
        "10.0.0.7:7000\n"
        "\n"
        "node-b.internal:7001 01j9z3k1m6q8r2t4v6w8y0a2c4  # with its ID\n"
        "[fd00::9]:7002\n"
        "no-port\n"
        "host:99999\n"
    )
    with caplog.at_level(logging.WARNING, "qrpc_peers_file"):
        peers = parse_peers(text, "peers.txt")
    assert [(p.host, p.port, p.expected_id) for p in peers] == [
        ("10.0.0.7", 7000, None),
        ("node-b.internal", 7001, "01j9z3k1m6q8r2t4v6w8y0a2c4"),
        ("fd00::9", 7002, None),
    ]
    assert [r.getMessage().split(":")[:2] for r in caplog.records] == [
        ["peers.txt", "6"],
        ["peers.txt", "7"],
    ]


def test_a_missing_file_finds_nothing_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, "qrpc_peers_file"):
        assert PeersFile(tmp_path / "absent").read() == []
    assert "cannot read the peers file" in caplog.text


def test_the_installed_plugin_is_inert_without_its_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(qrpc_peers_file.ENV_FILE, raising=False)
    assert qrpc_peers_file.qrpc_discover_peers(node=None) is None  # type: ignore[arg-type]


async def test_a_peer_written_to_the_file_later_is_dialed(
    nodes: NodeFactory, tmp_path: Path
) -> None:
    target = await nodes()
    listing = tmp_path / "peers"
    listing.write_text("# nobody yet\n", encoding="utf-8")
    source = _CountingPeersFile(listing)
    dialer = await nodes(plugins=[source], limits=FAST)
    for _ in range(100):  # two rounds with an empty file (bounded: 5 s)
        if source.reads >= 2:
            break
        await asyncio.sleep(0.05)
    assert source.reads >= 2
    assert dialer.peers() == []
    host, port = target.address
    listing.write_text(f"{host}:{port} {target.id}\n", encoding="utf-8")
    loop = asyncio.get_running_loop()
    written = loop.time()
    await dialer.wait_for_peer(target.id, timeout=FAST.discovery_interval + 1.0)
    assert loop.time() - written <= FAST.discovery_interval + 1.0
    assert [state.address.port for state in dialer.dial_states()] == [port]


async def test_the_installed_plugin_reads_the_file_its_variable_names(
    nodes: NodeFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = await nodes()
    listing = tmp_path / "peers"
    listing.write_text("{}:{}\n".format(*target.address), encoding="utf-8")
    monkeypatch.setenv(qrpc_peers_file.ENV_FILE, str(listing))
    dialer = await nodes(plugins=[qrpc_peers_file], limits=FAST)
    await dialer.wait_for_peer(target.id, timeout=2.0)
