"""`InboundCalls`: a peer's requests to this node that are not answered yet.

A request is *queued* from arrival until its handler starts, then *running*
until it is answered.  A CANCEL from the peer stops a running one (its
`Call` scope fires at once) or marks a queued one to be skipped; marks are
bounded by the number queued, so CANCELs for unknown IDs cost nothing.
`Node.drain` waits until none is in flight (``on_idle``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qrpc.runtime.link import PeerLink

__all__ = ["Call", "InboundCalls"]

Key = tuple["PeerLink", int]


class Call:
    """One running request: its deadline scope, and whether the peer cancelled it."""

    __slots__ = ("cancelled", "scope")

    def __init__(self) -> None:
        self.cancelled = False
        "The peer sent CANCEL for it."
        self.scope: asyncio.Timeout | None = None
        "The handler's deadline scope, while the handler runs in it."

    def cancel(self) -> None:
        """The peer no longer waits: end the handler's scope now."""
        self.cancelled = True
        scope = self.scope
        if scope is not None and not scope.expired():
            scope.reschedule(asyncio.get_running_loop().time())  # fires at once


class InboundCalls:
    """The peer's requests in flight (see the module docstring).

    Args:
        on_idle: called whenever the last request in flight was answered.
    """

    __slots__ = ("_cancelled", "_on_idle", "_running", "queued")

    def __init__(self, on_idle: Callable[[], None]) -> None:
        self._on_idle = on_idle
        self._running: dict[Key, Call] = {}
        self._cancelled: set[Key] = set()
        self.queued = 0
        "Requests received whose handler has not started."

    def __len__(self) -> int:
        return self.queued + len(self._running)

    def cancel(self, link: PeerLink, request_id: int) -> None:
        """The peer sent CANCEL for its request `request_id` on `link`."""
        call = self._running.get((link, request_id))
        if call is not None:
            call.cancel()
        elif len(self._cancelled) < self.queued:
            self._cancelled.add((link, request_id))

    def start(self, link: PeerLink, request_id: int) -> Call | None:
        """A request's handling begins; None if the peer cancelled it while queued.
        Call `finish` afterwards, in both cases."""
        self.queued -= 1
        key = (link, request_id)
        call = self._running[key] = Call()
        if self._cancelled and key in self._cancelled:
            self._cancelled.discard(key)
            return None
        return call

    def finish(self, link: PeerLink, request_id: int) -> None:
        """The request was answered."""
        del self._running[(link, request_id)]
        if not self.queued:
            self._cancelled.clear()
            if not self._running:
                self._on_idle()
