"""Two nodes talking: each sends the other a typed message."""

from __future__ import annotations

import asyncio

import qrpc
from _common import Chat, make_certs, make_node


async def main() -> list[str]:
    alice_tls, bob_tls = make_certs(2)
    alice = make_node(alice_tls)
    heard: list[str] = []
    done = asyncio.Event()

    @alice.handler(1)
    async def alice_hears(ctx: qrpc.Context, msg: Chat) -> None:
        heard.append(f"alice heard {msg.text!r}")
        done.set()

    async with alice:
        bob = make_node(bob_tls, dial=[alice])

        @bob.handler(1)
        async def bob_hears(ctx: qrpc.Context, msg: Chat) -> None:
            heard.append(f"bob heard {msg.text!r}")
            await ctx.send(ctx.peer_id, Chat("hi alice, bob here"))

        async with bob:
            await bob.wait_for_peer(alice.id, timeout=5)
            await alice.wait_for_peer(bob.id, timeout=5)
            await alice.send(bob.id, Chat("hi bob, alice here"))
            await asyncio.wait_for(done.wait(), 5)
    for line in heard:
        print(line)
    return heard


if __name__ == "__main__":
    asyncio.run(main())
