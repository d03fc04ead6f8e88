"""Frame layout and the ERROR/GOODBYE body helpers (`qrpc.wire.frames`)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import example, given, strategies as st

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
    decode_code_text,
    encode_code_text,
    encode_frame,
    encode_header,
)

u32 = st.integers(min_value=0, max_value=MAX_ID)


# -- constants and header layout ------------------------------------------------------


def test_constants_match_the_documented_protocol():
    assert PROTOCOL_VERSION == 2
    assert HEADER_SIZE == 16
    assert HEADER.size == 16
    assert HEADER.format == "!BBHIII"
    assert MAX_ID == 2**32 - 1
    assert DEFAULT_MAX_FRAME_SIZE == 4 * 1024 * 1024


def test_frame_kind_values_are_the_wire_bytes():
    assert {k.name: k.value for k in FrameKind} == {
        "HELLO": 1,
        "MESSAGE": 2,
        "REQUEST": 3,
        "RESPONSE": 4,
        "ERROR": 5,
        "GOODBYE": 6,
        "CREDIT": 7,
        "CANCEL": 8,
        "DRAINING": 9,
    }


def test_flag_values_are_the_wire_bits():
    assert (Flags.DEADLINE, Flags.HEADERS) == (0x0001, 0x0002)


def test_header_byte_offsets_are_big_endian():
    header = encode_header(FrameKind.REQUEST, 0x01020304, cmd_id=0x05060708, request_id=0x090A0B0C)
    assert header == bytes(
        [
            0x02,  # 0: version
            0x03,  # 1: kind (REQUEST)
            0x00, 0x00,  # 2-3: flags
            0x01, 0x02, 0x03, 0x04,  # 4-7: length
            0x05, 0x06, 0x07, 0x08,  # 8-11: cmd_id
            0x09, 0x0A, 0x0B, 0x0C,  # 12-15: request_id
        ]
    )  # fmt: skip


def test_header_flags_are_bytes_2_and_3_big_endian():
    header = encode_header(FrameKind.REQUEST, 0, cmd_id=1, request_id=1, flags=0x0102)
    assert header[:4] == b"\x02\x03\x01\x02"
    both = encode_header(FrameKind.REQUEST, 9, request_id=1, flags=Flags.DEADLINE | Flags.HEADERS)
    assert both[2:4] == b"\x00\x03"
    assert both == HEADER.pack(2, 3, 3, 9, 0, 1)


def test_header_defaults_cmd_id_request_id_and_flags_to_zero():
    assert encode_header(FrameKind.GOODBYE, 7) == b"\x02\x06\x00\x00\x00\x00\x00\x07" + bytes(8)


def test_header_fields_at_their_maximum():
    header = encode_header(FrameKind.RESPONSE, MAX_ID, cmd_id=MAX_ID, request_id=MAX_ID)
    assert header == b"\x02\x04\x00\x00" + b"\xff" * 12
    assert encode_header(FrameKind.MESSAGE, 0, flags=0xFFFF)[2:4] == b"\xff\xff"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("length", 2**32),
        ("cmd_id", 2**32),
        ("request_id", 2**32),
        ("length", -1),
        ("flags", 2**16),
        ("flags", -1),
    ],
)
def test_header_refuses_values_outside_their_field(field, value):
    kwargs = {"length": 0, "cmd_id": 0, "request_id": 0, "flags": 0, field: value}
    with pytest.raises(struct.error):
        encode_header(FrameKind.MESSAGE, **kwargs)


def test_encode_frame_is_header_then_body():
    body = b"hello, world"
    frame = encode_frame(FrameKind.MESSAGE, body, cmd_id=9)
    assert frame == encode_header(FrameKind.MESSAGE, len(body), cmd_id=9) + body
    assert len(frame) == HEADER_SIZE + 12
    assert frame[4:8] == b"\x00\x00\x00\x0c"


def test_encode_frame_with_flags_is_the_flagged_header_then_body():
    body = b"\x00\x00\x00\x05payload"
    frame = encode_frame(FrameKind.REQUEST, body, cmd_id=3, request_id=4, flags=Flags.DEADLINE)
    assert frame == encode_header(FrameKind.REQUEST, 11, 3, 4, flags=Flags.DEADLINE) + body
    assert frame[2:4] == b"\x00\x01"


def test_encode_frame_with_empty_body_is_just_the_header():
    assert encode_frame(FrameKind.HELLO) == b"\x02\x01" + bytes(14)


@given(
    kind=st.sampled_from([FrameKind.MESSAGE, FrameKind.REQUEST, FrameKind.RESPONSE]),
    body=st.binary(max_size=300),
    cmd_id=u32,
    request_id=st.integers(min_value=1, max_value=MAX_ID),
)
def test_encode_frame_round_trips_through_the_decoder(kind, body, cmd_id, request_id):
    if kind is FrameKind.MESSAGE:
        request_id = 0
    decoder = FrameDecoder(max_frame_size=300)
    decoder.feed(encode_frame(kind, body, cmd_id=cmd_id, request_id=request_id))
    assert decoder.next_frame() == Frame(kind, 0, cmd_id, request_id, body)
    assert decoder.next_frame() is None
    assert decoder.buffered == 0


@given(
    kind_flags=st.sampled_from(
        [
            (FrameKind.MESSAGE, Flags.HEADERS),
            (FrameKind.REQUEST, Flags.HEADERS),
            (FrameKind.REQUEST, Flags.DEADLINE),
            (FrameKind.REQUEST, Flags.DEADLINE | Flags.HEADERS),
            (FrameKind.RESPONSE, Flags.HEADERS),
            (FrameKind.ERROR, Flags.HEADERS),
        ]
    ),
    body=st.binary(max_size=300),
    cmd_id=u32,
    request_id=st.integers(min_value=1, max_value=MAX_ID),
)
def test_flagged_frames_round_trip_with_their_flags(kind_flags, body, cmd_id, request_id):
    # The decoder keeps the flags and leaves the sections in the body.
    kind, flags = kind_flags
    if kind is FrameKind.MESSAGE:
        request_id = 0
    if kind is FrameKind.ERROR:
        cmd_id = 0
    decoder = FrameDecoder(max_frame_size=300)
    decoder.feed(encode_frame(kind, body, cmd_id=cmd_id, request_id=request_id, flags=flags))
    assert decoder.next_frame() == Frame(kind, flags, cmd_id, request_id, body)
    assert decoder.next_frame() is None


@pytest.mark.parametrize(
    ("kind", "request_id"),
    [(FrameKind.CANCEL, 1), (FrameKind.CANCEL, MAX_ID), (FrameKind.DRAINING, 0)],
)
def test_cancel_and_draining_are_a_bare_header(kind, request_id):
    frame = encode_frame(kind, request_id=request_id)
    assert frame == HEADER.pack(2, kind, 0, 0, 0, request_id)
    decoder = FrameDecoder(max_frame_size=0)
    decoder.feed(frame)
    assert decoder.next_frame() == Frame(kind, 0, 0, request_id, b"")


def test_encode_header_plus_body_decodes_like_encode_frame():
    decoder = FrameDecoder(max_frame_size=64)
    decoder.feed(encode_header(FrameKind.CREDIT, 4) + b"\x00\x00\x10\x00")
    assert decoder.next_frame() == Frame(FrameKind.CREDIT, 0, 0, 0, b"\x00\x00\x10\x00")


# -- ERROR / GOODBYE bodies ------------------------------------------------------------


def test_code_text_layout_is_u32_code_then_utf8():
    assert encode_code_text(0x01020304, "hé", 256) == b"\x01\x02\x03\x04h\xc3\xa9"


def test_code_text_round_trip():
    assert decode_code_text(encode_code_text(5, "handler raised ValueError", 256)) == (
        5,
        "handler raised ValueError",
    )


def test_code_text_is_cut_to_limit_including_the_code():
    body = encode_code_text(1, "abcdefghij", 8)
    assert body == b"\x00\x00\x00\x01abcd"
    assert decode_code_text(body) == (1, "abcd")


@pytest.mark.parametrize("limit", [0, 1, 3, 4])
def test_code_text_limit_at_or_below_code_size_keeps_only_the_code(limit):
    assert encode_code_text(7, "reason", limit) == b"\x00\x00\x00\x07"


def test_code_text_cut_inside_a_multibyte_character_decodes_with_replacement():
    body = encode_code_text(2, "é", 5)  # é is 2 bytes: only its first byte fits
    assert body == b"\x00\x00\x00\x02\xc3"
    assert decode_code_text(body) == (2, "\ufffd")


def test_code_text_lone_surrogate_is_replaced_when_encoding():
    assert encode_code_text(3, "a\ud800b", 256) == b"\x00\x00\x00\x03a?b"


def test_decode_code_text_replaces_invalid_utf8():
    assert decode_code_text(b"\x00\x00\x00\x09ok\xff\xfe!") == (9, "ok\ufffd\ufffd!")


def test_decode_code_text_with_only_the_code():
    assert decode_code_text(b"\xff\xff\xff\xff") == (MAX_ID, "")


@given(code=u32, text=st.text(max_size=100), limit=st.integers(min_value=0, max_value=400))
@example(code=0, text="€€", limit=9)  # cut after the first byte of the second €
def test_code_text_is_bounded_and_decodes_to_a_prefix(code, text, limit):
    body = encode_code_text(code, text, limit)
    encoded = text.encode("utf-8")
    assert len(body) == 4 + min(len(encoded), max(0, limit - 4))
    decoded_code, decoded_text = decode_code_text(body)
    assert decoded_code == code
    if len(encoded) <= limit - 4:
        assert decoded_text == text
    else:
        kept = encoded[: max(0, limit - 4)]
        assert decoded_text == kept.decode("utf-8", "replace")


@given(body=st.binary(min_size=4, max_size=200))
@example(body=b"\x00\x00\x00\x00\x80")
@example(body=b"\x00\x00\x00\x00\xed\xa0\x80")  # an encoded surrogate: invalid UTF-8
def test_decode_code_text_never_raises(body):
    code, text = decode_code_text(body)
    assert code == int.from_bytes(body[:4], "big")
    assert text == body[4:].decode("utf-8", "replace")
