"""``qrpc schema``: export a registry's schema, compare two exports."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from qrpc.cli._common import UsageError, name_choices
from qrpc.errors import RegistryError
from qrpc.schema import SchemaDocumentError, diff, export
from qrpc.targets import TargetError, load_target, registry_of

__all__ = ["add_commands"]


def _schema_export(args: argparse.Namespace) -> int:
    try:
        target = load_target(args.app)
    except TargetError as exc:
        raise UsageError(str(exc)) from None
    try:
        document = export(registry_of(target))
    except (TargetError, RegistryError) as exc:
        raise UsageError(f"--app {args.app}: {exc}") from None
    text = json.dumps(document, indent=2, sort_keys=True) + "\n"
    if args.out is None:
        sys.stdout.write(text)
        return 0
    try:
        Path(args.out).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {args.out}: {exc.strerror or exc}") from None
    return 0


def _read_json(path: str) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not UTF-8 text; give a file from qrpc schema export") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path} is not valid JSON: {exc}") from None
    except RecursionError:
        raise UsageError(f"{path} is nested too deeply to be a schema export") from None


def _schema_diff(args: argparse.Namespace) -> int:
    old, new = _read_json(args.old), _read_json(args.new)
    try:
        changes = diff(old, new)
    except SchemaDocumentError as exc:
        path = args.old if exc.document == "old" else args.new
        raise UsageError(f"{path}: {exc.problem}") from None
    for change in changes:
        kind = "breaking" if change.breaking else "compatible"
        print(f"cmd_id {change.cmd_id}: {kind}: {change.text}")
    if not changes:
        print("no changes")
    return 1 if any(change.breaking for change in changes) else 0


def add_commands(commands: Any) -> None:
    """Add ``schema export`` and ``schema diff`` to the ``qrpc`` subcommands."""
    schema = commands.add_parser("schema", help="export or compare registry schemas")
    actions = schema.add_subparsers(dest="schema_command", required=True)
    exporting = actions.add_parser("export", help="write a registry's schema as JSON")
    exporting.add_argument(
        "--app", required=True, metavar="TARGET", help="module:attr or file.py:attr"
    )
    exporting.add_argument("--out", metavar="FILE", help="write here instead of stdout")
    exporting.set_defaults(run=_schema_export)
    comparing = actions.add_parser("diff", help="compare two exports (exit 1: breaking)")
    comparing.add_argument("old", help="the export of the deployed version")
    comparing.add_argument("new", help="the export of the new version")
    comparing.set_defaults(run=_schema_diff)
    name_choices(actions)
