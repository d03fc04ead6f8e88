"""Smoke test of the benchmark suite: the machinery runs and the JSON has its shape.

Runs ``python -m benchmarks --smoke`` in-process (worker processes are
real, every run is tiny) and checks the result document.  It never
asserts a timing: benchmarks are not tests (``benchmarks/README.md``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from benchmarks.__main__ import main

pytestmark = pytest.mark.timeout(60)
Doc = dict[str, Any]

TRANSPORT_KEYS = (
    "throughput_100b_msgs",
    "throughput_64k_mbps",
    "rtt_p50_us",
    "rtt_p99_us",
    "connect_ms",
)


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@pytest.fixture(scope="module")
def doc(tmp_path_factory: pytest.TempPathFactory) -> Doc:
    out = tmp_path_factory.mktemp("bench")
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("PYTHONASYNCIODEBUG", raising=False)  # workers in debug mode would crawl
        code = main(
            [
                "--smoke",
                "--out",
                str(out),
                "--only",
                "codecs,wire,hooks,transport,peers",
                "--contender",
                "raw_aioquic",
                "--contender",
                "qrpc_node",
                "--spokes",
                "2",
                "--no-chart",
                "--no-pin",
            ]
        )
    assert code == 0
    document: Doc = json.loads((out / "latest.json").read_text(encoding="utf-8"))
    document["_out"] = str(out)
    return document


def test_outputs_written(doc: Doc) -> None:
    out = Path(doc["_out"])
    assert (out / "latest.txt").read_text(encoding="utf-8").startswith("qrpc benchmarks (smoke)")
    assert list(out.glob("run-*.json"))


def test_env_records_versions(doc: Doc) -> None:
    env = doc["env"]
    assert env["python"].count(".") == 2
    packages = env["packages"]
    for name in ("qrpc", "aioquic", "msgspec", "cryptography"):
        assert packages[name], name
    assert {"orjson", "ormsgpack", "grpcio", "pyzmq", "matplotlib"} <= set(packages)
    assert env["all_packages"]["msgspec"] == packages["msgspec"]


def test_transport_ratios(doc: Doc) -> None:
    transport = doc["transport"]
    assert transport["knobs"] == "dgram=1200"
    for key in TRANSPORT_KEYS:
        entry = transport[key]
        assert _number(entry["qrpc"]), key
        assert _number(entry["raw_aioquic"]), key
        assert entry["ratio"] == pytest.approx(entry["qrpc"] / entry["raw_aioquic"])
        assert entry["runs"]["qrpc"]
        assert entry["raw_aioquic_batched"] is None  # not selected: no ratio invented
        assert entry["ratio_batched"] is None
    assert transport["throughput_100b_msgs"]["target"] == ">= 0.8"
    assert isinstance(transport["throughput_100b_msgs"]["meets_target"], bool)
    assert set(doc["tuning"]) == {"dgram=1200"}
    assert doc["settings"]["knobs"][0]["max_datagram_size"] == 1200
    names = [t["name"] for t in doc["targets"]]
    assert any(n.startswith("rtt_p50_us: qrpc / raw_aioquic ") for n in names)


def test_peers_and_resources(doc: Doc) -> None:
    entry = doc["peers"]["broadcast_1k_20_ms"]
    assert _number(entry["qrpc"])
    assert _number(entry["ratio"])
    assert doc["peers"]["receivers"] == 2
    for group in doc["rss_mib"].values():
        for roles in group.values():
            assert all(_number(mib) and mib > 0 for mib in roles.values())
    assert doc["cpu"]["dgram=1200"]["qrpc"]["rtt"]


def test_codecs_wire_hooks(doc: Doc) -> None:
    codecs = doc["codecs"]
    assert set(codecs) == {"typical", "large", "blob"}
    msgpack = codecs["typical"]["qrpc:msgpack"]
    for key in ("encode_ops", "decode_ops", "size", "vs"):
        assert _number(msgpack[key]), key
    assert msgpack["size"] == 164
    assert "skipped" in codecs["typical"]["qrpc:raw"]  # raw carries one bytes field only
    assert _number(codecs["blob"]["qrpc:raw"]["encode_ops"])
    assert "stdlib:json" in codecs["large"]
    assert "stdlib:pickle" in codecs["large"]
    assert all(_number(r["ns_per_frame"]) for r in doc["wire"].values())
    assert doc["hooks"]["messages"]["no plugin"]["ratio"] == pytest.approx(1.0)


def test_contender_modules_share_one_interface() -> None:
    from benchmarks.bench_transport import runner

    for name in (*runner.CONTENDERS, *runner.ALTERNATIVES):
        module = runner.load_contender(name)
        if isinstance(module, str):  # optional library missing: reported, not raised
            continue
        assert isinstance(module.label, str)
        assert isinstance(module.notes, str)
        assert module.metrics
        assert callable(module.setup)
    assert runner.load_contender("no_such_contender").startswith("not installed")


@pytest.mark.parametrize(
    ("name", "package", "extra", "roles"),
    [
        ("nats", "nats", "nats-py", {"server", "client", "broker"}),
        ("zenoh", "zenoh", "eclipse-zenoh", {"server", "client"}),
        ("zenoh_tls", "zenoh", "eclipse-zenoh", {"server", "client"}),
    ],
)
def test_a_peer_runs_next_to_qrpc(
    tmp_path: Path, name: str, package: str, extra: str, roles: set[str]
) -> None:
    """NATS (through its broker) and Zenoh (peer to peer), when their extras are
    installed, run in the same run as qrpc, with ratios, CPU and memory per role."""
    pytest.importorskip(package, reason=f"{extra} not installed (extra bench-alternatives)")
    from benchmarks.bench_transport import runner

    module = runner.load_contender(name)
    if isinstance(module, str):
        pytest.skip(f"{name} contender unavailable: {module}")
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("PYTHONASYNCIODEBUG", raising=False)
        code = main(
            [
                *("--smoke", "--out", str(tmp_path), "--only", "transport"),
                *("--contender", "qrpc_node", "--contender", name),
                *("--metric", "throughput_100b", "--metric", "rtt", "--metric", "connect"),
                "--no-chart",
                "--no-pin",
            ]
        )
    assert code == 0
    doc: Doc = json.loads((tmp_path / "latest.json").read_text(encoding="utf-8"))
    metrics = doc["alternatives"][name]["metrics"]
    for key in ("throughput_100b_msgs", "rtt_p50_us", "rtt_p99_us", "connect_ms"):
        assert _number(metrics[key]["value"]), key
        assert metrics[key]["qrpc_ratio"] == pytest.approx(
            metrics[key]["qrpc"] / metrics[key]["value"]
        )
    assert set(doc["cpu"]["dgram=1200"][name]["rtt"]) == roles
    assert set(doc["cpu"]["dgram=1200"]["qrpc"]["rtt"]) == {"server", "client"}
    assert all(doc["rss_mib"]["dgram=1200"][name][role] > 0 for role in roles - {"client"})
    assert f"q/{name}" in (tmp_path / "latest.txt").read_text(encoding="utf-8")


def test_raw_framing_matches_qrpc() -> None:
    from benchmarks.bench_transport._common import HEADER, FrameParser, frame

    from qrpc.wire import FrameDecoder, FrameKind, encode_frame
    from qrpc.wire.frames import HEADER as QRPC_HEADER

    assert HEADER.format == QRPC_HEADER.format
    assert frame(2, 1, 0, b"body") == encode_frame(FrameKind.MESSAGE, b"body", cmd_id=1)
    stream = frame(2, 1, 0, b"x" * 300) * 5
    seen: list[bytes] = []
    parser = FrameParser(lambda kind, cmd_id, request_id, body: seen.append(bytes(body)))
    decoder = FrameDecoder()
    expected = []
    for i in range(0, len(stream), 7):
        parser.feed(stream[i : i + 7])
        decoder.feed(stream[i : i + 7])
        while (f := decoder.next_frame()) is not None:
            expected.append(f.body)
    assert seen == expected == [b"x" * 300] * 5


def _veth_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Doc:
    monkeypatch.delenv("PYTHONASYNCIODEBUG", raising=False)
    argv = ["--smoke", "--out", str(tmp_path), "--only", "transport", "--no-chart"]
    argv += ["--contender", "raw_aioquic", "--contender", "qrpc_node", "--metric", "throughput_64k"]
    assert main([*argv, "--knobs", "dgram=auto,veth=1500"]) == 0
    document: Doc = json.loads((tmp_path / "latest.json").read_text(encoding="utf-8"))
    return document


def test_a_veth_run_crosses_a_1500_byte_link_at_the_size_it_carries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from benchmarks.bench_transport import netns

    if (reason := netns.unavailable()) is not None:
        pytest.skip(reason)
    doc = _veth_run(tmp_path, monkeypatch)
    states = doc["congestion"]["dgram=auto,veth=1500"]
    assert {s["datagram"] for s in states["qrpc"]["throughput_64k"]} == {1500 - 28}  # discovered
    assert {s["datagram"] for s in states["raw_aioquic"]["throughput_64k"]} == {1500 - 28}
    assert _number(doc["transport"]["throughput_64k_mbps"]["qrpc"])
    assert not (Path("/run/netns") / netns.NAMES[0]).exists()  # removed after the run


def test_a_veth_run_without_root_is_skipped_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    doc = _veth_run(tmp_path, monkeypatch)
    report = (tmp_path / "latest.txt").read_text(encoding="utf-8")
    assert "network namespaces need root" in report
    assert set(doc.get("transport", {})) <= {"knobs"}  # nothing was measured
    assert doc["skipped"]["dgram=auto,veth=1500"]["qrpc"].startswith("network namespaces need root")
