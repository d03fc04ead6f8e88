"""`PeerTable`: the registered peers -- at most one open link per peer ID -- and their inboxes.

The table is the one owner of "who is connected".  It changes in two places:

- `register` (called by admission once a link passed every check):
  insert, wake `wait_for` callers, emit `Connected`, run the
  ``qrpc_peer_connected`` hook, then let the link handle what the peer sent
  meanwhile;
- `_gone` (every registered link calls it once when it ends, however it
  ends): remove, fail the peer's requests, wake `wait_gone` callers (the
  dial loops), emit `Disconnected`, run ``qrpc_peer_disconnected``.

In both, the state change is complete before any event or hook runs, and
hooks are guarded (`qrpc.hooks.plugins`), so nothing a plugin raises can
leave the table half-updated.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from qrpc.codes import ErrorCode
from qrpc.errors import MessageTooLarge, PeerDisconnected, PeerWaitTimeout, QrpcError
from qrpc.hooks.plugins import Plugins
from qrpc.hooks.tracer import Tracer
from qrpc.ids import normalize_node_id
from qrpc.policy import FlapDetector
from qrpc.runtime.context import NodeHandle
from qrpc.runtime.dispatch import Inbox
from qrpc.runtime.events import Connected, Disconnected, NodeEvent, PeerFlapping
from qrpc.runtime.handlers import HandlerSpec
from qrpc.runtime.link import PeerLink
from qrpc.runtime.outbox import Outbox, encode_error
from qrpc.runtime.requests import Reply, RequestTable
from qrpc.runtime.stats import LinkTotals
from qrpc.runtime.tasks import bounded
from qrpc_codecs import Codec

__all__ = ["PeerTable"]

log = logging.getLogger("qrpc.node")


class PeerTable:
    """The registered peers of a node (see the module docstring).

    Args:
        handlers: the node's live cmd_id -> handler table.
        node: what handlers reach as ``ctx.node``.
        plugins: the node's hooks.
        requests: the node's outstanding requests.
        emit: publishes a node event.
    """

    __slots__ = (
        "_arrivals",
        "_departures",
        "_emit",
        "_flaps",
        "_handlers",
        "_inboxes",
        "_links",
        "_node",
        "_plugins",
        "_quiet",
        "_requests",
        "by_id",
        "closed_totals",
        "dialing",
        "draining",
    )

    def __init__(
        self,
        *,
        handlers: Mapping[int, HandlerSpec],
        node: NodeHandle,
        plugins: Plugins,
        requests: RequestTable,
        emit: Callable[[NodeEvent], None],
    ) -> None:
        self._handlers = handlers
        self._node = node
        self._plugins = plugins
        self._requests = requests
        self._emit = emit
        self._links: dict[str, PeerLink] = {}
        self.by_id: Mapping[str, PeerLink] = self._links
        "The open links by peer ID (read-only view, for lookups on the hot path)."
        self._inboxes: dict[str, Inbox] = {}
        self._arrivals: dict[str | None, list[asyncio.Future[str]]] = {}
        self._departures: dict[str, list[asyncio.Future[str]]] = {}
        self._flaps = FlapDetector()
        self.dialing: dict[str, PeerLink] = {}
        "Dials in flight past TLS, by the certified peer ID (for the tie-break)."
        self.draining = False
        "`drain` was called: every link, new ones too, is told DRAINING."
        self._quiet: asyncio.Future[None] | None = None  # woken when no request is in flight
        self.closed_totals = LinkTotals()
        "What the links that closed had counted (`Node.stats` totals)."

    # -- queries -------------------------------------------------------------------

    def get(self, peer_id: str) -> PeerLink | None:
        """The open link to `peer_id`, if any."""
        return self._links.get(peer_id)

    def find(self, peer_id: str) -> PeerLink | None:
        """The open link to `peer_id` in any spelling of the ID (IDs are kept in
        lower case; callers try `by_id` first, on the hot path)."""
        link = self._links.get(peer_id)
        if link is None:
            try:
                link = self._links.get(normalize_node_id(peer_id))
            except ValueError:
                return None
        return link

    def ids(self) -> list[str]:
        """IDs of the registered peers, sorted."""
        return sorted(self._links)

    def links(self) -> list[PeerLink]:
        """The open links."""
        return list(self._links.values())

    def __len__(self) -> int:
        return len(self._links)

    def __contains__(self, peer_id: object) -> bool:
        return peer_id in self._links

    # -- entering and leaving ------------------------------------------------------

    def register(self, link: PeerLink, codec: Codec, tracers: list[Tracer]) -> None:
        """Make the admitted `link` the peer's link (admission decided everything)."""
        peer_id = link.peer_hello.node_id if link.peer_hello is not None else link.peer_id
        inbox = self._inboxes.get(peer_id)
        if inbox is None or inbox.task.done():
            inbox = self._inboxes[peer_id] = Inbox(
                peer_id,
                self._handlers,
                self._node,
                on_done=self._inbox_done,
                on_crash=self._inbox_crashed,
                on_requests_done=self._requests_done,
            )
        else:
            inbox.active = True  # the old link's backlog is handled first, by the same task
        self._links[peer_id] = link
        link.open(codec, inbox=inbox, on_reply=self._reply, on_gone=self._gone, tracers=tracers)
        if self.draining:
            link.outbox.draining()
        for key in (peer_id, None):
            for waiter in self._arrivals.pop(key, []):
                if not waiter.done():
                    waiter.set_result(peer_id)
        address = link.conn.remote_address or ("?", 0)
        log.info(
            "peer %s connected (%s, %s)",
            peer_id,
            "dialed" if link.dialed else "accepted",
            address[0],
        )
        self._emit(
            Connected(peer_id, (str(address[0]), int(address[1])), link.identity, link.dialed)
        )
        flapping = self._flaps.link_up(peer_id, asyncio.get_running_loop().time())
        if flapping is not None:
            log.warning(
                "peer %s came up %d times in %.0f s: is another process using its "
                "certificate, or is its network unstable?",
                peer_id,
                flapping,
                self._flaps.window,
            )
            self._emit(PeerFlapping(peer_id, flapping, self._flaps.window))
        self._plugins.peer_connected(peer_id, link.identity)
        link.admit_held()

    def _gone(self, link: PeerLink) -> None:
        self.closed_totals.add(link.stats())  # every opened link, replaced ones too
        peer_id = link.peer_id
        if self._links.get(peer_id) is not link:
            return
        del self._links[peer_id]
        inbox = self._inboxes.get(peer_id)
        if inbox is not None:
            inbox.deactivate()
        code, reason = link.close_code, link.close_reason
        self._requests.fail_peer(peer_id, PeerDisconnected(f"link to {peer_id} closed: {reason}"))
        for waiter in self._departures.pop(peer_id, []):
            if not waiter.done():
                waiter.set_result(reason)
        log.info("peer %s disconnected (code %#x: %s)", peer_id, code, reason)
        self._emit(Disconnected(peer_id, code, reason))
        self._plugins.peer_disconnected(peer_id, code, reason)

    def _reply(self, link: PeerLink, reply: Reply) -> None:
        self._requests.resolve(link.peer_id, reply, link.decoders)

    def _inbox_done(self, inbox: Inbox) -> None:
        if self._inboxes.get(inbox.peer_id) is inbox:
            del self._inboxes[inbox.peer_id]

    def _inbox_crashed(self, peer_id: str) -> None:
        link = self._links.get(peer_id)
        if link is not None:
            link.close(ErrorCode.INTERNAL_ERROR, "internal error")

    # -- waiting -------------------------------------------------------------------

    async def wait_for(self, peer_id: str | None, timeout: float | None) -> str:
        """Wait until `peer_id` (or, if None, any peer) is registered; return its ID.

        Raises:
            PeerWaitTimeout: not registered within `timeout` seconds.
        """
        if peer_id is not None:
            if peer_id in self._links:
                return peer_id
        elif self._links:
            return next(iter(self._links))
        waiter: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._arrivals.setdefault(peer_id, []).append(waiter)
        try:
            return await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            raise PeerWaitTimeout(
                f"peer {peer_id or '(any)'} did not connect within {timeout} s"
            ) from None
        finally:
            waiters = self._arrivals.get(peer_id)
            if waiters is not None and waiter in waiters:
                waiters.remove(waiter)

    async def wait_gone(self, peer_id: str) -> str:
        """Wait until `peer_id` has no registered link; return why the last one closed."""
        loop = asyncio.get_running_loop()
        reason = "not connected"
        while peer_id in self._links:
            waiter: asyncio.Future[str] = loop.create_future()
            self._departures.setdefault(peer_id, []).append(waiter)
            reason = await waiter
        return reason

    def fail_waiters(self, error: QrpcError) -> None:
        """Fail every `wait_for` caller with `error` (the node is closing)."""
        arrivals, self._arrivals = self._arrivals, {}
        for waiters in arrivals.values():
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(error)

    # -- fan-out -------------------------------------------------------------------

    async def broadcast(self, cmd_id: int, message: msgspec.Struct, limit: int) -> int:
        """Queue `message` to every open link; return how many got it (`Node.broadcast`).

        It is encoded once per codec and checked against `limit` before
        anything is queued, so it goes to everyone or no one.  Peers whose
        queue is full are waited for after the message was queued to all.

        Raises:
            MessageTooLarge: the encoded message exceeds `limit` in some codec.
        """
        links = self.links()
        bodies: dict[str, bytes] = {}
        for link in links:
            codec = link.outbox.codec
            if codec is not None and codec.name not in bodies:
                try:
                    body = bodies[codec.name] = codec.encode(message)
                except Exception as exc:  # nothing is queued to anyone
                    raise encode_error(message, codec, exc) from exc
                if len(body) > limit:
                    raise MessageTooLarge(len(body), limit)
        full: list[Outbox] = []
        count = 0
        for link in links:
            outbox = link.outbox
            body = bodies[outbox.codec.name] if outbox.codec is not None else b""
            if len(body) > outbox.max_body:
                log.warning(
                    "broadcast skipped %s: message of %d bytes exceeds its limit",
                    link.peer_id,
                    len(body),
                )
                continue
            try:
                outbox.send_message(cmd_id, body, message)
            except PeerDisconnected:
                continue  # it is leaving: not counted
            count += 1
            link.messages_out += 1
            if not outbox.writable:
                full.append(outbox)
        if full:
            await asyncio.gather(*(o.wait_writable() for o in full), return_exceptions=True)
        return count

    # -- shutdown ------------------------------------------------------------------

    def drain(self) -> None:
        """Tell every peer, now and from now on, that this node takes no new requests."""
        self.draining = True
        for link in self.links():
            link.outbox.draining()

    async def wait_requests_done(self, deadline: float) -> bool:
        """Wait until no peer's request is queued or being handled, or until the loop
        time `deadline`; return whether they all were answered."""
        loop = asyncio.get_running_loop()
        while any(inbox.requests_in_flight for inbox in self._inboxes.values()):
            left = deadline - loop.time()
            if left <= 0:
                return False
            quiet = self._quiet = loop.create_future()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(quiet, left)
        return True

    def _requests_done(self) -> None:
        quiet = self._quiet
        if quiet is not None and not quiet.done():
            quiet.set_result(None)

    async def shutdown(self, deadline: float, keep: asyncio.Task[Any] | None) -> None:
        """Say GOODBYE to every peer and stop every inbox, within `deadline`.

        Messages queued for credit get until `deadline` to leave; each peer
        then gets GOODBYE and (same bound) the chance to answer it.  Handler
        tasks are cancelled, except `keep` (a handler closing its own node).
        """
        links = self.links()
        await bounded(deadline, *(link.outbox.drain() for link in links))
        for link in links:
            link.outbox.goodbye(ErrorCode.NO_ERROR, "shutdown")
        await bounded(deadline, *(link.outbox.farewell() for link in links))
        for link in links:
            link.close(ErrorCode.NO_ERROR, "shutdown")
        await asyncio.gather(*(inbox.stop(keep) for inbox in list(self._inboxes.values())))
