"""`FrameDecoder`: round trip, split feeding, totality and the size bound (hypothesis)."""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import pytest
from hypothesis import example, given, strategies as st

from qrpc.codes import ErrorCode
from qrpc.errors import (
    FrameTooLarge,
    MalformedFrame,
    ProtocolError,
    UnknownFrameKind,
    UnsupportedVersion,
)
from qrpc.wire.decoder import FrameDecoder
from qrpc.wire.frames import (
    DEFAULT_MAX_FRAME_SIZE,
    HEADER,
    HEADER_SIZE,
    MAX_ID,
    PROTOCOL_VERSION,
    Flags,
    Frame,
    FrameKind,
    encode_frame,
    encode_header,
)

MAX = 64  # max_frame_size of the decoders under test: small, so the boundary is reachable

u32 = st.integers(min_value=0, max_value=MAX_ID)
request_ids = st.integers(min_value=1, max_value=MAX_ID)


# -- helpers ---------------------------------------------------------------------------


def drain(decoder: FrameDecoder) -> list[Frame]:
    """Pull frames until next_frame() returns None (each frame consumes >= 16 bytes)."""
    frames: list[Frame] = []
    for _ in range(decoder.buffered // HEADER_SIZE + 1):
        frame = decoder.next_frame()
        if frame is None:
            return frames
        frames.append(frame)
    raise AssertionError("next_frame() returned more frames than the buffer can hold")


def encode_all(frames: Iterable[Frame]) -> bytes:
    return b"".join(encode_frame(f.kind, f.body, f.cmd_id, f.request_id, f.flags) for f in frames)


def split(data: bytes, points: Iterable[int]) -> list[bytes]:
    """Cut `data` at `points` (taken modulo len + 1, so any integer is a cut)."""
    cuts = sorted({p % (len(data) + 1) for p in points})
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def feed_chunks(decoder: FrameDecoder, chunks: Iterable[bytes]) -> list[Frame]:
    """Feed each chunk, pull all frames, and check the buffer bound after each drain."""
    frames: list[Frame] = []
    for chunk in chunks:
        decoder.feed(chunk)
        frames += drain(decoder)
        assert decoder.buffered < HEADER_SIZE + decoder.max_frame_size
    return frames


def feed_total(data: bytes, points: Iterable[int]) -> list[Frame] | ProtocolError:
    """Feed `data` split at `points`; return the frames or the ProtocolError raised.

    Any other exception propagates and fails the test.
    """
    decoder = FrameDecoder(max_frame_size=MAX)
    try:
        return feed_chunks(decoder, split(data, points))
    except ProtocolError as exc:
        # The decoder is now unusable: feeding again re-raises the same error.
        with pytest.raises(type(exc)):
            decoder.feed(b"\x01")
        return exc


# -- strategies --------------------------------------------------------------------------


def bodies(min_size: int = 0, max_size: int = MAX) -> st.SearchStrategy[bytes]:
    return st.binary(min_size=min_size, max_size=max_size)


BOTH = Flags.DEADLINE | Flags.HEADERS
no_flags = st.just(0)
valid_frames: st.SearchStrategy[Frame] = st.one_of(
    st.builds(Frame, st.just(FrameKind.HELLO), no_flags, st.just(0), st.just(0), bodies()),
    st.builds(
        Frame,
        st.just(FrameKind.MESSAGE),
        st.sampled_from([0, Flags.HEADERS]),
        u32,
        st.just(0),
        bodies(),
    ),
    st.builds(
        Frame,
        st.just(FrameKind.REQUEST),
        st.sampled_from([0, Flags.DEADLINE, Flags.HEADERS, BOTH]),
        u32,
        request_ids,
        bodies(),
    ),
    st.builds(
        Frame,
        st.just(FrameKind.RESPONSE),
        st.sampled_from([0, Flags.HEADERS]),
        u32,
        request_ids,
        bodies(),
    ),
    st.builds(
        Frame, st.just(FrameKind.ERROR), no_flags, st.just(0), request_ids, bodies(min_size=4)
    ),
    # With a headers section the code follows the sections: checking it is the link's job.
    st.builds(
        Frame, st.just(FrameKind.ERROR), st.just(Flags.HEADERS), st.just(0), request_ids, bodies()
    ),
    st.builds(
        Frame, st.just(FrameKind.GOODBYE), no_flags, st.just(0), st.just(0), bodies(min_size=4)
    ),
    st.builds(Frame, st.just(FrameKind.CREDIT), no_flags, st.just(0), st.just(0), bodies(4, 4)),
    st.builds(Frame, st.just(FrameKind.CANCEL), no_flags, st.just(0), request_ids, st.just(b"")),
    st.builds(Frame, st.just(FrameKind.DRAINING), no_flags, st.just(0), st.just(0), st.just(b"")),
)
frame_lists = st.lists(valid_frames, max_size=8)
split_points = st.lists(st.integers(), max_size=12)


@st.composite
def mutated_streams(draw: st.DrawFn) -> bytes:
    """A valid frame stream with one corruption applied."""
    frames = draw(st.lists(valid_frames, min_size=1, max_size=5))
    data = bytearray(encode_all(frames))
    starts = [0]
    for f in frames[:-1]:
        starts.append(starts[-1] + HEADER_SIZE + len(f.body))
    at = draw(st.sampled_from(starts))  # the header a header mutation hits
    mutation = draw(
        st.sampled_from(["flip", "truncate", "duplicate", "length", "version", "kind", "flags"])
    )
    if mutation == "flip":
        i = draw(st.integers(0, len(data) - 1))
        data[i] ^= draw(st.integers(1, 255))
    elif mutation == "truncate":
        del data[draw(st.integers(0, len(data) - 1)) :]
    elif mutation == "duplicate":
        i = draw(st.integers(0, len(data)))
        j = draw(st.integers(i, len(data)))
        data[j:j] = data[i:j]
    elif mutation == "length":
        length = draw(st.sampled_from([0, MAX, MAX + 1, 2**32 - 1]))
        data[at + 4 : at + 8] = length.to_bytes(4, "big")
    elif mutation == "version":
        data[at] = draw(st.integers(0, 255).filter(lambda v: v != PROTOCOL_VERSION))
    elif mutation == "kind":
        data[at + 1] = draw(st.sampled_from([0, 8, 9, 10, 127, 128, 255]))
    else:  # a known flag (allowed on some kinds), an unknown bit, or anything
        flags = st.sampled_from([Flags.DEADLINE, Flags.HEADERS, BOTH, 0x4, 0x8000])
        data[at + 2 : at + 4] = draw(flags | st.integers(1, 0xFFFF)).to_bytes(2, "big")
    return bytes(data)


# -- round trip and chunking -------------------------------------------------------------


@given(frames=frame_lists)
@example(frames=[])
@example(frames=[Frame(FrameKind.HELLO, 0, 0, 0, b"")])
@example(frames=[Frame(FrameKind.MESSAGE, 0, MAX_ID, 0, b"x" * MAX)])
@example(frames=[Frame(FrameKind.RESPONSE, 0, 0, MAX_ID, b"")])
def test_round_trip_of_valid_frames(frames):
    decoder = FrameDecoder(max_frame_size=MAX)
    assert feed_chunks(decoder, [encode_all(frames)]) == frames
    assert decoder.buffered == 0


@given(frames=frame_lists, points=split_points)
@example(frames=[Frame(FrameKind.CREDIT, 0, 0, 0, b"\x00\x00\x00\x01")], points=[15, 16, 17])
@example(frames=[Frame(FrameKind.HELLO, 0, 0, 0, b"")] * 3, points=[16, 32])
def test_split_feeding_yields_the_same_frames(frames, points):
    data = encode_all(frames)
    decoder = FrameDecoder(max_frame_size=MAX)
    assert feed_chunks(decoder, split(data, points)) == frames
    assert decoder.buffered == 0


def test_feeding_one_byte_at_a_time():
    frames = [
        Frame(FrameKind.HELLO, 0, 0, 0, b"\x95hello"),
        Frame(FrameKind.REQUEST, 0, 3, 1, b"req"),
        Frame(FrameKind.MESSAGE, 0, 2, 0, b""),
        Frame(FrameKind.CREDIT, 0, 0, 0, b"\x00\x00\x04\x00"),
    ]
    data = encode_all(frames)
    decoder = FrameDecoder(max_frame_size=MAX)
    got: list[Frame] = []
    sizes: list[int] = []
    for i in range(len(data)):
        got += feed_chunks(decoder, [data[i : i + 1]])
        sizes.append(len(got))
    assert got == frames
    # Each frame appears exactly when its last byte arrives.
    assert [sizes.index(n) + 1 for n in range(1, 5)] == [22, 41, 57, 77]


def test_empty_feed_yields_nothing():
    decoder = FrameDecoder()
    decoder.feed(b"")
    assert decoder.next_frame() is None
    assert decoder.buffered == 0


def test_partial_header_is_kept_until_complete():
    data = encode_frame(FrameKind.MESSAGE, b"abc", cmd_id=1)
    decoder = FrameDecoder()
    decoder.feed(data[:15])
    assert decoder.next_frame() is None
    assert decoder.buffered == 15
    decoder.feed(data[15:])
    assert decoder.next_frame() == Frame(FrameKind.MESSAGE, 0, 1, 0, b"abc")


def test_frames_after_a_partial_frame_keep_their_order():
    one = encode_frame(FrameKind.MESSAGE, b"one", cmd_id=1)
    two = encode_frame(FrameKind.MESSAGE, b"two", cmd_id=2)
    decoder = FrameDecoder()
    decoder.feed(one + two[:5])
    assert drain(decoder) == [Frame(FrameKind.MESSAGE, 0, 1, 0, b"one")]
    assert decoder.buffered == 5
    decoder.feed(two[5:] + one)
    assert drain(decoder) == [
        Frame(FrameKind.MESSAGE, 0, 2, 0, b"two"),
        Frame(FrameKind.MESSAGE, 0, 1, 0, b"one"),
    ]
    assert decoder.buffered == 0


def test_returned_body_is_bytes_for_a_split_frame():
    data = encode_frame(FrameKind.MESSAGE, b"body", cmd_id=1)
    decoder = FrameDecoder()
    decoder.feed(data[:18])
    decoder.feed(data[18:])
    frame = decoder.next_frame()
    assert frame is not None
    assert type(frame.body) is bytes
    assert frame.body == b"body"


# -- frame rules -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ProtocolError, ErrorCode.PROTOCOL_VIOLATION),
        (UnsupportedVersion, ErrorCode.UNSUPPORTED_VERSION),
        (UnknownFrameKind, ErrorCode.UNKNOWN_FRAME_KIND),
        (FrameTooLarge, ErrorCode.FRAME_TOO_LARGE),
        (MalformedFrame, ErrorCode.MALFORMED_FRAME),
    ],
)
def test_error_class_codes(error, code):
    assert error.code is code
    exc = error("why")
    assert exc.code is code
    assert exc.reason == "why"
    assert str(exc) == f"{code.name}: why"


def raw_header(
    version: int = PROTOCOL_VERSION,
    kind: int = FrameKind.MESSAGE,
    flags: int = 0,
    length: int = 0,
    cmd_id: int = 0,
    request_id: int = 0,
) -> bytes:
    return HEADER.pack(version, kind, flags, length, cmd_id, request_id)


@pytest.mark.parametrize(
    ("header", "error"),
    [
        pytest.param(raw_header(version=0), UnsupportedVersion, id="version-0"),
        pytest.param(raw_header(version=1), UnsupportedVersion, id="version-1"),
        pytest.param(raw_header(version=3), UnsupportedVersion, id="version-3"),
        pytest.param(raw_header(version=255), UnsupportedVersion, id="version-255"),
        pytest.param(raw_header(kind=0), UnknownFrameKind, id="kind-0"),
        pytest.param(raw_header(kind=10), UnknownFrameKind, id="kind-10"),
        pytest.param(raw_header(kind=255), UnknownFrameKind, id="kind-255"),
        # flags: an unknown bit on any kind, or a known one on a kind that may not carry it
        pytest.param(raw_header(flags=0x4), MalformedFrame, id="flags-unknown-bit"),
        pytest.param(raw_header(flags=0x8000), MalformedFrame, id="flags-high-bit"),
        pytest.param(raw_header(flags=0xFFFF), MalformedFrame, id="flags-all"),
        pytest.param(
            raw_header(kind=FrameKind.REQUEST, flags=BOTH | 0x4, request_id=1),
            MalformedFrame,
            id="req-unknown-bit",
        ),
        pytest.param(raw_header(flags=Flags.DEADLINE), MalformedFrame, id="msg-deadline"),
        pytest.param(
            raw_header(kind=FrameKind.RESPONSE, flags=Flags.DEADLINE, request_id=1),
            MalformedFrame,
            id="resp-deadline",
        ),
        pytest.param(
            raw_header(kind=FrameKind.ERROR, flags=Flags.DEADLINE, length=4, request_id=1),
            MalformedFrame,
            id="error-deadline",
        ),
        pytest.param(
            raw_header(kind=FrameKind.HELLO, flags=Flags.HEADERS),
            MalformedFrame,
            id="hello-headers",
        ),
        pytest.param(
            raw_header(kind=FrameKind.GOODBYE, flags=Flags.HEADERS, length=4),
            MalformedFrame,
            id="goodbye-headers",
        ),
        pytest.param(
            raw_header(kind=FrameKind.CREDIT, flags=Flags.HEADERS, length=4),
            MalformedFrame,
            id="credit-headers",
        ),
        pytest.param(
            raw_header(kind=FrameKind.CANCEL, flags=Flags.HEADERS, request_id=1),
            MalformedFrame,
            id="cancel-headers",
        ),
        pytest.param(
            raw_header(kind=FrameKind.DRAINING, flags=Flags.HEADERS),
            MalformedFrame,
            id="drain-hdrs",
        ),
        # CANCEL: a request_id, no cmd_id, no body; DRAINING: no ids, no body
        pytest.param(raw_header(kind=FrameKind.CANCEL), MalformedFrame, id="cancel-no-rid"),
        pytest.param(
            raw_header(kind=FrameKind.CANCEL, cmd_id=1, request_id=1),
            MalformedFrame,
            id="cancel-cmd",
        ),
        pytest.param(
            raw_header(kind=FrameKind.CANCEL, length=1, request_id=1),
            MalformedFrame,
            id="cancel-body",
        ),
        pytest.param(
            raw_header(kind=FrameKind.CANCEL, length=MAX, request_id=1),
            MalformedFrame,
            id="cancel-body-max",
        ),
        pytest.param(
            raw_header(kind=FrameKind.DRAINING, request_id=1), MalformedFrame, id="draining-rid"
        ),
        pytest.param(raw_header(kind=FrameKind.DRAINING, cmd_id=1), MalformedFrame, id="drain-cmd"),
        pytest.param(
            raw_header(kind=FrameKind.DRAINING, length=1), MalformedFrame, id="drain-body"
        ),
        pytest.param(raw_header(length=MAX + 1), FrameTooLarge, id="length-max+1"),
        pytest.param(raw_header(length=2**32 - 1), FrameTooLarge, id="length-u32-max"),
        pytest.param(
            raw_header(kind=FrameKind.MESSAGE, request_id=1), MalformedFrame, id="msg-rid"
        ),
        pytest.param(
            raw_header(kind=FrameKind.HELLO, request_id=1), MalformedFrame, id="hello-rid"
        ),
        pytest.param(raw_header(kind=FrameKind.HELLO, cmd_id=1), MalformedFrame, id="hello-cmd"),
        pytest.param(raw_header(kind=FrameKind.REQUEST, cmd_id=1), MalformedFrame, id="req-no-rid"),
        pytest.param(raw_header(kind=FrameKind.RESPONSE), MalformedFrame, id="resp-no-rid"),
        pytest.param(raw_header(kind=FrameKind.ERROR, length=4), MalformedFrame, id="error-no-rid"),
        pytest.param(
            raw_header(kind=FrameKind.ERROR, length=4, cmd_id=1, request_id=1),
            MalformedFrame,
            id="error-cmd",
        ),
        pytest.param(
            raw_header(kind=FrameKind.ERROR, length=3, request_id=1),
            MalformedFrame,
            id="error-short",
        ),
        pytest.param(
            raw_header(kind=FrameKind.GOODBYE, length=4, request_id=1),
            MalformedFrame,
            id="goodbye-rid",
        ),
        pytest.param(
            raw_header(kind=FrameKind.GOODBYE, length=4, cmd_id=1), MalformedFrame, id="bye-cmd"
        ),
        pytest.param(raw_header(kind=FrameKind.GOODBYE), MalformedFrame, id="goodbye-empty"),
        pytest.param(raw_header(kind=FrameKind.CREDIT, length=3), MalformedFrame, id="credit-3"),
        pytest.param(raw_header(kind=FrameKind.CREDIT, length=5), MalformedFrame, id="credit-5"),
        pytest.param(
            raw_header(kind=FrameKind.CREDIT, length=4, cmd_id=1), MalformedFrame, id="credit-cmd"
        ),
        pytest.param(
            raw_header(kind=FrameKind.CREDIT, length=4, request_id=1),
            MalformedFrame,
            id="credit-rid",
        ),
    ],
)
def test_bad_header_is_refused_on_the_header_alone(header, error):
    decoder = FrameDecoder(max_frame_size=MAX)
    decoder.feed(header)
    with pytest.raises(error) as info:
        decoder.next_frame()
    assert type(info.value) is error
    assert info.value.code is error.code
    assert decoder.buffered == 0


@pytest.mark.parametrize(
    ("header", "error"),
    [
        # Version is checked before anything else.
        (raw_header(version=1, kind=99, flags=1, length=2**32 - 1), UnsupportedVersion),
        # Then the kind.
        (raw_header(kind=99, flags=1, length=2**32 - 1), UnknownFrameKind),
        # Then the flags, before the length: a flag the kind may not carry, or an unknown bit.
        (raw_header(flags=1, length=2**32 - 1), MalformedFrame),
        (raw_header(flags=4, length=2**32 - 1), MalformedFrame),
        (raw_header(kind=FrameKind.CANCEL, flags=2, length=2**32 - 1), MalformedFrame),
        # Allowed flags pass on to the length check.
        (raw_header(flags=Flags.HEADERS, length=2**32 - 1), FrameTooLarge),
        (raw_header(kind=FrameKind.REQUEST, flags=BOTH, length=MAX + 1), FrameTooLarge),
    ],
)
def test_header_checks_run_in_order(header, error):
    decoder = FrameDecoder(max_frame_size=MAX)
    decoder.feed(header)
    with pytest.raises(error):
        decoder.next_frame()


@pytest.mark.parametrize(
    "header",
    [
        pytest.param(raw_header(kind=FrameKind.HELLO, cmd_id=1, length=MAX + 1), id="hello-cmd"),
        pytest.param(raw_header(kind=FrameKind.CREDIT, length=MAX + 1), id="credit-length"),
        pytest.param(raw_header(kind=FrameKind.MESSAGE, request_id=1, length=MAX + 1), id="rid"),
        pytest.param(raw_header(kind=FrameKind.CANCEL, request_id=1, length=MAX + 1), id="cancel"),
        pytest.param(raw_header(kind=FrameKind.DRAINING, length=MAX + 1), id="draining"),
    ],
)
def test_size_limit_is_checked_before_the_kind_field_rules(header):
    # decoder.py's docstring lists its checks "in the order it checks them":
    # rule 4 (the size limit, FrameTooLarge) comes before rule 5 (cmd_id /
    # request_id / body length allowed for the kind, MalformedFrame).
    decoder = FrameDecoder(max_frame_size=MAX)
    decoder.feed(header)
    with pytest.raises(FrameTooLarge):
        decoder.next_frame()


@pytest.mark.parametrize(
    "frame",
    [
        Frame(FrameKind.HELLO, 0, 0, 0, b""),
        Frame(FrameKind.MESSAGE, 0, 0, 0, b""),
        Frame(FrameKind.REQUEST, 0, 0, 1, b""),
        Frame(FrameKind.RESPONSE, 0, 0, 1, b""),
        Frame(FrameKind.ERROR, 0, 0, 1, b"\x00\x00\x00\x01"),
        Frame(FrameKind.GOODBYE, 0, 0, 0, b"\x00\x00\x00\x00"),
        Frame(FrameKind.CREDIT, 0, 0, 0, b"\xff\xff\xff\xff"),
        Frame(FrameKind.CANCEL, 0, 0, 1, b""),
        Frame(FrameKind.DRAINING, 0, 0, 0, b""),
        # Flagged frames: the decoder checks no section, so any body length passes.
        Frame(FrameKind.MESSAGE, Flags.HEADERS, 0, 0, b""),
        Frame(FrameKind.REQUEST, BOTH, 0, 1, b""),
        Frame(FrameKind.RESPONSE, Flags.HEADERS, 0, 1, b""),
        Frame(FrameKind.ERROR, Flags.HEADERS, 0, 1, b""),
    ],
    ids=lambda f: f"{f.kind.name}-flags-{f.flags}",
)
def test_smallest_valid_frame_of_each_kind(frame):
    decoder = FrameDecoder(max_frame_size=MAX)
    decoder.feed(encode_all([frame]))
    assert decoder.next_frame() == frame


def test_frame_body_of_exactly_max_is_accepted():
    decoder = FrameDecoder(max_frame_size=MAX)
    decoder.feed(encode_frame(FrameKind.MESSAGE, b"m" * MAX, cmd_id=1))
    assert decoder.next_frame() == Frame(FrameKind.MESSAGE, 0, 1, 0, b"m" * MAX)


def test_decoder_defaults_to_the_default_max_frame_size():
    assert FrameDecoder().max_frame_size == DEFAULT_MAX_FRAME_SIZE


# -- oversized frames --------------------------------------------------------------------


@pytest.mark.parametrize("length", [MAX + 1, 2 * MAX, 2**31, 2**32 - 1])
def test_oversized_length_is_refused_before_any_body_byte(length):
    decoder = FrameDecoder(max_frame_size=MAX)
    header = encode_header(FrameKind.MESSAGE, length, cmd_id=1)
    decoder.feed(header[:15])
    assert decoder.next_frame() is None
    decoder.feed(header[15:])
    with pytest.raises(FrameTooLarge) as info:
        decoder.next_frame()
    assert info.value.code is ErrorCode.FRAME_TOO_LARGE
    assert decoder.buffered == 0


def test_oversized_length_with_default_limit_is_refused_on_the_header():
    decoder = FrameDecoder()
    decoder.feed(encode_header(FrameKind.HELLO, DEFAULT_MAX_FRAME_SIZE + 1))
    with pytest.raises(FrameTooLarge):
        decoder.next_frame()
    assert decoder.buffered == 0


def test_declared_max_length_waits_for_the_body():
    decoder = FrameDecoder(max_frame_size=MAX)
    decoder.feed(encode_header(FrameKind.MESSAGE, MAX, cmd_id=1) + b"x" * (MAX - 1))
    assert decoder.next_frame() is None
    assert decoder.buffered == HEADER_SIZE + MAX - 1
    decoder.feed(b"y")
    assert decoder.next_frame() == Frame(FrameKind.MESSAGE, 0, 1, 0, b"x" * (MAX - 1) + b"y")


def test_oversized_frame_after_a_valid_one_delivers_the_valid_one_first():
    decoder = FrameDecoder(max_frame_size=MAX)
    decoder.feed(
        encode_frame(FrameKind.MESSAGE, b"ok", cmd_id=1)
        + encode_header(FrameKind.MESSAGE, MAX + 1, cmd_id=1)
    )
    assert decoder.next_frame() == Frame(FrameKind.MESSAGE, 0, 1, 0, b"ok")
    with pytest.raises(FrameTooLarge):
        decoder.next_frame()


# -- after an error ----------------------------------------------------------------------


def test_feed_after_an_error_reraises_it():
    decoder = FrameDecoder(max_frame_size=MAX)
    decoder.feed(raw_header(kind=42))
    with pytest.raises(UnknownFrameKind) as first:
        decoder.next_frame()
    with pytest.raises(UnknownFrameKind) as again:
        decoder.feed(encode_frame(FrameKind.HELLO))
    assert again.value is first.value
    with pytest.raises(UnknownFrameKind):
        decoder.feed(b"")


def test_broken_decoder_returns_no_frame_and_holds_nothing():
    decoder = FrameDecoder(max_frame_size=MAX)
    decoder.feed(raw_header(version=9) + encode_frame(FrameKind.HELLO))
    with pytest.raises(UnsupportedVersion):
        decoder.next_frame()
    assert decoder.buffered == 0
    assert decoder.next_frame() is None


# -- totality ----------------------------------------------------------------------------


def check_total(data: bytes, points: list[int]) -> None:
    result = feed_total(data, points)
    if isinstance(result, ProtocolError):
        assert isinstance(result.code, ErrorCode)
        assert result.code is not ErrorCode.NO_ERROR
    else:
        # Whatever was decoded re-encodes to a prefix of the input.
        assert data.startswith(encode_all(result))


@given(data=st.binary(max_size=300), points=split_points)
@example(data=b"", points=[])
@example(data=b"\x01" * 15, points=[])
@example(data=raw_header(length=MAX + 1), points=[15])
@example(data=raw_header(length=2**32 - 1) + b"x" * 100, points=[])
@example(data=raw_header(kind=FrameKind.CREDIT, length=4), points=[])
def test_arbitrary_bytes_yield_frames_or_protocol_error(data, points):
    check_total(data, points)


@given(data=mutated_streams(), points=split_points)
@example(data=encode_frame(FrameKind.ERROR, b"\x00\x00\x00\x01", request_id=1)[:19], points=[])
@example(data=raw_header(kind=FrameKind.GOODBYE, length=0), points=[])
def test_mutated_frame_streams_yield_frames_or_protocol_error(data, points):
    check_total(data, points)


@given(frames=st.lists(valid_frames, min_size=1, max_size=4), points=split_points)
def test_split_feeding_is_identical_for_corrupted_streams(frames, points):
    # A corrupted tail fails the same way however the bytes are split, after the
    # same valid frames.
    data = encode_all(frames) + raw_header(kind=200)
    decoder = FrameDecoder(max_frame_size=MAX)
    got: list[Frame] = []
    with pytest.raises(UnknownFrameKind):  # noqa: PT012 - frames are collected until it raises
        for chunk in split(data, points):
            decoder.feed(chunk)
            for _ in range(decoder.buffered // HEADER_SIZE + 1):
                frame = decoder.next_frame()
                if frame is None:
                    break
                got.append(frame)
    assert got == frames


def drain_into_total(data: bytes, points: Iterable[int]) -> tuple[list[Frame], str | None]:
    """Feed `data` split at `points` through the hot-path `drain_into`, checking
    that `feed()` returns False only when there is nothing to drain."""
    decoder = FrameDecoder(max_frame_size=MAX)
    out: list[tuple[int, int, int, int, bytes]] = []
    try:
        for chunk in split(data, points):
            ready = decoder.feed(chunk)
            drained = len(out)
            decoder.drain_into(out)
            # feed() said no frame can be complete: skipping the drain loses nothing.
            assert ready or len(out) == drained
            assert decoder.buffered < HEADER_SIZE + decoder.max_frame_size
    except ProtocolError as exc:
        return [Frame(FrameKind(k), f, c, r, b) for k, f, c, r, b in out], type(exc).__name__
    return [Frame(FrameKind(k), f, c, r, b) for k, f, c, r, b in out], None


def next_frame_total(data: bytes, points: Iterable[int]) -> tuple[list[Frame], str | None]:
    decoder = FrameDecoder(max_frame_size=MAX)
    frames: list[Frame] = []
    try:
        for chunk in split(data, points):
            decoder.feed(chunk)
            while (frame := decoder.next_frame()) is not None:
                frames.append(frame)
    except ProtocolError as exc:
        return frames, type(exc).__name__
    return frames, None


@given(frames=frame_lists, points=split_points)
def test_drain_into_matches_next_frame_on_valid_streams(frames, points):
    data = encode_all(frames)
    assert drain_into_total(data, points) == next_frame_total(data, points) == (frames, None)


@given(data=mutated_streams(), points=split_points)
def test_drain_into_matches_next_frame_on_corrupted_streams(data, points):
    assert drain_into_total(data, points) == next_frame_total(data, points)


def test_feed_reports_when_a_large_body_is_still_incomplete():
    body = b"x" * 20_000
    data = encode_frame(FrameKind.MESSAGE, body, cmd_id=1)
    decoder = FrameDecoder(max_frame_size=len(body))
    out: list[tuple[int, int, int, int, bytes]] = []
    assert decoder.feed(data[:1000]) is True  # a fresh header: worth parsing
    decoder.drain_into(out)
    assert out == []
    chunks = [data[i : i + 1000] for i in range(1000, len(data), 1000)]
    assert [decoder.feed(chunk) for chunk in chunks[:-1]] == [False] * (len(chunks) - 1)
    assert decoder.feed(chunks[-1]) is True
    decoder.drain_into(out)
    assert out == [(int(FrameKind.MESSAGE), 0, 1, 0, body)]


# -- version 2: flags, CANCEL and DRAINING -------------------------------------------------


@pytest.mark.parametrize("style", ["next_frame", "drain_into"])
def test_flags_are_returned_and_sections_stay_in_the_body(style):
    # The decoder checks flags on the header and leaves the sections to the link.
    frames = [
        Frame(FrameKind.MESSAGE, Flags.HEADERS, 1, 0, b"\x00\x01\x80body"),
        Frame(FrameKind.REQUEST, BOTH, 2, 3, b"\x00\x00\x00\x05\x00\x01\x80req"),
        Frame(FrameKind.MESSAGE, 0, 4, 0, b"plain"),
        Frame(FrameKind.CANCEL, 0, 0, 3, b""),
        Frame(FrameKind.DRAINING, 0, 0, 0, b""),
    ]
    decoder = FrameDecoder(max_frame_size=MAX)
    decoder.feed(encode_all(frames))
    if style == "next_frame":
        assert drain(decoder) == frames
    else:
        out: list[tuple[int, int, int, int, bytes]] = []
        decoder.drain_into(out)
        assert out == [tuple(f) for f in frames]
    assert decoder.buffered == 0


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(raw_header(kind=FrameKind.CANCEL, length=1, request_id=1) + b"x", id="cancel"),
        pytest.param(raw_header(kind=FrameKind.DRAINING, request_id=1), id="draining"),
        pytest.param(raw_header(kind=FrameKind.MESSAGE, flags=Flags.DEADLINE), id="msg-deadline"),
    ],
)
@pytest.mark.parametrize("style", ["next_frame", "drain_into"])
def test_a_bad_v2_frame_after_good_ones_delivers_them_first(bad, style):
    good = [
        Frame(FrameKind.MESSAGE, Flags.HEADERS, 1, 0, b"\x00\x01\x80"),
        Frame(FrameKind.CANCEL, 0, 0, 9, b""),
    ]
    data = encode_all(good) + bad
    frames, error = (drain_into_total if style == "drain_into" else next_frame_total)(data, [])
    assert (frames, error) == (good, "MalformedFrame")
