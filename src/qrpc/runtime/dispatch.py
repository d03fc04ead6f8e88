"""`Inbox`: one peer's ordered backlog and the one supervised task that handles it.

**One backlog per peer, not per link.**  Messages of one peer are handled
in arrival order by one task, so a slow handler stalls only its own peer.
When a peer's link is replaced (it reconnected, or restarted), the new link
feeds the same inbox: what the old link had not delivered is handled first,
and there are never two handler loops for one peer.  The task ends once the
peer has no link and its backlog is empty.

**Credit.**  Credit goes back to the link a message came on only after its
handler finished, in batches (`PeerLink.consumed`), which bounds what a
peer can make this node buffer.  Handlers registered with
``concurrency=N`` run up to N at once per peer, each in its own task.

**Deadlines and cancellation.**  A request runs under its deadline (the
time the requester still waited, counted from arrival): at the deadline its
handler is cancelled and the requester gets ERROR DEADLINE_EXCEEDED.  A
CANCEL from the requester cancels a running handler, or skips a queued
request; either way the request is answered, with ERROR CANCELLED, so every
request gets exactly one answer.  One-way messages have neither.

**Supervision.**  Nothing a handler, tracer or codec raises ends the task:
a request's failure becomes an ERROR for the requester, a one-way message's
is logged.  `CancelledError` propagates only when the task itself is being
cancelled (`stop()`); a handler that lets one escape on its own counts as a
failed handler.  If the task ever ends otherwise, `on_crash(peer_id)` is
called so the owner closes the link (INTERNAL_ERROR) -- never a live but
deaf link.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, cast

from qrpc.codes import RemoteErrorCode
from qrpc.hooks.tracer import TraceEvent, Tracer, scopes
from qrpc.runtime.answers import handler_failed, handler_stopped
from qrpc.runtime.calls import Call, InboundCalls
from qrpc.runtime.context import Context, NodeHandle
from qrpc.runtime.handlers import HandlerSpec
from qrpc.runtime.link import Inbound, PeerLink
from qrpc.runtime.tasks import STOP_GRACE, cancel_within
from qrpc.wire.events import RequestReceived
from qrpc.wire.sections import EMPTY_HEADERS

__all__ = ["Inbox"]

log = logging.getLogger("qrpc.node")


class Inbox:
    """The backlog of one peer (see the module docstring).

    Args:
        peer_id: the peer's node ID.
        handlers: the node's live cmd_id -> handler table.
        node: what handlers reach as ``ctx.node``.
        on_done: called with this inbox when its task has ended.
        on_crash: called with the peer ID if the task failed (a bug).
        on_requests_done: called whenever the last request in flight was answered.
    """

    __slots__ = (
        "_backlog",
        "_calls",
        "_handlers",
        "_node",
        "_on_crash",
        "_shared_context",
        "_slots",
        "_tail_link",
        "_tasks",
        "_wake",
        "active",
        "peer_id",
        "task",
    )

    def __init__(
        self,
        peer_id: str,
        handlers: Mapping[int, HandlerSpec],
        node: NodeHandle,
        *,
        on_done: Callable[[Inbox], None],
        on_crash: Callable[[str], None],
        on_requests_done: Callable[[], None],
    ) -> None:
        self.peer_id = peer_id
        self.active = True
        "True while the peer has a registered link; the task ends when False and idle."
        self._handlers = handlers
        self._node = node
        self._on_crash = on_crash
        self._backlog: deque[PeerLink | Inbound] = deque()
        self._calls = InboundCalls(on_requests_done)
        self._tail_link: PeerLink | None = None
        self._wake: asyncio.Future[None] | None = None
        self._slots: dict[int, asyncio.Semaphore] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._shared_context: tuple[PeerLink, Context] | None = None
        self.task = asyncio.get_running_loop().create_task(
            self._run(), name=f"qrpc-dispatch-{peer_id}"
        )
        self.task.add_done_callback(lambda task: self._ended(task, on_done))

    def __repr__(self) -> str:
        return f"<Inbox {self.peer_id} {len(self._backlog)} queued>"

    # -- fed by links (MessageSink) ------------------------------------------------

    def put(self, link: PeerLink, events: list[Inbound], requests: int) -> None:
        """Queue messages and requests (`requests` of `events` are) received on
        `link`, and wake the task."""
        backlog = self._backlog
        if link is not self._tail_link:  # a marker: the events after it came on `link`
            self._tail_link = link
            backlog.append(link)
        backlog.extend(events)
        self._calls.queued += requests
        self.wake()

    def cancel(self, link: PeerLink, request_id: int) -> None:
        """The peer no longer waits for its request `request_id` sent on `link`."""
        self._calls.cancel(link, request_id)

    @property
    def requests_in_flight(self) -> int:
        """Requests of the peer queued or being handled (not yet answered)."""
        return len(self._calls)

    def wake(self) -> None:
        """Let the task look at the backlog again."""
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    def deactivate(self) -> None:
        """The peer has no registered link any more: end once the backlog is handled."""
        self.active = False
        self.wake()

    # -- the task ------------------------------------------------------------------

    async def _run(self) -> None:
        backlog = self._backlog
        handlers = self._handlers
        loop = asyncio.get_running_loop()
        link: PeerLink = None  # type: ignore[assignment]  # put() queues a link first
        step = 0
        credit = 0  # bytes handled on `link` and not yet granted back
        while True:
            if not backlog:
                if credit:
                    link.outbox.grant(credit, idle=True)
                    credit = 0
                if not self.active:
                    return
                self._wake = loop.create_future()
                await self._wake
                self._wake = None
                continue
            item = backlog.popleft()
            if type(item) is PeerLink:  # what follows came on this link
                if credit:
                    link.outbox.grant(credit, idle=False)
                    credit = 0
                link = item
                step = link.credit_step
                continue
            event: Inbound = item  # type: ignore[assignment]
            spec = handlers.get(event.cmd_id)
            if spec is not None and spec.concurrency > 1:
                await self._start_concurrent(spec, link, event)
                continue
            try:
                if event.request_id:
                    await self._handle_request(link, event, spec)
                elif spec is None or not spec.inline or not self._handle_inline(link, event, spec):
                    await self._handle(link, event, spec, None)
            except BaseException as exc:
                self._unexpected(link, event, exc)
            credit += event.size
            if credit >= step:
                link.outbox.grant(credit, idle=not backlog)
                credit = 0

    async def _start_concurrent(self, spec: HandlerSpec, link: PeerLink, event: Inbound) -> None:
        slots = self._slots.get(event.cmd_id)
        if slots is None:
            slots = self._slots[event.cmd_id] = asyncio.Semaphore(spec.concurrency)
        await slots.acquire()
        task = asyncio.get_running_loop().create_task(
            self._run_concurrent(spec, link, event, slots), name=f"qrpc-handler-{self.peer_id}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_concurrent(
        self, spec: HandlerSpec, link: PeerLink, event: Inbound, slots: asyncio.Semaphore
    ) -> None:
        try:
            if event.request_id:
                await self._handle_request(link, event, spec)
            else:
                await self._handle(link, event, spec, None)
        except BaseException as exc:
            self._unexpected(link, event, exc)
        finally:
            slots.release()
            link.outbox.grant(event.size, idle=not self._backlog)

    def _unexpected(self, link: PeerLink, event: Inbound, exc: BaseException) -> None:
        """Something escaped `_handle`: re-raise the task's own cancellation (and
        KeyboardInterrupt and the like); log anything else and answer a request."""
        if isinstance(exc, asyncio.CancelledError):
            if _being_cancelled():
                raise exc  # stop(): the node is shutting down
        elif not isinstance(exc, Exception):
            raise exc
        log.error("handling cmd_id %d from %s failed", event.cmd_id, link.peer_id, exc_info=exc)
        if event.request_id:
            link.outbox.fail_request(
                event.request_id, RemoteErrorCode.HANDLER_ERROR, "internal error"
            )

    async def _handle_request(
        self, link: PeerLink, event: Inbound, spec: HandlerSpec | None
    ) -> None:
        request_id = event.request_id
        call = self._calls.start(link, request_id)
        try:
            if call is None:
                text = "the requester cancelled the request before it started"
                link.outbox.fail_request(request_id, RemoteErrorCode.CANCELLED, text)
            else:
                await self._handle(link, event, spec, call)
        finally:
            self._calls.finish(link, request_id)

    def _handle_inline(self, link: PeerLink, event: Inbound, spec: HandlerSpec) -> bool:
        """Run a plain ``def`` handler for a plain one-way message without a coroutine;
        False if `_handle` must (headers, tracers, an undecodable body: its checks)."""
        decode = link.decoders.get(event.cmd_id)
        if decode is None or event.headers or link.outbox.tracers:
            return False
        try:
            message = decode(event.body)
        except Exception:  # _handle decodes it again and reports the error
            return False
        shared = self._shared_context
        if shared is None or shared[0] is not link:
            shared = self._shared_context = (link, Context(link, 0, self._node))
        try:
            result = spec.fn(shared[1], message)
        except Exception as exc:
            handler_failed(shared[1], link, event.cmd_id, exc)
            return True
        if result is not None:
            log.debug("handler for one-way cmd_id %d returned a value; ignored", event.cmd_id)
        return True

    async def _handle(
        self, link: PeerLink, event: Inbound, spec: HandlerSpec | None, call: Call | None
    ) -> None:
        """Decode, trace and run one message or request (`call` tracks a request)."""
        cmd_id = event.cmd_id
        request_id = event.request_id
        decode = link.decoders.get(cmd_id)
        if decode is None:
            text = f"cmd_id {cmd_id} is not registered"
            self._refuse(link, request_id, RemoteErrorCode.UNKNOWN_COMMAND, text)
            return
        try:
            message = decode(event.body)
        except Exception as exc:  # CodecError, or anything a third-party codec raises
            self._refuse(link, request_id, RemoteErrorCode.DECODE_ERROR, f"cmd_id {cmd_id}: {exc}")
            return
        tracers = link.outbox.tracers
        traced: TraceEvent | None = None
        if tracers:
            traced = TraceEvent(
                "request" if request_id else "message",
                link.peer_id,
                cmd_id,
                message,
                request_id,
                event.size,
                event.headers or EMPTY_HEADERS,
            )
            for tracer in tracers:
                try:
                    tracer.on_received(traced)
                except Exception:
                    log.exception("a tracer's on_received raised; ignored")
        if spec is None:
            text = f"no handler for cmd_id {cmd_id}"
            self._refuse(link, request_id, RemoteErrorCode.NO_HANDLER, text)
            return
        headers = event.headers
        if call is not None:
            expires = cast("RequestReceived", event).expires
            if expires is not None and expires <= asyncio.get_running_loop().time():
                text = "the deadline passed before the handler started"
                link.outbox.fail_request(request_id, RemoteErrorCode.DEADLINE_EXCEEDED, text)
                return
            ctx = Context(link, request_id, self._node, headers or EMPTY_HEADERS, expires)
        elif headers:
            ctx = Context(link, 0, self._node, headers, None)
        else:  # one-way messages of one link share a context: it holds nothing per message
            shared = self._shared_context
            if shared is None or shared[0] is not link:
                shared = self._shared_context = (link, Context(link, 0, self._node))
            ctx = shared[1]
        try:
            if call is not None:
                try:
                    async with asyncio.timeout_at(ctx.expires) as call.scope:
                        if traced is not None:
                            result = await self._traced(spec, ctx, tracers, traced)
                        else:
                            result = spec.fn(ctx, message)
                            if not spec.inline:
                                result = await result
                finally:
                    expired = call.scope is not None and call.scope.expired()
                    call.scope = None
            elif traced is not None:
                result = await self._traced(spec, ctx, tracers, traced)
            else:
                result = spec.fn(ctx, message)
                if not spec.inline:
                    result = await result
        except asyncio.CancelledError as exc:
            if _being_cancelled():
                raise
            handler_failed(ctx, link, cmd_id, exc)
            return
        except Exception as exc:
            if call is not None and expired:
                handler_stopped(ctx, link, call.cancelled)
                return
            handler_failed(ctx, link, cmd_id, exc)
            return
        if not request_id:
            if result is not None:
                log.debug("handler for one-way cmd_id %d returned a value; ignored", cmd_id)
            return
        ctx.handler_returned()
        if not ctx.replied:
            link.outbox.respond(request_id, result)

    @staticmethod
    async def _traced(
        spec: HandlerSpec, ctx: Context, tracers: list[Tracer], event: TraceEvent
    ) -> Any:
        with scopes(tracers, event, sending=False):
            result = spec.fn(ctx, event.message)
            return result if spec.inline else await result

    def _refuse(self, link: PeerLink, request_id: int, code: RemoteErrorCode, text: str) -> None:
        if request_id:
            link.outbox.fail_request(request_id, code, text)
        else:
            log.warning("dropped a message from %s: %s", link.peer_id, text)

    # -- ending --------------------------------------------------------------------

    def _ended(self, task: asyncio.Task[None], on_done: Callable[[Inbox], None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "the dispatcher of %s failed; closing its link",
                self.peer_id,
                exc_info=task.exception(),
            )
            self._on_crash(self.peer_id)
        on_done(self)

    async def stop(self, keep: asyncio.Task[Any] | None = None) -> None:
        """Cancel the task and the handler tasks, except `keep` (the task of a
        handler that is closing the node itself), and wait for them a bounded time."""
        tasks = [t for t in (self.task, *self._tasks) if t is not keep]
        await cancel_within(tasks, STOP_GRACE, f"handlers of {self.peer_id}")


def _being_cancelled() -> bool:
    """Whether the current task was asked to cancel (as opposed to user code raising
    `CancelledError` on its own)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
