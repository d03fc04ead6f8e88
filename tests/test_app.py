"""qrpc.App (handlers apart from the node) and qrpc.NodeSettings (file, environment, layers)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import qrpc
from qrpc.app.settings import (
    BackoffTable,
    LimitsTable,
    PeerTable,
    QuicTable,
    TLSTable,
    parse_address,
    parse_bool,
)
from qrpc.testing import TestPKI
from tests.conftest import Ping, Pong

# -- App -----------------------------------------------------------------------------


def test_handlers_are_checked_like_node_handlers(registry: qrpc.Registry) -> None:
    app = qrpc.App(registry)

    @app.handler(1, concurrency=3)
    async def on_ping(ctx: qrpc.Context, msg: Ping) -> Pong:
        return Pong(msg.text)

    assert app.handlers[1] == qrpc.HandlerSpec(on_ping, 3)
    with pytest.raises(qrpc.RegistryError, match="already has a handler"):
        app.handler(1)(on_ping)
    with pytest.raises(qrpc.RegistryError):
        app.handler(99)(on_ping)  # no such cmd_id
    with pytest.raises(qrpc.RegistryError):
        app.handler(2)(on_ping)  # annotated Ping, registered Pong
    with pytest.raises(qrpc.RegistryError, match="concurrency"):
        app.handler(2, concurrency=0)
    assert list(app.handlers) == [1]


def test_app_needs_a_registry() -> None:
    with pytest.raises(qrpc.ConfigError, match=r"Node\.registry"):
        qrpc.App(object())  # type: ignore[arg-type]


async def test_each_node_gets_the_handlers_and_the_state(
    registry: qrpc.Registry, qrpc_pki: TestPKI
) -> None:
    state = {"greeting": "hello"}
    app = qrpc.App(registry, state=state)

    @app.handler(1, concurrency=2)
    async def on_ping(ctx: qrpc.Context, msg: Ping) -> Pong:
        return Pong(f"{ctx.state['greeting']} {msg.text} from {ctx.node.id}")

    server = app.node(tls=qrpc_pki.node_tls(), autoload_plugins=False)
    client = app.node(tls=qrpc_pki.node_tls(), state="own", autoload_plugins=False)
    assert server is not client
    assert server.state is state
    assert client.state == "own"
    assert server.handlers[1] == client.handlers[1] == qrpc.HandlerSpec(on_ping, 2)
    async with server, client:
        client.add_peer(qrpc.PeerAddress(*server.address, expected_id=server.id))
        await client.wait_for_peer(server.id, timeout=5)
        reply = await client.request(server.id, Ping("you"), reply=Pong, timeout=5)
    assert reply == Pong(f"hello you from {server.id}")


def test_app_node_passes_node_errors(registry: qrpc.Registry, qrpc_pki: TestPKI) -> None:
    app = qrpc.App(registry)
    with pytest.raises(qrpc.ConfigError, match=r"Node\.listen"):
        app.node(tls=qrpc_pki.node_tls(), listen="nowhere", autoload_plugins=False)


# -- NodeSettings: the file ----------------------------------------------------------


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_a_full_file_becomes_node_options(tmp_path: Path, qrpc_pki: TestPKI) -> None:
    cert, key = qrpc_pki.write(qrpc_pki.issue())
    (tmp_path / "certs").mkdir()
    for source, name in ((qrpc_pki.ca_path, "ca.crt"), (cert, "n.crt"), (key, "n.key")):
        (tmp_path / "certs" / name).write_bytes(source.read_bytes())
    path = _write(
        tmp_path / "node.toml",
        """
listen = "0.0.0.0:20001"
peers = ["10.0.0.2:20001", {host = "b.example", port = 7, expected_id = "node-b"}]
codecs = ["json", "msgpack"]
schema = "strict"
autoload_plugins = false
log_level = "debug"

[tls]
ca = "certs/ca.crt"
cert = "certs/n.crt"
key = "certs/n.key"

[limits]
max_peers = 8
request_timeout = 3

[quic]
retry = true
congestion_control = "cubic"

[backoff]
base = 0.5
cap = 4.0
""",
    )
    settings = qrpc.NodeSettings.load(path)
    assert settings.log_level == "debug"
    options = settings.node_options()
    tls = options.pop("tls")
    assert isinstance(tls, qrpc.TLS)
    assert tls.cert_path == str(tmp_path / "certs" / "n.crt")  # relative to the file
    assert options == {
        "listen": ("0.0.0.0", 20001),
        "peers": [
            qrpc.PeerAddress("10.0.0.2", 20001),
            qrpc.PeerAddress("b.example", 7, expected_id="node-b"),
        ],
        "codecs": ("json", "msgpack"),
        "schema": "strict",
        "autoload_plugins": False,
        "limits": qrpc.Limits(max_peers=8, request_timeout=3.0),
        "quic": qrpc.QuicSettings(retry=True, congestion_control="cubic"),
        "backoff": qrpc.Backoff(base=0.5, cap=4.0),
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("listen = [", "not valid TOML"),
        ("lisen = '127.0.0.1:1'", "lisen: unknown key; known at the top level: listen, peers"),
        ("[limits]\nmax_peer = 3", "limits.max_peer: unknown key; known at [limits]: max_message"),
        ("[quic]\nretry = 1", "quic.retry: expected bool, got int"),
        ("[limits]\nmax_peers = true", "limits.max_peers: expected int, got bool"),
        ("listen = 20001", "listen: expected str, got int"),
        ("peers = [{host = 'a'}]", "peers[0]: object missing required field port"),
        ("schema = 'loose'", "schema: invalid enum value 'loose'"),
        ("listen = '127.0.0.1'", "listen: expected HOST:PORT, got '127.0.0.1'"),
        ("listen = '::1:5'", "listen: write an IPv6 host in brackets, [::1]:5"),
        ("peers = ['a:0']", "peers[0]: the port of 'a:0' must be a number in 1..65535"),
        ("peers = [{host = 'a', port = 99999}]", "peers[0].port: must be an int in 1..65535"),
        ("peers = [{host = 'a', port = 1, ca = 'x.crt'}]", "peers[0].ca: a per-peer CA needs"),
        ("[limits]\nmax_peers = 0", "limits.max_peers: must be an int in 1..4294967295, got 0"),
        ("[quic]\nidle_timeout = 1\nkeepalive_interval = 2", "quic.keepalive_interval: must be"),
        ("[backoff]\nbase = 5\ncap = 1", "backoff: need base > 0"),
        ("log_level = 'loud'", "log_level: must be one of DEBUG, INFO"),
    ],
)
def test_every_mistake_in_a_file_names_file_key_and_reason(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = _write(tmp_path / "bad.toml", text)
    with pytest.raises(qrpc.ConfigError) as caught:
        qrpc.NodeSettings.load(path)
    assert caught.value.path == str(path)
    assert str(caught.value).startswith(f"{path}: {expected}"), str(caught.value)
    assert "\n" not in str(caught.value)


def test_the_documented_example_file_loads(tmp_path: Path) -> None:
    doc = (Path(__file__).resolve().parent.parent / "docs" / "running.md").read_text()
    example = doc.split("```toml\n", 1)[1].split("```", 1)[0]
    settings = qrpc.NodeSettings.load(_write(tmp_path / "node.toml", example))
    assert {"listen", "peers", "tls.cert", "limits.max_peers", "quic.retry", "backoff.cap"} <= set(
        settings.set_keys()
    )


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(qrpc.ConfigError, match="config file not found"):
        qrpc.NodeSettings.load(tmp_path / "missing.toml")
    (tmp_path / "latin1.toml").write_bytes(b"listen = '\xe9'")
    with pytest.raises(qrpc.ConfigError, match="not UTF-8"):
        qrpc.NodeSettings.load(tmp_path / "latin1.toml")
    with pytest.raises(qrpc.ConfigError, match="cannot read it"):
        qrpc.NodeSettings.load(tmp_path)  # a directory


def test_a_peer_ca_file_is_read_relative_to_the_file(tmp_path: Path, qrpc_pki: TestPKI) -> None:
    (tmp_path / "their-ca.crt").write_bytes(qrpc_pki.ca_path.read_bytes())
    path = _write(
        tmp_path / "n.toml", "peers = [{host='a', port=1, expected_id='x', ca='their-ca.crt'}]"
    )
    (peer,) = qrpc.NodeSettings.load(path).node_options()["peers"]
    assert peer.ca == str(tmp_path / "their-ca.crt")
    assert peer.trust is not None


def test_tables_have_the_fields_of_the_config_classes() -> None:
    import dataclasses

    for table, cls in (
        (LimitsTable, qrpc.Limits),
        (QuicTable, qrpc.QuicSettings),
        (BackoffTable, qrpc.Backoff),
        (PeerTable, qrpc.PeerAddress),
    ):
        names = [f.name for f in dataclasses.fields(cls) if f.init]
        assert sorted(table.__struct_fields__) == sorted(names), cls.__name__


def test_tls_needs_all_three_files_or_none(qrpc_pki: TestPKI) -> None:
    assert "tls" not in qrpc.NodeSettings().node_options()
    partial = qrpc.NodeSettings(tls=TLSTable(ca=str(qrpc_pki.ca_path)))
    with pytest.raises(qrpc.ConfigError, match="no cert / key file"):
        partial.node_options()
    cert, key = qrpc_pki.write(qrpc_pki.issue())
    with pytest.raises(qrpc.ConfigError, match="file not found"):
        qrpc.NodeSettings(
            tls=TLSTable(ca=str(qrpc_pki.ca_path), cert=str(cert), key=str(key) + ".gone")
        ).node_options()


# -- NodeSettings: the environment and layers ----------------------------------------


def test_environment_variables() -> None:
    env = {
        "QRPC_LISTEN": "[::1]:0",
        "QRPC_PEERS": "a.example:1, 10.0.0.2:20001",
        "QRPC_CA": "ca.crt",
        "QRPC_KEY": "n.key",
        "QRPC_LOG_LEVEL": "warning",
        "QRPC_AUTOLOAD_PLUGINS": "No",
        "QRPC_CERT": "  ",  # empty: unset
    }
    settings = qrpc.NodeSettings.from_env(env)
    assert settings == qrpc.NodeSettings(
        listen="[::1]:0",
        peers=["a.example:1", "10.0.0.2:20001"],
        log_level="WARNING",
        autoload_plugins=False,
        tls=TLSTable(ca="ca.crt", key="n.key"),
    )
    assert settings.set_keys() == [
        "listen",
        "peers",
        "autoload_plugins",
        "log_level",
        "tls.ca",
        "tls.key",
    ]
    assert qrpc.NodeSettings.from_env({}) == qrpc.NodeSettings()


def test_from_env_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QRPC_LISTEN", "127.0.0.1:7")
    assert qrpc.NodeSettings.from_env().listen == "127.0.0.1:7"
    assert os.environ["QRPC_LISTEN"] == "127.0.0.1:7"


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("QRPC_LISTEN", "localhost", "QRPC_LISTEN: expected HOST:PORT"),
        ("QRPC_PEERS", "a:1,,b:2", "QRPC_PEERS: expected HOST:PORT, got ''"),
        ("QRPC_PEERS", "a:1,b:x", "QRPC_PEERS: the port of 'b:x' must be"),
        ("QRPC_AUTOLOAD_PLUGINS", "on", "QRPC_AUTOLOAD_PLUGINS: must be 1/true/yes or 0/false/no"),
        ("QRPC_LOG_LEVEL", "verbose", "QRPC_LOG_LEVEL: must be one of DEBUG"),
    ],
)
def test_a_bad_variable_is_named(name: str, value: str, expected: str) -> None:
    with pytest.raises(qrpc.ConfigError) as caught:
        qrpc.NodeSettings.from_env({name: value})
    assert str(caught.value).startswith(expected), str(caught.value)


def test_layers_stack_key_by_key() -> None:
    file = qrpc.NodeSettings(
        listen="127.0.0.1:1",
        peers=["a:1", "b:2"],
        log_level="DEBUG",
        tls=TLSTable(ca="file-ca", cert="file-cert", key="file-key"),
        limits=LimitsTable(max_peers=3),
    )
    env = qrpc.NodeSettings(listen="127.0.0.1:2", tls=TLSTable(cert="env-cert"))
    cli = qrpc.NodeSettings(peers=["c:3"], tls=TLSTable(key="cli-key"))
    assert qrpc.NodeSettings.merged(file, env, cli) == qrpc.NodeSettings(
        listen="127.0.0.1:2",
        peers=["c:3"],  # lists are replaced, not appended
        log_level="DEBUG",
        tls=TLSTable(ca="file-ca", cert="env-cert", key="cli-key"),
        limits=LimitsTable(max_peers=3),
    )
    assert qrpc.NodeSettings.merged() == qrpc.NodeSettings()


def test_parsers() -> None:
    assert parse_address("h.example:20001") == ("h.example", 20001)
    assert parse_address("[fe80::1]:5") == ("fe80::1", 5)
    assert parse_address("0.0.0.0:0", lowest_port=0) == ("0.0.0.0", 0)
    for bad in ("h", ":1", "h:", "h:-1", "h:65536", "h:1\u00b2", "[]:1"):
        with pytest.raises(ValueError, match=r"HOST:PORT|port|bracket"):
            parse_address(bad)
    assert [parse_bool(w) for w in ("1", "TRUE", "yes", "0", "False", "no")] == [
        True,
        True,
        True,
        False,
        False,
        False,
    ]
    with pytest.raises(ValueError, match="1/true/yes"):
        parse_bool("y")
