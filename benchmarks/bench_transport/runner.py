"""Run transport contenders, each side in its own process, interleaved in one run.

For one set of QUIC knobs, the runner starts a server process and a client
process per contender (`multiprocessing`, spawn), pinned to different CPUs
when there are two, and keeps them all alive.  Each round then runs every
metric for every contender back to back (the contender order alternates
between rounds), so qrpc and raw aioquic always meet the same machine
state.  The first ``warmup`` rounds are discarded; every figure is the
median of the remaining ``runs`` rounds, reported with its spread.

The broadcast metric uses a second pair per contender: a hub process and a
"spokes" process holding the 20 receivers (21 processes would not fit
2 cores; the receivers of one process share one event loop, which is the
same for every contender).

A contender with a broker (NATS) names it with ``start_broker(certs)``: the
runner starts that process before the contender's server, passes its
``info`` to the server, stops it after both workers, and reports its CPU
and peak RSS as a third role, ``broker``.
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection
from pathlib import Path
from types import ModuleType
from typing import Any, Final

from benchmarks.bench_transport import _worker, netns
from benchmarks.bench_transport._common import CertPaths, Command, QuicKnobs, Result, WorkerSpec
from qrpc.bench.timing import stat

__all__ = [
    "ALTERNATIVES",
    "CONTENDERS",
    "METRICS",
    "Settings",
    "load_contender",
    "make_certs",
    "run_broadcast",
    "run_group",
]

CONTENDERS: Final = ("raw_aioquic", "raw_aioquic_batched", "qrpc_node")
"""QUIC contenders: the baselines first."""
ALTERNATIVES: Final = ("grpcio", "pyzmq", "nats", "zenoh", "zenoh_tls")
"""Optional contenders (extra ``bench-alternatives``)."""
BASELINE: Final = "raw_aioquic"


@dataclass(frozen=True)
class Metric:
    """One command-line metric and the figures it produces."""

    name: str
    capability: str
    keys: tuple[str, ...]
    units: tuple[str, ...]
    higher_is_better: bool


METRICS: Final = {
    m.name: m
    for m in (
        Metric("throughput_100b", "throughput", ("throughput_100b_msgs",), ("msg/s",), True),
        Metric("throughput_64k", "throughput", ("throughput_64k_mbps",), ("MB/s",), True),
        Metric("rtt", "rtt", ("rtt_p50_us", "rtt_p99_us"), ("µs", "µs"), False),
        Metric("connect", "connect", ("connect_ms",), ("ms",), False),
        Metric("broadcast", "broadcast", ("broadcast_1k_20_ms",), ("ms",), False),
    )
}


@dataclass
class Settings:
    """How long and how often to measure."""

    runs: int = 5
    warmup: int = 1
    duration: float = 1.0
    """Seconds of sending per throughput run."""
    rtt_count: int = 2000
    connect_count: int = 10
    broadcast_count: int = 30
    spokes: int = 20
    pin: bool = True
    profile: str | None = None
    out_dir: Path = Path("benchmarks/results")
    options: dict[str, Any] = field(default_factory=dict)
    """Passed to every worker (``raw_high_water``, ``qrpc_limits``, ``spokes``)."""
    timeout: float = 300.0
    log: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True)


def command_for(metric: str, settings: Settings, *, warm: bool) -> Command:
    """The worker command measuring `metric` (shorter when warming up)."""
    scale = 0.3 if warm else 1.0
    if metric == "throughput_100b":
        return {"cmd": "throughput", "size": 100, "duration": settings.duration * scale}
    if metric == "throughput_64k":
        return {"cmd": "throughput", "size": 65536, "duration": settings.duration * scale}
    if metric == "rtt":
        return {"cmd": "rtt", "size": 64, "count": max(50, int(settings.rtt_count * scale))}
    if metric == "connect":
        return {"cmd": "connect", "count": max(1, int(settings.connect_count * scale))}
    if metric == "broadcast":
        return {
            "cmd": "broadcast",
            "size": 1024,
            "count": max(3, int(settings.broadcast_count * scale)),
        }
    raise ValueError(f"unknown metric {metric!r}")


def figures(metric: str, command: Command, result: Result) -> dict[str, float]:
    """Turn a worker's result into the metric's figures."""
    if metric == "throughput_100b":
        return {"throughput_100b_msgs": result["count"] / result["seconds"]}
    if metric == "throughput_64k":
        return {"throughput_64k_mbps": result["count"] * command["size"] / result["seconds"] / 1e6}
    if metric == "rtt":
        return {"rtt_p50_us": result["p50_us"], "rtt_p99_us": result["p99_us"]}
    if metric in ("connect", "broadcast"):
        samples = sorted(result["samples_ms"])
        return {METRICS[metric].keys[0]: samples[len(samples) // 2]}
    raise ValueError(f"unknown metric {metric!r}")


def load_contender(name: str) -> ModuleType | str:
    """The contender module, or why it cannot run (e.g. its library is not installed)."""
    try:
        return importlib.import_module(f"benchmarks.bench_transport.{name}")
    except ImportError as exc:
        return f"not installed ({exc.name or exc})"


def make_certs(directory: Path, spokes: int = 20) -> CertPaths:
    """A CA and every certificate the workers need, written once under `directory`."""
    from qrpc.testing import TestPKI
    from qrpc.tls.identity import identity_name

    pki = TestPKI(directory, name="qrpc benchmark CA")

    def pair() -> tuple[tuple[str, str], str]:
        issued = pki.issue()
        cert, key = pki.write(issued)
        assert issued.node_id is not None
        return (str(cert), str(key)), issued.node_id

    server, server_id = pair()
    client, _ = pair()
    dialer, _ = pair()
    return CertPaths(
        ca=str(pki.ca_path),
        server=server,
        client=client,
        dialer=dialer,
        spokes=tuple(pair()[0] for _ in range(spokes)),
        server_id=server_id,
        server_name=identity_name(server_id, pki.domain),
    )


class _Proc:
    """One worker process and its pipe."""

    def __init__(self, spec: WorkerSpec, timeout: float) -> None:
        context = multiprocessing.get_context("spawn")
        self.spec = spec
        self.timeout = timeout
        self.conn, child = context.Pipe()
        self.process = context.Process(
            target=_worker.main,
            args=(spec, child),
            name=f"bench-{spec.contender}-{spec.role}",
            daemon=True,
        )
        self.process.start()
        child.close()
        self.info: dict[str, Any] = {}
        self.rss_kib = 0
        self.profiles: list[str] = []

    def _recv(self, timeout: float) -> Result:
        conn: Connection = self.conn
        if not conn.poll(timeout):
            raise TimeoutError(f"{self.process.name}: no answer within {timeout:.0f} s")
        try:
            result: Result = conn.recv()
        except EOFError:
            self.process.join(1)
            code = self.process.exitcode
            raise RuntimeError(f"{self.process.name} died (exit code {code})") from None
        if "error" in result:
            raise RuntimeError(f"{self.process.name} failed:\n{result['error']}")
        return result

    def wait_ready(self) -> dict[str, Any]:
        result = self._recv(self.timeout)
        self.info = result["ready"]
        self.rss_kib = result.get("rss_kib", 0)
        return self.info

    def call(self, command: Command) -> Result:
        self.conn.send(command)
        return self._recv(self.timeout)

    def stop(self) -> None:
        if self.process.is_alive():
            try:
                self.conn.send({"cmd": "stop"})
                result = self._recv(60)
                self.rss_kib = max(self.rss_kib, int(result.get("rss_kib", 0)))
                self.profiles = list(result.get("profiles", []))
            except (OSError, RuntimeError, TimeoutError) as exc:
                print(f"warning: {exc}", file=sys.stderr)
        self.process.join(10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


class _Broker:
    """A contender's broker process, e.g. ``nats-server`` (started by its ``start_broker``).

    Answers the runner's ``cpu`` command from ``/proc`` as a worker does for
    itself, so its CPU is reported next to the server's and the client's.
    """

    def __init__(self, module: ModuleType, certs: CertPaths, server: WorkerSpec) -> None:
        self.handle = module.start_broker(certs, host=server.host, netns=server.netns)
        self.pid: int = self.handle.pid
        self.info: dict[str, Any] = dict(self.handle.info)
        self.rss_kib = 0

    def call(self, command: Command) -> Result:
        if command["cmd"] == "cpu":
            return {"cpu": self._cpu_seconds(), "wall": time.perf_counter()}
        raise ValueError(f"broker: unknown command {command!r}")

    def _cpu_seconds(self) -> float:
        """User + system CPU time of the broker (all its threads), seconds."""
        try:
            stat_line = Path(f"/proc/{self.pid}/stat").read_text(encoding="ascii")
        except OSError:  # not Linux: no per-process figure
            return 0.0
        fields = stat_line.rsplit(")", 1)[1].split()  # fields 3.. of proc(5); utime is 14
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def _peak_rss_kib(self) -> int:
        try:
            with open(f"/proc/{self.pid}/status", encoding="ascii") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1])
        except (OSError, ValueError, IndexError):
            pass
        return 0

    def stop(self) -> None:
        self.rss_kib = self._peak_rss_kib()
        self.handle.stop()


@dataclass
class GroupResult:
    """Per contender: figures per round, RSS per role, profile files, notes."""

    values: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    cpu: dict[str, dict[str, list[list[float]]]] = field(default_factory=dict)
    """contender -> metric -> [[first role's cores, second role's, broker's if any], ...]."""
    quic: dict[str, dict[str, list[dict[str, float]]]] = field(default_factory=dict)
    """contender -> metric -> congestion state after each throughput run (diagnostics)."""
    rss_mib: dict[str, dict[str, float]] = field(default_factory=dict)
    profiles: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


def _spec(
    contender: str,
    role: str,
    knobs: QuicKnobs,
    certs: CertPaths,
    settings: Settings,
    cpu: int | None,
    tag: str,
) -> WorkerSpec:
    profile_path = None
    if settings.profile is not None:
        name = f"{contender}-{role}-{tag}".replace("/", "_")  # win=1M/1M: one file, no subfolder
        profile_path = str(settings.out_dir / "profiles" / name)
    side = 0 if role in ("server", "hub") else 1
    veth = knobs.veth_mtu is not None
    return WorkerSpec(
        contender=contender,
        role=role,
        knobs=knobs,
        certs=certs,
        cpu=cpu,
        profile=settings.profile,
        profile_path=profile_path,
        options=settings.options,
        host=netns.ADDRESSES[side] if veth else "127.0.0.1",
        netns=netns.NAMES[side] if veth else None,
    )


def _cpus(settings: Settings) -> tuple[int | None, int | None]:
    if not settings.pin or not hasattr(os, "sched_getaffinity"):
        return None, None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None
    return cpus[0], cpus[1]


@contextmanager
def _processes(
    contenders: Sequence[str],
    roles: tuple[str, str],
    knobs: QuicKnobs,
    certs: CertPaths,
    settings: Settings,
    tag: str,
    result: GroupResult,
    brokers: dict[str, _Broker],
) -> Iterator[dict[str, tuple[_Proc, _Proc]]]:
    first_cpu, second_cpu = _cpus(settings)
    procs: dict[str, tuple[_Proc, _Proc]] = {}
    firsts: dict[str, _Proc] = {}
    path = ExitStack()
    try:
        if knobs.veth_mtu is not None:
            path.enter_context(netns.veth_pair(knobs.veth_mtu))
        for name in contenders:
            spec = _spec(name, roles[0], knobs, certs, settings, first_cpu, tag)
            module = load_contender(name)
            if not isinstance(module, str) and hasattr(module, "start_broker"):
                brokers[name] = _Broker(module, certs, spec)  # unpinned: a third process
                spec = replace(spec, peer_info=brokers[name].info)
            firsts[name] = _Proc(spec, settings.timeout)
        for name, first in firsts.items():
            info = first.wait_ready()
            spec = replace(
                _spec(name, roles[1], knobs, certs, settings, second_cpu, tag), peer_info=info
            )
            procs[name] = (first, _Proc(spec, settings.timeout))
        for _, second in procs.values():
            second.wait_ready()
        yield procs
    finally:
        everything = [p for pair in procs.values() for p in pair]
        everything += [p for name, p in firsts.items() if name not in procs]
        for proc in reversed(everything):  # clients before servers
            proc.stop()
        for broker in brokers.values():  # after the workers that use it
            broker.stop()
        path.close()
        for name, (first, second) in procs.items():
            result.rss_mib[name] = {
                roles[0]: round(first.rss_kib / 1024, 1),
                roles[1]: round(second.rss_kib / 1024, 1),
            }
            if name in brokers:
                result.rss_mib[name]["broker"] = round(brokers[name].rss_kib / 1024, 1)
            result.profiles += first.profiles + second.profiles


def _usable(
    contenders: Sequence[str], capabilities: set[str], result: GroupResult, knobs: QuicKnobs
) -> list[str]:
    usable = []
    no_path = netns.unavailable() if knobs.veth_mtu is not None else None
    for name in contenders:
        module = load_contender(name)
        if no_path is not None:
            result.skipped[name] = no_path
        elif isinstance(module, str):
            result.skipped[name] = module
        elif capabilities & set(module.metrics):
            usable.append(name)
    return usable


def _measure(
    procs: dict[str, tuple[_Proc, _Proc]],
    metrics: Sequence[str],
    settings: Settings,
    result: GroupResult,
    *,
    target: int,
    title: str,
    brokers: dict[str, _Broker],
) -> None:
    names = list(procs)
    supported = {n: set(load_contender(n).metrics) for n in names}  # type: ignore[union-attr]
    rounds = settings.warmup + settings.runs
    for index in range(rounds):
        warm = index < settings.warmup
        order = names if index % 2 == 0 else names[::-1]
        what = "warm-up" if warm else f"run {index - settings.warmup + 1}/{settings.runs}"
        for metric in _conditioned(metrics) if index == 0 and warm else metrics:
            for name in order:
                if METRICS[metric].capability not in supported[name]:
                    continue
                command = command_for(metric, settings, warm=warm)
                profiling = settings.profile is not None and not warm
                if profiling:
                    for proc in procs[name]:
                        proc.call({"cmd": "profile_start"})
                watched: list[_Proc | _Broker] = [*procs[name]]
                if name in brokers:
                    watched.append(brokers[name])
                before = [proc.call({"cmd": "cpu"}) for proc in watched]
                answer = procs[name][target].call(command)
                after = [proc.call({"cmd": "cpu"}) for proc in watched]
                if profiling:
                    for proc in procs[name]:
                        proc.call({"cmd": "profile_stop"})
                cores = [
                    (a["cpu"] - b["cpu"]) / max(a["wall"] - b["wall"], 1e-9)
                    for b, a in zip(before, after, strict=True)
                ]
                values = figures(metric, command, answer)
                shown = ", ".join(f"{k} {v:,.1f}" for k, v in values.items())
                busy = "/".join(f"{c:.2f}" for c in cores)
                state = " ".join(f"{k}={v}" for k, v in answer.get("quic", {}).items())
                settings.log(
                    f"  {title} {what} {metric} {name}: {shown} (CPU {busy}{', ' if state else ''}"
                    f"{state})"
                )
                if warm:
                    continue
                record = result.values.setdefault(name, {})
                for key, value in values.items():
                    record.setdefault(key, []).append(value)
                result.cpu.setdefault(name, {}).setdefault(metric, []).append(cores)
                if "quic" in answer:
                    result.quic.setdefault(name, {}).setdefault(metric, []).append(answer["quic"])


def _conditioned(metrics: Sequence[str]) -> list[str]:
    """The first warm-up round starts with 100 B throughput when any throughput is measured.

    aioquic's congestion state on loopback is bimodal and sticky per
    connection: a link whose first bulk transfer is 64 KiB messages often
    never leaves slow start (cwnd of tens of MB, no pacing) and then moves
    about half the bytes of a link whose cwnd settled near 1 MiB with pacing.
    A short 100 B run first put every contender in the paced state in all
    our runs, so single-metric re-runs agree with full runs.  Runs report
    cwnd, smoothed RTT and pacing interval, so a stuck link shows.
    """
    if any(m.startswith("throughput") for m in metrics) and metrics[0] != "throughput_100b":
        return ["throughput_100b", *(m for m in metrics if m != "throughput_100b")]
    return list(metrics)


def run_group(
    contenders: Sequence[str],
    knobs: QuicKnobs,
    metrics: Sequence[str],
    certs: CertPaths,
    settings: Settings,
) -> GroupResult:
    """Measure `metrics` (not broadcast) for `contenders` with one set of QUIC knobs."""
    result = GroupResult()
    wanted = {METRICS[m].capability for m in metrics}
    usable = _usable(contenders, wanted, result, knobs)
    if not usable:
        return result
    brokers: dict[str, _Broker] = {}
    with _processes(
        usable, ("server", "client"), knobs, certs, settings, knobs.label, result, brokers
    ) as procs:
        _measure(procs, metrics, settings, result, target=1, title=knobs.label, brokers=brokers)
    return result


def run_broadcast(
    contenders: Sequence[str], knobs: QuicKnobs, certs: CertPaths, settings: Settings
) -> GroupResult:
    """Broadcast of 1 KiB to `settings.spokes` receivers, per contender."""
    result = GroupResult()
    usable = _usable(contenders, {"broadcast"}, result, knobs)
    if not usable:
        return result
    tag = f"broadcast-{knobs.label}"
    brokers: dict[str, _Broker] = {}
    with _processes(
        usable, ("hub", "spokes"), knobs, certs, settings, tag, result, brokers
    ) as procs:
        for hub, _ in procs.values():
            hub.call({"cmd": "wait_peers", "count": settings.spokes})
        _measure(procs, ["broadcast"], settings, result, target=0, title="peers", brokers=brokers)
    return result


def summarize(values: dict[str, list[float]]) -> dict[str, dict[str, float | int]]:
    """`stat` of every figure."""
    return {key: stat(series) for key, series in values.items()}


@contextmanager
def cert_dir() -> Iterator[Path]:
    """A temporary directory for the run's certificates."""
    with tempfile.TemporaryDirectory(prefix="qrpc-bench-") as tmp:
        yield Path(tmp)


def elapsed_since(start: float) -> str:
    """``12.3s`` since `start` (a `time.monotonic()` value)."""
    return f"{time.monotonic() - start:.1f}s"
