"""Deadlines and cancellation across peers: a request's timeout travels with it, the
callee's handler is cancelled at the deadline or when the caller stops waiting, and
nested calls never outlive the outer deadline."""

from __future__ import annotations

import asyncio

import pytest

import qrpc
from tests.conftest import NodeFactory, Ping, Pong, connect, eventually

SLACK = 0.05  # seconds allowed beyond one round trip for the cancellation to land


async def _rtt(a: qrpc.Node, b: qrpc.Node) -> float:
    loop = asyncio.get_running_loop()
    started = loop.time()
    await a.request(b.id, Ping("rtt"), timeout=5)
    return loop.time() - started


async def _pair(make_node: NodeFactory) -> tuple[qrpc.Node, qrpc.Node]:
    caller, callee = await make_node(), await make_node()
    await connect(caller, callee)
    return caller, callee


class _Slow:
    """A handler that sleeps, recording when it started and when it was cancelled."""

    def __init__(self, seconds: float = 3.0) -> None:
        self.seconds = seconds
        self.started = asyncio.Event()
        self.cancelled_at: float | None = None
        self.finished = False
        self.remaining: list[float | None] = []

    async def handle(self, ctx: qrpc.Context, msg: Ping) -> Pong:
        self.remaining.append(ctx.time_remaining())
        if msg.text == "rtt":
            return Pong("rtt")
        self.started.set()
        try:
            await asyncio.sleep(self.seconds)
        except asyncio.CancelledError:
            self.cancelled_at = asyncio.get_running_loop().time()
            raise
        self.finished = True
        return Pong("done")


async def test_the_callee_sees_the_time_remaining(make_node: NodeFactory) -> None:
    caller, callee = await _pair(make_node)
    seen: list[float | None] = []

    @callee.handler(1)
    async def on_ping(ctx: qrpc.Context, msg: Ping) -> Pong:
        seen.append(ctx.time_remaining())
        return Pong("ok")

    await caller.request(callee.id, Ping("?"), timeout=2.0)
    await caller.send(callee.id, Ping("one-way"))
    await eventually(lambda: len(seen) == 2)
    remaining, one_way = seen
    assert remaining is not None
    assert 1.5 < remaining <= 2.0
    assert one_way is None  # a one-way message has no deadline


async def test_the_handler_is_cancelled_at_the_callers_timeout(make_node: NodeFactory) -> None:
    caller, callee = await _pair(make_node)
    slow = _Slow()
    callee.handler(1)(slow.handle)
    rtt = await _rtt(caller, callee)
    loop = asyncio.get_running_loop()
    with pytest.raises(qrpc.RequestTimeout):
        await caller.request(callee.id, Ping("slow"), timeout=0.5)
    gave_up = loop.time()
    await eventually(lambda: slow.cancelled_at is not None, timeout=3)
    assert slow.cancelled_at is not None
    assert slow.cancelled_at - gave_up <= rtt + SLACK
    assert not slow.finished


async def test_cancelling_the_caller_cancels_the_handler(make_node: NodeFactory) -> None:
    caller, callee = await _pair(make_node)
    slow = _Slow()
    callee.handler(1)(slow.handle)
    rtt = await _rtt(caller, callee)
    call = asyncio.create_task(caller.request(callee.id, Ping("slow"), timeout=30))
    await asyncio.wait_for(slow.started.wait(), 5)
    loop = asyncio.get_running_loop()
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    gave_up = loop.time()
    await eventually(lambda: slow.cancelled_at is not None, timeout=3)
    assert slow.cancelled_at is not None
    assert slow.cancelled_at - gave_up <= rtt + SLACK


async def test_a_cancelled_request_still_queued_never_runs(make_node: NodeFactory) -> None:
    caller, callee = await _pair(make_node)
    release = asyncio.Event()
    ran: list[str] = []

    @callee.handler(1)
    async def one_at_a_time(ctx: qrpc.Context, msg: Ping) -> Pong:
        ran.append(msg.text)
        if msg.text == "first":
            await asyncio.wait_for(release.wait(), 5)
        return Pong(msg.text)

    first = asyncio.create_task(caller.request(callee.id, Ping("first"), reply=Pong, timeout=10))
    await eventually(lambda: ran == ["first"])
    second = asyncio.create_task(caller.request(callee.id, Ping("second"), timeout=10))
    await eventually(lambda: _arrived(callee, caller) == 2)  # queued behind the first
    second.cancel()
    with pytest.raises(asyncio.CancelledError):
        await second
    # A message sent after the CANCEL arrives after it (one ordered stream): once it is
    # in, the CANCEL was taken while the second request was still queued.
    await caller.send(callee.id, Pong("after the cancel"))
    await eventually(lambda: _arrived(callee, caller) == 3)
    release.set()
    assert await first == Pong("first")
    third = await caller.request(callee.id, Ping("third"), reply=Pong, timeout=5)
    assert third == Pong("third")
    assert ran == ["first", "third"]


async def test_a_nested_call_never_outlives_the_outer_deadline(make_node: NodeFactory) -> None:
    a, b, c = await make_node(), await make_node(), await make_node()
    await connect(a, b)
    await connect(b, c)
    outer: list[float | None] = []
    inner: list[float | None] = []

    @b.handler(1)
    async def relay(ctx: qrpc.Context, msg: Ping) -> Pong:
        outer.append(ctx.time_remaining())
        return await ctx.request(c.id, Ping("inner"), reply=Pong, timeout=60)  # capped

    @c.handler(1)
    async def leaf(ctx: qrpc.Context, msg: Ping) -> Pong:
        inner.append(ctx.time_remaining())
        return Pong("leaf")

    assert await a.request(b.id, Ping("outer"), reply=Pong, timeout=1.5) == Pong("leaf")
    (outer_left,), (inner_left,) = outer, inner
    assert outer_left is not None
    assert inner_left is not None
    assert inner_left <= outer_left <= 1.5


async def test_a_nested_call_after_the_deadline_is_not_sent(make_node: NodeFactory) -> None:
    a, b, c = await make_node(), await make_node(), await make_node()
    await connect(a, b)
    await connect(b, c)
    errors: list[BaseException] = []
    leaf_calls: list[str] = []

    @b.handler(1)
    async def relay(ctx: qrpc.Context, msg: Ping) -> Pong:
        try:
            await asyncio.sleep(1.0)  # outlives the caller's 0.3 s: cancelled here
        finally:
            try:
                await ctx.request(c.id, Ping("too late"), timeout=5)
            except qrpc.RequestTimeout as exc:
                errors.append(exc)
        return Pong("never")

    @c.handler(1)
    async def leaf(ctx: qrpc.Context, msg: Ping) -> None:
        leaf_calls.append(msg.text)

    with pytest.raises(qrpc.RequestTimeout):
        await a.request(b.id, Ping("outer"), timeout=0.3)
    await eventually(lambda: bool(errors), timeout=3)
    assert "nothing was sent" in str(errors[0])
    await b.request(c.id, Ping("marker"), timeout=5)  # behind anything b had sent to c
    assert leaf_calls == ["marker"]


async def test_handlers_with_concurrency_are_cancelled_too(make_node: NodeFactory) -> None:
    caller, callee = await _pair(make_node)
    slow = _Slow()
    callee.handler(1, concurrency=4)(slow.handle)
    with pytest.raises(qrpc.RequestTimeout):
        await caller.request(callee.id, Ping("slow"), timeout=0.3)
    await eventually(lambda: slow.cancelled_at is not None, timeout=3)
    assert not slow.finished


async def test_a_handler_that_answers_in_time_is_not_disturbed(make_node: NodeFactory) -> None:
    caller, callee = await _pair(make_node)
    slow = _Slow(seconds=0.1)
    callee.handler(1)(slow.handle)
    assert await caller.request(callee.id, Ping("x"), reply=Pong, timeout=2) == Pong("done")
    assert slow.finished
    assert slow.cancelled_at is None


async def test_a_cancel_for_a_handler_past_its_deadline_is_harmless(
    make_node: NodeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caller, callee = await _pair(make_node)
    swallowed = asyncio.Event()

    @callee.handler(1)
    async def stubborn(ctx: qrpc.Context, msg: Ping) -> Pong:
        if msg.text == "y":
            return Pong("y")
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:  # the deadline: swallowed, and it keeps going
            swallowed.set()
            await asyncio.sleep(0.3)  # the caller's CANCEL arrives meanwhile
        finished.set()
        return Pong("late")

    finished = asyncio.Event()
    with pytest.raises(qrpc.RequestTimeout):
        await caller.request(callee.id, Ping("x"), timeout=0.2)
    await asyncio.wait_for(swallowed.wait(), 3)
    await asyncio.wait_for(finished.wait(), 3)
    assert await caller.request(callee.id, Ping("y"), reply=Pong, timeout=5) == Pong("y")
    assert "Traceback" not in caplog.text
    assert "Cannot change state" not in caplog.text
    assert caller.is_connected(callee.id)


def _arrived(node: qrpc.Node, peer: qrpc.Node) -> int:
    """Messages and requests `node` has received from `peer` on their link."""
    return node.link_stats(peer.id).messages_in
