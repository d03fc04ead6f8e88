"""The schema types: what a HELLO carries, bounded so that decoding stays cheap."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Final, Literal, TypeAlias

import msgspec

__all__ = [
    "DIGEST_SIZE",
    "MAX_FIELDS",
    "MAX_MESSAGES",
    "MAX_NAME_LENGTH",
    "Change",
    "FieldSchema",
    "MessageSchema",
    "RegistrySchema",
    "SchemaDocumentError",
    "SchemaMode",
    "decode_schema",
    "encode_schema",
]

SchemaMode: TypeAlias = Literal["strict", "compatible", "off"]
"""How `Node(schema=...)` treats a peer whose registry differs on a shared cmd_id."""

MAX_NAME_LENGTH: Final = 128  # characters of a message or field name
MAX_FIELDS: Final = 256  # fields per message
MAX_MESSAGES: Final = 4096  # messages per registry
DIGEST_SIZE: Final = 8  # bytes: the first 8 of a sha256

_Name = Annotated[str, msgspec.Meta(max_length=MAX_NAME_LENGTH)]
_Digest = Annotated[bytes, msgspec.Meta(min_length=DIGEST_SIZE, max_length=DIGEST_SIZE)]
_CmdId = Annotated[int, msgspec.Meta(ge=1, le=0xFFFF_FFFF)]


class FieldSchema(msgspec.Struct, array_like=True, frozen=True):
    """One field of a message, as `describe` sees it."""

    name: _Name
    """The encoded field name (after msgspec renames)."""
    digest: _Digest
    """Digest of the field's type, nested Structs included, names excluded."""
    required: bool
    """True when a message must carry the field: it has no default (array_like:
    or a later field has none, as with kw_only fields)."""
    default: Annotated[bytes, msgspec.Meta(max_length=DIGEST_SIZE)] = b""
    """Digest of the default value; empty if required or not expressible in JSON."""


class MessageSchema(msgspec.Struct, array_like=True, frozen=True):
    """One registered message type, as `describe` sees it."""

    name: _Name
    """The Struct's ``__qualname__``: shown in texts, never compared."""
    digest: _Digest
    """Digest of everything below (and of the defaults): equal digests, equal schemas."""
    array_like: bool
    forbid_unknown_fields: bool
    fields: Annotated[list[FieldSchema], msgspec.Meta(max_length=MAX_FIELDS)]
    """In encoding order; the tag, if the Struct has one, first."""
    omit_defaults: bool = False


RegistrySchema: TypeAlias = Annotated[
    dict[_CmdId, MessageSchema], msgspec.Meta(max_length=MAX_MESSAGES)
]
"""cmd_id -> `MessageSchema`: what a node announces in its HELLO."""

_encoder: Final = msgspec.msgpack.Encoder()
_decoder: Final = msgspec.msgpack.Decoder(RegistrySchema)


def encode_schema(schema: RegistrySchema) -> bytes:
    """Encode `schema` (from `describe`) as msgpack, for a HELLO."""
    return _encoder.encode(schema)


def decode_schema(data: bytes) -> RegistrySchema:
    """Decode a peer's `encode_schema` output, within the bounds of the types.

    Raises:
        ValueError: `data` is not an encoded `RegistrySchema` within the bounds.
    """
    try:
        return _decoder.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"invalid registry schema: {exc}") from None


@dataclass(frozen=True)
class Change:
    """One difference `diff` found between two exported documents."""

    cmd_id: int
    breaking: bool
    """True when old and new nodes could not exchange the message safely."""
    text: str
    """What changed, e.g. ``field 'text' removed``."""


class SchemaDocumentError(ValueError):
    """A document given to `diff` is not a usable qrpc schema export."""

    def __init__(self, document: str, problem: str) -> None:
        self.document = document
        "Which argument: ``old`` or ``new``."
        self.problem = problem
        "What is wrong with it."
        super().__init__(f"{document} document: {problem}")
