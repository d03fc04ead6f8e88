"""Shared fixtures: message types, a registry, node factories on 127.0.0.1.

Certificates come from the `qrpc_pki` fixture (qrpc's own pytest plugin),
generated once per test session.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any, TypeVar

import msgspec
import pytest
from hypothesis import settings

import qrpc
from qrpc.testing import TestPKI

settings.register_profile("ci", max_examples=2000, derandomize=True, deadline=None)
settings.register_profile("dev", max_examples=200, deadline=None)
settings.register_profile("nightly", max_examples=100_000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


class Ping(msgspec.Struct):
    text: str


class Pong(msgspec.Struct):
    text: str


class Count(msgspec.Struct):
    seq: int
    payload: bytes = b""


@pytest.fixture
def registry() -> qrpc.Registry:
    reg = qrpc.Registry()
    reg.register(1, Ping)
    reg.register(2, Pong)
    reg.register(3, Count)
    return reg


NodeFactory = Callable[..., Awaitable[qrpc.Node]]


@pytest.fixture
async def make_node(qrpc_pki: TestPKI, registry: qrpc.Registry) -> AsyncIterator[NodeFactory]:
    """Start nodes on 127.0.0.1:0; all are closed at teardown, leaving no qrpc task."""
    async with AsyncExitStack() as stack:

        async def make(
            *,
            tls: qrpc.TLS | None = None,
            start: bool = True,
            reg: qrpc.Registry | None = None,
            **kwargs: Any,
        ) -> qrpc.Node:
            kwargs.setdefault("autoload_plugins", False)
            node = qrpc.Node(reg or registry, tls=tls or qrpc_pki.node_tls(), **kwargs)
            stack.push_async_callback(node.close)
            if start:
                await node.start()
            return node

        yield make
    await asyncio.sleep(0)
    leftover = [t for t in asyncio.all_tasks() if t.get_name().startswith("qrpc-") and not t.done()]
    assert not leftover, f"qrpc tasks still running after close: {leftover}"


async def connect(dialer: qrpc.Node, target: qrpc.Node, timeout: float = 5.0) -> None:
    """Make `dialer` dial `target` and wait until both see the link."""
    dialer.add_peer(qrpc.Peer(*target.address, expected_id=target.id))
    await dialer.wait_for_peer(target.id, timeout=timeout)
    await target.wait_for_peer(dialer.id, timeout=timeout)


E = TypeVar("E")


async def next_event(events: qrpc.EventStream, type_: type[E], timeout: float = 5.0) -> E:
    """Return the next event of `type_` from `events` (others are skipped)."""
    async with asyncio.timeout(timeout):
        async for event in events:
            if isinstance(event, type_):
                return event
    raise AssertionError(f"event stream ended before a {type_.__name__}")


async def eventually(
    check: Callable[[], bool], timeout: float = 5.0, interval: float = 0.01
) -> None:
    """Wait until `check()` is true; fail after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)
