"""Contender: pyzmq over TCP (127.0.0.1) -- no encryption, no authentication.

Blocking sockets in the benchmark processes (the fastest way to drive
libzmq from Python): the server answers from two threads, the client runs
its loop directly.  Bodies are the same msgpack bytes, decoded with msgspec.

- rtt: REQ/REP, one request at a time;
- throughput: PUSH/PULL for the run's duration, then an empty frame on the
  same PUSH socket; the server answers it with the count on a second
  PUSH/PULL pair (ZeroMQ keeps order within one socket pair only).
"""

from __future__ import annotations

import threading
import time
from typing import Any, Final

import zmq  # type: ignore[import-not-found,unused-ignore]

from benchmarks._data import DECODE_ECHO, DECODE_PAYLOAD, ENCODE
from benchmarks.bench_transport._common import BATCH, Command, Result, Worker, WorkerSpec
from qrpc.bench.messages import Echo, Payload, payload_data
from qrpc.bench.timing import percentile

label: Final = "pyzmq"
notes: Final = "pyzmq TCP (REQ/REP, PUSH/PULL), no TLS, msgpack bytes"
metrics: Final = frozenset({"throughput", "rtt"})


class _Server:
    def __init__(self, host: str) -> None:
        self.context = zmq.Context()
        self.rep = self.context.socket(zmq.REP)
        self.pull = self.context.socket(zmq.PULL)
        self.result = self.context.socket(zmq.PUSH)
        ports = {
            name: sock.bind_to_random_port(f"tcp://{host}")
            for name, sock in (("rep", self.rep), ("pull", self.pull), ("result", self.result))
        }
        self.info: dict[str, Any] = {"host": host, "ports": ports}
        self.threads = [
            threading.Thread(target=self._echo_loop, daemon=True),
            threading.Thread(target=self._pull_loop, daemon=True),
        ]
        for thread in self.threads:
            thread.start()

    def _echo_loop(self) -> None:
        rep = self.rep
        try:
            while True:
                rep.send(ENCODE(DECODE_ECHO(rep.recv())))
        except zmq.ContextTerminated:
            rep.close(linger=0)

    def _pull_loop(self) -> None:
        pull, result = self.pull, self.result
        count = 0
        try:
            while True:
                body = pull.recv()
                if body:
                    DECODE_PAYLOAD(body)
                    count += 1
                else:
                    result.send(str(count).encode())
                    count = 0
        except zmq.ContextTerminated:
            pull.close(linger=0)
            result.close(linger=0)

    async def run(self, command: Command) -> Result:
        raise ValueError(f"server: unknown command {command!r}")

    async def close(self) -> None:
        self.context.term()
        for thread in self.threads:
            thread.join(5)


class _Client:
    def __init__(self, spec: WorkerSpec) -> None:
        ports = spec.peer_info["ports"]
        server = f"tcp://{spec.peer_info['host']}"
        self.context = zmq.Context()
        self.req = self.context.socket(zmq.REQ)
        self.req.connect(f"{server}:{ports['rep']}")
        self.push = self.context.socket(zmq.PUSH)
        self.push.connect(f"{server}:{ports['pull']}")
        self.result = self.context.socket(zmq.PULL)
        self.result.connect(f"{server}:{ports['result']}")
        self.info: dict[str, Any] = {}

    async def run(self, command: Command) -> Result:
        name = command["cmd"]
        if name == "throughput":
            return self.throughput(command["size"], command["duration"])
        if name == "rtt":
            return self.rtt(command["size"], command["count"])
        raise ValueError(f"client: unknown command {command!r}")

    def throughput(self, size: int, duration: float) -> Result:
        data = payload_data(size)
        send = self.push.send
        seq = 1 << 24
        sent = 0
        clock = time.perf_counter
        start = clock()
        deadline = start + duration
        while True:
            for _ in range(BATCH):
                send(ENCODE(Payload(seq, data)))
                seq += 1
            sent += BATCH
            if clock() >= deadline:
                break
        send(b"")
        count = int(self.result.recv())
        elapsed = clock() - start
        if count != sent:
            raise RuntimeError(f"server handled {count} messages, {sent} were sent")
        return {"count": sent, "seconds": elapsed}

    def rtt(self, size: int, count: int) -> Result:
        data = payload_data(size)
        req = self.req
        clock = time.perf_counter_ns
        samples = []
        for seq in range(1 << 24, (1 << 24) + count):
            start = clock()
            req.send(ENCODE(Echo(seq, data)))
            reply = DECODE_ECHO(req.recv())
            samples.append((clock() - start) / 1000)
            if reply.seq != seq:
                raise RuntimeError("echo mismatch")
        samples.sort()
        return {"p50_us": percentile(samples, 0.5), "p99_us": percentile(samples, 0.99)}

    async def close(self) -> None:
        for sock in (self.req, self.push, self.result):
            sock.close(linger=0)
        self.context.term()


async def setup(role: str, spec: WorkerSpec) -> Worker:
    """Build one side (see `benchmarks.bench_transport._common`)."""
    if role == "server":
        return _Server(spec.host)
    if role == "client":
        return _Client(spec)
    raise ValueError(f"pyzmq has no role {role!r}")
