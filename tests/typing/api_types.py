"""Type-checked by tests/test_typing.py (never run): locks in the public API's types.

Each `reveal_type` line carries a comment `# assert "<text>" in typ`.
"""

from __future__ import annotations

import msgspec

import qrpc


class Ping(msgspec.Struct):
    text: str


class Pong(msgspec.Struct):
    text: str


async def check(node: qrpc.Node, peer_id: str) -> None:
    @node.handler(1)
    async def on_ping(ctx: qrpc.Context, msg: Ping) -> Pong:
        return Pong(msg.text)

    reveal_type(on_ping)  # assert "Coroutine[Any, Any, tests.typing.api_types.Pong]" in typ
    reveal_type(await node.request(peer_id, Ping("x"), reply=Pong))  # assert "Pong" in typ
    reveal_type(await node.request(peer_id, Ping("x")))  # assert "Any" in typ
    reveal_type(await node.broadcast(Ping("x")))  # assert "int" in typ
    reveal_type(node.peers())  # assert "list[str]" in typ
    reveal_type(node.link_stats(peer_id).queued_bytes)  # assert "int" in typ
    reveal_type(node.dial_states())  # assert "DialState" in typ
    reveal_type(await node.wait_for_peer(peer_id, timeout=1))  # assert "str" in typ
    async for event in node.events():
        reveal_type(event)  # assert "Connected" in typ
        if isinstance(event, qrpc.ConnectFailed):
            reveal_type(event.retry_in)  # assert "float | None" in typ


async def check_context(ctx: qrpc.Context) -> None:
    reveal_type(await ctx.request("id", Ping("x"), reply=Pong))  # assert "Pong" in typ
    reveal_type(ctx.identity)  # assert "PeerIdentity" in typ
    reveal_type(ctx.peer)  # assert "PeerIdentity" in typ
    reveal_type(ctx.node)  # assert "NodeHandle" in typ
