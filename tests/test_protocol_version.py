"""Version 1 peers are refused in the TLS handshake (ALPN ``qrpc/2``), with an error
that names the cause, both ways."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import pytest
from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.asyncio.server import serve
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ConnectionTerminated, QuicEvent

import qrpc
from qrpc.testing import TestPKI
from qrpc.transport.mtls import ALPN
from tests.conftest import NodeFactory, next_event

NO_APPLICATION_PROTOCOL = 0x100 + 120  # QUIC CRYPTO_ERROR + TLS alert 120


def _config(pki: TestPKI, *, is_client: bool) -> QuicConfiguration:
    issued = pki.issue()
    config = QuicConfiguration(
        is_client=is_client, alpn_protocols=["qrpc/1"], verify_mode=ssl.CERT_NONE
    )
    config.certificate = issued.cert
    config.private_key = issued.key
    return config


def test_the_alpn_names_version_2() -> None:
    assert ALPN == "qrpc/2"


class _Recorder(QuicConnectionProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.closed: asyncio.Future[ConnectionTerminated] = (
            asyncio.get_running_loop().create_future()
        )

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, ConnectionTerminated) and not self.closed.done():
            self.closed.set_result(event)
        super().quic_event_received(event)


async def test_a_version_1_dialer_is_refused_in_tls(
    make_node: NodeFactory, qrpc_pki: TestPKI
) -> None:
    node = await make_node()
    host, port = node.address
    config = _config(qrpc_pki, is_client=True)
    created: list[_Recorder] = []

    def create(*args: Any, **kwargs: Any) -> _Recorder:
        created.append(_Recorder(*args, **kwargs))
        return created[-1]

    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(ConnectionError):
        async with (
            asyncio.timeout(5),
            connect(host, port, configuration=config, create_protocol=create),
        ):
            pass
    assert loop.time() - started < 2  # told at once, not left to time out
    closed = await asyncio.wait_for(created[0].closed, 5)
    assert closed.error_code == NO_APPLICATION_PROTOCOL
    assert node.peers() == []


async def test_dialing_a_version_1_node_fails_permanently_naming_the_cause(
    make_node: NodeFactory, qrpc_pki: TestPKI
) -> None:
    server = await serve("127.0.0.1", 0, configuration=_config(qrpc_pki, is_client=False))
    try:
        transport = server._transport
        assert transport is not None
        port = transport.get_extra_info("sockname")[1]
        dialer = await make_node()
        events = dialer.events()
        dialer.add_peer(qrpc.PeerAddress("127.0.0.1", port))
        failed = await next_event(events, qrpc.ConnectFailed, timeout=10)
        assert isinstance(failed.error, qrpc.IncompatiblePeer)
        assert failed.kind is qrpc.FailureKind.PERMANENT
        assert "another qrpc protocol version" in failed.detail
        assert failed.retry_in is None
    finally:
        server.close()
