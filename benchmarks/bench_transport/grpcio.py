"""Contender: grpcio's asyncio API (``grpc.aio``) over TCP with mutual TLS.

Generic handlers (no protoc, no codegen): request and reply are the same
msgpack bytes qrpc carries, decoded with msgspec on the receiving side.
The server requires and verifies a client certificate
(``require_client_auth=True``) from the same CA as qrpc's; the client
checks the server's certificate name through ``grpc.ssl_target_name_override``.

- rtt: a unary ``Echo`` call, one at a time;
- throughput: one client-streaming ``Stream`` call fed by an async
  generator for the run's duration; its reply carries the count handled;
- connect: a new channel (own subchannel pool, so a new TCP + TLS
  connection) until ``channel_ready()``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final

import grpc  # type: ignore[import-untyped,import-not-found,unused-ignore]
from grpc import aio  # type: ignore[import-untyped,import-not-found,unused-ignore]

from benchmarks._data import DECODE_ECHO, DECODE_PAYLOAD, DECODE_REPLY, ENCODE
from benchmarks.bench_transport._common import (
    BATCH,
    ClientCommands,
    Command,
    Result,
    Worker,
    WorkerSpec,
)
from qrpc.bench.messages import Echo, Payload, SyncReply, payload_data
from qrpc.bench.transport import round_trips

label: Final = "grpcio"
notes: Final = (
    "grpc.aio over TCP, mutual TLS (require_client_auth), msgpack bytes, generic handlers"
)
metrics: Final = frozenset({"throughput", "rtt", "connect"})

SERVICE: Final = "qrpcbench.Bench"


async def _echo(request: bytes, context: Any) -> bytes:
    return ENCODE(DECODE_ECHO(request))


async def _stream(requests: AsyncIterator[bytes], context: Any) -> bytes:
    count = 0
    async for body in requests:
        DECODE_PAYLOAD(body)
        count += 1
    return ENCODE(SyncReply(count))


class _Server:
    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        self.server = aio.server()
        self.info: dict[str, Any] = {}
        certs = spec.certs
        cert, key = certs.server
        self.credentials = grpc.ssl_server_credentials(
            [(Path(key).read_bytes(), Path(cert).read_bytes())],
            root_certificates=Path(certs.ca).read_bytes(),
            require_client_auth=True,
        )

    async def start(self) -> None:
        handler = grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "Echo": grpc.unary_unary_rpc_method_handler(_echo),
                "Stream": grpc.stream_unary_rpc_method_handler(_stream),
            },
        )
        self.server.add_generic_rpc_handlers((handler,))
        host = self.spec.host
        port = self.server.add_secure_port(f"{host}:0", self.credentials)
        await self.server.start()
        self.info = {"host": host, "port": port}

    async def run(self, command: Command) -> Result:
        raise ValueError(f"server: unknown command {command!r}")

    async def close(self) -> None:
        await self.server.stop(None)


class _Client(ClientCommands):
    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        certs = spec.certs
        cert, key = certs.client
        self.credentials = grpc.ssl_channel_credentials(
            root_certificates=Path(certs.ca).read_bytes(),
            private_key=Path(key).read_bytes(),
            certificate_chain=Path(cert).read_bytes(),
        )
        self.target = f"{spec.peer_info['host']}:{spec.peer_info['port']}"
        self.options = [
            ("grpc.ssl_target_name_override", certs.server_name),
            ("grpc.use_local_subchannel_pool", 1),
        ]
        self.channel = self._channel()
        self.echo = self.channel.unary_unary(f"/{SERVICE}/Echo")
        self.stream = self.channel.stream_unary(f"/{SERVICE}/Stream")
        self.info: dict[str, Any] = {}

    def _channel(self) -> aio.Channel:
        return aio.secure_channel(self.target, self.credentials, options=self.options)

    async def start(self) -> None:
        await self.channel.channel_ready()

    async def _reconnect(self) -> None:
        """A fresh channel (own subchannel pool: a new TCP + TLS connection)."""
        await self.channel.close()
        self.channel = self._channel()
        self.echo = self.channel.unary_unary(f"/{SERVICE}/Echo")
        self.stream = self.channel.stream_unary(f"/{SERVICE}/Stream")
        await self.channel.channel_ready()

    async def throughput(self, size: int, duration: float) -> Result:
        if self.spec.options.get("fresh_connections"):
            await self._reconnect()
        data = payload_data(size)
        sent = 0
        clock = time.perf_counter
        start = clock()
        deadline = start + duration

        async def requests() -> AsyncIterator[bytes]:
            nonlocal sent
            seq = 1 << 24
            while True:
                for _ in range(BATCH):
                    yield ENCODE(Payload(seq, data))
                    seq += 1
                sent += BATCH
                if clock() >= deadline:
                    return

        reply = DECODE_REPLY(await self.stream(requests()))
        elapsed = clock() - start
        if reply.count != sent:
            raise RuntimeError(f"server handled {reply.count} messages, {sent} were sent")
        return {"count": sent, "seconds": elapsed}

    async def rtt(self, size: int, count: int) -> Result:
        call = self.echo

        async def echo(seq: int, data: bytes) -> int:
            return DECODE_ECHO(await call(ENCODE(Echo(seq, data)))).seq

        return await round_trips(echo, size, count)

    async def connect_samples(self, count: int) -> Result:
        samples = []
        for _ in range(count):
            start = time.perf_counter()
            channel = self._channel()
            try:
                await channel.channel_ready()
                samples.append((time.perf_counter() - start) * 1000)
            finally:
                await channel.close()
        return {"samples_ms": samples}

    async def close(self) -> None:
        await self.channel.close()


async def setup(role: str, spec: WorkerSpec) -> Worker:
    """Build one side (see `benchmarks.bench_transport._common`)."""
    worker: _Server | _Client
    if role == "server":
        worker = _Server(spec)
    elif role == "client":
        worker = _Client(spec)
    else:
        raise ValueError(f"grpcio has no role {role!r}")
    await worker.start()
    return worker
