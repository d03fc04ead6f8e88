"""Fails loudly if the aioquic internals that qrpc's client-certificate
enforcement relies on change (see `qrpc.transport.mtls`).

If a test here fails after an aioquic upgrade, do not loosen it: re-check
how the new release handles client certificates and adapt `qrpc.transport.mtls`.
"""

from __future__ import annotations

import inspect
from importlib.metadata import version

import pytest
from aioquic import tls
from aioquic.quic import events
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection, QuicConnectionAdapter
from aioquic.quic.logger import QuicLogger, QuicLoggerTrace
from aioquic.quic.recovery import QuicPacketSpace
from aioquic.quic.stream import QuicStreamSender

from qrpc.config import QuicSettings
from qrpc.errors import PeerAuthError
from qrpc.testing import TestPKI, refused_tls
from qrpc.transport.gate import reset_token_function
from qrpc.transport.mtls import (
    PRIVATE_API,
    PeerPolicy,
    QrpcQuicConnection,
    _VerifyingContext,
    quic_configuration,
)

TOKEN = reset_token_function(b"a test node's private key")
SENDER_INSTANCE_ATTRIBUTES = {"_buffer_start", "_buffer_stop"}
CONNECTION_INSTANCE_ATTRIBUTES = {
    "_streams": dict,
    "_host_cids": list,
    "_peer_cid": object,
    "_peer_cid_available": list,
    "_spaces": dict,
    "_logger": QuicConnectionAdapter,
    "_quic_logger": QuicLoggerTrace,
    "_configuration": QuicConfiguration,
}
CONTEXT_INSTANCE_ATTRIBUTES = {
    "_request_client_certificate",
    "_supported_groups",
    "_peer_certificate",
    "_peer_certificate_chain",
}
METHOD_PARAMETERS = {
    (QuicConnection, "_initialize"): ["self", "peer_cid"],
    (tls.Context, "_server_handle_certificate"): ["self", "input_buf"],
    (tls.Context, "_server_handle_certificate_verify"): ["self", "input_buf"],
    (tls.Context, "_client_handle_certificate_verify"): ["self", "input_buf"],
    (QuicConnection, "_replenish_connection_ids"): ["self"],
}


def test_aioquic_version_is_in_the_tested_range() -> None:
    major, minor, *_ = (int(part) for part in version("aioquic").split("."))
    assert (major, minor) == (1, 7), "qrpc.transport.mtls was verified against aioquic 1.7 only"


@pytest.mark.parametrize(
    ("owner", "name"), PRIVATE_API, ids=[f"{o.__name__}.{n}" for o, n in PRIVATE_API]
)
def test_private_attribute_still_exists(owner: type, name: str) -> None:
    if name in SENDER_INSTANCE_ATTRIBUTES:
        sender = QuicStreamSender(stream_id=0, writable=True)
        assert isinstance(getattr(sender, name, None), int), f"QuicStreamSender().{name} is gone"
    elif name in CONNECTION_INSTANCE_ATTRIBUTES:
        configuration = QuicConfiguration(is_client=True, quic_logger=QuicLogger())
        client = QuicConnection(configuration=configuration)
        kind = CONNECTION_INSTANCE_ATTRIBUTES[name]
        assert isinstance(getattr(client, name, None), kind), f"QuicConnection().{name} is gone"
    elif name == "largest_received_packet":
        assert isinstance(QuicPacketSpace().largest_received_packet, int)
    elif name in CONTEXT_INSTANCE_ATTRIBUTES:
        context = tls.Context(is_client=False)
        assert hasattr(context, name), f"tls.Context() has no attribute {name}"
    else:
        member = getattr(owner, name, None)
        assert callable(member), f"{owner.__name__}.{name} is gone"
        assert list(inspect.signature(member).parameters) == METHOD_PARAMETERS[(owner, name)]


def test_stock_context_does_not_request_client_certificates() -> None:
    # The flag qrpc flips must still default to off; if aioquic ever turns it on
    # or renames it, the enforcement needs a fresh look.
    assert tls.Context(is_client=False)._request_client_certificate is False


def test_verify_mode_off_still_checks_the_signature_only() -> None:
    source = inspect.getsource(tls.Context._client_handle_certificate_verify)
    assert "_check_certificate_verify_signature" in source
    assert "self._verify_mode != ssl.CERT_NONE" in source


def _handshake(client: QuicConnection, server: QuicConnection, rounds: int = 20) -> None:
    """Run a handshake in memory, bounded by `rounds` exchanges."""
    now = 0.0
    client.connect(("127.0.0.1", 4433), now=now)
    for _ in range(rounds):
        moved = False
        for sender, receiver, addr in (
            (client, server, ("127.0.0.2", 1234)),
            (server, client, ("127.0.0.1", 4433)),
        ):
            for data, _ in sender.datagrams_to_send(now=now):
                receiver.receive_datagram(data, addr, now=now)
                moved = True
        now += 0.01
        if not moved:
            return
    raise AssertionError(f"handshake did not settle within {rounds} rounds")


def _pair(pki: TestPKI, client_tls, server_tls) -> tuple[QrpcQuicConnection, QrpcQuicConnection]:
    settings = QuicSettings()
    client = QrpcQuicConnection(
        configuration=quic_configuration(client_tls, is_client=True, settings=settings),
        policy=PeerPolicy(trust=(pki.ca.cert,), domain=pki.domain),
        reset_token=TOKEN,
    )
    server = QrpcQuicConnection(
        configuration=quic_configuration(server_tls, is_client=False, settings=settings),
        policy=PeerPolicy(trust=(pki.ca.cert,), domain=pki.domain),
        reset_token=TOKEN,
        original_destination_connection_id=client.original_destination_connection_id,
    )
    return client, server


def _events(conn: QuicConnection) -> list[events.QuicEvent]:
    out = []
    while (event := conn.next_event()) is not None:
        out.append(event)
    return out


def test_server_context_is_swapped_and_requests_a_certificate(qrpc_pki: TestPKI) -> None:
    client, server = _pair(qrpc_pki, qrpc_pki.node_tls(), qrpc_pki.node_tls())
    _handshake(client, server)
    assert isinstance(server.tls, _VerifyingContext)
    assert isinstance(client.tls, _VerifyingContext)
    assert server.tls._request_client_certificate is True
    assert server.peer_identity is not None
    assert client.peer_identity is not None
    assert any(isinstance(e, events.HandshakeCompleted) for e in _events(server))


def test_client_without_certificate_is_refused_in_memory(qrpc_pki: TestPKI) -> None:
    client, server = _pair(qrpc_pki, refused_tls(qrpc_pki, None), qrpc_pki.node_tls())
    _handshake(client, server)
    server_events = _events(server)
    assert not any(isinstance(e, events.HandshakeCompleted) for e in server_events)
    assert server.peer_identity is None
    assert isinstance(server.auth_error, PeerAuthError)
    assert server.auth_error.alert == 116
    # The client learns the alert (CRYPTO_ERROR + certificate_required) once
    # its draining period is over.
    client.handle_timer(now=1000.0)
    closes = [e for e in _events(client) if isinstance(e, events.ConnectionTerminated)]
    assert [c.error_code for c in closes] == [0x100 + 116]


def test_no_session_ticket_is_ever_issued(qrpc_pki: TestPKI) -> None:
    """A resumed session would skip the client certificate: aioquic sends a
    CertificateRequest only when no pre-shared key is used."""
    tickets: list[object] = []
    settings = QuicSettings()
    client = QrpcQuicConnection(
        configuration=quic_configuration(qrpc_pki.node_tls(), is_client=True, settings=settings),
        policy=PeerPolicy(trust=(qrpc_pki.ca.cert,), domain=qrpc_pki.domain),
        reset_token=TOKEN,
        session_ticket_handler=tickets.append,
    )
    server = QrpcQuicConnection(
        configuration=quic_configuration(qrpc_pki.node_tls(), is_client=False, settings=settings),
        policy=PeerPolicy(trust=(qrpc_pki.ca.cert,), domain=qrpc_pki.domain),
        reset_token=TOKEN,
        original_destination_connection_id=client.original_destination_connection_id,
    )
    _handshake(client, server)
    assert server.peer_identity is not None
    assert tickets == []
    assert server.tls.new_session_ticket_cb is None


def test_unacked_stream_bytes_follows_writes_and_acks(qrpc_pki: TestPKI) -> None:
    client, server = _pair(qrpc_pki, qrpc_pki.node_tls(), qrpc_pki.node_tls())
    _handshake(client, server)
    assert client.unacked_stream_bytes(0) == 0
    client.send_stream_data(0, b"x" * 5000)
    assert client.unacked_stream_bytes(0) == 5000
    _handshake_rounds(client, server)
    assert client.unacked_stream_bytes(0) == 0


def _handshake_rounds(client: QuicConnection, server: QuicConnection) -> None:
    """Move datagrams both ways until quiet, advancing time so ACKs are sent."""
    now = 1.0
    for _ in range(20):
        moved = False
        for sender, receiver, addr in (
            (client, server, ("127.0.0.2", 1234)),
            (server, client, ("127.0.0.1", 4433)),
        ):
            for data, _ in sender.datagrams_to_send(now=now):
                receiver.receive_datagram(data, addr, now=now)
                moved = True
            sender.handle_timer(now=now)
        now += 0.05
        if not moved:
            return


def test_our_connection_ids_carry_tokens_derived_from_the_node_key(qrpc_pki: TestPKI) -> None:
    """So a restarted node can reset the links its previous process lost."""
    settings = QuicSettings()
    server = QrpcQuicConnection(
        configuration=quic_configuration(qrpc_pki.node_tls(), is_client=False, settings=settings),
        policy=PeerPolicy(trust=(qrpc_pki.ca.cert,), domain=qrpc_pki.domain),
        reset_token=TOKEN,
        original_destination_connection_id=b"\x01" * 8,
    )
    server._remote_active_connection_id_limit = 8
    server._replenish_connection_ids()
    assert len(server._host_cids) == 8
    for host_cid in server._host_cids:
        assert host_cid.stateless_reset_token == TOKEN(host_cid.cid)


def test_a_datagram_ending_in_the_peers_token_is_a_stateless_reset(qrpc_pki: TestPKI) -> None:
    client = QrpcQuicConnection(
        configuration=quic_configuration(
            qrpc_pki.node_tls(), is_client=True, settings=QuicSettings()
        ),
        policy=PeerPolicy(trust=(qrpc_pki.ca.cert,), domain=qrpc_pki.domain),
        reset_token=TOKEN,
    )
    client._peer_cid.stateless_reset_token = TOKEN(b"\x02" * 8)
    assert client.is_stateless_reset(b"\x41" + b"\x00" * 20 + TOKEN(b"\x02" * 8))
    assert not client.is_stateless_reset(b"\x41" + b"\x00" * 20 + TOKEN(b"\x03" * 8))
    assert not client.is_stateless_reset(TOKEN(b"\x02" * 8))  # shorter than any reset


def test_a_client_offers_one_key_share_x25519(qrpc_pki: TestPKI) -> None:
    """aioquic offers P-256, P-384, X25519 and X448 key shares, generating a key for
    each (about 0.35 ms); a qrpc dialer offers X25519, which every qrpc node accepts."""
    client, server = _pair(qrpc_pki, qrpc_pki.node_tls(), qrpc_pki.node_tls())
    _handshake(client, server)
    assert client.peer_identity is not None
    assert server.peer_identity is not None
    assert client.tls._supported_groups == [tls.Group.X25519]
    assert client.tls._ec_private_keys == []
    assert client.tls._x448_private_key is None
    assert server.tls._x25519_private_key is not None  # the server answered in X25519
