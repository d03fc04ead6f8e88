"""What every result file records about the machine (timing and tables: `qrpc.bench.timing`)."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import os
import platform
import sys
from typing import Any, Final

__all__ = ["PACKAGES", "environment"]

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
