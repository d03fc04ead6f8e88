"""Peer lifecycle events and the per-subscriber queues that deliver them.

`Node.events()` returns an `EventStream`: an async iterator of every event
emitted after it was created.  Each stream has its own bounded buffer; a
consumer that keeps up loses nothing.  One that falls more than
`EventStream.capacity` events behind loses the oldest ones and is told so
by an `EventsDropped` event, never silently.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Final

from qrpc.config import PeerAddress
from qrpc.policy import FailureKind
from qrpc.tls.identity import PeerIdentity

__all__ = [
    "Connected",
    "Connecting",
    "ConnectFailed",
    "Disconnected",
    "EventStream",
    "EventsDropped",
    "NodeEvent",
    "PeerFlapping",
]

DEFAULT_CAPACITY: Final = 1024  # events buffered per stream


@dataclass(frozen=True, slots=True)
class Connecting:
    """A dial attempt to a bootstrap peer started."""

    peer: PeerAddress
    """The bootstrap entry being dialed."""
    attempt: int
    """1 for the first attempt after a success or start, then 2, 3, ..."""


@dataclass(frozen=True, slots=True)
class Connected:
    """A peer completed TLS and HELLO and is now reachable by its ID."""

    peer_id: str
    """The peer's node ID."""
    address: tuple[str, int]
    """The peer's UDP address (host, port)."""
    identity: PeerIdentity
    """What its certificate proved."""
    dialed: bool
    """True if this node dialed the link, False if it accepted it."""


@dataclass(frozen=True, slots=True)
class Disconnected:
    """A peer's link ended; `send` to it raises `PeerNotFound` until it is back."""

    peer_id: str
    """The peer's node ID."""
    code: int
    """The close `ErrorCode` (0 for a graceful GOODBYE)."""
    reason: str
    """Short reason, for logs."""


@dataclass(frozen=True, slots=True)
class ConnectFailed:
    """A dial attempt failed."""

    peer: PeerAddress
    """The bootstrap entry that failed."""
    kind: FailureKind
    """TRANSIENT (will retry) or PERMANENT (the dial loop stopped)."""
    error: BaseException
    """The exception, e.g. `PeerAuthError` or `ConnectTimeout`."""
    detail: str
    """A readable description."""
    retry_in: float | None
    """Seconds until the next attempt, or None if the loop stopped."""


@dataclass(frozen=True, slots=True)
class PeerFlapping:
    """One peer ID keeps coming up: `links` links within `seconds` (logged as a WARNING).

    Usually two processes started with the same certificate, each replacing
    the other's link; or a peer whose path keeps breaking.
    """

    peer_id: str
    """The peer's node ID."""
    links: int
    """Links that came up within the window."""
    seconds: float
    """The window, in seconds."""


@dataclass(frozen=True, slots=True)
class EventsDropped:
    """This stream fell behind and `count` older events were discarded."""

    count: int


NodeEvent = Connecting | Connected | Disconnected | ConnectFailed | PeerFlapping | EventsDropped


class EventStream:
    """An async iterator over node events; see the module docstring.

    Stops when the node is closed (after the remaining events) or when
    `close()` is called.
    """

    __slots__ = ("_buffer", "_closed", "_dropped", "_hub", "_waiter", "capacity")

    def __init__(self, hub: EventHub, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = capacity
        self._hub = hub
        self._buffer: deque[NodeEvent] = deque()
        self._dropped = 0
        self._closed = False
        self._waiter: asyncio.Future[None] | None = None

    def _push(self, event: NodeEvent) -> None:
        if len(self._buffer) >= self.capacity:
            self._buffer.popleft()
            self._dropped += 1
        self._buffer.append(event)
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def close(self) -> None:
        """Stop the stream; iteration ends once buffered events are consumed."""
        self._closed = True
        self._hub.unsubscribe(self)
        self._wake()

    def __aiter__(self) -> AsyncIterator[NodeEvent]:
        return self

    async def __anext__(self) -> NodeEvent:
        while True:
            if self._dropped:
                count, self._dropped = self._dropped, 0
                return EventsDropped(count)
            if self._buffer:
                return self._buffer.popleft()
            if self._closed:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    async def next(self, timeout: float) -> NodeEvent:
        """Return the next event, waiting at most `timeout` seconds.

        Raises:
            TimeoutError: nothing arrived in time.
            StopAsyncIteration: the stream is closed and empty.
        """
        return await asyncio.wait_for(self.__anext__(), timeout)


class EventHub:
    """Fans events out to every open `EventStream` (the node owns one)."""

    __slots__ = ("_closed", "_streams")

    def __init__(self) -> None:
        self._streams: list[EventStream] = []
        self._closed = False

    def subscribe(self, capacity: int = DEFAULT_CAPACITY) -> EventStream:
        """Open a stream that receives every later event."""
        stream = EventStream(self, capacity)
        if self._closed:
            stream._closed = True
        else:
            self._streams.append(stream)
        return stream

    def unsubscribe(self, stream: EventStream) -> None:
        """Forget `stream`."""
        if stream in self._streams:
            self._streams.remove(stream)

    def emit(self, event: NodeEvent) -> None:
        """Deliver `event` to every stream."""
        for stream in self._streams:
            stream._push(event)

    def close(self) -> None:
        """End every stream (after its buffered events)."""
        self._closed = True
        for stream in list(self._streams):
            stream.close()
