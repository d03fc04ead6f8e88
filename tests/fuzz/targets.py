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
- link: the link's max frame size and window, then up to `MAX_OPS`
  operations (`LINK_OPS`), each an index and its arguments: the peer builds
  frames or raw bytes, ``deliver`` feeds them to the link in chunks, and the
  rest are commands to the link.
"""

from __future__ import annotations

import itertools
import struct
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar, Final, NamedTuple, TypeVar, cast

import msgspec

from qrpc.codes import ErrorCode
from qrpc.errors import (
    BadHello,
    FrameTooLarge,
    MalformedFrame,
    PeerDisconnected,
    ProtocolError,
    UnknownFrameKind,
    UnsupportedVersion,
)
from qrpc.wire.decoder import FrameDecoder
from qrpc.wire.events import (
    CreditReceived,
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
from qrpc.wire.hello import MIN_WINDOW, Hello, decode_hello, encode_hello
from qrpc.wire.link import MAX_HELLO_SIZE, LinkProtocol, LinkState

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
    "split_at",
]

T = TypeVar("T")


class Violation(AssertionError):
    """The code under test broke one of the rules a target checks."""


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
_KIND_VALUES: Final = frozenset(int(k) for k in FrameKind)
_HAS_CMD_ID: Final = frozenset({FrameKind.MESSAGE, FrameKind.REQUEST, FrameKind.RESPONSE})
_NEEDS_REQUEST_ID: Final = frozenset({FrameKind.REQUEST, FrameKind.RESPONSE, FrameKind.ERROR})
_CODE_TEXT: Final = frozenset({FrameKind.ERROR, FrameKind.GOODBYE})
_RAW_HEADER: Final = struct.Struct(">BBHIII")  # re-stated here, not taken from qrpc

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
        frames.append(Frame(FrameKind(kind), cmd_id, request_id, stream[pos + HEADER_SIZE : end]))
        pos = end
    return frames, None


def _reference_error(
    version: int, kind: int, flags: int, length: int, cmd_id: int, request_id: int, limit: int
) -> type[ProtocolError] | None:
    if version != 1:
        return UnsupportedVersion
    if kind not in _KIND_VALUES:
        return UnknownFrameKind
    if flags:
        return MalformedFrame
    if length > limit:
        return FrameTooLarge
    frame_kind = FrameKind(kind)
    if (request_id != 0) != (frame_kind in _NEEDS_REQUEST_ID):
        return MalformedFrame
    if cmd_id and frame_kind not in _HAS_CMD_ID:
        return MalformedFrame
    if frame_kind in _CODE_TEXT and length < 4:
        return MalformedFrame
    if frame_kind is FrameKind.CREDIT and length != 4:
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
    names = [f"{f.kind.name}({f.cmd_id},{f.request_id},{len(f.body)}B)" for f in frames[:8]]
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
                out: list[tuple[int, int, int, bytes]] = []
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


def _as_frame(kind: int, cmd_id: int, request_id: int, body: bytes, max_frame_size: int) -> Frame:
    if kind not in _KIND_VALUES:
        raise Violation(f"the decoder returned a frame of unknown kind {kind}")
    if type(body) is not bytes:
        raise Violation(f"the decoder returned a {type(body).__name__} body, not bytes")
    if len(body) > max_frame_size:
        raise Violation(f"the decoder returned a {len(body)}-byte body, limit {max_frame_size}")
    return Frame(FrameKind(kind), cmd_id, request_id, body)


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

_HELLO_FIELDS: Final = ("node_id", "incarnation", "codecs", "max_frame_size", "window")
HELLO_FIELD_COUNTS: Final = (5, 6, 7, 4, 0)
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
)
CODEC_NAMES: Final = ("msgpack", "json", "", "c" * 64, "c" * 65, "\u00e9" * 64, "\u00e9" * 65)
WRONG_TYPES: Final[tuple[object, ...]] = (None, True, 1.5, "1", b"1", [1], {"k": 1}, 7)
EXTRA_VALUES: Final[tuple[object, ...]] = (0, "future", [1, [2, [3]]], {"k": "v"}, None, b"\xff")
_MAX_INCARNATION: Final = 2**63 - 1


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
    extras = [inp.pick(EXTRA_VALUES) for _ in range(max(0, count - len(_HELLO_FIELDS)))]
    values = [node_id, incarnation, codecs, max_frame_size, window, *extras][:count]
    valid = count >= len(_HELLO_FIELDS) and all(
        (node_ok, incarnation_ok, codecs_ok, max_frame_ok, window_ok)
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
    return ""


# -- target 3: the link state machine ------------------------------------------------------

LINK_MAX_FRAME_SIZES: Final = (1024, 4096, 65536, 100_000)
LINK_WINDOWS: Final = (1024, 4096, 8192, 65536, 300_000)
PEER_LIMITS: Final = (1024, 4096, 65536, MAX_ID)  # the peer HELLO's window / max frame size
PEER_IDS: Final = ("node-b", "b", "x" * 63)
PEER_KINDS: Final = (2, 2, 2, 3, 3, 4, 4, 5, 7, 7, 6, 1, 0, 8, 255)  # FrameKind values, mostly
IDS: Final = (0, 1, 2, 7, 255, 65535, MAX_ID)
REQUEST_IDS: Final = IDS[1:]
CODES: Final = (0, 1, 5, int(ErrorCode.EARLY_DATA_LIMIT), MAX_ID)
ERROR_LIMITS: Final = (0, 4, 5, 16, 256)
HEADER_LENGTHS: Final = ("0", "4", "max", "max+1", "hello", "hello+1", "u32max", "input")
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
)
_STATE_RANK: Final = {
    LinkState.HELLO: 0,
    LinkState.OPEN: 1,
    LinkState.CLOSING: 2,
    LinkState.CLOSED: 3,
}
_FAILURE_CODES: Final = frozenset(int(c) for c in ErrorCode) - {int(ErrorCode.NO_ERROR)}

EventKey = tuple[Any, ...]


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

    - `receive_data`, `admit`, `consumed`, `send_response`, `send_error`,
      `send_goodbye`, `events` and `data_to_send` raise nothing;
      `send_message` / `send_request` raise `PeerDisconnected` exactly when
      this side sent GOODBYE or the link failed (and `sending` says so);
      `send_hello` raises RuntimeError exactly when a HELLO was already sent.
    - At most one `LinkFailed`, the last event ever, with a failure code;
      the link is CLOSED from then on; the state never moves back.
    - `inbound_bytes` stays within ``[0, window]``; `pending_bytes`,
      `unsent_bytes` >= 0; `send_credit` within ``[0, 2**32 - 1]``.
    - Events: one `HelloReceived` first; nothing but `LinkFailed` after
      `GoodbyeReceived`; no message before both HELLOs; on the dialer (HELLO
      sent before the peer's arrived) nothing after `HelloReceived` until
      `admit()`; message sizes are header + body.
    - A dialer holding more than ``window + MAX_HELLO_SIZE`` bytes for
      admission has failed; a whole frame breaking a decoder rule, delivered
      to a link not yet CLOSED, fails it (by the end, after `admit()`).
    - A well-behaved peer never makes the link fail, and each of its frames
      produces its event, in order, with the frame's fields.  Well-behaved:
      frames valid for their kind and the link's limits, HELLO first, the
      rest only after it saw our HELLO, none after its GOODBYE, MESSAGE and
      REQUEST within the credit it was granted, RESPONSE/ERROR only for
      requests it received, CREDIT only for message bytes it received, and at
      most ``window + MAX_HELLO_SIZE`` bytes before admission.  Once all is
      delivered, admitted and consumed (the last time idle), every such frame
      has its event and the window is open again but for less than 1/64 of it,
      always with room for a largest frame.
    - Output: a valid frame stream, whole frames per `data_to_send`; HELLO
      first and once, as `encode_hello` of our HELLO; nothing after our
      GOODBYE and nothing at all after a failure; MESSAGE/REQUEST frames
      exactly as sent, in order, within the credit the peer granted, and
      `unsent_bytes` equal to their bytes in each pull; RESPONSE/ERROR frames
      exactly as sent, in order; CREDIT frames never return more than was
      `consumed`.
    """

    OPS: ClassVar[tuple[Callable[[LinkRun], None], ...]]

    def __init__(self, data: bytes) -> None:
        inp = self.inp = ByteInput(data)
        self.max_frame_size = inp.pick(LINK_MAX_FRAME_SIZES)
        self.window = inp.pick(LINK_WINDOWS)
        self.link = LinkProtocol(max_frame_size=self.max_frame_size, window=self.window)
        self.hello = Hello(OUR_NODE_ID, 1, ["msgpack"], self.max_frame_size, self.window)
        self.reached: set[str] = set()
        "What the run got to: event names, ``state:OPEN``, ``sent:CREDIT``, ``admitted``..."
        # The peer's stream, built by the peer_* ops and fed by deliver.
        self.wire = bytearray()
        self.segments: deque[_Segment] = deque()
        self.built = 0  # stream offset where the next segment starts
        self.delivered = 0  # stream bytes fed to the link
        self.tainted = False  # an illegit byte was delivered: failures are allowed
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
        self.holding = False
        self.admitted = False
        self.hello_end: int | None = None  # stream offset after the peer's (legit) HELLO
        self.unconsumed: deque[int] = deque()
        self.requests: deque[int] = deque()
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
        self.queued: deque[tuple[int, int, int, bytes]] = deque()  # MESSAGE/REQUEST sent
        self.replies: deque[tuple[int, int, bytes]] = deque()  # RESPONSE/ERROR sent

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

    # -- the peer ---------------------------------------------------------------------

    def op_peer_hello(self) -> None:
        inp = self.inp
        hello = Hello(
            node_id=inp.pick(PEER_IDS),
            incarnation=inp.uint(4),
            codecs=["msgpack"],
            max_frame_size=inp.pick(PEER_LIMITS),
            window=inp.pick(PEER_LIMITS),
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
        body = self._peer_body(kind, shape)
        if self.built + HEADER_SIZE + len(body) > MAX_WIRE_BYTES:
            return
        legit = self._legit(kind, cmd_id, request_id, body)
        expect = _expected_event(kind, cmd_id, request_id, body) if legit else None
        limit = max(self.max_frame_size, MAX_HELLO_SIZE)  # the decoder's, before or after HELLO
        fatal = self.in_step and bool(
            _reference_error(1, kind, 0, len(body), cmd_id, request_id, limit)
        )
        self._add(encode_frame(kind, body, cmd_id, request_id), legit, expect, fatal)
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
        header = encode_header(kind, length, cmd_id=inp.pick(IDS), request_id=inp.pick(IDS))
        self._add(header + inp.take(inp.byte()), False, None)
        self.in_step = False

    def op_peer_raw(self) -> None:
        raw = self.inp.take(self.inp.byte())
        if raw:
            self._add(raw, False, None)
            self.in_step = False

    def _peer_body(self, kind: int, shape: int) -> bytes:
        inp = self.inp
        if kind in _CODE_TEXT:
            body = inp.pick(CODES).to_bytes(4, "big") + inp.take(inp.byte() % 64)
            return body[: inp.below(4)] if shape & 4 else body
        if kind == FrameKind.CREDIT:  # all it may return, one more, or any amount
            choice = inp.byte() % 3
            amount = (self.peer_refundable, self.peer_refundable + 1)[choice] if choice < 2 else 0
            body = (amount if choice < 2 else inp.uint(4)).to_bytes(4, "big")
            return body[:3] if shape & 4 else body
        if kind not in _HAS_CMD_ID:  # HELLO, unknown kinds
            return inp.take(inp.byte())
        choice = inp.byte() % 10
        if choice < 4:
            return inp.take(inp.byte())
        fit = max(0, min(self.peer_credit - HEADER_SIZE, self.max_frame_size))
        sizes = (fit, fit + 1, self.max_frame_size, self.max_frame_size + 1, MAX_HELLO_SIZE + 1, 0)
        return bytes(sizes[choice - 4])

    def _legit(self, kind: int, cmd_id: int, request_id: int, body: bytes) -> bool:
        """Whether a correct peer may send this frame now (spending its credit)."""
        if not (self.peer_hello_built and self.peer_saw_hello) or self.peer_goodbye_built:
            return False
        if len(body) > self.max_frame_size:
            return False
        if kind in (FrameKind.MESSAGE, FrameKind.REQUEST):
            size = HEADER_SIZE + len(body)
            if (request_id != 0) != (kind == FrameKind.REQUEST) or size > self.peer_credit:
                return False
            self.peer_credit -= size
            return True
        if kind in (FrameKind.RESPONSE, FrameKind.ERROR):  # an answer to a request it got
            if kind == FrameKind.RESPONSE:
                valid = request_id != 0 and (cmd_id != 0 or not body)
            else:
                valid = request_id != 0 and cmd_id == 0 and len(body) >= 4
            if not valid or not self.peer_unanswered:
                return False
            self.peer_unanswered -= 1
            return True
        if kind == FrameKind.CREDIT:  # credit back for message bytes it got
            if request_id or cmd_id or len(body) != 4:
                return False
            amount = int.from_bytes(body, "big")
            if amount > self.peer_refundable:
                return False
            self.peer_refundable -= amount
            return True
        if kind == FrameKind.GOODBYE:
            self.peer_goodbye_built = request_id == 0 and cmd_id == 0 and len(body) >= 4
            return self.peer_goodbye_built
        return False

    def _add(self, data: bytes, legit: bool, expect: EventKey | None, fatal: bool = False) -> None:
        if self.built + len(data) > MAX_WIRE_BYTES:
            return
        start = self.built
        self.built += len(data)
        self.wire += data
        self.segments.append(_Segment(start, self.built, legit, expect, fatal))

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
        self.link.receive_data(chunk)
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
            if not segment.legit:
                self.tainted = True
            if segment.end > self.delivered:
                break
            segments.popleft()
            if segment.fatal and self.link.state is not LinkState.CLOSED:
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

    def op_admit(self) -> None:
        self.link.admit()
        if self.peer_hello is not None:
            self.holding = False
            self.admitted = True
            self.reached.add("admitted")
        self._take_events()

    def op_send_message(self) -> None:
        cmd_id = self.inp.pick(IDS)
        self._send_counted(FrameKind.MESSAGE, cmd_id, 0, self._our_body())

    def op_send_request(self) -> None:
        cmd_id = self.inp.pick(IDS)
        request_id = self.inp.pick(REQUEST_IDS)
        self._send_counted(FrameKind.REQUEST, cmd_id, request_id, self._our_body())

    def _send_counted(self, kind: FrameKind, cmd_id: int, request_id: int, body: bytes) -> None:
        closed = self.goodbye_called or self.failed
        try:
            if kind is FrameKind.MESSAGE:
                self.link.send_message(cmd_id, body)
            else:
                self.link.send_request(cmd_id, request_id, body)
        except PeerDisconnected as exc:
            if not closed:
                raise Violation(f"{kind.name} refused on a live link: {exc!r}") from exc
            return
        if closed:
            raise Violation(f"{kind.name} accepted after our GOODBYE or a failure")
        self.queued.append((kind, cmd_id, request_id, body))

    def op_send_response(self) -> None:
        request_id = self._request_to_answer()
        cmd_id = self.inp.pick(IDS)
        body = self._our_body() if cmd_id else b""
        if not self.hello_called:
            return  # a caller answers only requests, which need our HELLO first
        self.link.send_response(request_id, cmd_id, body)
        if not (self.goodbye_called or self.failed):
            self.replies.append((FrameKind.RESPONSE, request_id, body))

    def op_send_error(self) -> None:
        inp = self.inp
        request_id = self._request_to_answer()
        code = inp.pick(CODES)
        text = inp.take(inp.byte() % 64).decode("utf-8", "replace")
        limit = inp.pick(ERROR_LIMITS)
        if not self.hello_called:
            return
        self.link.send_error(request_id, code, text, limit)
        if not (self.goodbye_called or self.failed):
            cut = text.encode("utf-8", "replace")[: max(0, limit - 4)]
            self.replies.append((FrameKind.ERROR, request_id, code.to_bytes(4, "big") + cut))

    def _request_to_answer(self) -> int:
        choice = self.inp.byte()
        if self.requests and not choice & 1:
            return self.requests.popleft()
        return REQUEST_IDS[(choice >> 1) % len(REQUEST_IDS)]

    def _our_body(self) -> bytes:
        inp = self.inp
        choice = inp.byte() % 6
        if choice < 3:
            body = inp.take(inp.byte())
        else:
            fit = max(0, min(self.link.send.available - HEADER_SIZE, MAX_OUR_BODY))
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
        self.link.consumed(size, idle=self.idle)

    def op_send_goodbye(self) -> None:
        inp = self.inp
        code = inp.pick(CODES)
        reason = inp.take(inp.byte() % 64).decode("utf-8", "replace")
        link = self.link
        was = link.state
        waiting = len(link.send.pending)
        dropped = link.send_goodbye(code, reason)
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
    )

    # -- checks -----------------------------------------------------------------------

    def _take_events(self) -> None:
        events = self.link.events()
        if not events:
            return
        if self.failed:
            raise Violation(f"events after LinkFailed: {events!r}")
        for index, event in enumerate(events):
            self.reached.add(type(event).__name__)
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
            return
        if self.peer_hello is None:
            raise Violation(f"{event!r} before HelloReceived")
        if self.holding:
            raise Violation(f"{event!r} on the dialer before admit()")
        if isinstance(event, MessageReceived | RequestReceived):
            if event.size != HEADER_SIZE + len(event.body):
                raise Violation(f"{event!r}: size is not header + body")
            if not self.hello_called:
                raise Violation(f"{event!r} before our HELLO was sent")
            self.unconsumed.append(event.size)
            if isinstance(event, RequestReceived):
                self.requests.append(event.request_id)
        elif isinstance(event, CreditReceived):
            self.granted += event.amount
        elif isinstance(event, GoodbyeReceived):
            self.peer_goodbye = True

    def _failed(self, event: LinkFailed) -> None:
        if event.code not in _FAILURE_CODES:
            raise Violation(f"{event!r}: not a failure code")
        if self.link.state is not LinkState.CLOSED:
            raise Violation(f"{event!r} but the link is {self.link.state.name}")
        if not self.tainted:
            raise Violation(f"the link failed a well-behaved peer: {event!r}")
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
        if link.send.pending_bytes < 0 or link.unsent_bytes < 0:
            raise Violation(f"pending_bytes {link.send.pending_bytes}, unsent {link.unsent_bytes}")
        if not 0 <= link.send.available <= MAX_ID:
            raise Violation(f"send_credit {link.send.available}")
        if link.sending != (not (self.goodbye_called or self.failed)):
            raise Violation(f"sending is {link.sending} (goodbye: {self.goodbye_called})")

    def _pull(self) -> None:
        link = self.link
        unsent = link.unsent_bytes
        data = link.data_to_send()
        if self.failed and data:
            raise Violation(f"{len(data)} bytes to send after LinkFailed")
        if link.unsent_bytes:
            raise Violation(f"unsent_bytes is {link.unsent_bytes} right after data_to_send()")
        frames: list[tuple[int, int, int, bytes]] = []
        try:
            self.out.feed(data)
            self.out.drain_into(frames)
        except ProtocolError as exc:
            raise Violation(f"the link sent a malformed stream: {exc}") from exc
        if self.out.buffered:
            raise Violation("data_to_send() returned part of a frame")
        counted = 0
        for kind, cmd_id, request_id, body in frames:
            name = FrameKind(kind).name
            self.reached.add(f"sent:{name}")
            if self.out_goodbye:
                raise Violation(f"{name} sent after our GOODBYE")
            if not self.out_frames and kind != FrameKind.HELLO:
                raise Violation(f"the first frame sent is {name}, not HELLO")
            self.out_frames += 1
            if kind in (FrameKind.MESSAGE, FrameKind.REQUEST):
                counted += HEADER_SIZE + len(body)
                self._sent_counted((kind, cmd_id, request_id, body))
            elif kind in (FrameKind.RESPONSE, FrameKind.ERROR):
                want = self.replies.popleft() if self.replies else None
                got = (kind, request_id, body)
                if got != want:
                    raise Violation(f"sent {name} {got!r}, but the reply sent was {want!r}")
            else:
                self._sent_control(FrameKind(kind), body)
        if counted != unsent:
            raise Violation(f"unsent_bytes was {unsent}; {counted} MESSAGE/REQUEST bytes pulled")

    def _sent_counted(self, frame: tuple[int, int, int, bytes]) -> None:
        size = HEADER_SIZE + len(frame[3])
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
            link.consumed(size, idle=self.idle)
        self._check_state()
        self._pull()
        if self.failed:
            return
        if self.must_fail:
            raise Violation("a frame breaking a decoder rule was delivered; the link never failed")
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


def _expected_event(kind: int, cmd_id: int, request_id: int, body: bytes) -> EventKey:
    size = HEADER_SIZE + len(body)
    if kind == FrameKind.MESSAGE:
        return ("message", cmd_id, body, size)
    if kind == FrameKind.REQUEST:
        return ("request", cmd_id, request_id, body, size)
    if kind == FrameKind.RESPONSE:
        return ("response", request_id, cmd_id, body)
    if kind == FrameKind.CREDIT:
        return ("credit", int.from_bytes(body, "big"))
    code, text = int.from_bytes(body[:4], "big"), body[4:].decode("utf-8", "replace")
    return ("error", request_id, code, text) if kind == FrameKind.ERROR else ("goodbye", code, text)


def _event_key(event: LinkEvent) -> EventKey:
    if isinstance(event, HelloReceived):
        return ("hello", event.hello)
    if isinstance(event, MessageReceived):
        return ("message", event.cmd_id, event.body, event.size)
    if isinstance(event, RequestReceived):
        return ("request", event.cmd_id, event.request_id, event.body, event.size)
    if isinstance(event, ResponseReceived):
        return ("response", event.request_id, event.cmd_id, event.body)
    if isinstance(event, ErrorReceived):
        return ("error", event.request_id, event.code, event.text)
    if isinstance(event, CreditReceived):
        return ("credit", event.amount)
    if isinstance(event, GoodbyeReceived):
        return ("goodbye", event.code, event.reason)
    return (type(event).__name__,)


# -- seeds -----------------------------------------------------------------------------------


class LinkScript:
    """Writes a `fuzz_link` input op by op (the arguments `LinkRun` reads)."""

    def __init__(self, max_frame_size: int = 4096, window: int = 8192) -> None:
        self.out = ByteOutput()
        self.out.pick(LINK_MAX_FRAME_SIZES, max_frame_size)
        self.out.pick(LINK_WINDOWS, window)

    @property
    def data(self) -> bytes:
        return bytes(self.out.data)

    def _op(self, name: str) -> ByteOutput:
        self.out.pick(LINK_OPS, name)
        return self.out

    def peer_hello(
        self, node_id: str = "node-b", window: int = 65536, max_frame_size: int = 65536
    ) -> LinkScript:
        out = self._op("peer_hello")
        out.pick(PEER_IDS, node_id)
        out.uint(7, 4)
        out.pick(PEER_LIMITS, max_frame_size)
        out.pick(PEER_LIMITS, window)
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
    ) -> LinkScript:
        """A frame from the peer: `body` literally (< 256 bytes), or for MESSAGE,
        REQUEST, RESPONSE a `size` of ``fit`` (the peer's credit), ``fit+1``,
        ``max``, ``max+1``, ``hello+1``, ``empty``; for CREDIT ``all`` (what it
        may return) or ``all+1``; ERROR/GOODBYE take `code` + `body` (< 64)."""
        out = self._op("peer_frame")
        out.pick(PEER_KINDS, kind)
        has_cmd, needs_request = kind in _HAS_CMD_ID, kind in _NEEDS_REQUEST_ID
        shape = (0 if has_cmd or not cmd_id else 1) | (0 if needs_request or not request_id else 2)
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
        elif kind == FrameKind.CREDIT:
            if size:
                out.byte(("all", "all+1").index(size))
            else:
                out.byte(2)
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
        return self

    def credit(self, amount: int | None = None) -> LinkScript:
        """CREDIT from the peer: `amount`, or (None) all it may return."""
        if amount is None:
            return self.peer_frame(FrameKind.CREDIT, size="all")
        return self.peer_frame(FrameKind.CREDIT, amount.to_bytes(4, "big"))

    def peer_header(
        self, kind: int, length: str, cmd_id: int = 0, request_id: int = 0
    ) -> LinkScript:
        out = self._op("peer_header")
        out.pick(PEER_KINDS, kind)
        out.pick(HEADER_LENGTHS, length)
        out.pick(IDS, cmd_id)
        out.pick(IDS, request_id)
        out.byte(0)
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

    def send_message(self, cmd_id: int, body: bytes = b"", *, size: str = "") -> LinkScript:
        self._op("send_message").pick(IDS, cmd_id)
        self._body(body, size)
        return self

    def send_request(self, cmd_id: int, request_id: int, body: bytes = b"") -> LinkScript:
        out = self._op("send_request")
        out.pick(IDS, cmd_id)
        out.pick(REQUEST_IDS, request_id)
        self._body(body, "")
        return self

    def send_response(self, cmd_id: int, body: bytes = b"") -> LinkScript:
        """Answer the oldest request received."""
        self._op("send_response").byte(0)
        self.out.pick(IDS, cmd_id)
        if cmd_id:
            self._body(body, "")
        return self

    def send_error(self, code: int, text: bytes, limit: int = 256) -> LinkScript:
        """Fail the oldest request received."""
        out = self._op("send_error")
        out.byte(0)
        out.pick(CODES, code)
        out.byte(len(text))
        out.raw(text)
        out.pick(ERROR_LIMITS, limit)
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
        )
    )


def _hello_structured(
    *,
    mode: int = 0,
    count: int = 5,
    node_id: bytes = b"\x00",
    incarnation: bytes = b"\x01",
    codecs: bytes = b"\x01\x00",
    max_frame_size: bytes = b"\x04",
    window: bytes = b"\x04",
    extras: bytes = b"",
) -> bytes:
    """A `fuzz_hello` input choosing each field with the bytes `_hello_values` reads:
    a table index, or the index past the table and what follows it."""
    out = ByteOutput()
    out.byte(mode)
    out.pick(HELLO_FIELD_COUNTS, count)
    out.raw(node_id + incarnation + codecs + max_frame_size + window + extras)
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
    return seeds


def seeds() -> dict[str, dict[str, bytes]]:
    """The seed corpus, by target and file name (``tests/fuzz/corpus/<target>/<name>``)."""
    big = encode_frame(FrameKind.MESSAGE, bytes(range(256)) * 40, cmd_id=9)  # 10 KiB body
    frames = _every_kind()
    stream = b"".join(frames)
    bad_headers = {
        "version-2": b"\x02\x02" + bytes(14),
        "unknown-kind": b"\x01\x09" + bytes(14),
        "reserved-flags": b"\x01\x02\x00\x01" + bytes(12),
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
        "seed-fields-extras": _hello_structured(count=7, extras=b"\x02\x03"),
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
    }
    return {"decoder": decoder, "hello": hello, "link": _link_seeds()}
