"""Dialing: `Dialer` makes one attempt; `DialLoop` keeps one bootstrap peer connected.

One `DialLoop` task per bootstrap `PeerAddress`: dial; on success wait
(event-driven, no polling) until that peer is gone, then dial again at
once; on failure ask the reconnect policy (``qrpc_next_reconnect_delay``,
by default `Backoff`, stopping on permanent failures) how long to wait, or
whether to stop.  Every attempt and failure is reported as a `Connecting`
/ `ConnectFailed` event.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509

from qrpc.config import PeerAddress
from qrpc.errors import (
    AddressError,
    ConfigError,
    ConnectError,
    ConnectTimeout,
    DuplicateLink,
    PeerDisconnected,
)
from qrpc.policy import FailureKind, classify_failure
from qrpc.runtime.events import ConnectFailed, Connecting, NodeEvent
from qrpc.transport.connection import Connection
from qrpc.transport.mtls import PeerPolicy

__all__ = ["DialLoop", "DialState", "Dialer"]

log = logging.getLogger("qrpc.node")
Connect = Callable[..., Awaitable[Connection]]
"""`Endpoint.connect(addr, *, policy, answer_timeout)`."""


@dataclass(frozen=True, slots=True)
class DialState:
    """What the dial loop of one bootstrap peer is doing (`Node.dial_states()`)."""

    address: PeerAddress
    """The bootstrap entry."""
    peer_id: str | None
    """The peer's node ID, once known (from `expected_id` or a first link)."""
    failures: int
    """Failed attempts in a row (0 while connected)."""
    stopped: bool
    """True once the loop gave up: a permanent failure, or the reconnect policy."""


class Dialer:
    """One dial attempt: resolve, TLS, then admission (HELLO, checks, registration).

    Args:
        connect: the endpoint's ``connect``.
        family: the endpoint socket's address family (names resolve in it).
        trust: the node's CA certificates (a peer's own ``ca`` overrides them).
        ca_file: the file `trust` came from (named in refusals).
        domain: the trust domain of identity SANs.
        answer_timeout: seconds to wait for the first answer of the peer.
        admit: runs HELLO and admission on a connection that completed TLS.
    """

    __slots__ = (
        "_admit",
        "_answer_timeout",
        "_ca_file",
        "_connect",
        "_domain",
        "_family",
        "_trust",
    )

    def __init__(
        self,
        *,
        connect: Connect,
        family: int,
        trust: Sequence[x509.Certificate],
        ca_file: str | None = None,
        domain: str,
        answer_timeout: float,
        admit: Callable[[Connection], Awaitable[str]],
    ) -> None:
        self._connect = connect
        self._family = family
        self._trust = trust
        self._ca_file = ca_file
        self._domain = domain
        self._answer_timeout = answer_timeout
        self._admit = admit

    async def dial(self, peer: PeerAddress) -> str:
        """Dial `peer` and register it; return its node ID.

        The name is resolved again at every attempt, and every address it
        resolves to is tried in turn until one answers.

        Raises:
            ConnectError: the attempt failed; the subclass says why (for
                several addresses, the last address's failure).
        """
        policy = PeerPolicy(
            trust=peer.trust or self._trust,
            domain=self._domain,
            expected_id=peer.expected_id,
            ca_file=os.fspath(peer.ca) if peer.ca is not None else self._ca_file,
        )
        *others, last = await self._resolve(peer)
        for addr in others:
            try:
                conn = await self._connect(addr, policy=policy, answer_timeout=self._answer_timeout)
            except ConnectTimeout:
                log.debug("%s: no answer at %s, trying the next address", peer, addr)
                continue
            return await self._admit(conn)
        conn = await self._connect(last, policy=policy, answer_timeout=self._answer_timeout)
        return await self._admit(conn)

    async def _resolve(self, peer: PeerAddress) -> list[tuple[Any, ...]]:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(
                peer.host, peer.port, family=self._family, type=socket.SOCK_DGRAM
            )
        except OSError as exc:
            raise AddressError(f"cannot resolve {peer}: {exc}") from None
        addresses = list(dict.fromkeys(tuple(info[4]) for info in infos))  # in order, once
        if not addresses:
            raise AddressError(f"{peer} resolved to no address")
        return addresses


class DialLoop:
    """The dialing task of one bootstrap peer.

    Args:
        peer: the address to keep connected.
        dial: one attempt (`Dialer.dial`).
        wait_gone: waits until a peer ID has no link; returns the close reason
            (`PeerTable.wait_gone`).
        is_connected: whether a peer ID has a link.
        next_delay: the reconnect policy (`Plugins.next_reconnect_delay`).
        emit: publishes a node event.
        stable_after: seconds a link must last not to count as a failed attempt.
    """

    __slots__ = (
        "_dial",
        "_emit",
        "_failures",
        "_is_connected",
        "_next_delay",
        "_stable_after",
        "_wait_gone",
        "peer",
        "peer_id",
        "stopped",
        "task",
    )

    def __init__(
        self,
        peer: PeerAddress,
        *,
        dial: Callable[[PeerAddress], Awaitable[str]],
        wait_gone: Callable[[str], Awaitable[str]],
        is_connected: Callable[[str], bool],
        next_delay: Callable[[PeerAddress, int, BaseException, FailureKind], float | None],
        emit: Callable[[NodeEvent], None],
        stable_after: float,
    ) -> None:
        self.peer = peer
        self.peer_id: str | None = peer.expected_id
        "The peer's node ID, once known."
        self.stopped = False
        "True once the loop gave up (permanent failure or policy)."
        self._dial = dial
        self._wait_gone = wait_gone
        self._is_connected = is_connected
        self._next_delay = next_delay
        self._emit = emit
        self._stable_after = stable_after
        self._failures = 0
        self.task = asyncio.get_running_loop().create_task(self._run(), name=f"qrpc-dial-{peer}")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        attempt = 0
        while True:
            attempt += 1
            self._emit(Connecting(self.peer, attempt))
            try:
                peer_id = await self._dial(self.peer)
            except DuplicateLink as exc:
                # The peer is connected through another link: wait for it to end.
                if exc.peer_id is not None and self._is_connected(exc.peer_id):
                    log.debug("%s is connected through another link (%s)", self.peer, exc)
                    self.peer_id = exc.peer_id
                    attempt = self._failures = 0
                    await self._wait_gone(exc.peer_id)
                    continue
                error: BaseException = exc
            except (ConnectError, ConfigError, OSError) as exc:
                error = exc
            except Exception as exc:  # a bug must not end the loop silently
                log.exception("dialing %s failed unexpectedly", self.peer)
                error = exc
            else:
                self.peer_id = peer_id
                self._failures = 0
                up = loop.time()
                reason = await self._wait_gone(peer_id)
                lasted = loop.time() - up
                if lasted >= self._stable_after:
                    attempt = 0
                    continue
                # A link that did not hold counts as a failed attempt: back off.
                error = PeerDisconnected(
                    f"the link to {self.peer} ended after {lasted:.2f} s ({reason})"
                )
            delay = self._failed(attempt, error)
            if delay is None:
                return
            await asyncio.sleep(delay)

    def state(self) -> DialState:
        """A snapshot of what the loop is doing."""
        return DialState(self.peer, self.peer_id, self._failures, self.stopped)

    def _failed(self, attempt: int, error: BaseException) -> float | None:
        self._failures = attempt
        kind = classify_failure(error)
        delay = self._next_delay(self.peer, attempt, error, kind)
        self.stopped = delay is None  # before the event: a consumer sees the final state
        detail = str(error) or type(error).__name__
        self._emit(ConnectFailed(self.peer, kind, error, detail, delay))
        if delay is None:
            level = logging.ERROR if kind is FailureKind.PERMANENT else logging.WARNING
            log.log(level, "stopped dialing %s: %s", self.peer, error)
        else:
            log.info("dialing %s failed (%s), retrying in %.2f s", self.peer, error, delay)
        return delay
