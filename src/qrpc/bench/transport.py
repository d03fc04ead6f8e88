"""``qrpc bench transport``: two qrpc nodes in two local processes, measured.

The server process runs a `Node` with three handlers; this process runs the
client node and measures, each figure the median of ``runs`` after a
discarded warm-up:

- ``throughput_100b`` / ``throughput_64k``: `Payload` messages of 100 B or
  64 KiB sent with ``await node.send`` for ``duration`` seconds, then a `Sync`
  request: the server handles messages in order, so its reply (the count)
  proves every message arrived and was handled;
- ``rtt``: `Echo` requests one at a time (p50 and p99);
- ``connect``: a fresh node per sample, timed from ``start()`` to
  ``wait_for_peer()`` (QUIC, TLS with both certificates verified, HELLO).

Both nodes use certificates of a throw-away CA in a temporary directory and
the given `QuicSettings`.  The same handlers and loops are the qrpc contender
of the source tree's ``benchmarks/`` (which compares qrpc with raw aioquic,
NATS, Zenoh and others), so the two report the same thing.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Final

from qrpc.bench.messages import (
    ECHO,
    FIRST_SEQ,
    PAYLOAD,
    SYNC,
    Echo,
    Payload,
    Sync,
    SyncReply,
    payload_data,
    transport_registry,
)
from qrpc.bench.timing import percentile
from qrpc.config import Limits, Peer, QuicSettings
from qrpc.node import Node
from qrpc.runtime.context import Context
from qrpc.tls.certs import issue_ca, issue_node_cert, new_ca_name, write_pem
from qrpc.tls.credentials import TLS

__all__ = [
    "METRICS",
    "BenchNodes",
    "Counter",
    "connect_samples",
    "round_trips",
    "rtt",
    "run",
    "serve_handlers",
    "throughput",
]

METRICS: Final = ("throughput_100b", "throughput_64k", "rtt", "connect")
BATCH: Final = 64
"""Messages sent between two clock reads."""


class Counter:
    """What the server's handlers count (`serve_handlers`)."""

    def __init__(self) -> None:
        self.count = 0


def serve_handlers(node: Node, counter: Counter) -> None:
    """Install the server's handlers: count `Payload`, answer `Echo` with itself,
    answer `Sync` with the count since the last `Sync`."""

    @node.handler(PAYLOAD)
    async def on_payload(ctx: Context, msg: Payload) -> None:
        counter.count += 1

    @node.handler(ECHO)
    async def on_echo(ctx: Context, msg: Echo) -> Echo:
        return msg

    @node.handler(SYNC)
    async def on_sync(ctx: Context, msg: Sync) -> SyncReply:
        count, counter.count = counter.count, 0
        return SyncReply(count)


async def throughput(node: Node, peer_id: str, size: int, duration: float) -> dict[str, Any]:
    """Send `size`-byte Payloads for `duration` s; ``{"count", "seconds"}`` once
    the peer confirmed it handled every one.

    Raises:
        RuntimeError: the peer handled another number of messages.
    """
    send = node.send
    data = payload_data(size)
    seq = FIRST_SEQ
    sent = 0
    clock = time.perf_counter
    start = clock()
    deadline = start + duration
    while True:
        for _ in range(BATCH):
            await send(peer_id, Payload(seq, data))
            seq += 1
        sent += BATCH
        if clock() >= deadline:
            break
    reply = await node.request(peer_id, Sync(), reply=SyncReply, timeout=120)
    elapsed = clock() - start
    if reply.count != sent:
        raise RuntimeError(f"the peer handled {reply.count} messages, {sent} were sent")
    return {"count": sent, "seconds": elapsed}


async def round_trips(
    echo: Callable[[int, bytes], Awaitable[int]], size: int, count: int
) -> dict[str, float]:
    """Time `count` calls of ``echo(seq, data)`` (`data` sized for a `size`-byte
    Echo body), one at a time; each must return `seq`. ``{"p50_us", "p99_us"}``.

    Raises:
        RuntimeError: an echo came back with another sequence number.
    """
    data = payload_data(size)
    clock = time.perf_counter_ns
    samples = []
    for seq in range(FIRST_SEQ, FIRST_SEQ + count):
        start = clock()
        echoed = await echo(seq, data)
        samples.append((clock() - start) / 1000)
        if echoed != seq:
            raise RuntimeError("an Echo came back with another sequence number")
    samples.sort()
    return {"p50_us": percentile(samples, 0.5), "p99_us": percentile(samples, 0.99)}


async def rtt(node: Node, peer_id: str, size: int, count: int) -> dict[str, float]:
    """`count` Echo requests of `size` bytes, one at a time (`round_trips`)."""

    async def echo(seq: int, data: bytes) -> int:
        return (await node.request(peer_id, Echo(seq, data), reply=Echo)).seq

    return await round_trips(echo, size, count)


async def connect_samples(make: Callable[[], Node], peer_id: str, count: int) -> list[float]:
    """Milliseconds from ``start()`` to ``wait_for_peer()`` of `count` fresh nodes."""
    samples = []
    for _ in range(count):
        node = make()
        try:
            start = time.perf_counter()
            await node.start()
            await node.wait_for_peer(peer_id, timeout=30)
            samples.append((time.perf_counter() - start) * 1000)
        finally:
            await node.close()
    return samples


@dataclass(frozen=True)
class BenchNodes:
    """Certificates and settings both processes build their nodes from."""

    ca: str
    server: tuple[str, str]
    client: tuple[str, str]
    dialer: tuple[str, str]
    quic: QuicSettings
    limits: Limits

    @classmethod
    def create(cls, directory: Path, quic: QuicSettings, limits: Limits) -> BenchNodes:
        """A throw-away CA and three node certificates under `directory`."""
        ca = issue_ca(new_ca_name("qrpc bench CA"))
        write_pem(ca, directory / "ca.crt")
        paths = []
        for name in ("server", "client", "dialer"):
            cert, key = directory / f"{name}.crt", directory / f"{name}.key"
            write_pem(issue_node_cert(ca), cert, key)
            paths.append((str(cert), str(key)))
        server, client, dialer = paths
        return cls(str(directory / "ca.crt"), server, client, dialer, quic, limits)

    def node(self, cert: tuple[str, str], peers: Sequence[Peer] = ()) -> Node:
        """A node on 127.0.0.1 with these settings (plugins are not autoloaded)."""
        return Node(
            transport_registry(),
            tls=TLS(self.ca, *cert),
            listen=("127.0.0.1", 0),
            peers=list(peers),
            quic=self.quic,
            limits=self.limits,
            autoload_plugins=False,
        )


def _server_main(nodes: BenchNodes, pipe: Connection) -> None:
    """The server process: serve until the pipe says stop (or closes)."""

    async def serve() -> None:
        node = nodes.node(nodes.server)
        serve_handlers(node, Counter())
        await node.start()
        pipe.send((*node.address, node.id))
        stopped = asyncio.Event()
        asyncio.get_running_loop().add_reader(pipe.fileno(), stopped.set)
        await stopped.wait()
        await node.close()

    asyncio.run(serve())


async def _measure(
    nodes: BenchNodes,
    server: Peer,
    server_id: str,
    metrics: Sequence[str],
    settings: dict[str, Any],
) -> dict[str, list[float]]:
    client = nodes.node(nodes.client, [server])
    values: dict[str, list[float]] = {}
    await client.start()
    try:
        await client.wait_for_peer(server_id, timeout=30)
        for round_ in range(settings["warmup"] + settings["runs"]):
            keep = round_ >= settings["warmup"]
            for metric in metrics:
                for key, value in await _one(nodes, client, server, server_id, metric, settings):
                    if keep:
                        values.setdefault(key, []).append(value)
    finally:
        await client.close()
    return values


async def _one(
    nodes: BenchNodes,
    client: Node,
    server: Peer,
    server_id: str,
    metric: str,
    settings: dict[str, Any],
) -> list[tuple[str, float]]:
    if metric.startswith("throughput"):
        size = 100 if metric == "throughput_100b" else 65536
        done = await throughput(client, server_id, size, settings["duration"])
        if size == 100:
            return [("throughput_100b_msgs", done["count"] / done["seconds"])]
        return [("throughput_64k_mbps", done["count"] * size / done["seconds"] / 1e6)]
    if metric == "rtt":
        figures = await rtt(client, server_id, 64, settings["rtt_count"])
        return [("rtt_p50_us", figures["p50_us"]), ("rtt_p99_us", figures["p99_us"])]
    samples = await connect_samples(
        lambda: nodes.node(nodes.dialer, [server]), server_id, settings["connect_count"]
    )
    return [("connect_ms", statistics.median(samples))]


def run(
    metrics: Sequence[str] = METRICS,
    *,
    quic: QuicSettings | None = None,
    limits: Limits | None = None,
    runs: int = 3,
    warmup: int = 1,
    duration: float = 1.0,
    rtt_count: int = 1000,
    connect_count: int = 5,
) -> dict[str, list[float]]:
    """Measure `metrics` between this process and a server process; return every
    measured value per figure (``throughput_100b_msgs``, ``rtt_p50_us``, ...)."""
    settings = {
        "runs": runs,
        "warmup": warmup,
        "duration": duration,
        "rtt_count": rtt_count,
        "connect_count": connect_count,
    }
    with tempfile.TemporaryDirectory(prefix="qrpc-bench-") as directory:
        nodes = BenchNodes.create(Path(directory), quic or QuicSettings(), limits or Limits())
        context = multiprocessing.get_context("spawn")
        ours, theirs = context.Pipe()
        process = context.Process(target=_server_main, args=(nodes, theirs), daemon=True)
        process.start()
        try:
            if not ours.poll(60):
                raise RuntimeError("the server process did not start within 60 s")
            host, port, server_id = ours.recv()
            server = Peer(host, port, expected_id=server_id)
            return asyncio.run(_measure(nodes, server, server_id, metrics, settings))
        finally:
            ours.send("stop")
            process.join(10)
            if process.is_alive():
                process.kill()
