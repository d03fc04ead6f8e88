"""`Discovery`: asks the discovery hooks for peers, periodically, and dials the new ones.

Plugins implement ``qrpc_discover_peers`` to feed peers from an existing
system -- DNS SRV records (`qrpc.SrvDiscovery`), Kubernetes endpoints,
Consul, a watched file.  Every `interval` seconds the task asks them all
(`Plugins.discover_peers`, each impl guarded and bounded in time) and hands
each address it has not dialed yet to `dial`, which starts a dial loop
like a bootstrap peer's.  An address a plugin stops listing keeps its dial
loop: the loop's reconnect policy decides, as for any peer that went away.
How many addresses it dials is bounded by `limit` (the node's peer limit).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from qrpc.config import PeerAddress

__all__ = ["Discovery"]

log = logging.getLogger("qrpc.node")


class Discovery:
    """The discovery task of a running node.

    Args:
        discover: one round of asking the plugins (`Plugins.discover_peers`).
        dial: starts a dial loop for an address (`Runtime.dial`).
        known: the addresses dial loops exist for already (bootstrap peers).
        interval: seconds between rounds.
        limit: most addresses this task dials in the node's lifetime.
    """

    __slots__ = ("_dial", "_discover", "_interval", "_limit", "_seen", "task")

    def __init__(
        self,
        *,
        discover: Callable[[float], Awaitable[list[PeerAddress]]],
        dial: Callable[[PeerAddress], None],
        known: set[PeerAddress],
        interval: float,
        limit: int,
    ) -> None:
        self._discover = discover
        self._dial = dial
        self._seen = set(known)
        self._interval = interval
        self._limit = limit
        self.task = asyncio.get_running_loop().create_task(self._run(), name="qrpc-discovery")

    async def _run(self) -> None:
        dialed = 0
        warned = False
        while True:
            try:
                found = await self._discover(self._interval)
            except Exception:  # the hooks are guarded one by one; this is a last resort
                log.exception("discovery: a round failed; trying again next round")
                found = []
            for peer in found:
                if peer in self._seen:
                    continue
                if dialed >= self._limit:
                    if not warned:
                        warned = True
                        log.warning(
                            "discovery: %d peers dialed (Limits.max_peers); not dialing more",
                            dialed,
                        )
                    break
                self._seen.add(peer)
                dialed += 1
                log.info("discovery: dialing %s:%d", peer.host, peer.port)
                self._dial(peer)
            await asyncio.sleep(self._interval)
