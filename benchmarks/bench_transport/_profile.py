"""Profilers for the worker processes, switched on with ``--profile``.

- ``pyspy`` (recommended for numbers): py-spy samples the worker from
  outside (``--nonblocking``), so the profiled run keeps most of its speed.
  Writes the collapsed stacks (``.collapsed``, for flamegraph.pl or
  speedscope) and a summary (``.txt``): top functions by self and by
  inclusive share of the busy samples.
- ``pyinstrument``: the call tree (``.txt`` and ``.html``).  Its hook runs
  on every Python call, so call-heavy code looks heavier than it is and
  throughput drops by 2-3x while profiling.
- ``cprofile``: exact call counts (``.prof`` and a ``.txt`` of the top
  functions by own and cumulative time); the largest distortion.

Each is started and stopped around the measured commands only (warm-up
runs are not profiled); samples of several runs accumulate.
"""

from __future__ import annotations

import collections
import contextlib
import io
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Final

__all__ = ["KINDS", "Profiler", "summarize_collapsed"]

KINDS: Final = ("pyspy", "pyinstrument", "cprofile")
PYSPY_RATE: Final = 500  # samples per second


def _pyspy() -> str | None:
    candidate = Path(sys.executable).with_name("py-spy")
    return str(candidate) if candidate.exists() else shutil.which("py-spy")


class Profiler:
    """One profiler of one worker process; `start`/`stop` may alternate many times."""

    def __init__(self, kind: str, path: str) -> None:
        self.path = path
        self.kind = kind
        self.used = False
        self.notes: list[str] = []
        self._impl: Any = None
        self._spy: subprocess.Popen[bytes] | None = None
        self._spy_files: list[str] = []
        if kind == "pyspy" and _pyspy() is None:
            self.notes.append("py-spy not installed: fell back to pyinstrument")
            self.kind = "pyinstrument"
        if self.kind == "pyinstrument":
            try:
                from pyinstrument import Profiler as Pyinstrument  # type: ignore[import-not-found,unused-ignore]
            except ImportError:
                self.notes.append("pyinstrument not installed: fell back to cProfile")
                self.kind = "cprofile"
            else:
                self._impl = Pyinstrument(interval=0.0005, async_mode="disabled")
        if self.kind == "cprofile":
            import cProfile

            self._impl = cProfile.Profile()

    def start(self) -> None:
        """Start (or resume) sampling."""
        self.used = True
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        if self.kind == "pyspy":
            out = f"{self.path}.part{len(self._spy_files)}"
            self._spy_files.append(out)
            command = [
                _pyspy() or "py-spy",
                "record",
                "--pid",
                str(os.getpid()),
                "--rate",
                str(PYSPY_RATE),
                "--nonblocking",
                "--format",
                "raw",
                "--output",
                out,
            ]
            with open(f"{out}.log", "wb") as log:  # the child keeps its own descriptor
                self._spy = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
            if hasattr(os, "sched_setaffinity"):  # not pinned to the worker's CPU
                with contextlib.suppress(OSError):
                    os.sched_setaffinity(self._spy.pid, range(os.cpu_count() or 1))
        elif self.kind == "pyinstrument":
            self._impl.start()
        else:
            self._impl.enable()

    def stop(self) -> None:
        """Pause sampling."""
        if self.kind == "pyspy":
            spy, self._spy = self._spy, None
            if spy is not None:
                spy.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
                try:
                    spy.wait(30)
                except subprocess.TimeoutExpired:
                    spy.kill()
        elif self.kind == "pyinstrument":
            if self._impl.is_running:
                self._impl.stop()
        else:
            self._impl.disable()

    def write(self) -> list[str]:
        """Write the profile files; return their paths."""
        if not self.used:
            return []
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        if self.kind == "pyspy":
            return self._write_pyspy()
        if self.kind == "pyinstrument":
            text = Path(f"{self.path}.txt")
            text.write_text(
                "\n".join(self.notes)
                + self._impl.output_text(unicode=True, color=False, show_all=False),
                encoding="utf-8",
            )
            html = Path(f"{self.path}.html")
            html.write_text(self._impl.output_html(), encoding="utf-8")
            return [str(text), str(html)]
        import pstats

        raw = Path(f"{self.path}.prof")
        self._impl.dump_stats(raw)
        text = Path(f"{self.path}.txt")
        buffer = io.StringIO()
        buffer.write("\n".join(self.notes))
        stats = pstats.Stats(str(raw), stream=buffer)
        for order in ("tottime", "cumulative"):
            buffer.write(f"==== top 40 by {order} ====\n")
            stats.sort_stats(order).print_stats(40)
        text.write_text(buffer.getvalue(), encoding="utf-8")
        return [str(text), str(raw)]

    def _write_pyspy(self) -> list[str]:
        stacks: collections.Counter[str] = collections.Counter()
        for part in self._spy_files:
            with contextlib.suppress(OSError):
                for line in Path(part).read_text(encoding="utf-8").splitlines():
                    stack, _, count = line.rpartition(" ")
                    if stack and count.isdigit():
                        stacks[stack] += int(count)
                os.unlink(part)
                os.unlink(f"{part}.log")  # kept only when py-spy failed
        collapsed = Path(f"{self.path}.collapsed")
        collapsed.write_text(
            "".join(f"{stack} {count}\n" for stack, count in stacks.most_common()),
            encoding="utf-8",
        )
        text = Path(f"{self.path}.txt")
        text.write_text(
            f"py-spy --nonblocking at {PYSPY_RATE} Hz, busy samples only\n"
            + summarize_collapsed(stacks),
            encoding="utf-8",
        )
        return [str(text), str(collapsed)]


def _function(frame: str) -> str:
    """``name (path/to/file.py:123)`` -> ``name (file.py)``: lines of one function merge."""
    name, _, where = frame.partition(" (")
    filename = where.rstrip(")").rpartition(":")[0] or where.rstrip(")")
    parts = filename.split("/")
    short = "/".join(parts[-2:]) if len(parts) > 1 else filename
    return f"{name} ({short})"


def summarize_collapsed(stacks: collections.Counter[str], top: int = 35) -> str:
    """Top functions by self and inclusive share of the samples in collapsed `stacks`."""
    total = sum(stacks.values())
    if not total:
        return "no samples\n"
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    for stack, count in stacks.items():
        frames = [_function(f) for f in stack.split(";") if f]
        if not frames:
            continue
        own[frames[-1]] += count
        for name in set(frames):
            inclusive[name] += count
    out = [f"{total} samples\n", "\nTop by self time (the function itself):\n"]
    out += [f"  {100 * n / total:5.1f}%  {name}\n" for name, n in own.most_common(top)]
    out.append("\nTop by inclusive time (the function and what it calls):\n")
    out += [f"  {100 * n / total:5.1f}%  {name}\n" for name, n in inclusive.most_common(top)]
    return "".join(out)
