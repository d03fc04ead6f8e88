"""Contender: qrpc -- `qrpc.Node` end to end, as an application uses it.

Mutual TLS with certificates from `qrpc.testing.TestPKI` (both sides verify
the other inside the handshake), HELLO, message credit, the per-peer
dispatcher and an ``async def`` handler per message.  Plugins are not
autoloaded (the core is measured, not whatever happens to be installed).

- throughput, rtt, connect: the handlers and loops of ``qrpc bench transport``
  (`qrpc.bench.transport`: ``await node.send`` then a ``Sync`` request whose
  reply proves every message was handled; ``Echo`` requests one at a time; a
  fresh node per connect sample, timed from ``start()`` to ``wait_for_peer()``).
- broadcast: ``await node.broadcast(Payload(...))`` to 20 nodes, each
  answering with an ``Ack``; timed until the 20th Ack is handled.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Final

import qrpc
from benchmarks.bench_transport._common import (
    ClientCommands,
    Command,
    Result,
    Worker,
    WorkerSpec,
    quic_state,
)
from qrpc.bench.messages import (
    ACK,
    FIRST_SEQ,
    PAYLOAD,
    Ack,
    Payload,
    payload_data,
    transport_registry,
)
from qrpc.bench.transport import Counter, connect_samples, rtt, serve_handlers, throughput

label: Final = "qrpc"
notes: Final = "qrpc.Node: mutual TLS verified both ways, HELLO, credit, dispatcher, async handler"
metrics: Final = frozenset({"throughput", "rtt", "connect", "broadcast"})


def quic_settings(spec: WorkerSpec) -> qrpc.QuicSettings:
    """The run's QUIC knobs as qrpc settings."""
    knobs = spec.knobs
    return qrpc.QuicSettings(
        max_datagram_size=knobs.max_datagram_size,
        path_mtu_discovery=knobs.path_mtu_discovery,
        max_data=knobs.max_data,
        max_stream_data=knobs.max_stream_data,
        congestion_control=knobs.congestion_control,  # type: ignore[arg-type]
    )


def limits(spec: WorkerSpec) -> qrpc.Limits:
    """`qrpc.Limits`, with any overrides from ``--qrpc-limit name=value``."""
    return qrpc.Limits(**spec.options.get("qrpc_limits", {}))


def make_node(
    spec: WorkerSpec, cert: tuple[str, str], peers: list[qrpc.Peer] | None = None
) -> qrpc.Node:
    """A benchmark node on the worker's address (127.0.0.1) with the run's settings."""
    return qrpc.Node(
        transport_registry(),
        tls=qrpc.TLS(spec.certs.ca, *cert),
        listen=(spec.host, 0),
        peers=peers or [],
        quic=quic_settings(spec),
        limits=limits(spec),
        autoload_plugins=False,
    )


class _Server:
    def __init__(self, spec: WorkerSpec) -> None:
        self.node = make_node(spec, spec.certs.server)
        serve_handlers(self.node, Counter())  # the handlers of `qrpc bench transport`
        self.info: dict[str, Any] = {}

    async def start(self) -> None:
        await self.node.start()
        host, port = self.node.address
        self.info = {"host": host, "port": port, "node_id": self.node.id}

    async def run(self, command: Command) -> Result:
        raise ValueError(f"server: unknown command {command!r}")

    async def close(self) -> None:
        await self.node.close()


class _Client(ClientCommands):
    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        info = spec.peer_info
        self.server_id: str = info["node_id"]
        self.peer = qrpc.PeerAddress(info["host"], info["port"], expected_id=self.server_id)
        self.node = make_node(spec, spec.certs.client, [self.peer])
        self.info: dict[str, Any] = {}

    async def start(self) -> None:
        await self.node.start()
        await self.node.wait_for_peer(self.server_id, timeout=30)
        self.info = {"node_id": self.node.id}

    async def _reconnect(self) -> None:
        """A fresh node and link, so no run inherits another's congestion state."""
        await self.node.close()
        self.node = make_node(self.spec, self.spec.certs.client, [self.peer])
        await self.start()

    async def throughput(self, size: int, duration: float) -> Result:
        if self.spec.options.get("fresh_connections"):
            await self._reconnect()
        done = await throughput(self.node, self.server_id, size, duration)
        return {**done, "quic": self._quic_state()}

    def _quic_state(self) -> dict[str, float]:
        run = self.node._run  # private: QUIC congestion state is not part of the API
        link = run.table.get(self.server_id) if run is not None else None
        return quic_state(link.conn.quic) if link is not None else {}

    async def rtt(self, size: int, count: int) -> Result:
        return await rtt(self.node, self.server_id, size, count)

    async def connect_samples(self, count: int) -> Result:
        def dialer() -> qrpc.Node:
            return make_node(self.spec, self.spec.certs.dialer, [self.peer])

        return {"samples_ms": await connect_samples(dialer, self.server_id, count)}

    async def close(self) -> None:
        await self.node.close()


class _Hub:
    def __init__(self, spec: WorkerSpec) -> None:
        self.node = node = make_node(spec, spec.certs.server)
        self.info: dict[str, Any] = {}
        self.acks = 0
        self.expected = 0
        self.done: asyncio.Future[None] | None = None

        @node.handler(ACK)
        async def on_ack(ctx: qrpc.Context, msg: Ack) -> None:
            self.acks += 1
            if self.acks == self.expected and self.done is not None and not self.done.done():
                self.done.set_result(None)

    async def start(self) -> None:
        await self.node.start()
        host, port = self.node.address
        self.info = {"host": host, "port": port, "node_id": self.node.id}

    async def run(self, command: Command) -> Result:
        name = command["cmd"]
        if name == "wait_peers":
            deadline = time.monotonic() + 60
            while len(self.node.peers()) < command["count"]:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{len(self.node.peers())} of {command['count']} connected")
                await asyncio.sleep(0.01)
            return {"peers": len(self.node.peers())}
        if name == "broadcast":
            return await self.broadcast(command["size"], command["count"])
        raise ValueError(f"hub: unknown command {command!r}")

    async def broadcast(self, size: int, count: int) -> Result:
        node = self.node
        data = payload_data(size)
        loop = asyncio.get_running_loop()
        samples = []
        for seq in range(FIRST_SEQ, FIRST_SEQ + count):
            self.acks = 0
            self.expected = len(node.peers())
            self.done = loop.create_future()
            start = time.perf_counter()
            sent = await node.broadcast(Payload(seq, data))
            if sent != self.expected:
                raise RuntimeError(f"broadcast reached {sent} of {self.expected} peers")
            await self.done
            samples.append((time.perf_counter() - start) * 1000)
        return {"samples_ms": samples}

    async def close(self) -> None:
        await self.node.close()


class _Spokes:
    def __init__(self, spec: WorkerSpec) -> None:
        info = spec.peer_info
        hub = qrpc.PeerAddress(info["host"], info["port"], expected_id=info["node_id"])
        count = int(spec.options.get("spokes", 20))
        self.nodes = [make_node(spec, cert, [hub]) for cert in spec.certs.spokes[:count]]
        self.hub_id: str = info["node_id"]
        self.info: dict[str, Any] = {"spokes": len(self.nodes)}
        for node in self.nodes:

            @node.handler(PAYLOAD)
            async def on_payload(ctx: qrpc.Context, msg: Payload) -> None:
                await ctx.send(ctx.peer_id, Ack(msg.seq))

    async def start(self) -> None:
        for node in self.nodes:
            await node.start()
        for node in self.nodes:
            await node.wait_for_peer(self.hub_id, timeout=60)

    async def run(self, command: Command) -> Result:
        raise ValueError(f"spokes: unknown command {command!r}")

    async def close(self) -> None:
        await asyncio.gather(*(node.close() for node in self.nodes))


async def setup(role: str, spec: WorkerSpec) -> Worker:
    """Build one side (see `benchmarks.bench_transport._common`)."""
    worker: _Server | _Client | _Hub | _Spokes
    if role == "server":
        worker = _Server(spec)
    elif role == "client":
        worker = _Client(spec)
    elif role == "hub":
        worker = _Hub(spec)
    elif role == "spokes":
        worker = _Spokes(spec)
    else:
        raise ValueError(f"unknown role {role!r}")
    await worker.start()
    return worker
