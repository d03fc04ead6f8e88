"""`Node.drain()`: peers are told DRAINING, requests in flight finish, then the node closes."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

import qrpc
from tests.conftest import NodeFactory, Ping, Pong, connect, eventually


async def test_drain_lets_requests_in_flight_finish(make_node: NodeFactory) -> None:
    client, server = await make_node(), await make_node()
    await connect(client, server)
    in_flight = await _request_in_flight(client, server)
    draining = asyncio.create_task(server.drain(timeout=5))
    await eventually(lambda: client.is_connected(server.id) and _draining(client, server))
    with pytest.raises(qrpc.PeerDraining, match="shutting down"):
        await client.request(server.id, Ping("b"), timeout=5)
    assert await in_flight == Pong("done a")
    assert await draining is True
    assert server.closed
    await eventually(lambda: not client.is_connected(server.id))


async def test_messages_still_flow_while_draining(make_node: NodeFactory) -> None:
    client, server = await make_node(), await make_node()
    await connect(client, server)
    got: list[str] = []
    started, release = asyncio.Event(), asyncio.Event()

    @server.handler(1, concurrency=2)  # the message must not wait behind the request
    async def on_ping(ctx: qrpc.Context, msg: Ping) -> Pong | None:
        if ctx.is_request:
            started.set()
            await asyncio.wait_for(release.wait(), 5)
            return Pong("late")
        got.append(msg.text)
        return None

    in_flight = asyncio.create_task(client.request(server.id, Ping("hold"), timeout=5))
    await asyncio.wait_for(started.wait(), 5)
    draining = asyncio.create_task(server.drain(timeout=5))
    await eventually(lambda: _draining(client, server))
    await client.send(server.id, Ping("one-way"))
    await eventually(lambda: got == ["one-way"])
    release.set()
    assert await in_flight == Pong("late")
    assert await draining is True


async def test_drain_gives_up_after_its_timeout(make_node: NodeFactory) -> None:
    client, server = await make_node(), await make_node(limits=qrpc.Limits(shutdown_timeout=1))
    await connect(client, server)

    started = asyncio.Event()

    @server.handler(1)
    async def stuck(ctx: qrpc.Context, msg: Ping) -> None:
        started.set()
        await asyncio.sleep(30)

    call = asyncio.create_task(client.request(server.id, Ping("x"), timeout=10))
    await asyncio.wait_for(started.wait(), 5)
    loop = asyncio.get_running_loop()
    began = loop.time()
    assert await server.drain(timeout=0.3) is False
    assert loop.time() - began < 3
    with pytest.raises(qrpc.PeerDisconnected):
        await call


async def test_a_peer_that_connects_while_draining_is_told(make_node: NodeFactory) -> None:
    server = await make_node()
    started = asyncio.Event()

    @server.handler(1)
    async def stuck(ctx: qrpc.Context, msg: Ping) -> None:
        started.set()
        await asyncio.sleep(1)

    first = await make_node()
    await connect(first, server)
    call = asyncio.create_task(first.request(server.id, Ping("x"), timeout=10))
    await asyncio.wait_for(started.wait(), 5)
    draining = asyncio.create_task(server.drain(timeout=5))
    late = await make_node()
    await connect(late, server)
    await eventually(lambda: _draining(late, server))
    with pytest.raises(qrpc.PeerDraining):
        await late.request(server.id, Ping("y"), timeout=5)
    await call
    assert await draining is True


async def test_drain_on_a_closed_node_raises(make_node: NodeFactory) -> None:
    node = await make_node()
    await node.close()
    with pytest.raises(qrpc.NodeClosed):
        await node.drain()


async def test_serve_drains_on_sigterm(make_node: NodeFactory) -> None:
    client, server = await make_node(), await make_node(start=False)
    serving = asyncio.create_task(server.serve())
    await eventually(lambda: server.running)
    await connect(client, server)
    in_flight = await _request_in_flight(client, server)
    os.kill(os.getpid(), signal.SIGTERM)
    await eventually(lambda: _draining(client, server))
    with pytest.raises(qrpc.PeerDraining):
        await client.request(server.id, Ping("b"), timeout=5)
    assert await in_flight == Pong("done a")  # drained, not cut off by the close
    await asyncio.wait_for(serving, 5)
    assert server.closed


async def _request_in_flight(client: qrpc.Node, server: qrpc.Node) -> asyncio.Task[Pong]:
    """A request from `client` whose handler on `server` has started and takes 0.3 s."""
    started = asyncio.Event()

    @server.handler(1)
    async def slow(ctx: qrpc.Context, msg: Ping) -> Pong:
        started.set()
        await asyncio.sleep(0.3)
        return Pong(f"done {msg.text}")

    in_flight = asyncio.create_task(client.request(server.id, Ping("a"), reply=Pong, timeout=5))
    await asyncio.wait_for(started.wait(), 5)
    return in_flight


def _draining(client: qrpc.Node, server: qrpc.Node) -> bool:
    """Whether `client` has learnt that `server` is draining (probed without sending)."""
    return client.link_stats(server.id).draining
