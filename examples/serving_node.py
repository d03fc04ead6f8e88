"""A serving node: answers questions until Ctrl-C (SIGINT) or SIGTERM.

Usage::

    qrpc certs certs/ --nodes 2
    python examples/serving_node.py certs/ --port 20001

It uses certs/ca.crt and certs/node-1.{crt,key}; a client can use node-2.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path

import qrpc
from _common import Answer, Question, registry


async def serve(directory: Path, port: int) -> None:
    tls = qrpc.TLS(directory / "ca.crt", directory / "node-1.crt", directory / "node-1.key")
    node = qrpc.Node(registry, tls=tls, listen=("127.0.0.1", port), autoload_plugins=False)

    @node.handler(2)
    async def on_question(ctx: qrpc.Context, msg: Question) -> Answer:
        return Answer(f"{node.id} heard {msg.text!r} from {ctx.peer_id}")

    await node.start()
    print(f"serving node {node.id} on {node.address[0]}:{node.address[1]}", flush=True)
    await node.serve()
    print("stopped", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("certs", type=Path, help="directory made by `qrpc certs`")
    parser.add_argument("--port", type=int, default=20001)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(args.certs, args.port))


if __name__ == "__main__":
    main()
