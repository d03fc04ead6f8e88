"""qrpc plugin: OpenTelemetry tracing and metrics for qrpc nodes.

For every link it returns, from `qrpc_link_tracer`, a `qrpc.Tracer` that

- runs every handler call inside a span named ``qrpc.handle <cmd_id>``
  (kind SERVER) with the attributes ``qrpc.peer.id``, ``qrpc.cmd_id`` and
  ``qrpc.message.type``; spans a handler starts are its children, and an
  exception escaping the handler is recorded on it (status ERROR);
- adds a ``qrpc.send`` event (peer, cmd_id, type, framed size in bytes) to
  the *current* span whenever a message, request or reply is sent while a
  recording span is active, e.g. the caller's own span around
  ``node.send`` / ``node.request``;
- counts messages and framed bytes in both directions: ``qrpc.messages.sent``,
  ``qrpc.messages.received``, ``qrpc.bytes.sent``, ``qrpc.bytes.received``,
  with the attributes ``qrpc.cmd_id`` and ``qrpc.message.type`` (not the peer
  ID, which would make the number of series grow with the number of peers).

qrpc messages carry no trace context, so a handler span is the root of its
own trace, not a child of the sender's span (even in one process), nor of
whatever span was current when the node was started.

Two ways to use it:

- **In code**: ``Node(..., plugins=[OpenTelemetry(tracer_provider, meter_provider)])``;
  either provider may be omitted to use the global one.
- **Installed** (entry point ``otel`` in group ``qrpc``, the instance
  `plugin`): uses the global providers.  It traces a link only if, when the
  link comes up, the application has set a global tracer or meter provider
  (``opentelemetry.trace.set_tracer_provider``, or the SDK's auto
  configuration): without one, it returns no tracer and costs qrpc nothing
  per message.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Final, final

from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.metrics import Counter, MeterProvider
from opentelemetry.trace import Span, SpanKind, Tracer, TracerProvider
from opentelemetry.util.types import AttributeValue

from qrpc import BaseTracer, hookimpl

__all__ = [
    "ATTR_CMD_ID",
    "ATTR_MESSAGE_SIZE",
    "ATTR_MESSAGE_TYPE",
    "ATTR_PEER_ID",
    "EVENT_SEND",
    "METRIC_BYTES_RECEIVED",
    "METRIC_BYTES_SENT",
    "METRIC_MESSAGES_RECEIVED",
    "METRIC_MESSAGES_SENT",
    "LinkTracer",
    "OpenTelemetry",
    "plugin",
]

__version__ = "0.1.0"
INSTRUMENTATION_NAME: Final = "qrpc_otel"

ATTR_PEER_ID: Final = "qrpc.peer.id"
ATTR_CMD_ID: Final = "qrpc.cmd_id"
ATTR_MESSAGE_TYPE: Final = "qrpc.message.type"
ATTR_MESSAGE_SIZE: Final = "qrpc.message.size"
"""Framed size in bytes."""
EVENT_SEND: Final = "qrpc.send"
METRIC_MESSAGES_SENT: Final = "qrpc.messages.sent"
METRIC_MESSAGES_RECEIVED: Final = "qrpc.messages.received"
METRIC_BYTES_SENT: Final = "qrpc.bytes.sent"
METRIC_BYTES_RECEIVED: Final = "qrpc.bytes.received"

_NO_PARENT: Final = Context()  # an empty context: handler spans start a new trace


@final
class _Instruments:
    """The tracer and counters of one (tracer provider, meter provider) pair."""

    __slots__ = ("bytes_received", "bytes_sent", "received", "sent", "tracer")

    def __init__(self, tracer_provider: TracerProvider, meter_provider: MeterProvider) -> None:
        self.tracer: Tracer = tracer_provider.get_tracer(INSTRUMENTATION_NAME, __version__)
        meter = meter_provider.get_meter(INSTRUMENTATION_NAME, __version__)
        self.sent: Counter = meter.create_counter(
            METRIC_MESSAGES_SENT,
            unit="{message}",
            description="Messages, requests and replies sent",
        )
        self.received: Counter = meter.create_counter(
            METRIC_MESSAGES_RECEIVED, unit="{message}", description="Messages and requests received"
        )
        self.bytes_sent: Counter = meter.create_counter(
            METRIC_BYTES_SENT, unit="By", description="Framed bytes of messages sent"
        )
        self.bytes_received: Counter = meter.create_counter(
            METRIC_BYTES_RECEIVED, unit="By", description="Framed bytes of messages received"
        )


class LinkTracer(BaseTracer):
    """The `qrpc.Tracer` of one link (see the module docstring).

    Called per message from the node's event loop: each call is two counter
    updates, plus a span event or a span start when tracing is on.
    """

    def __init__(self, instruments: _Instruments) -> None:
        self._instruments = instruments

    def on_send(self, peer_id: str, cmd_id: int, message: Any, size: int) -> None:
        """Count the message; add a ``qrpc.send`` event to the current span if it records."""
        attributes: dict[str, AttributeValue] = {
            ATTR_CMD_ID: cmd_id,
            ATTR_MESSAGE_TYPE: type(message).__qualname__,
        }
        self._instruments.sent.add(1, attributes)
        self._instruments.bytes_sent.add(size, attributes)
        span = trace.get_current_span()
        if span.is_recording():
            span.add_event(
                EVENT_SEND, {ATTR_PEER_ID: peer_id, **attributes, ATTR_MESSAGE_SIZE: size}
            )

    def on_receive(self, peer_id: str, cmd_id: int, message: Any, size: int) -> None:
        """Count the message."""
        attributes: dict[str, AttributeValue] = {
            ATTR_CMD_ID: cmd_id,
            ATTR_MESSAGE_TYPE: type(message).__qualname__,
        }
        self._instruments.received.add(1, attributes)
        self._instruments.bytes_received.add(size, attributes)

    def handler_scope(
        self, peer_id: str, cmd_id: int, message: Any
    ) -> AbstractContextManager[Span]:
        """Start the handler's span, ``qrpc.handle <cmd_id>``, as the current span."""
        return self._instruments.tracer.start_as_current_span(
            f"qrpc.handle {cmd_id}",
            context=_NO_PARENT,
            kind=SpanKind.SERVER,
            attributes={
                ATTR_PEER_ID: peer_id,
                ATTR_CMD_ID: cmd_id,
                ATTR_MESSAGE_TYPE: type(message).__qualname__,
            },
        )


class OpenTelemetry:
    """The qrpc plugin: a `LinkTracer` for every link.

    Args:
        tracer_provider: where handler spans go; None: the global provider.
        meter_provider: where the counters go; None: the global provider.

    With both None, a link is traced only if a global tracer or meter
    provider has been set by the time it comes up.
    """

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider
        self._cache: tuple[TracerProvider, MeterProvider, _Instruments] | None = None

    @hookimpl
    def qrpc_link_tracer(self) -> LinkTracer | None:
        """Return the link's tracer, or None if there is nowhere to report to."""
        instruments = self._instruments()
        return None if instruments is None else LinkTracer(instruments)

    def _instruments(self) -> _Instruments | None:
        tracer_provider = self.tracer_provider or trace.get_tracer_provider()
        meter_provider = self.meter_provider or metrics.get_meter_provider()
        if (
            self.tracer_provider is None
            and self.meter_provider is None
            and _is_placeholder(tracer_provider)
            and _is_placeholder(meter_provider)
        ):
            return None
        cache = self._cache
        if cache is None or cache[0] is not tracer_provider or cache[1] is not meter_provider:
            cache = (tracer_provider, meter_provider, _Instruments(tracer_provider, meter_provider))
            self._cache = cache
        return cache[2]


def _is_placeholder(provider: object) -> bool:
    """True for the API's own providers (proxy or no-op): no SDK is configured.

    SDK and vendor providers live in other modules (``opentelemetry.sdk...``).
    """
    module = type(provider).__module__
    return module.startswith(("opentelemetry.trace", "opentelemetry.metrics"))


plugin: Final = OpenTelemetry()
"""The instance published in the ``qrpc`` entry-point group: global providers."""
