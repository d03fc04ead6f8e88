"""Plugin hooks: what 0, 1 and N plugins cost, per link and per message.

Two measurements, both in one process (this separates hook dispatch from
the transport; ``bench_transport`` has the cross-process figures):

- **per-link hook dispatch**: one pluggy call of ``qrpc_peer_connected``
  with 0, 1 and 8 plugins implementing it (µs per call);
- **per-message tracing**: two nodes on 127.0.0.1 in one event loop, 100 B
  messages one way, with no plugin, a plugin implementing only a per-link
  hook, and 1 and 4 plugins returning a `qrpc.BaseTracer` (msg/s and the
  ratio to no plugin).  Hook dispatch, not serialisation, is where the
  surprises are.

    python -m benchmarks.bench_hooks [--quick] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a plain script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import qrpc
from qrpc.bench.messages import (
    PAYLOAD,
    SYNC,
    Payload,
    Sync,
    SyncReply,
    payload_data,
    transport_registry,
)
from qrpc.bench.timing import format_table, stat, time_per_call
from qrpc.hooks.manager import get_plugin_manager
from qrpc.testing import TestPKI

__all__ = ["main", "run", "table"]


class _CountingTracer(qrpc.BaseTracer):
    def __init__(self) -> None:
        self.sent = 0
        self.received = 0

    def on_sent(self, event: qrpc.TraceEvent) -> None:
        self.sent += 1

    def on_received(self, event: qrpc.TraceEvent) -> None:
        self.received += 1


class TracerPlugin:
    """Returns a counting tracer for every link."""

    @qrpc.hookimpl
    def qrpc_link_tracer(self, node: Any, peer_id: str, identity: Any) -> qrpc.Tracer:
        return _CountingTracer()


class LinkPlugin:
    """Implements only a per-link hook."""

    @qrpc.hookimpl
    def qrpc_peer_connected(self, node: Any, peer_id: str, identity: Any) -> None:
        return None


CASES: dict[str, Callable[[], list[object]]] = {
    "no plugin": list,
    "1 per-link plugin": lambda: [LinkPlugin()],
    "1 tracer": lambda: [TracerPlugin()],
    "4 tracers": lambda: [TracerPlugin() for _ in range(4)],
}


def dispatch_cost(*, min_time: float, repeat: int) -> dict[str, float]:
    """µs per ``qrpc_peer_connected`` call with 0, 1 and 8 plugins."""
    out = {}
    for count in (0, 1, 8):
        pm = get_plugin_manager([LinkPlugin() for _ in range(count)], autoload=False)
        hook = pm.hook.qrpc_peer_connected

        def call(_: None, hook: Any = hook) -> object:
            return hook(node=None, peer_id="bench", identity=None)

        times = time_per_call(call, None, min_time=min_time, repeat=repeat)
        out[f"built-in + {count} plugins"] = statistics.median(times) * 1e6
    return out


async def _throughput(pki: TestPKI, plugins: Callable[[], list[object]], count: int) -> float:
    registry = transport_registry()
    server = qrpc.Node(registry, tls=pki.node_tls(), plugins=plugins(), autoload_plugins=False)
    handled = 0

    @server.handler(PAYLOAD)
    async def on_payload(ctx: qrpc.Context, msg: Payload) -> None:
        nonlocal handled
        handled += 1

    @server.handler(SYNC)
    async def on_sync(ctx: qrpc.Context, msg: Sync) -> SyncReply:
        nonlocal handled
        count, handled = handled, 0
        return SyncReply(count)

    async with server:
        peer = qrpc.PeerAddress(*server.address, expected_id=server.id)
        client = qrpc.Node(
            registry, tls=pki.node_tls(), peers=[peer], plugins=plugins(), autoload_plugins=False
        )
        async with client:
            await client.wait_for_peer(server.id, timeout=10)
            data = payload_data(100)
            start = time.perf_counter()
            for seq in range(1 << 24, (1 << 24) + count):
                await client.send(server.id, Payload(seq, data))
                if seq % 64 == 0:
                    await asyncio.sleep(0)  # one process: let the receiver run too
            reply = await client.request(server.id, Sync(), reply=SyncReply, timeout=60)
            elapsed = time.perf_counter() - start
            if reply.count != count:
                raise RuntimeError(f"handled {reply.count} of {count}")
    return count / elapsed


def run(*, count: int = 50_000, repeat: int = 5, min_time: float = 0.2) -> dict[str, Any]:
    """Both measurements; returns ``{"dispatch_us": {...}, "messages": {...}}``."""
    messages: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="qrpc-bench-hooks-") as tmp:
        pki = TestPKI(Path(tmp))
        series: dict[str, list[float]] = {name: [] for name in CASES}
        for _ in range(repeat):  # interleaved, so drift hits every case alike
            for name, plugins in CASES.items():
                series[name].append(asyncio.run(_throughput(pki, plugins, count)))
    baseline = statistics.median(series["no plugin"])
    for name, values in series.items():
        summary = stat(values)
        messages[name] = {
            "msgs": summary["median"],
            "spread": summary["spread"],
            "ratio": summary["median"] / baseline,
        }
    return {
        "dispatch_us": dispatch_cost(min_time=min_time, repeat=repeat),
        "messages": messages,
        "count": count,
    }


def table(results: dict[str, Any]) -> str:
    """The human-readable tables."""
    dispatch = format_table(
        ["qrpc_peer_connected dispatch", "µs/call"],
        [[name, us] for name, us in results["dispatch_us"].items()],
        title="Hooks: per-link dispatch (pluggy)",
    )
    rows = [
        [name, r["msgs"], f"{r['ratio']:.2f}x", f"±{r['spread'] * 50:.0f}%"]
        for name, r in results["messages"].items()
    ]
    messages = format_table(
        ["plugins on both nodes", "msg/s", "vs none", "spread"],
        rows,
        title=f"Hooks: 100 B messages, two nodes in one process ({results['count']:,} per run)",
    )
    return f"{dispatch}\n\n{messages}"


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description="Cost of qrpc plugin hooks and tracers.")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    results = run(count=10_000, repeat=3, min_time=0.05) if args.quick else run()
    print(json.dumps(results, indent=2) if args.json else table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
