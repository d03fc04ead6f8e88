"""Nothing user code raises breaks the node: supervised dispatch, guarded hooks,
one handler loop per peer across reconnects, one answer per request."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

import qrpc
import qrpc_codecs
from qrpc.testing import RecordingTracer, TestPKI
from qrpc_codecs.msgpack import codec as msgpack_codec
from tests.conftest import Count, NodeFactory, Ping, Pong, connect, eventually

T = TypeVar("T")


# -- the dispatcher survives whatever a handler, tracer or codec raises ----------------


async def test_a_handler_that_lets_cancelled_error_escape_does_not_stop_dispatch(
    make_node: NodeFactory,
) -> None:
    server = await make_node()
    client = await make_node()
    seen: list[int] = []

    @server.handler(3)
    async def on_count(ctx: qrpc.Context, msg: Count) -> None:
        seen.append(msg.seq)
        if msg.seq == 0:
            raise asyncio.CancelledError  # the handler's own doing: the node is not cancelling it

    @server.handler(1)
    async def on_ping(ctx: qrpc.Context, msg: Ping) -> Pong:
        return Pong(msg.text)

    await connect(client, server)
    for seq in range(3):
        await client.send(server.id, Count(seq))
    assert (await client.request(server.id, Ping("still there"), reply=Pong, timeout=5)).text == (
        "still there"
    )
    assert seen == [0, 1, 2]


async def test_a_request_handler_that_raises_cancelled_error_gets_an_error_reply(
    make_node: NodeFactory,
) -> None:
    server = await make_node()
    client = await make_node()

    @server.handler(1)
    async def on_ping(ctx: qrpc.Context, msg: Ping) -> Pong:
        raise asyncio.CancelledError

    await connect(client, server)
    with pytest.raises(qrpc.RemoteError) as caught:
        await client.request(server.id, Ping("x"), timeout=5)
    assert caught.value.code == qrpc.RemoteErrorCode.HANDLER_ERROR
    with pytest.raises(qrpc.RemoteError):  # and the next request is handled too
        await client.request(server.id, Ping("y"), timeout=5)


class _RaisingTracer(qrpc.BaseTracer):
    def on_received(self, event: qrpc.TraceEvent) -> None:
        raise RuntimeError("tracer bug")


class _RaisingTracerPlugin:
    @qrpc.hookimpl
    def qrpc_link_tracer(self) -> qrpc.Tracer:
        return _RaisingTracer()


async def test_a_raising_tracer_does_not_stop_dispatch(
    make_node: NodeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    server = await make_node(plugins=[_RaisingTracerPlugin()])
    client = await make_node()
    seen: list[int] = []

    @server.handler(3)
    async def on_count(ctx: qrpc.Context, msg: Count) -> None:
        seen.append(msg.seq)

    await connect(client, server)
    with caplog.at_level(logging.ERROR, logger="qrpc"):
        for seq in range(3):
            await client.send(server.id, Count(seq))
        await eventually(lambda: seen == [0, 1, 2])
    assert "tracer bug" in caplog.text


class _BuggyCodec:
    """A third-party codec whose decoder raises something other than CodecError."""

    name = "buggy"

    def encode(self, value: Any) -> bytes:
        return msgpack_codec.encode(value)

    def decoder(self, type_: type[T]) -> Callable[[bytes], T]:
        good = msgpack_codec.decoder(type_)

        def decode(data: bytes) -> T:
            value = good(data)
            if isinstance(value, Ping) and value.text == "boom":
                raise ZeroDivisionError("codec bug")
            return value

        return decode


async def test_a_codec_raising_a_foreign_error_does_not_stop_dispatch(
    make_node: NodeFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(qrpc_codecs, "_registry", dict(qrpc_codecs._registry))
    qrpc_codecs.register_codec(_BuggyCodec())
    server = await make_node(codecs=["buggy"])
    client = await make_node(codecs=["buggy"])

    @server.handler(1)
    async def on_ping(ctx: qrpc.Context, msg: Ping) -> Pong:
        return Pong(msg.text.upper())

    await connect(client, server)
    with pytest.raises(qrpc.RemoteError) as caught:
        await client.request(server.id, Ping("boom"), timeout=5)
    assert caught.value.code == qrpc.RemoteErrorCode.DECODE_ERROR
    assert (await client.request(server.id, Ping("ok"), reply=Pong, timeout=5)).text == "OK"


# -- hooks that raise are logged and ignored; state changes are complete first ---------


class _RaisingObserver:
    def __init__(self, hook: str) -> None:
        self.hook = hook

    @qrpc.hookimpl
    def qrpc_peer_connected(self) -> None:
        if self.hook == "connected":
            raise RuntimeError("observer bug (connected)")

    @qrpc.hookimpl
    def qrpc_peer_disconnected(self) -> None:
        if self.hook == "disconnected":
            raise RuntimeError("observer bug (disconnected)")


async def test_a_raising_connected_hook_does_not_stop_wait_for_peer(
    make_node: NodeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    server = await make_node(plugins=[_RaisingObserver("connected")])
    client = await make_node()
    with caplog.at_level(logging.ERROR, logger="qrpc"):
        client.add_peer(qrpc.Peer(*server.address, expected_id=server.id))
        assert await server.wait_for_peer(client.id, timeout=5) == client.id
        await client.wait_for_peer(server.id, timeout=5)
    assert server.peers() == [client.id]
    assert "observer bug (connected)" in caplog.text


async def test_a_raising_disconnected_hook_does_not_stop_redialing(
    make_node: NodeFactory, qrpc_pki: TestPKI
) -> None:
    tls_b = qrpc_pki.node_tls()
    b = await make_node(tls=tls_b)
    port = b.address[1]
    a = await make_node(
        peers=[qrpc.Peer("127.0.0.1", port, expected_id=b.id)],
        plugins=[_RaisingObserver("disconnected")],
        backoff=qrpc.Backoff(base=0.05, cap=0.2),
    )
    await a.wait_for_peer(b.id, timeout=5)
    await b.close()
    await eventually(lambda: not a.is_connected(b.id))
    b_again = await make_node(tls=tls_b, listen=("127.0.0.1", port))
    assert await a.wait_for_peer(b_again.id, timeout=10) == b.id


class _Watcher:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    @qrpc.hookimpl
    def qrpc_peer_connected(self, peer_id: str) -> None:
        self.seen.append(("connected", peer_id))

    @qrpc.hookimpl
    def qrpc_peer_disconnected(self, peer_id: str) -> None:
        self.seen.append(("disconnected", peer_id))


@pytest.mark.parametrize("broken_first", [True, False], ids=["broken-first", "broken-last"])
async def test_a_raising_observer_does_not_silence_other_plugins(
    make_node: NodeFactory, broken_first: bool
) -> None:
    watcher = _Watcher()
    broken = [_RaisingObserver("connected"), _RaisingObserver("disconnected")]
    # pluggy calls the plugin registered last first: try the broken ones on both sides.
    plugins = [watcher, *broken] if broken_first else [*broken, watcher]
    server = await make_node(plugins=plugins)
    client = await make_node()
    await connect(client, server)
    await client.close()
    await eventually(lambda: len(watcher.seen) == 2)
    assert watcher.seen == [("connected", client.id), ("disconnected", client.id)]


@pytest.mark.parametrize("broken_first", [True, False], ids=["broken-first", "broken-last"])
async def test_a_raising_tracer_factory_leaves_other_tracers_on(
    make_node: NodeFactory, broken_first: bool
) -> None:
    class BrokenFactory:
        @qrpc.hookimpl
        def qrpc_link_tracer(self) -> None:
            raise RuntimeError("tracer factory bug")

    tracer = RecordingTracer()
    plugins = [tracer, BrokenFactory()] if broken_first else [BrokenFactory(), tracer]
    server = await make_node(plugins=plugins)
    client = await make_node()
    await connect(client, server)
    await client.send(server.id, Ping("traced"))
    await eventually(lambda: bool(tracer.of("receive")))
    assert [r.message for r in tracer.of("receive")] == [Ping("traced")]


# -- one ordered backlog and one handler loop per peer, across link replacement --------


async def test_one_handler_loop_per_peer_across_reconnect(
    make_node: NodeFactory, qrpc_pki: TestPKI
) -> None:
    server = await make_node()
    tls_client = qrpc_pki.node_tls()
    running = 0
    most = 0
    order: list[tuple[str, int]] = []

    @server.handler(1)
    async def on_ping(ctx: qrpc.Context, msg: Ping) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.02)
        order.append((msg.text.split("-")[0], int(msg.text.split("-")[1])))
        running -= 1

    old = await make_node(tls=tls_client)
    await connect(old, server)
    for seq in range(15):
        await old.send(server.id, Ping(f"old-{seq}"))
    await old.close()  # its messages are in the server's backlog, mostly unhandled
    new = await make_node(tls=tls_client)
    await connect(new, server)
    for seq in range(5):
        await new.send(server.id, Ping(f"new-{seq}"))
    await eventually(lambda: len(order) == 20, timeout=10)
    assert most == 1, "two handler calls for one peer ran at once"
    assert order == [("old", s) for s in range(15)] + [("new", s) for s in range(5)]


# -- a request is answered once --------------------------------------------------------


async def test_reply_after_the_handler_returned_raises(make_node: NodeFactory) -> None:
    server = await make_node()
    client = await make_node()
    late: list[asyncio.Task[None]] = []

    @server.handler(1)
    async def on_ping(ctx: qrpc.Context, msg: Ping) -> Pong:
        async def reply_later() -> None:
            await asyncio.sleep(0.05)
            await ctx.reply(Pong("second"))

        late.append(asyncio.create_task(reply_later()))
        return Pong("first")

    await connect(client, server)
    assert (await client.request(server.id, Ping("x"), reply=Pong, timeout=5)).text == "first"
    with pytest.raises(RuntimeError, match="already"):
        await asyncio.wait_for(late[0], 5)


async def test_reply_then_raise_sends_only_the_reply(
    make_node: NodeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    server = await make_node()
    client = await make_node()

    @server.handler(1)
    async def on_ping(ctx: qrpc.Context, msg: Ping) -> Pong:
        await ctx.reply(Pong("answered"))
        raise ValueError("after the reply")

    await connect(client, server)
    with caplog.at_level(logging.ERROR, logger="qrpc"):
        reply = await client.request(server.id, Ping("x"), reply=Pong, timeout=5)
        assert reply.text == "answered"
        await eventually(lambda: "after the reply" in caplog.text)


class _ScopeRaisingTracer(qrpc.BaseTracer):
    def handling_scope(self, event: qrpc.TraceEvent) -> None:
        raise RuntimeError("tracer scope bug")

    def sending_scope(self, event: qrpc.TraceEvent) -> None:
        raise RuntimeError("tracer scope bug")


class _ScopeRaisingPlugin:
    @qrpc.hookimpl
    def qrpc_link_tracer(self) -> qrpc.Tracer:
        return _ScopeRaisingTracer()


async def test_a_tracer_whose_scopes_raise_does_not_stop_the_call(
    make_node: NodeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    server = await make_node(plugins=[_ScopeRaisingPlugin()])
    client = await make_node(plugins=[_ScopeRaisingPlugin()])
    await connect(client, server)

    @server.handler(1)
    async def echo(ctx: qrpc.Context, msg: Ping) -> Pong:
        return Pong(msg.text)

    with caplog.at_level(logging.ERROR, logger="qrpc"):
        assert await client.request(server.id, Ping("x"), reply=Pong, timeout=5) == Pong("x")
    assert "handling_scope raised" in caplog.text
    assert "sending_scope raised" in caplog.text
