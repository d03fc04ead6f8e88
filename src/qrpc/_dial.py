"""`DialLoop`: keeps one bootstrap peer connected.

One task per bootstrap `Peer`: dial; on success wait (event-driven, no
polling) until that peer is gone, then dial again at once; on failure ask
the reconnect policy (`qrpc_next_reconnect_delay`, by default `Backoff`,
stopping on permanent failures) how long to wait, or whether to stop.
Every attempt and failure is reported as a `Connecting` / `ConnectFailed`
event.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from qrpc.config import Peer
from qrpc.errors import ConfigError, ConnectError, DuplicateLink
from qrpc.events import ConnectFailed, Connecting
from qrpc.policy import FailureKind, classify_failure

if TYPE_CHECKING:
    from qrpc.node import Node

__all__ = ["DialLoop"]

log = logging.getLogger("qrpc.node")


class DialLoop:
    """The dialing task of one bootstrap peer."""

    __slots__ = ("node", "peer", "peer_id", "stopped", "task")

    def __init__(self, node: Node, peer: Peer) -> None:
        self.node = node
        self.peer = peer
        self.peer_id: str | None = peer.expected_id
        "The peer's node ID, once known."
        self.stopped = False
        "True once the loop gave up (permanent failure or policy)."
        self.task = asyncio.get_running_loop().create_task(self._run(), name=f"qrpc-dial-{peer}")

    async def _run(self) -> None:
        node = self.node
        attempt = 0
        while True:
            attempt += 1
            node._emit(Connecting(self.peer, attempt))
            try:
                self.peer_id = await node._dial_once(self.peer)
            except DuplicateLink as exc:
                # The peer is connected through another link: wait for it to end.
                if exc.peer_id is not None and node.is_connected(exc.peer_id):
                    log.debug("%s is connected through another link (%s)", self.peer, exc)
                    self.peer_id = exc.peer_id
                    attempt = 0
                    await node._wait_peer_gone(exc.peer_id)
                    continue
                error: BaseException = exc
            except (ConnectError, ConfigError, OSError) as exc:
                error = exc
            except Exception as exc:  # a bug must not end the loop silently
                log.exception("dialing %s failed unexpectedly", self.peer)
                error = exc
            else:
                attempt = 0
                await node._wait_peer_gone(self.peer_id)
                continue
            delay = self._next_delay(attempt, error)
            if delay is None:
                self.stopped = True
                return
            await asyncio.sleep(delay)

    def _next_delay(self, attempt: int, error: BaseException) -> float | None:
        node = self.node
        kind = classify_failure(error)
        try:
            decision = node.plugin_manager.hook.qrpc_next_reconnect_delay(
                node=node, peer=self.peer, attempt=attempt, error=error, kind=kind
            )
        except Exception:
            log.exception("a reconnect-policy hook raised; using the built-in policy")
            decision = False if kind is FailureKind.PERMANENT else node.backoff.delay(attempt)
        delay = None if decision is False or decision is None else max(0.0, float(decision))
        node._emit(ConnectFailed(self.peer, kind, error, str(error) or type(error).__name__, delay))
        if delay is None:
            level = logging.ERROR if kind is FailureKind.PERMANENT else logging.WARNING
            log.log(level, "stopped dialing %s: %s", self.peer, error)
        else:
            log.info("dialing %s failed (%s), retrying in %.2f s", self.peer, error, delay)
        return delay

    def cancel(self) -> None:
        """Stop the loop."""
        self.task.cancel()
