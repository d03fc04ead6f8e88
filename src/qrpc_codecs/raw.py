"""Raw bytes: for messages that are a single `bytes` field, sent as-is.

A message type qualifies when it is a msgspec Struct with exactly one field,
annotated `bytes`.  Its encoding is that field's value, with no framing or
copying; decoding wraps the bytes back into the Struct.  Other types are
refused when the decoder is built, so a node whose registry holds them
cannot offer this codec.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, TypeVar, cast

import msgspec

from qrpc_codecs import CodecError, EncodeError

__all__ = ["RawCodec", "codec"]

T = TypeVar("T")


class RawCodec:
    """The ``raw`` codec."""

    __slots__ = ("_fields",)
    name: Final = "raw"

    def __init__(self) -> None:
        self._fields: dict[type, str] = {}

    def __repr__(self) -> str:
        return "<qrpc codec 'raw'>"

    def _field_of(self, type_: type) -> str:
        field = self._fields.get(type_)
        if field is not None:
            return field
        if not (isinstance(type_, type) and issubclass(type_, msgspec.Struct)):
            raise CodecError(f"raw codec: {type_!r} is not a msgspec Struct")
        info = cast("msgspec.inspect.StructType", msgspec.inspect.type_info(type_))  # a Struct
        if len(info.fields) != 1 or not isinstance(info.fields[0].type, msgspec.inspect.BytesType):
            raise CodecError(
                f"raw codec: {type_.__name__} must have exactly one field, of type bytes"
            )
        field = info.fields[0].name
        self._fields[type_] = field
        return field

    def encode(self, value: Any) -> bytes:
        """Return the message's single bytes field."""
        try:
            data = getattr(value, self._field_of(type(value)))
        except CodecError as exc:
            raise EncodeError(str(exc)) from None
        if type(data) is not bytes:
            raise EncodeError(
                f"raw codec: field of {type(value).__name__} holds {type(data).__name__}"
            )
        return data

    def decoder(self, type_: type[T]) -> Callable[[bytes], T]:
        """Return a function wrapping bytes into `type_`."""
        self._field_of(type_)

        def decode(data: bytes) -> T:
            return type_(bytes(data))  # type: ignore[call-arg]

        return decode


codec: Final = RawCodec()
