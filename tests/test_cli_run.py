"""``qrpc run TARGET``: serving examples/app.py end to end, the layers of settings, and
the one-line answer to every mistake."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import os
import re
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

import qrpc
from qrpc.cli import main
from qrpc.testing import TestPKI
from qrpc.tls.certs import write_pem

ROOT = Path(__file__).resolve().parent.parent
SERVING = re.compile(r"serving (\S+): node (\S+) listening on 127\.0\.0\.1:(\d+)")
START_TIMEOUT = 30.0  # a cold interpreter importing qrpc on a busy machine
TARGETS = """
import pathlib

import qrpc

HERE = pathlib.Path(__file__).parent
registry = qrpc.Registry()


def tls():
    return qrpc.TLS(HERE / "ca.crt", HERE / "node.crt", HERE / "node.key")


node = qrpc.Node(registry, tls=tls(), autoload_plugins=False)


def make_node():
    return qrpc.Node(registry, tls=tls(), autoload_plugins=False)


async def make_app():
    return qrpc.App(registry)


def broken():
    raise RuntimeError("no database here")


def needs(arg):
    return arg


def wrong():
    return 42


async def closed_node():
    node = make_node()
    await node.close()
    return node
"""


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No QRPC_* variable of the machine leaks in; logger levels are restored."""
    for name in list(os.environ):
        if name.startswith("QRPC_"):
            monkeypatch.delenv(name)
    loggers = [logging.getLogger(name) for name in ("qrpc", "aioquic", "quic", "http3")]
    levels = [logger.level for logger in loggers]
    yield
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(level)


@pytest.fixture
def files(tmp_path: Path, qrpc_pki: TestPKI) -> dict[str, Path]:
    """A CA, a server certificate and key, and the targets module, all in tmp_path."""
    (tmp_path / "ca.crt").write_bytes(qrpc_pki.ca_path.read_bytes())
    write_pem(qrpc_pki.issue(), tmp_path / "node.crt", tmp_path / "node.key")
    (tmp_path / "targets.py").write_text(TARGETS, encoding="utf-8")
    return {
        "ca": tmp_path / "ca.crt",
        "cert": tmp_path / "node.crt",
        "key": tmp_path / "node.key",
        "targets": tmp_path / "targets.py",
    }


def _tls_args(files: dict[str, Path]) -> list[str]:
    return ["--ca", str(files["ca"]), "--cert", str(files["cert"]), "--key", str(files["key"])]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("_example_app", ROOT / "examples" / "app.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # msgspec resolves the Structs' annotations through it
    spec.loader.exec_module(module)
    return module


class Served:
    """A ``qrpc run`` subprocess whose stderr is collected as it comes."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        async for line in self.proc.stderr:
            self.lines.append(line.decode(errors="replace").rstrip("\n"))

    async def serving(self) -> tuple[str, int]:
        """The node ID and port of the startup line (fails after START_TIMEOUT)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT
        while loop.time() < deadline and self.proc.returncode is None:
            for line in self.lines:
                if found := SERVING.search(line):
                    return found[2], int(found[3])
            await asyncio.sleep(0.05)
        raise AssertionError("no startup line:\n" + "\n".join(self.lines))

    async def stop(self) -> int:
        """SIGTERM; the exit status, which must come within 5 s."""
        self.proc.send_signal(signal.SIGTERM)
        status = await asyncio.wait_for(self.proc.wait(), 5)
        await asyncio.wait_for(self._reader, 5)
        return status


async def _serve(
    args: list[str],
    env: dict[str, str] | None = None,
    *,
    command: tuple[str, ...] = (sys.executable, "-m", "qrpc"),
    cwd: Path = ROOT,
) -> Served:
    proc = await asyncio.create_subprocess_exec(
        *command,
        "run",
        *args,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONASYNCIODEBUG": "", **(env or {})},
    )
    return Served(proc)


async def _kill(served: Served) -> None:
    if served.proc.returncode is None:
        served.proc.kill()
        await served.proc.wait()


# -- end to end -------------------------------------------------------------------


async def test_serves_the_example_app_and_exits_0_on_sigterm(
    files: dict[str, Path], qrpc_pki: TestPKI
) -> None:
    example = _example()
    served = await _serve(["examples/app.py:app", "--listen", "127.0.0.1:0", *_tls_args(files)])
    try:
        server_id, port = await served.serving()
        assert server_id == qrpc.TLS(files["ca"], files["cert"], files["key"]).node_id
        client = qrpc.Node(
            example.registry,
            tls=qrpc_pki.node_tls(),
            peers=[qrpc.PeerAddress("127.0.0.1", port, expected_id=server_id)],
            autoload_plugins=False,
        )
        async with client:
            await client.wait_for_peer(server_id, timeout=10)
            await client.send(server_id, example.Note("first"))
            reply = await client.request(
                server_id, example.Greet("tester"), reply=example.Greeting, timeout=5
            )
        assert reply == example.Greeting(f"hello tester, from {server_id} (1 note(s) from you)")
        assert await served.stop() == 0
    finally:
        await _kill(served)
    log = "\n".join(served.lines)
    assert "bootstrap peers: none" in log
    assert f"note from {client.id}: first" in log  # the app's own logger, at INFO
    assert "Traceback" not in log
    assert " quic:" not in log  # aioquic's per-connection INFO lines stay quiet


async def _qrpc(*args: str) -> tuple[int, str, str]:
    """Run ``qrpc ARGS`` from the repository root; (status, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "qrpc",
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_the_shell_client_talks_to_qrpc_run_of_the_example(tmp_path: Path) -> None:
    # What the README shows: certificates from the CLI, the example app served by
    # `qrpc run`, and ping / call / peers / stats from other processes.
    ca, certs = tmp_path / "ca", tmp_path / "certs"
    assert (await _qrpc("certs", "init", str(ca)))[0] == 0
    for name in ("server", "client"):
        assert (await _qrpc("certs", "issue", str(ca), str(certs), "--name", name))[0] == 0
    client_id = qrpc.TLS(certs / "ca.crt", certs / "client.crt", certs / "client.key").node_id
    server = {"ca": certs / "ca.crt", "cert": certs / "server.crt", "key": certs / "server.key"}
    options = ["--listen", "127.0.0.1:0", *_tls_args(server), "--introspection", client_id]
    served = await _serve(["examples/app.py:app", *options])
    try:
        server_id, port = await served.serving()
        where = f"127.0.0.1:{port}"
        me = ["--ca", str(certs / "ca.crt"), "--cert", str(certs / "client.crt")]
        me += ["--key", str(certs / "client.key")]
        status, out, err = await _qrpc("ping", where, "--count", "2", *me)
        assert (status, err) == (0, ""), out
        assert out.count(f"reply from {server_id}") == 2
        call = ["call", where, "10", '{"name": "Ada"}', "--app", "examples/app.py:app", *me]
        status, out, err = await _qrpc(*call)
        assert (status, err) == (0, "")
        assert json.loads(out) == {"text": f"hello Ada, from {server_id} (0 note(s) from you)"}
        status, out, err = await _qrpc("peers", where, "--json", *me)
        assert (status, err) == (0, "")
        assert client_id in out
        status, out, err = await _qrpc("stats", where, *me)
        assert (status, err) == (0, "")
        assert "messages" in out
        assert await served.stop() == 0
    finally:
        await _kill(served)


async def test_command_line_beats_environment_beats_config_file(
    files: dict[str, Path], tmp_path: Path
) -> None:
    file_port, env_port, cli_port = _free_port(), _free_port(), _free_port()
    config = tmp_path / "node.toml"
    config.write_text(
        f'listen = "127.0.0.1:{file_port}"\nlog_level = "error"\n'
        '[tls]\nca = "ca.crt"\ncert = "node.crt"\nkey = "node.key"\n',  # next to the file
        encoding="utf-8",
    )
    env = {"QRPC_LISTEN": f"127.0.0.1:{env_port}", "QRPC_LOG_LEVEL": "info"}
    for extra, expected in (([], env_port), (["--listen", f"127.0.0.1:{cli_port}"], cli_port)):
        served = await _serve(["examples/app.py:app", "--config", str(config), *extra], env)
        try:
            _, port = await served.serving()  # INFO shows: the variable beat the file
            assert port == expected
            assert await served.stop() == 0
        finally:
            await _kill(served)
    served = await _serve(  # the file named by QRPC_CONFIG, where nothing overrides it
        ["examples/app.py:app"], {"QRPC_CONFIG": str(config), "QRPC_LOG_LEVEL": "info"}
    )
    try:
        _, port = await served.serving()
        assert port == file_port
        assert await served.stop() == 0
    finally:
        await _kill(served)


async def test_a_node_factory_gets_peers_and_log_level(
    files: dict[str, Path], tmp_path: Path
) -> None:
    config = tmp_path / "node.toml"
    config.write_text('peers = ["localhost:8"]\nlog_level = "info"\n', encoding="utf-8")
    args = ["targets:make_node", "--config", str(config), "--peer", "localhost:9"]
    script = str(Path(sys.executable).parent / "qrpc")  # imports the module from its cwd
    served = await _serve(args, {"QRPC_LOG_LEVEL": ""}, command=(script,), cwd=tmp_path)
    try:
        await served.serving()
        assert await served.stop() == 0
    finally:
        await _kill(served)
    assert "bootstrap peers: localhost:9" in "\n".join(served.lines)  # replaced the file's


# -- one line for every mistake ------------------------------------------------------


def _fails(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["run", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("qrpc: "), err
    assert err.count("\n") == 1, err
    return err


def test_bad_targets(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    tls, targets = _tls_args(files), files["targets"]
    for target, expected in (
        ("examples/app.py", "must name a module and an attribute"),
        ("examples/nothing.py:app", "not found"),
        ("no_such_module_here:app", "no module named 'no_such_module_here'"),
        ("examples/app.py:missing", "has no attribute 'missing'"),
        ("examples/app.py:registry", "is a qrpc.Registry, not a qrpc.App, a qrpc.Node or"),
        (f"{targets}:broken", "calling it raised RuntimeError: no database here"),
        (f"{targets}:needs", "takes arguments"),
        (f"{targets}:wrong", "returned a int, not a qrpc.App or qrpc.Node"),
    ):
        assert expected in _fails([target, *tls], capsys), target


def test_bad_options(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tls = _tls_args(files)
    assert "argument --listen: expected HOST:PORT" in _fails(["x:app", "--listen", "h"], capsys)
    assert "the port of 'h:0' must be" in _fails(["x:app", "--peer", "h:0"], capsys)
    assert "argument --log-level: must be one of" in _fails(["x:app", "--log-level", "x"], capsys)
    missing = str(tmp_path / "gone.crt")
    err = _fails(["examples/app.py:app", *tls, "--cert", missing], capsys)
    assert f"{missing}: file not found" in err
    assert "no certificate: give --ca, --cert and --key" in _fails(["examples/app.py:app"], capsys)
    assert "no key file" in _fails(["examples/app.py:app", *tls[:4]], capsys)


def test_bad_config_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "node.toml"
    for text, expected in (
        ("listen = ", "not valid TOML"),
        ("[limits]\nmax_peer = 2", "limits.max_peer: unknown key"),
        ("[quic]\nretry = 'yes'", "quic.retry: expected bool, got str"),
        ("[backoff]\njitter = 2", "backoff: need base > 0"),
    ):
        config.write_text(text, encoding="utf-8")
        assert f"{config}: {expected}" in _fails(
            ["examples/app.py:app", "--config", str(config)], capsys
        )
    missing = str(tmp_path / "none.toml")
    assert f"{missing}: config file not found" in _fails(["x:app", "--config", missing], capsys)


def test_bad_variables(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("QRPC_AUTOLOAD_PLUGINS", "maybe")
    assert "QRPC_AUTOLOAD_PLUGINS: must be 1/true/yes" in _fails(["x:app"], capsys)
    monkeypatch.delenv("QRPC_AUTOLOAD_PLUGINS")
    monkeypatch.setenv("QRPC_CONFIG", "/nonexistent/qrpc.toml")
    assert "/nonexistent/qrpc.toml: config file not found" in _fails(["x:app"], capsys)


def test_a_ready_made_node_refuses_other_settings(
    files: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    target = f"{files['targets']}:node"
    err = _fails([target, "--listen", "127.0.0.1:0"], capsys)
    assert "--listen cannot change target" in err
    assert "expose a qrpc.App" in err
    assert "--ca cannot change" in _fails([target, "--ca", str(files["ca"])], capsys)
    config = tmp_path / "n.toml"
    config.write_text("[limits]\nmax_peers = 2\n", encoding="utf-8")
    assert f"{config}: limits.max_peers cannot" in _fails([target, "--config", str(config)], capsys)
    err = _fails([f"{files['targets']}:closed_node"], capsys)
    assert "closed_node': a closed node cannot be restarted" in err
    monkeypatch.setenv("QRPC_LISTEN", "127.0.0.1:0")
    assert "QRPC_LISTEN cannot change" in _fails([f"{files['targets']}:make_node"], capsys)


def test_an_async_app_factory_is_built_from_the_settings(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    # the factory ran and its App got a node: only binding fails (a port that is taken)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        target = f"{files['targets']}:make_app"
        err = _fails([target, "--listen", f"127.0.0.1:{port}", *_tls_args(files)], capsys)
    assert "cannot bind" in err
    assert str(port) in err
