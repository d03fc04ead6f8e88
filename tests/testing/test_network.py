"""The ``qrpc_network`` fixture, used the way an application's tests would use it."""

from __future__ import annotations

import pytest

import qrpc
from qrpc.testing import NetworkFactory
from tests.conftest import Count, Ping, Pong, eventually, next_event


async def test_pair_answers(qrpc_network: NetworkFactory, registry: qrpc.Registry) -> None:
    net = qrpc_network(registry)  # registry: the app's qrpc.Registry
    a, b = await net.nodes(2)  # started, certificates issued, linked both ways

    @b.handler(1)
    async def on_ping(ctx: qrpc.Context, msg: Ping) -> Pong:
        return Pong(msg.text.upper())

    assert (await a.request(b.id, Ping("hi"), reply=Pong, timeout=5)).text == "HI"


async def test_every_pair_of_nodes_is_linked(
    qrpc_network: NetworkFactory, registry: qrpc.Registry
) -> None:
    net = qrpc_network(registry)
    nodes = await net.nodes(4)
    for node in nodes:
        assert node.peers() == sorted(other.id for other in nodes if other is not node)
    assert net.members == nodes


async def test_300_messages_arrive_in_order_through_a_lossy_link(
    qrpc_network: NetworkFactory, registry: qrpc.Registry
) -> None:
    net = qrpc_network(registry)
    a, b = await net.nodes(2)
    got: list[int] = []

    @b.handler(3)
    async def on_count(ctx: qrpc.Context, msg: Count) -> None:
        got.append(msg.seq)

    net.impair(a, b, loss=0.05, seed=7)
    for seq in range(300):
        await a.send(b.id, Count(seq, b"x" * 500))
    await eventually(lambda: len(got) >= 300, timeout=30)
    assert got == list(range(300))
    proxy = net.proxy(a, b)
    assert proxy.upstream_stats.dropped + proxy.downstream_stats.dropped > 0  # loss happened


async def test_partition_then_heal(qrpc_network: NetworkFactory, registry: qrpc.Registry) -> None:
    net = qrpc_network(registry)
    a, b, c = await net.nodes(3)

    @b.handler(1)
    async def on_ping(ctx: qrpc.Context, msg: Ping) -> Pong:
        return Pong(msg.text)

    net.partition(a, b)
    await net.wait_unlinked(a, b, timeout=5)  # noticed by both sides
    with pytest.raises(qrpc.PeerNotFound):
        await a.request(b.id, Ping("cut off"), timeout=1)
    assert c.peers() == sorted([a.id, b.id])  # the rest of the network is untouched

    net.heal(a, b)
    await net.wait_linked(a, b, timeout=5)
    assert await a.request(b.id, Ping("back"), reply=Pong, timeout=5) == Pong("back")


async def test_restart_keeps_identity_port_and_handlers(
    qrpc_network: NetworkFactory, registry: qrpc.Registry
) -> None:
    net = qrpc_network(registry)
    a, b, c = await net.nodes(3)  # b dials a, c dials a and b: b is dialer and target

    @b.handler(1)
    async def on_ping(ctx: qrpc.Context, msg: Ping) -> Pong:
        return Pong(f"{msg.text} from b")

    old_address = b.address
    b2 = await net.restart(b)
    assert b.closed
    assert b2 is not b
    assert (b2.id, b2.address) == (b.id, old_address)
    assert b2.peers() == sorted([a.id, c.id])
    for asker in (a, c):
        reply = await asker.request(b2.id, Ping("again"), reply=Pong, timeout=5)
        assert reply == Pong("again from b")
    assert net.members == [a, b2, c]


@pytest.mark.parametrize("crashing", ["dialer", "target"])
async def test_crash_restart_is_noticed_and_relinked(
    qrpc_network: NetworkFactory, registry: qrpc.Registry, crashing: str
) -> None:
    net = qrpc_network(registry)
    target, dialer = await net.nodes(2)  # the later node dials the earlier one
    victim, witness = (dialer, target) if crashing == "dialer" else (target, dialer)
    events = witness.events()
    reborn = await net.restart(victim, crash=True)  # no GOODBYE: the witness is not told
    gone = await next_event(events, qrpc.Disconnected, timeout=10)
    assert gone.peer_id == victim.id
    assert gone.code != qrpc.ErrorCode.NO_ERROR
    assert witness.peers() == [reborn.id]
    assert reborn.peers() == [witness.id]


async def test_handlers_can_be_added_to_a_running_node(
    qrpc_network: NetworkFactory, registry: qrpc.Registry
) -> None:
    net = qrpc_network(registry)
    a, b = await net.nodes(2)
    with pytest.raises(qrpc.RemoteError) as raised:
        await a.request(b.id, Ping("nobody home"), timeout=5)
    assert raised.value.code == qrpc.RemoteErrorCode.NO_HANDLER

    @b.handler(1)
    async def on_ping(ctx: qrpc.Context, msg: Ping) -> Pong:
        return Pong("now")

    assert await a.request(b.id, Ping("now?"), reply=Pong, timeout=5) == Pong("now")


async def test_node_arguments_override_the_test_defaults(
    qrpc_network: NetworkFactory, registry: qrpc.Registry
) -> None:
    net = qrpc_network(registry)
    limits = qrpc.Limits(max_message_size=64 * 1024)
    a = await net.node(limits=limits, state={"name": "a"})
    assert a.limits is limits
    assert a.state == {"name": "a"}
    assert a.quic.dead_peer_timeout == 1.0  # from TEST_DEFAULTS


async def test_misuse_names_the_mistake(
    qrpc_network: NetworkFactory, registry: qrpc.Registry
) -> None:
    net = qrpc_network(registry)
    a, b = await net.nodes(2)
    c = await net.node()
    with pytest.raises(ValueError, match="not linked"):
        net.partition(a, c)
    with pytest.raises(ValueError, match="already linked"):
        await net.link(b, a)
    b2 = await net.restart(b)
    with pytest.raises(ValueError, match="use the node it returned"):
        await net.restart(b)
    with pytest.raises(TimeoutError, match="link between the nodes"):
        await net.wait_linked(b2, c, timeout=0.2)
    await c.close()
    with pytest.raises(ValueError, match="is closed; restart"):
        await net.link(a, c)


async def test_a_node_the_test_closed_can_be_restarted(
    qrpc_network: NetworkFactory, registry: qrpc.Registry
) -> None:
    net = qrpc_network(registry)
    a, b = await net.nodes(2)
    await b.close()
    await net.wait_unlinked(a, b, timeout=5)
    b2 = await net.restart(b)
    assert a.peers() == [b2.id]
