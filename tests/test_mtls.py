"""Mutual TLS over real sockets: who is refused, when, and what each side sees.

Every refusal must happen inside the TLS handshake: no peer registered on
either side, no handler called, and the dialer gets a typed error within
5 s.  Each case has a positive control -- the same setup with the one bad
property fixed connects.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable

import pytest

import qrpc
from qrpc.testing import TestPKI, refused_tls
from qrpc.tls.certs import Issued
from tests.conftest import NodeFactory, Ping, next_event

DEADLINE = 5.0  # seconds: the issue's bound for a typed error at the dialer
NOW = dt.datetime.now(dt.UTC)

BadCert = Callable[[TestPKI, TestPKI], Issued | None]

CLIENT_CASES: dict[str, tuple[BadCert, int]] = {
    # case: (certificate the dialer presents, TLS alert the acceptor sends)
    "no-certificate": (lambda pki, other: None, 116),
    "other-ca": (lambda pki, other: other.issue(), 48),
    "expired": (
        lambda pki, other: pki.issue(
            not_before=NOW - dt.timedelta(days=30), not_after=NOW - dt.timedelta(days=1)
        ),
        45,
    ),
    "not-yet-valid": (
        lambda pki, other: pki.issue(
            not_before=NOW + dt.timedelta(days=1), not_after=NOW + dt.timedelta(days=30)
        ),
        45,
    ),
    "server-auth-only": (lambda pki, other: pki.issue(usages=("server",)), 42),
    "no-extended-key-usage": (lambda pki, other: pki.issue(usages=()), 42),
}


@pytest.fixture(scope="module")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> TestPKI:
    return TestPKI(tmp_path_factory.mktemp("other-ca"), name="some other CA")


async def _dial_and_collect(
    dialer: qrpc.Node, target: qrpc.Node, expected_id: str | None = None
) -> qrpc.ConnectFailed | qrpc.Connected:
    events = dialer.events()
    dialer.add_peer(qrpc.Peer(*target.address, expected_id=expected_id))
    async with asyncio.timeout(DEADLINE):
        async for event in events:
            if isinstance(event, qrpc.ConnectFailed | qrpc.Connected):
                return event
    raise AssertionError("event stream ended")


def _no_handler(node: qrpc.Node, calls: list[Ping]) -> None:
    @node.handler(1)
    async def on_ping(ctx: qrpc.Context, msg: Ping) -> None:
        calls.append(msg)


@pytest.mark.parametrize("case", sorted(CLIENT_CASES))
async def test_acceptor_refuses_bad_client_certificate_in_the_handshake(
    case: str, make_node: NodeFactory, qrpc_pki: TestPKI, other_pki: TestPKI
) -> None:
    make_cert, alert = CLIENT_CASES[case]
    acceptor = await make_node()
    calls: list[Ping] = []
    _no_handler(acceptor, calls)
    dialer = await make_node(tls=refused_tls(qrpc_pki, make_cert(qrpc_pki, other_pki)))

    started = asyncio.get_running_loop().time()
    event = await _dial_and_collect(dialer, acceptor)
    elapsed = asyncio.get_running_loop().time() - started

    assert isinstance(event, qrpc.ConnectFailed), event
    assert isinstance(event.error, qrpc.PeerAuthError)
    assert event.error.alert == alert
    assert event.kind is qrpc.FailureKind.PERMANENT
    assert event.retry_in is None
    assert elapsed < DEADLINE
    assert acceptor.peers() == []
    assert dialer.peers() == []
    assert calls == []
    assert not acceptor.endpoint.connections or all(
        c.peer_identity is None for c in acceptor.endpoint.connections
    )


async def test_positive_control_good_client_connects(
    make_node: NodeFactory, qrpc_pki: TestPKI
) -> None:
    acceptor = await make_node()
    dialer = await make_node(tls=refused_tls(qrpc_pki, qrpc_pki.issue()))
    event = await _dial_and_collect(dialer, acceptor)
    assert isinstance(event, qrpc.Connected)
    assert event.peer_id == acceptor.id
    await acceptor.wait_for_peer(dialer.id, timeout=DEADLINE)


SERVER_CASES: dict[str, BadCert] = {
    "other-ca": lambda pki, other: other.issue(),
    "expired": lambda pki, other: pki.issue(
        not_before=NOW - dt.timedelta(days=30), not_after=NOW - dt.timedelta(days=1)
    ),
    "client-auth-only": lambda pki, other: pki.issue(usages=("client",)),
}


@pytest.mark.parametrize("case", sorted(SERVER_CASES))
async def test_dialer_refuses_bad_server_certificate(
    case: str, make_node: NodeFactory, qrpc_pki: TestPKI, other_pki: TestPKI
) -> None:
    issued = SERVER_CASES[case](qrpc_pki, other_pki)
    assert issued is not None
    acceptor = await make_node(tls=refused_tls(qrpc_pki, issued))
    dialer = await make_node()
    event = await _dial_and_collect(dialer, acceptor)
    assert isinstance(event, qrpc.ConnectFailed), event
    assert isinstance(event.error, qrpc.PeerAuthError)
    assert event.kind is qrpc.FailureKind.PERMANENT
    assert acceptor.peers() == []
    assert dialer.peers() == []


async def test_dialer_refuses_a_server_with_another_node_id(
    make_node: NodeFactory,
) -> None:
    acceptor = await make_node()
    dialer = await make_node()
    wanted = qrpc.new_node_id()
    event = await _dial_and_collect(dialer, acceptor, expected_id=wanted)
    assert isinstance(event, qrpc.ConnectFailed), event
    assert isinstance(event.error, qrpc.PeerIdMismatch)
    assert event.error.expected == wanted
    assert event.error.actual == acceptor.id
    assert event.kind is qrpc.FailureKind.PERMANENT
    assert acceptor.peers() == []


async def test_peer_identity_is_available_after_the_handshake(
    make_node: NodeFactory, qrpc_pki: TestPKI
) -> None:
    acceptor = await make_node()
    dialer = await make_node()
    event = await _dial_and_collect(dialer, acceptor, expected_id=acceptor.id)
    assert isinstance(event, qrpc.Connected)
    identity = event.identity
    assert identity.node_id == acceptor.id
    assert f"{acceptor.id}.node.qrpc" in identity.sans
    assert identity.subject == f"CN={acceptor.id}"
    assert len(identity.fingerprint) == 64
    await acceptor.wait_for_peer(dialer.id, timeout=DEADLINE)
    assert acceptor.identity(dialer.id).node_id == dialer.id


async def test_per_peer_ca_verifies_that_peer(
    make_node: NodeFactory, qrpc_pki: TestPKI, other_pki: TestPKI, tmp_path
) -> None:
    # B belongs to another CA but trusts both; A trusts only its own CA except for B.
    bundle = tmp_path / "both.crt"
    bundle.write_bytes(qrpc_pki.ca_path.read_bytes() + other_pki.ca_path.read_bytes())
    cert, key = other_pki.write(other_pki.issue())
    b = await make_node(tls=qrpc.TLS(bundle, cert, key))
    a = await make_node()

    refused = await _dial_and_collect(a, b)  # with A's own CA, B's certificate is unknown
    assert isinstance(refused, qrpc.ConnectFailed)
    assert isinstance(refused.error, qrpc.PeerAuthError)
    assert refused.error.alert == 48  # A itself refused, with the local reason:
    assert "is not a trusted CA" in str(refused.error)

    events = a.events()
    a.add_peer(qrpc.Peer(*b.address, expected_id=b.id, ca=other_pki.ca_path))
    connected = await next_event(events, qrpc.Connected)
    assert connected.peer_id == b.id


async def test_peer_host_names_are_resolved(make_node: NodeFactory) -> None:
    target = await make_node()
    dialer = await make_node()
    events = dialer.events()
    dialer.add_peer(qrpc.Peer("localhost", target.address[1], expected_id=target.id))
    connected = await next_event(events, qrpc.Connected)
    assert connected.peer_id == target.id
    assert connected.address[0] == "127.0.0.1"
