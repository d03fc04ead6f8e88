"""Contender: Zenoh -- two peers over QUIC with mutual TLS (eclipse-zenoh, no router).

Peer mode, two processes: the server worker's session listens on
``quic/127.0.0.1:<port>`` (a port picked free first: the Python API does not
report the one it bound), the client worker's session connects to it.  The
``zenoh_tls`` contender is the same over TLS on TCP (``tls/...``).  Multicast
and gossip scouting are off (open() would otherwise wait for scouting), and so
is shared memory (payloads over a few KiB between local processes would skip
the network path).

Mutual TLS: the listener requires a client certificate from the same CA
(``enable_mtls``) and the dialer checks the listener's name
(``verify_name_on_connect``) against the endpoint's host, 127.0.0.1.  qrpc's
node certificates carry only a DNS SAN, so the server worker issues its own
CA and qrpc node certificates (`qrpc.tls.certs`, the same key type) with an
extra IP SAN 127.0.0.1 for the listener, and passes the client's files on.
Before anything is measured, the server worker checks that a session
without a certificate is refused while the same session with one connects.

- throughput: a declared ``Publisher`` (``CongestionControl.BLOCK``: nothing
  is dropped) puts `Payload` bodies for the run's duration, then a declared
  ``Querier`` sends a `Sync` query on the same key, carrying how many were
  sent; the server's subscriber callback decodes every sample with msgspec
  and counts it, its queryable answers with the count once it reaches that
  number (Zenoh may hand the query over before the last samples), or after
  `SYNC_WAIT` seconds, and the count must match;
- rtt: ``Querier.get`` of a 64 B `Echo` against a ``Queryable``, one at a time;
- connect: ``zenoh.open`` of a new session (QUIC, TLS both ways, Zenoh's
  handshake and initial declarations) plus its first query round trip.

Zenoh calls its callbacks on its own threads; the client waits for replies
with `threading` primitives (blocking, as the pyzmq contender does).
"""

from __future__ import annotations

import importlib.metadata
import ipaddress
import json
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Final

import zenoh  # type: ignore[import-not-found,unused-ignore]
from cryptography import x509

from benchmarks._data import DECODE_ECHO, DECODE_PAYLOAD, DECODE_REPLY, ENCODE, SYNC_BODY
from benchmarks.bench_transport._common import (
    BATCH,
    ClientCommands,
    Command,
    Result,
    Worker,
    WorkerSpec,
)
from qrpc.bench.messages import Echo, Payload, SyncReply, payload_data
from qrpc.bench.timing import percentile
from qrpc.tls.certs import issue_ca, issue_node_cert, write_pem

VERSION: Final = importlib.metadata.version("eclipse-zenoh")
label: Final = "zenoh"
notes: Final = (
    "Zenoh peer to peer (no router), QUIC, mutual TLS (verify), publisher BLOCK + "
    f"querier/queryable, msgpack bytes (eclipse-zenoh {VERSION})"
)
metrics: Final = frozenset({"throughput", "rtt", "connect"})

DATA: Final = "bench/data"
ECHO: Final = "bench/echo"
SYNC_WAIT: Final = 60.0
"""Seconds the `Sync` queryable waits for samples still on their way."""


def _free_port(host: str, link: str) -> int:
    kind = socket.SOCK_DGRAM if link == "quic" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _config(
    tls: dict[str, Any],
    *,
    listen: str | None = None,
    connect: str | None = None,
    timeout_ms: int = 10_000,
) -> Any:
    """A peer session's config: only the QUIC endpoint, no scouting, no shared memory."""
    config = zenoh.Config()
    settings: dict[str, Any] = {
        "mode": "peer",
        "listen/endpoints": [listen] if listen else [],
        "connect/endpoints": [connect] if connect else [],
        "connect/timeout_ms": timeout_ms,
        "connect/exit_on_failure": True,
        "scouting/multicast/enabled": False,
        "scouting/gossip/enabled": False,
        "transport/shared_memory/enabled": False,
        "open/return_conditions/connect_scouted": False,
        "transport/link/tls": tls,
    }
    for key, value in settings.items():
        config.insert_json5(key, json.dumps(value))
    return config


def _open(config: Any) -> Any:
    """`zenoh.open`, as `Any`: the stubs leave ``Session.close`` untyped."""
    return zenoh.open(config)


class _Pki:
    """A CA and qrpc node certificates whose listener also names its address (IP SAN)."""

    def __init__(self, host: str) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="qrpc-bench-zenoh-")
        root = Path(self._dir.name)
        ca = issue_ca("qrpc benchmark zenoh CA")
        self.ca = str(root / "ca.crt")
        write_pem(ca, Path(self.ca))
        self.files: dict[str, list[str]] = {}
        ip = x509.IPAddress(ipaddress.ip_address(host))
        for name, extra in (("server", [ip]), ("client", []), ("dialer", [])):
            issued = issue_node_cert(ca, extra_sans=extra)
            cert, key = root / f"{name}.crt", root / f"{name}.key"
            write_pem(issued, cert, key)
            self.files[name] = [str(cert), str(key)]

    def cleanup(self) -> None:
        self._dir.cleanup()


def _tls(ca: str, cert: list[str] | None, *, listener: bool) -> dict[str, Any]:
    tls: dict[str, Any] = {
        "root_ca_certificate": ca,
        "enable_mtls": cert is not None,
        "verify_name_on_connect": True,
    }
    if cert is not None:
        side = "listen" if listener else "connect"
        tls[f"{side}_certificate"], tls[f"{side}_private_key"] = cert
    return tls


def _check_refused_without_cert(ca: str, endpoint: str, client: list[str]) -> str:
    """Open a session without a client certificate (must fail), then with one (must work)."""
    try:
        session = _open(_config(_tls(ca, None, listener=False), connect=endpoint, timeout_ms=3000))
    except zenoh.ZError as exc:
        seen = f"{type(exc).__name__}: {exc}"
    else:
        session.close()
        raise RuntimeError("zenoh accepted a client without a certificate")
    try:
        _open(_config(_tls(ca, client, listener=False), connect=endpoint)).close()
    except zenoh.ZError as exc:
        raise RuntimeError(
            f"client without a certificate failed ({seen}), but so did one with"
        ) from exc
    return seen


class _Server:
    def __init__(self, host: str, link: str) -> None:
        self.pki = _Pki(host)
        self.count = 0
        self.expected = -1
        self.arrived = threading.Event()
        self.port = _free_port(host, link)
        endpoint = f"{link}/{host}:{self.port}"
        tls = _tls(self.pki.ca, self.pki.files["server"], listener=True)
        self.session = _open(_config(tls, listen=endpoint))
        self.subscriber = self.session.declare_subscriber(DATA, self._on_data)
        self.sync = self.session.declare_queryable(DATA, self._on_sync)
        self.echo = self.session.declare_queryable(ECHO, self._on_echo)
        refused = _check_refused_without_cert(self.pki.ca, endpoint, self.pki.files["client"])
        self.info: dict[str, Any] = {
            "endpoint": endpoint,
            "ca": self.pki.ca,
            "client": self.pki.files["client"],
            "dialer": self.pki.files["dialer"],
            "refused_without_cert": refused,
        }

    def _on_data(self, sample: Any) -> None:
        DECODE_PAYLOAD(sample.payload.to_bytes())
        self.count += 1
        if self.count == self.expected:
            self.arrived.set()

    def _on_sync(self, query: Any) -> None:
        # Zenoh may deliver the query before the last samples: wait, bounded,
        # until the sender's count was handled (a shortfall fails the run).
        self.expected = int(query.parameters.get("sent") or 0)
        if self.count < self.expected:
            self.arrived.wait(SYNC_WAIT)
        count, self.count, self.expected = self.count, 0, -1
        self.arrived.clear()
        query.reply(DATA, ENCODE(SyncReply(count)))

    def _on_echo(self, query: Any) -> None:
        query.reply(ECHO, ENCODE(DECODE_ECHO(query.payload.to_bytes())))

    async def run(self, command: Command) -> Result:
        raise ValueError(f"server: unknown command {command!r}")

    async def close(self) -> None:
        self.session.close()
        self.pki.cleanup()


class _Replies:
    """The reply to one query at a time, handed over from Zenoh's thread."""

    def __init__(self) -> None:
        self.ready = threading.Event()
        self.payload = b""
        self.errors: list[str] = []

    def __call__(self, reply: Any) -> None:
        if reply.ok is not None:
            self.payload = reply.ok.payload.to_bytes()
        else:
            self.errors.append(reply.err.payload.to_string())
        self.ready.set()

    def get(self, querier: Any, body: bytes, timeout: float, parameters: str = "") -> bytes:
        """Send one query and wait for its reply."""
        self.ready.clear()
        querier.get(self, payload=body, parameters=parameters)
        if not self.ready.wait(timeout) or self.errors:
            raise RuntimeError(f"no reply within {timeout:.0f} s ({'; '.join(self.errors)})")
        return self.payload


class _Peer:
    """One client session: publisher and queriers on the server's keys."""

    def __init__(self, spec: WorkerSpec, cert: list[str]) -> None:
        info = spec.peer_info
        tls = _tls(info["ca"], cert, listener=False)
        self.session = _open(_config(tls, connect=info["endpoint"]))
        qos: dict[str, Any] = {
            "congestion_control": zenoh.CongestionControl.BLOCK,
            "priority": zenoh.Priority.DATA,
            "express": False,
        }
        none = zenoh.ConsolidationMode.NONE
        self.publisher = self.session.declare_publisher(DATA, **qos)
        self.sync = self.session.declare_querier(DATA, consolidation=none, timeout=120, **qos)
        self.echo = self.session.declare_querier(ECHO, consolidation=none, timeout=10, **qos)
        self.replies = _Replies()


class _Client(ClientCommands):
    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        self.peer = _Peer(spec, spec.peer_info["client"])
        self.info: dict[str, Any] = {}

    async def throughput(self, size: int, duration: float) -> Result:
        if self.spec.options.get("fresh_connections"):
            self.peer.session.close()
            self.peer = _Peer(self.spec, self.spec.peer_info["client"])
        put = self.peer.publisher.put
        data = payload_data(size)
        seq = 1 << 24
        sent = 0
        clock = time.perf_counter
        start = clock()
        deadline = start + duration
        while True:
            for _ in range(BATCH):
                put(ENCODE(Payload(seq, data)))
                seq += 1
            sent += BATCH
            if clock() >= deadline:
                break
        reply = DECODE_REPLY(self.peer.replies.get(self.peer.sync, SYNC_BODY, 120, f"sent={sent}"))
        elapsed = clock() - start
        if reply.count != sent:
            raise RuntimeError(f"server handled {reply.count} messages, {sent} were sent")
        return {"count": sent, "seconds": elapsed}

    async def rtt(self, size: int, count: int) -> Result:
        data = payload_data(size)
        get = self.peer.replies.get
        echo = self.peer.echo
        clock = time.perf_counter_ns
        samples = []
        for seq in range(1 << 24, (1 << 24) + count):
            start = clock()
            reply = DECODE_ECHO(get(echo, ENCODE(Echo(seq, data)), 10))
            samples.append((clock() - start) / 1000)
            if reply.seq != seq:
                raise RuntimeError("echo mismatch")
        samples.sort()
        return {"p50_us": percentile(samples, 0.5), "p99_us": percentile(samples, 0.99)}

    async def connect_samples(self, count: int) -> Result:
        samples = []
        body = ENCODE(Echo(0, b""))
        for _ in range(count):
            start = time.perf_counter()
            peer = _Peer(self.spec, self.spec.peer_info["dialer"])
            peer.replies.get(peer.echo, body, 10)
            samples.append((time.perf_counter() - start) * 1000)
            peer.session.close()
        return {"samples_ms": samples}

    async def close(self) -> None:
        self.peer.session.close()


async def setup(role: str, spec: WorkerSpec) -> Worker:
    """Build one side (see `benchmarks.bench_transport._common`), over QUIC."""
    return await setup_on("quic", role, spec)


async def setup_on(link: str, role: str, spec: WorkerSpec) -> Worker:
    """Build one side with Zenoh's `link` protocol: ``quic`` or ``tls`` (TCP)."""
    if role == "server":
        return _Server(spec.host, link)
    if role == "client":
        return _Client(spec)
    raise ValueError(f"zenoh has no role {role!r}")
