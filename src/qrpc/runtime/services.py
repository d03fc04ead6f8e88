"""Built-in services: requests every node answers on the reserved cmd_ids.

They live outside the application's registry: the node sends and decodes
them through `Registry.with_services` (which leaves the application's
registry, and the schema in HELLO, unchanged) and handles them from its
handler table's hidden entries.  ``docs/services.md`` is the reference.

- health (always on): `HealthCheck` -> `Health`;
- introspection (off unless ``Node(introspection=...)``): `PeersQuery` ->
  `PeersReport`, `StatsQuery` -> `StatsReport`.  Each request is allowed
  if no ``qrpc_authorize_introspection`` hook refuses it and either the
  requester's node ID is listed or a hook approves; else the requester gets
  ``RemoteError`` NOT_AUTHORIZED.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Final

import msgspec

from qrpc.codes import RemoteErrorCode
from qrpc.errors import ConfigError
from qrpc.ids import normalize_node_id
from qrpc.registry import RESERVED_CMD_IDS, Registry
from qrpc.runtime.context import Context
from qrpc.runtime.handlers import HandlerSpec, Refusal
from qrpc.runtime.link import LinkStats
from qrpc.runtime.stats import NodeStats
from qrpc.tls.identity import PeerIdentity
from qrpc.wire.frames import PROTOCOL_VERSION

__all__ = [
    "SERVICE_TYPES",
    "Health",
    "HealthCheck",
    "PeersQuery",
    "PeersReport",
    "Services",
    "StatsQuery",
    "StatsReport",
]

_BASE: Final = RESERVED_CMD_IDS.start


class HealthCheck(msgspec.Struct, frozen=True):
    """Ask a node whether it is alive (cmd_id 0xFFFFFF00); answered with `Health`."""


class Health(msgspec.Struct, frozen=True):
    """A node's answer to `HealthCheck` (cmd_id 0xFFFFFF01)."""

    node_id: str
    """The answering node's ID."""
    protocol_version: int
    """The qrpc wire protocol version it speaks."""
    uptime: float
    """Seconds since it started."""
    peers: int
    """How many peers it has a live link to."""


class PeersQuery(msgspec.Struct, frozen=True):
    """Ask for a node's live links (cmd_id 0xFFFFFF02); answered with `PeersReport`."""


class PeersReport(msgspec.Struct, frozen=True):
    """The live links of a node (cmd_id 0xFFFFFF03)."""

    node_id: str
    """The answering node's ID."""
    peers: tuple[LinkStats, ...]
    """One `LinkStats` per live link, sorted by peer ID."""


class StatsQuery(msgspec.Struct, frozen=True):
    """Ask for a node's `NodeStats` (cmd_id 0xFFFFFF04); answered with `StatsReport`."""


class StatsReport(msgspec.Struct, frozen=True):
    """A node's statistics (cmd_id 0xFFFFFF05)."""

    stats: NodeStats
    """What `Node.stats()` returns on that node."""


SERVICE_TYPES: Final[tuple[tuple[int, type[msgspec.Struct]], ...]] = (
    (_BASE, HealthCheck),
    (_BASE + 1, Health),
    (_BASE + 2, PeersQuery),
    (_BASE + 3, PeersReport),
    (_BASE + 4, StatsQuery),
    (_BASE + 5, StatsReport),
)
"""The built-in service messages and their cmd_ids."""

Authorize = Callable[[str, PeerIdentity], "bool | None"]


class Services:
    """One node's built-in services: their registry, handlers and authorization.

    Args:
        registry: the application's registry (left unchanged).
        introspection: False (off), True (on: the hooks decide), or node IDs
            allowed to introspect (on: those, and whoever a hook approves).
        authorize: the introspection hooks' verdict (`Plugins.authorize_introspection`).
        stats: the node's `Node.stats`.

    Raises:
        ConfigError: `introspection` is not a bool or a collection of node IDs.
    """

    __slots__ = ("_allowed", "_authorize", "_enabled", "_started", "_stats", "handlers", "registry")

    def __init__(
        self,
        registry: Registry,
        introspection: bool | Iterable[str],
        *,
        authorize: Authorize,
        stats: Callable[[], NodeStats],
    ) -> None:
        self._enabled, self._allowed = _check_introspection(introspection)
        self._authorize = authorize
        self._stats = stats
        self._started: float | None = None
        self.registry = registry.with_services(SERVICE_TYPES)
        "The application's types and the services' (what the node's links use)."
        self.handlers: Mapping[int, HandlerSpec] = {
            _BASE: HandlerSpec(self._health),
            _BASE + 2: HandlerSpec(self._peers),
            _BASE + 4: HandlerSpec(self._node_stats),
        }
        "The services' handlers by cmd_id."

    def start(self) -> None:
        """The node started: uptime counts from now."""
        self._started = time.monotonic()

    def uptime(self) -> float:
        """Seconds since `start` (0 before)."""
        return 0.0 if self._started is None else time.monotonic() - self._started

    async def _health(self, ctx: Context, msg: HealthCheck) -> Health:
        node = ctx.node
        return Health(node.id, PROTOCOL_VERSION, self.uptime(), len(node.peers()))

    async def _peers(self, ctx: Context, msg: PeersQuery) -> PeersReport:
        self._check_allowed(ctx)
        stats = self._stats()
        return PeersReport(stats.node_id, stats.peers)

    async def _node_stats(self, ctx: Context, msg: StatsQuery) -> StatsReport:
        self._check_allowed(ctx)
        return StatsReport(self._stats())

    def _check_allowed(self, ctx: Context) -> None:
        if not self._enabled:
            raise Refusal(RemoteErrorCode.NOT_AUTHORIZED, "introspection is off on this node")
        peer_id = ctx.peer_id
        verdict = self._authorize(peer_id, ctx.identity)
        if verdict is False or (verdict is None and peer_id not in self._allowed):
            raise Refusal(RemoteErrorCode.NOT_AUTHORIZED, f"{peer_id} may not introspect this node")


def _check_introspection(value: object) -> tuple[bool, frozenset[str]]:
    if isinstance(value, bool):
        return value, frozenset()
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise ConfigError(
            "Node.introspection",
            f"must be True, False or a collection of node IDs, got {value!r}",
        )
    allowed = set()
    for item in value:
        try:
            allowed.add(normalize_node_id(item))
        except (TypeError, ValueError) as exc:
            raise ConfigError("Node.introspection", f"{item!r} is not a node ID ({exc})") from None
    return True, frozenset(allowed)
