"""Loading an application object named on the command line.

A target is ``package.module:attr`` or ``path/to/file.py:attr``; ``attr``
may be dotted (``app.registry``).  A file is loaded under a unique module
name, with its directory on ``sys.path`` only while it is executed (so it
may import its neighbours).  Every failure is a `TargetError` whose message
is one line saying what is wrong and how to fix it.
"""

from __future__ import annotations

import importlib
import importlib.util
import itertools
import sys
from pathlib import Path
from types import ModuleType
from typing import Final

from qrpc.registry import Registry

__all__ = ["TargetError", "load_target", "registry_of"]

_FORMS: Final = "write it as package.module:attr or path/to/file.py:attr"
_SHOWN_ATTRIBUTES: Final = 8
_loaded = itertools.count(1)


class TargetError(ValueError):
    """A target cannot be loaded or is not what the command needs; the message
    is one line naming the problem and the fix."""


def load_target(spec: str) -> object:
    """Import the module or file `spec` names and return its attribute.

    Raises:
        TargetError: `spec` has no ``:``, the file or module does not exist,
            importing it raised, or the attribute is missing.
    """
    where, colon, attr = spec.rpartition(":")
    if not colon or not where or not attr:
        raise TargetError(f"target {spec!r} must name a module and an attribute: {_FORMS}")
    parts = attr.split(".")
    if not all(part.isidentifier() for part in parts):
        raise TargetError(f"target {spec!r}: {attr!r} is not a (dotted) attribute name")
    if where.endswith(".py") or "/" in where or "\\" in where:
        module = _load_file(spec, Path(where))
    else:
        module = _import_module(spec, where)
    obj: object = module
    for index, part in enumerate(parts):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            owner = repr(where) if index == 0 else repr(".".join(parts[:index]))
            raise TargetError(
                f"target {spec!r}: {owner} has no attribute {part!r}; {_some_attributes(obj)}"
            ) from None
        except Exception as exc:  # a property or __getattr__ of the application
            raise TargetError(
                f"target {spec!r}: getting {part!r} raised {_one_line(exc)}"
            ) from None
    return obj


def registry_of(obj: object) -> Registry:
    """Return `obj` if it is a `Registry`, else its ``registry`` attribute if
    that is one (a `Node`, an application object).

    Raises:
        TargetError: neither is a `Registry`.
    """
    if isinstance(obj, Registry):
        return obj
    registry = getattr(obj, "registry", None)
    if isinstance(registry, Registry):
        return registry
    raise TargetError(
        f"{_describe(obj)} is not a qrpc.Registry and has no .registry that is one; "
        "name the Registry (or a Node or object holding it) instead"
    )


def _load_file(spec: str, path: Path) -> ModuleType:
    if not path.is_file():
        raise TargetError(f"target {spec!r}: file {str(path)!r} not found; check the path")
    name = f"_qrpc_target_{next(_loaded)}_{path.stem if path.stem.isidentifier() else 'file'}"
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise TargetError(f"target {spec!r}: {str(path)!r} cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module  # so msgspec can resolve string annotations of its Structs
    directory = str(path.resolve().parent)
    sys.path.insert(0, directory)
    try:
        module_spec.loader.exec_module(module)
    except BaseException as exc:
        sys.modules.pop(name, None)
        if not isinstance(exc, Exception | SystemExit):
            raise
        raise TargetError(
            f"target {spec!r}: importing {str(path)!r} failed: {_one_line(exc)}; "
            "fix the file (or run it with python to see the traceback)"
        ) from None
    finally:
        if directory in sys.path:
            sys.path.remove(directory)
    return module


def _import_module(spec: str, name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
            raise TargetError(
                f"target {spec!r}: no module named {exc.name!r}; install it, run from the "
                "directory that holds it, or add that directory to PYTHONPATH"
            ) from None
        problem = _one_line(exc)
    except (Exception, SystemExit) as exc:
        problem = _one_line(exc)
    raise TargetError(
        f"target {spec!r}: importing {name!r} failed: {problem}; "
        f"fix the module (python -c 'import {name}' shows the traceback)"
    )


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _some_attributes(obj: object) -> str:
    try:
        names = sorted(name for name in dir(obj) if not name.startswith("_"))
    except Exception:
        names = []
    if not names:
        return "it has no public attributes"
    shown = ", ".join(names[:_SHOWN_ATTRIBUTES])
    more = f" and {len(names) - _SHOWN_ATTRIBUTES} more" if len(names) > _SHOWN_ATTRIBUTES else ""
    return f"it has: {shown}{more}"


def _describe(obj: object) -> str:
    if isinstance(obj, ModuleType):
        return f"module {obj.__name__!r}"
    if isinstance(obj, type):
        return f"class {obj.__qualname__}"
    return f"{type(obj).__qualname__} object {_shorten(repr(obj))}"


def _shorten(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
