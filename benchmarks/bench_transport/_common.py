"""What the runner and the contenders share: specs, commands, framing, sockets.

Every contender module (`raw_aioquic`, `qrpc_node`, `grpcio`, `pyzmq`)
exposes the same names:

- ``label``: the name in tables and JSON keys;
- ``notes``: one line on what exactly is measured (TLS, framing, ...);
- ``metrics``: the commands it supports;
- ``async def setup(role, spec) -> Worker``: build one side in a worker
  process.  Roles: ``server`` (started first, its ``info`` is passed to the
  other side), ``client`` (runs the transport commands), ``hub`` (started
  first, runs ``broadcast``) and ``spokes`` (20 receivers dialing the hub).

A `Worker` has ``info`` (sent to the runner once ready) and
``async run(command) -> dict`` / ``async close()``.  Commands are plain
dicts (``{"cmd": "throughput", "size": 100, "duration": 1.0}``) so they
cross the process boundary as they are.
"""

from __future__ import annotations

import contextlib
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

__all__ = [
    "BATCH",
    "HEADER",
    "HEADER_SIZE",
    "KIND_MESSAGE",
    "KIND_REQUEST",
    "KIND_RESPONSE",
    "SOCKET_BUFFER",
    "CertPaths",
    "ClientCommands",
    "Command",
    "FrameParser",
    "frame",
    "quic_state",
    "QuicKnobs",
    "Result",
    "WorkerSpec",
    "Worker",
    "tune_socket",
]

HEADER: Final = struct.Struct("!BBHIII")
"""qrpc's frame header (`qrpc.wire.frames.HEADER`): version, kind, flags, length,
cmd_id, request_id.  Redefined here so the raw contender imports nothing from qrpc."""
HEADER_SIZE: Final = HEADER.size
VERSION: Final = 2
KIND_MESSAGE: Final = 2
KIND_REQUEST: Final = 3
KIND_RESPONSE: Final = 4
SOCKET_BUFFER: Final = 4 * 1024 * 1024
"""SO_RCVBUF/SO_SNDBUF for every UDP socket, as qrpc's transport requests."""
BATCH: Final = 64
"""Messages between two clock reads in the throughput senders."""

Command = dict[str, Any]
Result = dict[str, Any]


@dataclass(frozen=True)
class QuicKnobs:
    """The QUIC settings applied identically to qrpc and raw aioquic in one run."""

    max_datagram_size: int = 1200
    max_data: int = 4 * 1024 * 1024
    max_stream_data: int = 4 * 1024 * 1024
    congestion_control: str = "reno"
    path_mtu_discovery: bool = False
    """``dgram=auto``: qrpc starts at 1200 and discovers the size the path carries
    (16383 on loopback); raw aioquic, which cannot, is given that size."""
    veth_mtu: int | None = None
    """``veth=1500``: run across a veth pair of this MTU between two network
    namespaces (`benchmarks.bench_transport.netns`) instead of loopback."""

    @property
    def fixed_datagram_size(self) -> int:
        """The datagram size for a contender that cannot discover it: with ``auto``,
        what the path carries (16383 on loopback, the veth MTU less 28 on a veth)."""
        if self.path_mtu_discovery and self.veth_mtu is not None:
            return min(self.max_datagram_size, self.veth_mtu - 28)
        return self.max_datagram_size

    @property
    def label(self) -> str:
        """Short name, e.g. ``dgram=1200``, plus any non-default windows or congestion."""
        parts = ["dgram=auto" if self.path_mtu_discovery else f"dgram={self.max_datagram_size}"]
        default = QuicKnobs()
        if self.max_data != default.max_data or self.max_stream_data != default.max_stream_data:
            parts.append(f"win={self.max_data >> 20}M/{self.max_stream_data >> 20}M")
        if self.congestion_control != default.congestion_control:
            parts.append(self.congestion_control)
        if self.veth_mtu is not None:
            parts.append(f"veth={self.veth_mtu}")
        return ",".join(parts)


@dataclass(frozen=True)
class CertPaths:
    """PEM files made once by the runner (`qrpc.testing.TestPKI`) for every worker."""

    ca: str
    server: tuple[str, str]
    client: tuple[str, str]
    dialer: tuple[str, str]
    """A third identity for the connection-setup samples (qrpc allows one link per pair)."""
    spokes: tuple[tuple[str, str], ...] = ()
    server_id: str = ""
    server_name: str = ""
    """The server certificate's DNS SAN, for the TLS name check of raw aioquic and grpc."""


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker process needs (pickled to the spawned child)."""

    contender: str
    role: str
    knobs: QuicKnobs
    certs: CertPaths
    peer_info: dict[str, Any] = field(default_factory=dict)
    cpu: int | None = None
    profile: str | None = None
    """``pyinstrument`` or ``cprofile`` to profile the commands, else None."""
    profile_path: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    """Contender-specific options (e.g. ``spokes`` count, qrpc ``limits``)."""
    host: str = "127.0.0.1"
    """The address this side binds (its end of the veth pair in a veth run)."""
    netns: str | None = None
    """The network namespace the worker enters first (veth runs)."""


class Worker(Protocol):
    """One side of a contender, living in its own process."""

    info: dict[str, Any]

    async def run(self, command: Command) -> Result: ...

    async def close(self) -> None: ...


class ClientCommands:
    """The client side's command dispatch, shared by the async contenders:
    each implements `throughput`, `rtt` and `connect_samples`."""

    async def run(self, command: Command) -> Result:
        """Run one measuring command from the runner."""
        name = command["cmd"]
        if name == "throughput":
            return await self.throughput(command["size"], command["duration"])
        if name == "rtt":
            return await self.rtt(command["size"], command["count"])
        if name == "connect":
            return await self.connect_samples(command["count"])
        raise ValueError(f"client: unknown command {command!r}")

    async def throughput(self, size: int, duration: float) -> Result:
        raise NotImplementedError

    async def rtt(self, size: int, count: int) -> Result:
        raise NotImplementedError

    async def connect_samples(self, count: int) -> Result:
        raise NotImplementedError


class FrameParser:
    """The raw contenders' frame parser: qrpc's header, no checks, no state machine.

    Calls ``on_frame(kind, cmd_id, request_id, body)`` for every complete
    frame, in order.  Bodies are copies (bytes or bytearray).
    """

    __slots__ = ("_buf", "_on_frame")

    def __init__(self, on_frame: Callable[[int, int, int, bytes | bytearray], None]) -> None:
        self._buf = bytearray()
        self._on_frame = on_frame

    def feed(self, data: bytes) -> None:
        """Append received bytes and deliver every complete frame."""
        buf: bytes | bytearray
        if self._buf:
            self._buf += data
            buf = self._buf
        else:
            buf = data
        size = len(buf)
        pos = 0
        unpack = HEADER.unpack_from
        on_frame = self._on_frame
        while size - pos >= HEADER_SIZE:
            _, kind, _, length, cmd_id, request_id = unpack(buf, pos)
            start = pos + HEADER_SIZE
            end = start + length
            if end > size:
                break
            on_frame(kind, cmd_id, request_id, buf[start:end])
            pos = end
        if buf is data:
            if pos < size:
                self._buf = bytearray(memoryview(data)[pos:])
        elif pos == size:
            self._buf = bytearray()
        elif pos:
            del self._buf[:pos]


def quic_state(quic: Any) -> dict[str, float]:
    """Congestion state of an aioquic `QuicConnection` (private attributes; diagnostics only).

    ``cwnd`` bytes, smoothed RTT and the pacer's interval between packets:
    throughput runs report them so a contender stuck in a slow pacing state
    shows it.
    """
    try:
        loss = quic._loss
        packet_time = loss._pacer.packet_time
        return {
            "cwnd_kib": round(loss.congestion_window / 1024, 1),
            "srtt_ms": round(loss._rtt_smoothed * 1000, 3),
            "pacing_us": round(packet_time * 1e6, 1) if packet_time else 0.0,
            "datagram": quic._max_datagram_size,
        }
    except AttributeError:  # another aioquic version: no diagnostics
        return {}


def frame(kind: int, cmd_id: int, request_id: int, body: bytes) -> bytes:
    """One frame: qrpc's 16-byte header, then `body`."""
    return HEADER.pack(VERSION, kind, 0, len(body), cmd_id, request_id) + body


def tune_socket(sock: socket.socket | None) -> None:
    """Give a UDP socket the buffers qrpc's transport asks for (fair comparison)."""
    if sock is None:
        return
    for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER)
