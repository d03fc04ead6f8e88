"""Fuzz targets for qrpc's sans-IO wire layer: frame decoder, HELLO body, link.

Each ``fuzz_*`` function takes one fuzzer input and returns None, or raises
when the code under test breaks a rule: `Violation` for a broken invariant,
or whatever unexpected exception escaped the library.  The same functions run
under atheris (``python -m tests.fuzz.run TARGET``, coverage-guided) and
under pytest (``tests/fuzz/test_corpus.py`` replays the checked-in corpus).

Inputs are read front to back by `ByteInput` (zeros once it runs out), so a
seed is easy to write by hand: `ByteOutput` and `LinkScript` write what the
readers read, and `seeds()` builds the checked-in seed corpus with them.

Input formats:

- decoder: ``size, style, cuts, stream``: the decoder's max frame size (an
  index into `DECODER_MAX_SIZES`), how to drive it (bit 0: `drain_into`
  instead of `next_frame`; bit 1: switch between the two at every chunk;
  bit 2: feed a bytearray and overwrite it after `feed`), up to `MAX_CUTS`
  cut points (`read_cuts`), then the byte stream itself.
- hello: ``mode`` then, if bit 0 is set, the raw HELLO body; otherwise the
  HELLO's fields chosen from tables (`_hello_values`), msgpack-encoded as an
  array (or, with bit 1, as a map), with an independent idea of validity.
- link: the link's max frame size, window and max header bytes, then up to
  `MAX_OPS` operations (`LINK_OPS`), each an index and its arguments: the
  peer builds frames (flags and sections: `LinkRun._peer_sections`) or raw bytes,
  ``deliver`` feeds them to the link in chunks, and the rest are commands to
  the link and its writer.  Every argument an op reads in protocol version 2
  (sections, headers, deadlines, the HELLO's new fields) comes after the ones
  it read in version 1, and the new ops come last in `LINK_OPS`, so a version 1
  input converts by inserting zero bytes: one after the first two (the max
  header bytes), and after the arguments of each op, as many as it reads
  more (peer_hello 2, peer_frame 1, peer_header 1, send_message 1,
  send_request 2, send_response 1, send_error 1).
"""

from __future__ import annotations

import itertools
import math
import re
import struct
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar, Final, NamedTuple, TypeVar, cast

import msgspec

from qrpc.codes import ErrorCode
from qrpc.errors import (
    BadHello,
    FrameTooLarge,
    HeaderError,
    MalformedFrame,
    PeerDisconnected,
    ProtocolError,
    UnknownFrameKind,
    UnsupportedVersion,
)
from qrpc.wire.decoder import FrameDecoder
from qrpc.wire.events import (
    CancelReceived,
    CreditReceived,
    DrainingReceived,
    ErrorReceived,
    GoodbyeReceived,
    HelloReceived,
    LinkEvent,
    LinkFailed,
    MessageReceived,
    RequestReceived,
    ResponseReceived,
)
from qrpc.wire.frames import (
    HEADER_SIZE,
    MAX_ID,
    Frame,
    FrameKind,
    encode_frame,
    encode_header,
)
from qrpc.wire.hello import MAX_SCHEMA_SIZE, MIN_WINDOW, Hello, decode_hello, encode_hello
from qrpc.wire.link import MAX_HELLO_SIZE, LinkProtocol, LinkState
from qrpc.wire.sections import encode_deadline, encode_headers

__all__ = [
    "DECODER_MAX_SIZES",
    "LINK_MAX_FRAME_SIZES",
    "LINK_OPS",
    "LINK_WINDOWS",
    "MAX_CUTS",
    "MAX_OPS",
    "ByteInput",
    "ByteOutput",
    "LinkRun",
    "LinkScript",
    "KNOWN_BUGS",
    "KNOWN_SIGNATURES",
    "Violation",
    "fuzz_decoder",
    "fuzz_hello",
    "fuzz_link",
    "read_cuts",
    "reference_decode",
    "run_decoder",
    "run_hello",
    "run_link",
    "seeds",
    "is_known_bug",
    "skipping_known_bugs",
    "split_at",
]

T = TypeVar("T")


class Violation(AssertionError):
    """The code under test broke one of the rules a target checks."""


# -- known bugs ----------------------------------------------------------------------------

# Corpus entries that still break a rule, until the library is fixed: file -> (what
# is wrong, pieces of the `Violation` messages it causes).  test_corpus.py replays
# them as strict xfails (a fix makes the entry XPASS, and fail, until it is removed
# here), and its smoke run, like a long run (`skipping_known_bugs`), skips inputs that
# hit the same messages.
KNOWN_BUGS: Final[dict[str, tuple[str, ...]]] = {
    # "target/crash-name": ("why it fails", "a piece of the error message", ...),
    # a strict xfail while the bug is open: fixing it makes the replay pass and the run fail
}
KNOWN_SIGNATURES: Final = tuple(
    signature for _, *signatures in KNOWN_BUGS.values() for signature in signatures
)


def is_known_bug(exc: BaseException) -> bool:
    """Whether `exc` is a `Violation` a `KNOWN_BUGS` entry describes."""
    text = str(exc)
    return isinstance(exc, Violation) and any(sig in text for sig in KNOWN_SIGNATURES)


def skipping_known_bugs(function: Callable[[bytes], None]) -> Callable[[bytes], None]:
    """`function`, returning instead of raising a known bug (`is_known_bug`), so that a
    long run hunts for new bugs instead of stopping at the first known one."""

    def run(data: bytes) -> None:
        try:
            function(data)
        except Violation as exc:
            if not is_known_bug(exc):
                raise

    return run


# -- reading and writing fuzzer inputs -----------------------------------------------------


class ByteInput:
    """Fuzzer choices, read from the front of the input; zeros once it runs out."""

    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    @property
    def remaining(self) -> int:
        """Bytes not read yet."""
        return len(self._data) - self._pos

    def byte(self) -> int:
        """The next byte (0 past the end)."""
        pos = self._pos
        if pos >= len(self._data):
            return 0
        self._pos = pos + 1
        return self._data[pos]

    def uint(self, size: int) -> int:
        """The next `size` bytes as a big-endian unsigned integer (missing bytes are 0)."""
        chunk = self.take(size)
        return int.from_bytes(chunk, "big") << (8 * (size - len(chunk)))

    def below(self, n: int) -> int:
        """A number in ``range(n)``, from as few bytes as `n` needs (none for n <= 1)."""
        if n <= 1:
            return 0
        return self.uint(_width(n)) % n

    def pick(self, options: Sequence[T]) -> T:
        """One of `options`, by index."""
        return options[self.below(len(options))]

    def take(self, n: int) -> bytes:
        """The next `n` bytes (fewer at the end of the input)."""
        chunk = self._data[self._pos : self._pos + n]
        self._pos += len(chunk)
        return chunk

    def rest(self) -> bytes:
        """Everything not read yet."""
        return self.take(self.remaining)


class ByteOutput:
    """Writes what `ByteInput` reads: the choices of a hand-made seed."""

    __slots__ = ("data",)

    def __init__(self) -> None:
        self.data = bytearray()

    def byte(self, value: int) -> None:
        self.data.append(value)

    def uint(self, value: int, size: int) -> None:
        self.data += value.to_bytes(size, "big")

    def below(self, value: int, n: int) -> None:
        if not 0 <= value < max(n, 1):
            raise ValueError(f"{value} is not below {n}")
        if n > 1:
            self.uint(value, _width(n))

    def pick(self, options: Sequence[T], value: T) -> None:
        self.below(options.index(value), len(options))

    def raw(self, data: bytes) -> None:
        self.data += data


def _width(n: int) -> int:
    return 1 if n <= 0x100 else 2 if n <= 0x1_0000 else 4


# -- the input-splitting helper ------------------------------------------------------------

MAX_CUTS: Final = 8


def read_cuts(inp: ByteInput, max_cuts: int = MAX_CUTS) -> list[int]:
    """Read up to `max_cuts` cut points: a count byte, then a u16 per cut."""
    return [inp.uint(2) for _ in range(inp.byte() % (max_cuts + 1))]


def write_cuts(out: ByteOutput, cuts: Sequence[int]) -> None:
    """Write what `read_cuts` reads."""
    out.byte(len(cuts))
    for cut in cuts:
        out.uint(cut, 2)


def split_at(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    """Cut `data` at every point (modulo ``len(data) + 1``); repeated points give
    empty chunks, which are fed too."""
    size = len(data)
    bounds = [0, *sorted(cut % (size + 1) for cut in cuts), size]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


# -- target 1: the frame decoder -----------------------------------------------------------

DECODER_MAX_SIZES: Final = (0, 1, 4, 15, 16, 64, 1024, 65536)
# The version 2 rules, re-stated here rather than taken from qrpc.
_VERSION: Final = 2
_DEADLINE: Final = 0x1
_HEADERS: Final = 0x2
_KIND_VALUES: Final = frozenset(int(k) for k in FrameKind)
_HAS_CMD_ID: Final = frozenset({FrameKind.MESSAGE, FrameKind.REQUEST, FrameKind.RESPONSE})
_NEEDS_REQUEST_ID: Final = frozenset(
    {FrameKind.REQUEST, FrameKind.RESPONSE, FrameKind.ERROR, FrameKind.CANCEL}
)
_CODE_TEXT: Final = frozenset({FrameKind.ERROR, FrameKind.GOODBYE})
_ALLOWED_FLAGS: Final = {
    FrameKind.MESSAGE: _HEADERS,
    FrameKind.REQUEST: _HEADERS | _DEADLINE,
    FrameKind.RESPONSE: _HEADERS,
    FrameKind.ERROR: _HEADERS,
}
_EMPTY: Final = frozenset({FrameKind.CANCEL, FrameKind.DRAINING})
_RAW_HEADER: Final = struct.Struct(">BBHIII")

DecodeResult = tuple[list[Frame], type[ProtocolError] | None]


def reference_decode(stream: bytes, max_frame_size: int) -> DecodeResult:
    """The frames in `stream` and the class of the error after them (None: the
    stream ends cleanly or inside a frame), straight from the rules listed in
    ``qrpc/wire/decoder.py``: version, kind, flags, length, then ids and body."""
    frames: list[Frame] = []
    pos = 0
    while len(stream) - pos >= HEADER_SIZE:  # each turn consumes >= HEADER_SIZE bytes
        version, kind, flags, length, cmd_id, request_id = _RAW_HEADER.unpack_from(stream, pos)
        error = _reference_error(version, kind, flags, length, cmd_id, request_id, max_frame_size)
        if error is not None:
            return frames, error
        end = pos + HEADER_SIZE + length
        if end > len(stream):
            break
        body = stream[pos + HEADER_SIZE : end]
        frames.append(Frame(FrameKind(kind), flags, cmd_id, request_id, body))
        pos = end
    return frames, None


def _reference_error(
    version: int, kind: int, flags: int, length: int, cmd_id: int, request_id: int, limit: int
) -> type[ProtocolError] | None:
    if version != _VERSION:
        return UnsupportedVersion
    if kind not in _KIND_VALUES:
        return UnknownFrameKind
    frame_kind = FrameKind(kind)
    if flags & ~_ALLOWED_FLAGS.get(frame_kind, 0):  # an unknown bit, or one the kind may not carry
        return MalformedFrame
    if length > limit:
        return FrameTooLarge
    if (request_id != 0) != (frame_kind in _NEEDS_REQUEST_ID):
        return MalformedFrame
    if cmd_id and frame_kind not in _HAS_CMD_ID:
        return MalformedFrame
    # The code opens a GOODBYE body; an ERROR's follows its sections (the link checks it).
    if frame_kind in _CODE_TEXT and length < 4 and not (frame_kind is FrameKind.ERROR and flags):
        return MalformedFrame
    if frame_kind is FrameKind.CREDIT and length != 4:
        return MalformedFrame
    if frame_kind in _EMPTY and length:
        return MalformedFrame
    return None


def fuzz_decoder(data: bytes) -> None:
    """`FrameDecoder`: only `ProtocolError` subclasses escape; the stream decodes
    to exactly the frames and error of `reference_decode`, fed at once with
    `next_frame` and fed in fuzzer-chosen chunks (with `next_frame`,
    `drain_into` or both); after each chunk is drained fewer than
    ``HEADER_SIZE + max_frame_size`` bytes stay buffered and every fed byte is
    in a frame or in `buffered`; `feed` returning False means no frame was
    ready; bodies are `bytes` that later changes to a fed bytearray leave
    alone; after an error the decoder yields no more frames."""
    run_decoder(data)


def run_decoder(data: bytes) -> DecodeResult:
    """`fuzz_decoder`, returning the frames and the error class it checked."""
    inp = ByteInput(data)
    max_frame_size = inp.pick(DECODER_MAX_SIZES)
    style = inp.byte()
    cuts = read_cuts(inp)
    stream = inp.rest()
    expected = reference_decode(stream, max_frame_size)
    whole = _decode_chunks(max_frame_size, [stream], 0)
    if whole != expected:
        raise Violation(f"fed at once: {_describe(whole)}; the rules give {_describe(expected)}")
    chunks = split_at(stream, cuts)
    split = _decode_chunks(max_frame_size, chunks, style)
    if split != expected:
        raise Violation(
            f"fed as {[len(c) for c in chunks]} (style {style & 7}): {_describe(split)}; "
            f"fed at once: {_describe(expected)}"
        )
    return expected


def _describe(result: DecodeResult) -> str:
    frames, error = result
    names = [
        f"{f.kind.name}({f.flags:#x},{f.cmd_id},{f.request_id},{len(f.body)}B)" for f in frames[:8]
    ]
    more = f" +{len(frames) - 8}" if len(frames) > 8 else ""
    return f"{len(frames)} frames [{', '.join(names)}{more}], error {error and error.__name__}"


def _decode_chunks(max_frame_size: int, chunks: list[bytes], style: int) -> DecodeResult:
    decoder = FrameDecoder(max_frame_size)
    frames: list[Frame] = []
    fed = framed = 0
    drain = bool(style & 1)
    bound = HEADER_SIZE + max_frame_size
    for chunk in chunks:
        if style & 2:
            drain = not drain
        try:
            if style & 4:
                scratch = bytearray(chunk)
                complete = decoder.feed(cast("bytes", scratch))
                scratch[:] = b"\xa5" * len(scratch)  # the caller reuses its buffer
            else:
                complete = decoder.feed(chunk)
        except ProtocolError as exc:
            raise Violation(f"feed() raised {exc!r} before any error") from exc
        fed += len(chunk)
        before = len(frames)
        try:
            if drain:
                out: list[tuple[int, int, int, int, bytes]] = []
                try:
                    decoder.drain_into(out)
                finally:
                    frames.extend(_as_frame(*item, max_frame_size) for item in out)
            else:
                for _ in range(decoder.buffered // HEADER_SIZE + 1):
                    frame = decoder.next_frame()
                    if frame is None:
                        break
                    frames.append(_as_frame(*frame, max_frame_size))
                else:
                    raise Violation("next_frame() returned more frames than the buffer holds")
        except ProtocolError as exc:
            _check_broken(decoder, exc, bound)
            return frames, type(exc)
        if not complete and len(frames) > before:
            raise Violation("feed() returned False, yet a frame was complete")
        if decoder.buffered >= bound:
            raise Violation(f"{decoder.buffered} bytes buffered after draining, bound {bound}")
        framed += sum(HEADER_SIZE + len(f.body) for f in frames[before:])
        if framed + decoder.buffered != fed:
            raise Violation(f"fed {fed} bytes, framed {framed}, buffered {decoder.buffered}")
    return frames, None


def _as_frame(
    kind: int, flags: int, cmd_id: int, request_id: int, body: bytes, max_frame_size: int
) -> Frame:
    if kind not in _KIND_VALUES:
        raise Violation(f"the decoder returned a frame of unknown kind {kind}")
    if flags & ~_ALLOWED_FLAGS.get(FrameKind(kind), 0):
        raise Violation(
            f"the decoder returned a {FrameKind(kind).name} frame with flags {flags:#x}"
        )
    if type(body) is not bytes:
        raise Violation(f"the decoder returned a {type(body).__name__} body, not bytes")
    if len(body) > max_frame_size:
        raise Violation(f"the decoder returned a {len(body)}-byte body, limit {max_frame_size}")
    return Frame(FrameKind(kind), flags, cmd_id, request_id, body)


def _check_broken(decoder: FrameDecoder, error: ProtocolError, bound: int) -> None:
    if decoder.buffered >= bound:
        raise Violation(f"{decoder.buffered} bytes buffered after {error!r}, bound {bound}")
    try:
        decoder.feed(encode_frame(FrameKind.CREDIT, bytes(4)))
    except ProtocolError:
        return
    if decoder.next_frame() is not None:
        raise Violation(f"the decoder returned a frame after {error!r}")


# -- target 2: the HELLO body --------------------------------------------------------------

_HELLO_FIELDS: Final = (
    "node_id",
    "incarnation",
    "codecs",
    "max_frame_size",
    "window",
    "max_header_bytes",
    "schema",
)
# 7 fields, then extras; 6 (no schema), 5 (a version 1 HELLO), 4 and none are too few.
HELLO_FIELD_COUNTS: Final = (7, 8, 9, 6, 5, 4, 0)
NODE_IDS: Final = ("node-a", "a", "0", "x" * 63, "a-b", "", "-a", "a-", "Node-a", "x" * 64, "a.b")
ID_ALPHABET: Final = "abcdefghijklmnopqrstuvwxyz0123456789-A_"
HELLO_INTS: Final = (
    0,
    1,
    MIN_WINDOW - 1,
    MIN_WINDOW,
    65536,
    MAX_ID,
    MAX_ID + 1,
    2**63 - 1,
    2**63,
    2**64 - 1,
    -1,
    -(2**63),
    0xFFFF,
    0x1_0000,
)
CODEC_NAMES: Final = ("msgpack", "json", "", "c" * 64, "c" * 65, "\u00e9" * 64, "\u00e9" * 65)
WRONG_TYPES: Final[tuple[object, ...]] = (None, True, 1.5, "1", b"1", [1], {"k": 1}, 7)
EXTRA_VALUES: Final[tuple[object, ...]] = (0, "future", [1, [2, [3]]], {"k": "v"}, None, b"\xff")
SCHEMAS: Final[tuple[object, ...]] = (
    b"",
    b"\x92\x01\xa4Ping",
    bytes(MAX_SCHEMA_SIZE),
    bytes(MAX_SCHEMA_SIZE + 1),
    "a str, not bytes",
    bytearray(b"x"),  # msgpack bin, like bytes
)
_MAX_INCARNATION: Final = 2**63 - 1
_MAX_HEADER_BYTES: Final = 0xFFFF
_MAX_SCHEMA: Final = 48 * 1024  # re-stated: MAX_SCHEMA_SIZE


def fuzz_hello(data: bytes) -> None:
    """`decode_hello`: raises nothing but `BadHello`; accepts exactly the bodies
    an independent check calls valid (when the fields were chosen, not raw);
    what it returns has valid field types and ranges, and re-encodes
    (`encode_hello`) to a body that decodes to an equal `Hello`."""
    run_hello(data)


def run_hello(data: bytes) -> Hello | None:
    """`fuzz_hello`, returning the decoded HELLO (None: refused)."""
    inp = ByteInput(data)
    mode = inp.byte()
    expected: bool | None = None  # unknown for raw bodies
    if mode & 1:
        body = inp.rest()
    else:
        fields, expected = _hello_values(inp, as_map=bool(mode & 2))
        body = msgspec.msgpack.encode(fields)
    try:
        hello = decode_hello(body)
    except BadHello as exc:
        if expected:
            raise Violation(f"valid HELLO {body.hex()} refused: {exc}") from exc
        return None
    if expected is False:
        raise Violation(f"invalid HELLO {body.hex()} accepted as {hello!r}")
    problem = _hello_problem(hello)
    if problem:
        raise Violation(f"decode_hello({body.hex()}) returned {hello!r}: {problem}")
    again = encode_hello(hello)
    try:
        twice = decode_hello(again)
    except BadHello as exc:
        raise Violation(f"{hello!r} re-encodes to {again.hex()}, which is refused") from exc
    if twice != hello:
        raise Violation(f"{hello!r} re-encodes and decodes to {twice!r}")
    return hello


def _hello_values(inp: ByteInput, *, as_map: bool) -> tuple[object, bool]:
    count = inp.pick(HELLO_FIELD_COUNTS)
    node_id, node_ok = _node_id_value(inp)
    incarnation, incarnation_ok = _int_value(inp, 0, _MAX_INCARNATION)
    codecs, codecs_ok = _codecs_value(inp)
    max_frame_size, max_frame_ok = _int_value(inp, MIN_WINDOW, MAX_ID)
    window, window_ok = _int_value(inp, MIN_WINDOW, MAX_ID)
    max_header_bytes, header_ok = _int_value(inp, 0, _MAX_HEADER_BYTES)
    schema, schema_ok = _schema_value(inp)
    extras = [inp.pick(EXTRA_VALUES) for _ in range(max(0, count - len(_HELLO_FIELDS)))]
    fields = [node_id, incarnation, codecs, max_frame_size, window, max_header_bytes, schema]
    values = [*fields, *extras][:count]
    valid = count >= len(_HELLO_FIELDS) and all(
        (node_ok, incarnation_ok, codecs_ok, max_frame_ok, window_ok, header_ok, schema_ok)
    )
    if as_map:  # a HELLO is an array; a map of the same fields is not one
        return dict(zip(_HELLO_FIELDS, values, strict=False)), False
    return values, valid


def _node_id_value(inp: ByteInput) -> tuple[object, bool]:
    choice = inp.byte() % (len(NODE_IDS) + 3)
    if choice < len(NODE_IDS):
        value: object = NODE_IDS[choice]
    elif choice == len(NODE_IDS):
        value = "".join(ID_ALPHABET[b % len(ID_ALPHABET)] for b in inp.take(inp.byte() % 66))
    elif choice == len(NODE_IDS) + 1:
        value = inp.take(inp.byte() % 66).decode("latin-1")
    else:
        value = inp.pick(WRONG_TYPES)
    return value, isinstance(value, str) and _valid_node_id(value)


def _valid_node_id(value: str) -> bool:
    """One lower-case DNS label (docs: node IDs), checked without qrpc.ids."""
    return (
        1 <= len(value) <= 63
        and all(c in "abcdefghijklmnopqrstuvwxyz0123456789-" for c in value)
        and value[0] != "-"
        and value[-1] != "-"
    )


def _int_value(inp: ByteInput, low: int, high: int) -> tuple[object, bool]:
    choice = inp.byte() % (len(HELLO_INTS) + 2)
    if choice < len(HELLO_INTS):
        value: object = HELLO_INTS[choice]
    elif choice == len(HELLO_INTS):
        value = inp.uint(4)
    else:
        value = inp.pick(WRONG_TYPES)
    return value, type(value) is int and low <= value <= high


def _schema_value(inp: ByteInput) -> tuple[object, bool]:
    choice = inp.byte() % (len(SCHEMAS) + 1)
    value = SCHEMAS[choice] if choice < len(SCHEMAS) else inp.take(inp.byte())
    return value, isinstance(value, bytes | bytearray) and len(value) <= _MAX_SCHEMA


def _codecs_value(inp: ByteInput) -> tuple[object, bool]:
    choice = inp.byte()
    if choice & 0x80:
        value = inp.pick(WRONG_TYPES)
        return value, False
    names = [inp.pick(CODEC_NAMES) for _ in range(choice % 18)]
    return names, 1 <= len(names) <= 16 and all(1 <= len(name) <= 64 for name in names)


def _hello_problem(hello: Hello) -> str:
    if type(hello) is not Hello:
        return f"a {type(hello).__name__}, not a Hello"
    if type(hello.node_id) is not str or not _valid_node_id(hello.node_id):
        return "node_id is not a node ID"
    if type(hello.incarnation) is not int or not 0 <= hello.incarnation <= _MAX_INCARNATION:
        return "incarnation out of range"
    codecs: object = hello.codecs
    if not isinstance(codecs, list) or not 1 <= len(codecs) <= 16:
        return "codecs is not a list of 1-16 names"
    if not all(type(name) is str and 1 <= len(name) <= 64 for name in codecs):
        return "a codec name is not a str of 1-64 characters"
    for name in ("max_frame_size", "window"):
        value = getattr(hello, name)
        if type(value) is not int or not MIN_WINDOW <= value <= MAX_ID:
            return f"{name} out of range"
    if type(hello.max_header_bytes) is not int or not 0 <= hello.max_header_bytes <= 0xFFFF:
        return "max_header_bytes out of range"
    if type(hello.schema) is not bytes or len(hello.schema) > _MAX_SCHEMA:
        return "schema is not bytes of at most 48 KiB"
    return ""


# -- target 3: the link state machine ------------------------------------------------------

LINK_MAX_FRAME_SIZES: Final = (1024, 4096, 65536, 100_000)
LINK_WINDOWS: Final = (1024, 4096, 8192, 65536, 300_000)
LINK_HEADER_LIMITS: Final = (4096, 0, 16, 512, 0xFFFF)  # the link's max_header_bytes
PEER_LIMITS: Final = (1024, 4096, 65536, MAX_ID)  # the peer HELLO's window / max frame size
PEER_HEADER_LIMITS: Final = (4096, 0, 16, 0xFFFF)  # the peer HELLO's max_header_bytes
PEER_SCHEMAS: Final = (b"", b"\x92\x01\xa4Ping", bytes(2000), bytes(MAX_SCHEMA_SIZE))
PEER_IDS: Final = ("node-b", "b", "x" * 63)
# FrameKind values, mostly: 0, 10 and 255 are unknown kinds.
PEER_KINDS: Final = (2, 2, 2, 3, 3, 4, 4, 5, 7, 7, 6, 1, 0, 10, 255, 8, 9)
IDS: Final = (0, 1, 2, 7, 255, 65535, MAX_ID)
REQUEST_IDS: Final = IDS[1:]
CODES: Final = (0, 1, 5, int(ErrorCode.EARLY_DATA_LIMIT), MAX_ID)
ERROR_LIMITS: Final = (0, 4, 5, 16, 256)
HEADER_LENGTHS: Final = ("0", "4", "max", "max+1", "hello", "hello+1", "u32max", "input")
RAW_FLAGS: Final = (0, 1, 2, 3, 4, 0x8000, 0xFFFF)  # flags fields the peer may write as they are
DEADLINES_MS: Final = (1500, 0, 1, MAX_ID)
_TRACEPARENT: Final = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
PEER_HEADER_SETS: Final[tuple[dict[str, str | bytes], ...]] = (
    {"k": "v"},
    {"traceparent": _TRACEPARENT, "tracestate": "a=b"},
    {"bin": b"\x00\xff", "k" * 64: "\u00e9" * 8},
    {f"h{i}": "x" for i in range(64)},
    {},  # an empty map: valid on the wire, though no writer sends one
)
SECTION_FAULTS: Final = (
    "none",
    "bad-key",
    "bad-value",
    "too-many",
    "undecodable",
    "not-utf8",
    "longer-than-body",
    "over-limit",
)
OUR_HEADER_SETS: Final[tuple[dict[Any, Any] | None, ...]] = (
    None,
    {"k": "v"},
    {"traceparent": _TRACEPARENT, "tracestate": "a=b"},
    {"bin": b"\x00\xff", "qrpc-reserved": "only the application may not use it"},
    {f"h{i}": "x" for i in range(64)},
    {"big": "v" * 600},
    {"Bad-Key": "v"},
    {"k": 1},
    {f"h{i}": "x" for i in range(65)},
    {},  # no headers: nothing to encode
    {"k": "a\ud800b"},  # a str that is not UTF-8
)
OUR_DEADLINES: Final = (None, 1.5, 0.0001, 0.0, -1.0, 30.0, 1e7, 0.0025)
MAX_OPS: Final = 256
MAX_WIRE_BYTES: Final = 2 * 1024 * 1024  # bytes the peer may build per input
MAX_OUR_BODY: Final = 128 * 1024  # largest body the link is asked to send
OUR_NODE_ID: Final = "node-a"
LINK_OPS: Final = (
    "peer_hello",
    "peer_frame",
    "peer_header",
    "peer_raw",
    "deliver",
    "send_hello",
    "admit",
    "send_message",
    "send_request",
    "send_response",
    "send_error",
    "consumed",
    "send_goodbye",
    "pull",
    # version 2
    "send_cancel",
    "send_draining",
)
_STATE_RANK: Final = {
    LinkState.HELLO: 0,
    LinkState.OPEN: 1,
    LinkState.CLOSING: 2,
    LinkState.CLOSED: 3,
}
_FAILURE_CODES: Final = frozenset(int(c) for c in ErrorCode) - {int(ErrorCode.NO_ERROR)}
_MALFORMED: Final = frozenset({int(ErrorCode.MALFORMED_FRAME)})
_TOO_LARGE: Final = frozenset({int(ErrorCode.HEADERS_TOO_LARGE)})
_KEY: Final = re.compile(r"[a-z0-9_.-]{1,64}")  # re-stated: the header key rule
_MAX_HEADERS: Final = 64
_MAX_DEADLINE: Final = MAX_ID

EventKey = tuple[Any, ...]
Sent = tuple[int, int, int, int, bytes]
"(kind, flags, cmd_id, request_id, body) of a frame this side sent."
Parsed = tuple[int | None, dict[str, Any] | None, bytes]
"(deadline ms, headers, payload) of a flagged body, per the reference rules."


class _Segment(NamedTuple):
    """A stretch of the peer's byte stream: one frame or raw bytes."""

    start: int
    end: int
    legit: bool
    """A correct peer may send it here (its link must then not fail because of it)."""
    expect: EventKey | None
    """The event the frame must produce (legit frames only)."""
    fatal: bool = False
    """A whole frame, in step with the stream, that breaks a decoder rule at any limit."""
    codes: frozenset[int] | None = None
    """A frame a correct peer could send here but for its body (its sections, the
    code after them, a RESPONSE "no value" with a body): the link must fail with one
    of these codes."""


def _header_problem(headers: Mapping[Any, Any], limit: int) -> str:
    """Why a sender must refuse `headers` for a receiver that takes `limit` bytes
    ("" if it must not): the header rules of ``docs/protocol.md``, re-stated."""
    if len(headers) > _MAX_HEADERS:
        return f"{len(headers)} headers"
    for key, value in headers.items():
        if type(key) is not str or _KEY.fullmatch(key) is None:
            return f"key {key!r}"
        if not isinstance(value, str | bytes):
            return f"a {type(value).__name__} value"
        if isinstance(value, str) and not _utf8(value):
            return "a value that is not UTF-8"
    size = len(msgspec.msgpack.encode(dict(headers)))
    return f"{size} bytes, limit {limit}" if size > limit else ""


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _decode_map(data: bytes) -> dict[str, Any] | None:
    """The headers in `data` if it is a msgpack map that keeps the rules, else None."""
    try:
        value = msgspec.msgpack.decode(data)
    except Exception:  # any way msgspec refuses the bytes: undecodable
        return None
    if type(value) is not dict or len(value) > _MAX_HEADERS:
        return None
    for key, item in value.items():
        if type(key) is not str or _KEY.fullmatch(key) is None:
            return None
        if type(item) not in (str, bytes):
            return None
    return value


def reference_body(
    kind: int, flags: int, cmd_id: int, body: bytes, limit: int
) -> Parsed | frozenset[int]:
    """Split the body of a frame that passed the decoder into its sections and
    payload, or return the codes a receiver taking `limit` header bytes must fail
    with: the section layout of ``qrpc/wire/sections.py`` (deadline u32, then a
    u16-long msgpack map, then the payload), re-stated, and the payload rules of
    ERROR (a u32 code) and RESPONSE (cmd_id 0: no body)."""
    pos = 0
    deadline: int | None = None
    headers: dict[str, Any] | None = None
    if flags & _DEADLINE:
        if len(body) < 4:
            return _MALFORMED
        deadline = int.from_bytes(body[:4], "big")
        pos = 4
    if flags & _HEADERS:
        if len(body) - pos < 2:
            return _MALFORMED
        size = int.from_bytes(body[pos : pos + 2], "big")
        start = pos + 2
        too_large = size > limit
        headers = _decode_map(body[start : start + size]) if len(body) - start >= size else None
        if too_large and headers is None:
            return _MALFORMED | _TOO_LARGE  # either check may come first
        if too_large:
            return _TOO_LARGE
        if headers is None:
            return _MALFORMED
        pos = start + size
    payload = body[pos:]
    if kind == FrameKind.ERROR and len(payload) < 4:
        return _MALFORMED
    if kind == FrameKind.RESPONSE and not cmd_id and payload:
        return _MALFORMED
    return deadline, headers, payload


def _map_of_at_least(size: int) -> dict[str, str]:
    """A valid one-header map whose msgpack encoding takes at least `size` bytes."""
    if size <= 1:
        return {}
    for n in range(max(0, size - 6), size + 1):  # fixmap + "k" + a str header + n
        headers = {"k": "v" * n}
        if len(msgspec.msgpack.encode(headers)) >= size:
            return headers
    raise AssertionError("unreachable")  # pragma: no cover


def fuzz_link(data: bytes) -> None:
    """`LinkProtocol` against a fuzzer-driven peer and fuzzer-chosen commands;
    see `LinkRun` for every rule checked."""
    run_link(data)


def run_link(data: bytes) -> LinkRun:
    """`fuzz_link`, returning the finished run (what it reached is in `reached`)."""
    run = LinkRun(data)
    run.run()
    return run


class LinkRun:
    """One `fuzz_link` input: a link, a model of its peer, and the checks.

    Rules checked (a failure raises `Violation`; any exception other than
    those named escapes as a crash):

    - `receive_data`, `admit`, `consumed`, `writer.response`, `writer.error`,
      `writer.cancel`, `writer.draining`, `send_goodbye`, `events` and
      `data_to_send` raise nothing; `writer.message` / `writer.request` raise
      `PeerDisconnected` exactly when this side sent GOODBYE or the link
      failed (and `sending` says so); `send_hello` raises RuntimeError
      exactly when a HELLO was already sent.
    - `encode_headers` raises `HeaderError` exactly when a re-statement of
      the header rules refuses the headers (key syntax, str/bytes values that
      encode, at most 64, at most the peer's ``max_header_bytes``), else
      returns b"" for no headers or a u16 length and a msgpack map of exactly
      them; `encode_deadline` is the time left in whole milliseconds, rounded
      down, within ``[1, 2**32 - 1]``.
    - At most one `LinkFailed`, the last event ever, with a failure code;
      the link is CLOSED from then on; the state never moves back;
      `peer_draining` is True exactly once `DrainingReceived` was emitted.
    - `inbound_bytes` stays within ``[0, window]``; `pending_bytes`,
      `unsent_bytes` >= 0; `send_credit` within ``[0, 2**32 - 1]``.
    - Events: one `HelloReceived` first; nothing but `LinkFailed` after
      `GoodbyeReceived`; no message before both HELLOs; on the dialer (HELLO
      sent before the peer's arrived) nothing after `HelloReceived` until
      `admit()`; message sizes are header + sections + payload; headers keep
      the header rules; CANCEL ids are >= 1.
    - A dialer holding more than ``window + MAX_HELLO_SIZE`` bytes for
      admission has failed; a whole frame breaking a decoder rule, delivered
      to a link not yet CLOSED, fails it (by the end, after `admit()`).
    - A well-behaved peer never makes the link fail, and each of its frames
      produces its event, in order, with the frame's fields, deadline and
      headers.  Well-behaved: frames valid for their kind (flags, sections
      and bodies included) and the link's limits, HELLO first, the rest only
      after it saw our HELLO, none after its GOODBYE, MESSAGE and REQUEST
      within the credit it was granted, RESPONSE/ERROR only for requests it
      received, CREDIT only for message bytes it received, and at most
      ``window + MAX_HELLO_SIZE`` bytes before admission.  A frame that would
      be well-behaved but for its body (`reference_body`), when it is the
      first misstep, fails the link with the code the body earns
      (MALFORMED_FRAME or HEADERS_TOO_LARGE; EARLY_DATA_LIMIT if the dialer
      was also sent too much before admission).  Once all is delivered,
      admitted and consumed (the last time idle), every legit frame has its
      event and the window is open again but for less than 1/64 of it, always
      with room for a largest frame.
    - Output: a valid frame stream, whole frames per `data_to_send`; HELLO
      first and once, as `encode_hello` of our HELLO; nothing after our
      GOODBYE and nothing at all after a failure; MESSAGE/REQUEST frames
      exactly as sent, flags and sections (deadline, then headers, then the
      body) included, in order, within the credit the peer granted, and
      `unsent_bytes` equal to their bytes in each pull; RESPONSE, ERROR,
      CANCEL and DRAINING frames exactly as sent, in order; CANCEL and
      DRAINING only once the link opened (a DRAINING asked for earlier goes
      out then: a correct peer refuses it before both HELLOs); every flagged
      frame one the peer's limits accept; CREDIT frames never return more
      than was `consumed`.
    """

    OPS: ClassVar[tuple[Callable[[LinkRun], None], ...]]

    def __init__(self, data: bytes) -> None:
        inp = self.inp = ByteInput(data)
        self.max_frame_size = inp.pick(LINK_MAX_FRAME_SIZES)
        self.window = inp.pick(LINK_WINDOWS)
        self.max_header_bytes = inp.pick(LINK_HEADER_LIMITS)
        self.link = LinkProtocol(
            max_frame_size=self.max_frame_size,
            window=self.window,
            max_header_bytes=self.max_header_bytes,
        )
        self.hello = Hello(
            OUR_NODE_ID,
            1,
            ["msgpack"],
            self.max_frame_size,
            self.window,
            self.max_header_bytes,
            b"",
        )
        self.reached: set[str] = set()
        "What the run got to: event names, ``state:OPEN``, ``sent:CREDIT``, ``admitted``..."
        # The peer's stream, built by the peer_* ops and fed by deliver.
        self.wire = bytearray()
        self.segments: deque[_Segment] = deque()
        self.built = 0  # stream offset where the next segment starts
        self.delivered = 0  # stream bytes fed to the link
        self.tainted = False  # an illegit byte was delivered: failures are allowed
        self.fault: frozenset[int] | None = None  # the codes the first misstep earns
        self.over_hold = False  # more than the dialer holds was delivered before admission
        self.expected: deque[EventKey] = deque()  # events legit delivered frames still owe
        self.in_step = True  # the stream is whole frames, none a GOODBYE (which may close it)
        self.must_fail = False  # a fatal frame reached a link that was not CLOSED
        # The peer model: what a correct peer knows and may send.
        self.peer_hello_built = False
        self.peer_goodbye_built = False
        self.peer_saw_hello = False
        self.peer_credit = 0  # what it may send: our window plus the CREDIT it received
        self.peer_refundable = 0  # what it may return: message bytes received, not refunded
        self.peer_unanswered = 0  # requests it received and has not answered
        # What the link did.
        self.hello_called = False
        self.goodbye_called = False
        self.failed = False
        self.peer_hello: Hello | None = None
        self.peer_goodbye = False
        self.peer_draining = False
        self.drain_pending = False  # writer.draining() called before the link opened
        self.holding = False
        self.admitted = False
        self.hello_end: int | None = None  # stream offset after the peer's (legit) HELLO
        self.unconsumed: deque[int] = deque()
        self.requests: deque[int] = deque()
        self.our_requests: deque[int] = deque()  # request ids we sent (for CANCEL)
        self.consumed_total = 0
        self.idle = True  # the last consumed() call said idle (or there was none)
        self.credit_sent = 0
        self.granted = 0  # credit the peer granted: HELLO window + CREDIT amounts
        self.counted_sent = 0
        self.our_bytes = 0
        self.rank = 0
        self.out = FrameDecoder(MAX_ID)
        self.out_frames = 0
        self.out_hello = False
        self.out_goodbye = False
        self.queued: deque[Sent] = deque()  # MESSAGE/REQUEST sent
        self.replies: deque[Sent] = deque()  # RESPONSE/ERROR/CANCEL/DRAINING sent

    def run(self) -> None:
        """Execute the input's operations, then flush (`_finish`)."""
        inp = self.inp
        ops = self.OPS
        for _ in range(MAX_OPS):
            if not inp.remaining:
                break
            ops[inp.below(len(ops))](self)
            self._check_state()
        self._finish()

    def _call(self, name: str, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call a link command that must raise nothing: what it raises is a `Violation`."""
        try:
            return function(*args, **kwargs)
        except Exception as exc:
            raise Violation(f"{name}() raised {exc!r}") from exc

    # -- the peer ---------------------------------------------------------------------

    def op_peer_hello(self) -> None:
        inp = self.inp
        hello = Hello(
            node_id=inp.pick(PEER_IDS),
            incarnation=inp.uint(4),
            codecs=["msgpack"],
            max_frame_size=inp.pick(PEER_LIMITS),
            window=inp.pick(PEER_LIMITS),
            max_header_bytes=inp.pick(PEER_HEADER_LIMITS),
            schema=inp.pick(PEER_SCHEMAS),
        )
        legit = self.built == 0  # a HELLO is legit only as the peer's first frame
        self.peer_hello_built = self.peer_hello_built or legit
        self._add(encode_frame(FrameKind.HELLO, encode_hello(hello)), legit, ("hello", hello))

    def op_peer_frame(self) -> None:
        inp = self.inp
        kind = inp.pick(PEER_KINDS)
        shape = inp.byte()  # bit 0: any cmd_id; bit 1: any request_id; bit 2: bad body size
        cmd_id = inp.pick(IDS) if kind in _HAS_CMD_ID or shape & 1 else 0
        if shape & 2:
            request_id = inp.pick(IDS)
        else:
            request_id = inp.pick(REQUEST_IDS) if kind in _NEEDS_REQUEST_ID else 0
        payload, relative = self._peer_body(kind, shape)
        flags, sections, cut = self._peer_sections(len(payload))
        if relative and sections:  # a size chosen from credit or limits: the whole body has it
            payload = payload[: max(0, len(payload) - len(sections))]
        body = (
            sections[: (3 if flags & _DEADLINE else 1)] if cut and sections else sections + payload
        )
        if self.built + HEADER_SIZE + len(body) > MAX_WIRE_BYTES:
            return
        size = HEADER_SIZE + len(body)
        limit = max(self.max_frame_size, MAX_HELLO_SIZE)  # the decoder's, before or after HELLO
        fatal = self.in_step and bool(
            _reference_error(_VERSION, kind, flags, len(body), cmd_id, request_id, limit)
        )
        legit, expect, codes = False, None, None
        valid = not _reference_error(
            _VERSION, kind, flags, len(body), cmd_id, request_id, self.max_frame_size
        )
        if valid:
            parsed: Parsed | frozenset[int] = (None, None, body)
            if kind in _ALLOWED_FLAGS:
                parsed = reference_body(kind, flags, cmd_id, body, self.max_header_bytes)
            legit = self._legit(kind, body, size)
            if isinstance(parsed, frozenset):
                codes = parsed if legit and self.in_step else None
                legit = False
            elif legit:
                expect = _expected_event(kind, cmd_id, request_id, size, *parsed)
        self._add(encode_frame(kind, body, cmd_id, request_id, flags), legit, expect, fatal, codes)
        if kind == FrameKind.GOODBYE:
            self.in_step = False  # after both GOODBYEs a CLOSED link ignores what follows

    def op_peer_header(self) -> None:
        inp = self.inp
        kind = inp.pick(PEER_KINDS)
        length = {
            "0": 0,
            "4": 4,
            "max": self.max_frame_size,
            "max+1": self.max_frame_size + 1,
            "hello": MAX_HELLO_SIZE,
            "hello+1": MAX_HELLO_SIZE + 1,
            "u32max": MAX_ID,
        }.get(inp.pick(HEADER_LENGTHS))
        if length is None:
            length = inp.uint(4)
        cmd_id, request_id = inp.pick(IDS), inp.pick(IDS)
        tail = inp.take(inp.byte())
        header = encode_header(kind, length, cmd_id, request_id, flags=inp.pick(RAW_FLAGS))
        self._add(header + tail, False, None)
        self.in_step = False

    def op_peer_raw(self) -> None:
        raw = self.inp.take(self.inp.byte())
        if raw:
            self._add(raw, False, None)
            self.in_step = False

    def _peer_body(self, kind: int, shape: int) -> tuple[bytes, bool]:
        """The frame's payload, and whether its size was chosen from credit or limits."""
        inp = self.inp
        if kind in _CODE_TEXT:
            body = inp.pick(CODES).to_bytes(4, "big") + inp.take(inp.byte() % 64)
            return (body[: inp.below(4)] if shape & 4 else body), False
        if kind == FrameKind.CREDIT:  # all it may return, one more, or any amount
            choice = inp.byte() % 3
            amount = (self.peer_refundable, self.peer_refundable + 1)[choice] if choice < 2 else 0
            body = (amount if choice < 2 else inp.uint(4)).to_bytes(4, "big")
            return (body[:3] if shape & 4 else body), False
        if kind in _EMPTY:  # CANCEL, DRAINING: empty, or (bad body size) any body
            return (inp.take(inp.byte()) if shape & 4 else b""), False
        if kind not in _HAS_CMD_ID:  # HELLO, unknown kinds
            return inp.take(inp.byte()), False
        choice = inp.byte() % 10
        if choice < 4:
            return inp.take(inp.byte()), False
        fit = max(0, min(self.peer_credit - HEADER_SIZE, self.max_frame_size))
        sizes = (fit, fit + 1, self.max_frame_size, self.max_frame_size + 1, MAX_HELLO_SIZE + 1, 0)
        return bytes(sizes[choice - 4]), choice < 8

    def _peer_sections(self, payload_size: int) -> tuple[int, bytes, bool]:
        """The flags field, the sections that open the body, and whether the body is cut
        short inside them.  One byte: bits 0-1 the sections (DEADLINE, HEADERS); bit 2
        write a `RAW_FLAGS` value as the flags field instead; bits 3-5 a
        `SECTION_FAULTS` entry for the headers; bit 6 cut the body short."""
        inp = self.inp
        choice = inp.byte()
        if not choice:
            return 0, b"", False
        flags = choice & 3
        raw = inp.pick(RAW_FLAGS) if choice & 4 else None
        fault = SECTION_FAULTS[(choice >> 3) & 7]
        sections = inp.pick(DEADLINES_MS).to_bytes(4, "big") if flags & _DEADLINE else b""
        if flags & _HEADERS:
            headers: dict[str, Any] = dict(inp.pick(PEER_HEADER_SETS))
            if fault == "bad-key":
                headers["Bad Key"] = "v"
            elif fault == "bad-value":
                headers["k"] = 1
            elif fault == "too-many":
                headers.update({f"x{i}": "" for i in range(_MAX_HEADERS + 1)})
            elif fault == "over-limit" and self.max_header_bytes < 0xFFFF:
                headers = _map_of_at_least(self.max_header_bytes + 1)
            encoded = msgspec.msgpack.encode(headers)
            if fault == "undecodable":
                encoded = b"\xc1"
            elif fault == "not-utf8":
                encoded = b"\x81\xa1\xff\xa1a"
            declared = len(encoded)
            if fault == "longer-than-body":
                declared = min(0xFFFF, declared + payload_size + 1)
            sections += declared.to_bytes(2, "big") + encoded
        return (flags if raw is None else raw), sections, bool(choice & 0x40)

    def _legit(self, kind: int, body: bytes, size: int) -> bool:
        """Whether a correct peer may send this frame now (spending its credit), given
        that it keeps the decoder rules: timing, credit, answers, refunds."""
        if not (self.peer_hello_built and self.peer_saw_hello) or self.peer_goodbye_built:
            return False
        if kind in (FrameKind.MESSAGE, FrameKind.REQUEST):
            if size > self.peer_credit:
                return False
            self.peer_credit -= size
            return True
        if kind in (FrameKind.RESPONSE, FrameKind.ERROR):  # an answer to a request it got
            if not self.peer_unanswered:
                return False
            self.peer_unanswered -= 1
            return True
        if kind == FrameKind.CREDIT:  # credit back for message bytes it got
            amount = int.from_bytes(body, "big")
            if amount > self.peer_refundable:
                return False
            self.peer_refundable -= amount
            return True
        if kind == FrameKind.GOODBYE:
            self.peer_goodbye_built = True
            return True
        # CANCEL (of any request: the link does not track the peer's) and DRAINING
        return kind in _EMPTY

    def _add(
        self,
        data: bytes,
        legit: bool,
        expect: EventKey | None,
        fatal: bool = False,
        codes: frozenset[int] | None = None,
    ) -> None:
        if self.built + len(data) > MAX_WIRE_BYTES:
            return
        start = self.built
        self.built += len(data)
        self.wire += data
        self.segments.append(_Segment(start, self.built, legit, expect, fatal, codes))

    def op_deliver(self) -> None:
        inp = self.inp
        size = len(self.wire)
        if inp.byte() >= 0xC0:  # part of what is pending (a frame may stay half-sent)
            size = inp.uint(3) % (size + 1)
        cuts = read_cuts(inp, 4)
        data = bytes(self.wire[:size])
        del self.wire[:size]
        for chunk in split_at(data, cuts):
            self._receive(chunk)

    def _receive(self, chunk: bytes) -> None:
        self.delivered += len(chunk)
        self._account()
        self._call("receive_data", self.link.receive_data, chunk)
        self._take_events()
        if self.holding and self.hello_end is not None and not self.failed:
            held = self.delivered - self.hello_end
            if held > self.window + MAX_HELLO_SIZE:
                raise Violation(
                    f"holding {held} bytes for admission without EARLY_DATA_LIMIT "
                    f"(window {self.window} + MAX_HELLO_SIZE {MAX_HELLO_SIZE})"
                )

    def _account(self) -> None:
        """Update what has been delivered: taint, and the events now owed."""
        segments = self.segments
        while segments and segments[0].start < self.delivered:
            segment = segments[0]
            if not segment.legit and not self.tainted:
                self.tainted = True
                self.fault = segment.codes  # the first misstep: the code it must earn
            if segment.end > self.delivered:
                break
            segments.popleft()
            closed = self.link.state is LinkState.CLOSED
            if (segment.fatal or segment.codes is not None) and not closed:
                self.must_fail = True
            if segment.legit and segment.expect is not None and not self.tainted:
                self.expected.append(segment.expect)
                if segment.expect[0] == "hello":
                    self.hello_end = segment.end
        if (
            self.hello_end is not None
            and not self.admitted
            and self.delivered - self.hello_end > self.window + MAX_HELLO_SIZE
        ):
            self.tainted = True  # a dialer may now refuse it with EARLY_DATA_LIMIT
            self.over_hold = True

    # -- commands ---------------------------------------------------------------------

    def op_send_hello(self) -> None:
        try:
            self.link.send_hello(self.hello)
        except RuntimeError:
            if not self.hello_called:
                raise
            return
        if self.hello_called:
            raise Violation("a second send_hello() did not raise RuntimeError")
        self.hello_called = True
        if self.peer_hello is not None:
            self._opened()

    def op_admit(self) -> None:
        self._call("admit", self.link.admit)
        if self.peer_hello is not None:
            self.holding = False
            self.admitted = True
            self.reached.add("admitted")
        self._take_events()

    def op_send_message(self) -> None:
        cmd_id = self.inp.pick(IDS)
        body = self._our_body()
        section = self._our_headers()
        if section is not None:
            self._send_counted(FrameKind.MESSAGE, cmd_id, 0, body, b"", section)

    def op_send_request(self) -> None:
        cmd_id = self.inp.pick(IDS)
        request_id = self.inp.pick(REQUEST_IDS)
        body = self._our_body()
        deadline = self._our_deadline()
        section = self._our_headers()
        if section is not None:
            self._send_counted(FrameKind.REQUEST, cmd_id, request_id, body, deadline, section)

    def _send_counted(
        self,
        kind: FrameKind,
        cmd_id: int,
        request_id: int,
        body: bytes,
        deadline: bytes,
        section: bytes,
    ) -> None:
        closed = self.goodbye_called or self.failed
        writer = self.link.writer
        try:
            if kind is FrameKind.MESSAGE:
                writer.message(cmd_id, body, headers=section)
            else:
                writer.request(cmd_id, request_id, body, deadline=deadline, headers=section)
        except PeerDisconnected as exc:
            if not closed:
                raise Violation(f"{kind.name} refused on a live link: {exc!r}") from exc
            return
        if closed:
            raise Violation(f"{kind.name} accepted after our GOODBYE or a failure")
        flags = (_DEADLINE if deadline else 0) | (_HEADERS if section else 0)
        self.queued.append((kind, flags, cmd_id, request_id, deadline + section + body))
        if kind is FrameKind.REQUEST:
            self.our_requests.append(request_id)

    def _our_headers(self) -> bytes | None:
        """Pick headers and encode them for the peer (the runtime's limit: the peer's
        HELLO, none before it); None: `encode_headers` refused them, as it must."""
        headers = self.inp.pick(OUR_HEADER_SETS)
        if headers is None:
            return b""
        limit = self.peer_hello.max_header_bytes if self.peer_hello is not None else 0
        problem = _header_problem(headers, limit) if headers else ""
        call = f"encode_headers({_short(headers)}, {limit})"
        try:
            section = encode_headers(headers, limit)
        except HeaderError as exc:
            if not problem:
                raise Violation(f"{call} refused headers that keep the rules: {exc}") from exc
            self.reached.add("refused:headers")
            return None
        except Exception as exc:
            raise Violation(f"{call} raised {exc!r}, not HeaderError ({problem})") from exc
        if problem:
            raise Violation(f"{call} accepted headers the rules refuse: {problem}")
        if not headers:
            if section:
                raise Violation(f"{call} returned {section!r} for no headers")
            return b""
        size = int.from_bytes(section[:2], "big")
        if size != len(section) - 2 or _decode_map(section[2:]) != headers:
            raise Violation(f"{call} returned {section[:40]!r}..., not a section of them")
        self.reached.add("sent-headers")
        return section

    def _our_deadline(self) -> bytes:
        seconds = self.inp.pick(OUR_DEADLINES)
        if seconds is None:
            return b""
        data = encode_deadline(seconds)
        want = min(_MAX_DEADLINE, max(1, math.floor(seconds * 1000)))
        if data != want.to_bytes(4, "big"):
            raise Violation(f"encode_deadline({seconds!r}) is {data.hex()}, not {want} ms")
        return data

    def op_send_response(self) -> None:
        request_id = self._request_to_answer()
        cmd_id = self.inp.pick(IDS)
        body = self._our_body() if cmd_id else b""
        section = self._our_headers()
        if not self.hello_called or section is None:
            return  # a caller answers only requests, which need our HELLO first
        self._call("writer.response", self.link.writer.response, request_id, cmd_id, body, section)
        if not (self.goodbye_called or self.failed):
            flags = _HEADERS if section else 0
            self.replies.append((FrameKind.RESPONSE, flags, cmd_id, request_id, section + body))

    def op_send_error(self) -> None:
        inp = self.inp
        request_id = self._request_to_answer()
        code = inp.pick(CODES)
        text = inp.take(inp.byte() % 64).decode("utf-8", "replace")
        limit = inp.pick(ERROR_LIMITS)
        section = self._our_headers()
        if not self.hello_called or section is None:
            return
        error = self.link.writer.error
        self._call("writer.error", error, request_id, code, text, limit, section)
        if not (self.goodbye_called or self.failed):
            cut = text.encode("utf-8", "replace")[: max(0, limit - 4)]
            body = section + code.to_bytes(4, "big") + cut
            self.replies.append((FrameKind.ERROR, _HEADERS if section else 0, 0, request_id, body))

    def _request_to_answer(self) -> int:
        choice = self.inp.byte()
        if self.requests and not choice & 1:
            return self.requests.popleft()
        return REQUEST_IDS[(choice >> 1) % len(REQUEST_IDS)]

    def op_send_cancel(self) -> None:
        choice = self.inp.byte()
        if self.our_requests and not choice & 1:
            request_id = self.our_requests.pop()  # the newest request we sent
        else:
            request_id = REQUEST_IDS[(choice >> 1) % len(REQUEST_IDS)]
        opened = self.hello_called and self.peer_hello is not None
        waiting = len(self.link.writer.credit.pending)  # the newest `waiting` of `queued`
        self._call("writer.cancel", self.link.writer.cancel, request_id)
        if self.goodbye_called or self.failed:
            return
        start = len(self.queued) - waiting
        for index in range(start, len(self.queued)):  # a request still waiting: dropped unsent
            kind, _, _, queued_id, _ = self.queued[index]
            if kind == FrameKind.REQUEST and queued_id == request_id:
                del self.queued[index]
                return
        if opened:
            self.replies.append((FrameKind.CANCEL, 0, 0, request_id, b""))

    def op_send_draining(self) -> None:
        opened = self.hello_called and self.peer_hello is not None
        self._call("writer.draining", self.link.writer.draining)
        if self.goodbye_called or self.failed:
            return
        if opened:
            self.replies.append((FrameKind.DRAINING, 0, 0, 0, b""))
        else:  # held until both HELLOs are exchanged
            self.drain_pending = True

    def _opened(self) -> None:
        # Both HELLOs exchanged: a DRAINING asked for during setup goes out now.
        if self.drain_pending and not (self.goodbye_called or self.failed):
            self.replies.append((FrameKind.DRAINING, 0, 0, 0, b""))
        self.drain_pending = False

    def _our_body(self) -> bytes:
        inp = self.inp
        choice = inp.byte() % 6
        if choice < 3:
            body = inp.take(inp.byte())
        else:
            fit = max(0, min(self.link.writer.credit.available - HEADER_SIZE, MAX_OUR_BODY))
            body = bytes((fit, fit + 1, 0)[choice - 3])
        if self.our_bytes + len(body) > MAX_WIRE_BYTES:
            body = b""
        self.our_bytes += len(body)
        return body

    def op_consumed(self) -> None:
        choice = self.inp.byte()
        size = sum(self.unconsumed.popleft() for _ in range(min(choice % 4, len(self.unconsumed))))
        self.consumed_total += size
        self.idle = bool(choice & 4)
        self._call("consumed", self.link.consumed, size, idle=self.idle)

    def op_send_goodbye(self) -> None:
        inp = self.inp
        code = inp.pick(CODES)
        reason = inp.take(inp.byte() % 64).decode("utf-8", "replace")
        link = self.link
        was = link.state
        waiting = len(link.writer.credit.pending)
        dropped = self._call("send_goodbye", link.send_goodbye, code, reason)
        self.goodbye_called = True
        if not self.hello_called and link.state is LinkState.CLOSED:
            # GOODBYE before our HELLO says nothing (a peer would refuse it) and ends
            # the link outright: what the peer sends from now on is never read.
            self.tainted = True
        if was is LinkState.CLOSING or was is LinkState.CLOSED:
            if dropped:
                raise Violation(f"send_goodbye() on a {was.name} link dropped {dropped}")
            return
        if dropped != waiting:
            raise Violation(f"send_goodbye() dropped {dropped} of {waiting} waiting frames")
        if dropped > len(self.queued):
            raise Violation(f"send_goodbye() dropped {dropped} frames, {len(self.queued)} sent")
        for _ in range(dropped):
            self.queued.pop()

    def op_pull(self) -> None:
        self._pull()

    OPS = (
        op_peer_hello,
        op_peer_frame,
        op_peer_header,
        op_peer_raw,
        op_deliver,
        op_send_hello,
        op_admit,
        op_send_message,
        op_send_request,
        op_send_response,
        op_send_error,
        op_consumed,
        op_send_goodbye,
        op_pull,
        op_send_cancel,
        op_send_draining,
    )

    # -- checks -----------------------------------------------------------------------

    def _take_events(self) -> None:
        events = self._call("events", self.link.events)
        if not events:
            return
        if self.failed:
            raise Violation(f"events after LinkFailed: {events!r}")
        for index, event in enumerate(events):
            name = type(event).__name__
            self.reached.add(name)
            if getattr(event, "headers", None) is not None:
                self.reached.add(f"headers:{name}")
            if isinstance(event, RequestReceived) and event.deadline is not None:
                self.reached.add(f"deadline:{name}")
            if isinstance(event, LinkFailed):
                if index != len(events) - 1:
                    raise Violation(f"events after LinkFailed: {events[index:]!r}")
                self._failed(event)
                return
            self._check_event(event)
            if not self.tainted:
                want = self.expected.popleft() if self.expected else None
                if _event_key(event) != want:
                    raise Violation(f"{event!r} arrived where the peer's frames give {want!r}")

    def _check_event(self, event: LinkEvent) -> None:
        if self.peer_goodbye:
            raise Violation(f"{event!r} after GoodbyeReceived")
        if isinstance(event, HelloReceived):
            if self.peer_hello is not None:
                raise Violation("a second HelloReceived")
            self.peer_hello = event.hello
            self.granted += event.hello.window
            self.holding = self.hello_called  # the dialer holds the rest until admit()
            if self.hello_called:
                self._opened()
            return
        if self.peer_hello is None:
            raise Violation(f"{event!r} before HelloReceived")
        if self.holding:
            raise Violation(f"{event!r} on the dialer before admit()")
        headers = getattr(event, "headers", None)
        if headers is not None and (type(headers) is not dict or _header_problem(headers, MAX_ID)):
            raise Violation(f"{event!r}: headers that break the rules")
        if isinstance(event, MessageReceived | RequestReceived):
            plain = HEADER_SIZE + len(event.body)
            sections = (4 if event.deadline is not None else 0) + (2 if headers is not None else 0)
            if event.size < plain + sections or (not sections and event.size != plain):
                raise Violation(f"{event!r}: size is not header + sections + body")
            if not self.hello_called:
                raise Violation(f"{event!r} before our HELLO was sent")
            self.unconsumed.append(event.size)
            if isinstance(event, RequestReceived):
                self.requests.append(event.request_id)
        elif isinstance(event, CreditReceived):
            self.granted += event.amount
        elif isinstance(event, GoodbyeReceived):
            self.peer_goodbye = True
        elif isinstance(event, CancelReceived):
            if not 1 <= event.request_id <= MAX_ID:
                raise Violation(f"{event!r}: not a request ID")
        elif isinstance(event, DrainingReceived):
            self.peer_draining = True

    def _failed(self, event: LinkFailed) -> None:
        if event.code not in _FAILURE_CODES:
            raise Violation(f"{event!r}: not a failure code")
        if self.link.state is not LinkState.CLOSED:
            raise Violation(f"{event!r} but the link is {self.link.state.name}")
        if not self.tainted:
            raise Violation(f"the link failed a well-behaved peer: {event!r}")
        if self.fault is not None:
            allowed = self.fault | ({int(ErrorCode.EARLY_DATA_LIMIT)} if self.over_hold else set())
            if event.code not in allowed:
                names = sorted(ErrorCode(code).name for code in allowed)
                raise Violation(f"{event!r} for a frame whose body earns one of {names}")
        self.failed = True
        self.reached.add(f"failed:{ErrorCode(event.code).name}")
        self.holding = False
        self.queued.clear()  # unsent output is discarded on failure
        self.replies.clear()

    def _check_state(self) -> None:
        link = self.link
        state = link.state
        rank = _STATE_RANK[state]
        if rank < self.rank:
            raise Violation(f"the link went back to {state.name}")
        self.rank = rank
        self.reached.add(f"state:{state.name}")
        if self.failed and state is not LinkState.CLOSED:
            raise Violation(f"the link is {state.name} after LinkFailed")
        if not 0 <= link.receive.used <= self.window:
            raise Violation(f"inbound_bytes {link.receive.used}, window {self.window}")
        credit, writer = link.writer.credit, link.writer
        if credit.pending_bytes < 0 or writer.unsent_bytes < 0:
            raise Violation(f"pending_bytes {credit.pending_bytes}, unsent {writer.unsent_bytes}")
        if not 0 <= credit.available <= MAX_ID:
            raise Violation(f"send_credit {credit.available}")
        if link.sending != (not (self.goodbye_called or self.failed)):
            raise Violation(f"sending is {link.sending} (goodbye: {self.goodbye_called})")
        if link.peer_draining != self.peer_draining:
            raise Violation(
                f"peer_draining is {link.peer_draining}, DRAINING seen: {self.peer_draining}"
            )

    def _pull(self) -> None:
        link = self.link
        unsent = link.writer.unsent_bytes
        data = self._call("data_to_send", link.data_to_send)
        if self.failed and data:
            raise Violation(f"{len(data)} bytes to send after LinkFailed")
        if link.writer.unsent_bytes:
            raise Violation(
                f"unsent_bytes is {link.writer.unsent_bytes} right after data_to_send()"
            )
        frames: list[tuple[int, int, int, int, bytes]] = []
        try:
            self.out.feed(data)
            self.out.drain_into(frames)
        except ProtocolError as exc:
            raise Violation(f"the link sent a malformed stream: {exc}") from exc
        if self.out.buffered:
            raise Violation("data_to_send() returned part of a frame")
        counted = 0
        for frame in frames:
            kind, flags, cmd_id, _, body = frame
            name = FrameKind(kind).name
            self.reached.add(f"sent:{name}")
            if flags:
                self.reached.add(f"sent:{name}+flags")
            if self.out_goodbye:
                raise Violation(f"{name} sent after our GOODBYE")
            if not self.out_frames and kind != FrameKind.HELLO:
                raise Violation(f"the first frame sent is {name}, not HELLO")
            self.out_frames += 1
            if flags:
                limit = self.peer_hello.max_header_bytes if self.peer_hello is not None else 0
                if isinstance(reference_body(kind, flags, cmd_id, body, limit), frozenset):
                    raise Violation(f"sent a {name} whose body the peer refuses: {body[:40]!r}")
            if kind in (FrameKind.MESSAGE, FrameKind.REQUEST):
                counted += HEADER_SIZE + len(body)
                self._sent_counted(frame)
            elif kind in (
                FrameKind.RESPONSE,
                FrameKind.ERROR,
                FrameKind.CANCEL,
                FrameKind.DRAINING,
            ):
                want = self.replies.popleft() if self.replies else None
                if frame != want:
                    raise Violation(f"sent {name} {frame!r}, but the one sent was {want!r}")
                if kind == FrameKind.DRAINING and not self.peer_hello_built:
                    raise Violation(
                        "DRAINING sent before the peer's HELLO: a correct peer refuses it "
                        "(HELLO_REQUIRED) until it has sent its own"
                    )
            else:
                self._sent_control(FrameKind(kind), body)
        if counted != unsent:
            raise Violation(f"unsent_bytes was {unsent}; {counted} MESSAGE/REQUEST bytes pulled")

    def _sent_counted(self, frame: tuple[int, int, int, int, bytes]) -> None:
        size = HEADER_SIZE + len(frame[4])
        self.counted_sent += size
        self.peer_refundable += size
        self.peer_unanswered += frame[0] == FrameKind.REQUEST
        if self.counted_sent > self.granted:
            raise Violation(f"sent {self.counted_sent} bytes of messages, credit {self.granted}")
        want = self.queued.popleft() if self.queued else None
        if frame != want:
            raise Violation(f"sent {frame!r}, but the next message sent was {want!r}")

    def _sent_control(self, kind: FrameKind, body: bytes) -> None:
        if kind is FrameKind.HELLO:
            if self.out_hello:
                raise Violation("a second HELLO sent")
            if body != encode_hello(self.hello):
                raise Violation(f"HELLO body {body.hex()} is not our HELLO")
            self.out_hello = True
            self.peer_saw_hello = True
            self.peer_credit = min(self.peer_credit + self.window, MAX_ID)
        elif kind is FrameKind.CREDIT:
            amount = int.from_bytes(body, "big")
            self.credit_sent += amount
            if self.credit_sent > self.consumed_total:
                raise Violation(f"granted {self.credit_sent} bytes, {self.consumed_total} consumed")
            self.peer_credit = min(self.peer_credit + amount, MAX_ID)
        elif kind is FrameKind.GOODBYE:
            self.out_goodbye = True

    def _finish(self) -> None:
        """Deliver everything, admit, consume everything, pull: then every legit frame
        has its event and the window is open again."""
        link = self.link
        if not self.failed and self.wire:
            data = bytes(self.wire)
            self.wire.clear()
            self._receive(data)
        if not self.failed:
            self.op_admit()
        sizes = list(self.unconsumed)
        self.unconsumed.clear()
        for index, size in enumerate(sizes):
            self.consumed_total += size
            self.idle = index == len(sizes) - 1
            self._call("consumed", link.consumed, size, idle=self.idle)
        self._check_state()
        self._pull()
        if self.failed:
            return
        if self.must_fail:
            raise Violation("a frame breaking a decoder or body rule was delivered; no failure")
        self.reached.add("finished")
        if not self.tainted and self.expected:
            raise Violation(f"frames without their event: {list(self.expected)[:4]!r}")
        inbound = link.receive.used
        if not self.idle or not inbound:
            return  # credit goes back early only when the last consumed() said idle
        if inbound >= max(1, self.window // 64) or (
            self.window - inbound < self.max_frame_size + HEADER_SIZE
        ):
            raise Violation(f"all handled, yet {inbound} of the {self.window}-byte window is used")


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."


def _expected_event(
    kind: int,
    cmd_id: int,
    request_id: int,
    size: int,
    deadline: int | None,
    headers: dict[str, Any] | None,
    payload: bytes,
) -> EventKey:
    if kind == FrameKind.MESSAGE:
        return ("message", cmd_id, payload, size, headers)
    if kind == FrameKind.REQUEST:
        return ("request", cmd_id, request_id, payload, size, deadline, headers)
    if kind == FrameKind.RESPONSE:
        return ("response", request_id, cmd_id, payload, headers)
    if kind == FrameKind.CREDIT:
        return ("credit", int.from_bytes(payload, "big"))
    if kind == FrameKind.CANCEL:
        return ("cancel", request_id)
    if kind == FrameKind.DRAINING:
        return ("draining",)
    code, text = int.from_bytes(payload[:4], "big"), payload[4:].decode("utf-8", "replace")
    if kind == FrameKind.ERROR:
        return ("error", request_id, code, text, headers)
    return ("goodbye", code, text)


def _event_key(event: LinkEvent) -> EventKey:
    if isinstance(event, HelloReceived):
        return ("hello", event.hello)
    if isinstance(event, MessageReceived):
        return ("message", event.cmd_id, event.body, event.size, event.headers)
    if isinstance(event, RequestReceived):
        return (
            "request",
            event.cmd_id,
            event.request_id,
            event.body,
            event.size,
            event.deadline,
            event.headers,
        )
    if isinstance(event, ResponseReceived):
        return ("response", event.request_id, event.cmd_id, event.body, event.headers)
    if isinstance(event, ErrorReceived):
        return ("error", event.request_id, event.code, event.text, event.headers)
    if isinstance(event, CreditReceived):
        return ("credit", event.amount)
    if isinstance(event, GoodbyeReceived):
        return ("goodbye", event.code, event.reason)
    if isinstance(event, CancelReceived):
        return ("cancel", event.request_id)
    if isinstance(event, DrainingReceived):
        return ("draining",)
    return (type(event).__name__,)


# -- seeds -----------------------------------------------------------------------------------


class LinkScript:
    """Writes a `fuzz_link` input op by op (the arguments `LinkRun` reads)."""

    def __init__(
        self, max_frame_size: int = 4096, window: int = 8192, max_header_bytes: int = 4096
    ) -> None:
        self.out = ByteOutput()
        self.out.pick(LINK_MAX_FRAME_SIZES, max_frame_size)
        self.out.pick(LINK_WINDOWS, window)
        self.out.pick(LINK_HEADER_LIMITS, max_header_bytes)

    @property
    def data(self) -> bytes:
        return bytes(self.out.data)

    def _op(self, name: str) -> ByteOutput:
        self.out.pick(LINK_OPS, name)
        return self.out

    def peer_hello(
        self,
        node_id: str = "node-b",
        window: int = 65536,
        max_frame_size: int = 65536,
        max_header_bytes: int = 4096,
        schema: bytes = b"",
    ) -> LinkScript:
        out = self._op("peer_hello")
        out.pick(PEER_IDS, node_id)
        out.uint(7, 4)
        out.pick(PEER_LIMITS, max_frame_size)
        out.pick(PEER_LIMITS, window)
        out.pick(PEER_HEADER_LIMITS, max_header_bytes)
        out.pick(PEER_SCHEMAS, schema)
        return self

    def peer_frame(
        self,
        kind: int,
        body: bytes = b"",
        cmd_id: int = 0,
        request_id: int = 0,
        *,
        size: str = "",
        code: int = 0,
        deadline: int | None = None,
        headers: Mapping[str, str | bytes] | None = None,
        fault: str = "none",
        cut: bool = False,
        flags: int | None = None,
        short: int | None = None,
    ) -> LinkScript:
        """A frame from the peer: `body` literally (< 256 bytes), or for MESSAGE,
        REQUEST, RESPONSE a `size` of ``fit`` (the peer's credit), ``fit+1``,
        ``max``, ``max+1``, ``hello+1``, ``empty``; for CREDIT ``all`` (what it
        may return) or ``all+1``; ERROR/GOODBYE take `code` + `body` (< 64);
        ERROR/GOODBYE keep only `short` (< 4) bytes when it is given; CANCEL/DRAINING
        are empty unless given a `body`.

        Sections (`LinkRun._peer_sections`): a `deadline` (one of `DEADLINES_MS`),
        `headers` (one of `PEER_HEADER_SETS`) spoilt by a `fault` (`SECTION_FAULTS`),
        the body `cut` short inside them, and `flags` to write instead of theirs."""
        out = self._op("peer_frame")
        out.pick(PEER_KINDS, kind)
        has_cmd, needs_request = kind in _HAS_CMD_ID, kind in _NEEDS_REQUEST_ID
        shape = (0 if has_cmd or not cmd_id else 1) | (0 if needs_request or not request_id else 2)
        if (kind in _EMPTY and body) or (kind in _CODE_TEXT and short is not None):
            shape |= 4
        out.byte(shape)
        if shape & 1 or has_cmd:
            out.pick(IDS, cmd_id)
        if shape & 2:
            out.pick(IDS, request_id)
        elif needs_request:
            out.pick(REQUEST_IDS, request_id)
        if kind in _CODE_TEXT:
            out.pick(CODES, code)
            out.byte(len(body))
            out.raw(body)
            if short is not None:
                out.below(short, 4)
        elif kind == FrameKind.CREDIT:
            if size:
                out.byte(("all", "all+1").index(size))
            else:
                out.byte(2)
                out.raw(body)
        elif kind in _EMPTY:
            if body:
                out.byte(len(body))
                out.raw(body)
        elif not has_cmd:
            out.byte(len(body))
            out.raw(body)
        elif size:
            out.byte(4 + ("fit", "fit+1", "max", "max+1", "hello+1", "empty").index(size))
        else:
            out.byte(0)
            out.byte(len(body))
            out.raw(body)
        sections = (0 if deadline is None else _DEADLINE) | (0 if headers is None else _HEADERS)
        sections |= (0 if flags is None else 4) | SECTION_FAULTS.index(fault) << 3
        out.byte(sections | (0x40 if cut else 0))
        if flags is not None:
            out.pick(RAW_FLAGS, flags)
        if deadline is not None:
            out.pick(DEADLINES_MS, deadline)
        if headers is not None:
            out.pick(PEER_HEADER_SETS, dict(headers))
        return self

    def credit(self, amount: int | None = None) -> LinkScript:
        """CREDIT from the peer: `amount`, or (None) all it may return."""
        if amount is None:
            return self.peer_frame(FrameKind.CREDIT, size="all")
        return self.peer_frame(FrameKind.CREDIT, amount.to_bytes(4, "big"))

    def peer_header(
        self, kind: int, length: str, cmd_id: int = 0, request_id: int = 0, flags: int = 0
    ) -> LinkScript:
        out = self._op("peer_header")
        out.pick(PEER_KINDS, kind)
        out.pick(HEADER_LENGTHS, length)
        out.pick(IDS, cmd_id)
        out.pick(IDS, request_id)
        out.byte(0)
        out.pick(RAW_FLAGS, flags)
        return self

    def peer_raw(self, data: bytes) -> LinkScript:
        self._op("peer_raw").byte(len(data))
        self.out.raw(data)
        return self

    def deliver(self, cuts: Sequence[int] = (), *, part: int | None = None) -> LinkScript:
        out = self._op("deliver")
        if part is None:
            out.byte(0)
        else:
            out.byte(0xC0)
            out.uint(part, 3)
        write_cuts(out, cuts)
        return self

    def send_hello(self) -> LinkScript:
        self._op("send_hello")
        return self

    def admit(self) -> LinkScript:
        self._op("admit")
        return self

    def pull(self) -> LinkScript:
        self._op("pull")
        return self

    def _body(self, body: bytes, size: str) -> None:
        if size:
            self.out.byte(3 + ("fit", "fit+1", "empty").index(size))
        else:
            self.out.byte(0)
            self.out.byte(len(body))
            self.out.raw(body)

    def _headers(self, headers: Mapping[Any, Any] | None) -> None:
        self.out.pick(OUR_HEADER_SETS, None if headers is None else dict(headers))

    def send_message(
        self,
        cmd_id: int,
        body: bytes = b"",
        *,
        size: str = "",
        headers: Mapping[Any, Any] | None = None,
    ) -> LinkScript:
        """`headers`: one of `OUR_HEADER_SETS`, as all `headers` arguments below."""
        self._op("send_message").pick(IDS, cmd_id)
        self._body(body, size)
        self._headers(headers)
        return self

    def send_request(
        self,
        cmd_id: int,
        request_id: int,
        body: bytes = b"",
        *,
        deadline: float | None = None,
        headers: Mapping[Any, Any] | None = None,
    ) -> LinkScript:
        """`deadline`: seconds, one of `OUR_DEADLINES`."""
        out = self._op("send_request")
        out.pick(IDS, cmd_id)
        out.pick(REQUEST_IDS, request_id)
        self._body(body, "")
        out.pick(OUR_DEADLINES, deadline)
        self._headers(headers)
        return self

    def send_response(
        self, cmd_id: int, body: bytes = b"", *, headers: Mapping[Any, Any] | None = None
    ) -> LinkScript:
        """Answer the oldest request received."""
        self._op("send_response").byte(0)
        self.out.pick(IDS, cmd_id)
        if cmd_id:
            self._body(body, "")
        self._headers(headers)
        return self

    def send_error(
        self,
        code: int,
        text: bytes,
        limit: int = 256,
        *,
        headers: Mapping[Any, Any] | None = None,
    ) -> LinkScript:
        """Fail the oldest request received."""
        out = self._op("send_error")
        out.byte(0)
        out.pick(CODES, code)
        out.byte(len(text))
        out.raw(text)
        out.pick(ERROR_LIMITS, limit)
        self._headers(headers)
        return self

    def send_cancel(self, request_id: int | None = None) -> LinkScript:
        """CANCEL our newest request (None), or `request_id`."""
        out = self._op("send_cancel")
        out.byte(0 if request_id is None else 1 | REQUEST_IDS.index(request_id) << 1)
        return self

    def send_draining(self) -> LinkScript:
        self._op("send_draining")
        return self

    def consumed(self, count: int, *, idle: bool) -> LinkScript:
        self._op("consumed").byte(count | (4 if idle else 0))
        return self

    def send_goodbye(self, code: int = 0, reason: bytes = b"") -> LinkScript:
        out = self._op("send_goodbye")
        out.pick(CODES, code)
        out.byte(len(reason))
        out.raw(reason)
        return self


def _decoder_input(
    stream: bytes, max_frame_size: int = 64, style: int = 0, cuts: Sequence[int] = ()
) -> bytes:
    out = ByteOutput()
    out.pick(DECODER_MAX_SIZES, max_frame_size)
    out.byte(style)
    write_cuts(out, cuts)
    out.raw(stream)
    return bytes(out.data)


def _code_text(code: int, text: bytes) -> bytes:
    return code.to_bytes(4, "big") + text


def _every_kind() -> list[bytes]:
    return list(
        (
            encode_frame(FrameKind.HELLO, b"\x95\xa6node-a"),
            encode_frame(FrameKind.MESSAGE, b"one-way", cmd_id=1),
            encode_frame(FrameKind.MESSAGE, b"", cmd_id=0),
            encode_frame(FrameKind.REQUEST, b"question", cmd_id=2, request_id=1),
            encode_frame(FrameKind.RESPONSE, b"answer", cmd_id=3, request_id=1),
            encode_frame(FrameKind.RESPONSE, b"", cmd_id=0, request_id=MAX_ID),
            encode_frame(FrameKind.ERROR, _code_text(1, b"handler raised"), request_id=2),
            encode_frame(FrameKind.CREDIT, (1024).to_bytes(4, "big")),
            encode_frame(FrameKind.GOODBYE, _code_text(0, b"bye")),
            # version 2: flags and their sections, CANCEL, DRAINING
            encode_frame(FrameKind.MESSAGE, _SEED_HEADERS + b"one-way", cmd_id=4, flags=_HEADERS),
            encode_frame(FrameKind.REQUEST, _SEED_DEADLINE + b"q", cmd_id=5, request_id=2, flags=1),
            encode_frame(
                FrameKind.REQUEST,
                _SEED_DEADLINE + _SEED_HEADERS + b"q",
                cmd_id=5,
                request_id=3,
                flags=_DEADLINE | _HEADERS,
            ),
            encode_frame(FrameKind.RESPONSE, _SEED_HEADERS, request_id=2, flags=_HEADERS),
            encode_frame(
                FrameKind.ERROR, _SEED_HEADERS + _code_text(7, b"x"), request_id=3, flags=_HEADERS
            ),
            encode_frame(FrameKind.CANCEL, request_id=2),
            encode_frame(FrameKind.DRAINING),
        )
    )


_SEED_HEADERS: Final = b"\x00\x05\x81\xa1k\xa1v"  # a headers section: {"k": "v"}
_SEED_DEADLINE: Final = (1500).to_bytes(4, "big")


def _hello_structured(
    *,
    mode: int = 0,
    count: int = 7,
    node_id: bytes = b"\x00",
    incarnation: bytes = b"\x01",
    codecs: bytes = b"\x01\x00",
    max_frame_size: bytes = b"\x04",
    window: bytes = b"\x04",
    max_header_bytes: bytes = b"\x00",
    schema: bytes = b"\x00",
    extras: bytes = b"",
) -> bytes:
    """A `fuzz_hello` input choosing each field with the bytes `_hello_values` reads:
    a table index, or the index past the table and what follows it."""
    out = ByteOutput()
    out.byte(mode)
    out.pick(HELLO_FIELD_COUNTS, count)
    fields = node_id + incarnation + codecs + max_frame_size + window + max_header_bytes + schema
    out.raw(fields + extras)
    return bytes(out.data)


def _hello_raw(body: bytes) -> bytes:
    return b"\x01" + body


def _valid_hello_body(**fields: object) -> bytes:
    values: dict[str, object] = {
        "node_id": "node-b",
        "incarnation": 7,
        "codecs": ["msgpack", "json"],
        "max_frame_size": 4096,
        "window": 65536,
        "max_header_bytes": 4096,
        "schema": b"",
    }
    values.update(fields)
    return msgspec.msgpack.encode(list(values.values()))


def _link_seeds() -> dict[str, bytes]:
    M, R, S = FrameKind.MESSAGE, FrameKind.REQUEST, FrameKind.RESPONSE
    seeds: dict[str, bytes] = {}
    # The dialer: HELLO out, the peer's HELLO and first frames held until admit().
    seeds["seed-dialer-session"] = (
        LinkScript()
        .send_hello()
        .send_message(1, b"queued before the peer's HELLO")
        .pull()
        .peer_hello()
        .peer_frame(M, b"first", cmd_id=1)
        .peer_frame(R, b"question", cmd_id=2, request_id=1)
        .deliver(cuts=(5, 17, 40))
        .admit()
        .pull()
        .consumed(2, idle=True)
        .send_response(7, b"answer")
        .send_request(2, 7, b"my question")
        .send_request(1, 255, b"another")
        .pull()
        .peer_frame(S, b"my answer", cmd_id=2, request_id=7)
        .peer_frame(FrameKind.ERROR, b"failed", request_id=255, code=1)
        .credit()
        .deliver()
        .pull()
        .send_goodbye(0, b"done")
        .pull()
        .peer_frame(M, b"in flight", cmd_id=7)
        .peer_frame(FrameKind.GOODBYE, b"bye", code=0)
        .deliver(cuts=(3,))
        .consumed(1, idle=True)
        .pull()
        .data
    )
    # The acceptor: the peer's HELLO first, then ours; credit flows both ways.
    seeds["seed-acceptor-credit"] = (
        LinkScript(max_frame_size=4096, window=4096)
        .peer_hello(window=4096, max_frame_size=4096)
        .deliver()
        .send_hello()
        .admit()
        .pull()
        .peer_frame(M, cmd_id=1, size="fit")
        .deliver(cuts=(100, 2000))
        .consumed(1, idle=True)
        .pull()
        .peer_frame(M, b"after credit", cmd_id=2)
        .peer_frame(R, b"req", cmd_id=2, request_id=65535)
        .deliver()
        .send_message(7, size="fit")
        .send_message(255, b"waits for credit")
        .pull()
        .credit(64)
        .deliver()
        .pull()
        .send_error(1, b"no handler", limit=16)
        .consumed(3, idle=False)
        .pull()
        .peer_frame(FrameKind.GOODBYE, b"leaving", code=0)
        .deliver()
        .send_goodbye(0, b"ok")
        .pull()
        .data
    )
    # Large frames: the peer's HELLO and a frame larger than MAX_HELLO_SIZE, apart.
    seeds["seed-large-frames"] = (
        LinkScript(max_frame_size=100_000, window=300_000)
        .send_hello()
        .pull()
        .peer_hello()
        .deliver()
        .admit()
        .peer_frame(M, cmd_id=1, size="max")
        .deliver(cuts=(4000, 4100, 65000))
        .consumed(1, idle=True)
        .send_message(2, size="fit")
        .pull()
        .data
    )
    # Early data: the dialer holds frames for admission, up to a limit.
    script = LinkScript(max_frame_size=65536, window=1024).send_hello().pull().peer_hello()
    script.deliver().credit(0).deliver(cuts=(7,))  # held, not handled yet
    for _ in range(2):
        script.peer_frame(S, cmd_id=1, request_id=1, size="max")
    seeds["seed-early-data-limit"] = script.deliver(part=70_000).deliver().admit().data
    # Violations, each a different LinkFailed.
    seeds["seed-frame-before-hello"] = (
        LinkScript().send_hello().peer_frame(M, b"early", cmd_id=1).deliver().data
    )
    seeds["seed-acceptor-refuses-early-frame"] = (
        LinkScript().peer_hello().peer_frame(M, b"x", cmd_id=1).deliver().pull().data
    )
    seeds["seed-flow-control"] = (
        LinkScript(window=1024)
        .send_hello()
        .pull()
        .peer_hello()
        .deliver()
        .admit()
        .peer_frame(M, cmd_id=1, size="fit+1")
        .deliver()
        .data
    )
    seeds["seed-second-hello"] = (
        LinkScript().send_hello().pull().peer_hello().peer_hello().deliver().admit().data
    )
    seeds["seed-raw-headers"] = (
        LinkScript()
        .send_hello()
        .pull()
        .peer_hello()
        .deliver()
        .admit()
        .peer_raw(encode_frame(M, b"raw", cmd_id=1) + encode_frame(FrameKind.CREDIT, bytes(4)))
        .deliver(cuts=(10,))
        .peer_header(M, "max+1", cmd_id=1)
        .deliver()
        .data
    )
    seeds["seed-after-goodbye"] = (
        LinkScript()
        .send_hello()
        .pull()
        .peer_hello()
        .peer_frame(FrameKind.GOODBYE, b"bye", code=0)
        .deliver()
        .admit()
        .peer_raw(encode_frame(M, b"late", cmd_id=1))
        .deliver(part=10)
        .deliver()
        .send_message(1, b"too late")
        .send_goodbye()
        .send_message(1, b"too late")
        .pull()
        .data
    )
    # The peer's GOODBYE is held with a bad frame after it; ours makes admit() close
    # the link on the GOODBYE, so the bad frame is never parsed.
    seeds["seed-bad-frame-after-held-goodbye"] = (
        LinkScript()
        .send_hello()
        .pull()
        .peer_hello()
        .peer_frame(FrameKind.GOODBYE, b"bye", code=0)
        .deliver()
        .peer_frame(M, cmd_id=0, request_id=2)
        .deliver(part=10)
        .deliver()
        .send_goodbye()
        .pull()
        .admit()
        .data
    )
    seeds["seed-credit-after-goodbye"] = (
        LinkScript()
        .send_hello()
        .pull()
        .peer_hello()
        .deliver()
        .admit()
        .peer_frame(FrameKind.GOODBYE, b"bye", code=5)
        .credit(0)
        .deliver(cuts=(25,))
        .data
    )
    seeds.update(_link_v2_seeds())
    return seeds


def _opened(max_header_bytes: int = 4096, **hello: Any) -> LinkScript:
    """A dialer's script up to an admitted, OPEN link."""
    script = LinkScript(max_header_bytes=max_header_bytes).send_hello().pull()
    return script.peer_hello(**hello).deliver().admit()


def _link_v2_seeds() -> dict[str, bytes]:
    M, R, S, E = FrameKind.MESSAGE, FrameKind.REQUEST, FrameKind.RESPONSE, FrameKind.ERROR
    seeds: dict[str, bytes] = {}
    # Headers, deadlines, CANCEL and DRAINING both ways, all well-behaved.
    seeds["seed-v2-session"] = (
        _opened(schema=PEER_SCHEMAS[1])
        .peer_frame(M, b"traced", cmd_id=1, headers=PEER_HEADER_SETS[1])
        .peer_frame(R, b"q1", cmd_id=2, request_id=1, deadline=1500, headers={"k": "v"})
        .peer_frame(R, b"q2", cmd_id=2, request_id=2, deadline=1)
        .peer_frame(FrameKind.CANCEL, request_id=2)
        .deliver(cuts=(20, 70))
        .send_message(7, b"mine", headers={"k": "v"})
        .send_request(2, 7, b"my question", deadline=1.5, headers=OUR_HEADER_SETS[2])
        .send_request(2, 255, b"another", deadline=0.0001)
        .send_cancel()
        .pull()
        .consumed(3, idle=True)
        .send_response(7, b"answer", headers=OUR_HEADER_SETS[3])
        .send_error(1, b"cancelled", headers={"k": "v"})
        .pull()
        .peer_frame(S, b"my answer", cmd_id=7, request_id=7, headers=PEER_HEADER_SETS[2])
        .peer_frame(E, b"cancelled", request_id=255, code=1, headers=PEER_HEADER_SETS[3])
        .peer_frame(FrameKind.DRAINING)
        .credit()
        .deliver(cuts=(3,))
        .send_draining()
        .send_goodbye(0, b"done")
        .pull()
        .peer_frame(FrameKind.GOODBYE, b"bye", code=0)
        .deliver()
        .data
    )
    # encode_headers refuses what breaks a rule or the peer's limit; nothing is sent then.
    script = _opened(max_header_bytes=16)
    for headers in OUR_HEADER_SETS[4:9]:  # 64 (too big for 16 bytes), big, bad key...
        script.send_message(1, b"refused", headers=headers)
    seeds["seed-v2-header-refusals"] = (
        script.send_message(1, b"sent", headers={"k": "v"})
        .send_request(1, 1, b"plain", headers={})
        .pull()
        .data
    )
    # A body that breaks a rule closes the link with the code it earns.
    seeds["seed-v2-bad-header-key"] = (
        _opened().peer_frame(M, b"m", cmd_id=1, headers={"k": "v"}, fault="bad-key").deliver().data
    )
    seeds["seed-v2-headers-too-large"] = (
        _opened(max_header_bytes=16)
        .peer_frame(R, b"r", cmd_id=1, request_id=1, headers={"k": "v"}, fault="over-limit")
        .deliver()
        .data
    )
    seeds["seed-v2-section-longer-than-body"] = (
        _opened()
        .send_request(1, 1, b"?")
        .pull()
        .peer_frame(S, b"r", cmd_id=1, request_id=1, headers={"k": "v"}, fault="longer-than-body")
        .deliver()
        .data
    )
    seeds["seed-v2-deadline-cut"] = (
        _opened().peer_frame(R, b"", cmd_id=1, request_id=1, deadline=1, cut=True).deliver().data
    )
    seeds["seed-v2-error-without-code"] = (
        _opened()
        .send_request(1, 1, b"?")
        .pull()
        .peer_frame(E, request_id=1, headers={"k": "v"}, short=2)  # the code cut short
        .deliver()
        .data
    )
    # Flags a kind may not carry, and malformed CANCEL / DRAINING, fail on the header.
    seeds["seed-v2-flags-on-credit"] = (
        _opened().peer_frame(FrameKind.CREDIT, bytes(4), headers={"k": "v"}).deliver().data
    )
    seeds["seed-v2-unknown-flag"] = (
        _opened().peer_frame(M, b"m", cmd_id=1, headers={"k": "v"}, flags=4).deliver().data
    )
    seeds["seed-v2-cancel-with-body"] = (
        _opened().peer_frame(FrameKind.CANCEL, b"x", request_id=1).deliver().data
    )
    # CANCEL and DRAINING follow the HELLO and GOODBYE rules of every control frame.
    seeds["seed-v2-draining-before-our-hello"] = (
        LinkScript().peer_hello().peer_frame(FrameKind.DRAINING).deliver().pull().data
    )
    seeds["seed-v2-cancel-after-goodbye"] = (
        _opened()
        .peer_frame(FrameKind.GOODBYE, b"bye", code=0)
        .peer_frame(FrameKind.CANCEL, request_id=1)
        .deliver(cuts=(30,))
        .data
    )
    # Our CANCEL waits for the link to open; our DRAINING for the peer's HELLO.
    seeds["seed-v2-cancel-and-draining-timing"] = (
        LinkScript()
        .send_cancel(1)
        .send_draining()
        .peer_hello()
        .deliver()
        .send_hello()
        .send_cancel(1)
        .send_draining()
        .pull()
        .send_goodbye()
        .send_cancel(1)
        .send_draining()
        .pull()
        .data
    )
    return seeds


def seeds() -> dict[str, dict[str, bytes]]:
    """The seed corpus, by target and file name (``tests/fuzz/corpus/<target>/<name>``)."""
    big = encode_frame(FrameKind.MESSAGE, bytes(range(256)) * 40, cmd_id=9)  # 10 KiB body
    frames = _every_kind()
    stream = b"".join(frames)
    bad_headers = {
        "version-1": b"\x01\x02" + bytes(14),  # a version 1 peer
        "version-3": b"\x03\x02" + bytes(14),
        "unknown-kind": b"\x02\x0a" + bytes(14),
        "unknown-flag": b"\x02\x02\x00\x04" + bytes(12),
        "deadline-on-message": encode_header(FrameKind.MESSAGE, 4, flags=_DEADLINE) + bytes(4),
        "headers-on-goodbye": encode_frame(FrameKind.GOODBYE, bytes(4), flags=_HEADERS),
        "cancel-body": encode_frame(FrameKind.CANCEL, b"x", request_id=1),
        "cancel-without-id": encode_frame(FrameKind.CANCEL),
        "draining-with-id": encode_frame(FrameKind.DRAINING, request_id=1),
        "too-large": encode_header(FrameKind.MESSAGE, 65),
        "message-request-id": encode_frame(FrameKind.MESSAGE, b"m", cmd_id=1, request_id=1),
        "request-without-id": encode_frame(FrameKind.REQUEST, b"r", cmd_id=1),
        "credit-cmd-id": encode_frame(FrameKind.CREDIT, bytes(4), cmd_id=1),
        "credit-short": encode_frame(FrameKind.CREDIT, bytes(3)),
        "goodbye-short": encode_frame(FrameKind.GOODBYE, b"\x00\x00"),
    }
    decoder = {
        "seed-every-kind": _decoder_input(stream),
        "seed-every-kind-split-next": _decoder_input(stream, cuts=(1, 15, 16, 17, 40, 100)),
        "seed-every-kind-split-drain": _decoder_input(stream, style=1, cuts=(3, 33, 63, 64)),
        "seed-every-kind-bytewise-mixed": _decoder_input(stream, style=7, cuts=range(0, 64, 8)),
        "seed-large-body-split": _decoder_input(
            big + stream, max_frame_size=65536, style=3, cuts=(10, 5000, 9000, 10100)
        ),
        "seed-large-body-bytearray": _decoder_input(
            big * 2, max_frame_size=65536, style=5, cuts=(4097, 4200, 12000, 16000)
        ),
        "seed-limit-exact": _decoder_input(
            encode_frame(FrameKind.MESSAGE, bytes(16), cmd_id=1) * 3, max_frame_size=16, style=1
        ),
        "seed-partial-tail": _decoder_input(stream + stream[:30], style=1, cuts=(200,)),
        "seed-zero-limit": _decoder_input(
            encode_frame(FrameKind.RESPONSE, request_id=1) * 4, max_frame_size=0, cuts=(20,)
        ),
    }
    for name, header in bad_headers.items():
        decoder[f"seed-error-{name}"] = _decoder_input(
            b"".join(frames[:3]) + header + stream, style=1, cuts=(50,)
        )
    n_ids, n_ints = len(NODE_IDS), len(HELLO_INTS)
    hello = {
        "seed-raw-valid": _hello_raw(_valid_hello_body()),
        "seed-raw-extra-fields": _hello_raw(_valid_hello_body(extra="future")),
        "seed-raw-trailing-byte": _hello_raw(_valid_hello_body() + b"\x00"),
        "seed-raw-bad-node-id": _hello_raw(_valid_hello_body(node_id="Node-B")),
        "seed-raw-small-window": _hello_raw(_valid_hello_body(window=MIN_WINDOW - 1)),
        "seed-fields-valid": _hello_structured(),
        "seed-fields-many-codecs": _hello_structured(codecs=bytes([16, *[0, 1, 3, 5] * 4])),
        "seed-fields-extras": _hello_structured(count=9, extras=b"\x02\x03"),
        "seed-fields-limits": _hello_structured(
            node_id=b"\x03", incarnation=b"\x07", max_frame_size=b"\x03", window=b"\x05"
        ),
        "seed-fields-generated-id": _hello_structured(node_id=bytes([n_ids, 5, 0, 1, 2, 36, 3])),
        "seed-fields-latin1-id": _hello_structured(node_id=bytes([n_ids + 1, 4]) + b"n\xe9de"),
        "seed-fields-input-window": _hello_structured(window=bytes([n_ints, 0, 0, 0x13, 0x88])),
        "seed-fields-bad-id": _hello_structured(node_id=b"\x08"),
        "seed-fields-too-few": _hello_structured(count=4),
        "seed-fields-map": _hello_structured(mode=2),
        "seed-fields-wrong-type": _hello_structured(incarnation=bytes([n_ints + 1, 3])),
        "seed-fields-codecs-not-list": _hello_structured(codecs=b"\x80\x05"),
        # version 2: max_header_bytes and schema
        "seed-raw-version-1-hello": _hello_raw(
            msgspec.msgpack.encode(msgspec.msgpack.decode(_valid_hello_body())[:5])
        ),
        "seed-fields-version-1-hello": _hello_structured(count=5),
        "seed-fields-no-schema": _hello_structured(count=6),
        "seed-fields-header-limit-max": _hello_structured(
            max_header_bytes=bytes([HELLO_INTS.index(0xFFFF)])
        ),
        "seed-fields-header-limit-over": _hello_structured(
            max_header_bytes=bytes([HELLO_INTS.index(0x1_0000)])
        ),
        "seed-fields-header-limit-negative": _hello_structured(
            max_header_bytes=bytes([HELLO_INTS.index(-1)])
        ),
        "seed-fields-schema-max": _hello_structured(
            schema=bytes([SCHEMAS.index(bytes(MAX_SCHEMA_SIZE))])
        ),
        "seed-fields-schema-over": _hello_structured(
            schema=bytes([SCHEMAS.index(bytes(MAX_SCHEMA_SIZE + 1))])
        ),
        "seed-fields-schema-str": _hello_structured(
            schema=bytes([SCHEMAS.index("a str, not bytes")])
        ),
        "seed-fields-schema-input": _hello_structured(
            schema=bytes([len(SCHEMAS), 3]) + b"\x91\x01\x02"
        ),
    }
    return {"decoder": decoder, "hello": hello, "link": _link_seeds()}
