"""``qrpc bench codecs``: a codec author times their codec on their own Structs."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from qrpc.cli import main

MESSAGES = """
    import msgspec


    class Order(msgspec.Struct):
        id: int
        items: list[str]
        note: str = ""


    class Empty(msgspec.Struct):
        note: str = "nothing"


    sample = Order(7, ["tea", "cake"], "by the window")


    def make_order():
        return Order(8, ["soup"])


    not_a_struct = {"id": 1}
"""


@pytest.fixture
def messages(tmp_path: Path) -> Path:
    path = tmp_path / "messages.py"
    path.write_text(textwrap.dedent(MESSAGES), encoding="utf-8")
    return path


def _lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_a_plugins_codec_runs_next_to_msgpack(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "codecs", "--quick", "--json", "--size", "typical"]
    assert main([*argv, "--codec", "cbor", "--codec", "msgpack"]) == 0
    records = {r["codec"]: r for r in _lines(capsys)}
    assert set(records) == {"qrpc:cbor", "qrpc:msgpack"}  # cbor: the qrpc-codec-cbor plugin
    for record in records.values():
        assert record["message"] == "typical"
        assert isinstance(record["encode_ops"], float) and record["encode_ops"] > 0
        assert isinstance(record["size"], int) and record["size"] > 0


def test_your_own_structs_are_timed_by_name(
    messages: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    targets = [f"{messages}:sample", f"{messages}:make_order", f"{messages}:Empty"]
    argv = ["bench", "codecs", "--quick", "--json", "--codec", "msgpack", "--codec", "json"]
    assert main([*argv, *(a for t in targets for a in ("--struct", t))]) == 0
    records = _lines(capsys)
    assert {(r["message"], r["codec"]) for r in records} == {
        (t, c) for t in targets for c in ("qrpc:msgpack", "qrpc:json")
    }
    sizes = {r["message"]: r["size"] for r in records if r["codec"] == "qrpc:msgpack"}
    assert sizes[f"{messages}:sample"] > sizes[f"{messages}:Empty"]


def test_the_table_names_each_message(messages: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "codecs", "--quick", "--codec", "msgpack", "--struct", f"{messages}:sample"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Codecs, {messages}:sample\n")
    assert "qrpc:msgpack" in out


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--codec", "nope"], "--codec nope: no such codec (installed: "),
        (["--struct", "no_such_module_here:x"], "no module named 'no_such_module_here'"),
        (["--struct", "{messages}:Order"], "cannot make a message without arguments"),
        (["--struct", "{messages}:not_a_struct"], "dict is not a msgspec Struct"),
        (["--size", "huge"], "argument --size: invalid choice: 'huge'"),
    ],
)
def test_mistakes_print_one_line_and_exit_2(
    messages: Path, capsys: pytest.CaptureFixture[str], args: list[str], expected: str
) -> None:
    argv = ["bench", "codecs", "--quick", *(a.format(messages=messages) for a in args)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("qrpc: ")
    assert expected in err
    assert err.count("\n") == 1
