"""Dial loops: reconnecting after restarts, backoff, and when to stop."""

from __future__ import annotations

import asyncio

import qrpc
from qrpc.testing import TestPKI
from tests.conftest import NodeFactory, Ping, Pong, eventually

FAST = {
    "limits": qrpc.Limits(connect_timeout=0.3, handshake_timeout=2.0),
    "backoff": qrpc.Backoff(base=0.2, factor=2.0, cap=1.0),
}


async def _next(events: qrpc.EventStream, *types: type, timeout: float = 10.0):
    async with asyncio.timeout(timeout):
        async for event in events:
            if isinstance(event, types):
                return event
    raise AssertionError("event stream ended")


async def test_restarted_peer_is_reconnected_within_backoff_plus_one_second(
    make_node: NodeFactory, qrpc_pki: TestPKI
) -> None:
    b_tls = qrpc_pki.node_tls()
    b = await make_node(tls=b_tls, **FAST)
    port = b.address[1]
    a = await make_node(peers=[qrpc.Peer("127.0.0.1", port, expected_id=b.id)], **FAST)
    events = a.events()
    await a.wait_for_peer(b.id, timeout=5)

    await b.close()
    gone = await _next(events, qrpc.Disconnected)
    assert gone.peer_id == b.id
    failed = await _next(events, qrpc.ConnectFailed)
    assert failed.kind is qrpc.FailureKind.TRANSIENT
    assert isinstance(failed.error, qrpc.ConnectError)
    assert failed.retry_in is not None

    loop = asyncio.get_running_loop()
    b2 = await make_node(tls=b_tls, listen=("127.0.0.1", port), **FAST)

    @b2.handler(1)
    async def on_ping(ctx: qrpc.Context, msg: Ping) -> Pong:
        return Pong("back")

    restarted = loop.time()
    last_retry = failed.retry_in
    async with asyncio.timeout(10):
        async for event in events:
            if isinstance(event, qrpc.ConnectFailed):
                assert event.kind is qrpc.FailureKind.TRANSIENT
                assert event.retry_in is not None
                last_retry = event.retry_in
            elif isinstance(event, qrpc.Connected):
                break
    elapsed = loop.time() - restarted
    assert isinstance(event, qrpc.Connected)
    assert event.peer_id == b.id
    assert elapsed <= last_retry + 1.0, (elapsed, last_retry)
    assert await a.request(b.id, Ping("?"), reply=Pong, timeout=5) == Pong("back")


async def test_backoff_grows_between_failed_attempts(make_node: NodeFactory) -> None:
    silent = await make_node(start=False)  # never started: the port below is unused
    del silent
    a = await make_node(peers=[qrpc.Peer("127.0.0.1", 9)], **FAST)  # discard port: silent
    events = a.events()
    attempts: list[int] = []
    delays: list[float] = []
    async with asyncio.timeout(10):
        async for event in events:
            if isinstance(event, qrpc.Connecting):
                attempts.append(event.attempt)
            elif isinstance(event, qrpc.ConnectFailed):
                assert event.kind is qrpc.FailureKind.TRANSIENT
                assert isinstance(event.error, qrpc.ConnectTimeout)
                assert event.retry_in is not None
                delays.append(event.retry_in)
                if len(delays) == 3:
                    break
    assert attempts == [1, 2, 3]
    # 0.2, 0.4, 0.8 s with +/- 20 % jitter
    for delay, base in zip(delays, (0.2, 0.4, 0.8), strict=True):
        assert base * 0.8 <= delay <= base * 1.2


async def test_unresolvable_address_is_permanent_and_stops_the_loop(
    make_node: NodeFactory,
) -> None:
    a = await make_node(peers=[qrpc.Peer("no-such-host.invalid", 20001)], **FAST)
    events = a.events()
    failed = await _next(events, qrpc.ConnectFailed)
    assert isinstance(failed.error, qrpc.AddressError)
    assert failed.kind is qrpc.FailureKind.PERMANENT
    assert failed.retry_in is None
    await eventually(lambda: a.dial_states()[0].stopped)
    assert a.dial_states()[0].failures == 1


async def test_dialing_itself_is_refused_permanently(make_node: NodeFactory) -> None:
    a = await make_node(start=False, **FAST)
    await a.start()
    a.add_peer(qrpc.Peer(*a.address))
    failed = await _next(a.events(), qrpc.ConnectFailed)
    assert isinstance(failed.error, qrpc.SelfConnection)
    assert failed.kind is qrpc.FailureKind.PERMANENT
    assert a.peers() == []


async def test_restarted_peer_replaces_its_stale_link(
    make_node: NodeFactory, qrpc_pki: TestPKI
) -> None:
    a = await make_node(**FAST)
    b_tls = qrpc_pki.node_tls()
    b = await make_node(tls=b_tls, peers=[qrpc.Peer(*a.address, expected_id=a.id)], **FAST)
    await a.wait_for_peer(b.id, timeout=5)
    events = a.events()
    b.endpoint.abort()  # B "crashes": A is not told and keeps a stale link
    assert a.peers() == [b.id]

    b2 = await make_node(tls=b_tls, peers=[qrpc.Peer(*a.address, expected_id=a.id)], **FAST)
    got: list[str] = []

    @b2.handler(1)
    async def on_ping(ctx: qrpc.Context, msg: Ping) -> None:
        got.append(msg.text)

    gone = await _next(events, qrpc.Disconnected)
    assert gone.peer_id == b.id
    assert gone.code == qrpc.ErrorCode.REPLACED
    back = await _next(events, qrpc.Connected)
    assert back.peer_id == b.id
    assert a.peers() == [b.id]
    await a.send(b.id, Ping("to the new incarnation"))
    await eventually(lambda: bool(got))
    assert got == ["to the new incarnation"]


async def test_plugin_can_replace_the_reconnect_policy(make_node: NodeFactory) -> None:
    calls: list[tuple[int, str]] = []

    class GiveUpAfterTwo:
        @qrpc.hookimpl
        def qrpc_next_reconnect_delay(self, attempt: int, kind: qrpc.FailureKind) -> float | bool:
            calls.append((attempt, kind.value))
            return 0.05 if attempt < 2 else False

    a = await make_node(peers=[qrpc.Peer("127.0.0.1", 9)], plugins=[GiveUpAfterTwo()], **FAST)
    events = a.events()
    first = await _next(events, qrpc.ConnectFailed)
    second = await _next(events, qrpc.ConnectFailed)
    assert first.retry_in == 0.05
    assert second.retry_in is None
    assert second.kind is qrpc.FailureKind.TRANSIENT  # the policy stopped, not the error kind
    await eventually(lambda: a.dial_states()[0].stopped)
    assert calls == [(1, "transient"), (2, "transient")]
