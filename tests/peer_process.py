"""A qrpc node in a process of its own, for tests that kill and restart a peer.

    python tests/peer_process.py CA CERT KEY PORT

Prints ``ready <port>`` once listening, then serves until killed.
"""

from __future__ import annotations

import asyncio
import sys

import msgspec

import qrpc


class Ping(msgspec.Struct):
    text: str


class Pong(msgspec.Struct):
    text: str


async def main(ca: str, cert: str, key: str, port: int) -> None:
    registry = qrpc.Registry()
    registry.register(1, Ping)
    registry.register(2, Pong)
    node = qrpc.Node(
        registry,
        tls=qrpc.TLS(ca, cert, key),
        listen=("127.0.0.1", port),
        autoload_plugins=False,
    )

    @node.handler(1)
    async def on_ping(ctx: qrpc.Context, msg: Ping) -> Pong:
        return Pong(msg.text)

    async with node:
        print("ready", node.address[1], flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
