"""`check_codec`: the conformance suite every codec must pass.

Third-party codec packages call it from their own tests, with samples of the
messages they care about::

    from qrpc_codecs.testing import check_codec
    def test_conformance():
        check_codec(my_codec, samples=[Reading("thermo-7", [1.5, -0.0])])

It raises AssertionError describing the first rule the codec breaks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import msgspec

from qrpc_codecs import Codec, CodecError, DecodeError, EncodeError

__all__ = ["GARBAGE", "check_codec"]


class _Typical(msgspec.Struct):
    count: int
    name: str
    ratio: float
    values: list[int]
    flag: bool
    blob: bytes


class _Empty(msgspec.Struct):
    pass


class _Blob(msgspec.Struct):
    data: bytes


class _NotAMessage:
    pass


GARBAGE: tuple[bytes, ...] = (
    b"",
    b"\x00",
    b"\xff" * 7,
    b"\xc1",
    b'{"count": "x"}',
    b"\x91\xa1\xff",
    b"[" * 2000,
)
"""Inputs no message type decodes from; decoders must raise DecodeError (and only that)."""


def _check_bad_input(
    codec: Codec, decode: Callable[[bytes], object], type_: type, data: bytes
) -> None:
    """Bad input must raise DecodeError, or decode to a valid value; nothing else."""
    try:
        result = decode(data)
    except DecodeError:
        return
    except Exception as exc:
        raise AssertionError(
            f"{codec.name} decoder raised {exc!r} for {data[:16]!r}; expected DecodeError"
        ) from exc
    _require(isinstance(result, type_), f"{codec.name} decoded {data[:16]!r} to {result!r}")


def _check_value(codec: Codec, decode: Callable[[bytes], object], value: msgspec.Struct) -> None:
    encoded = codec.encode(value)
    _require(isinstance(encoded, bytes), f"encode returned {type(encoded).__name__}")
    _require(decode(encoded) == value, f"round trip changed {value!r}")
    truncated = encoded[:-1] if encoded else b"\xff"
    for bad in (*GARBAGE, truncated):
        _check_bad_input(codec, decode, type(value), bad)


def _require(condition: object, message: str) -> None:
    """Fail the conformance check (an explicit raise: it must not vanish under -O)."""
    if not condition:
        raise AssertionError(message)


def check_codec(codec: Codec, *, samples: Iterable[msgspec.Struct] = ()) -> None:
    """Assert that `codec` follows the `Codec` contract.

    Each message (built-in samples, then `samples`) must round-trip to an
    equal value, and its decoder must reject garbage and the truncated
    encoding with `DecodeError` only (or decode them to a valid value).
    Encoding a non-message must raise `EncodeError`.

    Args:
        codec: the codec instance under test.
        samples: your own messages, checked like the built-in ones; each
            must be supported (its decoder built).  A codec that supports
            only some types (like ``raw``) skips the built-in samples it
            cannot build a decoder for.

    Raises:
        AssertionError: naming the first rule the codec breaks.
    """
    _require(isinstance(codec, Codec), f"{codec!r} does not implement Codec")
    _require(isinstance(codec.name, str), "codec name must be a str")
    _require(1 <= len(codec.name) <= 64, "codec name must be 1-64 characters")
    builtin: list[msgspec.Struct] = [
        _Typical(7, "héllo", 1.5, list(range(10)), True, bytes(range(64))),
        _Typical(-(2**40), "", -0.0, [], False, b""),
        _Empty(),
        _Blob(b"\x00" * 70_000),
    ]
    supported = 0
    for value in builtin:
        try:
            decode = codec.decoder(type(value))
        except CodecError:
            continue
        supported += 1
        _check_value(codec, decode, value)
    _require(supported, f"{codec.name} supports none of the sample message types")
    for value in samples:
        try:
            decode = codec.decoder(type(value))
        except CodecError as exc:
            raise AssertionError(
                f"{codec.name} cannot decode {type(value).__name__}: {exc}"
            ) from exc
        _check_value(codec, decode, value)
    try:
        codec.encode(_NotAMessage())
    except EncodeError:
        pass
    except Exception as exc:
        raise AssertionError(
            f"{codec.name}.encode raised {exc!r} for a non-message; expected EncodeError"
        ) from exc
    else:
        raise AssertionError(f"{codec.name}.encode accepted an arbitrary object")
