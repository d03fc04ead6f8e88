"""Timing and tables for qrpc's benchmarks (``qrpc bench``, ``python -m benchmarks``).

Timing follows `timeit`: a loop calibrated to last at least ``min_time``
seconds, repeated, with the garbage collector off; figures are medians with
their spread.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

__all__ = ["Stat", "format_table", "no_gc", "percentile", "stat", "time_per_call"]

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
