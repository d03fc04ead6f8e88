"""qrpc-otel on real nodes over 127.0.0.1, recorded with the OpenTelemetry SDK's
in-memory span exporter and metric reader (never the global providers)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pytest
import qrpc_otel
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, Sum
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from qrpc_otel import OpenTelemetry

import qrpc
from qrpc.testing import TestPKI

NodeFactory = Callable[..., Awaitable[qrpc.Node]]
TIMEOUT = 5.0  # seconds any single wait may take


class Ping(msgspec.Struct):
    text: str


class Pong(msgspec.Struct):
    text: str


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

    def plugin(self) -> OpenTelemetry:
        return OpenTelemetry(self.tracer_provider, self.meter_provider)

    def finished(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.spans.get_finished_spans() if s.name == name]

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
                    assert isinstance(metric.data, Sum)
                    assert metric.data.is_monotonic
                    found[metric.name] = {
                        (attributes["qrpc.cmd_id"], attributes["qrpc.message.type"]): point.value
                        for point in metric.data.data_points
                        if (attributes := point.attributes) is not None
                    }
        return found


class Sizes(qrpc.BaseTracer):
    """Records the framed size qrpc reports for each message (to compare with)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, int, int]] = []
        self.received: list[tuple[str, int, int]] = []

    def on_send(self, peer_id: str, cmd_id: int, message: Any, size: int) -> None:
        self.sent.append((type(message).__name__, cmd_id, size))

    def on_receive(self, peer_id: str, cmd_id: int, message: Any, size: int) -> None:
        self.received.append((type(message).__name__, cmd_id, size))

    @qrpc.hookimpl
    def qrpc_link_tracer(self) -> qrpc.Tracer:
        return self


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    recorded = Telemetry()
    yield recorded
    recorded.tracer_provider.shutdown()
    recorded.meter_provider.shutdown()


@pytest.fixture
async def otel_nodes(qrpc_pki: TestPKI) -> AsyncIterator[NodeFactory]:
    """Start nodes on 127.0.0.1:0 (plugins given in code only); closed at teardown.

    Every node answers `Ping` (cmd 1) with `Pong` (cmd 2); a Ping whose text is
    "fail" makes the handler raise.  The handler runs `work(ctx, msg)` from
    ``node.state`` first, if set.
    """
    registry = qrpc.Registry()
    registry.register(1, Ping)
    registry.register(2, Pong)
    async with AsyncExitStack() as stack:

        async def make(**kwargs: Any) -> qrpc.Node:
            kwargs.setdefault("autoload_plugins", False)
            node = qrpc.Node(registry, tls=qrpc_pki.node_tls(), **kwargs)

            @node.handler(1)
            async def on_ping(ctx: qrpc.Context, msg: Ping) -> Pong:
                if ctx.state is not None:
                    ctx.state(msg)
                if msg.text == "fail":
                    raise ValueError("handler failed")
                return Pong(msg.text)

            return await stack.enter_async_context(node)

        yield make


async def connect(dialer: qrpc.Node, target: qrpc.Node) -> None:
    dialer.add_peer(qrpc.Peer(*target.address, expected_id=target.id))
    await dialer.wait_for_peer(target.id, timeout=TIMEOUT)
    await target.wait_for_peer(dialer.id, timeout=TIMEOUT)


async def wait_for_spans(telemetry: Telemetry, name: str, count: int) -> list[ReadableSpan]:
    """Wait until `count` spans called `name` have ended (they end in the node's tasks)."""
    async with asyncio.timeout(TIMEOUT):
        while len(spans := telemetry.finished(name)) < count:
            telemetry.ended.clear()
            await telemetry.ended.wait()
    assert len(spans) == count
    return spans


def handler_attributes(peer_id: str, type_name: str = "Ping") -> dict[str, Any]:
    return {"qrpc.peer.id": peer_id, "qrpc.cmd_id": 1, "qrpc.message.type": type_name}


async def test_request_and_message_get_handler_spans(
    otel_nodes: NodeFactory, telemetry: Telemetry
) -> None:
    work = telemetry.tracer_provider.get_tracer("app")

    def do_work(msg: Ping) -> None:
        with work.start_as_current_span(f"work {msg.text}"):
            pass

    server = await otel_nodes(plugins=[telemetry.plugin()], state=do_work)
    client = await otel_nodes(plugins=[telemetry.plugin()])
    await connect(client, server)

    with work.start_as_current_span("client operation") as operation:
        await client.send(server.id, Ping("one-way"))
        assert await client.request(server.id, Ping("rpc"), reply=Pong, timeout=TIMEOUT) == Pong(
            "rpc"
        )

    handled = await wait_for_spans(telemetry, "qrpc.handle 1", 2)
    [outer] = telemetry.finished("client operation")
    by_child: dict[str, ReadableSpan] = {}
    for text in ("one-way", "rpc"):
        [child] = telemetry.finished(f"work {text}")
        assert child.parent is not None
        [parent] = [s for s in handled if s.context.span_id == child.parent.span_id]
        assert child.context.trace_id == parent.context.trace_id
        by_child[text] = parent
    assert by_child["one-way"] is not by_child["rpc"]
    for span in handled:
        assert span.kind is SpanKind.SERVER
        assert dict(span.attributes or {}) == handler_attributes(client.id)
        assert span.status.status_code is StatusCode.UNSET
        # No trace context crosses the wire: each handler span starts a trace.
        assert span.parent is None
        assert span.context.trace_id != operation.get_span_context().trace_id
    # One handler at a time per cmd_id (qrpc's default concurrency): in order.
    first_end, second_start = by_child["one-way"].end_time, by_child["rpc"].start_time
    assert first_end is not None
    assert second_start is not None
    assert first_end <= second_start

    # The client's span records what it sent (sizes: see the next test).
    assert [event.name for event in outer.events] == ["qrpc.send", "qrpc.send"]
    for event in outer.events:
        attributes = dict(event.attributes or {})
        assert isinstance(attributes.pop("qrpc.message.size"), int)
        assert attributes == handler_attributes(server.id)


async def test_send_sizes_and_counters_match_what_qrpc_reports(
    otel_nodes: NodeFactory, telemetry: Telemetry
) -> None:
    sizes = Sizes()
    server = await otel_nodes(plugins=[telemetry.plugin(), sizes])
    client = await otel_nodes(plugins=[telemetry.plugin(), sizes])
    await connect(client, server)
    tracer = telemetry.tracer_provider.get_tracer("app")

    with tracer.start_as_current_span("client operation"):
        await client.send(server.id, Ping("one-way"))
        assert await client.request(server.id, Ping("rpc"), reply=Pong, timeout=TIMEOUT) == Pong(
            "rpc"
        )
    await wait_for_spans(telemetry, "qrpc.handle 1", 2)

    # qrpc reports: client sends 2 Pings, server receives them and sends 1 Pong.
    assert [(name, cmd) for name, cmd, _ in sizes.sent] == [("Ping", 1), ("Ping", 1), ("Pong", 2)]
    assert [(name, cmd) for name, cmd, _ in sizes.received] == [("Ping", 1), ("Ping", 1)]
    [outer] = telemetry.finished("client operation")
    event_sizes = [dict(e.attributes or {})["qrpc.message.size"] for e in outer.events]
    assert event_sizes == [size for _, _, size in sizes.sent[:2]]
    ping_sent = sum(size for name, _, size in sizes.sent if name == "Ping")
    pong_sent = sum(size for name, _, size in sizes.sent if name == "Pong")
    assert telemetry.counters() == {
        "qrpc.messages.sent": {(1, "Ping"): 2, (2, "Pong"): 1},
        "qrpc.bytes.sent": {(1, "Ping"): ping_sent, (2, "Pong"): pong_sent},
        "qrpc.messages.received": {(1, "Ping"): 2},
        "qrpc.bytes.received": {(1, "Ping"): sum(size for _, _, size in sizes.received)},
    }


async def test_one_way_message_outside_any_span(
    otel_nodes: NodeFactory, telemetry: Telemetry
) -> None:
    server = await otel_nodes(plugins=[telemetry.plugin()])
    client = await otel_nodes(plugins=[telemetry.plugin()])
    await connect(client, server)
    await client.send(server.id, Ping("alone"))
    [span] = await wait_for_spans(telemetry, "qrpc.handle 1", 1)
    assert dict(span.attributes or {}) == handler_attributes(client.id)
    assert span.parent is None
    assert span.events == ()
    assert [s.name for s in telemetry.spans.get_finished_spans()] == ["qrpc.handle 1"]


async def test_failing_handler_marks_its_span(
    otel_nodes: NodeFactory, telemetry: Telemetry
) -> None:
    server = await otel_nodes(plugins=[telemetry.plugin()])
    client = await otel_nodes()
    await connect(client, server)
    with pytest.raises(qrpc.RemoteError):
        await client.request(server.id, Ping("fail"), reply=Pong, timeout=TIMEOUT)
    [span] = await wait_for_spans(telemetry, "qrpc.handle 1", 1)
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "ValueError: handler failed"
    [event] = span.events
    assert event.name == "exception"
    assert event.attributes is not None
    assert (event.attributes["exception.type"], event.attributes["exception.message"]) == (
        "ValueError",
        "handler failed",
    )


async def test_untraced_node_records_nothing(otel_nodes: NodeFactory, telemetry: Telemetry) -> None:
    server = await otel_nodes()
    client = await otel_nodes()
    await connect(client, server)
    assert await client.request(server.id, Ping("x"), reply=Pong, timeout=TIMEOUT) == Pong("x")
    assert telemetry.spans.get_finished_spans() == ()
    assert telemetry.counters() == {}


# -- the installed entry point (global providers) -----------------------------------


def test_installed_plugin_without_an_sdk_returns_no_tracer() -> None:
    # This test process never sets a global provider: the API's proxies are in place.
    assert type(trace.get_tracer_provider()) is trace.ProxyTracerProvider
    assert qrpc_otel.plugin.qrpc_link_tracer() is None


async def test_installed_plugin_uses_the_global_providers(
    otel_nodes: NodeFactory, telemetry: Telemetry, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Stand-ins for trace.set_tracer_provider(...), which can run once per process.
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: telemetry.tracer_provider)
    monkeypatch.setattr(metrics, "get_meter_provider", lambda: telemetry.meter_provider)
    monkeypatch.delenv("QRPC_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    server = await otel_nodes(autoload_plugins=True)
    assert server.plugin_manager.get_plugin("qrpc-otel:otel") is qrpc_otel.plugin
    client = await otel_nodes()
    await connect(client, server)
    assert await client.request(server.id, Ping("x"), reply=Pong, timeout=TIMEOUT) == Pong("x")
    [span] = await wait_for_spans(telemetry, "qrpc.handle 1", 1)
    assert dict(span.attributes or {}) == handler_attributes(client.id)
    assert telemetry.counters()["qrpc.messages.received"] == {(1, "Ping"): 1}
