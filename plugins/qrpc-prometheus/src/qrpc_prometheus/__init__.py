"""qrpc plugin: Prometheus metrics of nodes and their links, read at scrape time.

A `prometheus_client` collector reads ``node.stats()`` of every node it
watches when the registry is collected (a scrape, or `generate_latest`):
nothing is counted per message and nothing runs on the hot path.  Every
series carries a ``node_id`` label; per-link series also carry ``peer_id``.
The README lists the metrics.

A node is watched from `qrpc_node_started` and forgotten at
`qrpc_node_stopped`, so a stopped node's series disappear from the next
scrape.  The snapshot is taken on the node's event loop (scheduled there
from the HTTP server's thread), never concurrently with it.

Two ways to use it:

- **In code**: ``Node(..., plugins=[Prometheus(registry=my_registry, port=None)])``
  adds the collector to `my_registry` (default: prometheus_client's global
  ``REGISTRY``); ``port=9100`` also serves ``/metrics`` over HTTP on
  ``addr`` (default 127.0.0.1).  One instance serves any number of nodes.
- **Installed** (entry point ``prometheus`` in group ``qrpc``): inert unless
  ``QRPC_PROMETHEUS_PORT`` is set; then the first node start serves
  ``/metrics`` of the global ``REGISTRY`` on that port (on
  ``QRPC_PROMETHEUS_ADDR``, default 127.0.0.1) and every node the process
  starts is watched.  Unusable values are logged at ERROR, naming the
  variable, and the plugin stays inert.  Once serving, the variables are
  not read again.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final
from wsgiref.simple_server import WSGIServer

from prometheus_client import REGISTRY, CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from qrpc import ConfigError, Node, hookimpl

if TYPE_CHECKING:
    from qrpc import NodeStats
    from qrpc.hooks.view import NodeView

__all__ = [
    "DEFAULT_ADDR",
    "ENV_ADDR",
    "ENV_PORT",
    "Prometheus",
    "installed",
    "plugin_status",
    "qrpc_node_started",
    "qrpc_node_stopped",
    "settings_from_env",
]

ENV_PORT: Final = "QRPC_PROMETHEUS_PORT"
"""Environment variable: the TCP port the installed plugin serves ``/metrics`` on (0..65535)."""
ENV_ADDR: Final = "QRPC_PROMETHEUS_ADDR"
"""Environment variable: the address the installed plugin listens on (default 127.0.0.1)."""
DEFAULT_ADDR: Final = "127.0.0.1"
"""Where the HTTP server listens unless told otherwise: this host only."""
SNAPSHOT_TIMEOUT: Final = 2.0
"""Seconds a scrape waits for a node's event loop to take its snapshot."""

log = logging.getLogger("qrpc_prometheus")


@dataclass(frozen=True, slots=True)
class _Watched:
    node: Node
    loop: asyncio.AbstractEventLoop | None  # the node's event loop, if watched from one


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


_TOTALS: Final = (
    ("messages_received", "Messages and requests received (replies not counted)"),
    ("messages_sent", "Messages and requests sent (replies not counted)"),
    ("bytes_received", "Bytes received on the links' streams"),
    ("bytes_sent", "Bytes written to the links' streams"),
)
_LINK_GAUGES: Final = (
    ("queued_bytes", "Bytes queued to the peer, waiting for its credit or for QUIC."),
    ("send_credit_bytes", "Bytes the peer lets this node send right now."),
    ("inbound_bytes", "Bytes received from the peer and not yet handled."),
    ("draining", "1 if the peer announced it is shutting down, else 0."),
)


def _families(snapshots: Iterable[NodeStats]) -> list[Metric]:
    """The metric families of `snapshots` (no samples for none: what `describe` lists)."""
    node, peer = ["node_id"], ["node_id", "peer_id"]
    peers = GaugeMetricFamily("qrpc_peers", "Peers with a live link.", labels=node)
    uptime = GaugeMetricFamily(
        "qrpc_uptime_seconds", "Seconds since the node started.", labels=node
    )
    totals = [
        CounterMetricFamily(f"qrpc_{what}", f"{text}, on every link since start.", labels=node)
        for what, text in _TOTALS
    ]
    rtt = GaugeMetricFamily(
        "qrpc_peer_rtt_seconds", "QUIC's smoothed round-trip time of the link.", labels=peer
    )
    gauges = [
        GaugeMetricFamily(f"qrpc_peer_{what}", text, labels=peer) for what, text in _LINK_GAUGES
    ]
    link_totals = [
        CounterMetricFamily(f"qrpc_peer_{what}", f"{text}, on the current link.", labels=peer)
        for what, text in _TOTALS
    ]
    for stats in snapshots:
        node_id = stats.node_id
        peers.add_metric([node_id], stats.peer_count)
        uptime.add_metric([node_id], stats.uptime)
        figures = (stats.messages_in, stats.messages_out, stats.bytes_in, stats.bytes_out)
        for family, value in zip(totals, figures, strict=True):
            family.add_metric([node_id], value)
        for link in stats.peers:
            labels = [node_id, link.peer_id]
            if link.rtt is not None:
                rtt.add_metric(labels, link.rtt)
            values = (link.queued_bytes, link.send_credit, link.inbound_bytes, link.draining)
            for gauge, value in zip(gauges, values, strict=True):
                gauge.add_metric(labels, float(value))
            figures = (link.messages_in, link.messages_out, link.bytes_in, link.bytes_out)
            for family, value in zip(link_totals, figures, strict=True):
                family.add_metric(labels, value)
    return [peers, uptime, *totals, rtt, *gauges, *link_totals]


class _NodesCollector(Collector):
    """Collects the stats of the nodes in `watched` (the exporter's dict) at each scrape."""

    def __init__(self, watched: Mapping[str, _Watched]) -> None:
        self._watched = watched

    def describe(self) -> Iterable[Metric]:
        """The families `collect` yields, without samples (lets a registry refuse a clash)."""
        return _families(())

    def collect(self) -> Iterable[Metric]:
        """The families with the current stats of every watched node."""
        return _families(self._snapshots())

    def _snapshots(self) -> Iterator[NodeStats]:
        here = _running_loop()
        pending: list[tuple[str, concurrent.futures.Future[NodeStats]]] = []
        for node_id, watched in list(self._watched.items()):
            loop = watched.loop
            if loop is None or loop is here:
                yield watched.node.stats()
            else:  # on its own loop, in its thread, between two of its callbacks
                future: concurrent.futures.Future[NodeStats] = concurrent.futures.Future()
                try:
                    loop.call_soon_threadsafe(_take, watched.node, future)
                except RuntimeError:  # the loop is closed: the node is gone
                    continue
                pending.append((node_id, future))
        concurrent.futures.wait([future for _, future in pending], timeout=SNAPSHOT_TIMEOUT)
        for node_id, future in pending:
            if not future.done():
                future.cancel()
                log.warning("node %s: no stats within %.1f s; left out", node_id, SNAPSHOT_TIMEOUT)
            elif (error := future.exception()) is not None:
                log.error("node %s: stats() failed, left out: %r", node_id, error)
            else:
                yield future.result()


def _take(node: Node, future: concurrent.futures.Future[NodeStats]) -> None:
    """Run on the node's loop: its snapshot into `future`."""
    if future.set_running_or_notify_cancel():
        try:
            future.set_result(node.stats())
        except Exception as exc:  # handed to the scraping thread, which logs it
            future.set_exception(exc)


class Prometheus:
    """Export the stats of the nodes this plugin is registered with to Prometheus.

    Args:
        registry: where the collector goes; None: prometheus_client's global
            ``REGISTRY``.
        port: also serve ``/metrics`` of `registry` over HTTP on this TCP
            port (0: any free one, see `server_address`); None: no server.
        addr: the address the HTTP server listens on.

    Raises:
        ConfigError: a value is unusable, `registry` already has qrpc
            metrics (another exporter), or the server cannot listen.
    """

    def __init__(
        self,
        *,
        registry: CollectorRegistry | None = None,
        port: int | None = None,
        addr: str = DEFAULT_ADDR,
    ) -> None:
        if port is not None and (
            isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535
        ):
            raise ConfigError(
                "Prometheus.port", f"must be an int in 0..65535 or None, got {port!r}"
            )
        if not isinstance(addr, str) or not addr.strip():
            raise ConfigError("Prometheus.addr", f"must be a host name or address, got {addr!r}")
        self.registry = REGISTRY if registry is None else registry
        self._watched: dict[str, _Watched] = {}
        self._lock = threading.Lock()  # `watch` and `close` may run on different threads
        self._collector = _NodesCollector(self._watched)
        try:
            self.registry.register(self._collector)
        except ValueError:  # prometheus_client's DuplicateTimeseries
            raise ConfigError(
                "Prometheus.registry",
                "has qrpc metrics already: one exporter serves any number of nodes; "
                "reuse it or give this one another CollectorRegistry",
            ) from None
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None
        if port is not None:
            try:
                self._server, self._thread = start_http_server(port, addr, self.registry)
            except OSError as exc:
                self.registry.unregister(self._collector)
                raise ConfigError(
                    "Prometheus.port", f"cannot serve on {addr}:{port}: {exc}"
                ) from None
            log.info("serving qrpc metrics on %s", self.url)
        self._closed = False

    def __repr__(self) -> str:
        where = self.url or "no HTTP server"
        return f"Prometheus({where}, nodes={self.nodes})"

    @property
    def closed(self) -> bool:
        """Whether `close` was called."""
        return self._closed

    @property
    def nodes(self) -> list[str]:
        """IDs of the nodes being exported, sorted."""
        return sorted(self._watched)

    @property
    def server_address(self) -> tuple[str, int] | None:
        """(host, port) the HTTP server listens on, or None without one."""
        if self._server is None:
            return None
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str | None:
        """The ``/metrics`` URL the HTTP server answers on, or None without one."""
        if self.server_address is None:
            return None
        host, port = self.server_address
        return f"http://[{host}]:{port}/metrics" if ":" in host else f"http://{host}:{port}/metrics"

    def watch(self, node: Node) -> None:
        """Export `node`'s stats from the next scrape on (what `qrpc_node_started` does).

        Called from the node's event loop (or before any runs), so that scrapes
        from other threads take the snapshot there.

        Raises:
            RuntimeError: the exporter is closed.
        """
        with self._lock:
            if self._closed:
                raise RuntimeError(f"{self!r} is closed")
            self._watched[node.id] = _Watched(node, _running_loop())

    def unwatch(self, node: Node | NodeView) -> None:
        """Stop exporting `node` (what `qrpc_node_stopped` does); a no-op if not watched."""
        with self._lock:
            watched = self._watched.get(node.id)
            if watched is not None and watched.node is node:
                del self._watched[node.id]

    def close(self) -> None:
        """Stop the HTTP server, take the collector out of the registry, forget the nodes."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._watched.clear()
        self.registry.unregister(self._collector)
        if self._server is not None and self._thread is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5.0)

    @hookimpl
    def qrpc_node_started(self, node: NodeView) -> None:
        """Watch the node that started."""
        self.watch(_as_node(node))

    @hookimpl
    def qrpc_node_stopped(self, node: NodeView) -> None:
        """Forget the node that stopped: its series leave the next scrape."""
        self.unwatch(node)


def _as_node(view: NodeView) -> Node:
    """The node behind a hook's `NodeView` (hooks receive the `Node` itself); the view
    has no ``stats()``."""
    if not isinstance(view, Node):
        raise TypeError(f"qrpc_prometheus needs a qrpc.Node to read stats from, got {view!r}")
    return view


def settings_from_env(environ: Mapping[str, str] | None = None) -> tuple[str, int] | None:
    """The (addr, port) ``QRPC_PROMETHEUS_ADDR`` and ``QRPC_PROMETHEUS_PORT`` ask for,
    or None if the port is unset (or blank).

    Raises:
        ConfigError: a variable is set to an unusable value (names it).
    """
    env = os.environ if environ is None else environ
    port_text = env.get(ENV_PORT, "").strip()
    if not port_text:
        return None
    if not port_text.isdigit() or int(port_text) > 65535:
        raise ConfigError(ENV_PORT, f"must be a TCP port number in 0..65535, got {port_text!r}")
    addr = env.get(ENV_ADDR, "").strip() or DEFAULT_ADDR
    if any(c.isspace() or c in "/@" for c in addr):
        raise ConfigError(ENV_ADDR, f"must be a host name or IP address, got {addr!r}")
    return addr, int(port_text)


_installed: list[Prometheus] = []  # the installed plugin's exporter, once it is serving


def installed() -> Prometheus | None:
    """The exporter the installed plugin started (at most one per process), or None."""
    return _installed[0] if _installed and not _installed[0].closed else None


def _installed_exporter(node_id: str) -> Prometheus | None:
    """The installed plugin's exporter for a node starting now, started if need be."""
    try:
        settings = settings_from_env()
    except ConfigError as exc:
        log.error("node %s: not exporting metrics: %s", node_id, exc)
        return None
    if settings is None:
        return None
    running = installed()
    if running is not None:  # serving already: the variables are not read again
        return running
    addr, port = settings
    try:
        exporter = Prometheus(port=port, addr=addr)
    except ConfigError as exc:
        log.error("node %s: not exporting metrics (%s=%s, %s=%s): %s",
                  node_id, ENV_ADDR, addr, ENV_PORT, port, exc.reason)  # fmt: skip
        return None
    _installed[:] = [exporter]
    return exporter


def plugin_status() -> str:
    """One line for ``qrpc plugins``: active or inert, and how to change it."""
    running = installed()
    if running is not None:
        return f"active: serving {running.url} for {len(running.nodes)} node(s)"
    try:
        settings = settings_from_env()
    except ConfigError as exc:
        return f"inert: {exc}"
    if settings is None:
        return f"inert: set {ENV_PORT} (and optionally {ENV_ADDR}) to serve /metrics over HTTP"
    addr, port = settings
    return f"active: serves /metrics on {addr}:{port} once a node starts"


@hookimpl
def qrpc_node_started(node: NodeView) -> None:
    """The installed plugin: watch the node if ``QRPC_PROMETHEUS_PORT`` is set."""
    exporter = _installed_exporter(node.id)
    if exporter is not None:
        exporter.watch(_as_node(node))


@hookimpl
def qrpc_node_stopped(node: NodeView) -> None:
    """The installed plugin: forget the node."""
    exporter = installed()
    if exporter is not None:
        exporter.unwatch(node)
