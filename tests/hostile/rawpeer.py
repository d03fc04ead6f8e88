"""A raw qrpc peer built on plain aioquic, for tests that need a peer that misbehaves.

It completes real mutual TLS with a certificate from the test CA and speaks
qrpc framing through `qrpc.wire` only, so it can do what a `qrpc.Node` never
does: flood, lie about credit, forge frames, stop reading, reset streams.

- `RawClient`: dials a node (``async with RawClient.connect(pki, node) as peer``).
- `RawServer`: listens; a node dials it (``server = await RawServer.start(pki)``).

Both expose the same `RawProtocol`: ``peer.send_frame(...)``, ``peer.frames``
(decoded frames received), ``peer.terminated`` (a future of the connection's
close) and ``peer.quic`` for raw aioquic access.
"""

from __future__ import annotations

import asyncio
import random
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.asyncio.server import QuicServer, serve
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import (
    ConnectionTerminated,
    DatagramFrameReceived,
    QuicEvent,
    StreamDataReceived,
)

import qrpc
from qrpc.testing import TestPKI
from qrpc.wire import FrameDecoder, FrameKind, Hello, encode_frame
from qrpc.wire.hello import encode_hello

ALPN = "qrpc/2"  # protocol version 2 (qrpc.transport.mtls.ALPN)
STREAM = 0
WINDOW = 8 * 1024 * 1024
MAX_HEADER_BYTES = 4096  # what the raw peer announces it accepts (Limits.max_header_bytes)


def hello_frame(
    node_id: str, *, codecs: tuple[str, ...] = ("msgpack",), window: int = WINDOW
) -> bytes:
    """A HELLO frame for `node_id` (with no schema: the raw peer does not check)."""
    hello = Hello(
        node_id,
        random.getrandbits(62),
        list(codecs),
        4 * 1024 * 1024,
        window,
        max_header_bytes=MAX_HEADER_BYTES,
        schema=b"",
    )
    return encode_frame(FrameKind.HELLO, encode_hello(hello))


class RawProtocol(QuicConnectionProtocol):
    """aioquic protocol that decodes qrpc frames on stream 0 and records them."""

    on_frame: Callable[[RawProtocol, Any], None] | None = None
    node_id: str = ""
    "The raw peer's own node ID (the one in its certificate)."

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.decoder = FrameDecoder(64 * 1024 * 1024)
        self.frames: list[Any] = []
        self.terminated: asyncio.Future[ConnectionTerminated] = (
            asyncio.get_running_loop().create_future()
        )
        self.got_hello = asyncio.Event()
        self.datagrams: list[bytes] = []
        "QUIC DATAGRAM frames received (only with ``datagrams=True``)."
        self.reading = True
        "False: datagrams are dropped unread (no ACKs go back), see `stop_reading`."

    def datagram_received(self, data: bytes | str, addr: Any) -> None:
        if self.reading:
            super().datagram_received(data, addr)

    def stop_reading(self) -> None:
        """Drop every datagram from now on: the peer sees a reader that never acknowledges."""
        self.reading = False

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, StreamDataReceived) and event.stream_id == STREAM:
            self.decoder.feed(event.data)
            while (frame := self.decoder.next_frame()) is not None:
                self.frames.append(frame)
                if frame.kind is FrameKind.HELLO:
                    self.got_hello.set()
                if self.on_frame is not None:
                    self.on_frame(self, frame)
        elif isinstance(event, DatagramFrameReceived):
            self.datagrams.append(event.data)
        elif isinstance(event, ConnectionTerminated) and not self.terminated.done():
            self.terminated.set_result(event)

    def send_frame(self, data: bytes, *, end_stream: bool = False) -> None:
        """Write raw bytes (one or more encoded frames) on stream 0 and transmit."""
        self._quic.send_stream_data(STREAM, data, end_stream)
        self.transmit()

    @property
    def quic(self) -> Any:
        """The aioquic `QuicConnection`."""
        return self._quic

    def unacked(self) -> int:
        """Bytes written on stream 0 that the peer has not acknowledged."""
        stream = self._quic._streams.get(STREAM)
        if stream is None:
            return 0
        return int(stream.sender._buffer_stop - stream.sender._buffer_start)


def _configuration(
    pki: TestPKI, *, is_client: bool, node_id: str | None
) -> tuple[QuicConfiguration, str]:
    issued = pki.issue(node_id)
    config = QuicConfiguration(
        is_client=is_client, alpn_protocols=[ALPN], verify_mode=ssl.CERT_NONE, idle_timeout=30
    )
    config.certificate = issued.cert
    config.private_key = issued.key
    assert issued.node_id is not None
    return config, issued.node_id


class RawClient:
    """Dial a node as a raw peer."""

    @staticmethod
    @asynccontextmanager
    async def connect(
        pki: TestPKI,
        node: qrpc.Node,
        *,
        node_id: str | None = None,
        hello: bool = True,
        window: int = WINDOW,
        datagrams: bool = False,
    ) -> AsyncIterator[RawProtocol]:
        """Complete mutual TLS with `node` (and send HELLO, granting `window`, unless
        `hello` is False); with `datagrams`, announce that QUIC DATAGRAM frames are welcome."""
        config, peer_id = _configuration(pki, is_client=True, node_id=node_id)
        if datagrams:
            config.max_datagram_frame_size = 65536
        host, port = node.address
        async with connect(host, port, configuration=config, create_protocol=RawProtocol) as proto:
            assert isinstance(proto, RawProtocol)
            proto.node_id = peer_id
            if hello:
                proto.send_frame(hello_frame(peer_id, window=window))
            yield proto


class RawServer:
    """A raw peer that a node dials; `on_frame(proto, frame)` runs for each frame it gets."""

    def __init__(self, server: QuicServer, node_id: str, address: tuple[str, int]) -> None:
        self._server = server
        self.node_id = node_id
        self.address = address
        self.protocols: list[RawProtocol] = []

    @classmethod
    async def start(
        cls, pki: TestPKI, on_frame: Callable[[RawProtocol, Any], None] | None = None
    ) -> RawServer:
        config, node_id = _configuration(pki, is_client=False, node_id=None)
        protocols: list[RawProtocol] = []

        def create(*args: Any, **kwargs: Any) -> RawProtocol:
            proto = RawProtocol(*args, **kwargs)
            proto.on_frame = on_frame
            protocols.append(proto)
            return proto

        server = await serve("127.0.0.1", 0, configuration=config, create_protocol=create)
        transport = server._transport
        assert transport is not None
        address = transport.get_extra_info("sockname")[:2]
        self = cls(server, node_id, address)
        self.protocols = protocols
        return self

    def peer(self) -> qrpc.Peer:
        """The bootstrap entry a node dials to reach this server."""
        return qrpc.Peer(*self.address, expected_id=self.node_id)

    def close(self) -> None:
        self._server.close()
