"""Shared shape of the two msgspec-backed codecs (one API per format, as msgspec does)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, Protocol, TypeVar

import msgspec

from qrpc_codecs import CodecError, DecodeError, EncodeError

T = TypeVar("T")

# What msgspec raises for bad input: DecodeError covers
# ValidationError; invalid UTF-8 and deep nesting escape as the other two.
DECODE_ERRORS: Final = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)
ENCODE_ERRORS: Final = (TypeError, ValueError, OverflowError, RecursionError, msgspec.EncodeError)


class _Encoder(Protocol):
    def encode(self, obj: Any, /) -> bytes: ...


class MsgspecCodec:
    """A codec backed by one msgspec format module."""

    __slots__ = ("_decoder_type", "_encode", "name")

    def __init__(self, name: str, encoder: _Encoder, decoder_type: Callable[..., Any]) -> None:
        self.name = name
        self._encode = encoder.encode
        self._decoder_type = decoder_type

    def __repr__(self) -> str:
        return f"<qrpc codec {self.name!r}>"

    def encode(self, value: Any) -> bytes:
        """Encode one message."""
        try:
            return self._encode(value)
        except ENCODE_ERRORS as exc:
            raise EncodeError(f"{self.name} cannot encode {type(value).__name__}: {exc}") from exc

    def decoder(self, type_: type[T]) -> Callable[[bytes], T]:
        """Return a decoder for `type_`, built once."""
        try:
            decode = self._decoder_type(type_).decode
        except (TypeError, ValueError) as exc:
            raise CodecError(f"{self.name} cannot decode {type_!r}: {exc}") from None
        name = self.name

        def decode_checked(data: bytes) -> T:
            try:
                return decode(data)  # type: ignore[no-any-return]
            except DECODE_ERRORS as exc:
                raise DecodeError(f"{name}: {exc}") from None

        return decode_checked
