"""`Admission`: how a verified connection becomes a registered peer (the HELLO exchange).

Both roles wait for the peer's HELLO.  The dialer sends its HELLO first,
with every codec it accepts; the acceptor answers with its own HELLO
naming the one codec it chose -- only after its checks passed, which is
what tells the dialer it was accepted.  A TLS handshake alone proves
nothing: in TLS 1.3 the client finishes before the server has judged its
certificate.

The checks, in order: the HELLO claims the node ID the certificate proves
(``qrpc_certified_node_id``), the peer is not this node, a codec is shared,
the registries agree on the cmd_ids both use (``Node(schema=...)``), every
auth hook approves (awaited; a raising hook refuses).  Then,
synchronously so the table cannot change under it, the duplicate-link
tie-break (`qrpc.policy.resolve_duplicate`) and the peer limit, and the
link is registered.  A refused link is closed with the matching
`ErrorCode` and the refusal raised as a `ConnectError`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, cast

from qrpc.codes import ErrorCode
from qrpc.config import Limits
from qrpc.errors import (
    ConfigError,
    ConnectError,
    ConnectionLimitReached,
    ConnectTimeout,
    DuplicateLink,
    NoCommonCodec,
    PeerAuthError,
    PeerIdMismatch,
    SchemaMismatch,
    SelfConnection,
)
from qrpc.hooks.plugins import Plugins
from qrpc.policy import LinkFacts, Resolution, resolve_duplicate
from qrpc.registry import Registry
from qrpc.runtime.link import PeerLink
from qrpc.runtime.peers import PeerTable
from qrpc.runtime.tasks import STOP_GRACE, cancel_within
from qrpc.schema import RegistrySchema, SchemaMode, check, decode_schema, describe, encode_schema
from qrpc.tls.identity import DEFAULT_DOMAIN, domain_hint
from qrpc.transport.closing import format_address
from qrpc.transport.connection import Connection
from qrpc.transport.refusals import RefusalLog
from qrpc.wire.hello import MAX_SCHEMA_SIZE, Hello
from qrpc_codecs import Codec

__all__ = ["Admission"]

log = logging.getLogger("qrpc.node")


class Admission:
    """Runs the HELLO exchange and the admission checks for one node.

    Args:
        local_id: this node's ID.
        incarnation: this node object's random incarnation (sent in HELLO).
        limits: the node's limits.
        registry: the node's message types.
        codecs: the codecs this node speaks, preferred first.
        plugins: the node's hooks.
        table: where admitted links are registered.
        schema: how strictly the peer's registry must agree with this one.
        domain: the trust domain of identity SANs (named in refusals).
        refused: logs why a peer was refused (address, reason), rate-limited
            (`RefusalLog.refused`; one of its own if None).

    Raises:
        ConfigError: the registry's description does not fit in a HELLO.
    """

    __slots__ = (
        "_closed",
        "_codecs",
        "_domain",
        "_incarnation",
        "_limits",
        "_local_id",
        "_plugins",
        "_refused",
        "_registry",
        "_schema",
        "_schema_mode",
        "_schema_sent",
        "_table",
        "_tasks",
    )

    def __init__(
        self,
        *,
        local_id: str,
        incarnation: int,
        limits: Limits,
        registry: Registry,
        codecs: list[Codec],
        plugins: Plugins,
        table: PeerTable,
        schema: SchemaMode,
        domain: str = DEFAULT_DOMAIN,
        refused: Callable[[Any, str], None] | None = None,
    ) -> None:
        self._local_id = local_id
        self._domain = domain
        self._refused = refused or RefusalLog().refused
        self._incarnation = incarnation
        self._limits = limits
        self._registry = registry
        self._codecs = codecs
        self._plugins = plugins
        self._table = table
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self._schema_mode = schema
        self._schema: RegistrySchema = describe(registry)  # sent even when not checking
        self._schema_sent = encode_schema(self._schema)
        if len(self._schema_sent) > MAX_SCHEMA_SIZE and schema == "off":
            self._schema_sent = b""  # the peer cannot check this node: it does not refuse
        elif len(self._schema_sent) > MAX_SCHEMA_SIZE:
            raise ConfigError(
                "Node.schema",
                f"the registry's description takes {len(self._schema_sent)} bytes, more than "
                f'a HELLO carries ({MAX_SCHEMA_SIZE}); use schema="off"',
            )

    def _new_link(self, conn: Connection, *, dialed: bool) -> PeerLink:
        limits = self._limits
        return PeerLink(
            conn,
            registry=self._registry,
            max_message_size=limits.max_message_size,
            window=limits.inbound_window,
            max_header_bytes=limits.max_header_bytes,
            high_water=limits.outbound_high_water,
            dialed=dialed,
        )

    def _hello(self, codecs: list[str]) -> Hello:
        limits = self._limits
        return Hello(
            self._local_id,
            self._incarnation,
            codecs,
            limits.max_message_size,
            limits.inbound_window,
            limits.max_header_bytes,
            self._schema_sent,
        )

    # -- acceptor --------------------------------------------------------------------

    def accept(self, conn: Connection) -> None:
        """An accepted connection completed TLS (the endpoint's accept handler)."""
        if self._closed:
            conn.close(ErrorCode.NO_ERROR, "shutting down")
            return
        link = self._new_link(conn, dialed=False)
        task = asyncio.get_running_loop().create_task(self._accept(link), name="qrpc-accept")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _accept(self, link: PeerLink) -> None:
        try:
            hello = await link.hello
            await self.admit(link, hello)
        except ConnectError as exc:
            conn = link.conn
            if isinstance(exc, DuplicateLink | ConnectTimeout) or not conn.closed_locally:
                # A duplicate resolved, a silent or departed dialer: nothing to fix.
                log.info("link from %s not admitted: %s", conn.remote_address, exc)
            else:
                self._refused(conn.remote_address, str(exc))
        except Exception:
            log.exception("admitting a link from %s failed", link.conn.remote_address)
            link.close(ErrorCode.INTERNAL_ERROR, "internal error")

    # -- dialer ----------------------------------------------------------------------

    async def dialed(self, conn: Connection) -> str:
        """Run HELLO on a connection this node dialed (TLS complete); register it.

        Returns:
            The peer's ID.

        Raises:
            ConnectError: the peer was refused, or refused us.
        """
        link = self._new_link(conn, dialed=True)
        table = self._table
        certified = self._plugins.certified_node_id(link.identity)
        try:
            if certified == self._local_id:
                raise self._refuse(
                    link,
                    SelfConnection(_self_detail(format_address(conn.remote_address), certified)),
                    ErrorCode.SELF_CONNECTION,
                    "connected to itself",
                )
            if certified is not None and (certified in table or certified in table.dialing):
                error = DuplicateLink(ErrorCode.DUPLICATE_LINK, "already connected", by_peer=False)
                error.peer_id = certified
                raise self._refuse(link, error, ErrorCode.DUPLICATE_LINK, "already connected")
            if certified is not None:
                table.dialing[certified] = link
            link.outbox.send_hello(self._hello([c.name for c in self._codecs]))
            try:
                hello = await link.hello
            except DuplicateLink as exc:
                exc.peer_id = certified
                raise
            return await self.admit(link, hello)
        finally:
            if certified is not None and table.dialing.get(certified) is link:
                del table.dialing[certified]
            if not conn.promoted:
                link.close(ErrorCode.NO_ERROR, "dial abandoned")

    # -- both ------------------------------------------------------------------------

    async def admit(self, link: PeerLink, hello: Hello) -> str:
        """Check a peer's HELLO, resolve duplicates, register it; return its ID.

        Raises:
            ConnectError: the peer was refused (the link is closed with the
                matching code).
        """
        peer_id = hello.node_id
        certified = self._plugins.certified_node_id(link.identity)
        if certified != peer_id:
            detail = "HELLO does not match the certificate"
            if certified is None:
                detail += domain_hint(link.identity, self._domain)
            raise self._refuse(
                link,
                PeerIdMismatch(certified, peer_id, detail),
                ErrorCode.PEER_ID_MISMATCH,
                "node ID does not match the certificate",
            )
        if peer_id == self._local_id:
            raise self._refuse(
                link,
                SelfConnection(_self_detail(format_address(link.conn.remote_address), peer_id)),
                ErrorCode.SELF_CONNECTION,
                "connected to itself",
            )
        codec = self._agree_codec(link, hello)
        self._check_schema(link, hello)
        if not await self._plugins.authorize(link.identity, hello, dialed=link.dialed):
            raise self._refuse(
                link,
                PeerAuthError("an auth hook rejected the peer"),
                ErrorCode.AUTH_REJECTED,
                "not authorized",
            )
        link.check_open()
        tracers = self._plugins.link_tracers(peer_id, link.identity)
        link.check_open()
        # From here on, synchronous: the peer table cannot change under us.
        self._resolve_duplicate(link, hello)
        if not link.dialed:
            link.outbox.send_hello(self._hello([codec.name]))
        self._table.register(link, codec, tracers)
        return peer_id

    def _resolve_duplicate(self, link: PeerLink, hello: Hello) -> None:
        table = self._table
        peer_id = hello.node_id
        existing = table.get(peer_id)
        rival = None if link.dialed else table.dialing.get(peer_id)
        if existing is None and rival is None:
            if len(table) >= self._limits.max_peers:
                raise self._refuse(
                    link,
                    ConnectionLimitReached(ErrorCode.CONNECTION_LIMIT, "full", by_peer=False),
                    ErrorCode.CONNECTION_LIMIT,
                    "too many peers",
                )
            return
        facts = (
            LinkFacts(existing.dialed, _incarnation(existing))
            if existing is not None
            else LinkFacts(True, None)
        )
        new = LinkFacts(dialed_by_local=link.dialed, incarnation=hello.incarnation)
        decision = resolve_duplicate(
            local_id=self._local_id, peer_id=peer_id, existing=facts, new=new
        )
        if decision is Resolution.KEEP_EXISTING:
            error = DuplicateLink(
                ErrorCode.DUPLICATE_LINK, "a link to this peer exists", by_peer=False
            )
            error.peer_id = peer_id
            raise self._refuse(link, error, ErrorCode.DUPLICATE_LINK, "duplicate link")
        if existing is not None:
            log.info("link to %s replaced by a newer one", peer_id)
            existing.close(ErrorCode.REPLACED, "replaced by a newer link")
        if rival is not None:
            rival.close(ErrorCode.DUPLICATE_LINK, "duplicate link")

    def _agree_codec(self, link: PeerLink, hello: Hello) -> Codec:
        ours = {c.name: c for c in self._codecs}
        if link.dialed:  # the acceptor names exactly one codec, one we offered
            if len(hello.codecs) == 1 and hello.codecs[0] in ours:
                return ours[hello.codecs[0]]
            raise self._refuse(
                link,
                ConnectError(f"bad HELLO: acceptor chose codecs {hello.codecs}"),
                ErrorCode.BAD_HELLO,
                "bad codec choice",
            )
        for name in hello.codecs:
            if name in ours:
                return ours[name]
        refusal = f"no common codec: peer offers {hello.codecs}, this node speaks {list(ours)}"
        raise self._refuse(
            link,
            NoCommonCodec(ErrorCode.NO_COMMON_CODEC, refusal, by_peer=False),
            ErrorCode.NO_COMMON_CODEC,
            "no common codec",
        )

    def _check_schema(self, link: PeerLink, hello: Hello) -> None:
        if self._schema_mode == "off" or not hello.schema:  # nothing to check
            return
        try:
            remote = decode_schema(hello.schema)
        except ValueError as exc:
            raise self._refuse(
                link, ConnectError(f"bad HELLO: {exc}"), ErrorCode.BAD_HELLO, "bad schema"
            ) from None
        problems = check(self._schema_mode, self._schema, remote)
        if problems:
            shared = sorted(self._schema.keys() & remote.keys())
            cmd_ids = tuple(
                c for c in shared if check(self._schema_mode, {c: self._schema[c]}, {c: remote[c]})
            )
            detail = f"schema mismatch ({self._schema_mode}): " + "; ".join(problems)
            raise self._refuse(
                link, SchemaMismatch(detail, cmd_ids), ErrorCode.SCHEMA_MISMATCH, detail[:900]
            )

    @staticmethod
    def _refuse(link: PeerLink, error: ConnectError, code: int, reason: str) -> ConnectError:
        """Close `link` with `code` and return `error` for the caller to raise."""
        link.close(code, reason)
        return error

    async def reauthorize(self) -> list[str]:
        """Ask the auth hooks again about every open link; close those now refused
        (AUTH_REVOKED) and return their peer IDs, sorted."""
        links = [link for link in self._table.links() if link.peer_hello is not None]
        verdicts = await asyncio.gather(
            *(
                self._plugins.authorize(
                    link.identity, cast("Hello", link.peer_hello), dialed=link.dialed
                )
                for link in links
            )
        )
        revoked = []
        for link, admitted in zip(links, verdicts, strict=True):
            if not admitted and not link.closed:
                log.warning("peer %s is no longer authorized: closing its link", link.peer_id)
                link.close(ErrorCode.AUTH_REVOKED, "no longer authorized")
                revoked.append(link.peer_id)
        return sorted(revoked)

    # -- shutdown --------------------------------------------------------------------

    async def stop(self, keep: asyncio.Task[Any] | None) -> None:
        """Refuse new links and end the admissions in progress (except `keep`)."""
        self._closed = True
        tasks = [task for task in self._tasks if task is not keep]
        await cancel_within(tasks, STOP_GRACE, "admissions")


def _self_detail(address: str, node_id: str) -> str:
    return (
        f"the peer at {address} presented this node's own certificate (node ID {node_id}): "
        "it is this node itself, or the same certificate is in use by two nodes "
        "(give each node its own certificate)"
    )


def _incarnation(link: PeerLink) -> int | None:
    return link.peer_hello.incarnation if link.peer_hello is not None else None
