"""``qrpc certs``: a CA and node certificates."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from qrpc.tls.certs import issue_ca, issue_node_cert, write_pem
from qrpc.tls.identity import DEFAULT_DOMAIN

__all__ = ["add_commands"]


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


def add_commands(commands: Any) -> None:
    """Add ``certs`` to the ``qrpc`` subcommands."""
    certs = commands.add_parser("certs", help="issue a CA and node certificates")
    certs.add_argument("directory", help="where to write the PEM files")
    certs.add_argument("--nodes", type=int, default=2, help="node certificates to issue")
    certs.add_argument("--domain", default=DEFAULT_DOMAIN, help="trust domain of identity SANs")
    certs.add_argument(
        "--constrained", action="store_true", help="name-constrain the CA to node.<domain>"
    )
    certs.set_defaults(run=_certs)
