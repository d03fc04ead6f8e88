"""The qrpc command: the quick certificate set-up, plugins and codecs."""

from __future__ import annotations

import os
import subprocess
import sys
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
    assert not (tmp_path / "ca.key").exists()  # nodes read this folder: the CA key lives apart
    assert (tmp_path / "ca" / "ca.key").stat().st_mode & 0o777 == 0o600


def test_plugins_lists_the_builtin_plugin(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "qrpc.builtin  (built in)" in out
    assert "qrpc_certified_node_id, qrpc_next_reconnect_delay" in out


def test_codecs_lists_the_builtin_codecs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["codecs"]) == 0
    assert {"json", "msgpack", "raw"} <= set(capsys.readouterr().out.split())


GOOD_PLUGIN = """\
import qrpc

@qrpc.hookimpl
def qrpc_node_started(node):
    pass

class NotAnInstance:
    pass
"""


def _install_fake_plugins(site: Path) -> None:
    """A distribution with one good and two broken ``qrpc`` entry points, on `site`."""
    (site / "good_plugin.py").write_text(GOOD_PLUGIN, encoding="utf-8")
    info = site / "fake_plugins-1.2.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: fake-plugins\nVersion: 1.2\n", encoding="utf-8"
    )
    (info / "entry_points.txt").write_text(
        "[qrpc]\n"
        "good = good_plugin\n"
        "missing = no_such_module_anywhere\n"
        "classy = good_plugin:NotAnInstance\n",
        encoding="utf-8",
    )


def test_plugins_names_each_broken_plugin_in_one_line_and_lists_the_rest(tmp_path: Path) -> None:
    _install_fake_plugins(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "QRPC_DISABLE_PLUGIN_AUTOLOAD"}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env.get("PYTHONPATH", "")])
    done = _qrpc_plugins(env)
    assert done.returncode == 1
    assert "qrpc.builtin  (built in)" in done.stdout
    assert "fake-plugins:good  (fake-plugins 1.2, entry point good)" in done.stdout
    assert "missing" not in done.stdout
    assert "classy" not in done.stdout
    lines = done.stderr.splitlines()
    assert len(lines) == 2, done.stderr
    missing = next(line for line in lines if "'missing'" in line)
    assert missing.startswith("qrpc: plugin entry point 'missing' (no_such_module_anywhere)")
    assert "of fake-plugins 1.2 failed to load: ModuleNotFoundError" in missing
    classy = next(line for line in lines if "'classy'" in line)
    assert "is a class" in classy
    assert "Traceback" not in done.stderr


def test_plugins_without_broken_ones_exits_0(tmp_path: Path) -> None:
    env = {**os.environ, "QRPC_DISABLE_PLUGIN_AUTOLOAD": "1"}
    done = _qrpc_plugins(env)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.startswith("qrpc.builtin  (built in)")


def test_plugins_help_documents_the_exit_status() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "qrpc", "plugins", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0
    assert "exit status is 1" in " ".join(done.stdout.split())


def test_plugins_says_whether_each_example_plugin_is_active(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("QRPC_AUDIT", raising=False)
    monkeypatch.delenv("QRPC_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    assert main(["plugins"]) == 0
    assert "status: inert: set QRPC_AUDIT=1 to log every link" in capsys.readouterr().out
    monkeypatch.setenv("QRPC_AUDIT", "1")
    assert main(["plugins"]) == 0
    assert "status: active: logs every link" in capsys.readouterr().out


def test_a_raising_plugin_status_does_not_break_the_listing() -> None:
    from qrpc.cli.listing import _status

    class Broken:
        def plugin_status(self) -> str:
            raise RuntimeError("oops")

    assert _status(Broken()) == "unknown: its plugin_status() raised RuntimeError: oops"
    assert _status(object()) is None


def _qrpc_plugins(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``qrpc plugins`` in a subprocess with environment `env`."""
    return subprocess.run(
        [sys.executable, "-m", "qrpc", "plugins"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
