"""Request/reply: replies, remote errors, timeouts, disconnects and size limits."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

import qrpc
from tests.conftest import Count, NodeFactory, Ping, Pong, connect, eventually


async def _pair(make_node: NodeFactory, **kwargs) -> tuple[qrpc.Node, qrpc.Node]:
    server = await make_node(**kwargs)
    client = await make_node(**kwargs)
    return server, client


async def test_request_timeout_raises_request_timeout(make_node: NodeFactory) -> None:
    server, client = await _pair(make_node)
    release = asyncio.Event()

    @server.handler(1)
    async def slow(ctx: qrpc.Context, msg: Ping) -> Pong:
        await release.wait()
        return Pong("late")

    await connect(client, server)
    with pytest.raises(qrpc.RequestTimeout) as info:
        await client.request(server.id, Ping("?"), timeout=0.2)
    assert isinstance(info.value, TimeoutError)
    release.set()
    # The late reply is dropped and the link keeps working.
    assert await client.request(server.id, Ping("again"), reply=Pong, timeout=5) == Pong("late")
    assert client.peers() == [server.id]


async def test_handler_exception_reaches_caller_as_remote_error(make_node: NodeFactory) -> None:
    server, client = await _pair(make_node)

    @server.handler(1)
    async def broken(ctx: qrpc.Context, msg: Ping) -> Pong:
        raise ValueError(f"cannot handle {msg.text}")

    await connect(client, server)
    with pytest.raises(qrpc.RemoteError) as info:
        await client.request(server.id, Ping("this"), timeout=5)
    assert info.value.code == qrpc.RemoteErrorCode.HANDLER_ERROR
    assert info.value.text == "ValueError: cannot handle this"


@pytest.mark.parametrize("graceful", [True, False], ids=["goodbye", "abrupt-close"])
async def test_disconnect_during_request_raises_peer_disconnected(
    make_node: NodeFactory, graceful: bool
) -> None:
    server, client = await _pair(make_node)
    started = asyncio.Event()

    @server.handler(1)
    async def never(ctx: qrpc.Context, msg: Ping) -> Pong:
        started.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    await connect(client, server)
    request = asyncio.create_task(client.request(server.id, Ping("?"), timeout=30))
    await asyncio.wait_for(started.wait(), 5)
    if graceful:
        await server.close()
    else:
        server.endpoint.close()  # no GOODBYE: only QUIC's CONNECTION_CLOSE goes out
    with pytest.raises(qrpc.PeerDisconnected):
        await asyncio.wait_for(request, 5)


async def test_requests_to_each_peer_fail_only_for_that_peer(make_node: NodeFactory) -> None:
    a, b, c = await make_node(), await make_node(), await make_node()
    for node in (a, b):

        @node.handler(1)
        async def hang(ctx: qrpc.Context, msg: Ping) -> Pong:
            await asyncio.sleep(0.3)
            return Pong(ctx.node.id)

    await connect(c, a)
    await connect(c, b)
    to_a = asyncio.create_task(c.request(a.id, Ping("a"), reply=Pong, timeout=5))
    to_b = asyncio.create_task(c.request(b.id, Ping("b"), reply=Pong, timeout=5))
    await asyncio.sleep(0)
    await a.close()
    with pytest.raises(qrpc.PeerDisconnected):
        await to_a
    assert await to_b == Pong(b.id)


async def test_request_without_handler_is_a_remote_error(make_node: NodeFactory) -> None:
    server, client = await _pair(make_node)
    await connect(client, server)
    with pytest.raises(qrpc.RemoteError) as info:
        await client.request(server.id, Ping("nobody home"), timeout=5)
    assert info.value.code == qrpc.RemoteErrorCode.NO_HANDLER


async def test_reply_of_unexpected_type_is_a_bad_reply(make_node: NodeFactory) -> None:
    server, client = await _pair(make_node)

    @server.handler(1)
    async def wrong(ctx: qrpc.Context, msg: Ping) -> Ping:
        return Ping("not a Pong")

    await connect(client, server)
    with pytest.raises(qrpc.RemoteError) as info:
        await client.request(server.id, Ping("?"), reply=Pong, timeout=5)
    assert info.value.code == qrpc.RemoteErrorCode.BAD_REPLY
    assert "expected a Pong reply, got Ping" in info.value.text
    assert await client.request(server.id, Ping("untyped"), timeout=5) == Ping("not a Pong")


async def test_handler_returning_none_answers_none(make_node: NodeFactory) -> None:
    server, client = await _pair(make_node)

    kinds: list[bool] = []

    @server.handler(1)
    async def nothing(ctx: qrpc.Context, msg: Ping) -> None:
        kinds.append(ctx.is_request)
        return None

    await connect(client, server)
    assert await client.request(server.id, Ping("?"), timeout=5) is None  # acknowledged send
    await client.send(server.id, Ping("one-way"))
    await eventually(lambda: len(kinds) == 2)
    assert kinds == [True, False]


async def test_explicit_reply_wins_over_return_value(make_node: NodeFactory) -> None:
    server, client = await _pair(make_node)

    @server.handler(1)
    async def answer(ctx: qrpc.Context, msg: Ping) -> Pong:
        await ctx.reply(Pong("explicit"))
        with pytest.raises(RuntimeError):
            await ctx.reply(Pong("twice"))
        return Pong("ignored")

    await connect(client, server)
    assert await client.request(server.id, Ping("?"), reply=Pong, timeout=5) == Pong("explicit")


async def test_concurrent_requests_are_matched_to_their_replies(make_node: NodeFactory) -> None:
    server, client = await _pair(make_node)

    @server.handler(3, concurrency=16)
    async def echo(ctx: qrpc.Context, msg: Count) -> Count:
        await asyncio.sleep(0.001 * (msg.seq % 7))
        return Count(msg.seq * 2)

    await connect(client, server)
    replies = await asyncio.gather(
        *(client.request(server.id, Count(i), reply=Count, timeout=10) for i in range(300))
    )
    assert [r.seq for r in replies] == [2 * i for i in range(300)]


async def test_message_at_size_limit_is_delivered_and_one_byte_more_is_refused(
    make_node: NodeFactory,
) -> None:
    limits = qrpc.Limits(max_message_size=64 * 1024, inbound_window=256 * 1024)
    server, client = await _pair(make_node, limits=limits)
    got: list[int] = []

    @server.handler(3)
    async def on_count(ctx: qrpc.Context, msg: Count) -> None:
        got.append(len(msg.payload))

    await connect(client, server)
    # Payload length whose encoding is exactly the limit (msgpack overhead is
    # constant for payloads between 256 and 65535 bytes).
    fits = 64 * 1024 - (len(msgspec.msgpack.encode(Count(0, b"x" * 1000))) - 1000)
    assert len(msgspec.msgpack.encode(Count(0, b"x" * fits))) == 64 * 1024
    await client.send(server.id, Count(0, b"x" * fits))
    with pytest.raises(qrpc.MessageTooLarge) as info:
        await client.send(server.id, Count(0, b"x" * (fits + 1)))
    assert info.value.size == 64 * 1024 + 1
    assert info.value.limit == 64 * 1024
    await client.send(server.id, Count(1, b"end"))
    await eventually(lambda: len(got) == 2)
    assert got == [fits, 3]


async def test_request_timeout_covers_the_wait_for_room_to_send(make_node: NodeFactory) -> None:
    """request(timeout=1) must return within about a second even when the queue to the
    peer is full and no credit comes back."""
    limits = qrpc.Limits(
        max_message_size=4096,
        inbound_window=16 * 1024,
        outbound_high_water=8 * 1024,
        shutdown_timeout=0.5,  # the queue never drains: do not wait for it at teardown
    )
    receiver = await make_node(limits=limits)
    sender = await make_node(limits=limits)

    @receiver.handler(3)
    async def stuck(ctx: qrpc.Context, msg: Count) -> None:
        await asyncio.Event().wait()

    await connect(sender, receiver)
    sent = 0

    async def fill() -> None:
        nonlocal sent
        for seq in range(200):  # the window and the high-water mark hold about 24
            await sender.send(receiver.id, Count(seq, b"f" * 1000))
            sent += 1

    filling = asyncio.create_task(fill())
    await eventually(lambda: sent >= 20)
    start = asyncio.get_running_loop().time()
    with pytest.raises(qrpc.RequestTimeout):
        await asyncio.wait_for(sender.request(receiver.id, Ping("?"), timeout=1), 5)
    assert asyncio.get_running_loop().time() - start < 1.5
    filling.cancel()


async def test_the_request_limit_raises_its_own_error(make_node: NodeFactory) -> None:
    server = await make_node()
    client = await make_node(limits=qrpc.Limits(max_concurrent_requests=1))
    release = asyncio.Event()

    @server.handler(1)
    async def slow(ctx: qrpc.Context, msg: Ping) -> Pong:
        await release.wait()
        return Pong("late")

    await connect(client, server)
    first = asyncio.create_task(client.request(server.id, Ping("1"), reply=Pong, timeout=10))
    await asyncio.sleep(0)
    with pytest.raises(qrpc.QrpcError) as caught:
        await client.request(server.id, Ping("2"), timeout=5)
    assert type(caught.value).__name__ == "RequestLimitReached"
    assert "max_concurrent_requests" in str(caught.value)
    release.set()
    assert (await first).text == "late"


class Huge(msgspec.Struct):
    number: int


async def test_an_unencodable_message_raises_a_qrpc_error(make_node: NodeFactory) -> None:
    a = await make_node()
    b = await make_node()
    a.registry.register(9, Huge)
    await connect(a, b)
    with pytest.raises(qrpc.QrpcError, match="encode"):
        await a.send(b.id, Huge(2**70))  # msgpack integers stop at 64 bits


async def test_a_reply_carries_the_ack_of_its_request(make_node: NodeFactory) -> None:
    """One datagram each way per round trip: aioquic delays an ACK by 1 ms, so a
    reply that left without it would be followed by an ACK-only packet."""
    client, server = await make_node(), await make_node()

    @server.handler(1)
    async def on_ping(ctx: qrpc.Context, msg: Ping) -> Pong:
        return Pong(msg.text)

    await connect(client, server)
    for _ in range(5):  # settle: path probes, HELLO's acknowledgements
        await client.request(server.id, Ping("warm"), reply=Pong, timeout=5)
    before = server.endpoint.stats.datagrams_out
    count = 50
    for _ in range(count):
        await client.request(server.id, Ping("x"), reply=Pong, timeout=5)
        await asyncio.sleep(0.002)  # longer than aioquic's ACK delay
    sent = server.endpoint.stats.datagrams_out - before
    assert count <= sent <= count + 5, f"{sent} datagrams for {count} replies"
