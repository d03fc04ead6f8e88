"""qrpc plugin: discover peers from a file that something else keeps up to date.

The file lists one peer per line, ``HOST:PORT`` or ``HOST:PORT NODE_ID``
(``[v6addr]:PORT`` for IPv6); blank lines and ``#`` comments are skipped.
A config-management tool, a Kubernetes sidecar or an operator rewrites it;
the node reads it again whenever it changed (size or modification time),
once per discovery round (``Limits.discovery_interval``), and dials every
peer it has not dialed yet.

Two ways to use it:

- **In code**: ``Node(..., plugins=[PeersFile("/etc/app/peers")])``.
- **Installed** (entry point ``peers-file`` in group ``qrpc``): set
  ``QRPC_PEERS_FILE``.  Without it the installed plugin finds no peers and
  does nothing else (``qrpc plugins`` still lists it).

A missing or unreadable file is logged (WARNING) and finds no peers that
round; a bad line is logged with its number and skipped, the others used.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Final

from qrpc import ConfigError, PeerAddress, hookimpl

if TYPE_CHECKING:
    from qrpc.hooks.view import NodeView

__all__ = ["ENV_FILE", "PeersFile", "parse_peers", "plugin_status", "qrpc_discover_peers"]

ENV_FILE: Final = "QRPC_PEERS_FILE"

log = logging.getLogger("qrpc_peers_file")


def parse_peers(text: str, source: str = "<text>") -> list[PeerAddress]:
    """The peers listed in `text`; bad lines are logged (naming `source` and the
    line number) and skipped."""
    peers = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            peers.append(_parse_line(line))
        except (ValueError, ConfigError) as exc:
            log.warning("%s:%d: %s; line skipped", source, number, exc)
    return peers


def _parse_line(line: str) -> PeerAddress:
    where, _, node_id = line.partition(" ")
    host, sep, port = where.rpartition(":")
    if not sep or not host:
        raise ValueError(f"{where!r} is not HOST:PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"port {port!r} is not a number in 1..65535")
    return PeerAddress(host, int(port), expected_id=node_id.strip() or None)


class PeersFile:
    """Discover peers from the file at `path` (see the module docstring)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._stamp: tuple[int, int] | None = None
        self._peers: list[PeerAddress] = []

    def __repr__(self) -> str:
        return f"PeersFile({str(self.path)!r})"

    def read(self) -> list[PeerAddress]:
        """The peers the file lists now (read again only if it changed)."""
        try:
            info = self.path.stat()
            stamp = (info.st_mtime_ns, info.st_size)
            if stamp != self._stamp:
                text = self.path.read_text(encoding="utf-8")
                self._peers, self._stamp = parse_peers(text, str(self.path)), stamp
        except (OSError, UnicodeDecodeError) as exc:
            log.warning("cannot read the peers file %s: %s", self.path, exc)
            self._stamp, self._peers = None, []
        return list(self._peers)

    @hookimpl
    def qrpc_discover_peers(self, node: NodeView) -> list[PeerAddress]:
        """The peers the file lists."""
        return self.read()


_installed: dict[str, PeersFile] = {}


def plugin_status() -> str:
    """One line for ``qrpc plugins``: active or inert, and how to change it."""
    path = os.environ.get(ENV_FILE, "").strip()
    if not path:
        return f"inert: set {ENV_FILE} to dial the peers a file lists"
    return f"active: dials the peers {path} lists"


@hookimpl
def qrpc_discover_peers(node: NodeView) -> list[PeerAddress] | None:
    """The installed plugin: the peers of the file ``QRPC_PEERS_FILE`` names, if set."""
    path = os.environ.get(ENV_FILE, "").strip()
    if not path:
        return None
    source = _installed.get(path)
    if source is None:
        source = _installed[path] = PeersFile(path)
    return source.read()
