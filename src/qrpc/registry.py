"""`Registry`: the table mapping integer command IDs to msgspec Struct types.

Every node of an application shares one registry, so a cmd_id means the
same type on both ends of a link.  The table is checked both ways: a cmd_id
or a type may be registered once.  Decoders are built once per (codec,
type), when a codec is first used with the registry, and kept up to date as
types are added.
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Final, TypeVar

import msgspec

from qrpc.errors import RegistryError
from qrpc_codecs import Codec, CodecError

__all__ = ["MAX_CMD_ID", "RESERVED_CMD_IDS", "Registry"]

MAX_CMD_ID: Final = 0xFFFF_FFFF  # cmd_id is a u32 on the wire; 0 is reserved
RESERVED_CMD_IDS: Final = range(0xFFFF_FF00, MAX_CMD_ID + 1)
"""cmd_ids of the built-in services every node answers (``docs/services.md``)."""
_RESERVED_TEXT: Final = f"{RESERVED_CMD_IDS.start:#x}..{MAX_CMD_ID:#x}"
S = TypeVar("S", bound=msgspec.Struct)
Decoder = Callable[[bytes], msgspec.Struct]


class Registry:
    """cmd_id <-> message type, in both directions.

    Example::

        registry = qrpc.Registry()
        registry.register(1, Ping)
        registry.register(2, Pong)
    """

    __slots__ = ("__weakref__", "_by_id", "_by_type", "_decoders", "_derived", "_hidden")

    def __init__(self) -> None:
        self._by_id: dict[int, type[msgspec.Struct]] = {}
        self._by_type: dict[type[msgspec.Struct], int] = {}
        self._decoders: dict[str, tuple[Codec, dict[int, Decoder]]] = {}
        self._derived: weakref.WeakSet[Registry] = weakref.WeakSet()
        self._hidden = 0  # built-in service types (only in `with_services` registries)

    def register(self, cmd_id: int, type_: type[S]) -> type[S]:
        """Map `cmd_id` to `type_` (returns `type_`, so it also works as a decorator
        through `functools.partial`).

        cmd_ids 0xFFFFFF00..0xFFFFFFFF (`RESERVED_CMD_IDS`) belong to the built-in
        services every node answers (``docs/services.md``); applications cannot
        register them.

        Raises:
            RegistryError: `cmd_id` is out of range or reserved, `type_` is not a
                msgspec Struct, either is already registered, or a codec already
                in use cannot encode the type.
        """
        if isinstance(cmd_id, bool) or not isinstance(cmd_id, int) or not 1 <= cmd_id <= MAX_CMD_ID:
            raise RegistryError(f"cmd_id must be an int in 1..{MAX_CMD_ID}, got {cmd_id!r}")
        if cmd_id in RESERVED_CMD_IDS:
            raise RegistryError(
                f"cmd_id {cmd_id:#x} is in the range reserved for built-in services "
                f"({_RESERVED_TEXT}); use a cmd_id below {RESERVED_CMD_IDS.start:#x}"
            )
        registries = [self, *self._derived]
        prepared = [(registry, registry._prepare(cmd_id, type_)) for registry in registries]
        for registry, built in prepared:  # all or nothing: no table learns a refused type
            registry._insert(cmd_id, type_, built)
        return type_

    def with_services(self, services: Iterable[tuple[int, type[msgspec.Struct]]]) -> Registry:
        """A registry with this one's types and the built-in `services` (reserved
        cmd_ids), kept up to date as types are registered here.  This registry is
        unchanged.  Iterating it (and so the schema a node sends) shows only this
        registry's types; a codec that cannot carry a service type just has no
        decoder for it.

        Raises:
            RegistryError: a service cmd_id is outside `RESERVED_CMD_IDS`.
        """
        derived = Registry()
        for cmd_id, type_ in self._by_id.items():
            derived._insert(cmd_id, type_, [])
        for cmd_id, type_ in services:
            if cmd_id not in RESERVED_CMD_IDS:
                raise RegistryError(f"service cmd_id {cmd_id:#x} is outside {_RESERVED_TEXT}")
            derived._insert(cmd_id, type_, derived._prepare(cmd_id, type_))
            derived._hidden += 1
        self._derived.add(derived)
        return derived

    def _prepare(
        self, cmd_id: int, type_: type[msgspec.Struct]
    ) -> list[tuple[dict[int, Decoder], Decoder]]:
        """Check that `cmd_id` and `type_` are free here; build their decoders."""
        if not (isinstance(type_, type) and issubclass(type_, msgspec.Struct)):
            raise RegistryError(f"message types must be msgspec.Struct subclasses, got {type_!r}")
        existing = self._by_id.get(cmd_id)
        if existing is not None:
            raise RegistryError(
                f"cmd_id {cmd_id} is already registered to {existing.__qualname__}; "
                f"cannot register {type_.__qualname__}"
            )
        other_id = self._by_type.get(type_)
        if other_id is not None:
            raise RegistryError(
                f"{type_.__qualname__} is already registered as cmd_id {other_id}; "
                f"cannot register it again as {cmd_id}"
            )
        service = cmd_id in RESERVED_CMD_IDS
        built = []
        for codec, table in self._decoders.values():
            decoder = _decoder_or_none(codec, type_) if service else _build_decoder(codec, type_)
            if decoder is not None:
                built.append((table, decoder))
        return built

    def _insert(
        self,
        cmd_id: int,
        type_: type[msgspec.Struct],
        built: list[tuple[dict[int, Decoder], Decoder]],
    ) -> None:
        for table, decoder in built:
            table[cmd_id] = decoder
        self._by_id[cmd_id] = type_
        self._by_type[type_] = cmd_id

    def cmd_id_of(self, type_: type[msgspec.Struct]) -> int:
        """Return the cmd_id of `type_`.

        Raises:
            RegistryError: `type_` is not registered.
        """
        try:
            return self._by_type[type_]
        except KeyError:
            raise RegistryError(f"{_name(type_)} is not registered") from None

    def type_of(self, cmd_id: int) -> type[msgspec.Struct]:
        """Return the type registered for `cmd_id`.

        Raises:
            RegistryError: nothing is registered under `cmd_id`.
        """
        try:
            return self._by_id[cmd_id]
        except KeyError:
            raise RegistryError(f"cmd_id {cmd_id} is not registered") from None

    def decoders(self, codec: Codec) -> dict[int, Decoder]:
        """Return the live cmd_id -> decoder table for `codec`, building it on first use.

        Raises:
            RegistryError: `codec` cannot handle one of the registered types.
        """
        entry = self._decoders.get(codec.name)
        if entry is not None and entry[0] is codec:
            return entry[1]
        table = {
            cmd_id: _build_decoder(codec, type_)
            for cmd_id, type_ in self._by_id.items()
            if cmd_id not in RESERVED_CMD_IDS
        }
        for cmd_id, type_ in self._by_id.items():
            if cmd_id in RESERVED_CMD_IDS and (decoder := _decoder_or_none(codec, type_)):
                table[cmd_id] = decoder
        self._decoders[codec.name] = (codec, table)
        return table

    def check_handler(self, cmd_id: int, handler: Callable[..., Any]) -> None:
        """Check that `handler(ctx, msg)` is callable (``async def`` or plain
        ``def``) and that `msg`'s annotation, if any, names the type registered
        for `cmd_id`.

        Raises:
            RegistryError: not callable, or both type names on a mismatch.
        """
        type_ = self.type_of(cmd_id)
        if not callable(handler):
            raise RegistryError(
                f"handler {handler!r} for cmd_id {cmd_id} must be callable as handler(ctx, msg)"
            )
        if inspect.isasyncgenfunction(handler) or inspect.isgeneratorfunction(handler):
            raise RegistryError(
                f"handler {_name(handler)} for cmd_id {cmd_id} is a generator: make it an "
                "async def (or a plain def) that returns the answer"
            )
        try:
            signature = inspect.signature(handler)
        except (TypeError, ValueError):
            return
        try:
            signature.bind(None, None)
        except TypeError:
            raise RegistryError(
                f"handler {_name(handler)} must be callable as handler(ctx, msg); "
                f"its signature is {signature}"
            ) from None
        params = list(signature.parameters.values())
        annotation = params[1].annotation
        if annotation is inspect.Parameter.empty:
            return
        if isinstance(annotation, str):
            matches = annotation.rpartition(".")[2] == type_.__name__
        else:
            matches = isinstance(annotation, type) and issubclass(type_, annotation)
        if not matches:
            shown = annotation if isinstance(annotation, str) else _name(annotation)
            raise RegistryError(
                f"handler {_name(handler)} annotates its message as {shown}, "
                f"but cmd_id {cmd_id} is registered to {type_.__qualname__}"
            )

    def __contains__(self, item: object) -> bool:
        return item in self._by_id or item in self._by_type

    def __iter__(self) -> Iterator[tuple[int, type[msgspec.Struct]]]:
        return iter(sorted(i for i in self._by_id.items() if i[0] not in RESERVED_CMD_IDS))

    def __len__(self) -> int:
        return len(self._by_id) - self._hidden

    def __repr__(self) -> str:
        entries = ", ".join(f"{i}: {t.__qualname__}" for i, t in self)
        return f"Registry({{{entries}}})"


def _build_decoder(codec: Codec, type_: type[msgspec.Struct]) -> Decoder:
    try:
        return codec.decoder(type_)
    except CodecError as exc:
        raise RegistryError(
            f"codec {codec.name!r} cannot carry {type_.__qualname__}: {exc}"
        ) from exc


def _decoder_or_none(codec: Codec, type_: type[msgspec.Struct]) -> Decoder | None:
    try:
        return codec.decoder(type_)
    except CodecError:
        return None


def _name(obj: object) -> str:
    return getattr(obj, "__qualname__", None) or repr(obj)
