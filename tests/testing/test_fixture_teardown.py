"""The ``qrpc_network`` fixture as a user's pytest run sees it (a pytest run inside
the test, through pytester): strict mode with the marker, and teardown failing a
test that leaves something running."""

from __future__ import annotations

import pytest

import qrpc
from qrpc.testing import Network, TestPKI

APP = """
import asyncio

import msgspec
import pytest

import qrpc


class Ping(msgspec.Struct):
    text: str


class Pong(msgspec.Struct):
    text: str


registry = qrpc.Registry()
registry.register(1, Ping)
registry.register(2, Pong)
"""


def _run(pytester: pytest.Pytester, test: str, *, mode: str) -> pytest.RunResult:
    pytester.makeini(
        f"[pytest]\nasyncio_mode = {mode}\nasyncio_default_fixture_loop_scope = function\n"
    )
    pytester.makepyfile(test_app=APP + test)
    return pytester.runpytest_inprocess("-q")


def test_strict_mode_with_the_marker(pytester: pytest.Pytester) -> None:
    result = _run(
        pytester,
        """
@pytest.mark.asyncio
async def test_pair_answers(qrpc_network):
    net = qrpc_network(registry)
    a, b = await net.nodes(2)

    @b.handler(1)
    async def on_ping(ctx: qrpc.Context, msg: Ping) -> Pong:
        return Pong(msg.text.upper())

    assert (await a.request(b.id, Ping("hi"), reply=Pong, timeout=5)).text == "HI"
""",
        mode="strict",
    )
    result.assert_outcomes(passed=1)


def test_a_handler_left_running_fails_the_test_at_teardown(pytester: pytest.Pytester) -> None:
    result = _run(
        pytester,
        """
async def test_leaks(qrpc_network):
    net = qrpc_network(registry)
    a, b = await net.nodes(2)
    started = asyncio.Event()

    @b.handler(1)
    async def stubborn(ctx: qrpc.Context, msg: Ping) -> None:
        started.set()
        for _ in range(3):  # ignores the node's cancellation (bounded: 3 x 2 s)
            try:
                await asyncio.sleep(2)
            except asyncio.CancelledError:
                pass

    await a.send(b.id, Ping("hold on"))
    await asyncio.wait_for(started.wait(), 5)
""",
        mode="auto",
    )
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*qrpc_network left behind:*", "*task qrpc-* is still running*"])


async def test_leftovers_name_what_is_still_open(
    qrpc_pki: TestPKI, registry: qrpc.Registry
) -> None:
    net = Network(registry, pki=qrpc_pki)
    a, b = await net.nodes(2)
    try:
        left = net.leftovers()
        assert f"node {a.id} is not closed" in left
        assert f"node {b.id} is not closed" in left
        assert any(line.startswith("proxy ") for line in left)
    finally:
        await net.close()
    assert net.leftovers() == []
    with pytest.raises(RuntimeError, match="closed"):
        await net.node()


def test_without_pytest_asyncio_the_fixture_says_what_is_missing(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini("[pytest]\n")
    # Loaded before the entry-point plugins: makes `import pytest_asyncio` fail.
    pytester.makepyfile(
        block_asyncio="import sys\nsys.modules['pytest_asyncio'] = None\n",
        test_app="def test_uses(qrpc_network):\n    pass\n",
    )
    pytester.syspathinsert()
    result = pytester.runpytest_subprocess("-p", "block_asyncio", "-p", "no:asyncio", "-q")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*qrpc_network fixture needs pytest-asyncio*"])
