"""The ``qrpc`` command: run an app, talk to a node, manage certificates, inspect.

::

    qrpc run TARGET [--listen H:P] [options]  serve an App or Node until SIGTERM
    qrpc ping HOST:PORT [--count N]           ask a node whether it is alive
    qrpc call HOST:PORT CMD_ID JSON --app T   send one request, print the reply as JSON
    qrpc peers HOST:PORT [--json]             a node's live links (introspection)
    qrpc stats HOST:PORT [--json]             a node's totals and links (introspection)
    qrpc certs init CA_DIR [--constrained]    create a CA (ca.crt, ca.key)
    qrpc certs issue CA_DIR OUT_DIR --name N  sign one node certificate into OUT_DIR
    qrpc certs show FILE                      describe a certificate (node ID, validity)
    qrpc certs DIR [--nodes N] [--domain D]   demo set-up: CA in DIR/ca/, N nodes in DIR
    qrpc schema export --app TARGET [--out F] write the registry's schema as JSON
    qrpc schema diff OLD NEW                  compare two exports; exit 1 if breaking
    qrpc plugins                              list plugins and their hooks (exit 1: broken)
    qrpc codecs                               list available codecs
    qrpc bench codecs [--codec N] [--struct T] time codecs on built-in or your own messages
    qrpc bench transport [--metric M]         qrpc between two local processes

TARGET is ``package.module:attr`` or ``path/to/file.py:attr``.  A mistake on
the command line prints one line, ``qrpc: ...``, and exits with status 2.
Each subcommand lives in its own module with an ``add_commands(commands)``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

from qrpc.cli import bench, certs, client, listing, run, schema
from qrpc.cli._common import USAGE_ERROR, Parser, UsageError, name_choices

__all__ = ["main"]

_COMMANDS = (run, client, certs, schema, listing, bench)


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
    if os.getcwd() not in sys.path and "" not in sys.path:  # the console script's case:
        sys.path.insert(0, os.getcwd())  # a module:attr target may live where qrpc is run
    try:
        return _main(argv)
    except UsageError as exc:
        print(f"qrpc: {exc}", file=sys.stderr)
        return USAGE_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
