"""``qrpc plugins`` and ``qrpc codecs``: what is installed."""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import entry_points
from typing import Any

from qrpc.cli._common import UsageError
from qrpc.errors import ConfigError
from qrpc.hooks.manager import ENTRY_POINT_GROUP, autoload_disabled, get_plugin_manager
from qrpc_codecs import available_codecs

__all__ = ["add_commands"]


def _one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())


def _entry_point_plugins() -> tuple[dict[int, tuple[str, str, object]], list[str]]:
    """Load each entry-point plugin on its own: (id -> (name, where, plugin), failures)."""
    found: dict[int, tuple[str, str, object]] = {}
    failures: list[str] = []
    try:
        disabled = autoload_disabled()
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    if disabled:
        return found, failures
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist
        label = f"{dist.name if dist else '?'}:{ep.name}"
        try:
            plugin = ep.load()
            get_plugin_manager([plugin], autoload=False)  # its hooks, checked alone
        except Exception as exc:
            owner = f"{dist.name} {dist.version}" if dist else "an unknown distribution"
            failures.append(
                f"qrpc: plugin entry point {ep.name!r} ({ep.value}) of {owner} failed to load: "
                f"{_one_line(exc)}; fix or uninstall it"
            )
            continue
        where = f"{dist.name} {dist.version}, entry point {ep.name}" if dist else ep.value
        found[id(plugin)] = (label, where, plugin)
    return found, failures


def _plugins(args: argparse.Namespace) -> int:
    found, failures = _entry_point_plugins()
    try:
        pm = get_plugin_manager([plugin for _, _, plugin in found.values()], autoload=False)
    except ConfigError as exc:  # each loads alone, but not all of them together
        pm = get_plugin_manager(autoload=False)
        failures.append(f"qrpc: the plugins conflict: {_one_line(exc)}")
    for name, plugin in pm.list_name_plugin():
        name, where, _ = found.get(id(plugin), (name, "built in", None))
        hooks = sorted(caller.name for caller in pm.get_hookcallers(plugin) or ())
        print(f"{name}  ({where})\n    hooks: {', '.join(hooks) or '-'}")
        status = _status(plugin)
        if status:
            print(f"    status: {status}")
    for failure in failures:
        print(failure, file=sys.stderr)
    return 1 if failures else 0


def _status(plugin: object) -> str | None:
    """What the plugin's optional ``plugin_status()`` says (active or inert, and why)."""
    status = getattr(plugin, "plugin_status", None)
    if not callable(status):
        return None
    try:
        return " ".join(str(status()).split())
    except Exception as exc:  # a plugin's bug must not break the listing
        return f"unknown: its plugin_status() raised {_one_line(exc)}"


def _codecs(args: argparse.Namespace) -> int:
    for name in available_codecs():
        print(name)
    return 0


def add_commands(commands: Any) -> None:
    """Add ``plugins`` and ``codecs`` to the ``qrpc`` subcommands."""
    commands.add_parser(
        "plugins",
        help="list plugins and their hooks (exit 1: a plugin failed to load)",
        description="List the built-in and installed plugins and the hooks each implements. "
        "A plugin that fails to load is named on stderr in one line; the others are still "
        "listed, and the exit status is 1.",
    ).set_defaults(run=_plugins)
    commands.add_parser("codecs", help="list available codecs").set_defaults(run=_codecs)
