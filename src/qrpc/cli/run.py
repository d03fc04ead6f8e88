"""``qrpc run TARGET``: serve an `App` or a `Node` until SIGINT/SIGTERM.

An App's node is built from its settings, each taken from the first place
that sets it: the command line, the ``QRPC_*`` variables, the config file
(``--config`` or ``QRPC_CONFIG``), the defaults of `Node`.  A ready-made
Node keeps its own settings: only bootstrap peers can be added to it (the
public `Node.add_peer`), any other setting is refused.  ``docs/running.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import logging
import os
from collections.abc import Callable, Mapping
from typing import Any, Final

from msgspec import UNSET

from qrpc.app import App
from qrpc.app.settings import NodeSettings, TLSTable, check_log_level, parse_address
from qrpc.cli._common import UsageError, argument_type
from qrpc.errors import ConfigError, NodeClosed
from qrpc.node import Node
from qrpc.targets import TargetError, load_target

__all__ = ["add_commands"]

log = logging.getLogger("qrpc.cli.run")

INTERRUPTED: Final = 130
_KINDS: Final = "a qrpc.App, a qrpc.Node or a function without arguments returning one"
_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_FLAGS: Final = {
    "listen": "--listen",
    "peers": "--peer",
    "tls.ca": "--ca",
    "tls.cert": "--cert",
    "tls.key": "--key",
    "log_level": "--log-level",
    "introspection": "--introspection",
}
_VARIABLES: Final = {
    "listen": "QRPC_LISTEN",
    "peers": "QRPC_PEERS",
    "tls.ca": "QRPC_CA",
    "tls.cert": "QRPC_CERT",
    "tls.key": "QRPC_KEY",
    "log_level": "QRPC_LOG_LEVEL",
    "autoload_plugins": "QRPC_AUTOLOAD_PLUGINS",
    "introspection": "QRPC_INTROSPECTION",
}
_AIOQUIC_LOGGERS: Final = ("aioquic", "quic", "http3")  # the names aioquic logs under
_NODE_ACCEPTS: Final = frozenset({"peers", "log_level"})


def _run(args: argparse.Namespace) -> int:
    config = args.config or os.environ.get("QRPC_CONFIG", "").strip()
    try:
        env = NodeSettings.from_env()
        file = NodeSettings.load(config) if config else NodeSettings()
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    tls = TLSTable(ca=args.ca or UNSET, cert=args.cert or UNSET, key=args.key or UNSET)
    cli = NodeSettings(
        listen=args.listen or UNSET,
        peers=args.peer or UNSET,
        log_level=args.log_level or UNSET,
        introspection=args.introspection or UNSET,
        tls=tls if tls != TLSTable() else UNSET,
    )
    try:
        target = load_target(args.target)
    except TargetError as exc:
        raise UsageError(str(exc)) from None
    merged = NodeSettings.merged(file, env, cli)
    _configure_logging(merged.log_level if merged.log_level is not UNSET else "INFO")
    sources: dict[str, Callable[[str], str]] = {
        "command line": _FLAGS.__getitem__,
        "environment": _VARIABLES.__getitem__,
        "config file": lambda key: f"{config}: {key}",
    }
    layers = dict(zip(sources, (cli, env, file), strict=True))
    try:
        return asyncio.run(_serve(args.target, target, merged, layers, sources))
    except KeyboardInterrupt:  # a second Ctrl-C while draining, or one before serving
        log.warning("interrupted")
        return INTERRUPTED


async def _serve(
    spec: str,
    target: object,
    merged: NodeSettings,
    layers: Mapping[str, NodeSettings],
    sources: Mapping[str, Callable[[str], str]],
) -> int:
    if not isinstance(target, App | Node) and callable(target):
        target = await _call_factory(spec, target)
    node: Node | None = None
    try:
        if isinstance(target, App):
            node = _build(target, merged)
        elif isinstance(target, Node):
            node = target
            _refuse_changes(spec, layers, sources)
            for peer in NodeSettings(peers=merged.peers).node_options().get("peers", ()):
                node.add_peer(peer)
        else:
            raise UsageError(f"target {spec!r} is {_what(target)}, not {_KINDS}; name one of those")
        await node.start()
    except ConfigError as exc:
        if node is not None:
            await node.close()
        raise UsageError(str(exc)) from None
    except NodeClosed as exc:
        raise UsageError(f"target {spec!r}: {exc}") from None
    host, port = node.address
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    log.info("serving %s: node %s listening on %s", spec, node.id, where)
    peers = ", ".join(str(state.address) for state in node.dial_states())
    log.info("bootstrap peers: %s", peers or "none")
    await node.serve()
    return 0


def _build(app: App, settings: NodeSettings) -> Node:
    options = settings.node_options()
    if "tls" not in options:
        raise UsageError(
            "no certificate: give --ca, --cert and --key (or QRPC_CA, QRPC_CERT and "
            "QRPC_KEY, or a [tls] table in the --config file)"
        )
    return app.node(**options)


def _refuse_changes(
    spec: str, layers: Mapping[str, NodeSettings], sources: Mapping[str, Callable[[str], str]]
) -> None:
    for origin, layer in layers.items():
        for key in layer.set_keys():
            if key not in _NODE_ACCEPTS:
                raise UsageError(
                    f"{sources[origin](key)} cannot change target {spec!r}: it is a ready-made "
                    "qrpc.Node (only peers can be added); set it in the code, or expose a "
                    "qrpc.App instead"
                )


async def _call_factory(spec: str, factory: Callable[..., Any]) -> object:
    try:
        inspect.signature(factory).bind()
    except TypeError:
        raise UsageError(
            f"target {spec!r} takes arguments; name {_KINDS} (a factory takes none)"
        ) from None
    except ValueError:  # no signature to check (some builtins): just call it
        pass
    try:
        result = factory()
        if inspect.isawaitable(result):
            result = await result
    except Exception as exc:
        text = " ".join(str(exc).split())
        problem = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
        raise UsageError(f"target {spec!r}: calling it raised {problem}; fix the factory") from None
    if not isinstance(result, App | Node):
        raise UsageError(
            f"target {spec!r} returned {_what(result)}, not a qrpc.App or qrpc.Node; return one"
        )
    return result


def _what(obj: object) -> str:
    kind = type(obj)
    return f"a {kind.__module__ + '.' if kind.__module__ == 'qrpc' else ''}{kind.__qualname__}"


def _configure_logging(level_name: str) -> None:
    """stderr logging at `level_name` (qrpc and the app); aioquic's loggers at
    WARNING or quieter (they log every connection at INFO)."""
    level = logging.getLevelNamesMapping()[check_log_level(level_name)]
    logging.basicConfig(level=level, format=_FORMAT)
    logging.getLogger("qrpc").setLevel(level)
    for name in _AIOQUIC_LOGGERS:  # never louder than a level qrpc already gave them
        logger = logging.getLogger(name)
        logger.setLevel(max(level, logging.WARNING, logger.level))


def _address(lowest_port: int) -> Callable[[str], str]:
    def address(text: str) -> str:
        parse_address(text, lowest_port=lowest_port)
        return text.strip()

    return argument_type(address)


_log_level = argument_type(check_log_level)


def add_commands(commands: Any) -> None:
    """Add ``run`` to the ``qrpc`` subcommands."""
    run = commands.add_parser(
        "run",
        help="serve an App or a Node until SIGINT/SIGTERM",
        description=(
            "Serve TARGET until SIGINT/SIGTERM, then drain and exit 0.  An App's node "
            "takes each setting from the command line, else QRPC_* variables, else "
            "the config file, else the Node default."
        ),
    )
    run.add_argument(
        "target",
        metavar="TARGET",
        help="module:attr or path/to/file.py:attr: an App, a Node, or a function returning one",
    )
    run.add_argument("--listen", metavar="HOST:PORT", type=_address(0), help="address to bind")
    run.add_argument(
        "--peer",
        metavar="HOST:PORT",
        action="append",
        type=_address(1),
        help="a bootstrap peer to dial (repeatable; host names allowed)",
    )
    run.add_argument("--ca", metavar="FILE", help="PEM file of the CA")
    run.add_argument("--cert", metavar="FILE", help="PEM file of the node's certificate")
    run.add_argument("--key", metavar="FILE", help="PEM file of the node's private key")
    run.add_argument(
        "--log-level", metavar="LEVEL", type=_log_level, help="DEBUG, INFO (default), WARNING..."
    )
    run.add_argument(
        "--introspection",
        metavar="NODE_ID",
        action="append",
        help="a node ID that may use the peers/stats service (repeatable; default: none)",
    )
    run.add_argument("--config", metavar="FILE.toml", help="a settings file (docs/running.md)")
    run.set_defaults(run=_run)
