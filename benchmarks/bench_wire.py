"""Framing alone, no sockets: `FrameDecoder`, `LinkProtocol` and frame encoding.

This separates a framing regression from a transport one (as websockets'
``experiments/optimization/parse_frames.py`` does).  Streams of frames are
fed in chunks the size QUIC hands them up with 1,200- and 9,000-byte
datagrams.  The raw contenders' minimal parser (no checks, no state) is
timed on the same input for reference.

    python -m benchmarks.bench_wire [--quick] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a plain script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_transport._common import FrameParser
from qrpc.bench.messages import PAYLOAD, make_payload
from qrpc.bench.timing import format_table, stat, time_per_call
from qrpc.wire import FrameDecoder, FrameKind, Hello, LinkProtocol, encode_frame
from qrpc.wire.hello import encode_hello

__all__ = ["main", "run", "table"]

FRAMES = 1000
"""Frames per timed batch."""
CHUNKS = {"1200": 1150, "9000": 8950}
"""Stream bytes per QUIC packet, roughly, for each datagram size."""


def _body(size: int) -> bytes:
    import msgspec

    return msgspec.msgpack.encode(make_payload(size))


def _stream(body: bytes, frames: int) -> bytes:
    return encode_frame(FrameKind.MESSAGE, body, cmd_id=PAYLOAD) * frames


def _chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def _open_link(window: int) -> LinkProtocol:
    link = LinkProtocol(max_frame_size=4 * 1024 * 1024, window=window, max_header_bytes=4096)
    link.send_hello(Hello("bench-a", 1, ["msgpack"], 4 * 1024 * 1024, window, 4096, b""))
    peer = Hello("bench-b", 2, ["msgpack"], 1 << 30, 1 << 31, 4096, b"")
    link.receive_data(encode_frame(FrameKind.HELLO, encode_hello(peer)))
    link.admit()
    link.events()
    link.data_to_send()
    return link


def _decoder_case(chunks: list[bytes]) -> Callable[[None], object]:
    def decode(_: None) -> object:
        decoder = FrameDecoder()
        count = 0
        for chunk in chunks:
            decoder.feed(chunk)
            while decoder.next_frame() is not None:
                count += 1
        return count

    return decode


def _link_receive_case(chunks: list[bytes]) -> Callable[[None], object]:
    def receive(_: None) -> object:
        link = _open_link(1 << 30)
        count = 0
        for chunk in chunks:
            link.receive_data(chunk)
            for event in link.events():
                link.consumed(event.size, idle=False)  # type: ignore[attr-defined]
                count += 1
        return count

    return receive


def _raw_parser_case(chunks: list[bytes]) -> Callable[[None], object]:
    def parse(_: None) -> object:
        frames = []
        parser = FrameParser(lambda kind, cmd_id, request_id, body: frames.append(body))
        for chunk in chunks:
            parser.feed(chunk)
        return len(frames)

    return parse


def _link_send_case(body: bytes, frames: int) -> Callable[[None], object]:
    def send(_: None) -> object:
        link = _open_link(1 << 20)  # the peer grants 2 GiB: framing is timed, not credit
        message = link.writer.message
        for _index in range(frames):
            message(PAYLOAD, body)
        return link.data_to_send()

    return send


def _encode_case(body: bytes, frames: int) -> Callable[[None], object]:
    def encode(_: None) -> object:
        out = []
        for _index in range(frames):
            out.append(encode_frame(FrameKind.MESSAGE, body, cmd_id=PAYLOAD))
        return b"".join(out)

    return encode


def cases() -> list[tuple[str, int, int, Callable[[None], object]]]:
    """(name, frames per call, body size, function) for every measurement."""
    out: list[tuple[str, int, int, Callable[[None], object]]] = []
    for size, frames in ((100, FRAMES), (65536, 50)):
        body = _body(size)
        stream = _stream(body, frames)
        label = "100 B" if size == 100 else "64 KiB"
        out.append((f"encode_frame, {label}", frames, size, _encode_case(body, frames)))
        out.append((f"FrameWriter.message, {label}", frames, size, _link_send_case(body, frames)))
        for dgram, chunk in CHUNKS.items():
            chunks = _chunks(stream, chunk)
            where = f"{label}, {dgram}-byte datagrams"
            out.append((f"FrameDecoder, {where}", frames, size, _decoder_case(chunks)))
            out.append(
                (f"LinkProtocol.receive_data, {where}", frames, size, _link_receive_case(chunks))
            )
            out.append((f"raw FrameParser, {where}", frames, size, _raw_parser_case(chunks)))
    return out


def run(*, min_time: float = 0.2, repeat: int = 5) -> dict[str, dict[str, Any]]:
    """Time every case; return ``{name: record}`` with ns per frame and frames/s."""
    results: dict[str, dict[str, Any]] = {}
    for name, frames, size, fn in cases():
        if fn(None) in (0, b""):
            raise AssertionError(f"{name}: produced nothing")
        per_call = stat(time_per_call(fn, None, min_time=min_time, repeat=repeat))
        ns = per_call["median"] * 1e9 / frames
        results[name] = {
            "ns_per_frame": ns,
            "frames_per_s": 1e9 / ns,
            "mb_per_s": size * 1e3 / ns,
            "spread": per_call["spread"],
        }
    return results


def table(results: dict[str, dict[str, Any]]) -> str:
    """The human-readable table."""
    rows = [
        [name, r["ns_per_frame"], r["frames_per_s"], r["mb_per_s"], f"±{r['spread'] * 50:.0f}%"]
        for name, r in results.items()
    ]
    return format_table(
        ["framing (no sockets)", "ns/frame", "frames/s", "MB/s", "spread"],
        rows,
        title="Wire layer alone",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description="Time qrpc's framing without sockets.")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    args = parser.parse_args(argv)
    results = run(min_time=0.05 if args.quick else 0.2, repeat=3 if args.quick else 5)
    if args.json:
        for name, record in results.items():
            print(json.dumps({"case": name, **record}))
    else:
        print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
