"""Two network namespaces joined by a veth pair: transport runs across a real link.

Loopback carries 65536-byte packets and never drops; a veth pair with MTU
1500 (or 9000) behaves like an Ethernet link (or a jumbo-frame one): the
kernel drops what does not fit, so each contender runs at the datagram or
segment size such a link allows.  ``--knobs dgram=auto,veth=1500`` puts the
server side (server, hub, broker) in namespace `NAMES[0]` at `ADDRESSES[0]` and
the client side in `NAMES[1]` at `ADDRESSES[1]`.

Creating namespaces needs root and the ``ip`` command (iproute2); without
them `unavailable()` says why and the runner skips the run.  The namespaces
are removed when the run ends, and any left by a killed run are removed
before a new one starts.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

__all__ = ["ADDRESSES", "NAMES", "enter", "unavailable", "veth_pair"]

NAMES: Final = ("qrpcbench-a", "qrpcbench-b")
ADDRESSES: Final = ("10.77.0.1", "10.77.0.2")
_CLONE_NEWNET: Final = 0x40000000


def unavailable() -> str | None:
    """Why namespaces cannot be made here, or None if they can."""
    if not sys.platform.startswith("linux"):
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "network namespaces need root (run as root, or skip the veth knob)"
    if shutil.which("ip") is None:
        return "network namespaces need the ip command (iproute2)"
    return None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


def _remove() -> None:
    for name in NAMES:
        subprocess.run(["ip", "netns", "delete", name], capture_output=True, timeout=10)


@contextmanager
def veth_pair(mtu: int) -> Iterator[tuple[str, str]]:
    """Create both namespaces joined by a veth pair of `mtu`; yield their addresses."""
    _remove()
    try:
        for name in NAMES:
            _ip("netns", "add", name)
            _ip("-n", name, "link", "set", "lo", "up")
        _ip(
            "link",
            "add",
            "qb-a",
            "netns",
            NAMES[0],
            "type",
            "veth",
            "peer",
            "qb-b",
            "netns",
            NAMES[1],
        )
        for name, device, address in zip(NAMES, ("qb-a", "qb-b"), ADDRESSES, strict=True):
            _ip("-n", name, "link", "set", device, "mtu", str(mtu))
            _ip("-n", name, "addr", "add", f"{address}/24", "dev", device)
            _ip("-n", name, "link", "set", device, "up")
        yield ADDRESSES
    except subprocess.CalledProcessError as exc:
        raise RuntimeError(f"cannot create the veth pair: {exc.stderr.decode().strip()}") from None
    finally:
        _remove()


def enter(name: str) -> None:
    """Move this process into namespace `name` (call before any socket or thread exists)."""
    libc = ctypes.CDLL(None, use_errno=True)
    with open(f"/run/netns/{name}") as handle:
        if libc.setns(handle.fileno(), _CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {name} failed")
