"""A CBOR (RFC 8949) message codec for qrpc, built on ``cbor2``.

Install the package and name the codec: ``Node(..., codecs=("cbor", "msgpack"))``.
It is published in the entry-point group ``qrpc.codecs`` as ``cbor``, so
`qrpc_codecs.get_codec("cbor")` finds it without a node and without a qrpc
plugin.

Messages are converted to builtins with `msgspec.to_builtins` (a Struct
becomes a map of its field names, or an array if ``array_like``), written
with ``cbor2``, and read back with `msgspec.convert`, which validates types
strictly.  Byte strings stay CBOR byte strings; datetimes, UUIDs, decimals
and enums travel as msgspec's string forms; map keys are always text, so
``dict[int, ...]`` fields work while the decoder can refuse non-text keys.

The decoder treats input as hostile (a peer bug or an attack):

- semantic tags are refused except bignums (tags 2 and 3, which the encoder
  writes for integers beyond 64 bits); in particular value sharing (28/29)
  and string references (25/256), which could expand a small message into
  a huge or cyclic object, and sets;
- indefinite-length items, duplicate map keys, map keys other than text or
  bytes (hash-collision floods), nesting deeper than `MAX_DEPTH` and
  trailing bytes after the item are refused;

each with `qrpc_codecs.DecodeError`, the only exception the decoder raises.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from typing import Any, Final, NoReturn, TypeVar, final

import cbor2
import msgspec

from qrpc_codecs import CodecError, DecodeError, EncodeError

__all__ = ["MAX_DEPTH", "CborCodec", "codec"]

T = TypeVar("T")

MAX_DEPTH: Final = 256  # nested arrays/maps a message may have
_BIGNUMS: Final = frozenset({2, 3})  # RFC 8949 §3.4.3: positive / negative bignum
# Tags cbor2 decodes by itself (cbor2 6.3); each is refused unless a bignum.
_BUILTIN_TAGS: Final = frozenset(
    {0, 1, 2, 3, 4, 5, 25, 28, 29, 30, 35, 36, 37, 52, 54, 100, 256, 258, 260, 261, 55799}
)
# Bytes stay bytes (CBOR major type 2); msgspec would otherwise base64 them.
_BUILTIN_TYPES: Final = (bytes, bytearray)


def _refuser(tag: int) -> Callable[..., NoReturn]:
    def refuse(*_: object) -> NoReturn:
        raise ValueError(f"CBOR tag {tag} is not allowed in qrpc messages")

    return refuse


def _refuse_unknown_tag(tag: cbor2.CBORTag, immutable: bool) -> NoReturn:
    raise ValueError(f"CBOR tag {tag.tag} is not allowed in qrpc messages")


_SEMANTIC_DECODERS: Final[Mapping[int, Callable[..., Any]]] = {
    tag: _refuser(tag) for tag in _BUILTIN_TAGS if tag not in _BIGNUMS
}


def _type_name(type_: object) -> str:
    return getattr(type_, "__qualname__", None) or repr(type_)


@final
class CborCodec:
    """The ``cbor`` codec (see the module docstring); use the instance `codec`."""

    __slots__ = ()
    name: Final = "cbor"

    def encode(self, value: Any) -> bytes:
        """Encode one message.

        Raises:
            EncodeError: `value` holds something msgspec or CBOR cannot represent.
        """
        try:
            builtins = msgspec.to_builtins(value, builtin_types=_BUILTIN_TYPES, str_keys=True)
            return cbor2.dumps(builtins)
        except (TypeError, ValueError, OverflowError, cbor2.CBOREncodeError) as exc:
            raise EncodeError(f"cbor cannot encode {type(value).__qualname__}: {exc}") from exc

    def decoder(self, type_: type[T]) -> Callable[[bytes], T]:
        """Return a function decoding CBOR bytes into `type_`.

        Raises:
            CodecError: msgspec cannot convert to `type_` at all.
        """
        try:
            msgspec.inspect.type_info(type_)  # TypeError for what msgspec cannot type
        except TypeError as exc:
            raise CodecError(f"cbor cannot decode {_type_name(type_)}: {exc}") from None
        convert = msgspec.convert

        def decode(data: bytes) -> T:
            try:
                stream = io.BytesIO(data)
                item = cbor2.CBORDecoder(
                    stream,
                    tag_hook=_refuse_unknown_tag,
                    semantic_decoders=_SEMANTIC_DECODERS,
                    max_depth=MAX_DEPTH,
                    allow_indefinite=False,
                    allow_duplicate_keys=False,
                    strict_hashable_types=True,
                ).decode()
                if stream.tell() != len(data):
                    raise ValueError(f"{len(data) - stream.tell()} bytes after the CBOR item")
                return convert(item, type_, str_keys=True)
            except (
                cbor2.CBORDecodeError,  # malformed CBOR, or a refusal above (chained)
                msgspec.ValidationError,  # well-formed CBOR, wrong shape for type_
                ValueError,
                TypeError,
                OverflowError,
                RecursionError,
            ) as exc:
                raise DecodeError(f"invalid cbor {_type_name(type_)}: {exc}") from None

        return decode

    def __repr__(self) -> str:
        return "<qrpc codec 'cbor'>"


codec: Final = CborCodec()
"""The codec instance, published in the ``qrpc.codecs`` entry-point group as ``cbor``."""
