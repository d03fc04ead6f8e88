"""Seeing what plugins and nodes did: a recording tracer, a hook-call recorder,
and loading a plugin the way an installed package would be loaded.

- `RecordingTracer`: a plugin whose tracer records every message a node
  sends, receives and handles (`TraceRecord`);
- `HookRecorder`: records every hook call of one node (name, arguments,
  what the impls returned) and asserts on them, or waits for one;
- `entry_point_plugin`: the object an installed package declares under the
  ``qrpc`` entry-point group -- tests that the packaging is right.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Literal

import pluggy

from qrpc.hooks.manager import ENTRY_POINT_GROUP
from qrpc.hooks.specs import hookimpl
from qrpc.hooks.tracer import BaseTracer, TraceEvent

if TYPE_CHECKING:
    from qrpc.node import Node

__all__ = ["HookCall", "HookRecorder", "RecordingTracer", "TraceRecord", "entry_point_plugin"]

TraceKind = Literal["send", "receive", "handler-enter", "handler-exit"]


@dataclass(frozen=True, slots=True)
class TraceRecord:
    """One message seen by a `RecordingTracer`."""

    kind: TraceKind
    peer_id: str
    cmd_id: int
    message: Any
    size: int | None
    "Framed bytes for send/receive; None around the handler."
    request_id: int = 0
    "The request it is or answers; 0 for a one-way message."
    message_kind: str = "message"
    "What it is: a one-way message, a request or a reply."
    headers: Mapping[str, str | bytes] = field(default_factory=dict)
    "Its headers (a copy)."


class RecordingTracer(BaseTracer):
    """Traces every link of the nodes it is given to as a plugin::

        tracer = RecordingTracer()
        a = await net.node(plugins=[tracer])
        ...
        assert [r.message for r in tracer.of("send")] == [Ping("hi")]

    Replies are recorded as "send" on the answering side (``request_id`` says
    which request; a reply of "no value" has cmd_id 0 and message None).
    """

    def __init__(self) -> None:
        self.records: list[TraceRecord] = []
        "Everything seen, in order."

    @hookimpl
    def qrpc_link_tracer(self, peer_id: str) -> RecordingTracer:
        """Trace every link (the hook impl that makes this object a plugin)."""
        return self

    def of(self, kind: TraceKind, peer_id: str | None = None) -> list[TraceRecord]:
        """The records of one kind, optionally only for `peer_id`."""
        return [
            r for r in self.records if r.kind == kind and (peer_id is None or r.peer_id == peer_id)
        ]

    def _record(self, kind: TraceKind, event: TraceEvent, size: int | None) -> None:
        self.records.append(
            TraceRecord(
                kind,
                event.peer_id,
                event.cmd_id,
                event.message,
                size,
                event.request_id,
                event.kind,
                dict(event.headers),
            )
        )

    def on_sent(self, event: TraceEvent) -> None:
        """Record a message, request or reply queued for ``event.peer_id``."""
        self._record("send", event, event.size)

    def on_received(self, event: TraceEvent) -> None:
        """Record a message or request decoded from ``event.peer_id``."""
        self._record("receive", event, event.size)

    def handling_scope(self, event: TraceEvent) -> Any:
        """Record entering and leaving the handler."""
        return self._scope(event)

    @contextmanager
    def _scope(self, event: TraceEvent) -> Iterator[None]:
        self._record("handler-enter", event, None)
        try:
            yield
        finally:
            self._record("handler-exit", event, None)


@dataclass(frozen=True, slots=True)
class HookCall:
    """One call of a hook, as the node made it."""

    name: str
    plugins: tuple[object, ...]
    "The plugins whose impls ran in this call (modules or instances)."
    kwargs: Mapping[str, Any]
    "The arguments (hooks are called with keywords only)."
    result: Any
    "What the impls returned: a list, or one value for firstresult hooks."
    error: BaseException | None
    "What the call raised (qrpc guards hook calls, so the node went on)."

    def matches(self, expected: Mapping[str, Any]) -> bool:
        """Whether every argument in `expected` equals the recorded one."""
        return all(name in self.kwargs and self.kwargs[name] == v for name, v in expected.items())


class HookRecorder:
    """Records every hook call a node makes from now on (use as a context manager,
    or call `close`).

    Observer hooks and ``qrpc_link_tracer`` are called one plugin at a time,
    so they are recorded once per implementing plugin (see `HookCall.plugins`),
    and not at all when no plugin implements them.  ``qrpc_register_codecs``
    runs inside ``Node(...)``, before a recorder can attach::

        with HookRecorder(node) as hooks:
            await net.link(node, other)
            hooks.assert_called("qrpc_peer_connected", peer_id=other.id)
    """

    def __init__(self, node: Node) -> None:
        self.calls: list[HookCall] = []
        "Every call recorded, in order."
        self._waiters: list[tuple[str, Mapping[str, Any], asyncio.Future[HookCall]]] = []
        self._undo = node.plugin_manager.add_hookcall_monitoring(self._before, self._after)

    def __enter__(self) -> HookRecorder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop recording (the calls stay readable)."""
        self._undo()
        self._undo = _nothing

    def of(self, name: str, **expected: Any) -> list[HookCall]:
        """The calls of hook `name` whose arguments include `expected`."""
        return [c for c in self.calls if c.name == name and c.matches(expected)]

    def assert_called(self, name: str, **expected: Any) -> HookCall:
        """Return the first call of `name` with arguments `expected`.

        Raises:
            AssertionError: there is none; the message lists the calls of `name` seen.
        """
        found = self.of(name, **expected)
        if not found:
            raise AssertionError(self._missing(name, expected))
        return found[0]

    def assert_not_called(self, name: str, **expected: Any) -> None:
        """Raise AssertionError (listing them) if `name` was called with `expected`."""
        found = self.of(name, **expected)
        if found:
            raise AssertionError(f"{name} was called {len(found)} time(s) with {expected}: {found}")

    async def wait_for(self, name: str, *, timeout: float = 5.0, **expected: Any) -> HookCall:
        """Wait until `name` is called with arguments `expected` (or was already).

        Raises:
            AssertionError: not within `timeout` seconds; lists the calls seen.
        """
        found = self.of(name, **expected)
        if found:
            return found[0]
        waiter: asyncio.Future[HookCall] = asyncio.get_running_loop().create_future()
        entry = (name, expected, waiter)
        self._waiters.append(entry)
        try:
            return await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            raise AssertionError(f"after {timeout} s: {self._missing(name, expected)}") from None
        finally:
            if entry in self._waiters:
                self._waiters.remove(entry)

    def _missing(self, name: str, expected: Mapping[str, Any]) -> str:
        seen = [dict(c.kwargs) for c in self.calls if c.name == name]
        return f"no call of {name} with {expected}; its calls: {seen or 'none'}"

    def _before(
        self, hook_name: str, hook_impls: Sequence[pluggy.HookImpl], kwargs: Mapping[str, Any]
    ) -> None:
        pass

    def _after(
        self,
        outcome: pluggy.Result[Any],
        hook_name: str,
        hook_impls: Sequence[pluggy.HookImpl],
        kwargs: Mapping[str, Any],
    ) -> None:
        error = outcome.exception
        result = None if error is not None else outcome.get_result()
        plugins = tuple(i.plugin for i in hook_impls if not (i.wrapper or i.hookwrapper))
        call = HookCall(hook_name, plugins, dict(kwargs), result, error)
        self.calls.append(call)
        for name, expected, waiter in list(self._waiters):
            if name == hook_name and call.matches(expected) and not waiter.done():
                waiter.set_result(call)


def _nothing() -> None:
    pass


def entry_point_plugin(name: str) -> object:
    """Load the plugin an installed distribution declares as `name` in the ``qrpc``
    entry-point group -- what ``Node(autoload_plugins=True)`` would register.

    Raises:
        LookupError: no installed distribution declares `name`.
    """
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            return ep.load()
    known = sorted(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))
    raise LookupError(f"no {ENTRY_POINT_GROUP!r} entry point named {name!r}; installed: {known}")
