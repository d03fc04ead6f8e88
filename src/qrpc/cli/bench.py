"""``qrpc bench``: codecs on your own Structs, and qrpc between two local processes.

::

    qrpc bench codecs                                   # every codec, built-in messages
    qrpc bench codecs --codec cbor --codec msgpack      # a plugin's codec next to msgpack
    qrpc bench codecs --struct myapp.messages:sample    # on your own message
    qrpc bench codecs --json > codecs.jsonl             # one JSON object per line
    qrpc bench transport                                # throughput, round trip, connect
    qrpc bench transport --metric rtt --dgram 1200      # fixed 1200-byte datagrams

A ``--struct`` target names a msgspec Struct instance, or a function or a
Struct class that makes one without arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Final

import msgspec

from qrpc.bench import transport
from qrpc.bench.codecs import run, table
from qrpc.bench.messages import SIZES
from qrpc.bench.timing import format_table, stat
from qrpc.cli._common import UsageError, argument_type
from qrpc.config import MAX_DATAGRAM_SIZE, QuicSettings
from qrpc.targets import TargetError, load_target
from qrpc_codecs import available_codecs

__all__ = ["add_commands"]

_RIVALS = ("stdlib:json", "stdlib:pickle", "orjson", "ormsgpack")


def _messages(args: argparse.Namespace) -> dict[str, msgspec.Struct]:
    if not args.struct:
        sizes = list(SIZES) if args.size == "all" else [args.size]
        return {name: SIZES[name]() for name in sizes}
    messages = {}
    for spec in args.struct:
        messages[spec] = _message(spec)
    return messages


def _message(spec: str) -> msgspec.Struct:
    try:
        target = load_target(spec)
    except TargetError as exc:
        raise UsageError(f"--struct {exc}") from None
    if isinstance(target, msgspec.Struct):
        return target
    if not callable(target):
        raise UsageError(
            f"--struct {spec}: {type(target).__name__} is not a msgspec Struct; name a Struct "
            "instance, or a function or Struct class that makes one without arguments"
        )
    try:
        made = target()
    except TypeError as exc:
        raise UsageError(
            f"--struct {spec}: cannot make a message without arguments ({exc}); name an "
            "instance, or a function that returns one"
        ) from None
    if not isinstance(made, msgspec.Struct):
        raise UsageError(
            f"--struct {spec}: it made a {type(made).__name__}, not a msgspec Struct instance"
        )
    return made


def _check_codecs(names: list[str]) -> None:
    known = {f"qrpc:{name}" for name in available_codecs()} | set(_RIVALS)
    for name in names:
        if name not in known and f"qrpc:{name}" not in known:
            choices = ", ".join(sorted(n.removeprefix("qrpc:") for n in known))
            raise UsageError(
                f"--codec {name}: no such codec (installed: {choices}; a plugin's codec "
                "appears once its package is installed)"
            )


def _codecs(args: argparse.Namespace) -> int:
    _check_codecs(args.codec)
    messages = _messages(args)
    min_time, repeat = (0.05, 5) if args.quick else (0.2, 7)
    try:
        results = run(
            messages, args.codec, min_time=min_time, repeat=repeat, baseline=args.baseline
        )
    except AssertionError as exc:  # a codec that does not give back what it was given
        print(f"qrpc: {exc}", file=sys.stderr)
        return 1
    if args.json:
        for label, records in results.items():
            for name, record in records.items():
                print(json.dumps({"message": label, "codec": name, **record}))
    else:
        print(table(results))
    return 0


_UNITS: Final = {
    "throughput_100b_msgs": "msg/s",
    "throughput_64k_mbps": "MB/s",
    "rtt_p50_us": "µs",
    "rtt_p99_us": "µs",
    "connect_ms": "ms",
}


def _datagram(text: str) -> int | None:
    if text == "auto":
        return None
    if not text.isdigit() or not 1200 <= int(text) <= MAX_DATAGRAM_SIZE:
        raise ValueError(f"{text!r}: give auto or a size from 1200 to {MAX_DATAGRAM_SIZE}")
    return int(text)


def _transport(args: argparse.Namespace) -> int:
    if args.dgram is None:
        quic = QuicSettings()
    else:
        quic = QuicSettings(max_datagram_size=args.dgram, path_mtu_discovery=False)
    values = transport.run(
        args.metric or transport.METRICS, quic=quic, runs=args.runs, duration=args.duration
    )
    figures = {key: stat(series) for key, series in values.items()}
    if args.json:
        print(
            json.dumps(
                {
                    "quic": {
                        "max_datagram_size": quic.max_datagram_size,
                        "path_mtu_discovery": quic.path_mtu_discovery,
                    },
                    "figures": figures,
                    "values": values,
                }
            )
        )
        return 0
    rows = [
        [key, _UNITS[key], fig["median"], fig["min"], fig["max"]] for key, fig in figures.items()
    ]
    size = "discovered" if args.dgram is None else f"{args.dgram} bytes"
    title = f"qrpc between two processes on 127.0.0.1 (datagrams: {size}; median of {args.runs})"
    print(format_table(["figure", "unit", "median", "min", "max"], rows, title=title))
    return 0


def add_commands(commands: Any) -> None:
    """Add ``bench`` (``bench codecs``, ``bench transport``) to the ``qrpc`` subcommands."""
    bench = commands.add_parser("bench", help="benchmarks shipped with qrpc: codecs, transport")
    kinds = bench.add_subparsers(dest="kind", required=True, metavar="{codecs,transport}")
    codecs = kinds.add_parser(
        "codecs",
        help="encode/decode speed and size of every codec",
        description="Encode and decode operations per second, round-trip time and encoded "
        "size of every installed codec and of stdlib json, pickle, orjson and ormsgpack.",
    )
    codecs.add_argument(
        "--codec",
        action="append",
        default=[],
        metavar="NAME",
        help="only this codec (repeatable): msgpack, json, a plugin's (cbor), stdlib:json, "
        "stdlib:pickle, orjson, ormsgpack",
    )
    codecs.add_argument(
        "--struct",
        action="append",
        default=[],
        metavar="TARGET",
        help="time this message instead of the built-in ones (repeatable): module:attr or "
        "file.py:attr naming a Struct instance, or a function or Struct class making one",
    )
    codecs.add_argument(
        "--size",
        choices=[*SIZES, "all"],
        default="all",
        help="which built-in messages to time without --struct (default: all)",
    )
    codecs.add_argument("--baseline", metavar="NAME", help="ratios against this codec")
    codecs.add_argument("--quick", action="store_true", help="shorter timing loops")
    codecs.add_argument("--json", action="store_true", help="one JSON object per line")
    codecs.set_defaults(run=_codecs)
    link = kinds.add_parser(
        "transport",
        help="qrpc between two local processes: throughput, round trip, connect",
        description="Two qrpc nodes in two processes on 127.0.0.1, mutual TLS: one-way "
        "throughput of 100 B and 64 KiB messages, request/reply latency, connection setup.",
    )
    link.add_argument(
        "--metric",
        action="append",
        default=[],
        choices=transport.METRICS,
        help="only this metric (repeatable; default: all)",
    )
    link.add_argument(
        "--dgram",
        type=argument_type(_datagram),
        default=None,
        metavar="auto|BYTES",
        help="datagram size: auto (path MTU discovery, the default) or a fixed size",
    )
    positive = argument_type(_positive)
    link.add_argument("--runs", type=positive, default=3, help="measured rounds (default: 3)")
    link.add_argument(
        "--duration", type=float, default=1.0, help="seconds per throughput run (default: 1)"
    )
    link.add_argument("--json", action="store_true", help="one JSON object: figures and values")
    link.set_defaults(run=_transport)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{text!r}: give a whole number of at least 1")
    return int(text)
