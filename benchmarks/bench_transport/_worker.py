"""The body of every worker process: set up one side, then obey the runner's pipe.

Protocol on the `multiprocessing` pipe (every message a dict):

- worker -> runner, once: ``{"ready": info}`` or ``{"error": traceback}``;
- runner -> worker: a command; worker -> runner: its result (or
  ``{"error": ...}``).  Built-in commands: ``cpu`` (process CPU time and
  wall clock, so the runner can tell which side was busy), ``profile_start``,
  ``profile_stop``, ``stop`` (answered with the process's peak RSS, after
  the contender closed and any profile was written).

The pipe is read from the event loop (``add_reader``), so QUIC timers and
ACKs keep running while a worker waits for its next command.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import resource
import sys
import time
import traceback
from multiprocessing.connection import Connection
from typing import Any

from benchmarks.bench_transport._common import Command, Result, WorkerSpec
from benchmarks.bench_transport._profile import Profiler

__all__ = ["main"]


class _Pipe:
    """Async reading of a multiprocessing pipe from the event loop."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.loop = asyncio.get_running_loop()
        self.loop.add_reader(conn.fileno(), self._readable)

    def _readable(self) -> None:
        try:
            while self.conn.poll():
                self.queue.put_nowait(self.conn.recv())
        except (EOFError, OSError):  # the runner died: stop
            self.loop.remove_reader(self.conn.fileno())
            self.queue.put_nowait({"cmd": "stop", "orphaned": True})

    async def recv(self) -> Command:
        message: Command = await self.queue.get()
        return message

    def close(self) -> None:
        self.loop.remove_reader(self.conn.fileno())


def _rss_kib() -> int:
    """Peak RSS of this process, KiB.

    ``VmHWM`` where Linux provides it: ``getrusage``'s ``ru_maxrss`` survives
    ``exec``, so a spawned worker would report at least the RSS its parent
    had when it forked.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


async def _serve(spec: WorkerSpec, conn: Connection) -> None:
    try:
        module = importlib.import_module(f"benchmarks.bench_transport.{spec.contender}")
        worker = await module.setup(spec.role, spec)
    except BaseException:
        conn.send({"error": traceback.format_exc()})
        return
    conn.send({"ready": worker.info, "pid": os.getpid(), "rss_kib": _rss_kib()})
    pipe = _Pipe(conn)
    profiler = (
        Profiler(spec.profile, spec.profile_path)
        if spec.profile is not None and spec.profile_path is not None
        else None
    )
    try:
        while True:
            command = await pipe.recv()
            name = command.get("cmd")
            if name == "stop":
                break
            result: Result
            if name == "cpu":
                result = {"cpu": time.process_time(), "wall": time.perf_counter()}
            elif name == "profile_start":
                if profiler is not None:
                    profiler.start()
                result = {"ok": True}
            elif name == "profile_stop":
                if profiler is not None:
                    profiler.stop()
                result = {"ok": True}
            else:
                try:
                    result = await worker.run(command)
                except Exception:
                    result = {"error": traceback.format_exc()}
            conn.send(result)
    finally:
        pipe.close()
    written: list[str] = []
    try:
        if profiler is not None:
            profiler.stop()
            written = profiler.write()
        await asyncio.wait_for(worker.close(), 30)
    except Exception:
        conn.send({"error": traceback.format_exc(), "rss_kib": _rss_kib()})
        return
    conn.send({"stopped": True, "rss_kib": _rss_kib(), "profiles": written})


def main(spec: WorkerSpec, conn: Connection) -> None:
    """Process entry point (a `multiprocessing` target)."""
    if spec.netns is not None:
        from benchmarks.bench_transport.netns import enter

        enter(spec.netns)  # before any socket or thread
    if spec.cpu is not None and hasattr(os, "sched_setaffinity"):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {spec.cpu})
    try:
        asyncio.run(_serve(spec, conn))
    except KeyboardInterrupt:
        pass
    finally:
        conn.close()
        sys.stdout.flush()
