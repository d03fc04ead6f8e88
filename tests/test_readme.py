"""The README's quick start works as written: two processes, in either order, every time."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
ROUNDS = 20
PEER_ID = r"[0-9a-z]{26}"


def _quick_start() -> tuple[str, list[str]]:
    """The quick start's program and its certificate command, from the README."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Quick start") : text.index("## What you get")]
    program = re.search(r"```python\n(.*?)```", section, re.S)
    command = re.search(r"`(qrpc certs [^`]+)`", section)
    if program is None or command is None:
        pytest.fail("the README's quick start lost its program or its certificate command")
    return program.group(1), command.group(1).split()[1:]


def _free_base() -> int:
    """A port base such that base + 1 and base + 2 are free UDP ports on 127.0.0.1."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            base = int(probe.getsockname()[1]) - 1
        try:
            for port in (base + 1, base + 2):
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    pytest.fail("no two adjacent free UDP ports on 127.0.0.1")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    program, certs = _quick_start()
    assert "20000 + me" in program
    assert "20000 + other" in program
    base = _free_base()
    program = program.replace("20000 + me", f"{base} + me").replace(
        "20000 + other", f"{base} + other"
    )
    (tmp_path / "quickstart.py").write_text(program, encoding="utf-8")
    subprocess.run(
        [sys.executable, "-m", "qrpc", *certs], cwd=tmp_path, check=True, capture_output=True
    )
    return tmp_path


def _start(project: Path, me: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "quickstart.py", str(me)],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_the_quick_start_runs_as_two_processes_in_either_order(project: Path) -> None:
    for round_ in range(ROUNDS):
        order = (1, 2) if round_ % 2 == 0 else (2, 1)
        procs = {me: _start(project, me) for me in order}
        try:
            out2, err2 = procs[2].communicate(timeout=60)
            procs[1].send_signal(signal.SIGTERM)
            out1, err1 = procs[1].communicate(timeout=5)
        finally:
            for proc in procs.values():
                proc.kill()
                proc.wait(timeout=5)
        where = f"round {round_ + 1}, started {order}"
        assert (procs[2].returncode, procs[1].returncode) == (0, 0), (where, err2, err1)
        assert "Traceback" not in err1 + err2, where
        lines = out2.splitlines()
        assert len(lines) == 2, (where, out2)
        assert re.fullmatch(rf"Pong\(text='hello {PEER_ID}'\)", lines[0]), (where, out2)
        assert lines[1] == "broadcast queued to 1 peer(s)", (where, out2)
        said = [re.sub(PEER_ID, "<id>", line) for line in out1.splitlines()]
        assert said == ["<id> says 'one-way'", "<id> says 'rpc'", "<id> says 'to all'"], where
