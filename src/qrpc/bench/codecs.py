"""Codec speed and size: ``qrpc bench codecs``, every installed codec and the usual rivals.

A codec author runs it on their own codec and their own Structs::

    qrpc bench codecs --codec cbor --codec msgpack --struct myapp.messages:sample_order

Contenders: every codec `qrpc_codecs.available_codecs()` knows -- the
built-in ones and those installed plugins publish in the ``qrpc.codecs``
entry-point group -- (``qrpc:NAME``; typed: Struct in, Struct out,
validated), stdlib ``json`` and ``pickle``, and ``orjson`` / ``ormsgpack``
when installed.  json, orjson and ormsgpack encode the equivalent plain dict
and decode to a dict: they skip the Struct conversion and the validation the
typed codecs do, which flatters them (the table says so).  ``pickle``
round-trips the Struct itself.  Every contender's round trip is checked once
before it is timed (`qrpc.bench.timing`).
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import msgspec

from qrpc.bench.messages import SIZES
from qrpc.bench.timing import format_table, stat, time_per_call
from qrpc_codecs import CodecError, available_codecs, get_codec

__all__ = ["Case", "Unsupported", "cases", "measure", "run", "table"]


@dataclass(frozen=True)
class Case:
    """One codec ready to time on one message."""

    name: str
    encode: Callable[[Any], bytes]
    decode: Callable[[bytes], Any]
    value: Any
    """What `encode` is given (the Struct, or its plain-dict form)."""
    expected: Any
    """What `decode` must return (checked once before timing)."""
    notes: str = ""


@dataclass(frozen=True)
class Unsupported:
    """A codec that cannot carry this message type."""

    name: str
    reason: str


def cases(message: msgspec.Struct, only: Sequence[str] = ()) -> list[Case | Unsupported]:
    """Every contender for `message`; `only` keeps the named ones."""
    out: list[Case | Unsupported] = []
    for codec_name in available_codecs():
        name = f"qrpc:{codec_name}"
        try:
            codec = get_codec(codec_name)
            decode = codec.decoder(type(message))
        except CodecError as exc:
            out.append(Unsupported(name, str(exc)))
            continue
        notes = "typed, bytes passed through" if codec_name == "raw" else "typed, validated"
        out.append(Case(name, codec.encode, decode, message, message, notes))
    as_json = msgspec.to_builtins(message)  # bytes become base64 strings
    out.append(
        Case(
            "stdlib:json",
            _json_dumps,
            json.loads,
            as_json,
            as_json,
            "dict in/out, bytes as base64, no validation",
        )
    )
    out.append(
        Case(
            "stdlib:pickle",
            partial(pickle.dumps, protocol=pickle.HIGHEST_PROTOCOL),
            pickle.loads,
            message,
            message,
            "Struct in/out, unsafe on untrusted input",
        )
    )
    try:
        import orjson  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        out.append(Unsupported("orjson", "not installed"))
    else:
        out.append(
            Case(
                "orjson",
                orjson.dumps,
                orjson.loads,
                as_json,
                as_json,
                "dict in/out, bytes as base64, no validation",
            )
        )
    try:
        import ormsgpack  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        out.append(Unsupported("ormsgpack", "not installed"))
    else:
        as_msgpack = msgspec.to_builtins(message, builtin_types=(bytes,))
        out.append(
            Case(
                "ormsgpack",
                ormsgpack.packb,
                ormsgpack.unpackb,
                as_msgpack,
                as_msgpack,
                "dict in/out, no validation",
            )
        )
    if only:
        wanted = set(only)
        out = [c for c in out if c.name in wanted or c.name.removeprefix("qrpc:") in wanted]
    return out


def _json_dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def measure(case: Case, *, min_time: float, repeat: int) -> dict[str, Any]:
    """Time one case; return its result record."""
    data = case.encode(case.value)
    if case.decode(data) != case.expected:
        raise AssertionError(f"{case.name}: round trip changed the message")
    encode = stat(
        [t * 1e9 for t in time_per_call(case.encode, case.value, min_time=min_time, repeat=repeat)]
    )
    decode = stat(
        [t * 1e9 for t in time_per_call(case.decode, data, min_time=min_time, repeat=repeat)]
    )
    return {
        "encode_ns": encode["median"],
        "decode_ns": decode["median"],
        "roundtrip_ns": encode["median"] + decode["median"],
        "encode_ops": 1e9 / encode["median"],
        "decode_ops": 1e9 / decode["median"],
        "size": len(data),
        "encode_spread": encode["spread"],
        "decode_spread": decode["spread"],
        "notes": case.notes,
    }


def run(
    messages: Mapping[str, msgspec.Struct] | None = None,
    codecs: Sequence[str] = (),
    *,
    min_time: float = 0.2,
    repeat: int = 7,
    baseline: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, dict[str, dict[str, Any]]]:
    """Time `codecs` (default: every one) on each of `messages` (default: the
    built-in ones, `SIZES`); return ``{message name: {codec: record}}``.

    Each record has encode/decode ns and ops/s, the encoded size, spreads, a
    ``vs`` ratio (round-trip time over the best's, or over `baseline`'s) and
    notes; a codec that cannot carry the message gets only ``{"skipped": reason}``.

    Raises:
        AssertionError: a codec's round trip changed a message.
    """
    if messages is None:
        messages = {name: make() for name, make in SIZES.items()}
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for label, message in messages.items():
        records: dict[str, dict[str, Any]] = {}
        for case in cases(message, codecs):
            if isinstance(case, Unsupported):
                records[case.name] = {"skipped": case.reason}
                continue
            if progress is not None:
                progress(f"codecs: {label} {case.name}")
            records[case.name] = measure(case, min_time=min_time, repeat=repeat)
        timed = {k: v for k, v in records.items() if "roundtrip_ns" in v}
        if timed:
            reference = (
                timed[baseline]["roundtrip_ns"]
                if baseline in timed
                else min(v["roundtrip_ns"] for v in timed.values())
            )
            for record in timed.values():
                record["vs"] = record["roundtrip_ns"] / reference
        results[label] = records
    return results


def table(results: dict[str, dict[str, dict[str, Any]]]) -> str:
    """The human-readable table, sorted by round-trip time within each size."""
    blocks = []
    for size, records in results.items():
        timed = sorted(
            ((k, v) for k, v in records.items() if "roundtrip_ns" in v),
            key=lambda kv: kv[1]["roundtrip_ns"],
        )
        rows: list[list[object]] = [
            [
                name,
                r["encode_ops"],
                r["decode_ops"],
                r["roundtrip_ns"] / 1000,
                f"{r['vs']:.2f}x",
                r["size"],
                f"±{max(r['encode_spread'], r['decode_spread']) * 50:.0f}%",
                r["notes"],
            ]
            for name, r in timed
        ]
        rows += [
            [name, None, None, None, "", None, "", f"skipped: {r['skipped']}"]
            for name, r in records.items()
            if "skipped" in r
        ]
        blocks.append(
            format_table(
                [
                    "codec",
                    "encode/s",
                    "decode/s",
                    "round trip µs",
                    "vs",
                    "bytes",
                    "spread",
                    "notes",
                ],
                rows,
                title=f"Codecs, {size} message" if size in SIZES else f"Codecs, {size}",
            )
        )
    return "\n\n".join(blocks)
