"""`Tracer`: the per-link object through which plugins see every message."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Protocol

__all__ = ["BaseTracer", "Tracer"]


class Tracer(Protocol):
    """Per-link tracing object returned by `qrpc_link_tracer`.

    Called from the node's event loop, per message: keep it cheap.  A tracer
    that raises is logged and the message is handled anyway.
    """

    def on_send(self, peer_id: str, cmd_id: int, message: Any, size: int) -> None:
        """A message, request or reply was queued for `peer_id` (`size` bytes framed)."""

    def on_receive(self, peer_id: str, cmd_id: int, message: Any, size: int) -> None:
        """A message or request from `peer_id` was decoded, before its handler runs."""

    def handler_scope(
        self, peer_id: str, cmd_id: int, message: Any
    ) -> AbstractContextManager[Any] | None:
        """Return a context manager entered around the handler call, or None.

        An OpenTelemetry span (``tracer.start_as_current_span(...)``) is one.
        """


class BaseTracer:
    """A `Tracer` that does nothing; subclass it and override what you need."""

    def on_send(self, peer_id: str, cmd_id: int, message: Any, size: int) -> None:
        """See `Tracer.on_send`."""

    def on_receive(self, peer_id: str, cmd_id: int, message: Any, size: int) -> None:
        """See `Tracer.on_receive`."""

    def handler_scope(
        self, peer_id: str, cmd_id: int, message: Any
    ) -> AbstractContextManager[Any] | None:
        """See `Tracer.handler_scope`."""
        return None
