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
        assert isinstance(ops := record["encode_ops"], float)
        assert ops > 0
        assert isinstance(size := record["size"], int)
        assert size > 0


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
    assert isinstance(small := sizes[f"{messages}:Empty"], int)
    assert isinstance(large := sizes[f"{messages}:sample"], int)
    assert large > small


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


def test_transport_measures_qrpc_between_two_processes(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PYTHONASYNCIODEBUG", raising=False)  # the server process would crawl
    argv = ["bench", "transport", "--json", "--runs", "1", "--duration", "0.1"]
    assert main([*argv, "--metric", "throughput_64k", "--metric", "rtt", "--dgram", "1200"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["quic"] == {"max_datagram_size": 1200, "path_mtu_discovery": False}
    assert set(doc["figures"]) == {"throughput_64k_mbps", "rtt_p50_us", "rtt_p99_us"}
    assert all(len(series) == 1 and series[0] > 0 for series in doc["values"].values())
    assert doc["figures"]["rtt_p50_us"]["median"] <= doc["figures"]["rtt_p99_us"]["median"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--dgram", "900"], "'900': give auto or a size from 1200 to 16383"),
        (["--runs", "0"], "'0': give a whole number of at least 1"),
        (["--metric", "speed"], "invalid choice: 'speed'"),
    ],
)
def test_transport_mistakes_print_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], args: list[str], expected: str
) -> None:
    assert main(["bench", "transport", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("qrpc: ")
    assert expected in err
    assert err.count("\n") == 1
