"""Shared by the examples: message types and throw-away certificates.

Real deployments issue certificates once (``qrpc certs DIR --nodes N``) and
load them with ``qrpc.TLS(ca=..., cert=..., key=...)``; the examples create
fresh ones in a temporary directory so that each runs on its own.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import msgspec

import qrpc
from qrpc.tls.certs import issue_ca, issue_node_cert, write_pem


class Chat(msgspec.Struct):
    text: str


class Question(msgspec.Struct):
    text: str


class Answer(msgspec.Struct):
    text: str


registry = qrpc.Registry()  # one registry, shared by every node of the application
registry.register(1, Chat)
registry.register(2, Question)
registry.register(3, Answer)


def make_certs(count: int, directory: Path | None = None) -> list[qrpc.TLS]:
    """Issue a CA and `count` node certificates; return TLS credentials for each."""
    directory = directory or Path(tempfile.mkdtemp(prefix="qrpc-example-"))
    ca = issue_ca("qrpc example CA")
    write_pem(ca, directory / "ca.crt")
    credentials = []
    for index in range(count):
        cert, key = directory / f"node-{index + 1}.crt", directory / f"node-{index + 1}.key"
        write_pem(issue_node_cert(ca), cert, key)
        credentials.append(qrpc.TLS(directory / "ca.crt", cert, key))
    return credentials


def make_node(tls: qrpc.TLS, dial: Sequence[qrpc.Node] = ()) -> qrpc.Node:
    """A node on 127.0.0.1 (a free port) that dials the given, already started, nodes."""
    return qrpc.Node(
        registry,
        tls=tls,
        peers=[qrpc.PeerAddress(*node.address, expected_id=node.id) for node in dial],
        autoload_plugins=False,
    )
