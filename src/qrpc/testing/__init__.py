"""Test kit for qrpc applications, plugins and codecs (``docs/testing.md``).

- `Network`: nodes on loopback, linked through seeded fault proxies, with
  `impair` / `partition` / `heal` / `restart` (the ``qrpc_network`` fixture);
- `TestPKI`, `refused_tls`: throw-away certificates, and ones peers refuse;
- `UdpProxy`, `Impairment`: the fault-injection proxy on its own;
- `RecordingTracer`, `HookRecorder`, `entry_point_plugin`: see what plugins
  and nodes did, and load a plugin the way its package declares it.

The pytest fixtures ``qrpc_pki`` and ``qrpc_network`` are installed with qrpc
as a pytest plugin (`qrpc.testing.pytest_plugin`).
"""

from qrpc.testing.network import TEST_DEFAULTS, Network, NetworkFactory
from qrpc.testing.pki import TestPKI, refused_tls
from qrpc.testing.proxy import DirectionStats, Impairment, UdpProxy
from qrpc.testing.recording import (
    HookCall,
    HookRecorder,
    RecordingTracer,
    TraceRecord,
    entry_point_plugin,
)

__all__ = [
    "TEST_DEFAULTS",
    "DirectionStats",
    "HookCall",
    "HookRecorder",
    "Impairment",
    "Network",
    "NetworkFactory",
    "RecordingTracer",
    "TestPKI",
    "TraceRecord",
    "UdpProxy",
    "entry_point_plugin",
    "refused_tls",
]
