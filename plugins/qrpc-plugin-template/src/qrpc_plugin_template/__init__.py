"""qrpc plugin template: an audit log of peer links.

Copy this package to start your own plugin (see the README).  What it does:

- ``qrpc_peer_connected``: logs one INFO line on the ``qrpc.audit`` logger
  naming the node, the peer and the peer's certificate (SHA-256 fingerprint,
  subject, SANs), and remembers when the link came up;
- ``qrpc_peer_disconnected``: logs one INFO line with the close code (its
  `qrpc.ErrorCode` name when qrpc defines one), the reason, and how long the
  link lasted;
- ``qrpc_node_stopped``: forgets the node.

It only observes: it runs once per link, never per message, and changes
nothing about how a node behaves.  State is kept per node ID, so one instance
(such as `plugin`, the one the entry point publishes) serves every node of a
process.

Two ways to use it:

- **In code**: ``Node(..., plugins=[LinkAudit()])``.
- **Installed** (entry point ``plugin-template`` in group ``qrpc``, the
  instance `plugin`): loaded into every node built with
  ``autoload_plugins=True`` (the default), it logs only while
  ``QRPC_AUDIT=1`` is set, so installing the example changes nothing until
  it is asked to (``qrpc plugins`` shows which it is).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Final

from qrpc import ErrorCode, PeerIdentity, hookimpl

if TYPE_CHECKING:
    from qrpc.hooks.view import NodeView

__all__ = ["ENV_ENABLE", "LOGGER_NAME", "LinkAudit", "code_name", "plugin"]

__version__ = "0.1.0"

LOGGER_NAME: Final = "qrpc.audit"
"""The logger the audit lines go to (INFO)."""
ENV_ENABLE: Final = "QRPC_AUDIT"
"""Set to ``1`` to make the installed instance log."""

log = logging.getLogger(LOGGER_NAME)


class LinkAudit:
    """The qrpc plugin: logs every peer link of the nodes it is registered with.

    Args:
        logger: where the lines go; default: the ``qrpc.audit`` logger.
        env: if given, log only while this environment variable is ``1``
            (links are tracked either way).

    Observer hooks should not raise (qrpc logs and ignores the exception;
    other plugins still get the event), so every hook below only does
    dictionary updates and logging.
    """

    def __init__(self, logger: logging.Logger = log, *, env: str | None = None) -> None:
        self.logger = logger
        self.env = env
        self._up_since: dict[str, dict[str, float]] = {}
        # node ID -> peer ID -> time.monotonic() when the link came up

    @property
    def nodes(self) -> frozenset[str]:
        """IDs of the nodes this instance keeps state for (started, not yet stopped)."""
        return frozenset(self._up_since)

    def links(self, node_id: str) -> Mapping[str, float]:
        """The live links of node `node_id`: peer ID -> when the link came up
        (`time.monotonic`).  Empty for a node that is unknown or was forgotten."""
        return dict(self._up_since.get(node_id, {}))

    @property
    def logging(self) -> bool:
        """Whether the audit lines are written now."""
        return self.env is None or os.environ.get(self.env, "").strip() == "1"

    def plugin_status(self) -> str:
        """One line for ``qrpc plugins``: active or inert, and how to change it."""
        if self.logging:
            return f"active: logs every link up and down on the {self.logger.name!r} logger"
        return f"inert: set {self.env}=1 to log every link"

    @hookimpl
    def qrpc_node_started(self, node: NodeView) -> None:
        """Start keeping state for the node."""
        self._up_since.setdefault(node.id, {})

    @hookimpl
    def qrpc_node_stopped(self, node: NodeView) -> None:
        """Forget the node (its links are all closed by now)."""
        self._up_since.pop(node.id, None)

    @hookimpl
    def qrpc_peer_connected(self, node: NodeView, peer_id: str, identity: PeerIdentity) -> None:
        """Remember when the link came up; log who the peer is."""
        self._up_since.setdefault(node.id, {})[peer_id] = time.monotonic()
        if not self.logging:
            return
        self.logger.info(
            "node %s: link to %s up (certificate sha256:%s, subject %r, SANs %s)",
            node.id,
            peer_id,
            identity.fingerprint,
            identity.subject,
            ", ".join(identity.sans) or "none",
        )

    @hookimpl
    def qrpc_peer_disconnected(self, node: NodeView, peer_id: str, code: int, reason: str) -> None:
        """Log the close code, the reason and how long the link lasted."""
        since = self._up_since.get(node.id, {}).pop(peer_id, None)
        lasted = "an unknown time" if since is None else f"{time.monotonic() - since:.3f} s"
        if not self.logging:
            return
        self.logger.info(
            "node %s: link to %s down after %s: code %s, reason %r",
            node.id,
            peer_id,
            lasted,
            code_name(code),
            reason,
        )


def code_name(code: int) -> str:
    """The `qrpc.ErrorCode` name of a close code, or its hex value if qrpc defines none."""
    try:
        return ErrorCode(code).name
    except ValueError:
        return f"{code:#x}"


plugin: Final = LinkAudit(env=ENV_ENABLE)
"""The instance published in the ``qrpc`` entry-point group as ``plugin-template``."""
