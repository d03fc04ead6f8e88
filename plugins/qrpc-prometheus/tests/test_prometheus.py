"""qrpc-prometheus on real nodes over 127.0.0.1: counts, labels, HTTP, the installed plugin."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import msgspec
import pytest
import qrpc_prometheus
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from qrpc_prometheus import ENV_ADDR, ENV_PORT, Prometheus, settings_from_env

import qrpc
from qrpc.testing import NetworkFactory, entry_point_plugin

TIMEOUT = 5.0  # seconds any single wait may take
Sample = tuple[str, frozenset[tuple[str, str]]]


class Note(msgspec.Struct):
    text: str


@pytest.fixture
def registry() -> qrpc.Registry:
    reg = qrpc.Registry()
    reg.register(1, Note)
    return reg


@pytest.fixture
def exporter() -> Iterator[Prometheus]:
    """An exporter on its own registry, without an HTTP server."""
    exp = Prometheus(registry=CollectorRegistry(), port=None)
    yield exp
    exp.close()


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Neither variable set; the installed plugin's exporter closed after the test."""
    monkeypatch.delenv(ENV_PORT, raising=False)
    monkeypatch.delenv(ENV_ADDR, raising=False)
    yield monkeypatch
    running = qrpc_prometheus.installed()
    if running is not None:
        running.close()


def parse(text: str) -> dict[Sample, float]:
    """Exposition text -> {(sample name, labels): value}."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def scrape(exp: Prometheus) -> dict[Sample, float]:
    return parse(generate_latest(exp.registry).decode())


def of(node: qrpc.Node, peer: qrpc.Node | None = None) -> frozenset[tuple[str, str]]:
    labels = {"node_id": node.id} | ({"peer_id": peer.id} if peer is not None else {})
    return frozenset(labels.items())


def node_ids(samples: dict[Sample, float]) -> set[str]:
    return {value for _, labels in samples for key, value in labels if key == "node_id"}


async def fetch(url: str) -> tuple[str, str]:
    """GET `url` off the event loop (the scrape needs the loop): (content type, body)."""

    def get() -> tuple[str, str]:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
            return response.headers["Content-Type"], response.read().decode()

    return await asyncio.to_thread(get)


async def test_counts_show_under_the_right_node_and_peer_labels(
    qrpc_network: NetworkFactory, registry: qrpc.Registry, exporter: Prometheus
) -> None:
    net = qrpc_network(registry)
    a, b = await net.nodes(2, timeout=TIMEOUT, plugins=[exporter])
    assert exporter.nodes == sorted([a.id, b.id])

    @b.handler(1)
    async def on_note(ctx: qrpc.Context, msg: Note) -> None:
        pass

    count = 5
    for i in range(count - 1):
        await a.send(b.id, Note(f"note {i}"))
    await asyncio.wait_for(a.request(b.id, Note("last")), TIMEOUT)  # handled: all arrived

    got = scrape(exporter)
    assert got[("qrpc_peers", of(a))] == 1
    assert got[("qrpc_messages_sent_total", of(a))] == count
    assert got[("qrpc_messages_received_total", of(b))] == count
    assert got[("qrpc_messages_received_total", of(a))] == 0  # replies are not counted
    assert got[("qrpc_peer_messages_sent_total", of(a, b))] == count
    assert got[("qrpc_peer_messages_received_total", of(b, a))] == count
    assert got[("qrpc_peer_messages_sent_total", of(b, a))] == 0
    assert got[("qrpc_bytes_sent_total", of(a))] >= got[("qrpc_peer_bytes_sent_total", of(a, b))]
    assert got[("qrpc_peer_bytes_sent_total", of(a, b))] > count * len("note 0")
    assert got[("qrpc_uptime_seconds", of(a))] > 0
    assert got[("qrpc_peer_draining", of(a, b))] == 0
    assert got[("qrpc_peer_queued_bytes", of(a, b))] == 0
    assert got[("qrpc_peer_send_credit_bytes", of(a, b))] > 0
    assert got[("qrpc_peer_inbound_bytes", of(b, a))] >= 0
    assert 0 < got[("qrpc_peer_rtt_seconds", of(a, b))] < TIMEOUT
    stats = a.stats()  # the same figures as the node's own snapshot
    assert got[("qrpc_bytes_received_total", of(a))] <= stats.bytes_in


async def test_a_stopped_nodes_series_disappear(
    qrpc_network: NetworkFactory, registry: qrpc.Registry, exporter: Prometheus
) -> None:
    net = qrpc_network(registry)
    a, b = await net.nodes(2, timeout=TIMEOUT, plugins=[exporter])
    await a.send(b.id, Note("hello"))
    assert node_ids(scrape(exporter)) == {a.id, b.id}

    await b.close()
    await net.wait_unlinked(a, b, timeout=TIMEOUT)
    assert exporter.nodes == [a.id]
    got = scrape(exporter)
    assert node_ids(got) == {a.id}
    assert got[("qrpc_peers", of(a))] == 0
    assert not [labels for _, labels in got if ("peer_id", b.id) in labels]
    assert got[("qrpc_messages_sent_total", of(a))] == 1  # closed links still count


async def test_the_http_endpoint_serves_the_metrics(
    qrpc_network: NetworkFactory, registry: qrpc.Registry
) -> None:
    exp = Prometheus(registry=CollectorRegistry(), port=0)  # any free port
    try:
        assert exp.server_address is not None
        assert exp.server_address[0] == "127.0.0.1"
        assert exp.url == f"http://127.0.0.1:{exp.server_address[1]}/metrics"
        net = qrpc_network(registry)
        a, b = await net.nodes(2, timeout=TIMEOUT, plugins=[exp])
        kind, body = await fetch(exp.url)
        assert kind.startswith("text/plain")
        got = parse(body)
        assert got[("qrpc_peers", of(a))] == got[("qrpc_peers", of(b))] == 1
        assert ("qrpc_peer_rtt_seconds", of(b, a)) in got
    finally:
        exp.close()
    with pytest.raises(urllib.error.URLError):
        await fetch(exp.url)
    with pytest.raises(RuntimeError, match="closed"):
        exp.watch(a)


async def test_a_scrape_from_another_thread_waits_for_the_nodes_loop(
    qrpc_network: NetworkFactory,
    registry: qrpc.Registry,
    exporter: Prometheus,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(qrpc_prometheus, "SNAPSHOT_TIMEOUT", 0.2)
    node = await qrpc_network(registry).node(plugins=[exporter])
    text = await asyncio.to_thread(generate_latest, exporter.registry)
    assert node_ids(parse(text.decode())) == {node.id}  # taken on the loop, which was free

    loop = asyncio.get_running_loop()
    with caplog.at_level(logging.WARNING, "qrpc_prometheus"):
        scraping = loop.run_in_executor(None, generate_latest, exporter.registry)
        time.sleep(1.0)  # noqa: ASYNC251 -- the point: the node's loop is busy, no snapshot
        text = await asyncio.wait_for(scraping, TIMEOUT)
    assert node_ids(parse(text.decode())) == set()
    assert f"node {node.id}: no stats within 0.2 s; left out" in caplog.messages


@pytest.mark.parametrize(
    ("kwargs", "path"),
    [
        ({"port": -1}, "Prometheus.port"),
        ({"port": 65536}, "Prometheus.port"),
        ({"port": "9100"}, "Prometheus.port"),
        ({"port": True}, "Prometheus.port"),
        ({"addr": " "}, "Prometheus.addr"),
        ({"port": 0, "addr": "no-such-host.invalid"}, "Prometheus.port"),
    ],
)
def test_unusable_arguments_raise_config_error(kwargs: dict[str, object], path: str) -> None:
    reg = CollectorRegistry()
    with pytest.raises(qrpc.ConfigError) as caught:
        Prometheus(registry=reg, **kwargs)  # type: ignore[arg-type]
    assert caught.value.path == path
    assert generate_latest(reg) == b""  # nothing left registered


def test_a_busy_port_or_a_second_exporter_is_a_config_error(exporter: Prometheus) -> None:
    with pytest.raises(qrpc.ConfigError, match="has qrpc metrics already") as caught:
        Prometheus(registry=exporter.registry)
    assert caught.value.path == "Prometheus.registry"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(qrpc.ConfigError, match=f"cannot serve on 127.0.0.1:{port}"):
            Prometheus(registry=CollectorRegistry(), port=port)


def test_settings_come_from_the_environment() -> None:
    assert settings_from_env({}) is None
    assert settings_from_env({ENV_PORT: " ", ENV_ADDR: "0.0.0.0"}) is None
    assert settings_from_env({ENV_PORT: "9100"}) == ("127.0.0.1", 9100)
    assert settings_from_env({ENV_PORT: " 9464 ", ENV_ADDR: "::1"}) == ("::1", 9464)
    for bad in ("http", "-1", "65536", "91.0"):
        with pytest.raises(qrpc.ConfigError, match=f"{ENV_PORT}: must be a TCP port") as caught:
            settings_from_env({ENV_PORT: bad})
        assert caught.value.path == ENV_PORT
    with pytest.raises(qrpc.ConfigError) as caught:
        settings_from_env({ENV_PORT: "9100", ENV_ADDR: "http://host"})
    assert caught.value.path == ENV_ADDR


def test_the_entry_point_is_the_module_and_says_whether_it_is_active(
    no_env: pytest.MonkeyPatch,
) -> None:
    assert entry_point_plugin("prometheus") is qrpc_prometheus
    assert qrpc_prometheus.plugin_status().startswith(f"inert: set {ENV_PORT}")
    no_env.setenv(ENV_PORT, "nine")
    assert qrpc_prometheus.plugin_status().startswith(f"inert: {ENV_PORT}: must be a TCP port")
    no_env.setenv(ENV_PORT, "9100")
    assert qrpc_prometheus.plugin_status() == (
        "active: serves /metrics on 127.0.0.1:9100 once a node starts"
    )


async def test_the_installed_plugin_is_inert_without_its_variable(
    qrpc_network: NetworkFactory, registry: qrpc.Registry, no_env: pytest.MonkeyPatch
) -> None:
    net = qrpc_network(registry)
    await net.node(plugins=[qrpc_prometheus])
    assert qrpc_prometheus.installed() is None


async def test_the_installed_plugin_logs_bad_values_and_stays_inert(
    qrpc_network: NetworkFactory,
    registry: qrpc.Registry,
    no_env: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    no_env.setenv(ENV_PORT, "99999")
    net = qrpc_network(registry)
    with caplog.at_level(logging.ERROR, "qrpc_prometheus"):
        node = await net.node(plugins=[qrpc_prometheus])
    [record] = [r for r in caplog.records if r.name == "qrpc_prometheus"]
    assert record.levelno == logging.ERROR
    assert f"node {node.id}: not exporting metrics: {ENV_PORT}: " in record.getMessage()
    assert qrpc_prometheus.installed() is None


async def test_the_installed_plugin_serves_every_node_on_its_port(
    qrpc_network: NetworkFactory, registry: qrpc.Registry, no_env: pytest.MonkeyPatch
) -> None:
    no_env.setenv(ENV_PORT, "0")
    no_env.setenv(ENV_ADDR, "127.0.0.1")
    net = qrpc_network(registry)
    a, b = await net.nodes(2, timeout=TIMEOUT, plugins=[qrpc_prometheus])
    running = qrpc_prometheus.installed()
    assert running is not None
    assert running.url is not None
    assert running.nodes == sorted([a.id, b.id])
    assert qrpc_prometheus.plugin_status() == f"active: serving {running.url} for 2 node(s)"
    got = parse((await fetch(running.url))[1])
    assert got[("qrpc_peers", of(a))] == got[("qrpc_peers", of(b))] == 1

    await a.close()
    assert running.nodes == [b.id]
    assert node_ids(parse((await fetch(running.url))[1])) == {b.id}
    assert qrpc_prometheus.installed() is running  # one server per process
