"""`Tracer`: the per-link object through which plugins see every message.

Version 2 of the tracer API (this one) hands each call one `TraceEvent`:
the peer, cmd_id, message, its request ID (0 for a one-way message) and its
headers -- so a tracer can tell a request from a message, and carry trace
context across processes in headers (W3C ``traceparent``/``tracestate``).

The version 1 methods -- ``on_send(peer_id, cmd_id, message, size)``,
``on_receive(...)``, ``handler_scope(peer_id, cmd_id, message)`` -- still
work, and are deprecated: a `BaseTracer` subclass that overrides them is
called through them (with a `DeprecationWarning` once per class), and so is
a tracer object that has only them (`adapt`).
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Mapping, MutableMapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol

__all__ = ["BaseTracer", "TraceEvent", "TraceKind", "Tracer", "adapt", "scopes"]

log = logging.getLogger("qrpc.plugins")

TraceKind = Literal["message", "request", "reply"]

_V1_METHODS: Final = ("on_send", "on_receive", "handler_scope")


@dataclass(slots=True)
class TraceEvent:
    """One message as a tracer sees it."""

    kind: TraceKind
    """A one-way message, a request, or a reply to a request."""
    peer_id: str
    """The peer it goes to or comes from."""
    cmd_id: int
    """Its command ID (0 for a reply of "no value")."""
    message: Any
    """The message itself (None for a reply of "no value")."""
    request_id: int = 0
    """The request it is or answers; 0 for a one-way message."""
    size: int = 0
    """Framed bytes (header, sections and body); 0 before it is encoded."""
    headers: Mapping[str, str | bytes] = field(default_factory=dict)
    """Its headers.  In `Tracer.sending_scope` a dict the tracer may add to
    (trace context); elsewhere read-only."""

    @property
    def outgoing_headers(self) -> MutableMapping[str, str | bytes]:
        """The headers to send, for `Tracer.sending_scope` to add to."""
        headers = self.headers
        if not isinstance(headers, dict):
            raise TypeError("headers can only be added in sending_scope")
        return headers


class Tracer(Protocol):
    """Per-link tracing object returned by `qrpc_link_tracer` (tracer API 2).

    Called from the node's event loop, per message: keep it cheap.  A tracer
    that raises is logged and the message is handled anyway.
    """

    def sending_scope(self, event: TraceEvent) -> AbstractContextManager[Any] | None:
        """Return a context manager entered around `Node.send` / `Node.request`
        on the sending side (for a request: until the reply), or None.

        Entered before the message is encoded: add trace context to
        ``event.outgoing_headers`` here (a client span is the usual scope).
        ``event.kind`` tells a send from a request; a request's
        ``request_id`` is known only from `on_sent` on."""

    def on_sent(self, event: TraceEvent) -> None:
        """A message, request or reply was queued for ``event.peer_id``."""

    def on_received(self, event: TraceEvent) -> None:
        """A message or request was decoded, before its handler runs."""

    def handling_scope(self, event: TraceEvent) -> AbstractContextManager[Any] | None:
        """Return a context manager entered around the handler call, or None.

        An OpenTelemetry span (``tracer.start_as_current_span(...)``) is one;
        its parent can come from ``event.headers``."""


class BaseTracer:
    """A `Tracer` that does nothing; subclass it and override what you need.

    Its API 2 methods call the deprecated API 1 methods, so a subclass
    written for API 1 keeps working."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__module__ == __name__:  # the API 1 adapter below
            return
        old = [name for name in _V1_METHODS if getattr(cls, name) is not getattr(BaseTracer, name)]
        if old:
            warnings.warn(
                f"{cls.__qualname__} overrides {', '.join(old)}, the tracer API 1 methods; "
                "override sending_scope, on_sent, on_received and handling_scope, which "
                "take a TraceEvent, instead",
                DeprecationWarning,
                stacklevel=2,
            )

    def sending_scope(self, event: TraceEvent) -> AbstractContextManager[Any] | None:
        """See `Tracer.sending_scope`."""
        return None

    def on_sent(self, event: TraceEvent) -> None:
        """See `Tracer.on_sent`."""
        self.on_send(event.peer_id, event.cmd_id, event.message, event.size)

    def on_received(self, event: TraceEvent) -> None:
        """See `Tracer.on_received`."""
        self.on_receive(event.peer_id, event.cmd_id, event.message, event.size)

    def handling_scope(self, event: TraceEvent) -> AbstractContextManager[Any] | None:
        """See `Tracer.handling_scope`."""
        return self.handler_scope(event.peer_id, event.cmd_id, event.message)

    def on_send(self, peer_id: str, cmd_id: int, message: Any, size: int) -> None:
        """Deprecated (tracer API 1): override `on_sent`."""

    def on_receive(self, peer_id: str, cmd_id: int, message: Any, size: int) -> None:
        """Deprecated (tracer API 1): override `on_received`."""

    def handler_scope(
        self, peer_id: str, cmd_id: int, message: Any
    ) -> AbstractContextManager[Any] | None:
        """Deprecated (tracer API 1): override `handling_scope`."""
        return None


class _V1Tracer(BaseTracer):
    """Calls a tracer object that has only the API 1 methods."""

    __slots__ = ("_inner",)

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def on_send(self, peer_id: str, cmd_id: int, message: Any, size: int) -> None:
        if hasattr(self._inner, "on_send"):
            self._inner.on_send(peer_id, cmd_id, message, size)

    def on_receive(self, peer_id: str, cmd_id: int, message: Any, size: int) -> None:
        if hasattr(self._inner, "on_receive"):
            self._inner.on_receive(peer_id, cmd_id, message, size)

    def handler_scope(
        self, peer_id: str, cmd_id: int, message: Any
    ) -> AbstractContextManager[Any] | None:
        scope = getattr(self._inner, "handler_scope", None)
        result: AbstractContextManager[Any] | None = (
            scope(peer_id, cmd_id, message) if scope is not None else None
        )
        return result


def adapt(tracer: object) -> Tracer:
    """Return `tracer` as an API 2 `Tracer`: itself if it has the API 2 methods,
    else a wrapper calling its API 1 methods (with a `DeprecationWarning`)."""
    if all(hasattr(tracer, name) for name in ("on_sent", "on_received", "handling_scope")):
        if not hasattr(tracer, "sending_scope"):
            raise TypeError(f"tracer {tracer!r} lacks sending_scope (tracer API 2)")
        return tracer  # type: ignore[return-value]
    warnings.warn(
        f"tracer {type(tracer).__qualname__} has only the tracer API 1 methods "
        "(on_send, on_receive, handler_scope); implement API 2 (see qrpc.Tracer)",
        DeprecationWarning,
        stacklevel=2,
    )
    return _V1Tracer(tracer)


def scopes(
    tracers: Sequence[Tracer], event: TraceEvent, *, sending: bool
) -> AbstractContextManager[Any]:
    """Open every tracer's `sending_scope` (or `handling_scope`) for `event` and
    return them as one context manager, to be used at once in a ``with``.

    A tracer that raises while opening its scope is logged and left out.
    Without any scope it is a shared no-op (per message, most tracers open none).
    """
    opened: list[AbstractContextManager[Any]] | None = None
    for tracer in tracers:
        try:
            scope = tracer.sending_scope(event) if sending else tracer.handling_scope(event)
        except Exception:
            _log_scope_error(sending)
            continue
        if scope is not None:
            opened = [scope] if opened is None else [*opened, scope]
    if opened is None:
        return _NO_SCOPE
    stack = contextlib.ExitStack()
    for scope in opened:
        try:
            stack.enter_context(scope)
        except Exception:
            _log_scope_error(sending)
    return stack


def _log_scope_error(sending: bool) -> None:
    which = "sending_scope" if sending else "handling_scope"
    log.exception("a tracer's %s raised; ignored", which)


_NO_SCOPE: Final = contextlib.nullcontext()
