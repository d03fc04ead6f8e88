"""A handler answering through its context: `ctx.reply` sends back to the sender."""

from __future__ import annotations

import asyncio

import qrpc
from _common import Answer, Question, make_certs, make_node


async def main() -> list[str]:
    server_tls, client_tls = make_certs(2)
    server = make_node(server_tls)

    @server.handler(2)
    async def on_question(ctx: qrpc.Context, msg: Question) -> None:
        # A one-way message: the reply is a one-way message back to ctx.peer_id.
        await ctx.reply(Answer(f"you asked {msg.text!r}"))

    answers: asyncio.Queue[str] = asyncio.Queue()
    async with server:
        client = make_node(client_tls, dial=[server])

        @client.handler(3)
        async def on_answer(ctx: qrpc.Context, msg: Answer) -> None:
            await answers.put(msg.text)

        async with client:
            await client.wait_for_peer(server.id, timeout=5)
            await client.send(server.id, Question("what is qrpc?"))
            answer = await asyncio.wait_for(answers.get(), 5)
    print(answer)
    return [answer]


if __name__ == "__main__":
    asyncio.run(main())
