"""Registry schemas: a fingerprint for the schema check at connect, documents for review.

`describe` turns a registry into a `RegistrySchema`, small enough for a HELLO
(`encode_schema` / `decode_schema`): per message its field names, an 8-byte
digest of each field's type and of its default.  `check` compares two under
a `SchemaMode`.  `export` writes a registry as a JSON document (JSON Schema
per message); `diff` compares two documents by the same rules.  Sans-IO:
msgspec and the standard library only.

Everything derives from ``msgspec.json.schema``, without names: renaming a
class or editing a docstring is not a schema change, while a change inside
a nested Struct is a change of every field that uses it.  A tag msgspec
derives from a class name is on the wire, so it is part of the schema.
Digests are the same in every process.  Limitation: JSON Schema does not
tell ``dict[int, X]`` from ``dict[str, X]``, so neither does the check.

``"compatible"`` refuses what would fail to decode, or decode to another
value, in either direction (each side may send the message to the other):

- ``array_like`` differs;
- a shared field's type differs;
- a field only one side has is required there, or the other side has
  ``forbid_unknown_fields``;
- a field is required on one side and optional on the other, and the
  optional side has ``omit_defaults`` (it leaves default values out);
- an optional field's default differs and either side has ``omit_defaults``;
- array_like messages are positional (``omit_defaults`` does not apply):
  fields at one position must have the same name and type, and the extra
  fields of the longer side, which are at its end, must be optional.

``"strict"`` refuses any difference of the message digest: fields, types,
required-ness, defaults, flags.  The class name is never compared.
``"off"`` refuses nothing.  Only cmd_ids both sides registered are compared.
"""

from qrpc.schema.compare import check as check, diff as diff
from qrpc.schema.describe import (
    EXPORT_VERSION as EXPORT_VERSION,
    describe as describe,
    export as export,
)
from qrpc.schema.model import (
    MAX_FIELDS as MAX_FIELDS,
    MAX_MESSAGES as MAX_MESSAGES,
    MAX_NAME_LENGTH as MAX_NAME_LENGTH,
    Change as Change,
    FieldSchema as FieldSchema,
    MessageSchema as MessageSchema,
    RegistrySchema as RegistrySchema,
    SchemaDocumentError as SchemaDocumentError,
    SchemaMode as SchemaMode,
    decode_schema as decode_schema,
    encode_schema as encode_schema,
)

__all__ = [
    "EXPORT_VERSION",
    "MAX_FIELDS",
    "MAX_MESSAGES",
    "MAX_NAME_LENGTH",
    "Change",
    "FieldSchema",
    "MessageSchema",
    "RegistrySchema",
    "SchemaDocumentError",
    "SchemaMode",
    "check",
    "decode_schema",
    "describe",
    "diff",
    "encode_schema",
    "export",
]
