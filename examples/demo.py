"""`make demo`: three qrpc nodes on loopback with freshly generated certificates.

It issues a CA and three node certificates, starts nodes A, B and C (A dials
B and C, B dials C), then shows direct sends, a broadcast, request/reply, a
restart of C and how A and B reconnect to it, and prints what happened.
Everything runs over real UDP sockets on 127.0.0.1 with mutual TLS.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import tempfile
import time
from pathlib import Path

import msgspec

import qrpc
from qrpc.tls.certs import issue_ca, issue_node_cert, write_pem


class Note(msgspec.Struct):
    text: str


class Ask(msgspec.Struct):
    question: str


class Answer(msgspec.Struct):
    text: str
    answered_by: str


registry = qrpc.Registry()
registry.register(1, Note)
registry.register(2, Ask)
registry.register(3, Answer)

T0 = time.perf_counter()


def say(who: str, text: str) -> None:
    print(f"[{time.perf_counter() - T0:6.3f}s] {who:<2} {text}", flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def make_node(name: str, tls: qrpc.TLS, port: int, peers: list[qrpc.Peer]) -> qrpc.Node:
    node = qrpc.Node(
        registry,
        tls=tls,
        listen=("127.0.0.1", port),
        peers=peers,
        limits=qrpc.Limits(connect_timeout=0.5),
        backoff=qrpc.Backoff(base=0.5, cap=4.0),
        autoload_plugins=False,
    )
    names[node.id] = name

    @node.handler(1)
    async def on_note(ctx: qrpc.Context, msg: Note) -> None:
        say(name, f"got note from {names[ctx.peer_id]}: {msg.text!r}")

    @node.handler(2)
    async def on_ask(ctx: qrpc.Context, msg: Ask) -> Answer:
        say(name, f"answering {names[ctx.peer_id]}'s question {msg.question!r}")
        return Answer(f"{name} is up, {len(ctx.node.peers())} peer(s) connected", name)

    return node


names: dict[str, str] = {}


async def report_events(name: str, node: qrpc.Node) -> None:
    async for event in node.events():
        if isinstance(event, qrpc.Connected):
            how = "dialed" if event.dialed else "accepted"
            say(name, f"connected to {names.get(event.peer_id, '?')} ({how}, mTLS verified)")
        elif isinstance(event, qrpc.Disconnected):
            say(name, f"lost {names.get(event.peer_id, '?')}: {event.reason}")
        elif isinstance(event, qrpc.ConnectFailed) and event.retry_in is not None:
            if isinstance(event.error, qrpc.PeerDisconnected):  # a link that did not last
                why = "link did not last"
            else:
                why = f"dial failed: {type(event.error).__name__}"
            say(name, f"redial {event.peer.port} in {event.retry_in:.2f}s ({why})")


async def wait_mesh(*nodes: qrpc.Node) -> None:
    for node in nodes:
        for other in nodes:
            if other is not node:
                await node.wait_for_peer(other.id, timeout=10)


async def main() -> int:
    with tempfile.TemporaryDirectory(prefix="qrpc-demo-") as tmp:
        directory = Path(tmp)
        ca = issue_ca("qrpc demo CA")
        write_pem(ca, directory / "ca.crt")
        tls: dict[str, qrpc.TLS] = {}
        for name in "ABC":
            issued = issue_node_cert(ca)
            cert, key = directory / f"{name}.crt", directory / f"{name}.key"
            write_pem(issued, cert, key)
            tls[name] = qrpc.TLS(directory / "ca.crt", cert, key)
            say(name, f"certificate issued for node {issued.node_id}")
        ports = {name: free_port() for name in "ABC"}
        peer = {
            n: qrpc.PeerAddress("127.0.0.1", ports[n], expected_id=tls[n].node_id) for n in "ABC"
        }

        a = make_node("A", tls["A"], ports["A"], [peer["B"], peer["C"]])
        b = make_node("B", tls["B"], ports["B"], [peer["C"]])
        c = make_node("C", tls["C"], ports["C"], [])
        watchers = [
            asyncio.create_task(report_events(n, x)) for n, x in zip("ABC", (a, b, c), strict=False)
        ]
        async with a, b:
            await c.start()
            await wait_mesh(a, b, c)
            say("--", "all three nodes connected")

            await a.send(b.id, Note("hello B, this is A"))
            await b.send(c.id, Note("hello C, this is B"))
            count = await a.broadcast(Note("broadcast from A"))
            say("A", f"broadcast queued to {count} peers")
            answer = await c.request(a.id, Ask("are you there?"), reply=Answer, timeout=5)
            say("C", f"reply from {answer.answered_by}: {answer.text!r}")

            say("--", "restarting C")
            await c.close()
            await asyncio.sleep(1.0)  # C is down for a second: A and B retry with backoff
            c = make_node("C", tls["C"], ports["C"], [])
            watchers.append(asyncio.create_task(report_events("C", c)))
            async with c:
                await wait_mesh(a, b, c)
                say("--", "C is back and connected to A and B")
                answer = await b.request(c.id, Ask("welcome back?"), reply=Answer, timeout=5)
                say("B", f"reply from {answer.answered_by}: {answer.text!r}")
        for task in watchers:
            await asyncio.wait_for(task, 5)
        say("--", "all nodes shut down cleanly")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
