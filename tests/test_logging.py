"""Logs tell the truth: the accepting node says why it refused a peer (once per source
address per interval), and aioquic's per-connection WARNINGs stay off a user's stderr."""

from __future__ import annotations

import datetime as dt
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable

import msgspec
import pytest
from aioquic.quic.connection import QuicConnection
from aioquic.quic.crypto import CryptoPair
from aioquic.quic.packet import QuicFrameType, QuicPacketType, QuicProtocolVersion
from aioquic.quic.packet_builder import QuicPacketBuilder

import qrpc
from qrpc.config import QuicSettings
from qrpc.testing import TestPKI, refused_tls
from qrpc.transport.gate import reset_token_function
from qrpc.transport.mtls import PeerPolicy, QrpcQuicConnection, quic_configuration
from qrpc.transport.refusals import RefusalLog
from tests.conftest import NodeFactory, Ping, Pong, connect, next_event

NOW = dt.datetime.now(dt.UTC)
TOKEN = reset_token_function(b"a test node's key")


def _refusals(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == "qrpc.node" and r.levelno == logging.WARNING and "refused" in r.getMessage()
    ]


def _aioquic_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r for r in caplog.records if r.name.split(".")[0] == "quic" and r.levelno >= logging.WARNING
    ]


async def _refused_dial(dialer: qrpc.Node, acceptor: qrpc.Node, **peer: object) -> None:
    events = dialer.events()
    dialer.add_peer(qrpc.Peer(*acceptor.address, **peer))  # type: ignore[arg-type]
    failed = await next_event(events, qrpc.ConnectFailed, timeout=8)
    assert isinstance(failed.error, qrpc.HandshakeError), failed.error


class Refuse:
    @qrpc.hookimpl
    def qrpc_authorize_peer(self, identity: qrpc.PeerIdentity) -> bool:
        return False


class PingV2(msgspec.Struct):
    text: int


Case = Callable[[TestPKI, TestPKI], dict[str, object]]

# case: (how the acceptor and the dialer are made, text the acceptor's WARNING carries)
CASES: dict[str, tuple[Case, str]] = {
    "certificate-from-another-ca": (
        lambda pki, other: {"dialer_tls": refused_tls(pki, other.issue())},
        "certificate issuer CN=another CA is not a trusted CA",
    ),
    "expired-certificate": (
        lambda pki, other: {
            "dialer_tls": refused_tls(
                pki,
                pki.issue(
                    not_before=NOW - dt.timedelta(days=9), not_after=NOW - dt.timedelta(days=1)
                ),
            )
        },
        "is not valid at",
    ),
    "auth-hook-refused": (
        lambda pki, other: {"acceptor_plugins": [Refuse()]},
        "an auth hook rejected the peer",
    ),
    "schema-mismatch": (
        lambda pki, other: {"schema_mismatch": True},
        "schema mismatch (compatible)",
    ),
    "identity-in-another-trust-domain": (
        lambda pki, other: {"dialer_domain": "other"},
        "set the same qrpc.TLS(domain=...) on both",
    ),
}


@pytest.fixture(scope="module")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> TestPKI:
    return TestPKI(tmp_path_factory.mktemp("another-ca"), name="another CA")


@pytest.mark.parametrize("case", sorted(CASES))
async def test_the_acceptor_logs_why_it_refused_a_peer(
    case: str,
    make_node: NodeFactory,
    qrpc_pki: TestPKI,
    other_pki: TestPKI,
    registry: qrpc.Registry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    make, expected = CASES[case]
    setup = make(qrpc_pki, other_pki)
    acceptor = await make_node(plugins=setup.get("acceptor_plugins", []))
    dialer_kwargs: dict[str, object] = {}
    if "dialer_tls" in setup:
        dialer_kwargs["tls"] = setup["dialer_tls"]
    if "dialer_domain" in setup:
        cert, key = qrpc_pki.write(qrpc_pki.issue(domain="other"))
        dialer_kwargs["tls"] = qrpc.TLS(qrpc_pki.ca_path, cert, key, domain="other")
    if setup.get("schema_mismatch"):
        other = qrpc.Registry()
        other.register(1, PingV2)
        dialer_kwargs["reg"] = other
    dialer = await make_node(**dialer_kwargs)
    await _refused_dial(dialer, acceptor)
    source = f"127.0.0.1:{dialer.address[1]}"
    lines = [r.getMessage() for r in _refusals(caplog) if source in r.getMessage()]
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"refused the peer at {source}: ")
    assert expected in lines[0]
    assert not _aioquic_warnings(caplog)  # "Error: 304, reason: peer certificate refused"


async def test_refusals_from_one_address_are_rate_limited(
    make_node: NodeFactory, qrpc_pki: TestPKI, other_pki: TestPKI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    acceptor = await make_node()
    dialer = await make_node(tls=refused_tls(qrpc_pki, other_pki.issue()))
    for _ in range(3):
        await _refused_dial(dialer, acceptor)
    source = f"127.0.0.1:{dialer.address[1]}"
    assert len([r for r in _refusals(caplog) if source in r.getMessage()]) == 1


def test_refusal_log_counts_what_it_suppressed(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="qrpc.node")
    now = [100.0]
    refusals = RefusalLog(10.0, clock=lambda: now[0])
    for _ in range(4):
        refusals.refused(("10.0.0.1", 5000), "bad certificate")
    refusals.refused(("10.0.0.2", 5000), "bad certificate")  # another address: its own line
    now[0] += 10.5
    refusals.refused(("10.0.0.1", 5000), "bad certificate")
    refusals.refused(("::1", 7000, 0, 0), "bad certificate")
    assert [r.getMessage() for r in caplog.records] == [
        "refused the peer at 10.0.0.1:5000: bad certificate",
        "refused the peer at 10.0.0.2:5000: bad certificate",
        "refused the peer at 10.0.0.1:5000: bad certificate "
        "(and 3 more refusal(s) of it not logged since the last line)",
        "refused the peer at [::1]:7000: bad certificate",
    ]


def _initial_without_crypto() -> tuple[bytes, bytes]:
    """A client Initial datagram (padded to 1200 bytes) that carries a PING and no
    CRYPTO frame, as a client's probe can reach a server that forgot it; and its DCID."""
    dcid = os.urandom(8)
    version = QuicProtocolVersion.VERSION_1
    crypto = CryptoPair()
    crypto.setup_initial(cid=dcid, is_client=True, version=version)
    builder = QuicPacketBuilder(
        host_cid=os.urandom(8), peer_cid=dcid, version=version, is_client=True,
        max_datagram_size=1200,
    )  # fmt: skip
    builder.start_packet(QuicPacketType.INITIAL, crypto)
    builder.start_frame(QuicFrameType.PING)
    datagrams, _ = builder.flush()
    return datagrams[0], dcid


@pytest.mark.parametrize("qrpc_connection", [True, False], ids=["qrpc", "stock-aioquic"])
def test_an_initial_without_crypto_is_not_a_warning_on_qrpc_connections(
    qrpc_connection: bool, qrpc_pki: TestPKI, caplog: pytest.LogCaptureFixture
) -> None:
    datagram, odcid = _initial_without_crypto()
    config = quic_configuration(qrpc_pki.node_tls(), is_client=False, settings=QuicSettings())
    policy = PeerPolicy(trust=(qrpc_pki.ca.cert,), domain=qrpc_pki.domain)
    fresh: QuicConnection = (
        QrpcQuicConnection(
            configuration=config,
            policy=policy,
            reset_token=TOKEN,
            original_destination_connection_id=odcid,
        )
        if qrpc_connection
        else QuicConnection(configuration=config, original_destination_connection_id=odcid)
    )
    caplog.set_level(logging.INFO, logger="quic")
    fresh.receive_datagram(datagram, ("127.0.0.2", 1234), now=0.0)
    noise = [r for r in caplog.records if "no CRYPTO frame" in r.getMessage()]
    assert len(noise) == 1  # aioquic still says it, for those who listen at INFO
    assert noise[0].levelno == (logging.INFO if qrpc_connection else logging.WARNING)


async def test_a_normal_run_logs_no_aioquic_warning(
    make_node: NodeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    a = await make_node()
    b = await make_node()

    @b.handler(1)
    async def on_ping(ctx: qrpc.Context, msg: Ping) -> Pong:
        return Pong(msg.text)

    await connect(a, b)
    for n in range(20):
        assert await a.request(b.id, Ping(str(n)), reply=Pong) == Pong(str(n))
    await a.close()
    await b.close()
    assert not _aioquic_warnings(caplog)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


SCRIPT = textwrap.dedent(
    """
    import asyncio, sys, tempfile
    from pathlib import Path
    import msgspec, qrpc
    from qrpc.testing import TestPKI, refused_tls

    class Ping(msgspec.Struct):
        text: str

    async def main() -> None:
        directory = Path(tempfile.mkdtemp())
        pki, other = TestPKI(directory / "a"), TestPKI(directory / "b", name="another CA")
        registry = qrpc.Registry()
        registry.register(1, Ping)
        nodes = [
            qrpc.Node(registry, tls=pki.node_tls(), autoload_plugins=False),
            qrpc.Node(registry, tls=pki.node_tls(), autoload_plugins=False),
            qrpc.Node(registry, tls=refused_tls(pki, other.issue()), autoload_plugins=False),
        ]
        a, b, stranger = nodes
        for node in nodes:
            await node.start()
        a.add_peer(qrpc.Peer(*b.address, expected_id=b.id))
        await a.wait_for_peer(b.id, timeout=5)
        await a.send(b.id, Ping("hello"))
        events = stranger.events()
        stranger.add_peer(qrpc.Peer(*b.address))
        async with asyncio.timeout(8):
            async for event in events:
                if isinstance(event, qrpc.ConnectFailed):
                    break
        for node in nodes:
            await node.close()
        print("done", b.address[1], stranger.address[1])

    asyncio.run(main())
    """
)


def test_without_logging_configured_stderr_has_qrpcs_refusal_and_no_aioquic_line() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    _, _, stranger_port = result.stdout.split()
    lines = result.stderr.splitlines()
    refusals = [line for line in lines if line.startswith("refused the peer at ")]
    assert len(refusals) == 1, result.stderr
    assert refusals[0].startswith(f"refused the peer at 127.0.0.1:{stranger_port}: ")
    assert "is not a trusted CA" in refusals[0]
    assert not [line for line in lines if "reason: peer certificate refused" in line]
