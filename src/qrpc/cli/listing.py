"""``qrpc plugins`` and ``qrpc codecs``: what is installed."""

from __future__ import annotations

import argparse
from importlib.metadata import entry_points
from typing import Any

from qrpc.hooks.manager import BUILTIN_NAME, ENTRY_POINT_GROUP, get_plugin_manager
from qrpc_codecs import available_codecs

__all__ = ["add_commands"]


def _plugins(args: argparse.Namespace) -> int:
    pm = get_plugin_manager(autoload=True)
    sources: dict[int, str] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist
        where = f"{dist.name} {dist.version}, entry point {ep.name}" if dist else ep.value
        sources[id(ep.load())] = where  # already imported by get_plugin_manager
    for name, plugin in pm.list_name_plugin():
        where = "built in" if name == BUILTIN_NAME else sources.get(id(plugin), "in code")
        hooks = sorted(caller.name for caller in pm.get_hookcallers(plugin) or ())
        print(f"{name}  ({where})\n    hooks: {', '.join(hooks) or '-'}")
    return 0


def _codecs(args: argparse.Namespace) -> int:
    for name in available_codecs():
        print(name)
    return 0


def add_commands(commands: Any) -> None:
    """Add ``plugins`` and ``codecs`` to the ``qrpc`` subcommands."""
    commands.add_parser("plugins", help="list plugins and their hooks").set_defaults(run=_plugins)
    commands.add_parser("codecs", help="list available codecs").set_defaults(run=_codecs)
