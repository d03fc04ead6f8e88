"""`App`: an application's handlers and state, apart from the `Node` that runs them.

An app module builds one `App` and decorates its handlers; whoever runs it
(``qrpc run module:app``, a test, a ``main()``) decides where: ``app.node(tls=...,
listen=..., peers=...)`` returns a fresh `Node` carrying those handlers.  Node
settings from a TOML file and ``QRPC_*`` variables are `NodeSettings`
(``docs/running.md``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from qrpc.app.settings import NodeSettings
from qrpc.config import check_registry
from qrpc.node import Node
from qrpc.registry import Registry
from qrpc.runtime.handlers import HandlerSpec, HandlerT, HandlerTable

__all__ = ["App", "NodeSettings"]


class App:
    """An application's handlers by cmd_id and the state they share.

    Args:
        registry: cmd_id <-> message type table of the application.
        state: any object the handlers reach as ``ctx.state`` (default for
            every node built by `node`).

    Raises:
        ConfigError: `registry` is not a `Registry`.
    """

    def __init__(self, registry: Registry, *, state: Any = None) -> None:
        self.registry = check_registry(registry)
        self.state = state
        self._handlers = HandlerTable(self.registry)

    def __repr__(self) -> str:
        return f"<App {len(self._handlers)} handler(s), {len(self.registry)} message type(s)>"

    def handler(self, cmd_id: int, *, concurrency: int = 1) -> Callable[[HandlerT], HandlerT]:
        """Route messages of `cmd_id` to the decorated ``async def f(ctx, msg)``
        (or plain ``def``) in every node this app builds; the same rules as
        `Node.handler`.

        Raises:
            RegistryError: bad `concurrency` (at once), or, when decorating, an
                unknown or taken cmd_id or a mismatched message annotation.
        """
        return self._handlers.decorator(cmd_id, concurrency)

    @property
    def handlers(self) -> Mapping[int, HandlerSpec]:
        """The handlers by cmd_id (read-only): each `HandlerSpec` has ``fn`` and ``concurrency``."""
        return self._handlers

    def node(self, **node_kwargs: Any) -> Node:
        """Build a `Node` of this app's registry with its handlers.

        `node_kwargs` are `Node`'s keyword arguments (``tls`` is required);
        ``state`` defaults to the app's.  Each call returns a new node;
        handlers added to the app later do not reach nodes already built.

        Raises:
            ConfigError: an unusable argument (see `Node`).
        """
        node_kwargs.setdefault("state", self.state)
        node = Node(self.registry, **node_kwargs)
        for cmd_id, spec in self._handlers.items():
            node.handler(cmd_id, concurrency=spec.concurrency)(spec.fn)
        return node
