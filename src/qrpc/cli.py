"""The ``qrpc`` command.

::

    qrpc certs DIR [--nodes N] [--domain D]   issue a CA and N node certificates
    qrpc plugins                              list installed plugins and their hooks
    qrpc codecs                               list available codecs
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points
from pathlib import Path

from qrpc.hooks.manager import BUILTIN_NAME, ENTRY_POINT_GROUP, get_plugin_manager
from qrpc.tls.certs import issue_ca, issue_node_cert, write_pem
from qrpc.tls.identity import DEFAULT_DOMAIN
from qrpc_codecs import available_codecs

__all__ = ["main"]


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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``qrpc`` command; returns the exit status."""
    parser = argparse.ArgumentParser(prog="qrpc", description=__doc__.splitlines()[0])
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
    args = parser.parse_args(argv)
    status: int = args.run(args)
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
