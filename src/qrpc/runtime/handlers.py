"""Handlers: `HandlerSpec` (a handler and its concurrency), the node's `HandlerTable`,
and `Refusal`, how a built-in service answers with a specific error code."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeVar

from qrpc.codes import RemoteErrorCode
from qrpc.errors import RegistryError
from qrpc.registry import RESERVED_CMD_IDS, Registry
from qrpc.runtime.context import Context

__all__ = ["Handler", "HandlerSpec", "HandlerT", "HandlerTable", "Refusal"]

Handler = Callable[[Context, Any], Any]
"""``async def f(ctx, msg)`` (its awaitable's result answers a request) or a plain
``def f(ctx, msg)`` (its result does)."""
HandlerT = TypeVar("HandlerT", bound=Handler)


@dataclass(frozen=True, slots=True)
class HandlerSpec:
    """A handler and how many of its calls may run at once per peer.

    A plain ``def`` handler (`inline`) is called directly by the peer's inbox:
    no coroutine per message; ordering and credit are the same as for an
    ``async def`` one, but it cannot be cancelled at a deadline (it returns
    first) and it holds the event loop while it runs.
    """

    fn: Handler
    concurrency: int = 1
    inline: bool = field(init=False)
    "True for a plain function: its result is the answer, not an awaitable."

    def __post_init__(self) -> None:
        fn: Any = self.fn
        call = fn if inspect.isroutine(fn) else type(fn).__call__  # an object's __call__
        awaits = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(call)
        object.__setattr__(self, "inline", not awaits)

    @staticmethod
    def check_concurrency(concurrency: object) -> None:
        """Raise `RegistryError` unless `concurrency` is a positive int."""
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise RegistryError(f"concurrency must be a positive int, got {concurrency!r}")


class Refusal(Exception):
    """Raised by a built-in service's handler: the request is answered with
    ERROR `code` and the exception's text (instead of HANDLER_ERROR)."""

    def __init__(self, code: RemoteErrorCode, text: str) -> None:
        super().__init__(text)
        self.code = code


class HandlerTable(Mapping[int, HandlerSpec]):
    """A node's handlers by cmd_id: read-only as a mapping, added through `decorator`.

    Args:
        registry: the node's registry, which checks each handler's cmd_id and type.
        services: the built-in services' handlers (reserved cmd_ids): in `view`
            for the dispatcher, hidden from the mapping itself.
    """

    __slots__ = ("_registry", "_specs", "view")

    def __init__(
        self, registry: Registry, services: Mapping[int, HandlerSpec] | None = None
    ) -> None:
        self._registry = registry
        self._specs: dict[int, HandlerSpec] = dict(services or {})
        self.view: Mapping[int, HandlerSpec] = MappingProxyType(self._specs)
        """The same handlers, built-in services included, as a live read-only
        mapping whose lookups run in C (what the dispatcher reads for every message)."""

    def decorator(self, cmd_id: int, concurrency: int) -> Callable[[HandlerT], HandlerT]:
        """Return a decorator adding its function as the handler of `cmd_id` (`Node.handler`).

        Raises:
            RegistryError: bad `concurrency` (at once), or, when decorating, an
                unknown or taken cmd_id or a mismatched message annotation.
        """
        HandlerSpec.check_concurrency(concurrency)

        def decorate(fn: HandlerT) -> HandlerT:
            self._registry.check_handler(cmd_id, fn)
            if cmd_id in self._specs:
                raise RegistryError(f"cmd_id {cmd_id} already has a handler")
            self._specs[cmd_id] = HandlerSpec(fn, concurrency)
            return fn

        return decorate

    def __getitem__(self, cmd_id: int) -> HandlerSpec:
        if cmd_id in RESERVED_CMD_IDS:
            raise KeyError(cmd_id)
        return self._specs[cmd_id]

    def __iter__(self) -> Iterator[int]:
        return (cmd_id for cmd_id in self._specs if cmd_id not in RESERVED_CMD_IDS)

    def __len__(self) -> int:
        return sum(1 for _ in self)
