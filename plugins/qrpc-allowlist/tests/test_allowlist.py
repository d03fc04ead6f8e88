"""qrpc-allowlist on real nodes over 127.0.0.1: listed peers connect, others are refused.

Certificates come from the ``qrpc_pki`` fixture that qrpc ships as a pytest plugin.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import pytest
import qrpc_allowlist
from qrpc_allowlist import Allowlist

import qrpc
from qrpc.testing import TestPKI

E = TypeVar("E")
NodeFactory = Callable[..., Awaitable[qrpc.Node]]
TIMEOUT = 5.0  # seconds any single wait may take


class Note(msgspec.Struct):
    text: str


@pytest.fixture
def allowlist_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """A clean environment: no allowlist variables, plugin autoloading on."""
    for name in (qrpc_allowlist.ENV_LIST, qrpc_allowlist.ENV_FILE, "QRPC_DISABLE_PLUGIN_AUTOLOAD"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
async def allowlist_nodes(qrpc_pki: TestPKI) -> AsyncIterator[NodeFactory]:
    """Start nodes on 127.0.0.1:0 (no autoloaded plugins unless asked); closed at teardown.

    Each node's handler for `Note` puts what it receives in the queue ``node.state``.
    """
    registry = qrpc.Registry()
    registry.register(1, Note)
    async with AsyncExitStack() as stack:

        async def make(*, tls: qrpc.TLS | None = None, **kwargs: Any) -> qrpc.Node:
            kwargs.setdefault("autoload_plugins", False)
            inbox: asyncio.Queue[Note] = asyncio.Queue()
            node = qrpc.Node(registry, tls=tls or qrpc_pki.node_tls(), state=inbox, **kwargs)

            @node.handler(1)
            async def on_note(ctx: qrpc.Context, msg: Note) -> None:
                ctx.state.put_nowait(msg)

            return await stack.enter_async_context(node)

        yield make


async def next_event(events: qrpc.EventStream, type_: type[E]) -> E:
    async with asyncio.timeout(TIMEOUT):
        async for event in events:
            if isinstance(event, type_):
                return event
    raise AssertionError(f"event stream ended before a {type_.__name__}")


async def assert_admitted(dialer: qrpc.Node, acceptor: qrpc.Node) -> None:
    """`dialer` dials `acceptor`, the link comes up and a message gets through."""
    dialer.add_peer(qrpc.Peer(*acceptor.address, expected_id=acceptor.id))
    assert await dialer.wait_for_peer(acceptor.id, timeout=TIMEOUT) == acceptor.id
    assert await acceptor.wait_for_peer(dialer.id, timeout=TIMEOUT) == dialer.id
    await dialer.send(acceptor.id, Note("hello"))
    async with asyncio.timeout(TIMEOUT):
        assert await acceptor.state.get() == Note("hello")


async def assert_refused(
    dialer: qrpc.Node, acceptor: qrpc.Node, *, by_dialer: bool = False
) -> None:
    """`dialer` dials `acceptor` and fails permanently; no handler runs on either side.

    With `by_dialer`, the dialer's own plugin refused: the acceptor may still
    hold the link until the refusal reaches it (see the test below).
    """
    events = dialer.events()
    dialer.add_peer(qrpc.Peer(*acceptor.address, expected_id=acceptor.id))
    failed = await next_event(events, qrpc.ConnectFailed)
    assert isinstance(failed.error, qrpc.PeerAuthError)
    assert failed.kind is qrpc.FailureKind.PERMANENT
    assert failed.retry_in is None  # the dial loop stopped
    assert dialer.peers() == []
    if not by_dialer:
        assert dialer.id not in acceptor.peers()
    assert acceptor.state.empty()
    assert dialer.state.empty()


# -- in code ------------------------------------------------------------------------


async def test_listed_node_id_connects(allowlist_nodes: NodeFactory, qrpc_pki: TestPKI) -> None:
    dialer_tls = qrpc_pki.node_tls()
    acceptor = await allowlist_nodes(plugins=[Allowlist({dialer_tls.node_id.upper()})])
    dialer = await allowlist_nodes(tls=dialer_tls)
    await assert_admitted(dialer, acceptor)


async def test_listed_fingerprint_connects(allowlist_nodes: NodeFactory, qrpc_pki: TestPKI) -> None:
    dialer_tls = qrpc_pki.node_tls()
    hex_ = dialer_tls.identity.fingerprint.upper()
    openssl_style = "sha256:" + ":".join(hex_[i : i + 2] for i in range(0, 64, 2))
    acceptor = await allowlist_nodes(plugins=[Allowlist([openssl_style])])
    dialer = await allowlist_nodes(tls=dialer_tls)
    await assert_admitted(dialer, acceptor)


async def test_unlisted_peer_is_refused(allowlist_nodes: NodeFactory) -> None:
    acceptor = await allowlist_nodes(plugins=[Allowlist({qrpc.new_node_id()})])
    dialer = await allowlist_nodes()
    await assert_refused(dialer, acceptor)


async def test_dialer_refuses_an_unlisted_acceptor(allowlist_nodes: NodeFactory) -> None:
    acceptor = await allowlist_nodes()
    dialer = await allowlist_nodes(plugins=[Allowlist({qrpc.new_node_id()})])
    acceptor_events = acceptor.events()
    await assert_refused(dialer, acceptor, by_dialer=True)
    # The acceptor admitted the dialer before the dialer judged the acceptor's
    # HELLO, so it saw the link come up, then end with the dialer's refusal.
    connected = await next_event(acceptor_events, qrpc.Connected)
    assert connected.peer_id == dialer.id
    gone = await next_event(acceptor_events, qrpc.Disconnected)
    assert (gone.peer_id, gone.code) == (dialer.id, qrpc.ErrorCode.AUTH_REJECTED)
    assert acceptor.peers() == []


async def test_every_allowlist_must_admit(allowlist_nodes: NodeFactory, qrpc_pki: TestPKI) -> None:
    dialer_tls = qrpc_pki.node_tls()
    listed, other = Allowlist({dialer_tls.node_id}), Allowlist({qrpc.new_node_id()})
    acceptor = await allowlist_nodes(plugins=[listed, other])
    dialer = await allowlist_nodes(tls=dialer_tls)
    await assert_refused(dialer, acceptor)


# -- configured through the environment (the installed entry point) -----------------


async def test_installed_plugin_is_loaded_from_its_entry_point(
    allowlist_nodes: NodeFactory, allowlist_env: pytest.MonkeyPatch
) -> None:
    node = await allowlist_nodes(autoload_plugins=True)
    assert node.plugin_manager.get_plugin("qrpc-allowlist:allowlist") is qrpc_allowlist


async def test_env_list_admits_listed_and_refuses_others(
    allowlist_nodes: NodeFactory, allowlist_env: pytest.MonkeyPatch, qrpc_pki: TestPKI
) -> None:
    listed_tls = qrpc_pki.node_tls()
    allowlist_env.setenv("QRPC_ALLOWLIST", f"{qrpc.new_node_id()}, {listed_tls.node_id}")
    acceptor = await allowlist_nodes(autoload_plugins=True)
    await assert_admitted(await allowlist_nodes(tls=listed_tls), acceptor)
    refused = await allowlist_nodes()
    await assert_refused(refused, acceptor)
    assert acceptor.peers() == [listed_tls.node_id]


async def test_env_file_admits_listed_and_refuses_others(
    allowlist_nodes: NodeFactory,
    allowlist_env: pytest.MonkeyPatch,
    qrpc_pki: TestPKI,
    tmp_path: Path,
) -> None:
    listed_tls = qrpc_pki.node_tls()
    path = tmp_path / "allowlist.txt"
    path.write_text(
        f"# who may connect\n{qrpc.new_node_id()}, {qrpc.new_node_id()}\n\n"
        f"{listed_tls.identity.fingerprint}  # the listed node's certificate\n"
    )
    allowlist_env.setenv("QRPC_ALLOWLIST_FILE", str(path))
    acceptor = await allowlist_nodes(autoload_plugins=True)
    await assert_admitted(await allowlist_nodes(tls=listed_tls), acceptor)
    await assert_refused(await allowlist_nodes(), acceptor)


async def test_env_file_is_reread_for_each_new_link(
    allowlist_nodes: NodeFactory,
    allowlist_env: pytest.MonkeyPatch,
    qrpc_pki: TestPKI,
    tmp_path: Path,
) -> None:
    later_tls = qrpc_pki.node_tls()
    path = tmp_path / "allowlist.txt"
    path.write_text(qrpc.new_node_id())
    allowlist_env.setenv("QRPC_ALLOWLIST_FILE", str(path))
    acceptor = await allowlist_nodes(autoload_plugins=True)
    await assert_refused(await allowlist_nodes(tls=later_tls), acceptor)
    path.write_text(later_tls.node_id)
    await assert_admitted(await allowlist_nodes(tls=later_tls), acceptor)


async def test_a_peer_dropped_from_the_file_is_disconnected_within_a_second(
    allowlist_nodes: NodeFactory,
    allowlist_env: pytest.MonkeyPatch,
    qrpc_pki: TestPKI,
    tmp_path: Path,
) -> None:
    staying, leaving = qrpc_pki.node_tls(), qrpc_pki.node_tls()
    path = tmp_path / "allowlist.txt"
    path.write_text(f"{staying.node_id}\n{leaving.node_id}\n")
    allowlist_env.setenv("QRPC_ALLOWLIST_FILE", str(path))
    acceptor = await allowlist_nodes(autoload_plugins=True)
    await assert_admitted(await allowlist_nodes(tls=staying), acceptor)
    await assert_admitted(await allowlist_nodes(tls=leaving), acceptor)
    events = acceptor.events()
    path.write_text(f"{staying.node_id}\n")
    loop = asyncio.get_running_loop()
    changed = loop.time()
    gone = await next_event(events, qrpc.Disconnected)
    assert loop.time() - changed < 1.0
    assert (gone.peer_id, gone.code) == (leaving.node_id, qrpc.ErrorCode.AUTH_REVOKED)
    assert acceptor.peers() == [staying.node_id]


async def test_unusable_env_config_refuses_everyone(
    allowlist_nodes: NodeFactory,
    allowlist_env: pytest.MonkeyPatch,
    qrpc_pki: TestPKI,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    dialer_tls = qrpc_pki.node_tls()
    missing = tmp_path / "missing.txt"
    allowlist_env.setenv("QRPC_ALLOWLIST", dialer_tls.node_id)  # listed, but the file is bad
    allowlist_env.setenv("QRPC_ALLOWLIST_FILE", str(missing))
    acceptor = await allowlist_nodes(autoload_plugins=True)
    with caplog.at_level(logging.ERROR, logger="qrpc_allowlist"):
        await assert_refused(await allowlist_nodes(tls=dialer_tls), acceptor)
    [record] = [r for r in caplog.records if r.name == "qrpc_allowlist"]
    assert record.levelno == logging.ERROR
    assert record.getMessage().startswith(
        f"refusing peer {dialer_tls.node_id}: the allowlist is unusable: {missing}: "
        "cannot read the allowlist: "
    )


async def test_without_env_the_installed_plugin_admits_everyone(
    allowlist_nodes: NodeFactory, allowlist_env: pytest.MonkeyPatch
) -> None:
    acceptor = await allowlist_nodes(autoload_plugins=True)
    await assert_admitted(await allowlist_nodes(), acceptor)


# -- parsing ------------------------------------------------------------------------


def test_entries_are_normalised() -> None:
    node_id = qrpc.new_node_id()
    fingerprint = "AB" * 32
    allowlist = Allowlist([f" {node_id.upper()} ", f"sha256:{fingerprint}"])
    assert allowlist.node_ids == {node_id}
    assert allowlist.fingerprints == {"ab" * 32}
    assert len(allowlist) == 2
    assert allowlist.allows(node_id)
    assert allowlist.allows(qrpc.new_node_id(), "ab" * 32)
    assert not allowlist.allows(qrpc.new_node_id(), "cd" * 32)


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        pytest.param(["no_underscores"], "'no_underscores' is neither", id="bad-node-id"),
        pytest.param(["sha256:abcd"], "'sha256:abcd' is neither", id="short-fingerprint"),
        pytest.param(["-x-"], "'-x-' is neither", id="leading-dash"),
        pytest.param("01jd", "pass a collection of entries, not one string", id="one-string"),
    ],
)
def test_bad_entries_are_config_errors(entries: Any, message: str) -> None:
    with pytest.raises(qrpc.ConfigError, match=f"^Allowlist: {message}"):
        Allowlist(entries)


def test_from_env() -> None:
    a, b = qrpc.new_node_id(), qrpc.new_node_id()
    assert Allowlist.from_env({}) is None
    allowlist = Allowlist.from_env({"QRPC_ALLOWLIST": f"{a},,{b} "})
    assert allowlist is not None
    assert allowlist.node_ids == {a, b}
    with pytest.raises(qrpc.ConfigError, match=r"^QRPC_ALLOWLIST: is set but lists nobody"):
        Allowlist.from_env({"QRPC_ALLOWLIST": " , "})
    with pytest.raises(qrpc.ConfigError, match=r"^QRPC_ALLOWLIST_FILE: is set but names no file"):
        Allowlist.from_env({"QRPC_ALLOWLIST_FILE": ""})


def test_from_file_names_the_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "list"
    path.write_text(f"{qrpc.new_node_id()}\n# fine\nnot/an/id\n")
    with pytest.raises(qrpc.ConfigError, match=rf"^{path}:3: 'not/an/id' is neither"):
        Allowlist.from_file(path)


def test_both_env_variables_are_merged(tmp_path: Path) -> None:
    a, b = qrpc.new_node_id(), qrpc.new_node_id()
    path = tmp_path / "list"
    path.write_text(b)
    allowlist = Allowlist.from_env({"QRPC_ALLOWLIST": a, "QRPC_ALLOWLIST_FILE": str(path)})
    assert allowlist is not None
    assert allowlist.node_ids == {a, b}
