"""Contender: raw aioquic -- the baseline qrpc is measured against.

aioquic's own asyncio API (`aioquic.asyncio.serve` / `connect` with a
`QuicConnectionProtocol` subclass), one long bidirectional stream per
connection, qrpc's 16-byte frame header and the same msgpack bodies as qrpc.
The receiver parses every frame and decodes every body with msgspec, then
calls a plain function per message (the "handler").  No registry, no HELLO,
no credit, no dispatcher task, no mutual TLS: the server presents its
certificate and the client verifies it against the CA, but the client
presents none.

The UDP sockets get the same 4 MiB buffers qrpc requests, and the
`QuicConfiguration` gets the same datagram size, flow-control windows and
congestion control as the qrpc contender of the same run.

asyncio's datagram transport hands over one datagram per event-loop
iteration and `QuicConnectionProtocol` transmits after each one; the
sibling contender `raw_aioquic_batched` drives the same `QuicConnection`
the way qrpc's transport does (a batch of reads, one transmit per loop
turn), so the two raw figures bracket what aioquic itself can do.

Sender backpressure: aioquic buffers whatever is written, so the sender
waits once the stream holds `high_water` unacknowledged bytes (default: the
stream flow-control window) until ACKs bring it under half of that.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any, Final, Protocol

import msgspec
from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.asyncio.server import serve
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import QuicEvent, StreamDataReceived

from benchmarks.bench_transport._common import (
    BATCH,
    HEADER,
    KIND_MESSAGE,
    KIND_REQUEST,
    KIND_RESPONSE,
    VERSION,
    ClientCommands,
    Command,
    FrameParser,
    QuicKnobs,
    Result,
    Worker,
    WorkerSpec,
    quic_state,
    tune_socket,
)
from qrpc.bench.messages import (
    ACK,
    ECHO,
    PAYLOAD,
    SYNC,
    SYNC_REPLY,
    Ack,
    Echo,
    Payload,
    Sync,
    SyncReply,
    payload_data,
)
from qrpc.bench.transport import round_trips

__all__ = ["Driver", "Link", "label", "metrics", "notes", "setup"]

label: Final = "raw_aioquic"
notes: Final = (
    "aioquic asyncio API (one datagram per loop iteration), one stream, qrpc framing + "
    "msgpack; server certificate only (client certificate not verified)"
)
metrics: Final = frozenset({"throughput", "rtt", "connect", "broadcast"})

ALPN: Final = "qrpc-bench/1"
ENCODE: Final = msgspec.msgpack.Encoder().encode
_DECODERS: Final = {
    PAYLOAD: msgspec.msgpack.Decoder(Payload).decode,
    ECHO: msgspec.msgpack.Decoder(Echo).decode,
    SYNC: msgspec.msgpack.Decoder(Sync).decode,
    SYNC_REPLY: msgspec.msgpack.Decoder(SyncReply).decode,
    ACK: msgspec.msgpack.Decoder(Ack).decode,
}


def configuration(spec: WorkerSpec, *, is_client: bool) -> QuicConfiguration:
    """The aioquic configuration of one side, with the run's QUIC knobs."""
    knobs: QuicKnobs = spec.knobs
    config = QuicConfiguration(
        is_client=is_client,
        alpn_protocols=[ALPN],
        idle_timeout=60.0,
        max_datagram_size=knobs.fixed_datagram_size,
        max_data=knobs.max_data,
        max_stream_data=knobs.max_stream_data,
        congestion_control_algorithm=knobs.congestion_control,
    )
    if is_client:
        config.verify_mode = ssl.CERT_REQUIRED
        config.load_verify_locations(spec.certs.ca)
        config.server_name = spec.certs.server_name
    else:
        cert, key = spec.certs.server
        config.load_cert_chain(cert, key)
    return config


class Link:
    """Frames in and out of one stream of one connection; requests matched by ID.

    Subclasses provide ``_quic``, ``_loop`` and ``_transmit_soon()``/``transmit()``
    (as `QuicConnectionProtocol` does) and call `_acked()` after each datagram.
    """

    _quic: QuicConnection
    _loop: asyncio.AbstractEventLoop

    def _link_init(self) -> None:
        self.stream_id: int | None = None
        self.parser = FrameParser(self._on_frame)
        self.count = 0
        "Payloads handled since the last Sync."
        self.on_message: Callable[[Any], None] = self._count
        "Called with each decoded one-way message (the per-message handler)."
        self._next_request = 0
        self._waiters: dict[int, asyncio.Future[Any]] = {}
        self._drained: asyncio.Future[None] | None = None
        self._low_water = 0

    def _transmit_soon(self) -> None:
        raise NotImplementedError

    def transmit(self) -> None:
        raise NotImplementedError

    # -- receiving ---------------------------------------------------------------

    def _stream_data(self, event: StreamDataReceived) -> None:
        if self.stream_id is None:
            self.stream_id = event.stream_id
        self.parser.feed(event.data)

    def _count(self, message: Any) -> None:
        self.count += 1

    def _on_frame(self, kind: int, cmd_id: int, request_id: int, body: bytes | bytearray) -> None:
        message = _DECODERS[cmd_id](body)
        if kind == KIND_MESSAGE:
            self.on_message(message)
        elif kind == KIND_REQUEST:
            if cmd_id == SYNC:
                reply: msgspec.Struct = SyncReply(self.count)
                self.count = 0
            else:
                reply = message  # Echo: answer with the request itself, re-encoded
            self.send_frame(
                KIND_RESPONSE, ECHO if cmd_id == ECHO else SYNC_REPLY, request_id, reply
            )
        elif kind == KIND_RESPONSE:
            waiter = self._waiters.pop(request_id, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(message)

    def _acked(self) -> None:
        drained = self._drained
        if drained is not None and self.buffered() <= self._low_water and not drained.done():
            drained.set_result(None)

    # -- sending -----------------------------------------------------------------

    def open_stream(self) -> None:
        """Client side: pick the one bidirectional stream."""
        self.stream_id = self._quic.get_next_available_stream_id()

    def send_frame(self, kind: int, cmd_id: int, request_id: int, message: msgspec.Struct) -> None:
        """Encode `message`, frame it and queue it on the stream (transmitted this loop turn)."""
        self.send_body(kind, cmd_id, request_id, ENCODE(message))

    def send_body(self, kind: int, cmd_id: int, request_id: int, body: bytes) -> None:
        """Frame an encoded body and queue it on the stream."""
        assert self.stream_id is not None
        self._quic.send_stream_data(
            self.stream_id, HEADER.pack(VERSION, kind, 0, len(body), cmd_id, request_id) + body
        )
        self._transmit_soon()

    async def request(self, cmd_id: int, message: msgspec.Struct) -> Any:
        """Send a REQUEST frame and wait for its RESPONSE."""
        self._next_request += 1
        request_id = self._next_request
        waiter: asyncio.Future[Any] = self._loop.create_future()
        self._waiters[request_id] = waiter
        self.send_frame(KIND_REQUEST, cmd_id, request_id, message)
        return await waiter

    def buffered(self) -> int:
        """Bytes written to the stream and not yet acknowledged (aioquic internals)."""
        if self.stream_id is None:
            return 0
        sender = self._quic._streams[self.stream_id].sender
        return sender._buffer_stop - sender._buffer_start

    async def drain(self, high_water: int) -> None:
        """Wait until fewer than `high_water` / 2 bytes are unacknowledged, if over `high_water`."""
        if self.buffered() < high_water:
            return
        self._low_water = high_water // 2
        self.transmit()
        self._drained = self._loop.create_future()
        try:
            await self._drained
        finally:
            self._drained = None


class RawProtocol(QuicConnectionProtocol, Link):
    """A `Link` on aioquic's stock asyncio protocol."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._link_init()

    def quic_event_received(self, event: QuicEvent) -> None:
        if type(event) is StreamDataReceived:
            self._stream_data(event)

    def datagram_received(self, data: bytes | str, addr: Any) -> None:
        super().datagram_received(data, addr)
        self._acked()


class Server(Protocol):
    """A listening endpoint of a driver."""

    address: tuple[str, int]

    def close(self) -> None: ...


class Driver(Protocol):
    """How a raw contender gets connections: `serve` and `connect`."""

    async def serve(
        self, host: str, config: QuicConfiguration, on_link: Callable[[Link], None]
    ) -> Server: ...

    def connect(
        self, host: str, port: int, config: QuicConfiguration
    ) -> AbstractAsyncContextManager[Link]: ...


class _StockServer:
    def __init__(self, server: Any) -> None:
        self.server = server
        transport = server._transport
        tune_socket(transport.get_extra_info("socket"))
        self.address: tuple[str, int] = tuple(transport.get_extra_info("sockname")[:2])

    def close(self) -> None:
        self.server.close()


class StockDriver:
    """aioquic's `serve` and `connect`, as documented."""

    async def serve(
        self, host: str, config: QuicConfiguration, on_link: Callable[[Link], None]
    ) -> Server:
        def create(*args: Any, **kwargs: Any) -> RawProtocol:
            proto = RawProtocol(*args, **kwargs)
            on_link(proto)
            return proto

        server = await serve(host, 0, configuration=config, create_protocol=create)
        return _StockServer(server)

    @asynccontextmanager
    async def connect(self, host: str, port: int, config: QuicConfiguration) -> AsyncIterator[Link]:
        async with connect(host, port, configuration=config, create_protocol=RawProtocol) as proto:
            assert isinstance(proto, RawProtocol)
            tune_socket(proto._transport.get_extra_info("socket") if proto._transport else None)
            yield proto


class _Server:
    def __init__(self, server: Server) -> None:
        self.server = server
        host, port = server.address
        self.info: dict[str, Any] = {"host": host, "port": port}

    async def run(self, command: Command) -> Result:
        raise ValueError(f"server: unknown command {command!r}")

    async def close(self) -> None:
        self.server.close()


class _Client(ClientCommands):
    def __init__(self, spec: WorkerSpec, driver: Driver) -> None:
        self.spec = spec
        self.driver = driver
        self.info: dict[str, Any] = {}
        self.host = spec.peer_info["host"]
        self.port = spec.peer_info["port"]
        self.config = configuration(spec, is_client=True)
        self.high_water = int(spec.options.get("raw_high_water") or spec.knobs.max_stream_data)
        self.stack = AsyncExitStack()
        self.link: Link

    async def start(self) -> None:
        self.link = await self._connect(self.stack)

    async def _connect(self, stack: AsyncExitStack) -> Link:
        link = await stack.enter_async_context(
            self.driver.connect(self.host, self.port, self.config)
        )
        link.open_stream()
        return link

    async def _reconnect(self) -> None:
        """A fresh connection, so no run inherits another's congestion state."""
        await self.stack.aclose()
        self.stack = AsyncExitStack()
        self.link = await self._connect(self.stack)

    async def throughput(self, size: int, duration: float) -> Result:
        if self.spec.options.get("fresh_connections"):
            await self._reconnect()
        link = self.link
        data = payload_data(size)
        send = link.send_frame
        drain = link.drain
        high_water = self.high_water
        seq = 1 << 24
        sent = 0
        clock = time.perf_counter
        start = clock()
        deadline = start + duration
        while True:
            for _ in range(BATCH):
                send(KIND_MESSAGE, PAYLOAD, 0, Payload(seq, data))
                seq += 1
            sent += BATCH
            await drain(high_water)
            if clock() >= deadline:
                break
        reply = await link.request(SYNC, Sync())
        elapsed = clock() - start
        if reply.count != sent:
            raise RuntimeError(f"server handled {reply.count} messages, {sent} were sent")
        return {"count": sent, "seconds": elapsed, "quic": quic_state(link._quic)}

    async def rtt(self, size: int, count: int) -> Result:
        link = self.link

        async def echo(seq: int, data: bytes) -> int:
            reply: Echo = await link.request(ECHO, Echo(seq, data))
            return reply.seq

        return await round_trips(echo, size, count)

    async def connect_samples(self, count: int) -> Result:
        samples = []
        for _ in range(count):
            async with AsyncExitStack() as stack:
                start = time.perf_counter()
                await self._connect(stack)
                samples.append((time.perf_counter() - start) * 1000)
        return {"samples_ms": samples}

    async def close(self) -> None:
        await self.stack.aclose()


class _Hub:
    """The broadcaster: a server whose connections come from the spokes."""

    def __init__(self, server: Server, links: list[Link]) -> None:
        self.server = server
        self.links = links
        host, port = server.address
        self.info: dict[str, Any] = {"host": host, "port": port}
        self.acks = 0
        self.expected = 0
        self.done: asyncio.Future[None] | None = None

    def _on_ack(self, message: Any) -> None:
        if message.seq == 0:
            return  # a spoke opening its stream
        self.acks += 1
        if self.acks == self.expected and self.done is not None and not self.done.done():
            self.done.set_result(None)

    async def run(self, command: Command) -> Result:
        name = command["cmd"]
        if name == "wait_peers":
            deadline = time.monotonic() + 30
            while len(self._ready()) < command["count"]:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{len(self._ready())} of {command['count']} connected")
                await asyncio.sleep(0.01)
            return {"peers": len(self._ready())}
        if name == "broadcast":
            return await self.broadcast(command["size"], command["count"])
        raise ValueError(f"hub: unknown command {command!r}")

    def _ready(self) -> list[Link]:
        ready = [link for link in self.links if link.stream_id is not None]
        for link in ready:
            link.on_message = self._on_ack
        return ready

    async def broadcast(self, size: int, count: int) -> Result:
        data = payload_data(size)
        links = self._ready()
        loop = asyncio.get_running_loop()
        samples = []
        for seq in range(1 << 24, (1 << 24) + count):
            self.acks = 0
            self.expected = len(links)
            self.done = loop.create_future()
            start = time.perf_counter()
            body = ENCODE(Payload(seq, data))  # encoded once, as qrpc's broadcast does
            for link in links:
                link.send_body(KIND_MESSAGE, PAYLOAD, 0, body)
            await self.done
            samples.append((time.perf_counter() - start) * 1000)
        return {"samples_ms": samples}

    async def close(self) -> None:
        self.server.close()


class _Spokes:
    """`count` client connections to the hub; each acknowledges every Payload."""

    def __init__(self, spec: WorkerSpec, driver: Driver) -> None:
        self.spec = spec
        self.driver = driver
        self.info: dict[str, Any] = {}
        self.stack = AsyncExitStack()

    async def start(self) -> None:
        config = configuration(self.spec, is_client=True)
        count = int(self.spec.options.get("spokes", 20))
        host, port = self.spec.peer_info["host"], self.spec.peer_info["port"]
        for _ in range(count):
            link = await self.stack.enter_async_context(self.driver.connect(host, port, config))
            link.open_stream()
            link.on_message = self._acker(link)
            link.send_frame(KIND_MESSAGE, ACK, 0, Ack(0))  # opens the stream at the hub
        self.info = {"spokes": count}

    @staticmethod
    def _acker(link: Link) -> Callable[[Any], None]:
        def on_message(message: Any) -> None:
            link.send_frame(KIND_MESSAGE, ACK, 0, Ack(message.seq))

        return on_message

    async def run(self, command: Command) -> Result:
        raise ValueError(f"spokes: unknown command {command!r}")

    async def close(self) -> None:
        await self.stack.aclose()


async def setup_with(driver: Driver, role: str, spec: WorkerSpec) -> Worker:
    """Build one side on `driver` (shared by both raw contenders)."""
    if role in ("server", "hub"):
        links: list[Link] = []
        server = await driver.serve(spec.host, configuration(spec, is_client=False), links.append)
        return _Server(server) if role == "server" else _Hub(server, links)
    if role == "client":
        client = _Client(spec, driver)
        await client.start()
        return client
    if role == "spokes":
        spokes = _Spokes(spec, driver)
        await spokes.start()
        return spokes
    raise ValueError(f"unknown role {role!r}")


async def setup(role: str, spec: WorkerSpec) -> Worker:
    """Build one side (see `benchmarks.bench_transport._common`)."""
    return await setup_with(StockDriver(), role, spec)
