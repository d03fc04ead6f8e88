"""Graceful shutdown: GOODBYE, queued messages flushed, requests failed, nothing left behind."""

from __future__ import annotations

import asyncio
import os
import signal
import socket

import pytest

import qrpc
from tests.conftest import Count, NodeFactory, Ping, Pong, connect, eventually


def _qrpc_tasks() -> list[asyncio.Task[object]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("qrpc-") and not t.done()]


async def test_close_leaves_no_task_and_frees_the_port(make_node: NodeFactory) -> None:
    a = await make_node()
    b = await make_node(peers=[qrpc.Peer(*a.address)])

    @a.handler(3, concurrency=4)
    async def busy(ctx: qrpc.Context, msg: Count) -> None:
        await asyncio.Event().wait()  # never finishes on its own

    await a.wait_for_peer(b.id, timeout=5)
    await b.wait_for_peer(a.id, timeout=5)
    for seq in range(10):
        await b.send(a.id, Count(seq))
    await eventually(lambda: any(t.get_name().startswith("qrpc-handler") for t in _qrpc_tasks()))
    port_a, port_b = a.address[1], b.address[1]
    await b.close()
    await a.close()
    assert _qrpc_tasks() == []
    for port in (port_a, port_b):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", port))  # raises if the node still held it


async def test_close_flushes_messages_queued_for_credit(make_node: NodeFactory) -> None:
    limits = qrpc.Limits(
        max_message_size=4096, inbound_window=16 * 1024, outbound_high_water=1024 * 1024
    )
    receiver = await make_node(limits=limits)
    sender = await make_node(limits=limits)
    got: list[int] = []

    @receiver.handler(3)
    async def slow(ctx: qrpc.Context, msg: Count) -> None:
        await asyncio.sleep(0.0005)
        got.append(msg.seq)

    await connect(sender, receiver)
    for seq in range(300):  # ~300 KiB: far beyond the 16 KiB credit window
        await sender.send(receiver.id, Count(seq, b"z" * 1000))
    assert sender.link_stats(receiver.id).queued_bytes > 0
    await sender.close()
    await eventually(lambda: len(got) == 300)
    assert got == list(range(300))


async def test_close_fails_pending_requests_with_node_closed(make_node: NodeFactory) -> None:
    server = await make_node()
    client = await make_node()

    started = asyncio.Event()

    @server.handler(1)
    async def never(ctx: qrpc.Context, msg: Ping) -> Pong:
        started.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    await connect(client, server)
    request = asyncio.create_task(client.request(server.id, Ping("?"), timeout=30))
    await asyncio.wait_for(started.wait(), 5)
    await client.close()
    with pytest.raises(qrpc.NodeClosed):
        await request
    with pytest.raises(qrpc.NodeClosed):
        await client.send(server.id, Ping("after close"))


async def test_peer_sees_graceful_goodbye(make_node: NodeFactory) -> None:
    a = await make_node()
    b = await make_node()
    await connect(b, a)
    events = a.events()
    await b.close()
    async with asyncio.timeout(5):
        async for event in events:
            if isinstance(event, qrpc.Disconnected):
                break
    assert event == qrpc.Disconnected(b.id, 0, "shutdown")


async def test_serve_runs_until_sigterm(make_node: NodeFactory) -> None:
    node = await make_node(start=False)
    serving = asyncio.create_task(node.serve())
    await eventually(lambda: node.running)
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(serving, 5)
    assert node.closed


async def test_serve_returns_when_closed(make_node: NodeFactory) -> None:
    node = await make_node(start=False)
    serving = asyncio.create_task(node.serve())
    await eventually(lambda: node.running)
    await node.close()
    await asyncio.wait_for(serving, 5)


async def test_closed_node_cannot_restart(make_node: NodeFactory) -> None:
    node = await make_node()
    await node.close()
    await node.close()  # idempotent
    with pytest.raises(qrpc.NodeClosed):
        await node.start()


async def test_a_handler_can_close_its_own_node(make_node: NodeFactory) -> None:
    server = await make_node()
    client = await make_node()
    closed = asyncio.Event()

    @server.handler(1)
    async def shutdown(ctx: qrpc.Context, msg: Ping) -> None:
        await ctx.node.close()
        closed.set()

    await connect(client, server)
    await client.send(server.id, Ping("please stop"))
    await asyncio.wait_for(closed.wait(), 10)
    assert server.closed
    assert _qrpc_tasks() == [] or all(t is not asyncio.current_task() for t in _qrpc_tasks())


async def test_close_while_starting_leaks_nothing(make_node: NodeFactory) -> None:
    node = await make_node(start=False)
    starting = asyncio.create_task(node.start())
    await asyncio.sleep(0)  # start() is now resolving the listen address
    await node.close()
    with pytest.raises(qrpc.NodeClosed):
        await starting
    assert not node.running


async def test_send_request_and_broadcast_raise_node_closed_once_close_began(
    make_node: NodeFactory,
) -> None:
    a = await make_node()
    b = await make_node()
    await connect(a, b)
    closing = asyncio.create_task(a.close())
    for _ in range(100):  # bounded: a few loop turns, not wall-clock time
        if a.closed:
            break
        await asyncio.sleep(0)
    assert not closing.done()  # close() is waiting for b's GOODBYE
    with pytest.raises(qrpc.NodeClosed):
        await a.send(b.id, Ping("during close"))
    with pytest.raises(qrpc.NodeClosed):
        await a.broadcast(Ping("during close"))
    with pytest.raises(qrpc.NodeClosed):
        await a.request(b.id, Ping("during close"), timeout=1)
    await closing


async def test_close_is_bounded_even_if_a_handler_swallows_cancellation(
    make_node: NodeFactory,
) -> None:
    server = await make_node(limits=qrpc.Limits(shutdown_timeout=0.5))
    client = await make_node()
    started = asyncio.Event()
    release = asyncio.Event()
    returned = asyncio.Event()

    @server.handler(1)
    async def stubborn(ctx: qrpc.Context, msg: Ping) -> None:
        started.set()
        for _ in range(10_000):  # bounded: ends once the test releases it
            if release.is_set():
                returned.set()
                return
            try:
                await asyncio.sleep(0.05)
            except asyncio.CancelledError:
                continue  # refuses to stop

    await connect(client, server)
    await client.send(server.id, Ping("hold on"))
    await asyncio.wait_for(started.wait(), 5)
    start = asyncio.get_running_loop().time()
    try:
        await asyncio.wait_for(server.close(), 5)
    finally:
        release.set()
    assert asyncio.get_running_loop().time() - start < 3.0
    await asyncio.wait_for(returned.wait(), 5)  # the abandoned handler does end, later
    await eventually(lambda: not [t for t in _qrpc_tasks() if "dispatch" in t.get_name()])
