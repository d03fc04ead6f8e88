"""The ``qrpc`` command: run an app, talk to a node, manage certificates, inspect.

::

    qrpc certs DIR [--nodes N] [--domain D]   issue a CA and N node certificates
    qrpc plugins                              list installed plugins and their hooks
    qrpc codecs                               list available codecs
    qrpc schema export --app TARGET [--out F] write the registry's schema as JSON
    qrpc schema diff OLD NEW                  compare two exports; exit 1 if breaking

TARGET is ``package.module:attr`` or ``path/to/file.py:attr``.  A mistake on
the command line prints one line, ``qrpc: ...``, and exits with status 2.
Each subcommand lives in its own module with an ``add_commands(commands)``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

from qrpc.cli import certs, listing, schema
from qrpc.cli._common import USAGE_ERROR, Parser, UsageError, name_choices

__all__ = ["main"]

_COMMANDS = (certs, listing, schema)


def _version() -> str:
    try:
        return version("qrpc")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"


def _main(argv: Sequence[str] | None) -> int:
    parser = Parser(prog="qrpc", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"qrpc {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    for module in _COMMANDS:
        module.add_commands(commands)
    name_choices(commands)
    args = parser.parse_args(argv)
    status: int = args.run(args)
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``qrpc`` command; returns the exit status (2: a usage mistake,
    reported as one line on stderr)."""
    try:
        return _main(argv)
    except UsageError as exc:
        print(f"qrpc: {exc}", file=sys.stderr)
        return USAGE_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
