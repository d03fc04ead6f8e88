"""Two and three nodes exchanging typed messages over real mTLS links on 127.0.0.1."""

from __future__ import annotations

import asyncio

import pytest

import qrpc
from tests.conftest import Count, NodeFactory, Ping, Pong, connect, eventually


async def test_two_nodes_exchange_typed_messages_both_ways(make_node: NodeFactory) -> None:
    a = await make_node()
    b = await make_node()
    got_a: list[tuple[str, Ping]] = []
    got_b: list[tuple[str, Ping]] = []

    @a.handler(1)
    async def on_ping_a(ctx: qrpc.Context, msg: Ping) -> None:
        got_a.append((ctx.peer_id, msg))

    @b.handler(1)
    async def on_ping_b(ctx: qrpc.Context, msg: Ping) -> None:
        got_b.append((ctx.peer_id, msg))

    await connect(b, a)
    await b.send(a.id, Ping("from b"))
    await a.send(b.id, Ping("from a"))
    await eventually(lambda: bool(got_a and got_b))
    assert got_a == [(b.id, Ping("from b"))]
    assert got_b == [(a.id, Ping("from a"))]
    assert a.peers() == [b.id]
    assert b.peers() == [a.id]


async def test_handler_answers_through_its_context(make_node: NodeFactory) -> None:
    a = await make_node()
    b = await make_node()
    pongs: asyncio.Queue[tuple[str, Pong]] = asyncio.Queue()

    @a.handler(1)
    async def on_ping(ctx: qrpc.Context, msg: Ping) -> None:
        assert ctx.identity.node_id == ctx.peer_id
        assert ctx.peer is ctx.identity  # the first name stays
        await ctx.reply(Pong(f"hello {msg.text}"))

    @b.handler(2)
    async def on_pong(ctx: qrpc.Context, msg: Pong) -> None:
        await pongs.put((ctx.peer_id, msg))

    await connect(b, a)
    await b.send(a.id, Ping("b"))
    assert await asyncio.wait_for(pongs.get(), 5) == (a.id, Pong("hello b"))


async def test_request_returns_the_handlers_value(make_node: NodeFactory) -> None:
    a = await make_node()
    b = await make_node()

    @a.handler(1)
    async def on_ping(ctx: qrpc.Context, msg: Ping) -> Pong:
        return Pong(msg.text.upper())

    await connect(b, a)
    assert await b.request(a.id, Ping("rpc"), reply=Pong, timeout=5) == Pong("RPC")


async def test_messages_arrive_in_order(make_node: NodeFactory) -> None:
    a = await make_node()
    b = await make_node()
    seen: list[int] = []

    @a.handler(3)
    async def on_count(ctx: qrpc.Context, msg: Count) -> None:
        seen.append(msg.seq)

    await connect(b, a)
    for seq in range(2000):
        await b.send(a.id, Count(seq, b"x" * (seq % 300)))
    await eventually(lambda: len(seen) == 2000, timeout=10)
    assert seen == list(range(2000))


async def test_three_nodes_broadcast_reaches_both_and_send_only_its_target(
    make_node: NodeFactory,
) -> None:
    a, b, c = await make_node(), await make_node(), await make_node()
    received: dict[str, list[tuple[str, str]]] = {a.id: [], b.id: [], c.id: []}
    for node in (a, b, c):

        def install(node: qrpc.Node) -> None:
            @node.handler(1)
            async def on_ping(ctx: qrpc.Context, msg: Ping) -> None:
                received[node.id].append((ctx.peer_id, msg.text))

        install(node)
    await connect(a, b)
    await connect(a, c)
    await connect(b, c)

    assert await a.broadcast(Ping("all")) == 2
    await a.send(c.id, Ping("only c"))
    await eventually(lambda: len(received[b.id]) == 1 and len(received[c.id]) == 2)
    assert received[b.id] == [(a.id, "all")]
    assert received[c.id] == [(a.id, "all"), (a.id, "only c")]
    assert received[a.id] == []


async def test_send_to_unknown_peer_raises_peer_not_found(make_node: NodeFactory) -> None:
    a = await make_node()
    with pytest.raises(qrpc.PeerNotFound):
        await a.send(qrpc.new_node_id(), Ping("nobody"))


async def test_wait_for_peer_times_out(make_node: NodeFactory) -> None:
    a = await make_node()
    with pytest.raises(qrpc.PeerWaitTimeout):
        await a.wait_for_peer(qrpc.new_node_id(), timeout=0.05)


async def test_node_id_comes_from_certificate(make_node: NodeFactory, qrpc_pki) -> None:
    node_id = qrpc.new_node_id()
    node = await make_node(tls=qrpc_pki.node_tls(node_id), start=False)
    assert node.id == node_id
    with pytest.raises(qrpc.ConfigError, match="certificate proves node ID"):
        qrpc.Node(qrpc.Registry(), tls=qrpc_pki.node_tls(), id=qrpc.new_node_id())


async def test_peer_ids_are_accepted_in_any_case(make_node: NodeFactory) -> None:
    a = await make_node()
    b = await make_node()
    got: list[str] = []

    @b.handler(1)
    async def on_ping(ctx: qrpc.Context, msg: Ping) -> Pong:
        got.append(msg.text)
        return Pong(msg.text)

    await connect(a, b)
    shouted = b.id.upper()
    assert a.is_connected(shouted)
    assert a.identity(shouted).node_id == b.id
    await a.send(shouted, Ping("one"))
    assert (await a.request(shouted, Ping("two"), reply=Pong, timeout=5)).text == "two"
    assert got == ["one", "two"]
