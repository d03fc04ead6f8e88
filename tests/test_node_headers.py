"""Headers: metadata that travels with a message or request, capped by the receiver."""

from __future__ import annotations

import asyncio

import pytest

import qrpc
from tests.conftest import NodeFactory, Ping, Pong, connect, eventually


async def test_headers_reach_the_handler(make_node: NodeFactory) -> None:
    caller, callee = await make_node(), await make_node()
    await connect(caller, callee)
    seen: list[dict[str, str | bytes]] = []

    @callee.handler(1)
    async def on_ping(ctx: qrpc.Context, msg: Ping) -> Pong:
        seen.append(dict(ctx.headers))
        return Pong("ok")

    headers: dict[str, str | bytes] = {"tenant": "acme", "trace-bin": b"\x00\xff", "x.y_z-1": ""}
    await caller.request(callee.id, Ping("r"), headers=headers, timeout=5)
    await caller.send(callee.id, Ping("m"), headers={"tenant": "globex"})
    await caller.send(callee.id, Ping("plain"))
    await eventually(lambda: len(seen) == 3)
    assert seen == [headers, {"tenant": "globex"}, {}]


async def test_headers_pass_through_a_handlers_context(make_node: NodeFactory) -> None:
    a, b, c = await make_node(), await make_node(), await make_node()
    await connect(a, b)
    await connect(b, c)
    got: list[str | bytes] = []

    @b.handler(1)
    async def relay(ctx: qrpc.Context, msg: Ping) -> Pong:
        await ctx.send(c.id, Ping("fwd"), headers={"hop": "b"})
        return await ctx.request(c.id, Ping("ask"), reply=Pong, headers=dict(ctx.headers))

    @c.handler(1)
    async def leaf(ctx: qrpc.Context, msg: Ping) -> Pong | None:
        got.append(ctx.headers.get("hop", "-"))
        return Pong(str(ctx.headers.get("origin"))) if ctx.is_request else None

    assert await a.request(b.id, Ping("go"), reply=Pong, headers={"origin": "a"}) == Pong("a")
    await eventually(lambda: len(got) == 2)
    assert got == ["b", "-"]


@pytest.mark.parametrize(
    ("headers", "complaint"),
    [
        pytest.param({"Upper": "x"}, "header key 'Upper'", id="upper-case-key"),
        pytest.param({"": "x"}, "header key ''", id="empty-key"),
        pytest.param({"k": 1}, "must be str or bytes", id="int-value"),
        pytest.param({"qrpc-deadline": "1"}, "reserved", id="reserved-prefix"),
        pytest.param({f"k{i}": "v" for i in range(65)}, "at most 64", id="too-many"),
    ],
)
async def test_bad_headers_raise_and_send_nothing(
    make_node: NodeFactory, headers: dict[str, object], complaint: str
) -> None:
    caller, callee = await make_node(), await make_node()
    await connect(caller, callee)
    seen: list[str] = []

    @callee.handler(1)
    async def on_ping(ctx: qrpc.Context, msg: Ping) -> None:
        seen.append(msg.text)

    with pytest.raises(qrpc.HeaderError, match=complaint):
        await caller.send(callee.id, Ping("bad"), headers=headers)  # type: ignore[arg-type]
    with pytest.raises(qrpc.HeaderError, match=complaint):
        await caller.request(callee.id, Ping("bad"), headers=headers, timeout=5)  # type: ignore[arg-type]
    await caller.request(callee.id, Ping("good"), timeout=5)
    assert seen == ["good"]


async def test_the_receivers_header_limit_is_checked_by_the_sender(
    make_node: NodeFactory,
) -> None:
    caller = await make_node()
    callee = await make_node(limits=qrpc.Limits(max_header_bytes=64))
    await connect(caller, callee)

    @callee.handler(1)
    async def on_ping(ctx: qrpc.Context, msg: Ping) -> None:
        pass

    with pytest.raises(qrpc.HeaderError, match="the peer accepts 64"):
        await caller.send(callee.id, Ping("x"), headers={"big": "v" * 100})
    await caller.send(callee.id, Ping("x"), headers={"small": "v"})
    await asyncio.sleep(0)
    assert caller.is_connected(callee.id)


def test_the_header_limit_is_checked_at_construction() -> None:
    with pytest.raises(qrpc.ConfigError, match="max_header_bytes"):
        qrpc.Limits(max_header_bytes=70_000)
