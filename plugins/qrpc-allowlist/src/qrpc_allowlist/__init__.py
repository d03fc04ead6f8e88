"""qrpc plugin: admit only peers whose node ID or certificate fingerprint is listed.

Two ways to use it:

- **In code**: ``Node(..., plugins=[Allowlist({"01jd...", "sha256:ab12..."})])``.
- **Installed** (entry point ``allowlist`` in group ``qrpc``): set
  ``QRPC_ALLOWLIST`` to a comma-separated list of entries, and/or
  ``QRPC_ALLOWLIST_FILE`` to a file of entries (one or more per line, comma-
  or space-separated, ``#`` starts a comment).  With neither variable set
  the installed plugin does nothing.  The variables are read on every new
  link, never at import, so a changed file takes effect for the next peer;
  and while a node runs the file is watched (every 0.25 s): when it changes,
  every live peer is checked again and those no longer listed are
  disconnected (`qrpc.Node.reauthorize`, close code AUTH_REVOKED).

An entry is a node ID (case-insensitive, as qrpc compares them) or the
SHA-256 fingerprint of a peer's certificate: 64 hex digits, optionally
written ``sha256:AB:CD:...`` as ``openssl x509 -fingerprint -sha256``
prints it.  A peer is admitted if its node ID *or* its certificate is
listed.

The check runs in `qrpc_authorize_peer`, after TLS and HELLO, for peers
this node dials and peers that dial it alike.  A refused peer never
reaches a handler; its dialer gets a permanent `qrpc.PeerAuthError`.  Every
``qrpc_authorize_peer`` impl may veto, so several allowlists admit only
peers that all of them list.

Fail closed: if a variable is set but unusable (a bad entry, a missing
file, or ``QRPC_ALLOWLIST=""``), every peer is refused and the reason is
logged at ERROR.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Final

from qrpc import ConfigError, PeerIdentity, hookimpl
from qrpc.ids import is_node_id

if TYPE_CHECKING:
    from qrpc.hooks.view import NodeView
    from qrpc.wire.hello import Hello

__all__ = [
    "ENV_FILE",
    "ENV_LIST",
    "Allowlist",
    "qrpc_authorize_peer",
    "qrpc_node_started",
    "qrpc_node_stopped",
]

ENV_LIST: Final = "QRPC_ALLOWLIST"
"""Environment variable: comma-separated node IDs and certificate fingerprints."""
ENV_FILE: Final = "QRPC_ALLOWLIST_FILE"
"""Environment variable: path of a file of node IDs and certificate fingerprints."""

log = logging.getLogger("qrpc_allowlist")

WATCH_INTERVAL: Final = 0.25  # seconds between looks at QRPC_ALLOWLIST_FILE
_FINGERPRINT: Final = re.compile(r"[0-9a-f]{64}")
_watchers: dict[int, asyncio.Task[None]] = {}  # one per running node, by id(node)
_SEPARATORS: Final = re.compile(r"[,\s]+")


class Allowlist:
    """A set of admitted node IDs and certificate fingerprints; a qrpc plugin.

    Args:
        entries: node IDs and/or SHA-256 certificate fingerprints (see the
            module docstring for the accepted spellings).  Empty: admit nobody.
        where: names the source of `entries` in error messages.

    Raises:
        ConfigError: an entry is neither a node ID nor a fingerprint, or
            `entries` is a single string rather than a collection of them.
    """

    __slots__ = ("fingerprints", "node_ids")

    def __init__(self, entries: Iterable[str] = (), *, where: str = "Allowlist") -> None:
        if isinstance(entries, str):
            raise ConfigError(where, "pass a collection of entries, not one string")
        node_ids: set[str] = set()
        fingerprints: set[str] = set()
        for entry in entries:
            kind, value = _parse_entry(entry, where)
            (fingerprints if kind == "fingerprint" else node_ids).add(value)
        self.node_ids: frozenset[str] = frozenset(node_ids)
        "Admitted node IDs, lower case."
        self.fingerprints: frozenset[str] = frozenset(fingerprints)
        "Admitted certificate fingerprints, 64 lower-case hex digits."

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Allowlist:
        """Read an allowlist file (entries separated by commas, spaces or lines;
        ``#`` starts a comment).

        Raises:
            ConfigError: the file cannot be read or holds a bad entry (the
                error names the file and line).
        """
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(path, f"cannot read the allowlist: {exc}") from None
        allowlist = cls()
        for number, line in enumerate(text.splitlines(), start=1):
            entries = [e for e in _SEPARATORS.split(line.split("#", 1)[0]) if e]
            allowlist = allowlist | cls(entries, where=f"{os.fspath(path)}:{number}")
        return allowlist

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Allowlist | None:
        """Build the allowlist that ``QRPC_ALLOWLIST`` and ``QRPC_ALLOWLIST_FILE``
        describe (their union), or return None if neither is set.

        Raises:
            ConfigError: a variable is set but unusable.
        """
        env = os.environ if environ is None else environ
        listed, file = env.get(ENV_LIST), env.get(ENV_FILE)
        if listed is None and file is None:
            return None
        allowlist = cls()
        if listed is not None:
            entries = [e.strip() for e in listed.split(",") if e.strip()]
            if not entries:
                raise ConfigError(ENV_LIST, "is set but lists nobody; unset it to admit everyone")
            allowlist = allowlist | cls(entries, where=ENV_LIST)
        if file is not None:
            if not file.strip():
                raise ConfigError(ENV_FILE, "is set but names no file")
            allowlist = allowlist | cls.from_file(file)
        return allowlist

    def allows(self, node_id: str, fingerprint: str | None = None) -> bool:
        """Tell whether a peer with this node ID (or certificate) is admitted."""
        return node_id.lower() in self.node_ids or (
            fingerprint is not None and fingerprint.lower() in self.fingerprints
        )

    def __or__(self, other: Allowlist) -> Allowlist:
        merged = Allowlist()
        merged.node_ids = self.node_ids | other.node_ids
        merged.fingerprints = self.fingerprints | other.fingerprints
        return merged

    def __len__(self) -> int:
        return len(self.node_ids) + len(self.fingerprints)

    def __repr__(self) -> str:
        return f"Allowlist({sorted(self.node_ids) + sorted(self.fingerprints)!r})"

    @hookimpl
    def qrpc_authorize_peer(self, identity: PeerIdentity, hello: Hello) -> bool:
        """Admit the peer if its node ID or certificate fingerprint is listed."""
        return _decide(self, hello.node_id, identity.fingerprint)


def plugin_status() -> str:
    """One line for ``qrpc plugins``: active or inert, and how to change it."""
    listed, file = os.environ.get(ENV_LIST), os.environ.get(ENV_FILE)
    if listed is None and file is None:
        return f"inert: set {ENV_LIST} and/or {ENV_FILE} to admit only the peers listed"
    return "active: admits only the peers " + " and ".join(
        f"{name} lists"
        for name, value in ((ENV_LIST, listed), (ENV_FILE, file))
        if value is not None
    )


@hookimpl
def qrpc_authorize_peer(identity: PeerIdentity, hello: Hello) -> bool | None:
    """The installed plugin: apply the allowlist from the environment, if any.

    Returns None (no opinion) when neither variable is set, and False for
    every peer when the configuration is unusable.
    """
    try:
        allowlist = Allowlist.from_env()
    except ConfigError as exc:
        log.error("refusing peer %s: the allowlist is unusable: %s", hello.node_id, exc)
        return False
    if allowlist is None:
        return None
    return _decide(allowlist, hello.node_id, identity.fingerprint)


@hookimpl
def qrpc_node_started(node: NodeView) -> None:
    """The installed plugin: watch ``QRPC_ALLOWLIST_FILE`` while the node runs."""
    path = os.environ.get(ENV_FILE, "").strip()
    if path:
        task = asyncio.get_running_loop().create_task(
            _watch(node, Path(path)), name=f"qrpc_allowlist-watch-{node.id}"
        )
        _watchers[id(node)] = task


@hookimpl
def qrpc_node_stopped(node: NodeView) -> None:
    """Stop watching for this node."""
    task = _watchers.pop(id(node), None)
    if task is not None:
        task.cancel()


async def _watch(node: NodeView, path: Path) -> None:
    """Re-check the live peers whenever the file changes (mtime, size or presence)."""
    last = _stamp(path)
    while True:
        await asyncio.sleep(WATCH_INTERVAL)
        stamp = _stamp(path)
        if stamp == last:
            continue
        last = stamp
        revoked = await node.reauthorize()
        if revoked:
            log.warning("%s changed: disconnected %s", path, ", ".join(revoked))


def _stamp(path: Path) -> tuple[int, int] | None:
    with contextlib.suppress(OSError):
        info = path.stat()
        return info.st_mtime_ns, info.st_size
    return None


def _decide(allowlist: Allowlist, node_id: str, fingerprint: str) -> bool:
    # hello.node_id is the ID the certificate proves: qrpc checks that before
    # calling qrpc_authorize_peer (PEER_ID_MISMATCH otherwise).
    if allowlist.allows(node_id, fingerprint):
        return True
    log.warning(
        "refusing peer %s (certificate sha256 %s): not in the allowlist", node_id, fingerprint
    )
    return False


def _parse_entry(entry: str, where: str) -> tuple[str, str]:
    if not isinstance(entry, str):
        raise ConfigError(where, f"entries must be str, got {entry!r}")
    value = entry.strip().lower()
    fingerprint = value.removeprefix("sha256:").replace(":", "")
    if _FINGERPRINT.fullmatch(fingerprint):
        return "fingerprint", fingerprint
    if not value.startswith("sha256:") and is_node_id(value):
        return "node_id", value
    raise ConfigError(
        where, f"{entry!r} is neither a node ID nor a SHA-256 certificate fingerprint"
    )
