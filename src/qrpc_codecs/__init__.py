"""Message codecs for qrpc: the `Codec` protocol, built-in codecs and their registry.

A codec turns a message (a msgspec Struct) into bytes and back.  Two nodes
agree on one during the HELLO exchange, by name.  Built in: ``msgpack``
(the default), ``json`` and ``raw``.  Third-party codecs are found by name
in the entry-point group ``qrpc.codecs`` (the value is a `Codec`
*instance*), or registered in code with `register_codec`.  This package
imports nothing from `qrpc`, so benchmarks and codec packages can use it
alone.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from importlib.metadata import entry_points
from typing import Any, Final, Protocol, TypeVar, runtime_checkable

__all__ = [
    "ENTRY_POINT_GROUP",
    "Codec",
    "CodecError",
    "DecodeError",
    "EncodeError",
    "UnknownCodec",
    "available_codecs",
    "get_codec",
    "register_codec",
]

ENTRY_POINT_GROUP: Final = "qrpc.codecs"
T = TypeVar("T")


class CodecError(Exception):
    """Root of codec errors."""


class EncodeError(CodecError, TypeError):
    """The value cannot be encoded by this codec (wrong type or unsupported value)."""


class DecodeError(CodecError, ValueError):
    """The bytes are not a valid encoding of the expected type (peer bug or attack)."""


class UnknownCodec(CodecError, LookupError):
    """No codec of that name is registered or installed."""


@runtime_checkable
class Codec(Protocol):
    """What a codec provides.

    `decoder` is called once per message type (the result is cached by the
    caller), `encode` and the returned decoders once per message: keep them
    cheap.  Decoders must raise only `DecodeError` for bad input, and
    `encode` only `EncodeError` for values it cannot encode; check a codec
    with `qrpc_codecs.testing.check_codec`.
    """

    @property
    def name(self) -> str:
        """The name peers agree on in HELLO (1-64 characters)."""
        ...

    def encode(self, value: Any) -> bytes:
        """Encode one message."""
        ...

    def decoder(self, type_: type[T]) -> Callable[[bytes], T]:
        """Return a function decoding bytes into `type_`; raise `CodecError` if the
        codec cannot handle `type_` at all."""
        ...


_BUILTIN: Final = {
    "msgpack": "qrpc_codecs.msgpack",
    "json": "qrpc_codecs.json",
    "raw": "qrpc_codecs.raw",
}
_registry: dict[str, Codec] = {}


def register_codec(codec: Codec, *, replace: bool = False) -> None:
    """Make `codec` available under `codec.name`.

    Raises:
        CodecError: the object is not a codec, or the name is taken and
            `replace` is false.
    """
    if isinstance(codec, type) or not isinstance(codec, Codec):
        raise CodecError(f"{codec!r} is not a Codec instance")
    name = codec.name
    if not isinstance(name, str) or not 1 <= len(name) <= 64:
        raise CodecError(f"codec name {name!r} must be a str of 1-64 characters")
    existing = _registry.get(name)
    if existing is not None and existing is not codec and not replace:
        raise CodecError(f"a codec named {name!r} is already registered")
    _registry[name] = codec


def get_codec(name: str) -> Codec:
    """Return the codec called `name`, loading a built-in or an entry point on first use.

    Raises:
        UnknownCodec: nothing provides that name.
        CodecError: an entry point for the name is broken.
    """
    codec = _registry.get(name)
    if codec is not None:
        return codec
    module = _BUILTIN.get(name)
    if module is not None:
        loaded: object = import_module(module).codec
    else:
        loaded = _load_entry_point(name)
    if isinstance(loaded, type) or not isinstance(loaded, Codec):
        raise CodecError(f"codec {name!r} resolved to {loaded!r}, which is not a Codec instance")
    if loaded.name != name:
        raise CodecError(f"codec registered as {name!r} calls itself {loaded.name!r}")
    register_codec(loaded)
    return loaded


def _load_entry_point(name: str) -> object:
    for ep in entry_points(group=ENTRY_POINT_GROUP, name=name):
        try:
            return ep.load()
        except Exception as exc:  # a broken plugin must name itself, not crash later
            dist = ep.dist.name if ep.dist is not None else "?"
            raise CodecError(
                f"entry point {ep.name!r} = {ep.value!r} of distribution {dist!r} "
                f"failed to load: {exc!r}"
            ) from exc
    raise UnknownCodec(f"no codec named {name!r}; available: {', '.join(available_codecs())}")


def available_codecs() -> list[str]:
    """Names of every codec that `get_codec` can return, sorted."""
    names = set(_registry) | set(_BUILTIN)
    names.update(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))
    return sorted(names)
