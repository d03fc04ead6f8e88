"""qrpc plugin: OpenTelemetry tracing and metrics for qrpc nodes.

For every link it returns, from `qrpc_link_tracer`, a `qrpc.Tracer` (tracer
API 2) that

- runs every ``node.send`` / ``node.request`` (and ``ctx.send`` /
  ``ctx.request`` in handlers) inside a span of kind CLIENT, named
  ``qrpc.send <cmd_id>`` for a one-way message and ``qrpc.request <cmd_id>``
  for a request, a child of the span current at the call.  A request's span
  lasts until its reply: a `qrpc.RemoteError`, `qrpc.RequestTimeout` or any
  other exception ending the call is recorded on it (status ERROR);
- sends the W3C trace context of that span with the message, in the headers
  ``traceparent`` and ``tracestate`` (the keys qrpc sets aside for tracing);
- runs every handler call inside a span of kind SERVER named
  ``qrpc.handle <cmd_id>``, whose parent is the trace context that came in
  those headers -- so the callee's handler span is a child of the caller's
  client span, across processes.  A message without (valid, str) trace
  context starts a new trace; the span current when the node was started
  never becomes a parent.  The handler runs in the context extracted from
  the headers (baggage too, if the propagator carries it), so spans it starts
  are children of its span; an exception escaping the handler is recorded on
  it (status ERROR);
- counts messages and framed bytes in both directions: ``qrpc.messages.sent``,
  ``qrpc.messages.received``, ``qrpc.bytes.sent``, ``qrpc.bytes.received``,
  with the attributes ``qrpc.cmd_id`` and ``qrpc.message.type`` (not the peer
  ID, which would make the number of series grow with the number of peers).
  Replies count as sent messages.  Histograms ``qrpc.request.duration`` and
  ``qrpc.handler.duration`` (seconds) time requests and handler calls.

Span attributes: ``qrpc.peer.id``, ``qrpc.cmd_id``, ``qrpc.message.type``
and ``qrpc.message.size`` (framed bytes) on both kinds, and ``qrpc.request.id``
on the client and server spans of requests.  (A client span gets its size and
request ID once the message is queued: a request that fails before that has
neither.)  The ``qrpc.send`` span event of version 0.1 is no longer added --
the client span says what it said; `EVENT_SEND` is deprecated.

**Propagation format.**  By default the plugin injects and extracts with the
W3C Trace Context propagator itself, *not* with the globally configured
propagator (``OTEL_PROPAGATORS``, ``opentelemetry.propagate``): both ends of a
link must speak the same format, and a process-wide setting chosen for HTTP
should not change qrpc's wire format (nor add, say, ``baggage`` to every
message).  To use another, pass ``OpenTelemetry(propagator=...)``, e.g.
``opentelemetry.propagate.get_global_textmap()`` (read when you pass it).
Keys it writes are lower-cased to fit qrpc's header rules (``a-z 0-9 - _ .``,
as gRPC metadata) and looked up lower-cased; a key that still breaks the
rules is not sent.  Only str header values are read: a bytes ``traceparent``
is ignored.  While tracing is on, trace context the application put in
``headers=`` itself is replaced by that of the client span.

`Node.broadcast` does not go through ``sending_scope`` in qrpc: broadcast
messages get no client span and carry no trace context (their handler spans
start new traces).

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

import logging
import re
import time
import warnings
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any, Final, final

from opentelemetry import context as otel_context, metrics, trace
from opentelemetry.context import Context
from opentelemetry.metrics import Counter, Histogram, MeterProvider
from opentelemetry.propagators.textmap import Getter, Setter, TextMapPropagator
from opentelemetry.trace import Span, SpanKind, Tracer, TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

from qrpc import BaseTracer, TraceEvent, hookimpl

__all__ = [
    "ATTR_CMD_ID",
    "ATTR_MESSAGE_SIZE",
    "ATTR_MESSAGE_TYPE",
    "ATTR_PEER_ID",
    "ATTR_REQUEST_ID",
    "METRIC_BYTES_RECEIVED",
    "METRIC_HANDLER_DURATION",
    "METRIC_BYTES_SENT",
    "METRIC_MESSAGES_RECEIVED",
    "METRIC_MESSAGES_SENT",
    "METRIC_REQUEST_DURATION",
    "SPAN_HANDLE",
    "SPAN_REQUEST",
    "SPAN_SEND",
    "LinkTracer",
    "OpenTelemetry",
    "plugin",
]

__version__ = "0.2.0"
INSTRUMENTATION_NAME: Final = "qrpc_otel"

log = logging.getLogger("qrpc.otel")

ATTR_PEER_ID: Final = "qrpc.peer.id"
ATTR_CMD_ID: Final = "qrpc.cmd_id"
ATTR_MESSAGE_TYPE: Final = "qrpc.message.type"
ATTR_MESSAGE_SIZE: Final = "qrpc.message.size"
"""Framed size in bytes."""
ATTR_REQUEST_ID: Final = "qrpc.request.id"
"""The request ID (client and server spans of requests only)."""
SPAN_SEND: Final = "qrpc.send"
"""Client span of a one-way message: ``qrpc.send <cmd_id>``."""
SPAN_REQUEST: Final = "qrpc.request"
"""Client span of a request, until its reply: ``qrpc.request <cmd_id>``."""
SPAN_HANDLE: Final = "qrpc.handle"
"""Server span of a handler call: ``qrpc.handle <cmd_id>``."""
METRIC_MESSAGES_SENT: Final = "qrpc.messages.sent"
METRIC_MESSAGES_RECEIVED: Final = "qrpc.messages.received"
METRIC_BYTES_SENT: Final = "qrpc.bytes.sent"
METRIC_BYTES_RECEIVED: Final = "qrpc.bytes.received"
METRIC_REQUEST_DURATION: Final = "qrpc.request.duration"
"""Histogram (s): from sending a request to its reply or failure, on the requester."""
METRIC_HANDLER_DURATION: Final = "qrpc.handler.duration"
"""Histogram (s): how long each handler call ran, on the handling node."""

if TYPE_CHECKING:
    EVENT_SEND: Final = "qrpc.send"
    """Deprecated (0.2): the span event is no longer added; the client span replaces it."""
else:

    def __getattr__(name: str) -> Any:
        if name == "EVENT_SEND":
            warnings.warn(
                "qrpc_otel.EVENT_SEND is deprecated: the plugin no longer adds a "
                "'qrpc.send' span event; sends and requests get client spans instead",
                DeprecationWarning,
                stacklevel=2,
            )
            return "qrpc.send"
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_NO_PARENT: Final = Context()  # an empty context: a handler span without trace context is a root
_KEY: Final = re.compile(r"[a-z0-9_.-]{1,64}")  # qrpc's header key rule (qrpc.wire.sections)
_RESERVED_PREFIX: Final = "qrpc-"


@final
class _HeaderSetter(Setter[MutableMapping[str, str | bytes]]):
    """Writes trace context into outgoing qrpc headers, lower-casing keys and
    leaving out any key qrpc's header rules refuse (it would fail the send)."""

    def set(self, carrier: MutableMapping[str, str | bytes], key: str, value: str) -> None:
        key = key.lower()
        if _KEY.fullmatch(key) is None or key.startswith(_RESERVED_PREFIX):
            log.debug("trace context header %r breaks qrpc's header rules; not sent", key)
            return
        carrier[key] = value


@final
class _HeaderGetter(Getter[Mapping[str, str | bytes]]):
    """Reads trace context from received qrpc headers: str values only."""

    def get(self, carrier: Mapping[str, str | bytes], key: str) -> list[str] | None:
        value = carrier.get(key.lower())
        return [value] if isinstance(value, str) else None

    def keys(self, carrier: Mapping[str, str | bytes]) -> list[str]:
        return [key for key, value in carrier.items() if isinstance(value, str)]


_SETTER: Final = _HeaderSetter()
_GETTER: Final = _HeaderGetter()


@final
class _Instruments:
    """The tracer and counters of one (tracer provider, meter provider) pair."""

    __slots__ = (
        "bytes_received",
        "bytes_sent",
        "handler_duration",
        "received",
        "request_duration",
        "sent",
        "tracer",
    )

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
        self.request_duration: Histogram = meter.create_histogram(
            METRIC_REQUEST_DURATION,
            unit="s",
            description="From sending a request to its reply or failure",
        )
        self.handler_duration: Histogram = meter.create_histogram(
            METRIC_HANDLER_DURATION, unit="s", description="How long each handler call ran"
        )


def _metric_attributes(event: TraceEvent) -> dict[str, AttributeValue]:
    return {ATTR_CMD_ID: event.cmd_id, ATTR_MESSAGE_TYPE: type(event.message).__qualname__}


class LinkTracer(BaseTracer):
    """The `qrpc.Tracer` of one link (see the module docstring).

    Called per message from the node's event loop: a send or request starts
    a client span and injects its context; a handler call extracts one and
    starts a server span; each message sent or received is two counter updates.
    """

    def __init__(self, instruments: _Instruments, propagator: TextMapPropagator) -> None:
        self._instruments = instruments
        self._propagator = propagator
        # id(event) -> (event, client span) while a sending scope is open, so
        # `on_sent` finds the span of the message it reports.
        self._sending: dict[int, tuple[TraceEvent, Span]] = {}

    def sending_scope(self, event: TraceEvent) -> AbstractContextManager[Span]:
        """Start the client span (``qrpc.send``/``qrpc.request <cmd_id>``) as the
        current span, and add its trace context to ``event.outgoing_headers``."""
        return self._client_span(event)

    @contextmanager
    def _client_span(self, event: TraceEvent) -> Iterator[Span]:
        name = SPAN_REQUEST if event.kind == "request" else SPAN_SEND
        with self._instruments.tracer.start_as_current_span(
            f"{name} {event.cmd_id}",
            kind=SpanKind.CLIENT,
            attributes={
                ATTR_PEER_ID: event.peer_id,
                ATTR_CMD_ID: event.cmd_id,
                ATTR_MESSAGE_TYPE: type(event.message).__qualname__,
            },
        ) as span:
            self._propagator.inject(event.outgoing_headers, setter=_SETTER)
            key = id(event)
            self._sending[key] = (event, span)
            started = time.perf_counter()
            try:
                yield span
            finally:
                del self._sending[key]
                if event.kind == "request":
                    elapsed = time.perf_counter() - started
                    self._instruments.request_duration.record(elapsed, _metric_attributes(event))

    def on_sent(self, event: TraceEvent) -> None:
        """Count the message; give its client span (if any) its size and request ID."""
        attributes = _metric_attributes(event)
        self._instruments.sent.add(1, attributes)
        self._instruments.bytes_sent.add(event.size, attributes)
        sending = self._sending.get(id(event))
        if sending is not None and sending[0] is event:
            span = sending[1]
            span.set_attribute(ATTR_MESSAGE_SIZE, event.size)
            if event.request_id:
                span.set_attribute(ATTR_REQUEST_ID, event.request_id)

    def on_received(self, event: TraceEvent) -> None:
        """Count the message."""
        attributes = _metric_attributes(event)
        self._instruments.received.add(1, attributes)
        self._instruments.bytes_received.add(event.size, attributes)

    def handling_scope(self, event: TraceEvent) -> AbstractContextManager[Span]:
        """Start the handler's span, ``qrpc.handle <cmd_id>``, as the current span,
        a child of the trace context in ``event.headers`` (a root without one).

        The handler runs in the context extracted from the headers (the span,
        and baggage if the propagator carries it), not in the dispatch task's."""
        return self._server_span(event)

    @contextmanager
    def _server_span(self, event: TraceEvent) -> Iterator[Span]:
        parent = _NO_PARENT
        if event.headers:
            try:
                parent = self._propagator.extract(event.headers, context=_NO_PARENT, getter=_GETTER)
            except Exception:  # a third-party propagator on a malformed header
                log.debug("cannot extract trace context from %s", event.peer_id, exc_info=True)
        attributes: dict[str, AttributeValue] = {
            ATTR_PEER_ID: event.peer_id,
            ATTR_CMD_ID: event.cmd_id,
            ATTR_MESSAGE_TYPE: type(event.message).__qualname__,
            ATTR_MESSAGE_SIZE: event.size,
        }
        if event.request_id:
            attributes[ATTR_REQUEST_ID] = event.request_id
        token = otel_context.attach(parent)
        try:
            with self._instruments.tracer.start_as_current_span(
                f"{SPAN_HANDLE} {event.cmd_id}",
                context=parent,
                kind=SpanKind.SERVER,
                attributes=attributes,
            ) as span:
                started = time.perf_counter()
                try:
                    yield span
                finally:
                    elapsed = time.perf_counter() - started
                    self._instruments.handler_duration.record(elapsed, _metric_attributes(event))
        finally:
            otel_context.detach(token)


class OpenTelemetry:
    """The qrpc plugin: a `LinkTracer` for every link.

    Args:
        tracer_provider: where spans go; None: the global provider.
        meter_provider: where the counters go; None: the global provider.
        propagator: how trace context is written to and read from headers;
            None: W3C Trace Context (``traceparent``/``tracestate``), whatever
            the global propagator is.

    With both providers None, a link is traced only if a global tracer or
    meter provider has been set by the time it comes up.
    """

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        *,
        propagator: TextMapPropagator | None = None,
    ) -> None:
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider
        self.propagator: TextMapPropagator = propagator or TraceContextTextMapPropagator()
        self._cache: tuple[TracerProvider, MeterProvider, _Instruments] | None = None

    @hookimpl
    def qrpc_link_tracer(self) -> LinkTracer | None:
        """Return the link's tracer, or None if there is nowhere to report to."""
        instruments = self._instruments()
        return None if instruments is None else LinkTracer(instruments, self.propagator)

    def plugin_status(self) -> str:
        """One line for ``qrpc plugins``: active or inert, and how to change it."""
        if self._instruments() is None:
            return "inert: configure an OpenTelemetry SDK tracer or meter provider to trace links"
        return "active: spans and counters for every link"

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
