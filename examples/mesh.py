"""Three nodes in a full mesh: every node sends a direct message to every other one."""

from __future__ import annotations

import asyncio
import itertools

import qrpc
from _common import Chat, make_certs, make_node


async def main() -> list[str]:
    certs = make_certs(3)
    names: dict[str, str] = {}
    heard: list[str] = []
    all_heard = asyncio.Event()
    nodes: list[qrpc.Node] = []
    for name, tls in zip("ABC", certs, strict=True):
        node = make_node(tls, dial=nodes)
        names[node.id] = name

        def install(node: qrpc.Node, name: str) -> None:
            @node.handler(1)
            async def on_chat(ctx: qrpc.Context, msg: Chat) -> None:
                heard.append(f"{name} <- {names[ctx.peer_id]}: {msg.text}")
                if len(heard) == 6:
                    all_heard.set()

        install(node, name)
        await node.start()
        nodes.append(node)
    try:
        for a, b in itertools.permutations(nodes, 2):
            await a.wait_for_peer(b.id, timeout=5)
        for a, b in itertools.permutations(nodes, 2):
            await a.send(b.id, Chat(f"direct from {names[a.id]} to {names[b.id]}"))
        await asyncio.wait_for(all_heard.wait(), 5)
        links = sorted(
            f"{names[n.id]}: {', '.join(sorted(names[p] for p in n.peers()))}" for n in nodes
        )
    finally:
        for node in nodes:
            await node.close()
    lines = [*links, *sorted(heard)]
    for line in lines:
        print(line)
    return lines


if __name__ == "__main__":
    asyncio.run(main())
