"""Plain ``def`` handlers: run inline by the peer's inbox, same ordering, replies and errors
as ``async def`` handlers."""

from __future__ import annotations

import asyncio
import logging

import pytest

import qrpc
from qrpc.testing import RecordingTracer
from tests.conftest import NodeFactory, Ping, Pong, connect, eventually


async def test_a_plain_def_handler_sees_every_message_in_order(make_node: NodeFactory) -> None:
    client, server = await make_node(), await make_node()
    await connect(client, server)
    seen: list[str] = []

    @server.handler(1)
    def on_ping(ctx: qrpc.Context, msg: Ping) -> None:
        seen.append(msg.text)

    for index in range(300):
        await client.send(server.id, Ping(str(index)))
    await eventually(lambda: len(seen) == 300)
    assert seen == [str(index) for index in range(300)]


async def test_a_plain_def_handler_answers_and_fails_requests(make_node: NodeFactory) -> None:
    client, server = await make_node(), await make_node()
    await connect(client, server)

    @server.handler(1)
    def on_ping(ctx: qrpc.Context, msg: Ping) -> Pong:
        if msg.text == "boom":
            raise ValueError("no")
        assert ctx.time_remaining() is not None
        return Pong(f"pong {msg.text} from {ctx.peer_id}")

    reply = await client.request(server.id, Ping("a"), reply=Pong, timeout=5)
    assert reply == Pong(f"pong a from {client.id}")
    with pytest.raises(qrpc.RemoteError) as caught:
        await client.request(server.id, Ping("boom"), reply=Pong, timeout=5)
    assert caught.value.code == qrpc.RemoteErrorCode.HANDLER_ERROR


async def test_a_raising_plain_def_handler_does_not_stop_the_inbox(
    make_node: NodeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    client, server = await make_node(), await make_node()
    await connect(client, server)
    seen: list[str] = []

    @server.handler(1)
    def on_ping(ctx: qrpc.Context, msg: Ping) -> None:
        if msg.text == "boom":
            raise ValueError("bad message")
        seen.append(msg.text)

    with caplog.at_level(logging.ERROR):
        for text in ("a", "boom", "b"):
            await client.send(server.id, Ping(text))
        await eventually(lambda: seen == ["a", "b"])
    assert "bad message" in caplog.text
    assert client.is_connected(server.id)


async def test_tracers_see_plain_def_handlers(make_node: NodeFactory) -> None:
    tracer = RecordingTracer()
    client = await make_node()
    server = await make_node(plugins=[tracer])
    await connect(client, server)
    handled: list[str] = []

    @server.handler(1)
    def on_ping(ctx: qrpc.Context, msg: Ping) -> None:
        handled.append(msg.text)

    await client.send(server.id, Ping("traced"))
    await eventually(lambda: handled == ["traced"])
    kinds = [r.kind for r in tracer.records if r.cmd_id == 1]
    assert kinds == ["receive", "handler-enter", "handler-exit"]


async def test_a_callable_whose_call_is_async_is_awaited(make_node: NodeFactory) -> None:
    client, server = await make_node(), await make_node()
    await connect(client, server)

    class Handler:
        async def __call__(self, ctx: qrpc.Context, msg: Ping) -> Pong:
            await asyncio.sleep(0)
            return Pong(msg.text.upper())

    server.handler(1)(Handler())
    assert await client.request(server.id, Ping("x"), reply=Pong, timeout=5) == Pong("X")


def test_a_non_callable_handler_is_refused() -> None:
    registry = qrpc.Registry()
    registry.register(1, Ping)
    app = qrpc.App(registry)
    with pytest.raises(qrpc.RegistryError, match="callable"):
        app.handler(1)("not a function")  # type: ignore[type-var]
