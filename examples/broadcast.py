"""Three nodes: one broadcast reaches both others."""

from __future__ import annotations

import asyncio

import qrpc
from _common import Chat, make_certs, make_node


async def main() -> list[str]:
    certs = make_certs(3)
    heard: list[str] = []
    both = asyncio.Event()
    nodes: list[qrpc.Node] = []
    for tls in certs:
        node = make_node(tls, dial=nodes)  # each new node dials the ones already up

        def install(node: qrpc.Node) -> None:
            @node.handler(1)
            async def on_chat(ctx: qrpc.Context, msg: Chat) -> None:
                heard.append(f"{node.id[-4:]} heard {msg.text!r} from {ctx.peer_id[-4:]}")
                if len(heard) == 2:
                    both.set()

        install(node)
        await node.start()
        nodes.append(node)
    try:
        first = nodes[0]
        for other in nodes[1:]:
            await first.wait_for_peer(other.id, timeout=5)
        count = await first.broadcast(Chat("hello everyone"))
        await asyncio.wait_for(both.wait(), 5)
    finally:
        for node in nodes:
            await node.close()
    lines = [f"broadcast reached {count} peers", *sorted(heard)]
    for line in lines:
        print(line)
    return lines


if __name__ == "__main__":
    asyncio.run(main())
