"""`PeerTable`: how links become registered peers, and how they stop being ones.

The half of the node that admits links: accepting and dialing connections,
the HELLO checks (certified node ID, self-connection, codec, auth hooks),
the duplicate-link tie-break (`qrpc.policy.resolve_duplicate`, applied
synchronously so the table cannot change under it), registration, and
unregistration with its events and hooks.  `Node` extends it with the
public API.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import socket
from typing import TYPE_CHECKING, Any, cast

import pluggy

from qrpc._handshake import Handshake
from qrpc._peer import HandlerSpec, PeerLink
from qrpc._requests import RequestTable
from qrpc.codes import ErrorCode
from qrpc.config import Limits, Peer
from qrpc.connection import Connection
from qrpc.errors import (
    AddressError,
    ConnectError,
    ConnectionLimitReached,
    DuplicateLink,
    PeerAuthError,
    PeerDisconnected,
    PeerIdMismatch,
    SelfConnection,
)
from qrpc.events import Connected, Disconnected, EventHub, NodeEvent
from qrpc.hooks import Tracer
from qrpc.policy import LinkFacts, Resolution, resolve_duplicate
from qrpc.registry import Registry
from qrpc.security import TLS
from qrpc.transport import Endpoint
from qrpc.wire.events import GoodbyeReceived
from qrpc.wire.hello import Hello
from qrpc_codecs import Codec

if TYPE_CHECKING:
    from collections.abc import Coroutine

    from qrpc.node import Node

__all__ = ["PeerTable"]

log = logging.getLogger("qrpc.node")
_GOODBYE_GRACE = 2.0  # seconds a peer that said GOODBYE gets to close the link itself


class PeerTable:
    """The registered peers of a node and the rules for entering and leaving it."""

    # Set by Node.__init__ / Node.start.
    id: str
    tls: TLS
    limits: Limits
    registry: Registry
    codecs: list[Codec]
    incarnation: int
    plugin_manager: pluggy.PluginManager
    _closed: bool
    _endpoint: Endpoint | None
    _requests: RequestTable | None
    _handlers: dict[int, HandlerSpec]
    _peers: dict[str, PeerLink]
    _dialing: dict[str, Handshake]
    _links: set[PeerLink]
    _gone_waiters: dict[str, list[asyncio.Future[None]]]
    _peer_waiters: dict[str | None, list[asyncio.Future[str]]]
    _hub: EventHub
    _tasks: set[asyncio.Task[Any]]

    @property
    def _node(self) -> Node:
        return cast("Node", self)  # Node is the only PeerTable

    @property
    def endpoint(self) -> Endpoint:
        """The node's transport endpoint (for diagnostics and tests)."""
        if self._endpoint is None:
            raise RuntimeError("the node is not started")
        return self._endpoint

    def _emit(self, event: NodeEvent) -> None:
        self._hub.emit(event)

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _hello(self, codecs: list[str]) -> Hello:
        limits = self.limits
        return Hello(
            self.id, self.incarnation, codecs, limits.max_message_size, limits.inbound_window
        )

    def _on_accept(self, conn: Connection) -> None:
        if self._closed:
            conn.close(ErrorCode.NO_ERROR, "shutting down")
            return
        handshake = Handshake(self._node, conn, dialed=False)
        self._spawn(self._accept(handshake), name="qrpc-accept")

    async def _accept(self, handshake: Handshake) -> None:
        try:
            hello = await handshake.hello
            await self._admit(handshake, hello)
        except ConnectError as exc:
            log.info("refused a link from %s: %s", handshake.conn.remote_address, exc)

    async def _resolve(self, peer: Peer) -> tuple[Any, ...]:
        loop = asyncio.get_running_loop()
        endpoint = self.endpoint
        try:
            infos = await loop.getaddrinfo(
                peer.host, peer.port, family=endpoint.family, type=socket.SOCK_DGRAM
            )
        except OSError as exc:
            raise AddressError(f"cannot resolve {peer}: {exc}") from None
        return infos[0][4]

    async def _dial_once(self, peer: Peer) -> str:
        """Dial `peer`, run HELLO, register it; return its ID (used by `DialLoop`)."""
        from qrpc._mtls import PeerPolicy

        addr = await self._resolve(peer)
        policy = PeerPolicy(
            trust=peer.trust or self.tls.trust, domain=self.tls.domain, expected_id=peer.expected_id
        )
        conn = await self.endpoint.connect(
            addr, policy=policy, answer_timeout=self.limits.connect_timeout
        )
        identity = conn.peer_identity
        assert identity is not None
        certified = self.plugin_manager.hook.qrpc_certified_node_id(node=self, identity=identity)
        if certified == self.id:
            conn.close(ErrorCode.SELF_CONNECTION, "connected to itself")
            raise SelfConnection(f"{peer} is this node itself")
        if certified is not None and (certified in self._peers or certified in self._dialing):
            conn.close(ErrorCode.DUPLICATE_LINK, "already connected")
            error = DuplicateLink(ErrorCode.DUPLICATE_LINK, "already connected", by_peer=False)
            error.peer_id = certified
            raise error
        handshake = Handshake(self._node, conn, dialed=True)
        if certified is not None:
            self._dialing[certified] = handshake
        try:
            handshake.send_hello(self._hello([c.name for c in self.codecs]))
            try:
                hello = await handshake.hello
            except DuplicateLink as exc:
                exc.peer_id = certified
                raise
            return await self._admit(handshake, hello)
        finally:
            if certified is not None and self._dialing.get(certified) is handshake:
                del self._dialing[certified]
            if not handshake.conn.promoted:
                handshake.conn.close(ErrorCode.NO_ERROR, "dial abandoned")

    async def _admit(self, hs: Handshake, hello: Hello) -> str:
        """Check a peer's HELLO, resolve duplicates, register it; return its ID.

        Raises:
            ConnectError: the peer was refused (the connection is closed with
                the matching code).
        """
        peer_id = hello.node_id
        certified = self.plugin_manager.hook.qrpc_certified_node_id(node=self, identity=hs.identity)
        if certified != peer_id:
            raise hs.refuse(
                PeerIdMismatch(certified, peer_id, "HELLO does not match the certificate"),
                ErrorCode.PEER_ID_MISMATCH,
                "node ID does not match the certificate",
            )
        if peer_id == self.id:
            raise hs.refuse(
                SelfConnection("the peer is this node itself"),
                ErrorCode.SELF_CONNECTION,
                "connected to itself",
            )
        codec = self._agree_codec(hs, hello)
        if not await self._authorize(hs, hello):
            raise hs.refuse(
                PeerAuthError("an auth hook rejected the peer"),
                ErrorCode.AUTH_REJECTED,
                "not authorized",
            )
        hs.check_open()
        # From here on, synchronous: the peer table cannot change under us.
        new = LinkFacts(dialed_by_local=hs.dialed, incarnation=hello.incarnation)
        existing = self._peers.get(peer_id)
        rival = None if hs.dialed else self._dialing.get(peer_id)
        if existing is not None or rival is not None:
            facts = (
                LinkFacts(existing.dialed_by_local, existing.hello.incarnation)
                if existing is not None
                else LinkFacts(True, None)
            )
            if (
                resolve_duplicate(local_id=self.id, peer_id=peer_id, existing=facts, new=new)
                is Resolution.KEEP_EXISTING
            ):
                error = DuplicateLink(
                    ErrorCode.DUPLICATE_LINK, "a link to this peer exists", by_peer=False
                )
                error.peer_id = peer_id
                raise hs.refuse(error, ErrorCode.DUPLICATE_LINK, "duplicate link")
            if existing is not None:
                log.info("link to %s replaced by a newer one", peer_id)
                self._close_peer(existing, ErrorCode.REPLACED, "replaced by a newer link")
            if rival is not None:
                rival.conn.close(ErrorCode.DUPLICATE_LINK, "duplicate link")
        elif len(self._peers) >= self.limits.max_peers:
            raise hs.refuse(
                ConnectionLimitReached(ErrorCode.CONNECTION_LIMIT, "full", by_peer=False),
                ErrorCode.CONNECTION_LIMIT,
                "too many peers",
            )
        if not hs.dialed:
            hs.send_hello(self._hello([codec.name]))
        self._register(hs, hello, codec)
        return peer_id

    def _agree_codec(self, hs: Handshake, hello: Hello) -> Codec:
        ours = {c.name: c for c in self.codecs}
        if hs.dialed:  # the acceptor names exactly one codec, one we offered
            if len(hello.codecs) == 1 and hello.codecs[0] in ours:
                return ours[hello.codecs[0]]
            raise hs.refuse(
                ConnectError(f"bad HELLO: acceptor chose codecs {hello.codecs}"),
                ErrorCode.BAD_HELLO,
                "bad codec choice",
            )
        for name in hello.codecs:
            if name in ours:
                return ours[name]
        raise hs.refuse(
            ConnectError(f"no common codec: peer offers {hello.codecs}"),
            ErrorCode.NO_COMMON_CODEC,
            "no common codec",
        )

    async def _authorize(self, hs: Handshake, hello: Hello) -> bool:
        """Run every auth hook; any False -- or any exception, which fails closed -- rejects."""
        try:
            results = self.plugin_manager.hook.qrpc_authorize_peer(
                node=self, identity=hs.identity, hello=hello, dialed=hs.dialed
            )
        except Exception:
            log.exception("an auth hook raised; rejecting peer %s", hello.node_id)
            return False
        pending = [r for r in results if inspect.isawaitable(r)]
        values = [r for r in results if not inspect.isawaitable(r)]
        values += await asyncio.gather(*pending, return_exceptions=True)  # all awaited, always
        for value in values:
            if isinstance(value, BaseException):
                log.error("an auth hook raised %r; rejecting peer %s", value, hello.node_id)
                return False
        return all(value is not False for value in values)

    def _register(self, hs: Handshake, hello: Hello, codec: Codec) -> None:
        peer_id = hello.node_id
        tracers: list[Tracer] = [
            t
            for t in self.plugin_manager.hook.qrpc_link_tracer(
                node=self, peer_id=peer_id, identity=hs.identity
            )
            if t is not None
        ]
        conn = hs.conn
        pl = PeerLink(
            self._node,
            conn,
            hs.link,
            hello,
            hs.identity,
            codec,
            dialed_by_local=hs.dialed,
            tracers=tracers,
        )
        self._peers[peer_id] = pl
        self._links.add(pl)
        pl.dispatcher.add_done_callback(lambda _: self._links.discard(pl))
        conn.attach(
            pl.on_data,
            hs.link.data_to_send,
            lambda c: self._unregister(pl, c.close_code or 0, c.close_reason),
        )
        conn.promote()
        if hs.early_events:  # frames that arrived together with or right after the HELLO
            pl.route(hs.early_events)
            conn.want_flush()
        address = conn.remote_address or ("?", 0)
        log.info(
            "peer %s connected (%s, %s)", peer_id, "dialed" if hs.dialed else "accepted", address[0]
        )
        self._emit(Connected(peer_id, (str(address[0]), int(address[1])), hs.identity, hs.dialed))
        self.plugin_manager.hook.qrpc_peer_connected(
            node=self, peer_id=peer_id, identity=hs.identity
        )
        for key in (peer_id, None):
            for waiter in self._peer_waiters.pop(key, []):
                if not waiter.done():
                    waiter.set_result(peer_id)

    # -- links: closing -------------------------------------------------------------

    def _on_goodbye(self, pl: PeerLink, event: GoodbyeReceived) -> None:
        pl.goodbye(ErrorCode.NO_ERROR, "goodbye")  # the acknowledgement; no-op if already sent
        self._unregister(pl, event.code, event.reason or "goodbye")
        pl.conn.close_later(_GOODBYE_GRACE, ErrorCode.NO_ERROR, "goodbye")

    def _close_peer(self, pl: PeerLink, code: int, reason: str) -> None:
        pl.conn.close(code, reason)
        self._unregister(pl, code, reason)

    def _unregister(self, pl: PeerLink, code: int, reason: str) -> None:
        if pl.closed:
            return
        pl.mark_closed(code, reason)
        peer_id = pl.peer_id
        if self._peers.get(peer_id) is pl:
            del self._peers[peer_id]
        assert self._requests is not None
        self._requests.fail_peer(peer_id, PeerDisconnected(f"link to {peer_id} closed: {reason}"))
        log.info("peer %s disconnected (code %#x: %s)", peer_id, code, reason)
        self._emit(Disconnected(peer_id, code, reason))
        self.plugin_manager.hook.qrpc_peer_disconnected(
            node=self, peer_id=peer_id, code=code, reason=reason
        )
        for waiter in self._gone_waiters.pop(peer_id, []):
            if not waiter.done():
                waiter.set_result(None)
