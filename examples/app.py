"""An app to serve with ``qrpc run``: greets on request, keeps one-way notes.

Usage, from the repository root::

    qrpc certs certs/ --nodes 2
    qrpc run examples/app.py:app --listen 127.0.0.1:20001 \\
        --ca certs/ca.crt --cert certs/node-1.crt --key certs/node-1.key

Another node (certs/node-2.*) sends `Note` (cmd_id 12, one-way) and requests
`Greet` (cmd_id 10); the `Greeting` (11) answer counts the notes it sent.
The module only describes the app: ``qrpc run`` builds the node from the
command line, the ``QRPC_*`` variables and ``--config`` (docs/running.md).
"""

from __future__ import annotations

import logging
from collections import Counter

import msgspec

import qrpc

log = logging.getLogger("examples.app")


class Greet(msgspec.Struct):
    name: str


class Greeting(msgspec.Struct):
    text: str


class Note(msgspec.Struct):
    text: str


registry = qrpc.Registry()  # what every node of this app, and its clients, share
registry.register(10, Greet)
registry.register(11, Greeting)
registry.register(12, Note)

app = qrpc.App(registry, state=Counter[str]())  # notes per peer: ctx.state


@app.handler(10)
async def greet(ctx: qrpc.Context, msg: Greet) -> Greeting:
    notes = ctx.state[ctx.peer_id]
    return Greeting(f"hello {msg.name}, from {ctx.node.id} ({notes} note(s) from you)")


@app.handler(12)
async def note(ctx: qrpc.Context, msg: Note) -> None:
    ctx.state[ctx.peer_id] += 1
    log.info("note from %s: %s", ctx.peer_id, msg.text)
