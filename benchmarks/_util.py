"""Small helpers shared by the benchmarks: statistics, environment, tables."""

from __future__ import annotations

import datetime as dt
import gc
import importlib.metadata
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Final

__all__ = [
    "PACKAGES",
    "Stat",
    "environment",
    "format_table",
    "no_gc",
    "percentile",
    "stat",
    "time_per_call",
]

PACKAGES: Final = (
    "qrpc",
    "aioquic",
    "msgspec",
    "cryptography",
    "pluggy",
    "orjson",
    "ormsgpack",
    "grpcio",
    "pyzmq",
    "matplotlib",
    "pyinstrument",
)
"""Distributions whose versions every result file records (None: not installed)."""

Stat = dict[str, float | int]


def stat(values: Sequence[float]) -> Stat:
    """Median, min, max, relative spread ((max - min) / median) and count of `values`."""
    if not values:
        raise ValueError("no values")
    median = statistics.median(values)
    low, high = min(values), max(values)
    return {
        "median": median,
        "min": low,
        "max": high,
        "spread": (high - low) / median if median else 0.0,
        "n": len(values),
    }


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """The `fraction` percentile (nearest rank) of already sorted values."""
    if not sorted_values:
        raise ValueError("no values")
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


@contextmanager
def no_gc() -> Iterator[None]:
    """Disable the cyclic garbage collector inside the block, as `timeit` does."""
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def time_per_call(
    fn: Callable[[Any], object], arg: Any, *, min_time: float, repeat: int
) -> list[float]:
    """Seconds per call of ``fn(arg)``, `repeat` times, each over >= `min_time` seconds."""
    clock = time.perf_counter
    number = 1
    with no_gc():
        while True:  # autorange, as timeit does
            start = clock()
            for _ in range(number):
                fn(arg)
            elapsed = clock() - start
            if elapsed >= min_time / 4:
                break
            number *= 4
        number = max(1, int(number * min_time / max(elapsed, 1e-9)))
        results = []
        for _ in range(repeat):
            start = clock()
            for _ in range(number):
                fn(arg)
            results.append((clock() - start) / number)
    return results


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as file:
            for line in file:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment() -> dict[str, Any]:
    """Python, platform, CPU and the versions of every relevant package."""
    packages = {name: _version(name) for name in PACKAGES}
    if packages["qrpc"] is None:  # run from a source tree without installing it
        import qrpc

        packages["qrpc"] = f"{qrpc.__version__} (source)"
    try:
        import ssl

        openssl = ssl.OPENSSL_VERSION
    except ImportError:  # pragma: no cover
        openssl = None
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "openssl": openssl,
        "packages": packages,
        "all_packages": dict(
            sorted(
                (str(d.metadata["Name"]), d.version)
                for d in importlib.metadata.distributions()
                if d.metadata["Name"]
            )
        ),
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]], title: str = "") -> str:
    """A plain-text table; numbers right-aligned, text left-aligned."""
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    numeric = [
        all(_is_number(row[i]) for row in rows if row[i] not in ("", None))
        for i in range(len(headers))
    ]

    def line(row: Sequence[str]) -> str:
        parts = [
            cell.rjust(width) if num else cell.ljust(width)
            for cell, width, num in zip(row, widths, numeric, strict=True)
        ]
        return "  ".join(parts).rstrip()

    out = []
    if title:
        out.append(title)
    out.append(line(cells[0]))
    out.append("  ".join("-" * w for w in widths))
    out.extend(line(row) for row in cells[1:])
    return "\n".join(out)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value == 0:
            return "0"
        magnitude = abs(value)
        if magnitude >= 1000:
            return f"{value:,.0f}"
        if magnitude >= 100:
            return f"{value:.0f}"
        if magnitude >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
