"""The ``qrpc`` command.

::

    qrpc certs DIR [--nodes N] [--domain D]   issue a CA and N node certificates
    qrpc plugins                              list installed plugins and their hooks
    qrpc codecs                               list available codecs
    qrpc schema export --app TARGET [--out F] write the registry's schema as JSON
    qrpc schema diff OLD NEW                  compare two exports; exit 1 if breaking

TARGET is ``package.module:attr`` or ``path/to/file.py:attr`` naming a
Registry, or a Node or object whose ``.registry`` is one.  A mistake on the
command line prints one line, ``qrpc: ...``, and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, NoReturn

from qrpc.errors import RegistryError
from qrpc.hooks.manager import BUILTIN_NAME, ENTRY_POINT_GROUP, get_plugin_manager
from qrpc.schema import SchemaDocumentError, diff, export
from qrpc.targets import TargetError, load_target, registry_of
from qrpc.tls.certs import issue_ca, issue_node_cert, write_pem
from qrpc.tls.identity import DEFAULT_DOMAIN
from qrpc_codecs import available_codecs

__all__ = ["main"]

USAGE_ERROR = 2  # exit status of a mistake on the command line


class _UsageError(Exception):
    """A mistake of the user: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{message} (see {self.prog} --help)")


def _certs(args: argparse.Namespace) -> int:
    out = Path(args.directory)
    out.mkdir(parents=True, exist_ok=True)
    ca = issue_ca(constrain_to_domain=args.domain if args.constrained else None)
    write_pem(ca, out / "ca.crt", out / "ca.key")
    print(f"CA          {out / 'ca.crt'}")
    for index in range(args.nodes):
        node = issue_node_cert(ca, domain=args.domain)
        stem = out / f"node-{index + 1}"
        write_pem(node, stem.with_suffix(".crt"), stem.with_suffix(".key"))
        print(f"node {node.node_id}  {stem}.crt  {stem}.key")
    return 0


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


def _schema_export(args: argparse.Namespace) -> int:
    try:
        target = load_target(args.app)
    except TargetError as exc:
        raise _UsageError(str(exc)) from None
    try:
        document = export(registry_of(target))
    except (TargetError, RegistryError) as exc:
        raise _UsageError(f"--app {args.app}: {exc}") from None
    text = json.dumps(document, indent=2, sort_keys=True) + "\n"
    if args.out is None:
        sys.stdout.write(text)
        return 0
    try:
        Path(args.out).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise _UsageError(f"cannot write {args.out}: {exc.strerror or exc}") from None
    return 0


def _read_json(path: str) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise _UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise _UsageError(
            f"{path} is not UTF-8 text; give a file from qrpc schema export"
        ) from None
    except json.JSONDecodeError as exc:
        raise _UsageError(f"{path} is not valid JSON: {exc}") from None
    except RecursionError:
        raise _UsageError(f"{path} is nested too deeply to be a schema export") from None


def _schema_diff(args: argparse.Namespace) -> int:
    old, new = _read_json(args.old), _read_json(args.new)
    try:
        changes = diff(old, new)
    except SchemaDocumentError as exc:
        path = args.old if exc.document == "old" else args.new
        raise _UsageError(f"{path}: {exc.problem}") from None
    for change in changes:
        kind = "breaking" if change.breaking else "compatible"
        print(f"cmd_id {change.cmd_id}: {kind}: {change.text}")
    if not changes:
        print("no changes")
    return 1 if any(change.breaking for change in changes) else 0


def _add_schema(commands: Any) -> None:
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
    _name_choices(actions)


def _name_choices(commands: Any) -> None:
    """Name the subcommands in "required" errors (argparse would name the dest)."""
    commands.metavar = "{" + ",".join(commands.choices) + "}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``qrpc`` command; returns the exit status (2: a usage mistake,
    reported as one line on stderr)."""
    try:
        return _main(argv)
    except _UsageError as exc:
        print(f"qrpc: {exc}", file=sys.stderr)
        return USAGE_ERROR


def _main(argv: Sequence[str] | None) -> int:
    parser = _Parser(prog="qrpc", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    certs = commands.add_parser("certs", help="issue a CA and node certificates")
    certs.add_argument("directory", help="where to write the PEM files")
    certs.add_argument("--nodes", type=int, default=2, help="node certificates to issue")
    certs.add_argument("--domain", default=DEFAULT_DOMAIN, help="trust domain of identity SANs")
    certs.add_argument(
        "--constrained", action="store_true", help="name-constrain the CA to node.<domain>"
    )
    certs.set_defaults(run=_certs)
    commands.add_parser("plugins", help="list plugins and their hooks").set_defaults(run=_plugins)
    commands.add_parser("codecs", help="list available codecs").set_defaults(run=_codecs)
    _add_schema(commands)
    _name_choices(commands)
    args = parser.parse_args(argv)
    status: int = args.run(args)
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
