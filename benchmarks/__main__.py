"""``python -m benchmarks``: codecs, framing, transport, peers and alternatives in one run.

    python -m benchmarks --quick --out benchmarks/results      # make bench (about a minute)
    python -m benchmarks --out benchmarks/results              # make bench-full
    python -m benchmarks --only transport --metric throughput_100b --runs 3
    python -m benchmarks --only transport --metric rtt --contender qrpc_node --profile

Writes ``latest.json``, ``latest.txt`` (the tables) and ``latest.png`` to
``--out``, plus a time-stamped copy of the JSON.  See ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, Final

__all__ = ["SECTIONS", "main", "parse_knobs"]

SECTIONS: Final = ("codecs", "wire", "hooks", "transport", "peers", "alternatives")
MiB: Final = 1024 * 1024

QUICK: Final[dict[str, Any]] = {
    "runs": 3,
    "warmup": 1,
    "duration": 0.4,
    "rtt_count": 600,
    "connect_count": 4,
    "broadcast_count": 10,
    "knobs": ["dgram=auto", "dgram=1200"],
    "codec_min_time": 0.03,
    "codec_repeat": 3,
    "hooks_count": 10_000,
    "hooks_repeat": 3,
}
SMOKE: Final[dict[str, Any]] = {
    "runs": 1,
    "warmup": 0,
    "duration": 0.05,
    "rtt_count": 20,
    "connect_count": 1,
    "broadcast_count": 2,
    "knobs": ["dgram=1200"],
    "codec_min_time": 0.001,
    "codec_repeat": 1,
    "hooks_count": 200,
    "hooks_repeat": 1,
}
FULL: Final[dict[str, Any]] = {
    "runs": 5,
    "warmup": 1,
    "duration": 2.0,
    "rtt_count": 5000,
    "connect_count": 20,
    "broadcast_count": 50,
    "knobs": ["dgram=auto", "dgram=1200"],
    "throughput_knobs": [
        "dgram=auto,veth=1500",  # across a real link (root only; skipped otherwise)
        "dgram=1200,veth=1500",
        "dgram=auto,veth=9000",
        "dgram=auto,data=1M,stream=1M",
        "dgram=auto,data=16M,stream=16M",
        "dgram=1200,cc=cubic",
    ],
    "codec_min_time": 0.2,
    "codec_repeat": 7,
    "hooks_count": 50_000,
    "hooks_repeat": 5,
}


def parse_knobs(text: str) -> Any:
    """``dgram=9000,data=16M,stream=16M,cc=cubic`` -> `QuicKnobs` (``dgram=auto``:
    qrpc's path MTU discovery)."""
    from benchmarks.bench_transport._common import QuicKnobs
    from qrpc.config import MAX_DATAGRAM_SIZE

    fields: dict[str, Any] = {}
    names = {
        "dgram": "max_datagram_size",
        "data": "max_data",
        "stream": "max_stream_data",
        "cc": "congestion_control",
        "veth": "veth_mtu",
    }
    for part in filter(None, text.split(",")):
        key, _, value = part.partition("=")
        if key not in names:
            raise argparse.ArgumentTypeError(f"unknown knob {key!r} (use {', '.join(names)})")
        if key == "cc":
            fields[names[key]] = value
        elif key == "dgram" and value == "auto":
            fields.update(max_datagram_size=MAX_DATAGRAM_SIZE, path_mtu_discovery=True)
        else:
            fields[names[key]] = _size(value)
    return QuicKnobs(**fields)


def _size(value: str) -> int:
    value = value.strip().upper()
    for suffix, factor in (("K", 1024), ("M", MiB), ("G", 1024 * MiB)):
        if value.endswith(suffix):
            return int(float(value[:-1]) * factor)
    return int(value)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="qrpc benchmarks: codecs, framing, transport vs raw aioquic, alternatives.",
    )
    parser.add_argument("--quick", action="store_true", help="about a minute (make bench)")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="check the machinery in seconds (tiny runs; the numbers mean nothing)",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("benchmarks/results"), help="output folder"
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        help=f"sections to run, comma-separated or repeated: {', '.join(SECTIONS)}",
    )
    parser.add_argument(
        "--metric",
        action="append",
        default=[],
        help="transport metrics: throughput_100b, throughput_64k, rtt, connect (repeatable)",
    )
    parser.add_argument(
        "--contender",
        action="append",
        default=[],
        help="transport contenders: raw_aioquic, raw_aioquic_batched, qrpc_node, grpcio, pyzmq, "
        "nats, zenoh, zenoh_tls (repeatable; naming an alternative also runs the alternatives "
        "section)",
    )
    parser.add_argument(
        "--knobs",
        action="append",
        default=[],
        type=parse_knobs,
        help="a QUIC setting set, e.g. dgram=9000,data=16M,stream=16M,cc=cubic (repeatable; "
        "the first is the headline)",
    )
    parser.add_argument("--runs", type=int, help="measured rounds per figure (median reported)")
    parser.add_argument("--warmup", type=int, help="discarded rounds first")
    parser.add_argument("--duration", type=float, help="seconds of sending per throughput run")
    parser.add_argument("--rtt-count", type=int, help="round trips per latency run")
    parser.add_argument("--connect-count", type=int, help="connections per setup run")
    parser.add_argument("--broadcast-count", type=int, help="broadcasts per peers run")
    parser.add_argument("--spokes", type=int, default=20, help="broadcast receivers")
    parser.add_argument(
        "--profile",
        nargs="?",
        const="pyspy",
        choices=["pyspy", "pyinstrument", "cprofile"],
        help="profile the worker processes during measured runs (files under OUT/profiles); "
        "default py-spy (sampling from outside), else pyinstrument, else cProfile",
    )
    parser.add_argument(
        "--qrpc-limit",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a qrpc.Limits field for the qrpc contender, e.g. inbound_window=1M",
    )
    parser.add_argument(
        "--raw-high-water",
        type=_size,
        help="raw aioquic sender: unacknowledged bytes before it waits (default: stream window)",
    )
    parser.add_argument(
        "--fresh-connections",
        action="store_true",
        help="a new connection for every throughput run (shows aioquic's bimodal congestion "
        "state; see docs/performance.md), instead of one conditioned connection per contender",
    )
    parser.add_argument("--json", action="store_true", help="print the JSON document, not tables")
    parser.add_argument("--no-chart", action="store_true", help="skip the PNG")
    parser.add_argument("--no-pin", action="store_true", help="do not pin server/client to CPUs")
    return parser


def _sections(only: Sequence[str]) -> list[str]:
    if not only:
        return list(SECTIONS)
    wanted = [s.strip() for item in only for s in item.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in SECTIONS]
    if unknown:
        raise SystemExit(f"unknown section(s) {unknown}; choose from {', '.join(SECTIONS)}")
    return [s for s in SECTIONS if s in wanted]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the selected benchmarks and write the results."""
    args = _parser().parse_args(argv)
    sections = _sections(args.only)
    mode = SMOKE if args.smoke else QUICK if args.quick else FULL
    from benchmarks import _report
    from benchmarks._util import environment

    started = time.monotonic()

    def log(line: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {line}", file=sys.stderr, flush=True)

    doc: dict[str, Any] = {
        "schema": "qrpc-bench/1",
        "mode": "smoke" if args.smoke else "quick" if args.quick else "full",
        "command": ["python", "-m", "benchmarks", *(sys.argv[1:] if argv is None else argv)],
        "sections": sections,
        "env": environment(),
    }
    if "codecs" in sections:
        from qrpc.bench import codecs

        log("codecs")
        doc["codecs"] = codecs.run(min_time=mode["codec_min_time"], repeat=mode["codec_repeat"])
    if "wire" in sections:
        from benchmarks import bench_wire

        log("wire")
        doc["wire"] = bench_wire.run(
            min_time=mode["codec_min_time"], repeat=max(3, mode["codec_repeat"] - 2)
        )
    if "hooks" in sections:
        from benchmarks import bench_hooks

        log("hooks")
        doc["hooks"] = bench_hooks.run(
            count=mode["hooks_count"], repeat=mode["hooks_repeat"], min_time=mode["codec_min_time"]
        )
    if {"transport", "peers", "alternatives"} & set(sections):
        _transport(args, sections, mode, doc, log)
    doc["duration_s"] = round(time.monotonic() - started, 1)
    text = _report.tables(doc)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (args.out / f"run-{stamp}.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    (args.out / "latest.txt").write_text(text + "\n", encoding="utf-8")
    if not args.no_chart:
        chart = _report.chart(doc, args.out / "latest.png")
        if chart is not None:
            log(chart)
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(text)
    log(f"wrote {args.out / 'latest.json'} and {args.out / 'latest.txt'}")
    return 0


def _transport(
    args: argparse.Namespace,
    sections: list[str],
    mode: dict[str, Any],
    doc: dict[str, Any],
    log: Any,
) -> None:
    from benchmarks import _report
    from benchmarks.bench_transport import runner

    knob_sets = args.knobs or [parse_knobs(k) for k in mode["knobs"]]
    throughput_only: set[str] = (
        set()
    )  # knob sets measured for throughput only (flow control, congestion)
    if not args.knobs:
        for text in mode.get("throughput_knobs", []):
            knob_sets.append(parse_knobs(text))
            throughput_only.add(knob_sets[-1].label)
    options: dict[str, Any] = {"spokes": args.spokes, "fresh_connections": args.fresh_connections}
    if args.raw_high_water:
        options["raw_high_water"] = args.raw_high_water
    if args.qrpc_limit:
        limits: dict[str, Any] = {}
        for item in args.qrpc_limit:
            name, _, value = item.partition("=")
            limits[name] = float(value) if name.endswith("timeout") else _size(value)
        options["qrpc_limits"] = limits
    settings = runner.Settings(
        runs=args.runs or mode["runs"],
        warmup=mode["warmup"] if args.warmup is None else args.warmup,
        duration=args.duration or mode["duration"],
        rtt_count=args.rtt_count or mode["rtt_count"],
        connect_count=args.connect_count or mode["connect_count"],
        broadcast_count=args.broadcast_count or mode["broadcast_count"],
        spokes=args.spokes,
        pin=not args.no_pin,
        profile=args.profile,
        out_dir=args.out,
        options=options,
        log=log,
    )
    quic_metrics = [m for m in runner.METRICS if m != "broadcast"]
    metrics = [m for m in (args.metric or quic_metrics) if m != "broadcast"]
    unknown = [m for m in args.metric if m not in runner.METRICS]
    if unknown:
        raise SystemExit(f"unknown metric(s) {unknown}; choose from {', '.join(runner.METRICS)}")
    if args.metric and "broadcast" not in args.metric and "peers" in sections:
        sections.remove("peers")
    if args.metric and not metrics:
        sections[:] = [s for s in sections if s not in ("transport", "alternatives")]
    wanted = set(args.contender)
    named_alternative = bool(wanted & set(runner.ALTERNATIVES))
    if named_alternative and "transport" in sections and "alternatives" not in sections:
        sections.append("alternatives")  # named explicitly: run with the headline knobs

    def chosen(names: Sequence[str]) -> list[str]:
        return [n for n in names if not wanted or n in wanted]

    doc["settings"] = {
        k: v for k, v in asdict(settings).items() if k not in ("log", "out_dir", "profile")
    }
    doc["settings"]["profile"] = settings.profile
    doc["settings"]["knobs"] = [asdict(k) | {"label": k.label} for k in knob_sets]
    doc["settings"]["metrics"] = metrics
    doc["settings"]["throughput_only_knobs"] = sorted(throughput_only)
    groups: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    with runner.cert_dir() as directory:
        certs = runner.make_certs(directory, spokes=args.spokes)
        for index, knobs in enumerate(knob_sets):
            contenders = chosen(runner.CONTENDERS) if "transport" in sections else []
            if index == 0 and "alternatives" in sections:
                contenders = chosen(runner.CONTENDERS) + chosen(runner.ALTERNATIVES)
            if not contenders:
                continue
            group_metrics = metrics
            if knobs.label in throughput_only:
                group_metrics = [m for m in metrics if m.startswith("throughput")]
                if not group_metrics:
                    continue
            if "transport" not in sections:  # alternatives only: the metrics they share
                group_metrics = [
                    m for m in metrics if m in ("throughput_100b", "throughput_64k", "rtt")
                ]
            log(f"transport {knobs.label}: {', '.join(contenders)}")
            groups[knobs.label] = runner.run_group(
                contenders, knobs, group_metrics, certs, settings
            )
            skipped.update(groups[knobs.label].skipped)
        broadcast = None
        if "peers" in sections:
            log(f"peers: broadcast of 1 KiB to {settings.spokes} receivers")
            broadcast = runner.run_broadcast(
                chosen(runner.CONTENDERS), knob_sets[0], certs, settings
            )
    _report.assemble_transport(doc, knob_sets, groups, broadcast, skipped, sections)


if __name__ == "__main__":
    sys.exit(main())
