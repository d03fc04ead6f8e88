"""A test plugin that records every hook call and traces every message."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import qrpc


class RecordingTracer(qrpc.BaseTracer):
    def __init__(self, log: list[tuple[Any, ...]]) -> None:
        self.log = log

    def on_send(self, peer_id: str, cmd_id: int, message: Any, size: int) -> None:
        self.log.append(("send", peer_id, cmd_id, message))

    def on_receive(self, peer_id: str, cmd_id: int, message: Any, size: int) -> None:
        self.log.append(("receive", peer_id, cmd_id, message))

    @contextmanager
    def _scope(self, peer_id: str, cmd_id: int, message: Any) -> Iterator[None]:
        self.log.append(("handler-enter", peer_id, cmd_id, message))
        try:
            yield
        finally:
            self.log.append(("handler-exit", peer_id, cmd_id, message))

    def handler_scope(self, peer_id: str, cmd_id: int, message: Any) -> Any:
        return self._scope(peer_id, cmd_id, message)


class Recorder:
    """Records lifecycle hooks; traces every link."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.trace: list[tuple[Any, ...]] = []

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

    @qrpc.hookimpl
    def qrpc_link_tracer(self, peer_id: str) -> RecordingTracer:
        return RecordingTracer(self.trace)
