"""Building the plugin manager: the built-in plugin, entry points, plugins given in code.

Plugins come from the entry-point group ``qrpc`` (the value is a module or
an instance, never a class) and from ``Node(plugins=[...])``.  Set
``QRPC_DISABLE_PLUGIN_AUTOLOAD=1`` (or ``true``/``yes``; ``0``, ``false``,
``no`` or empty leave autoloading on, anything else is a `ConfigError`) or
pass ``autoload=False`` to load only the plugins given in code.  Loading
happens when a node is constructed, never at import.  Hook names are
checked at once: a misspelt ``qrpc_*`` function fails loudly
(`pm.check_pending()`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from importlib.metadata import entry_points
from types import ModuleType
from typing import Final

import pluggy

from qrpc.errors import ConfigError
from qrpc.hooks import builtin
from qrpc.hooks.specs import PROJECT, HookSpecs

__all__ = [
    "AUTOLOAD_ENV",
    "BUILTIN_NAME",
    "ENTRY_POINT_GROUP",
    "autoload_disabled",
    "get_plugin_manager",
]

ENTRY_POINT_GROUP: Final = "qrpc"
AUTOLOAD_ENV: Final = "QRPC_DISABLE_PLUGIN_AUTOLOAD"
BUILTIN_NAME: Final = "qrpc.builtin"
_TRUE: Final = frozenset({"1", "true", "yes"})
_FALSE: Final = frozenset({"", "0", "false", "no"})


def get_plugin_manager(
    plugins: Iterable[object] = (), *, autoload: bool = True
) -> pluggy.PluginManager:
    """Return a plugin manager with the built-in plugin, entry-point plugins
    (unless disabled) and `plugins`, checked for misspelt hooks.

    Raises:
        ConfigError: a plugin fails to load, is a class, or implements an
            unknown ``qrpc_*`` hook; or ``QRPC_DISABLE_PLUGIN_AUTOLOAD`` is
            neither a yes nor a no.
    """
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(HookSpecs)
    pm.register(builtin, name=BUILTIN_NAME)
    if autoload and not autoload_disabled():
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            dist = ep.dist.name if ep.dist is not None else "?"
            where = f"entry point {ep.name!r} ({ep.value}) of {dist}"
            try:
                plugin = ep.load()
            except Exception as exc:
                raise ConfigError(where, f"failed to load: {exc!r}") from exc
            _register(pm, plugin, where, name=f"{dist}:{ep.name}")
    for plugin in plugins:
        _register(pm, plugin, f"plugin {plugin!r}")
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise ConfigError("plugins", str(exc)) from None
    return pm


def autoload_disabled() -> bool:
    """Whether ``QRPC_DISABLE_PLUGIN_AUTOLOAD`` turns entry-point loading off.

    Raises:
        ConfigError: the variable is set to something other than 1/true/yes
            or 0/false/no/empty (case-insensitive).
    """
    value = os.environ.get(AUTOLOAD_ENV, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(
        AUTOLOAD_ENV,
        f"must be 1, true or yes (disable autoloading) or 0, false, no or empty, "
        f"got {os.environ[AUTOLOAD_ENV]!r}",
    )


def _register(
    pm: pluggy.PluginManager, plugin: object, where: str, name: str | None = None
) -> None:
    if isinstance(plugin, type):
        raise ConfigError(
            where,
            "is a class; register a module or an instance (pluggy would register the "
            "class itself, whose hook methods then lack self)",
        )
    if not isinstance(plugin, ModuleType) and not any(
        name_.startswith("qrpc_") for name_ in dir(plugin)
    ):
        raise ConfigError(where, "implements no qrpc_* hook")
    try:
        pm.register(plugin, name=name)
    except (ValueError, pluggy.PluginValidationError) as exc:
        raise ConfigError(where, str(exc)) from None
