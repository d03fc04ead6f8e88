"""qrpc-reconnect-fixed on real nodes over 127.0.0.1.

A silent address (127.0.0.1 port 9, the discard port: nothing answers QUIC
there) fails each attempt after ``Limits.connect_timeout``; the tests read
the exact ``retry_in`` of every ``ConnectFailed`` event.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import msgspec
import pytest
import qrpc_reconnect_fixed
from qrpc_reconnect_fixed import FixedDelay

import qrpc
from qrpc.testing import TestPKI

NodeFactory = Callable[..., Awaitable[tuple[qrpc.Node, qrpc.EventStream]]]
TIMEOUT = 5.0  # seconds any single wait may take
SILENT = qrpc.Peer("127.0.0.1", 9)
FAST = qrpc.Limits(connect_timeout=0.2)
NO_JITTER = qrpc.Backoff(base=0.05, factor=2.0, cap=1.0, jitter=0.0)


class Note(msgspec.Struct):
    text: str


@pytest.fixture
def reconnect_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """A clean environment: no reconnect variables, plugin autoloading on."""
    for name in (
        qrpc_reconnect_fixed.ENV_DELAY,
        qrpc_reconnect_fixed.ENV_MAX_ATTEMPTS,
        "QRPC_DISABLE_PLUGIN_AUTOLOAD",
    ):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
async def reconnect_nodes(qrpc_pki: TestPKI) -> AsyncIterator[NodeFactory]:
    """Make nodes on 127.0.0.1:0 with a 0.2 s connect timeout; closed at teardown.

    The factory subscribes to the node's events *before* starting it, so no
    dial event can be missed, and returns both.
    """
    registry = qrpc.Registry()
    registry.register(1, Note)
    async with AsyncExitStack() as stack:

        async def make(
            *, tls: qrpc.TLS | None = None, **kwargs: Any
        ) -> tuple[qrpc.Node, qrpc.EventStream]:
            kwargs.setdefault("autoload_plugins", False)
            kwargs.setdefault("limits", FAST)
            node = qrpc.Node(registry, tls=tls or qrpc_pki.node_tls(), **kwargs)
            events = node.events()
            return await stack.enter_async_context(node), events

        yield make


@dataclass
class Dialing:
    """What one dial loop reported, in order."""

    attempts: list[int]
    retry_in: list[float | None]
    kinds: list[qrpc.FailureKind]
    errors: list[type[BaseException]]


async def watch(events: qrpc.EventStream, failures: int | None = None) -> Dialing:
    """Collect dial events until the loop stops (retry_in None) or `failures` failed."""
    seen = Dialing([], [], [], [])
    async with asyncio.timeout(TIMEOUT):
        async for event in events:
            if isinstance(event, qrpc.Connecting):
                seen.attempts.append(event.attempt)
            elif isinstance(event, qrpc.ConnectFailed):
                seen.retry_in.append(event.retry_in)
                seen.kinds.append(event.kind)
                seen.errors.append(type(event.error))
                if event.retry_in is None or len(seen.retry_in) == failures:
                    return seen
    raise AssertionError("event stream ended")


async def assert_stopped(node: qrpc.Node) -> None:
    """The node's only dial loop has given up (it says so before its last ConnectFailed)."""
    [state] = node.dial_states()
    assert state.stopped


# -- in code ------------------------------------------------------------------------


async def test_fixed_delay_then_stop_after_max_attempts(reconnect_nodes: NodeFactory) -> None:
    node, events = await reconnect_nodes(peers=[SILENT], plugins=[FixedDelay(0.05, max_attempts=3)])
    seen = await watch(events)
    assert seen == Dialing(
        attempts=[1, 2, 3],
        retry_in=[0.05, 0.05, None],
        kinds=[qrpc.FailureKind.TRANSIENT] * 3,
        errors=[qrpc.ConnectTimeout] * 3,
    )
    await assert_stopped(node)


async def test_without_a_limit_it_keeps_dialing(reconnect_nodes: NodeFactory) -> None:
    node, events = await reconnect_nodes(peers=[SILENT], plugins=[FixedDelay(0.02)])
    seen = await watch(events, failures=4)
    assert seen.attempts == [1, 2, 3, 4]
    assert seen.retry_in == [0.02] * 4
    assert not node.dial_states()[0].stopped


async def test_permanent_failure_stops_at_once(reconnect_nodes: NodeFactory) -> None:
    target, _ = await reconnect_nodes()
    wrong_id = qrpc.Peer(*target.address, expected_id=qrpc.new_node_id())
    node, events = await reconnect_nodes(
        peers=[wrong_id], plugins=[FixedDelay(0.05, max_attempts=10)]
    )
    seen = await watch(events)
    assert seen == Dialing(
        attempts=[1],
        retry_in=[None],
        kinds=[qrpc.FailureKind.PERMANENT],
        errors=[qrpc.PeerIdMismatch],
    )
    await assert_stopped(node)


async def test_a_successful_link_resets_the_count(
    reconnect_nodes: NodeFactory, qrpc_pki: TestPKI
) -> None:
    target, _ = await reconnect_nodes()
    peer = qrpc.Peer(*target.address, expected_id=target.id)
    node, events = await reconnect_nodes(
        peers=[peer],
        plugins=[FixedDelay(0.05, max_attempts=2)],
        backoff=qrpc.Backoff(stable_after=0.0),  # every link that came up counts as a success
    )
    assert await node.wait_for_peer(target.id, timeout=TIMEOUT) == target.id
    await target.close()  # now the address is silent
    seen = await watch(events)
    # The first attempt succeeded; counting starts again when the link is lost.
    assert seen.attempts == [1, 1, 2]
    assert seen.retry_in == [0.05, None]
    await assert_stopped(node)


# -- configured through the environment (the installed entry point) -----------------


async def test_installed_plugin_is_loaded_from_its_entry_point(
    reconnect_nodes: NodeFactory, reconnect_env: pytest.MonkeyPatch
) -> None:
    node, _ = await reconnect_nodes(autoload_plugins=True)
    plugin = node.plugin_manager.get_plugin("qrpc-reconnect-fixed:reconnect-fixed")
    assert plugin is qrpc_reconnect_fixed


async def test_env_delay_and_limit(
    reconnect_nodes: NodeFactory, reconnect_env: pytest.MonkeyPatch
) -> None:
    reconnect_env.setenv("QRPC_RECONNECT_DELAY", "0.05")
    reconnect_env.setenv("QRPC_RECONNECT_MAX_ATTEMPTS", "2")
    node, events = await reconnect_nodes(peers=[SILENT], autoload_plugins=True)
    seen = await watch(events)
    assert seen.attempts == [1, 2]
    assert seen.retry_in == [0.05, None]
    await assert_stopped(node)


async def test_a_policy_in_code_takes_precedence_over_env(
    reconnect_nodes: NodeFactory, reconnect_env: pytest.MonkeyPatch
) -> None:
    reconnect_env.setenv("QRPC_RECONNECT_DELAY", "0.05")
    reconnect_env.setenv("QRPC_RECONNECT_MAX_ATTEMPTS", "2")
    node, events = await reconnect_nodes(
        peers=[SILENT], plugins=[FixedDelay(0.03, max_attempts=3)], autoload_plugins=True
    )
    seen = await watch(events)
    assert seen.retry_in == [0.03, 0.03, None]
    await assert_stopped(node)


async def test_env_limit_alone_keeps_the_nodes_backoff(
    reconnect_nodes: NodeFactory, reconnect_env: pytest.MonkeyPatch
) -> None:
    reconnect_env.setenv("QRPC_RECONNECT_MAX_ATTEMPTS", "3")
    node, events = await reconnect_nodes(peers=[SILENT], backoff=NO_JITTER, autoload_plugins=True)
    seen = await watch(events)
    assert seen.attempts == [1, 2, 3]
    assert seen.retry_in == [0.05, 0.1, None]
    await assert_stopped(node)


async def test_without_env_qrpcs_backoff_applies(
    reconnect_nodes: NodeFactory, reconnect_env: pytest.MonkeyPatch
) -> None:
    _, events = await reconnect_nodes(peers=[SILENT], backoff=NO_JITTER, autoload_plugins=True)
    seen = await watch(events, failures=3)
    assert seen.retry_in == [0.05, 0.1, 0.2]


async def test_unusable_env_is_logged_and_ignored(
    reconnect_nodes: NodeFactory,
    reconnect_env: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    reconnect_env.setenv("QRPC_RECONNECT_DELAY", "soon")
    node, events = await reconnect_nodes(peers=[SILENT], backoff=NO_JITTER, autoload_plugins=True)
    with caplog.at_level(logging.ERROR, logger="qrpc_reconnect_fixed"):
        seen = await watch(events, failures=2)
    assert seen.retry_in == [0.05, 0.1]
    messages = [r.getMessage() for r in caplog.records if r.name == "qrpc_reconnect_fixed"]
    expected = (
        f"node {node.id}: ignoring the reconnect settings: "
        "QRPC_RECONNECT_DELAY: must be a number of seconds > 0, got 'soon'"
    )
    assert messages == [expected, expected]


# -- the policy alone ---------------------------------------------------------------


def test_next_delay_table() -> None:
    transient, permanent = qrpc.FailureKind.TRANSIENT, qrpc.FailureKind.PERMANENT
    limited = FixedDelay(1.5, max_attempts=3)
    assert [limited.next_delay(n, transient) for n in (1, 2, 3, 4)] == [1.5, 1.5, False, False]
    assert limited.next_delay(1, permanent) is False
    assert FixedDelay(2).next_delay(1000, transient) == 2
    assert FixedDelay(None, max_attempts=2).next_delay(1, transient) is None
    assert FixedDelay(None, max_attempts=2).next_delay(2, transient) is False


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param((0,), "FixedDelay.delay: must be a number of seconds > 0, got 0", id="zero"),
        pytest.param((-1.0,), "FixedDelay.delay: must be a number of seconds > 0", id="negative"),
        pytest.param((float("inf"),), "FixedDelay.delay: must be a number", id="infinite"),
        pytest.param((True,), "FixedDelay.delay: must be a number", id="bool"),
        pytest.param(("1",), "FixedDelay.delay: must be a number", id="str"),
        pytest.param((1, 0), "FixedDelay.max_attempts: must be an int >= 1, got 0", id="no-tries"),
        pytest.param((1, 2.0), "FixedDelay.max_attempts: must be an int >= 1", id="float-limit"),
    ],
)
def test_bad_arguments_are_config_errors(args: tuple[Any, ...], message: str) -> None:
    with pytest.raises(qrpc.ConfigError, match=f"^{message}"):
        FixedDelay(*args)


def test_from_env() -> None:
    assert FixedDelay.from_env({}) is None
    assert FixedDelay.from_env({"QRPC_RECONNECT_DELAY": "2.5"}) == FixedDelay(2.5)
    assert FixedDelay.from_env({"QRPC_RECONNECT_MAX_ATTEMPTS": "4"}) == FixedDelay(None, 4)
    both = {"QRPC_RECONNECT_DELAY": "1", "QRPC_RECONNECT_MAX_ATTEMPTS": "7"}
    assert FixedDelay.from_env(both) == FixedDelay(1.0, 7)
    with pytest.raises(qrpc.ConfigError, match=r"^QRPC_RECONNECT_DELAY: .* got 'nan'"):
        FixedDelay.from_env({"QRPC_RECONNECT_DELAY": "nan"})
    with pytest.raises(qrpc.ConfigError, match=r"^QRPC_RECONNECT_MAX_ATTEMPTS: .* got '1\.5'"):
        FixedDelay.from_env({"QRPC_RECONNECT_MAX_ATTEMPTS": "1.5"})
