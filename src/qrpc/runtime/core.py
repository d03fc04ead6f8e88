"""`Runtime`: the parts of a node that exist between `start()` and `close()`, wired.

`Runtime.open` binds the endpoint and connects the parts with narrow
callables, the way aioquic's server hands each protocol its callbacks:

- the `Endpoint` calls `Admission.accept` for each connection whose TLS
  completed;
- `Admission` registers admitted links in the `PeerTable`;
- the `Dialer` connects through the endpoint and hands the connection to
  `Admission.dialed`;
- each `DialLoop` gets the dialer's ``dial``, the table's ``wait_gone``
  and the reconnect policy;
- links report replies to the `RequestTable` through the table.

`Runtime.close` takes them down in the reverse order, within a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, cast

import msgspec

from qrpc.config import Limits, PeerAddress, QuicSettings
from qrpc.errors import NodeClosed, PeerDraining, PeerNotFound, QrpcError, RequestTimeout
from qrpc.hooks.plugins import Plugins
from qrpc.hooks.tracer import TraceEvent, scopes
from qrpc.registry import Registry
from qrpc.runtime.context import NodeHandle
from qrpc.runtime.dialer import Dialer, DialLoop
from qrpc.runtime.discovery import Discovery
from qrpc.runtime.events import NodeEvent
from qrpc.runtime.handlers import HandlerSpec
from qrpc.runtime.handshake import Admission
from qrpc.runtime.link import PeerLink
from qrpc.runtime.outbox import Outbox
from qrpc.runtime.peers import PeerTable
from qrpc.runtime.requests import RequestTable
from qrpc.runtime.tasks import STOP_GRACE, cancel_within
from qrpc.schema import SchemaMode
from qrpc.tls.credentials import TLS
from qrpc.transport.endpoint import Endpoint
from qrpc.transport.refusals import RefusalLog
from qrpc.wire.sections import Headers, check_user_headers, encode_deadline
from qrpc_codecs import Codec

__all__ = ["Runtime", "until_signalled"]


class Runtime:
    """A started node's endpoint, peer table, admission, dialer and requests."""

    __slots__ = (
        "_emit",
        "_plugins",
        "_stable_after",
        "admission",
        "dialer",
        "discovery",
        "endpoint",
        "loops",
        "requests",
        "table",
    )

    def __init__(
        self,
        endpoint: Endpoint,
        table: PeerTable,
        admission: Admission,
        dialer: Dialer,
        requests: RequestTable,
        *,
        plugins: Plugins,
        emit: Callable[[NodeEvent], None],
        stable_after: float,
    ) -> None:
        self.endpoint = endpoint
        self.table = table
        self.admission = admission
        self.dialer = dialer
        self.requests = requests
        self.loops: list[DialLoop] = []
        self.discovery: Discovery | None = None
        self._plugins = plugins
        self._emit = emit
        self._stable_after = stable_after

    @classmethod
    async def open(
        cls,
        *,
        node: NodeHandle,
        listen: tuple[str, int],
        tls: TLS,
        schema: SchemaMode,
        registry: Registry,
        codecs: list[Codec],
        handlers: Mapping[int, HandlerSpec],
        limits: Limits,
        settings: QuicSettings,
        plugins: Plugins,
        emit: Callable[[NodeEvent], None],
        stable_after: float,
    ) -> Runtime:
        """Bind the port and wire the parts (nothing is dialed yet).

        Raises:
            ConfigError: the listen address cannot be bound, or the registry's
                description does not fit in a HELLO.
        """
        requests = RequestTable(limits.max_concurrent_requests)
        refusals = RefusalLog()
        table = PeerTable(
            handlers=handlers, node=node, plugins=plugins, requests=requests, emit=emit
        )
        admission = Admission(
            local_id=tls.node_id,
            incarnation=random.getrandbits(63),  # tells peers a restart from a second link
            limits=limits,
            registry=registry,
            codecs=codecs,
            plugins=plugins,
            table=table,
            schema=schema,
            domain=tls.domain,
            refused=refusals.refused,
        )
        host, port = listen
        endpoint = await Endpoint.open(
            host,
            port,
            tls=tls,
            settings=settings,
            limits=limits,
            on_accept=admission.accept,
            refusals=refusals,
        )
        dialer = Dialer(
            connect=endpoint.connect,
            family=endpoint.family,
            trust=tls.trust,
            ca_file=tls.ca_path,
            domain=tls.domain,
            answer_timeout=limits.connect_timeout,
            admit=admission.dialed,
        )
        return cls(
            endpoint,
            table,
            admission,
            dialer,
            requests,
            plugins=plugins,
            emit=emit,
            stable_after=stable_after,
        )

    def discover(self, bootstrap: list[PeerAddress], limits: Limits) -> None:
        """Start asking the discovery plugins for peers every
        ``limits.discovery_interval`` seconds, if any plugin can answer;
        `bootstrap` are dialed already, at most ``limits.max_peers`` more are."""
        if self._plugins.implements("qrpc_discover_peers"):
            self.discovery = Discovery(
                discover=self._plugins.discover_peers,
                dial=self.dial,
                known=set(bootstrap),
                interval=limits.discovery_interval,
                limit=limits.max_peers,
            )

    def dial(self, peer: PeerAddress) -> None:
        """Start a dial loop that keeps `peer` connected."""
        table = self.table
        self.loops.append(
            DialLoop(
                peer,
                dial=self.dialer.dial,
                wait_gone=table.wait_gone,
                is_connected=table.__contains__,
                next_delay=self._plugins.next_reconnect_delay,
                emit=self._emit,
                stable_after=self._stable_after,
            )
        )

    async def close(self, deadline: float) -> None:
        """Stop dialing, fail requests, say GOODBYE, end every task, close the socket.

        Runs until the loop time `deadline` at most for the graceful part;
        `close()` may be called from a handler, whose own task is spared.
        """
        current = asyncio.current_task()
        if self.discovery is not None:
            await cancel_within([self.discovery.task], STOP_GRACE, "discovery")
        await cancel_within((loop.task for loop in self.loops), STOP_GRACE, "dial loops")
        self.requests.fail_all(NodeClosed("the node is shutting down"))
        await self.admission.stop(keep=current)
        await self.table.shutdown(deadline, keep=current)
        self.endpoint.close()
        self.table.fail_waiters(NodeClosed("the node was closed"))

    def link_to(self, peer_id: str) -> PeerLink:
        """The open link to `peer_id`, in any spelling of the ID.

        Raises:
            PeerNotFound: there is none.
        """
        table = self.table
        link = table.by_id.get(peer_id) or table.find(peer_id)  # find: other spellings
        if link is None:
            raise PeerNotFound(peer_id)
        return link

    def send(
        self, link: PeerLink, message: msgspec.Struct, headers: Headers | None
    ) -> Awaitable[None] | None:
        """Queue `message` on `link` (`Node.send`).

        Returns None once it is queued, or what the caller must await: room
        in a full queue, the tracers' scope, or a yield in a crowded loop.
        (Not a coroutine: the common case costs no coroutine per message.)
        """
        if headers:
            check_user_headers(headers)
        outbox = link.outbox
        cmd_id, body = outbox.encode(message)
        link.messages_out += 1
        if outbox.tracers:
            return self._send_traced(link, cmd_id, body, message, headers)
        section = outbox.encode_headers(headers, body) if headers else b""
        if not outbox.writable:
            return self._send_later(outbox, cmd_id, body, message, section, None)
        if outbox.send_message(cmd_id, body, message, section):
            return asyncio.sleep(0)  # crowded: let packets leave and ACKs come in
        return None

    async def _send_traced(
        self,
        link: PeerLink,
        cmd_id: int,
        body: bytes,
        message: msgspec.Struct,
        headers: Headers | None,
    ) -> None:
        outbox = link.outbox
        event = TraceEvent("message", link.peer_id, cmd_id, message, 0, 0, dict(headers or {}))
        with scopes(outbox.tracers, event, sending=True):
            section = outbox.encode_headers(event.headers, body) if event.headers else b""
            await self._send_later(outbox, cmd_id, body, message, section, event)

    @staticmethod
    async def _send_later(
        outbox: Outbox,
        cmd_id: int,
        body: bytes,
        message: msgspec.Struct,
        section: bytes,
        event: TraceEvent | None,
    ) -> None:
        if not outbox.writable:
            await outbox.wait_writable()
        if outbox.send_message(cmd_id, body, message, section, event):
            await asyncio.sleep(0)

    async def request(
        self,
        link: PeerLink,
        message: msgspec.Struct,
        reply: type | None,
        timeout: float,
        headers: Headers | None,
    ) -> Any:
        """Send `message` as a request on `link`; return the decoded reply.

        `timeout` bounds the whole call: waiting for room to send, then for
        the reply.  What is left of it when the request leaves travels with
        it (the peer's deadline); if the call ends without a reply -- timeout
        or cancellation -- the peer is sent CANCEL.

        Raises:
            ValueError: `timeout` is not a positive number of seconds (nothing
                is sent).
            RequestTimeout: no reply in time.
            PeerDraining: the peer takes no new requests.
            RemoteError, PeerDisconnected, MessageTooLarge, HeaderError,
                RegistryError: see `Node.request`.
        """
        if not timeout > 0:  # also refuses NaN
            raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
        if link.draining:
            raise PeerDraining(f"{link.peer_id} is shutting down: it takes no new requests")
        if headers:
            check_user_headers(headers)
        outbox = link.outbox
        cmd_id, body = outbox.encode(message)
        link.messages_out += 1
        if not outbox.tracers:
            return await self._request(link, cmd_id, body, message, reply, timeout, headers, None)
        event = TraceEvent("request", link.peer_id, cmd_id, message, 0, 0, dict(headers or {}))
        with scopes(outbox.tracers, event, sending=True):
            return await self._request(
                link, cmd_id, body, message, reply, timeout, event.headers, event
            )

    async def _request(
        self,
        link: PeerLink,
        cmd_id: int,
        body: bytes,
        message: msgspec.Struct,
        reply: type | None,
        timeout: float,
        headers: Headers | None,
        event: TraceEvent | None,
    ) -> Any:
        outbox = link.outbox
        section = outbox.encode_headers(headers, body) if headers else b""
        requests = self.requests
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout) as scope:
                if not outbox.writable:
                    await outbox.wait_writable()
                request_id, future = requests.open(link.peer_id, reply)
                deadline = encode_deadline(cast("float", scope.when()) - loop.time())
                try:
                    outbox.send_request(cmd_id, request_id, body, message, deadline, section, event)
                    return await future
                finally:
                    requests.discard(request_id)
                    if future.cancelled() or not future.done():  # timed out or cancelled
                        future.cancel()
                        outbox.cancel(request_id)  # stop the peer's handler
        except TimeoutError as exc:
            if isinstance(exc, QrpcError):
                raise
            raise RequestTimeout(f"no reply from {link.peer_id} within {timeout} s") from None

    async def drain(self, deadline: float) -> bool:
        """Tell every peer this node takes no new requests, then wait for the
        requests in flight to be answered, until the loop time `deadline`.

        Returns:
            True if every request was answered in time.
        """
        self.table.drain()
        return await self.table.wait_requests_done(deadline)

    def abandon(self) -> None:
        """Close the endpoint at once (close() ran while the port was being bound)."""
        self.endpoint.close()


async def until_signalled(stopping: asyncio.Event) -> None:
    """Wait until `stopping` is set or SIGINT/SIGTERM arrives (`Node.serve`)."""
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stopping.set)
            installed.append(sig)
    try:
        await stopping.wait()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
