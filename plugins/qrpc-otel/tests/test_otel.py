"""qrpc-otel on real nodes over 127.0.0.1 (qrpc's ``qrpc_network`` fixture),
recorded with the OpenTelemetry SDK's in-memory span exporter and metric
reader (never the global providers).

All nodes of a test report to one in-memory exporter, but nothing else links
them: a handler span's parent can only come from the ``traceparent`` header
(the handler runs in its node's dispatch task, whose context has no span of
the caller), which is what crosses processes in real use.
"""

from __future__ import annotations

import asyncio
import itertools
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pytest
import qrpc_otel
from opentelemetry import baggage, context, metrics, propagate, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context as OtelContext
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import CarrierT, Setter, default_setter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import Histogram, InMemoryMetricReader, Sum
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanContext, SpanKind, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from qrpc_otel import OpenTelemetry

import qrpc
from qrpc.hooks.tracer import adapt
from qrpc.testing import Network, NetworkFactory

TIMEOUT = 5.0  # seconds any single wait may take
TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
SPAN_ID = 0x00F067AA0BA902B7
TRACEPARENT = f"00-{TRACE_ID:032x}-{SPAN_ID:016x}-01"


class Ping(msgspec.Struct):
    text: str


class Pong(msgspec.Struct):
    text: str


@pytest.fixture
def registry() -> qrpc.Registry:
    reg = qrpc.Registry()
    reg.register(1, Ping)
    reg.register(2, Pong)
    return reg


@dataclass
class Seen:
    """What a handler saw: the message, its headers, the span it ran in."""

    text: str
    headers: dict[str, str | bytes]
    span: SpanContext
    baggage: Mapping[str, object]


def install(node: qrpc.Node, seen: list[Seen], *, forward_to: str | None = None) -> None:
    """Answer `Ping` (cmd 1) with `Pong`: "fail" raises, "slow" sleeps past any
    timeout; with `forward_to`, first request that node (``ctx.request``)."""

    @node.handler(1)
    async def on_ping(ctx: qrpc.Context, msg: Ping) -> Pong:
        seen.append(
            Seen(
                msg.text,
                dict(ctx.headers),
                trace.get_current_span().get_span_context(),
                baggage.get_all(),
            )
        )
        if msg.text == "fail":
            raise ValueError("handler failed")
        if msg.text == "slow":
            await asyncio.sleep(60)  # cancelled: the requester times out
        if forward_to is not None:
            inner = await ctx.request(forward_to, Ping(f"{msg.text} inner"), reply=Pong)
            return Pong(f"{inner.text} outer")
        return Pong(msg.text)


class SpanEnded(SpanProcessor):
    """Sets an asyncio.Event whenever a span ends (spans end on the event loop's thread)."""

    def __init__(self, event: asyncio.Event) -> None:
        self.event = event

    def on_end(self, span: ReadableSpan) -> None:
        self.event.set()


@dataclass
class Telemetry:
    """An SDK tracer and meter provider that keep everything in memory."""

    spans: InMemorySpanExporter = field(default_factory=InMemorySpanExporter)
    reader: InMemoryMetricReader = field(default_factory=InMemoryMetricReader)
    tracer_provider: TracerProvider = field(default_factory=TracerProvider)
    meter_provider: MeterProvider = field(init=False)
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.tracer_provider.add_span_processor(SpanEnded(self.ended))
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def plugin(self, **kwargs: Any) -> OpenTelemetry:
        return OpenTelemetry(self.tracer_provider, self.meter_provider, **kwargs)

    def finished(self, name: str, peer_id: str | None = None) -> list[ReadableSpan]:
        return [
            s
            for s in self.spans.get_finished_spans()
            if s.name == name and (peer_id is None or attrs(s)["qrpc.peer.id"] == peer_id)
        ]

    async def wait(
        self, name: str, count: int = 1, peer_id: str | None = None
    ) -> list[ReadableSpan]:
        """Wait until `count` spans called `name` (to `peer_id`) have ended."""
        async with asyncio.timeout(TIMEOUT):
            while len(spans := self.finished(name, peer_id)) < count:
                self.ended.clear()
                await self.ended.wait()
        assert len(spans) == count
        return spans

    def counters(self) -> dict[str, dict[tuple[Any, Any], Any]]:
        """metric name -> (cmd_id, message type) -> value (all counters are sums)."""
        data = self.reader.get_metrics_data()
        found: dict[str, dict[tuple[Any, Any], Any]] = {}
        if data is None:  # nothing was ever recorded
            return found
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                assert scope.scope.name == "qrpc_otel"
                for metric in scope.metrics:
                    if isinstance(metric.data, Histogram):
                        continue  # see histograms()
                    assert isinstance(metric.data, Sum)
                    assert metric.data.is_monotonic
                    found[metric.name] = {
                        (attributes["qrpc.cmd_id"], attributes["qrpc.message.type"]): point.value
                        for point in metric.data.data_points
                        if (attributes := point.attributes) is not None
                    }
        return found

    def histograms(self) -> dict[str, dict[tuple[Any, Any], tuple[int, float]]]:
        """metric name -> (cmd_id, message type) -> (count, sum) of the histograms."""
        data = self.reader.get_metrics_data()
        found: dict[str, dict[tuple[Any, Any], tuple[int, float]]] = {}
        for resource in data.resource_metrics if data is not None else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if isinstance(metric.data, Histogram):
                        found[metric.name] = {
                            (a["qrpc.cmd_id"], a["qrpc.message.type"]): (p.count, p.sum)
                            for p in metric.data.data_points
                            if (a := p.attributes) is not None
                        }
        return found


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    recorded = Telemetry()
    yield recorded
    recorded.tracer_provider.shutdown()
    recorded.meter_provider.shutdown()


@pytest.fixture
def net(qrpc_network: NetworkFactory, registry: qrpc.Registry) -> Network:
    return qrpc_network(registry)


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def parent_id(span: ReadableSpan) -> int | None:
    return None if span.parent is None else span.parent.span_id


def remote_parent(span: ReadableSpan) -> bool | None:
    """Whether the span's parent came from another node (None: no parent)."""
    return None if span.parent is None else span.parent.is_remote


def traceparent_of(span: ReadableSpan) -> str:
    ctx = span.context
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


def exception_type(span: ReadableSpan) -> str:
    [event] = span.events
    assert event.name == "exception"
    assert event.attributes is not None
    return str(event.attributes["exception.type"])


def client_attributes(span: ReadableSpan, peer_id: str, request: bool) -> None:
    """Assert the attributes of a client span of a Ping to `peer_id`."""
    found = attrs(span)
    assert isinstance(found.pop("qrpc.message.size"), int)
    if request:
        assert isinstance(found.pop("qrpc.request.id"), int)
    assert found == {"qrpc.peer.id": peer_id, "qrpc.cmd_id": 1, "qrpc.message.type": "Ping"}


async def traced_pair(
    net: Network, telemetry: Telemetry, **plugin_kwargs: Any
) -> tuple[qrpc.Node, qrpc.Node]:
    """Two traced nodes, `a` linked to `b`."""
    a = await net.node(plugins=[telemetry.plugin(**plugin_kwargs)])
    b = await net.node(plugins=[telemetry.plugin(**plugin_kwargs)])
    await net.link(a, b)
    return a, b


# -- spans and trace context ----------------------------------------------------------


async def test_a_request_across_three_nodes_forms_one_trace(
    net: Network, telemetry: Telemetry
) -> None:
    a = await net.node(plugins=[telemetry.plugin()])
    b = await net.node(plugins=[telemetry.plugin()])
    c = await net.node(plugins=[telemetry.plugin()])
    await net.link(a, b)
    await net.link(b, c)
    seen_b: list[Seen] = []
    seen_c: list[Seen] = []
    install(b, seen_b, forward_to=c.id)
    install(c, seen_c)

    app = telemetry.tracer_provider.get_tracer("app")
    with app.start_as_current_span("test root"):
        reply = await a.request(b.id, Ping("hi"), reply=Pong, timeout=TIMEOUT)
    assert reply == Pong("hi inner outer")

    [root] = await telemetry.wait("test root")
    [a_client] = await telemetry.wait("qrpc.request 1", peer_id=b.id)
    [b_server] = await telemetry.wait("qrpc.handle 1", peer_id=a.id)
    [b_client] = await telemetry.wait("qrpc.request 1", peer_id=c.id)
    [c_server] = await telemetry.wait("qrpc.handle 1", peer_id=b.id)
    chain = [root, a_client, b_server, b_client, c_server]
    assert len(telemetry.spans.get_finished_spans()) == len(chain)

    assert {span.context.trace_id for span in chain} == {root.context.trace_id}
    assert root.parent is None
    for parent, child in itertools.pairwise(chain):
        assert parent_id(child) == parent.context.span_id, (parent.name, child.name)
    # The server spans' parents came over the wire; the client spans' did not.
    assert [remote_parent(s) for s in chain] == [None, False, True, False, True]
    # ... in the traceparent header, which each handler saw.
    assert seen_b[0].headers == {"traceparent": traceparent_of(a_client)}
    assert seen_c[0].headers == {"traceparent": traceparent_of(b_client)}
    assert seen_b[0].span == b_server.context
    assert seen_c[0].span == c_server.context

    assert [s.kind for s in chain] == [
        SpanKind.INTERNAL,
        SpanKind.CLIENT,
        SpanKind.SERVER,
        SpanKind.CLIENT,
        SpanKind.SERVER,
    ]
    assert all(s.status.status_code is StatusCode.UNSET for s in chain)
    client_attributes(a_client, b.id, request=True)
    client_attributes(b_client, c.id, request=True)
    # Each side names the same request ID and framed size.
    for client, server, caller in ((a_client, b_server, a.id), (b_client, c_server, b.id)):
        assert attrs(server) == {
            "qrpc.peer.id": caller,
            "qrpc.cmd_id": 1,
            "qrpc.message.type": "Ping",
            "qrpc.request.id": attrs(client)["qrpc.request.id"],
            "qrpc.message.size": attrs(client)["qrpc.message.size"],
        }
    # A request's client span lasts until its reply.
    a_end, b_end = a_client.end_time, b_server.end_time
    assert a_end is not None
    assert b_end is not None
    assert a_end >= b_end
    # No span events any more: the client spans say what the qrpc.send events said.
    assert all(s.events == () for s in chain)


async def test_a_one_way_message_is_a_child_of_its_client_span(
    net: Network, telemetry: Telemetry
) -> None:
    a, b = await traced_pair(net, telemetry)
    seen: list[Seen] = []
    install(b, seen)

    await a.send(b.id, Ping("one-way"), headers={"app-key": "kept", "blob": b"\x00"})
    [client] = await telemetry.wait("qrpc.send 1")
    [server] = await telemetry.wait("qrpc.handle 1")

    assert client.kind is SpanKind.CLIENT
    assert client.parent is None  # no span was current: the client span is the root
    client_attributes(client, b.id, request=False)
    assert server.kind is SpanKind.SERVER
    assert server.context.trace_id == client.context.trace_id
    assert parent_id(server) == client.context.span_id
    assert attrs(server) == {
        "qrpc.peer.id": a.id,
        "qrpc.cmd_id": 1,
        "qrpc.message.type": "Ping",
        "qrpc.message.size": attrs(client)["qrpc.message.size"],
    }
    # The application's headers travel next to the trace context.
    assert seen[0].headers == {
        "app-key": "kept",
        "blob": b"\x00",
        "traceparent": traceparent_of(client),
    }


async def test_a_failing_handler_marks_both_spans(net: Network, telemetry: Telemetry) -> None:
    a, b = await traced_pair(net, telemetry)
    install(b, [])

    with pytest.raises(qrpc.RemoteError):
        await a.request(b.id, Ping("fail"), reply=Pong, timeout=TIMEOUT)
    [server] = await telemetry.wait("qrpc.handle 1")
    [client] = await telemetry.wait("qrpc.request 1")

    assert parent_id(server) == client.context.span_id
    assert server.status.status_code is StatusCode.ERROR
    assert server.status.description == "ValueError: handler failed"
    assert exception_type(server) == "ValueError"
    assert client.status.status_code is StatusCode.ERROR
    assert exception_type(client) == "qrpc.RemoteError"


async def test_a_timed_out_request_marks_its_client_span(
    net: Network, telemetry: Telemetry
) -> None:
    a, b = await traced_pair(net, telemetry)
    install(b, [])

    with pytest.raises(qrpc.RequestTimeout):
        await a.request(b.id, Ping("slow"), reply=Pong, timeout=0.3)
    [client] = await telemetry.wait("qrpc.request 1")
    assert client.status.status_code is StatusCode.ERROR
    assert exception_type(client) == "qrpc.RequestTimeout"
    assert isinstance(attrs(client)["qrpc.request.id"], int)
    # The handler was stopped (CANCEL, or the deadline that came with the request).
    [server] = await telemetry.wait("qrpc.handle 1")
    assert parent_id(server) == client.context.span_id


async def test_trace_context_is_read_from_str_headers_only(
    net: Network, telemetry: Telemetry
) -> None:
    sender = await net.node()  # not traced: its headers reach the handler as sent
    b = await net.node(plugins=[telemetry.plugin()])
    await net.link(sender, b)
    seen: list[Seen] = []
    install(b, seen)

    # A bytes traceparent is ignored, not fatal: the request is answered, in a new trace.
    raw = TRACEPARENT.encode()
    reply = await sender.request(
        b.id, Ping("bytes"), reply=Pong, timeout=TIMEOUT, headers={"traceparent": raw}
    )
    assert reply == Pong("bytes")
    await sender.send(b.id, Ping("bytes one-way"), headers={"traceparent": raw})
    # A str traceparent is the parent, whoever wrote it; a bytes tracestate is ignored.
    await sender.send(b.id, Ping("str"), headers={"traceparent": TRACEPARENT, "tracestate": b"k=v"})
    await sender.send(
        b.id, Ping("str with state"), headers={"traceparent": TRACEPARENT, "tracestate": "k=v"}
    )
    # Garbage is no context either.
    await sender.send(b.id, Ping("garbage"), headers={"traceparent": "not a traceparent"})

    spans = await telemetry.wait("qrpc.handle 1", 5)
    by_text = {s.text: span for s, span in zip(seen, spans, strict=True)}
    for text in ("bytes", "bytes one-way", "garbage"):
        assert by_text[text].parent is None
        assert by_text[text].context.trace_id != TRACE_ID
        assert by_text[text].status.status_code is StatusCode.UNSET
    for text in ("str", "str with state"):
        span = by_text[text]
        assert remote_parent(span) is True
        assert (span.context.trace_id, parent_id(span)) == (TRACE_ID, SPAN_ID)
    assert by_text["str"].parent is not None
    assert dict(by_text["str"].parent.trace_state) == {}
    assert by_text["str with state"].parent is not None
    assert dict(by_text["str with state"].parent.trace_state) == {"k": "v"}


async def test_the_callers_trace_context_replaces_one_in_its_headers(
    net: Network, telemetry: Telemetry
) -> None:
    a, b = await traced_pair(net, telemetry)
    seen: list[Seen] = []
    install(b, seen)
    await a.send(b.id, Ping("x"), headers={"traceparent": TRACEPARENT})
    [client] = await telemetry.wait("qrpc.send 1")
    [server] = await telemetry.wait("qrpc.handle 1")
    assert seen[0].headers == {"traceparent": traceparent_of(client)}
    assert parent_id(server) == client.context.span_id


# -- propagators ----------------------------------------------------------------------


class LoudPropagator(TraceContextTextMapPropagator):
    """W3C trace context, plus keys qrpc's header rules refuse or would refuse."""

    def inject(
        self,
        carrier: CarrierT,
        context: OtelContext | None = None,
        setter: Setter[CarrierT] = default_setter,
    ) -> None:
        super().inject(carrier, context, setter)
        setter.set(carrier, "X-Upper-Case", "lowered")
        setter.set(carrier, "not valid!", "dropped")
        setter.set(carrier, "qrpc-reserved", "dropped")


async def test_another_propagator_can_be_given(net: Network, telemetry: Telemetry) -> None:
    both = CompositePropagator([LoudPropagator(), W3CBaggagePropagator()])
    a, b = await traced_pair(net, telemetry, propagator=both)
    seen: list[Seen] = []
    install(b, seen)

    token = context.attach(baggage.set_baggage("tenant", "acme"))
    try:
        assert await a.request(b.id, Ping("x"), reply=Pong, timeout=TIMEOUT) == Pong("x")
    finally:
        context.detach(token)
    [client] = await telemetry.wait("qrpc.request 1")
    [server] = await telemetry.wait("qrpc.handle 1")
    assert parent_id(server) == client.context.span_id
    assert seen[0].headers == {
        "traceparent": traceparent_of(client),
        "x-upper-case": "lowered",
        "baggage": "tenant=acme",
    }
    assert seen[0].baggage == {"tenant": "acme"}


async def test_the_default_ignores_the_global_propagator(
    net: Network, telemetry: Telemetry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(propagate, "get_global_textmap", lambda: LoudPropagator())
    a, b = await traced_pair(net, telemetry)
    seen: list[Seen] = []
    install(b, seen)
    await a.send(b.id, Ping("x"))
    [client] = await telemetry.wait("qrpc.send 1")
    await telemetry.wait("qrpc.handle 1")
    assert seen[0].headers == {"traceparent": traceparent_of(client)}


# -- counters ---------------------------------------------------------------------------


class Sizes(qrpc.BaseTracer):
    """Records the framed size qrpc reports for each message (to compare with)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, int, int]] = []
        self.received: list[tuple[str, int, int]] = []

    def on_sent(self, event: qrpc.TraceEvent) -> None:
        self.sent.append((type(event.message).__name__, event.cmd_id, event.size))

    def on_received(self, event: qrpc.TraceEvent) -> None:
        self.received.append((type(event.message).__name__, event.cmd_id, event.size))

    @qrpc.hookimpl
    def qrpc_link_tracer(self) -> qrpc.Tracer:
        return self


async def test_sizes_and_counters_match_what_qrpc_reports(
    net: Network, telemetry: Telemetry
) -> None:
    sizes = Sizes()
    server = await net.node(plugins=[telemetry.plugin(), sizes])
    client = await net.node(plugins=[telemetry.plugin(), sizes])
    await net.link(client, server)
    install(server, [])

    await client.send(server.id, Ping("one-way"))
    assert await client.request(server.id, Ping("rpc"), reply=Pong, timeout=TIMEOUT) == Pong("rpc")
    await telemetry.wait("qrpc.handle 1", 2)

    # qrpc reports: client sends 2 Pings, server receives them and sends 1 Pong.
    assert [(name, cmd) for name, cmd, _ in sizes.sent] == [("Ping", 1), ("Ping", 1), ("Pong", 2)]
    assert [(name, cmd) for name, cmd, _ in sizes.received] == [("Ping", 1), ("Ping", 1)]
    [send] = telemetry.finished("qrpc.send 1")
    [request] = telemetry.finished("qrpc.request 1")
    span_sizes = [attrs(span)["qrpc.message.size"] for span in (send, request)]
    assert span_sizes == [size for _, _, size in sizes.sent[:2]]
    ping_sent = sum(size for name, _, size in sizes.sent if name == "Ping")
    pong_sent = sum(size for name, _, size in sizes.sent if name == "Pong")
    assert telemetry.counters() == {
        "qrpc.messages.sent": {(1, "Ping"): 2, (2, "Pong"): 1},
        "qrpc.bytes.sent": {(1, "Ping"): ping_sent, (2, "Pong"): pong_sent},
        "qrpc.messages.received": {(1, "Ping"): 2},
        "qrpc.bytes.received": {(1, "Ping"): sum(size for _, _, size in sizes.received)},
    }


async def test_request_and_handler_durations_are_recorded(
    net: Network, telemetry: Telemetry
) -> None:
    server = await net.node(plugins=[telemetry.plugin()])
    client = await net.node(plugins=[telemetry.plugin()])
    await net.link(client, server)
    install(server, [])
    await client.send(server.id, Ping("one-way"))
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await client.request(server.id, Ping("rpc"), reply=Pong, timeout=TIMEOUT) == Pong("rpc")
    took = loop.time() - started
    await telemetry.wait("qrpc.handle 1", 2)
    found = telemetry.histograms()
    [(count, total)] = found["qrpc.request.duration"].values()
    assert count == 1
    assert 0 < total <= took
    assert found["qrpc.handler.duration"][(1, "Ping")][0] == 2  # the message and the request


async def test_untraced_nodes_record_nothing(net: Network, telemetry: Telemetry) -> None:
    a, b = await net.nodes(2)
    install(b, [])
    assert await a.request(b.id, Ping("x"), reply=Pong, timeout=TIMEOUT) == Pong("x")
    assert telemetry.spans.get_finished_spans() == ()
    assert telemetry.counters() == {}


# -- API versions -----------------------------------------------------------------------


def test_the_link_tracer_is_tracer_api_2(telemetry: Telemetry) -> None:
    tracer = telemetry.plugin().qrpc_link_tracer()
    assert tracer is not None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert adapt(tracer) is tracer  # no API 1 adapter, no DeprecationWarning
    for name in ("on_send", "on_receive", "handler_scope"):  # API 1 stays BaseTracer's
        assert getattr(type(tracer), name) is getattr(qrpc.BaseTracer, name)


def test_event_send_is_deprecated() -> None:
    assert "EVENT_SEND" not in qrpc_otel.__all__
    with pytest.warns(DeprecationWarning, match="EVENT_SEND"):
        assert qrpc_otel.EVENT_SEND == "qrpc.send"
    with pytest.raises(AttributeError):
        getattr(qrpc_otel, "NO_SUCH_NAME")  # noqa: B009


# -- the installed entry point (global providers) -------------------------------------


def test_installed_plugin_without_an_sdk_returns_no_tracer() -> None:
    # This test process never sets a global provider: the API's proxies are in place.
    assert type(trace.get_tracer_provider()) is trace.ProxyTracerProvider
    assert qrpc_otel.plugin.qrpc_link_tracer() is None


async def test_installed_plugin_uses_the_global_providers(
    net: Network, telemetry: Telemetry, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Stand-ins for trace.set_tracer_provider(...), which can run once per process.
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: telemetry.tracer_provider)
    monkeypatch.setattr(metrics, "get_meter_provider", lambda: telemetry.meter_provider)
    monkeypatch.delenv("QRPC_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    server = await net.node(autoload_plugins=True)
    assert server.plugin_manager.get_plugin("qrpc-otel:otel") is qrpc_otel.plugin
    client = await net.node()
    await net.link(client, server)
    install(server, [])
    assert await client.request(server.id, Ping("x"), reply=Pong, timeout=TIMEOUT) == Pong("x")
    [span] = await telemetry.wait("qrpc.handle 1")
    assert span.parent is None  # the client is not traced: no trace context came
    assert telemetry.counters()["qrpc.messages.received"] == {(1, "Ping"): 1}
