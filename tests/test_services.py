"""Built-in services on real nodes: health always answered, introspection guarded."""

from __future__ import annotations

import msgspec
import pytest

import qrpc
from qrpc.registry import RESERVED_CMD_IDS
from qrpc.runtime.services import (
    SERVICE_TYPES,
    Health,
    HealthCheck,
    PeersQuery,
    PeersReport,
    StatsQuery,
    StatsReport,
)
from qrpc.schema import describe
from qrpc.wire import PROTOCOL_VERSION

from .conftest import NodeFactory, Ping, connect


class Intruder(msgspec.Struct):
    x: int


def test_reserved_range_is_refused_with_its_bounds() -> None:
    registry = qrpc.Registry()
    for cmd_id in (RESERVED_CMD_IDS.start, 0xFFFF_FFFF):
        with pytest.raises(qrpc.RegistryError, match=r"0xffffff00\.\.0xffffffff"):
            registry.register(cmd_id, Intruder)
    registry.register(RESERVED_CMD_IDS.start - 1, Intruder)
    assert len(registry) == 1


def test_services_leave_the_application_registry_alone(registry: qrpc.Registry) -> None:
    before = list(registry)
    derived = registry.with_services(SERVICE_TYPES)
    assert list(registry) == before
    assert HealthCheck not in registry
    assert list(derived) == before  # the schema sent in HELLO: the application's types only
    assert describe(derived) == describe(registry)
    assert derived.cmd_id_of(HealthCheck) == RESERVED_CMD_IDS.start
    registry.register(40, Intruder)  # types added later reach the derived registry
    assert derived.type_of(40) is Intruder


async def test_health_is_always_answered(make_node: NodeFactory, registry: qrpc.Registry) -> None:
    a, b = await make_node(), await make_node()
    await connect(a, b)
    assert dict(b.handlers) == {}  # the services are not the application's handlers
    health = await a.request(b.id, HealthCheck(), reply=Health, timeout=5)
    assert health.node_id == b.id
    assert health.protocol_version == PROTOCOL_VERSION
    assert health.peers == 1
    assert 0 < health.uptime < 60


async def test_health_works_with_an_empty_registry(make_node: NodeFactory) -> None:
    a = await make_node(reg=qrpc.Registry())
    b = await make_node()
    await connect(a, b)
    health = await b.request(a.id, HealthCheck(), reply=Health, timeout=5)
    assert health.node_id == a.id


async def _refusal(asker: qrpc.Node, target: qrpc.Node, query: msgspec.Struct) -> qrpc.RemoteError:
    with pytest.raises(qrpc.RemoteError) as excinfo:
        await asker.request(target.id, query, timeout=5)
    return excinfo.value


async def test_introspection_is_off_by_default(make_node: NodeFactory) -> None:
    a, b = await make_node(), await make_node()
    await connect(a, b)
    for query in (PeersQuery(), StatsQuery()):
        error = await _refusal(a, b, query)
        assert error.code == qrpc.RemoteErrorCode.NOT_AUTHORIZED
        assert "off" in error.text


async def test_introspection_answers_a_listed_identity_only(
    make_node: NodeFactory, qrpc_pki
) -> None:
    a_tls, c_tls = qrpc_pki.node_tls(), qrpc_pki.node_tls()
    b = await make_node(introspection=[a_tls.node_id.upper()])  # any spelling
    a, c = await make_node(tls=a_tls), await make_node(tls=c_tls)
    await connect(a, b)
    await connect(c, b)
    report = await a.request(b.id, PeersQuery(), reply=PeersReport, timeout=5)
    assert report.node_id == b.id
    assert [p.peer_id for p in report.peers] == sorted([a.id, c.id])
    mine = next(p for p in report.peers if p.peer_id == a.id)
    assert mine.dialed is False
    assert mine.identity == b.identity(a.id).subject
    stats = (await a.request(b.id, StatsQuery(), reply=StatsReport, timeout=5)).stats
    assert stats.node_id == b.id
    assert stats.peer_count == 2
    error = await _refusal(c, b, StatsQuery())
    assert error.code == qrpc.RemoteErrorCode.NOT_AUTHORIZED
    assert c.id in error.text


class _Approve:
    def __init__(self, verdict: bool | None, *, raises: bool = False) -> None:
        self.verdict = verdict
        self.raises = raises
        self.asked: list[tuple[str, str]] = []

    @qrpc.hookimpl
    def qrpc_authorize_introspection(self, node, peer_id, identity):
        self.asked.append((node.id, peer_id))
        if self.raises:
            raise RuntimeError("plugin bug")
        return self.verdict


async def test_a_hook_approves_an_unlisted_peer(make_node: NodeFactory) -> None:
    plugin = _Approve(True)
    b = await make_node(introspection=True, plugins=[plugin])
    a = await make_node()
    await connect(a, b)
    report = await a.request(b.id, PeersQuery(), reply=PeersReport, timeout=5)
    assert [p.peer_id for p in report.peers] == [a.id]
    assert plugin.asked == [(b.id, a.id)]


async def test_a_hook_saying_no_beats_the_list(make_node: NodeFactory, qrpc_pki) -> None:
    a_tls = qrpc_pki.node_tls()
    b = await make_node(introspection=[a_tls.node_id], plugins=[_Approve(False)])
    a = await make_node(tls=a_tls)
    await connect(a, b)
    assert (await _refusal(a, b, PeersQuery())).code == qrpc.RemoteErrorCode.NOT_AUTHORIZED


async def test_a_raising_hook_refuses(make_node: NodeFactory, qrpc_pki, caplog) -> None:
    a_tls = qrpc_pki.node_tls()
    plugin = _Approve(True, raises=True)
    b = await make_node(introspection=[a_tls.node_id], plugins=[plugin])
    a = await make_node(tls=a_tls)
    await connect(a, b)
    assert (await _refusal(a, b, StatsQuery())).code == qrpc.RemoteErrorCode.NOT_AUTHORIZED
    assert plugin.asked == [(b.id, a.id)]
    assert "introspection hook raised" in caplog.text


async def test_hooks_are_not_asked_while_introspection_is_off(make_node: NodeFactory) -> None:
    plugin = _Approve(True)
    b = await make_node(plugins=[plugin])
    a = await make_node()
    await connect(a, b)
    assert (await _refusal(a, b, PeersQuery())).code == qrpc.RemoteErrorCode.NOT_AUTHORIZED
    assert plugin.asked == []


async def test_application_traffic_is_unaffected(
    make_node: NodeFactory, registry: qrpc.Registry
) -> None:
    a, b = await make_node(), await make_node()
    seen: list[str] = []

    @b.handler(1)
    async def on_ping(ctx: qrpc.Context, msg: Ping) -> None:
        seen.append(msg.text)

    await connect(a, b)
    await a.request(b.id, Ping("x"), timeout=5)
    await a.request(b.id, HealthCheck(), reply=Health, timeout=5)
    assert seen == ["x"]
    with pytest.raises(qrpc.RegistryError):
        await a.broadcast(HealthCheck())  # services are asked of one peer, not broadcast
    with pytest.raises(qrpc.RegistryError, match="not registered"):
        b.handler(RESERVED_CMD_IDS.start)(on_ping)


@pytest.mark.parametrize("bad", ["node-a", 5, ["not a node id!"]])
def test_bad_introspection_settings_are_config_errors(qrpc_pki, registry, bad) -> None:
    with pytest.raises(qrpc.ConfigError, match=r"Node\.introspection"):
        qrpc.Node(registry, tls=qrpc_pki.node_tls(), introspection=bad, autoload_plugins=False)


@pytest.mark.parametrize("codec", ["json", "msgpack"])
async def test_reports_cross_every_bundled_codec(make_node: NodeFactory, qrpc_pki, codec) -> None:
    a_tls = qrpc_pki.node_tls()
    b = await make_node(introspection=[a_tls.node_id], codecs=(codec,))
    a = await make_node(tls=a_tls, codecs=(codec,))
    await connect(a, b)
    stats = (await a.request(b.id, StatsQuery(), reply=StatsReport, timeout=5)).stats
    assert [p.peer_id for p in stats.peers] == [a.id]
    assert stats.peers[0].remote_address == b.link_stats(a.id).remote_address
    assert isinstance(stats.peers[0], qrpc.LinkStats)


async def test_a_raw_codec_node_still_starts(make_node: NodeFactory) -> None:
    class Blob(msgspec.Struct):
        data: bytes

    only_blobs = qrpc.Registry()
    only_blobs.register(1, Blob)
    a = await make_node(reg=only_blobs, codecs=("raw",))
    b = await make_node(reg=only_blobs, codecs=("raw",))
    await connect(a, b)
    await a.send(b.id, Blob(b"x"))
    with pytest.raises(qrpc.MessageEncodeError, match="raw"):  # services need a structured codec
        await a.request(b.id, HealthCheck(), timeout=5)
