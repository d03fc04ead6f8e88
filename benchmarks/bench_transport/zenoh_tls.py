"""Contender: Zenoh over TLS on TCP with mutual TLS -- the `zenoh` contender on another link.

The same two peers, certificates, checks and measurements as `zenoh`
(``benchmarks.bench_transport.zenoh``); the listener is ``tls/<host>:<port>``.
"""

from __future__ import annotations

from typing import Final

from benchmarks.bench_transport import zenoh
from benchmarks.bench_transport._common import Worker, WorkerSpec

label: Final = "zenoh-tls"
notes: Final = zenoh.notes.replace("QUIC", "TLS over TCP")
metrics: Final = zenoh.metrics


async def setup(role: str, spec: WorkerSpec) -> Worker:
    """Build one side (see `benchmarks.bench_transport._common`)."""
    return await zenoh.setup_on("tls", role, spec)
