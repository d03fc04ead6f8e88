"""Request/reply: the handler's return value is the reply; errors and timeouts are typed."""

from __future__ import annotations

import asyncio

import qrpc
from _common import Answer, Question, make_certs, make_node


async def main() -> list[str]:
    server_tls, client_tls = make_certs(2)
    server = make_node(server_tls)

    @server.handler(2)
    async def on_question(ctx: qrpc.Context, msg: Question) -> Answer:
        if msg.text == "divide by zero":
            raise ZeroDivisionError("no")
        return Answer(msg.text.upper())

    lines = []
    async with server:
        client = make_node(client_tls, dial=[server])
        async with client:
            await client.wait_for_peer(server.id, timeout=5)
            answer = await client.request(server.id, Question("hello"), reply=Answer, timeout=5)
            lines.append(f"reply: {answer.text}")
            try:
                await client.request(server.id, Question("divide by zero"), timeout=5)
            except qrpc.RemoteError as exc:
                lines.append(f"remote error: {exc}")
    for line in lines:
        print(line)
    return lines


if __name__ == "__main__":
    asyncio.run(main())
