"""The qrpc command."""

from __future__ import annotations

from pathlib import Path

import pytest

import qrpc
from qrpc.cli import main


def test_certs_issues_loadable_credentials(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["certs", str(tmp_path), "--nodes", "3", "--constrained"]) == 0
    ids = set()
    for index in (1, 2, 3):
        tls = qrpc.TLS(
            tmp_path / "ca.crt", tmp_path / f"node-{index}.crt", tmp_path / f"node-{index}.key"
        )
        ids.add(tls.node_id)
        assert (tmp_path / f"node-{index}.key").stat().st_mode & 0o777 == 0o600
    assert len(ids) == 3
    out = capsys.readouterr().out
    assert all(node_id in out for node_id in ids)


def test_plugins_lists_the_builtin_plugin(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "qrpc.builtin  (built in)" in out
    assert "qrpc_certified_node_id, qrpc_next_reconnect_delay" in out


def test_codecs_lists_the_builtin_codecs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["codecs"]) == 0
    assert {"json", "msgpack", "raw"} <= set(capsys.readouterr().out.split())
