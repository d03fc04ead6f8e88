"""Outstanding requests: ID allocation, reply decoding and failure fan-out.

Request IDs are per node (u32, never 0, skipping IDs in use), so a reply is
matched by ID *and* by the peer it was sent to: a peer cannot answer a
request sent to another.  A reply that arrives after its caller stopped
waiting finds no entry and is dropped (logged), which is normal, not a
protocol error.  The table holds no timers: the caller's deadline bounds
the whole `request()` call, queueing for room included (`Node.request`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any, Final

import msgspec

from qrpc.codes import RemoteErrorCode
from qrpc.errors import QrpcError, RemoteError, RequestLimitReached
from qrpc.wire.events import ErrorReceived, ResponseReceived

__all__ = ["PendingRequest", "Reply", "RequestTable"]

log = logging.getLogger("qrpc.node")
_MAX_ID: Final = 0xFFFF_FFFF
Reply = ResponseReceived | ErrorReceived
Decoders = Mapping[int, Callable[[bytes], msgspec.Struct]]


class PendingRequest:
    """One request waiting for its reply."""

    __slots__ = ("future", "peer_id", "reply_type")

    def __init__(self, future: asyncio.Future[Any], peer_id: str, reply_type: type | None) -> None:
        self.future = future
        self.peer_id = peer_id
        self.reply_type = reply_type


class RequestTable:
    """Pending requests keyed by request ID.

    Args:
        limit: requests that may be outstanding at once.
    """

    __slots__ = ("_limit", "_loop", "_next_id", "_pending")

    def __init__(self, limit: int) -> None:
        self._loop = asyncio.get_running_loop()
        self._pending: dict[int, PendingRequest] = {}
        self._next_id = 0
        self._limit = limit

    def __len__(self) -> int:
        return len(self._pending)

    def open(self, peer_id: str, reply_type: type | None) -> tuple[int, asyncio.Future[Any]]:
        """Allocate an ID and a future for a request to `peer_id`.

        The caller must `discard` the ID when it stops waiting.

        Raises:
            RequestLimitReached: `limit` requests are already outstanding.
        """
        if len(self._pending) >= self._limit:
            raise RequestLimitReached(
                f"{self._limit} requests already outstanding (Limits.max_concurrent_requests)"
            )
        request_id = self._next_id
        while True:
            request_id = request_id + 1 if request_id < _MAX_ID else 1
            if request_id not in self._pending:
                break
        self._next_id = request_id
        future = self._loop.create_future()
        self._pending[request_id] = PendingRequest(future, peer_id, reply_type)
        return request_id, future

    def discard(self, request_id: int) -> None:
        """Forget a request whose caller stopped waiting."""
        self._pending.pop(request_id, None)

    def resolve(self, peer_id: str, reply: Reply, decoders: Decoders) -> None:
        """Settle the request `reply` answers, if `peer_id` was asked it.

        A RESPONSE is decoded with `decoders` (the link's codec); a reply
        that does not decode, or is not the type the caller expects, fails
        the request with `RemoteError` (code BAD_REPLY).
        """
        pending = self._pending.get(reply.request_id)
        if pending is None or pending.peer_id != peer_id:
            log.debug("late or unknown reply %d from %s dropped", reply.request_id, peer_id)
            return
        del self._pending[reply.request_id]
        future = pending.future
        if future.done():
            return
        if isinstance(reply, ErrorReceived):
            future.set_exception(RemoteError(reply.code, reply.text))
            return
        try:
            value = _decode(reply, decoders, pending.reply_type)
        except RemoteError as exc:
            future.set_exception(exc)
        else:
            future.set_result(value)

    def fail_peer(self, peer_id: str, error: QrpcError) -> None:
        """Fail every request sent to `peer_id` with `error`."""
        for request_id in [rid for rid, p in self._pending.items() if p.peer_id == peer_id]:
            _settle(self._pending.pop(request_id), error)

    def fail_all(self, error: QrpcError) -> None:
        """Fail every outstanding request with `error`."""
        pending_all, self._pending = self._pending, {}
        for pending in pending_all.values():
            _settle(pending, error)


def _decode(reply: ResponseReceived, decoders: Decoders, expected: type | None) -> Any:
    if not reply.cmd_id:
        value = None
    else:
        decode = decoders.get(reply.cmd_id)
        if decode is None:
            raise RemoteError(
                RemoteErrorCode.BAD_REPLY, f"reply cmd_id {reply.cmd_id} is not registered"
            )
        try:
            value = decode(reply.body)
        except Exception as exc:  # a third-party codec may raise anything
            raise RemoteError(RemoteErrorCode.BAD_REPLY, f"undecodable reply: {exc}") from None
    if expected is not None and not isinstance(value, expected):
        raise RemoteError(
            RemoteErrorCode.BAD_REPLY,
            f"expected a {expected.__name__} reply, got {type(value).__name__}",
        )
    return value


def _settle(pending: PendingRequest, error: QrpcError) -> None:
    if not pending.future.done():
        pending.future.set_exception(error)
