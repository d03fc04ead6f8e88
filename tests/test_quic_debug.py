"""QUIC debugging files: qlog traces per connection and the TLS key log (real nodes)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import qrpc
from tests.conftest import NodeFactory, Ping, connect


async def _exchange(make_node: NodeFactory, a_quic: qrpc.QuicSettings, b_quic: qrpc.QuicSettings):
    a = await make_node(quic=a_quic)
    b = await make_node(quic=b_quic)
    await connect(a, b)
    await a.send(b.id, Ping("hello"))
    await a.close()
    await b.close()
    return a, b


async def test_qlog_dir_gets_one_json_file_per_connection(
    make_node: NodeFactory, tmp_path: Path
) -> None:
    a_dir, b_dir = tmp_path / "a", tmp_path / "b" / "nested"
    await _exchange(
        make_node, qrpc.QuicSettings(qlog_dir=a_dir), qrpc.QuicSettings(qlog_dir=str(b_dir))
    )
    for directory, role in ((a_dir, "client"), (b_dir, "server")):
        files = sorted(directory.iterdir())
        assert len(files) == 1, files
        assert files[0].name.endswith(f"-{role}.qlog")
        data = json.loads(files[0].read_text())
        (trace,) = data["traces"]
        assert trace["vantage_point"]["type"] == role
        assert trace["events"], "the trace recorded no event"
    (client,), (server,) = a_dir.iterdir(), b_dir.iterdir()
    assert client.name.removesuffix("-client.qlog") == server.name.removesuffix("-server.qlog")


async def test_both_ends_can_share_one_qlog_dir(make_node: NodeFactory, tmp_path: Path) -> None:
    settings = qrpc.QuicSettings(qlog_dir=tmp_path)
    await _exchange(make_node, settings, settings)
    assert _roles(tmp_path) == ["client.qlog", "server.qlog"]


def _roles(directory: Path) -> list[str]:
    return sorted(p.name.rsplit("-", 1)[1] for p in directory.iterdir())


async def test_key_log_file_gets_the_tls_secrets(make_node: NodeFactory, tmp_path: Path) -> None:
    key_log = tmp_path / "keys.log"
    key_log.write_text("# kept\n")
    await _exchange(make_node, qrpc.QuicSettings(key_log_file=key_log), qrpc.QuicSettings())
    lines = key_log.read_text().splitlines()
    assert lines[0] == "# kept"  # appended, not truncated
    labels = [line.split()[0] for line in lines[1:]]
    assert "CLIENT_HANDSHAKE_TRAFFIC_SECRET" in labels
    assert "SERVER_TRAFFIC_SECRET_0" in labels
    for line in lines[1:]:
        _, client_random, secret = line.split()
        assert len(client_random) == 64
        assert int(secret, 16) >= 0


def test_qlog_dir_that_is_a_file_is_a_config_error(tmp_path: Path) -> None:
    file = tmp_path / "file"
    file.write_text("")
    with pytest.raises(qrpc.ConfigError) as caught:
        qrpc.QuicSettings(qlog_dir=file)
    assert caught.value.path == "QuicSettings.qlog_dir"


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_qlog_dir_that_is_not_writable_is_a_config_error(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(qrpc.ConfigError, match="is not a writable directory"):
        qrpc.QuicSettings(qlog_dir=locked)


def test_key_log_file_in_a_missing_directory_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(qrpc.ConfigError) as caught:
        qrpc.QuicSettings(key_log_file=tmp_path / "missing" / "keys.log")
    assert caught.value.path == "QuicSettings.key_log_file"
    with pytest.raises(qrpc.ConfigError, match="is a directory"):
        qrpc.QuicSettings(key_log_file=tmp_path)


def test_debugging_files_are_off_by_default() -> None:
    settings = qrpc.QuicSettings()
    assert (settings.qlog_dir, settings.key_log_file) == (None, None)
