"""`RecordingTracer`, `HookRecorder` and `entry_point_plugin` on live nodes."""

from __future__ import annotations

import pytest

import qrpc
from qrpc.testing import HookRecorder, NetworkFactory, RecordingTracer, entry_point_plugin
from tests.conftest import Ping, Pong


async def test_recording_tracer_sees_each_message_in_order(
    qrpc_network: NetworkFactory, registry: qrpc.Registry
) -> None:
    net = qrpc_network(registry)
    tracer = RecordingTracer()
    a = await net.node(plugins=[tracer])
    b = await net.node()
    await net.link(a, b)

    @b.handler(1)
    async def on_ping(ctx: qrpc.Context, msg: Ping) -> Pong:
        return Pong(msg.text * 2)

    @a.handler(2)
    async def on_pong(ctx: qrpc.Context, msg: Pong) -> None:
        pass

    assert await a.request(b.id, Ping("ab"), reply=Pong, timeout=5) == Pong("abab")
    await b.request(a.id, Pong("late"), timeout=5)
    kinds = [(r.kind, r.cmd_id, r.message) for r in tracer.records]
    assert kinds == [
        ("send", 1, Ping("ab")),
        ("receive", 2, Pong("late")),
        ("handler-enter", 2, Pong("late")),
        ("handler-exit", 2, Pong("late")),
        ("send", 0, None),  # the reply of "no value"; replies received are not traced
    ]
    request_ids = [r.request_id for r in tracer.records]
    assert request_ids[0] != 0  # a request
    assert request_ids[1:] == [request_ids[1]] * 4  # b's request, and a's answer to it
    assert {r.peer_id for r in tracer.records} == {b.id}
    assert request_ids[1] != 0
    assert all(r.size for r in tracer.of("send"))
    assert tracer.of("receive", peer_id=a.id) == []


class _Observer:
    @qrpc.hookimpl
    def qrpc_peer_connected(self) -> None:
        pass

    @qrpc.hookimpl
    def qrpc_peer_disconnected(self) -> None:
        pass


async def test_hook_recorder_records_calls_with_their_arguments(
    qrpc_network: NetworkFactory, registry: qrpc.Registry
) -> None:
    net = qrpc_network(registry)
    first, second = _Observer(), _Observer()
    a = await net.node(plugins=[first, second])
    b = await net.node()
    with HookRecorder(a) as hooks:
        await net.link(a, b)
        connected = hooks.of("qrpc_peer_connected", peer_id=b.id)
        assert [c.plugins for c in connected] == [(second,), (first,)]  # one plugin a call
        assert connected[0].kwargs["identity"].node_id == b.id
        assert connected[0].result == []
        assert connected[0].error is None
        authorized = hooks.assert_called("qrpc_authorize_peer", dialed=True)
        assert authorized.kwargs["hello"].node_id == b.id
        hooks.assert_not_called("qrpc_peer_disconnected")

        net.partition(a, b)
        gone = await hooks.wait_for("qrpc_peer_disconnected", peer_id=b.id, timeout=5)
        assert gone.kwargs["code"] == qrpc.ErrorCode.PEER_UNRESPONSIVE
    count = len(hooks.calls)
    net.heal(a, b)
    await net.wait_linked(a, b)
    assert len(hooks.calls) == count  # closed: recording stopped


async def test_a_hook_no_plugin_implements_is_not_called(
    qrpc_network: NetworkFactory, registry: qrpc.Registry
) -> None:
    net = qrpc_network(registry)
    a = await net.node()
    b = await net.node()
    with HookRecorder(a) as hooks:
        await net.link(a, b)
    hooks.assert_not_called("qrpc_peer_connected")
    hooks.assert_called("qrpc_certified_node_id")  # the built-in plugin implements it


async def test_hook_recorder_failures_list_what_was_seen(
    qrpc_network: NetworkFactory, registry: qrpc.Registry
) -> None:
    net = qrpc_network(registry)
    a, b = await net.nodes(2)
    hooks = HookRecorder(a)
    try:
        with pytest.raises(AssertionError, match="its calls: none"):
            hooks.assert_called("qrpc_peer_disconnected", peer_id=b.id)
        with pytest.raises(AssertionError, match=r"after 0\.05 s: no call"):
            await hooks.wait_for("qrpc_peer_connected", peer_id="nobody", timeout=0.05)
    finally:
        hooks.close()


async def test_a_raising_hook_is_recorded_with_its_error(
    qrpc_network: NetworkFactory, registry: qrpc.Registry
) -> None:
    class Broken:
        @qrpc.hookimpl
        def qrpc_peer_connected(self, peer_id: str) -> None:
            raise RuntimeError("plugin bug")

    net = qrpc_network(registry)
    a = await net.node(plugins=[Broken()])
    b = await net.node()
    with HookRecorder(a) as hooks:
        await net.link(a, b)  # the node goes on: observer hooks are guarded
    call = hooks.assert_called("qrpc_peer_connected", peer_id=b.id)
    assert isinstance(call.error, RuntimeError)
    assert call.result is None


def test_entry_point_plugin_loads_what_a_package_declares() -> None:
    import qrpc_reconnect_fixed  # installed with the repository's plugins

    assert entry_point_plugin("reconnect-fixed") is qrpc_reconnect_fixed
    with pytest.raises(LookupError, match="no 'qrpc' entry point named 'nope'; installed: "):
        entry_point_plugin("nope")
