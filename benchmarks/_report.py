"""Turn raw measurements into the JSON document, the text tables and the PNG chart."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from qrpc.bench.timing import format_table, stat

__all__ = ["TARGETS", "assemble_transport", "chart", "tables"]

LABELS: Final = {
    "qrpc_node": "qrpc",
    "raw_aioquic": "raw_aioquic",
    "raw_aioquic_batched": "raw_aioquic_batched",
    "grpcio": "grpcio",
    "pyzmq": "pyzmq",
    "nats": "nats",
    "zenoh": "zenoh",
    "zenoh_tls": "zenoh_tls",
}
"""Contender module -> JSON key."""
UNITS: Final = {
    "throughput_100b_msgs": "msg/s",
    "throughput_64k_mbps": "MB/s",
    "rtt_p50_us": "µs",
    "rtt_p99_us": "µs",
    "connect_ms": "ms",
    "broadcast_1k_20_ms": "ms",
}
HIGHER_IS_BETTER: Final = frozenset({"throughput_100b_msgs", "throughput_64k_mbps"})
TARGETS: Final = {
    "throughput_100b_msgs": (">=", 0.8),
    "throughput_64k_mbps": (">=", 0.9),
    "rtt_p50_us": ("<=", 1.25),
}
"""qrpc's targets as ratios to raw aioquic (100 B and 64 KiB one-way at least 0.8x
and 0.9x, request/reply p50 at most 1.25x), measured together."""
DESCRIPTIONS: Final = {
    "throughput_100b_msgs": "one-way 100 B messages, handler per message",
    "throughput_64k_mbps": "one-way 64 KiB messages (MB = 10^6 bytes)",
    "rtt_p50_us": "request/reply 64 B, median",
    "rtt_p99_us": "request/reply 64 B, 99th percentile",
    "connect_ms": "connection setup, mutual TLS (raw: server cert only)",
    "broadcast_1k_20_ms": "1 KiB to 20 peers until all acknowledged",
}


def _median(values: Sequence[float] | None) -> float | None:
    return statistics.median(values) if values else None


BASELINES: Final = (("raw_aioquic", ""), ("raw_aioquic_batched", "_batched"))
"""The raw baselines (contender, suffix of its ratio/target fields in the JSON)."""


def compare(values: dict[str, dict[str, list[float]]], key: str) -> dict[str, Any]:
    """qrpc vs the raw baselines for one figure: medians, ratios, spreads, runs, targets.

    ``ratio`` is qrpc / raw aioquic (stock asyncio API), ``ratio_batched``
    qrpc / raw aioquic driven like qrpc's transport; ``meets_target`` and
    ``meets_target_batched`` check the target's bound against each.
    """
    qrpc = values.get("qrpc_node", {}).get(key)
    entry: dict[str, Any] = {
        "qrpc": _median(qrpc),
        "unit": UNITS[key],
        "better": "higher" if key in HIGHER_IS_BETTER else "lower",
    }
    spread: dict[str, float | None] = {"qrpc": stat(qrpc)["spread"] if qrpc else None}
    runs: dict[str, list[float]] = {"qrpc": qrpc or []}
    target = TARGETS.get(key)
    if target is not None:
        entry["target"] = f"{target[0]} {target[1]}"
    for baseline, suffix in BASELINES:
        raw = values.get(baseline, {}).get(key)
        entry[baseline] = _median(raw)
        ratio = None
        if entry["qrpc"] is not None and entry[baseline]:
            ratio = entry["qrpc"] / entry[baseline]
        entry["ratio" + suffix] = ratio
        spread[baseline] = stat(raw)["spread"] if raw else None
        runs[baseline] = raw or []
        if target is not None:
            op, bound = target
            entry["meets_target" + suffix] = (
                None if ratio is None else (ratio >= bound if op == ">=" else ratio <= bound)
            )
    entry["spread"] = spread
    entry["runs"] = runs
    return entry


def assemble_transport(
    doc: dict[str, Any],
    knob_sets: Sequence[Any],
    groups: dict[str, Any],
    broadcast: Any,
    skipped: dict[str, str],
    sections: Sequence[str],
) -> None:
    """Fill ``transport``, ``tuning``, ``peers``, ``alternatives``, ``targets``, ``rss_mib``."""
    from dataclasses import asdict

    from benchmarks.bench_transport import runner

    notes: dict[str, str] = {}
    for name in (*runner.CONTENDERS, *runner.ALTERNATIVES):
        module = runner.load_contender(name)
        notes[LABELS[name]] = module if isinstance(module, str) else module.notes
    doc["contenders"] = notes
    doc["rss_mib"] = {}
    doc["profiles"] = []
    tuning: dict[str, Any] = {}
    for knobs in knob_sets:
        group = groups.get(knobs.label)
        if group is None:
            continue
        keys = [k for k in UNITS if any(k in v for v in group.values.values())]
        tuning[knobs.label] = {
            "knobs": asdict(knobs),
            "metrics": {k: compare(group.values, k) for k in keys if k != "broadcast_1k_20_ms"},
        }
        doc["rss_mib"][knobs.label] = {LABELS[n]: r for n, r in group.rss_mib.items()}
        doc.setdefault("cpu", {})[knobs.label] = _cpu(group.cpu, ("server", "client", "broker"))
        doc.setdefault("congestion", {})[knobs.label] = {
            LABELS[n]: metrics for n, metrics in group.quic.items()
        }
        for name, metrics in group.quic.items():
            for metric, states in metrics.items():
                stuck = [s for s in states if unpaced(s)]
                if stuck:
                    cwnd = statistics.median(s["cwnd_kib"] for s in stuck) / 1024
                    doc.setdefault("congestion_notes", []).append(
                        f"{knobs.label} {metric} {LABELS[name]}: {len(stuck)}/{len(states)} runs "
                        f"ended in unpaced slow start (cwnd {cwnd:.0f} MiB, pacing off)"
                    )
        doc["profiles"] += group.profiles
        if group.skipped:
            doc.setdefault("skipped", {})[knobs.label] = {
                LABELS[n]: reason for n, reason in group.skipped.items()
            }
    if tuning:
        headline = next(iter(tuning))
        if "transport" in sections:
            doc["transport"] = dict(tuning[headline]["metrics"], knobs=headline)
            doc["tuning"] = tuning
    if broadcast is not None:
        doc["peers"] = {
            "broadcast_1k_20_ms": compare(broadcast.values, "broadcast_1k_20_ms"),
            "layout": "hub process + one process holding the receivers (2 CPUs)",
            "receivers": doc.get("settings", {}).get("spokes"),
            "knobs": knob_sets[0].label,
        }
        doc["rss_mib"]["broadcast"] = {LABELS[n]: r for n, r in broadcast.rss_mib.items()}
        doc.setdefault("cpu", {})["broadcast"] = _cpu(broadcast.cpu, ("hub", "spokes"))
        doc["profiles"] += broadcast.profiles
        skipped.update(broadcast.skipped)
    if "alternatives" in sections and tuning:
        headline_values = groups[next(iter(tuning))].values
        doc["alternatives"] = _alternatives(headline_values, skipped, notes)
    doc["targets"] = _targets(doc)


def unpaced(state: dict[str, float]) -> bool:
    """Whether a link never left slow start: huge cwnd, RTT at its floor, no pacing.

    On loopback aioquic's congestion state is bimodal (see docs/performance.md):
    such a link moves 64 KiB messages at about half the rate of a paced one,
    so its throughput is not comparable with a paced contender's.
    """
    return (
        state.get("cwnd_kib", 0) > 16 * 1024
        and state.get("pacing_us", 99) <= 1.5
        and state.get("srtt_ms", 99) <= 1.5
    )


def _cpu(
    cpu: dict[str, dict[str, list[list[float]]]], roles: tuple[str, ...]
) -> dict[str, dict[str, dict[str, float]]]:
    """Median CPU use (cores) of each role, per contender and metric (a broker only if any)."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    order = list(LABELS)
    for name, metrics in sorted(cpu.items(), key=lambda item: order.index(item[0])):
        out[LABELS[name]] = {
            metric: {
                role: round(statistics.median(run[index] for run in runs), 2)
                for index, role in enumerate(roles)
                if all(len(run) > index for run in runs)
            }
            for metric, runs in metrics.items()
        }
    return out


def _alternatives(
    values: dict[str, dict[str, list[float]]], skipped: dict[str, str], notes: dict[str, str]
) -> dict[str, Any]:
    from benchmarks.bench_transport import runner

    out: dict[str, Any] = {}
    qrpc = values.get("qrpc_node", {})
    for name in runner.ALTERNATIVES:
        if name in skipped:
            out[LABELS[name]] = {"skipped": skipped[name]}
            continue
        record = values.get(name)
        if record is None:
            continue
        metrics = {}
        for key, series in record.items():
            value = statistics.median(series)
            ours = _median(qrpc.get(key))
            metrics[key] = {
                "value": value,
                "spread": stat(series)["spread"],
                "runs": series,
                "qrpc": ours,
                "qrpc_ratio": None if ours is None or not value else ours / value,
                "qrpc_ahead": None
                if ours is None
                else (ours > value if key in HIGHER_IS_BETTER else ours < value),
            }
        out[LABELS[name]] = {"notes": notes[LABELS[name]], "metrics": metrics}
    return out


def _targets(doc: dict[str, Any]) -> list[dict[str, Any]]:
    targets = []
    transport = doc.get("transport", {})
    for key, (op, bound) in TARGETS.items():
        entry = transport.get(key)
        if entry is None:
            continue
        for baseline, suffix in BASELINES:
            if entry.get(baseline) is None:
                continue
            targets.append(
                {
                    "name": f"{key}: qrpc / {baseline} {op} {bound}",
                    "value": entry["ratio" + suffix],
                    "met": entry["meets_target" + suffix],
                }
            )
    grpcio = doc.get("alternatives", {}).get("grpcio", {})
    grpc = grpcio.get("metrics", {})
    for key in ("throughput_100b_msgs", "rtt_p50_us"):
        word = "above" if key in HIGHER_IS_BETTER else "below"
        entry = grpc.get(key)
        if entry is None:
            if "skipped" in grpcio:
                targets.append(
                    {
                        "name": f"{key}: qrpc {word} grpcio.aio (mutual TLS)",
                        "value": None,
                        "met": None,
                        "skipped": grpcio["skipped"],
                    }
                )
            continue
        targets.append(
            {
                "name": f"{key}: qrpc {word} grpcio.aio (mutual TLS)",
                "value": entry["qrpc_ratio"],
                "met": entry["qrpc_ahead"],
            }
        )
    return targets


# -- text -----------------------------------------------------------------------------


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _spread(entry: dict[str, Any]) -> str:
    parts = []
    for name in ("qrpc", "raw_aioquic", "raw_aioquic_batched"):
        value = entry["spread"].get(name)
        parts.append("-" if value is None else f"{value * 50:.0f}")
    return "±" + "/".join(parts) + "%"


def _met(value: bool | None) -> str:
    return "-" if value is None else ("MET" if value else "MISSED")


def _comparison_rows(metrics: dict[str, Any]) -> list[list[object]]:
    rows: list[list[object]] = []
    for key, entry in metrics.items():
        if not isinstance(entry, dict):
            continue
        met = ""
        if "target" in entry:
            met = "/".join(_met(entry.get("meets_target" + s)) for _, s in BASELINES)
        rows.append(
            [
                key,
                entry["unit"],
                entry["qrpc"],
                entry["raw_aioquic"],
                _ratio(entry["ratio"]),
                entry["raw_aioquic_batched"],
                _ratio(entry["ratio_batched"]),
                entry.get("target", ""),
                met,
                _spread(entry),
            ]
        )
    return rows


CPU_METRICS: Final = ("throughput_100b", "throughput_64k", "rtt", "connect", "broadcast")
HEADERS: Final = [
    "metric",
    "unit",
    "qrpc",
    "raw",
    "q/raw",
    "raw batched",
    "q/batched",
    "target",
    "met (raw/batched)",
    "spread q/r/b",
]


def tables(doc: dict[str, Any]) -> str:
    """Every section of `doc` as plain-text tables."""
    from benchmarks import bench_hooks, bench_wire
    from qrpc.bench import codecs

    env = doc["env"]
    packages = ", ".join(f"{k} {v}" for k, v in env["packages"].items() if v)
    out = [
        f"qrpc benchmarks ({doc['mode']}), Python {env['python']} on {env['cpu']} "
        f"x{env['cpu_count']}, {env['platform']}",
        f"packages: {packages}",
    ]
    settings = doc.get("settings")
    if settings:
        out.append(
            f"each figure: median of {settings['runs']} runs after {settings['warmup']} warm-up; "
            f"throughput runs {settings['duration']} s, {settings['rtt_count']} round trips, "
            f"{settings['connect_count']} connections; spread = ±half the range over the median"
        )
    if "transport" in doc:
        transport = doc["transport"]
        metrics = {k: v for k, v in transport.items() if isinstance(v, dict)}
        out += [
            "",
            format_table(
                HEADERS,
                _comparison_rows(metrics),
                title=f"Transport, {transport['knobs']} (ratios = qrpc / raw aioquic, same run)",
            ),
        ]
    if "tuning" in doc and len(doc["tuning"]) > 1:
        rows: list[list[object]] = []
        for label, block in doc["tuning"].items():
            for row in _comparison_rows(block["metrics"]):
                rows.append([label, *row])
        out += [
            "",
            format_table(
                ["QUIC knobs", *HEADERS],
                rows,
                title="Tuning: the same metrics per QUIC setting (same knobs for all)",
            ),
        ]
    for label, reasons in (doc.get("skipped") or {}).items():
        out += ["", f"Skipped in {label}:"]
        out += [f"  {name}: {reason}" for name, reason in reasons.items()]
    if doc.get("congestion_notes"):
        out += ["", "Congestion state (see docs/performance.md, 'aioquic on loopback'):"]
        out += [f"  {note}" for note in doc["congestion_notes"]]
    if "peers" in doc:
        entry = doc["peers"]["broadcast_1k_20_ms"]
        out += [
            "",
            format_table(
                HEADERS,
                _comparison_rows({"broadcast_1k_20_ms": entry}),
                title=f"Peers: broadcast to {doc['peers']['receivers']} receivers; "
                f"{doc['peers']['layout']}, {doc['peers']['knobs']}",
            ),
        ]
    if "alternatives" in doc:
        out += ["", _alternatives_table(doc)]
    if doc.get("targets"):
        rows = [
            [
                t["name"],
                _ratio(t["value"]),
                f"skipped: {t['skipped']}" if "skipped" in t else _met(t["met"]),
            ]
            for t in doc["targets"]
        ]
        out += [
            "",
            format_table(["target", "value", ""], rows, title="Targets (qrpc / raw aioquic)"),
        ]
    if doc.get("cpu"):
        rows = []
        for group, contenders in doc["cpu"].items():
            for name, metrics in contenders.items():
                cells = {
                    metric: "/".join(f"{v:.2f}" for v in roles.values())
                    for metric, roles in metrics.items()
                }
                rows.append([group, name, *(cells.get(m, "") for m in CPU_METRICS)])
        out += [
            "",
            format_table(
                ["run", "contender", *CPU_METRICS],
                rows,
                title="CPU busy per metric, cores (server/client[/broker]; hub/spokes), median",
            ),
        ]
    rows = [
        [group, name, *(f"{role} {mib:.0f}" for role, mib in roles.items())]
        for group, contenders in (doc.get("rss_mib") or {}).items()
        for name, roles in contenders.items()
    ]
    if rows:
        width = max(len(row) for row in rows)  # a broker adds a third role
        rows = [row + [""] * (width - len(row)) for row in rows]
        headers = ["run", "contender", "peak RSS MiB", *[""] * (width - 3)]
        out += ["", format_table(headers, rows, title="Memory")]
    if doc.get("contenders"):
        out += ["", "Contenders:"]
        out += [f"  {name}: {text}" for name, text in doc["contenders"].items()]
    if "codecs" in doc:
        out += ["", codecs.table(doc["codecs"])]
    if "wire" in doc:
        out += ["", bench_wire.table(doc["wire"])]
    if "hooks" in doc:
        out += ["", bench_hooks.table(doc["hooks"])]
    if doc.get("profiles"):
        out += ["", "Profiles:"] + [f"  {p}" for p in doc["profiles"]]
    out.append(f"\ntotal {doc.get('duration_s', 0):.0f} s")
    return "\n".join(out)


def _alternatives_table(doc: dict[str, Any]) -> str:
    alternatives = doc["alternatives"]
    transport: dict[str, Any] = doc.get("transport") or {}
    if not transport and doc.get("tuning"):
        transport = next(iter(doc["tuning"].values()))["metrics"]
    names = list(alternatives)
    keys = [k for k in UNITS if any(k in a.get("metrics", {}) for a in alternatives.values())]
    rows: list[list[object]] = []
    for key in keys:
        ours = transport.get(key, {}) if transport else {}
        cells: list[object] = []
        for name in names:
            entry = alternatives[name].get("metrics", {}).get(key, {})
            cells += [entry.get("value"), _ratio(entry.get("qrpc_ratio"))]
        rows.append(
            [
                key,
                UNITS[key],
                ours.get("qrpc"),
                ours.get("raw_aioquic"),
                ours.get("raw_aioquic_batched"),
                *cells,
            ]
        )
    notes = [
        f"  {name}: {alt.get('notes') or 'skipped: ' + alt.get('skipped', '')}"
        for name, alt in alternatives.items()
    ]
    knobs = str(doc.get("transport", {}).get("knobs") or next(iter(doc.get("tuning") or {}), ""))
    path = "veth pair MTU " + knobs.split("veth=")[1] if "veth=" in knobs else "loopback"
    title = (
        f"Alternatives, same run ({path}, qrpc {knobs}; grpcio, pyzmq and nats use TCP, "
        "zenoh QUIC, zenoh_tls TLS/TCP; q/X = qrpc / X: above 1 is more throughput, or slower)"
    )
    if not rows:
        return "\n".join([title, *notes])
    table = format_table(
        [
            "metric",
            "unit",
            "qrpc",
            "raw",
            "raw batched",
            *(c for n in names for c in (n, f"q/{n}")),
        ],
        rows,
        title=title,
    )
    return "\n".join([table, *notes])


# -- chart ------------------------------------------------------------------------------


def _short(value: float) -> str:
    if value >= 10_000:
        return f"{value / 1000:,.0f}k"
    return f"{value:,.0f}" if value >= 10 else f"{value:.2f}"


def chart(doc: dict[str, Any], path: Path) -> str | None:
    """Draw the PNG; return a note on what happened (None if there was nothing to draw)."""
    try:
        import matplotlib  # type: ignore[import-not-found,unused-ignore]

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return "chart skipped: matplotlib is not installed (pip install '.[bench]')"
    panels: list[tuple[str, list[str], list[dict[str, float | None]]]] = []
    tuning = doc.get("tuning", {})
    alternatives = doc.get("alternatives", {})
    for key, title in (
        ("throughput_100b_msgs", "100 B one-way, msg/s (higher is better, log scale)"),
        ("throughput_64k_mbps", "64 KiB one-way, MB/s (higher is better, log scale)"),
        ("rtt_p50_us", "request/reply p50, µs (lower is better)"),
    ):
        groups: list[str] = []
        series: list[dict[str, float | None]] = []
        for label, block in tuning.items():
            entry = block["metrics"].get(key)
            if entry is None:
                continue
            groups.append(label)
            series.append(
                {
                    "qrpc": entry["qrpc"],
                    "raw aioquic": entry["raw_aioquic"],
                    "raw batched": entry["raw_aioquic_batched"],
                }
            )
        for name, alt in alternatives.items():
            metric = alt.get("metrics", {}).get(key)
            if metric is not None:
                groups.append(name)
                series.append({name: metric["value"]})
        if groups:
            panels.append((title, groups, series))
    codecs = doc.get("codecs", {}).get("typical")
    if codecs:
        timed = sorted(
            ((k, v["roundtrip_ns"] / 1000) for k, v in codecs.items() if "roundtrip_ns" in v),
            key=lambda kv: kv[1],
        )
        panels.append(
            (
                "codecs, typical message: encode + decode µs (lower is better)",
                [k for k, _ in timed],
                [{"codec": v} for _, v in timed],
            )
        )
    if not panels:
        return None
    columns = 2
    rows = (len(panels) + 1) // 2
    figure, axes = plt.subplots(rows, columns, figsize=(13, 4.2 * rows), squeeze=False)
    colors = {
        "qrpc": "#1f77b4",
        "raw aioquic": "#ff7f0e",
        "raw batched": "#d62728",
        "codec": "#2ca02c",
    }
    for ax, (title, groups, series) in zip(axes.flat, panels, strict=False):
        positions = list(range(len(groups)))
        order = ["qrpc", "raw aioquic", "raw batched"]
        names = sorted(
            {n for s in series for n in s}, key=lambda n: (order.index(n) if n in order else 9, n)
        )
        width = 0.8 / max(1, max(len(s) for s in series))
        for pos, values in zip(positions, series, strict=True):
            present = [n for n in names if values.get(n) is not None]
            for offset, name in enumerate(present):
                x = pos - 0.4 + width * (offset + 0.5) if len(present) > 1 else pos
                value = values[name]
                assert value is not None
                ax.bar(x, value, width=width, color=colors.get(name, "#7f7f7f"), label=name)
                ax.annotate(
                    _short(value),
                    (x, value),
                    ha="center",
                    va="bottom",
                    fontsize=7,
                )
        ax.set_xticks(positions, groups, rotation=20, ha="right", fontsize=8)
        ax.set_title(title, fontsize=10)
        if "log scale" in title:
            ax.set_yscale("log")
        handles, labels = ax.get_legend_handles_labels()
        unique = dict(zip(labels, handles, strict=False))
        shown = {k: v for k, v in unique.items() if k in ("qrpc", "raw aioquic", "raw batched")}
        if shown:
            ax.legend(shown.values(), shown.keys(), fontsize=8)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    env = doc["env"]
    figure.suptitle(
        f"qrpc benchmarks ({doc['mode']}) -- Python {env['python']}, {env['cpu_count']} CPUs, "
        f"aioquic {env['packages'].get('aioquic')}",
        fontsize=11,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return f"chart written to {path}"
