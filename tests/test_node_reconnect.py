"""Dial loops: reconnecting after restarts, backoff, and when to stop."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

import pytest

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
    # The link lasted less than Backoff.stable_after: it counts as a failed attempt.
    assert failed.kind is qrpc.FailureKind.TRANSIENT
    assert isinstance(failed.error, qrpc.PeerDisconnected)
    assert "ended after" in failed.detail
    assert f"({gone.reason})" in failed.detail  # why the link closed
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


async def test_an_unresolvable_name_is_transient_and_redialed(make_node: NodeFactory) -> None:
    """A name that does not resolve now may resolve later (DNS is down, the record is
    not published yet): the loop keeps trying, resolving again at every attempt."""
    a = await make_node(peers=[qrpc.Peer("no-such-host.invalid", 20001)], **FAST)
    events = a.events()
    failed = await _next(events, qrpc.ConnectFailed)
    assert isinstance(failed.error, qrpc.AddressError)
    assert failed.kind is qrpc.FailureKind.TRANSIENT
    assert failed.retry_in is not None
    again = await _next(events, qrpc.ConnectFailed)
    assert isinstance(again.error, qrpc.AddressError)
    assert not a.dial_states()[0].stopped


async def test_a_name_that_resolves_later_is_connected(
    make_node: NodeFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    b = await make_node()
    loop = asyncio.get_running_loop()
    real = loop.getaddrinfo
    calls = 0

    async def flaky(host: str, port: int, **kwargs: Any) -> list[Any]:
        nonlocal calls
        if host != "peer.example":
            return await real(host, port, **kwargs)
        calls += 1
        if calls <= 2:
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        return await real("127.0.0.1", port, **kwargs)

    monkeypatch.setattr(loop, "getaddrinfo", flaky)
    a = await make_node(peers=[qrpc.Peer("peer.example", b.address[1], expected_id=b.id)], **FAST)
    assert await a.wait_for_peer(b.id, timeout=10) == b.id
    assert calls == 3


async def test_every_address_of_a_name_is_tried(
    make_node: NodeFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    b = await make_node()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))  # bound, never answers
        dead = silent.getsockname()
        loop = asyncio.get_running_loop()
        real = loop.getaddrinfo

        async def two(host: str, port: int, **kwargs: Any) -> list[Any]:
            if host != "peer.example":
                return await real(host, port, **kwargs)
            live = await real("127.0.0.1", b.address[1], **kwargs)
            first = live[0]
            return [(first[0], first[1], first[2], first[3], dead), *live]

        monkeypatch.setattr(loop, "getaddrinfo", two)
        a = await make_node(peers=[qrpc.Peer("peer.example", 1, expected_id=b.id)], **FAST)
        assert await a.wait_for_peer(b.id, timeout=5) == b.id


async def test_no_common_codec_is_permanent(make_node: NodeFactory) -> None:
    b = await make_node(codecs=["msgpack"])
    a = await make_node(codecs=["json"], peers=[qrpc.Peer(*b.address, expected_id=b.id)], **FAST)
    events = a.events()
    failed = await _next(events, qrpc.ConnectFailed)
    assert failed.kind is qrpc.FailureKind.PERMANENT, failed
    assert failed.retry_in is None
    assert "codec" in failed.detail


async def test_two_nodes_sharing_one_identity_do_not_replace_each_other_forever(
    make_node: NodeFactory, qrpc_pki: TestPKI
) -> None:
    """Two processes started with the same certificate: each new link of one replaces
    the other's at the hub.  Redials back off after short-lived links, so the hub sees
    a handful of replacements, not a storm."""
    hub = await make_node()
    events = hub.events()
    twin_tls = qrpc_pki.node_tls()
    peer = qrpc.Peer(*hub.address, expected_id=hub.id)
    await make_node(tls=twin_tls, peers=[peer])
    await make_node(tls=twin_tls, peers=[peer])
    connected = 0
    loop = asyncio.get_running_loop()
    end = loop.time() + 3.0
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout_at(end):
            async for event in events:
                if isinstance(event, qrpc.Connected) and event.peer_id == twin_tls.node_id:
                    connected += 1
    assert 2 <= connected <= 6, f"{connected} links from one identity in 3 s"


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
