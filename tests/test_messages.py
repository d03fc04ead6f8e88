"""Error messages name what failed and the fix; small validation mistakes are refused
at once (real nodes on 127.0.0.1, real certificates)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from cryptography.x509.oid import NameOID

import qrpc
from qrpc.config import check_peers
from qrpc.hooks.manager import AUTOLOAD_ENV, autoload_disabled
from qrpc.testing import RecordingTracer, TestPKI, refused_tls
from qrpc.wire.frames import HEADER_SIZE
from tests.conftest import Count, NodeFactory, Ping, connect, eventually, next_event


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A bound UDP port on which nothing ever answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


async def _first_failure(node: qrpc.Node, peer: qrpc.PeerAddress) -> qrpc.ConnectFailed:
    events = node.events()
    node.add_peer(peer)
    return await next_event(events, qrpc.ConnectFailed, timeout=8)


async def test_nothing_listening_names_connect_timeout(
    make_node: NodeFactory, silent_port: int
) -> None:
    node = await make_node(limits=qrpc.Limits(connect_timeout=0.5))
    failed = await _first_failure(node, qrpc.Peer("127.0.0.1", silent_port))
    assert isinstance(failed.error, qrpc.ConnectTimeout)
    assert str(failed.error) == (
        f"no answer from 127.0.0.1:{silent_port} within connect_timeout=0.5 s: "
        "is a node listening there?"
    )


async def test_the_same_certificate_in_two_nodes_is_named(
    make_node: NodeFactory, qrpc_pki: TestPKI
) -> None:
    tls = qrpc_pki.node_tls()
    a = await make_node(tls=tls)
    b = await make_node(tls=tls)
    failed = await _first_failure(a, qrpc.Peer(*b.address))
    assert isinstance(failed.error, qrpc.SelfConnection)
    text = str(failed.error)
    assert f"127.0.0.1:{b.address[1]}" in text
    assert f"presented this node's own certificate (node ID {a.id})" in text
    assert "the same certificate is in use by two nodes" in text


async def test_message_too_large_names_the_peers_announced_limit(
    make_node: NodeFactory,
) -> None:
    a = await make_node()  # 4 MiB
    b = await make_node(limits=qrpc.Limits(max_message_size=64 * 1024))
    await connect(a, b)
    with pytest.raises(qrpc.MessageTooLarge) as caught:
        await a.send(b.id, Count(1, b"x" * 100_000))
    error = caught.value
    assert (error.peer_id, error.limit) == (b.id, 64 * 1024)
    assert f"peer {b.id} announced it accepts at most 65536 bytes" in str(error)
    assert "raise Limits.max_message_size on that receiving node" in str(error)


async def test_message_too_large_names_this_nodes_own_limit(make_node: NodeFactory) -> None:
    a = await make_node(limits=qrpc.Limits(max_message_size=64 * 1024))
    b = await make_node()
    await connect(a, b)
    with pytest.raises(qrpc.MessageTooLarge) as caught:
        await a.send(b.id, Count(1, b"x" * 100_000))
    assert caught.value.peer_id is None
    assert "this node's Limits.max_message_size is 65536 bytes: raise it" in str(caught.value)


def test_message_too_large_defaults_to_this_nodes_limit() -> None:
    error = qrpc.MessageTooLarge(2_000_000, 1_048_576)
    assert str(error).startswith("encoded message is 2000000 bytes; this node's ")


def _ca_name(pki: TestPKI) -> str:
    return str(pki.ca.cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def _twin(pki: TestPKI, tmp_path: Path) -> TestPKI:
    """Another CA with the same name as `pki`'s (and another key)."""
    twin = TestPKI(tmp_path / "twin", name=_ca_name(pki))
    assert twin.ca.cert.subject == pki.ca.cert.subject
    return twin


async def test_certificate_from_a_same_named_other_ca_names_both_and_the_ca_file(
    make_node: NodeFactory, qrpc_pki: TestPKI, tmp_path: Path
) -> None:
    twin = _twin(qrpc_pki, tmp_path)
    issued = twin.issue()
    acceptor = await make_node(tls=refused_tls(qrpc_pki, issued))
    dialer = await make_node()
    failed = await _first_failure(dialer, qrpc.Peer(*acceptor.address))
    assert isinstance(failed.error, qrpc.PeerAuthError)
    assert failed.error.alert == 42
    text = str(failed.error)
    assert f"certificate CN={issued.node_id} names issuer CN={_ca_name(qrpc_pki)}" in text
    assert f"was not signed by the CA in {qrpc_pki.ca_path}" in text
    assert "use certificates issued by the same CA" in text
    assert "candidates exhausted" not in text


def test_own_certificate_from_a_same_named_other_ca_names_the_ca_file(
    qrpc_pki: TestPKI, tmp_path: Path
) -> None:
    twin = _twin(qrpc_pki, tmp_path)
    cert, key = twin.write(twin.issue())
    with pytest.raises(qrpc.ConfigError) as caught:
        qrpc.TLS(qrpc_pki.ca_path, cert, key)
    assert f"was not signed by the CA in {qrpc_pki.ca_path}" in caught.value.reason


async def test_a_trust_domain_mismatch_suggests_the_domain_setting(
    make_node: NodeFactory, qrpc_pki: TestPKI
) -> None:
    cert, key = qrpc_pki.write(qrpc_pki.issue(domain="other"))
    b = await make_node(tls=qrpc.TLS(qrpc_pki.ca_path, cert, key, domain="other"))
    a = await make_node()
    failed = await _first_failure(a, qrpc.Peer(*b.address, expected_id=b.id))
    assert isinstance(failed.error, qrpc.PeerIdMismatch)
    assert f"has '{b.id}.node.other'" in str(failed.error)
    assert "set the same qrpc.TLS(domain=...) on both" in str(failed.error)


def test_a_single_peer_instead_of_a_list_is_a_config_error() -> None:
    with pytest.raises(qrpc.ConfigError) as caught:
        check_peers(qrpc.Peer("127.0.0.1", 9000))
    assert caught.value.path == "Node.peers"
    assert "pass peers=[qrpc.Peer(...)]" in caught.value.reason
    with pytest.raises(qrpc.ConfigError, match=r"Node\.peers"):
        check_peers(5)
    with pytest.raises(qrpc.ConfigError, match=r"entries must be qrpc\.PeerAddress"):
        check_peers(["127.0.0.1:9000"])
    peer = qrpc.Peer("127.0.0.1", 9000)
    assert check_peers((peer,)) == [peer]


def test_node_refuses_a_single_peer_with_a_config_error(qrpc_pki: TestPKI) -> None:
    registry = qrpc.Registry()
    with pytest.raises(qrpc.ConfigError, match=r"pass peers=\[qrpc\.Peer"):
        qrpc.Node(registry, tls=qrpc_pki.node_tls(), peers=qrpc.Peer("127.0.0.1", 9000))  # type: ignore[arg-type]


@pytest.mark.parametrize("timeout", [0, -1, 0.0, float("nan")])
async def test_request_with_a_non_positive_timeout_sends_nothing(
    make_node: NodeFactory, timeout: float
) -> None:
    a = await make_node()
    b = await make_node()
    seen: list[Ping] = []

    @b.handler(1)
    async def on_ping(ctx: qrpc.Context, msg: Ping) -> None:
        seen.append(msg)

    await connect(a, b)
    with pytest.raises(ValueError, match=r"^timeout must be > 0 seconds, got "):
        await a.request(b.id, Ping("x"), timeout=timeout)
    await a.send(b.id, Ping("marker"))  # ordered after anything the request sent
    await eventually(lambda: bool(seen))
    assert seen == [Ping("marker")]


@pytest.mark.parametrize(
    ("value", "disabled"),
    [("1", True), ("true", True), ("YES", True), ("0", False), ("false", False),
     ("no", False), ("", False)],
)  # fmt: skip
def test_autoload_variable_is_parsed_strictly(
    monkeypatch: pytest.MonkeyPatch, value: str, disabled: bool
) -> None:
    monkeypatch.setenv(AUTOLOAD_ENV, value)
    assert autoload_disabled() is disabled


def test_autoload_variable_unset_leaves_autoloading_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(AUTOLOAD_ENV, raising=False)
    assert autoload_disabled() is False


def test_autoload_variable_with_another_value_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch, registry: qrpc.Registry, qrpc_pki: TestPKI
) -> None:
    monkeypatch.setenv(AUTOLOAD_ENV, "off")
    with pytest.raises(qrpc.ConfigError) as caught:
        qrpc.Node(registry, tls=qrpc_pki.node_tls())
    assert caught.value.path == AUTOLOAD_ENV
    assert "'off'" in caught.value.reason


async def test_tracer_size_is_the_framed_size_on_every_path(make_node: NodeFactory) -> None:
    sent_by_a, received_by_b = RecordingTracer(), RecordingTracer()
    a = await make_node(plugins=[sent_by_a])
    b = await make_node(plugins=[received_by_b])
    c = await make_node()

    @b.handler(1)
    async def on_ping(ctx: qrpc.Context, msg: Ping) -> Ping | None:
        return Ping(msg.text * 2) if ctx.request_id else None

    await connect(a, b)
    await connect(a, c)
    await a.send(b.id, Ping("plain"))
    await a.send(b.id, Ping("with headers"), headers={"k": "v" * 40})
    await a.request(b.id, Ping("request"), reply=Ping)
    await a.request(b.id, Ping("request with headers"), reply=Ping, headers={"k": b"x" * 99})
    assert await a.broadcast(Ping("everyone")) == 2
    await eventually(lambda: len(received_by_b.of("receive")) == 5)

    sent = sent_by_a.of("send", b.id)
    received = received_by_b.of("receive", a.id)
    assert [r.message for r in sent] == [r.message for r in received]
    for out, came in zip(sent, received, strict=True):
        assert out.size == came.size, (out, came)  # the same frame, counted the same way
        body = len(msgspec.msgpack.encode(out.message))
        minimum = HEADER_SIZE + body + (len(out.headers) and 3)
        assert out.size is not None
        assert out.size >= minimum
    assert sent[0].size == HEADER_SIZE + len(msgspec.msgpack.encode(Ping("plain")))
    replies = received_by_b.of("send", a.id)
    assert [r.message_kind for r in replies] == ["reply", "reply"]
    for reply in replies:
        assert reply.size == HEADER_SIZE + len(msgspec.msgpack.encode(reply.message))


async def test_a_dialer_the_peer_refused_is_told_where_the_reason_is(
    make_node: NodeFactory, qrpc_pki: TestPKI, tmp_path: Path
) -> None:
    stranger = TestPKI(tmp_path / "stranger", name="a stranger's CA")
    acceptor = await make_node()
    dialer = await make_node(tls=refused_tls(qrpc_pki, stranger.issue()))
    failed = await _first_failure(dialer, qrpc.Peer(*acceptor.address))
    assert isinstance(failed.error, qrpc.PeerAuthError)
    assert failed.error.alert == 48
    assert str(failed.error).startswith(
        "the peer refused the TLS handshake with alert 48 unknown_ca (if it refused this "
        "node's certificate, its log says why"
    )
