"""A test plugin that records the lifecycle hooks it implements."""

from __future__ import annotations

from typing import Any

import qrpc


class Recorder:
    """Records lifecycle hooks."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    @qrpc.hookimpl
    def qrpc_node_started(self, node: qrpc.Node) -> None:
        self.calls.append(("started", node.id))

    @qrpc.hookimpl
    def qrpc_node_stopped(self, node: qrpc.Node) -> None:
        self.calls.append(("stopped", node.id))

    @qrpc.hookimpl
    def qrpc_peer_connected(self, node: qrpc.Node, peer_id: str) -> None:
        self.calls.append(("connected", node.id, peer_id))

    @qrpc.hookimpl
    def qrpc_peer_disconnected(self, node: qrpc.Node, peer_id: str, code: int) -> None:
        self.calls.append(("disconnected", node.id, peer_id, code))
