"""`SrvDiscovery`: peers from DNS SRV records (a discovery plugin that ships with qrpc).

``Node(..., plugins=[qrpc.SrvDiscovery("_qrpc._udp.app.example.com")])``
asks DNS for the SRV records of the name at start and every
``Limits.discovery_interval`` seconds; every target/port it lists becomes a
peer the node dials.  A Kubernetes headless service publishes such records
for its named ports (``_<port-name>._udp.<service>.<namespace>.svc...``).

Each target's A (then AAAA) records are resolved with the same resolver,
so the peers are dialed by address; a target without any is dialed by name
(the system resolver then resolves it at each attempt).  A failed lookup
is transient: the round finds nothing new and the next one asks again.
Needs dnspython (``pip install 'qrpc[dns]'``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from qrpc.config import PeerAddress
from qrpc.errors import ConfigError
from qrpc.hooks.specs import hookimpl

if TYPE_CHECKING:
    from qrpc.hooks.view import NodeView

__all__ = ["SrvDiscovery"]

log = logging.getLogger("qrpc.plugins")


class SrvDiscovery:
    """Discover peers from the SRV records of `name`.

    Args:
        name: the SRV owner name, e.g. ``_qrpc._udp.app.example.com``.
        nameservers: DNS servers to ask (IP addresses); default: the system's.
        port: the DNS servers' port.
        timeout: seconds for one lookup.

    Raises:
        ConfigError: dnspython is not installed, or an argument is unusable.
    """

    def __init__(
        self,
        name: str,
        *,
        nameservers: Sequence[str] | None = None,
        port: int = 53,
        timeout: float = 2.0,
    ) -> None:
        try:
            import dns.asyncresolver
        except ImportError:
            raise ConfigError("SrvDiscovery", "needs dnspython: pip install 'qrpc[dns]'") from None
        if not isinstance(name, str) or not name.strip(". "):
            raise ConfigError("SrvDiscovery.name", f"must be a DNS name, got {name!r}")
        if not timeout > 0:
            raise ConfigError("SrvDiscovery.timeout", f"must be > 0 seconds, got {timeout!r}")
        resolver = dns.asyncresolver.Resolver(configure=nameservers is None)
        if nameservers is not None:
            resolver.nameservers = list(nameservers)
        resolver.port = port
        resolver.lifetime = timeout
        self.name = name
        self._resolver: Any = resolver

    def __repr__(self) -> str:
        return f"SrvDiscovery({self.name!r})"

    @hookimpl
    async def qrpc_discover_peers(self, node: NodeView) -> list[PeerAddress]:
        """The peers the SRV records list now (none if the lookup fails)."""
        import dns.exception

        try:
            answer = await self._resolver.resolve(self.name, "SRV")
        except dns.exception.DNSException as exc:
            log.info("SRV lookup of %s failed (%s); asking again next round", self.name, exc)
            return []
        records = sorted(answer, key=lambda r: (r.priority, -r.weight))
        peers = []
        for record in records:
            target = record.target.to_text(omit_final_dot=True)
            peers.append(PeerAddress(await self._address(target), record.port))
        return peers

    async def _address(self, target: str) -> str:
        import dns.exception

        for kind in ("A", "AAAA"):
            try:
                answer = await self._resolver.resolve(target, kind)
            except dns.exception.DNSException:
                continue
            for record in answer:
                return str(record.address)
        return target
