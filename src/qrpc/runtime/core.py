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
import signal
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from qrpc.config import Limits, PeerAddress, QuicSettings
from qrpc.errors import NodeClosed, QrpcError, RequestTimeout
from qrpc.hooks.plugins import Plugins
from qrpc.registry import Registry
from qrpc.runtime.context import NodeHandle
from qrpc.runtime.dialer import Dialer, DialLoop
from qrpc.runtime.dispatch import HandlerSpec
from qrpc.runtime.events import NodeEvent
from qrpc.runtime.handshake import Admission
from qrpc.runtime.link import PeerLink
from qrpc.runtime.peers import PeerTable
from qrpc.runtime.requests import RequestTable
from qrpc.runtime.tasks import STOP_GRACE, cancel_within
from qrpc.tls.credentials import TLS
from qrpc.transport.endpoint import Endpoint
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
        incarnation: int,
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
            ConfigError: the listen address cannot be bound.
        """
        requests = RequestTable(limits.max_concurrent_requests)
        table = PeerTable(
            handlers=handlers, node=node, plugins=plugins, requests=requests, emit=emit
        )
        admission = Admission(
            local_id=tls.node_id,
            incarnation=incarnation,
            limits=limits,
            registry=registry,
            codecs=codecs,
            plugins=plugins,
            table=table,
        )
        host, port = listen
        endpoint = await Endpoint.open(
            host, port, tls=tls, settings=settings, limits=limits, on_accept=admission.accept
        )
        dialer = Dialer(
            connect=endpoint.connect,
            family=endpoint.family,
            trust=tls.trust,
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
        await cancel_within((loop.task for loop in self.loops), STOP_GRACE, "dial loops")
        self.requests.fail_all(NodeClosed("the node is shutting down"))
        await self.admission.stop(keep=current)
        await self.table.shutdown(deadline, keep=current)
        self.endpoint.close()
        self.table.fail_waiters(NodeClosed("the node was closed"))

    async def request(
        self, link: PeerLink, message: msgspec.Struct, reply: type | None, timeout: float
    ) -> Any:
        """Send `message` as a request on `link`; return the decoded reply.

        `timeout` bounds the whole call: waiting for room to send, then for
        the reply.

        Raises:
            RequestTimeout: no reply in time.
            RemoteError, PeerDisconnected, MessageTooLarge, RegistryError:
                see `Node.request`.
        """
        outbox = link.outbox
        cmd_id, body = outbox.encode(message)
        requests = self.requests
        try:
            async with asyncio.timeout(timeout):
                if not outbox.writable:
                    await outbox.wait_writable()
                request_id, future = requests.open(link.peer_id, reply)
                try:
                    outbox.send_request(cmd_id, request_id, body, message)
                    return await future
                finally:
                    requests.discard(request_id)
        except TimeoutError as exc:
            if isinstance(exc, QrpcError):
                raise
            raise RequestTimeout(f"no reply from {link.peer_id} within {timeout} s") from None

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
