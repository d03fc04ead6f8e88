"""Outstanding requests: ID allocation, timeouts and failure fan-out.

Request IDs are per node (u32, never 0, skipping IDs in use), so a reply is
matched by ID *and* by the peer it was sent to: a peer cannot answer a
request sent to another.  A reply that arrives after its timeout finds no
entry and is dropped (logged), which is normal, not a protocol error.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

from qrpc.errors import QrpcError, RequestTimeout

__all__ = ["PendingRequest", "RequestTable"]

_MAX_ID: Final = 0xFFFF_FFFF


class PendingRequest:
    """One request waiting for its reply."""

    __slots__ = ("future", "peer_id", "reply_type", "timer")

    def __init__(self, future: asyncio.Future[Any], peer_id: str, reply_type: type | None) -> None:
        self.future = future
        self.peer_id = peer_id
        self.reply_type = reply_type
        self.timer: asyncio.TimerHandle | None = None


class RequestTable:
    """Pending requests keyed by request ID."""

    __slots__ = ("_limit", "_loop", "_next_id", "_pending")

    def __init__(self, limit: int) -> None:
        self._loop = asyncio.get_running_loop()
        self._pending: dict[int, PendingRequest] = {}
        self._next_id = 0
        self._limit = limit

    def __len__(self) -> int:
        return len(self._pending)

    def open(
        self, peer_id: str, reply_type: type | None, timeout: float
    ) -> tuple[int, PendingRequest]:
        """Allocate an ID and a future for a request to `peer_id` that times out
        after `timeout` seconds with `RequestTimeout`.

        Raises:
            QrpcError: `limit` requests are already outstanding.
        """
        if len(self._pending) >= self._limit:
            raise QrpcError(
                f"{self._limit} requests already outstanding (Limits.max_concurrent_requests)"
            )
        request_id = self._next_id
        while True:
            request_id = request_id + 1 if request_id < _MAX_ID else 1
            if request_id not in self._pending:
                break
        self._next_id = request_id
        pending = PendingRequest(self._loop.create_future(), peer_id, reply_type)
        pending.timer = self._loop.call_later(timeout, self._expire, request_id, timeout)
        self._pending[request_id] = pending
        return request_id, pending

    def pop(self, request_id: int, peer_id: str) -> PendingRequest | None:
        """Take the pending request `request_id` if it was sent to `peer_id`."""
        pending = self._pending.get(request_id)
        if pending is None or pending.peer_id != peer_id:
            return None
        del self._pending[request_id]
        if pending.timer is not None:
            pending.timer.cancel()
        return pending

    def discard(self, request_id: int) -> None:
        """Forget a request whose caller stopped waiting."""
        pending = self._pending.pop(request_id, None)
        if pending is not None and pending.timer is not None:
            pending.timer.cancel()

    def fail_peer(self, peer_id: str, error: QrpcError) -> None:
        """Fail every request sent to `peer_id` with `error`."""
        for request_id in [rid for rid, p in self._pending.items() if p.peer_id == peer_id]:
            pending = self._pending.pop(request_id)
            self._settle(pending, error)

    def fail_all(self, error: QrpcError) -> None:
        """Fail every outstanding request with `error`."""
        pending_all, self._pending = self._pending, {}
        for pending in pending_all.values():
            self._settle(pending, error)

    def _expire(self, request_id: int, timeout: float) -> None:
        pending = self._pending.pop(request_id, None)
        if pending is not None:
            pending.timer = None
            self._settle(
                pending, RequestTimeout(f"no reply from {pending.peer_id} within {timeout} s")
            )

    @staticmethod
    def _settle(pending: PendingRequest, error: QrpcError) -> None:
        if pending.timer is not None:
            pending.timer.cancel()
        if not pending.future.done():
            pending.future.set_exception(error)
