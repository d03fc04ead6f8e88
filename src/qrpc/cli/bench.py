"""``qrpc bench codecs``: time every codec on the built-in messages or on your own Structs.

::

    qrpc bench codecs                                   # every codec, built-in messages
    qrpc bench codecs --codec cbor --codec msgpack      # a plugin's codec next to msgpack
    qrpc bench codecs --struct myapp.messages:sample    # on your own message
    qrpc bench codecs --json > codecs.jsonl             # one JSON object per line

A ``--struct`` target names a msgspec Struct instance, or a function or a
Struct class that makes one without arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import msgspec

from qrpc.bench.codecs import run, table
from qrpc.bench.messages import SIZES
from qrpc.cli._common import UsageError
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


def add_commands(commands: Any) -> None:
    """Add ``bench`` (``bench codecs``) to the ``qrpc`` subcommands."""
    bench = commands.add_parser("bench", help="benchmarks shipped with qrpc: bench codecs")
    kinds = bench.add_subparsers(dest="kind", required=True, metavar="{codecs}")
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
