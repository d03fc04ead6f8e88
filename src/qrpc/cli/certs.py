"""``qrpc certs``: create a CA, issue node certificates, show a certificate.

``qrpc certs init CA_DIR`` makes a CA; ``qrpc certs issue CA_DIR OUT_DIR
--name NAME`` signs one node certificate with it into a folder a node can
read (never holding the CA key); ``qrpc certs show FILE`` describes a
certificate.  ``qrpc certs DIR --nodes N`` is the quick demo set-up: a CA
in ``DIR/ca/`` plus ``DIR/ca.crt`` and ``DIR/node-1..N.{crt,key}``.
Nothing is ever overwritten.  See ``docs/certificates.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cryptography import x509

from qrpc.cli._common import Parser, UsageError, argument_type
from qrpc.errors import ConfigError, PeerAuthError
from qrpc.ids import normalize_node_id
from qrpc.tls.certs import (
    Issued,
    check_domain,
    constrained_domain,
    issue_ca,
    issue_node_cert,
    load_issuer,
    new_ca_name,
    write_pem,
)
from qrpc.tls.identity import DEFAULT_DOMAIN, PeerIdentity
from qrpc.tls.pem import load_certificates

__all__ = ["add_commands"]

CA_DAYS = 3650
NODE_DAYS = 365
MAX_DAYS = 36500  # a hundred years: beyond that, a date is surely a typo
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_WORDS = "a subcommand and its arguments, or the quick form DIR [--nodes N]"
_EPILOG = """\
commands:
  qrpc certs init CA_DIR [--domain D] [--constrained] [--days N]
  qrpc certs issue CA_DIR OUT_DIR --name NAME [--id NODE_ID] [--days N] [--domain D]
  qrpc certs show FILE [--domain D]
  qrpc certs DIR [--nodes N] [--domain D] [--constrained] [--days N]
each takes --help"""


def _days(text: str) -> int:
    try:
        days = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of days") from None
    if not 1 <= days <= MAX_DAYS:
        raise argparse.ArgumentTypeError(f"{days} is not between 1 and {MAX_DAYS} days")
    return days


_domain = argument_type(check_domain)


def _nodes(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= count <= 1000:
        raise argparse.ArgumentTypeError(f"{count} is not between 1 and 1000 nodes")
    return count


def _directory(path: Path, what: str) -> Path:
    """Make sure `path` is a directory, creating it (mode 0700 if new)."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except FileExistsError:
        raise UsageError(f"{what} {path} is not a directory; give a folder") from None
    except OSError as exc:
        raise UsageError(f"cannot create {what} {path}: {exc.strerror or exc}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write to {what} {path}: permission denied")
    return path


def _refuse_existing(paths: Sequence[Path], fix: str) -> None:
    for path in paths:
        if path.exists() or path.is_symlink():
            raise UsageError(f"{path} already exists and is never overwritten; {fix}")


def _write(issued: Issued, cert: Path, key: Path | None) -> None:
    try:
        write_pem(issued, cert, key)
    except OSError as exc:
        raise UsageError(f"cannot write {exc.filename or cert}: {exc.strerror or exc}") from None


def _new_ca(args: argparse.Namespace) -> Issued:
    return issue_ca(
        new_ca_name(),
        days=args.days,
        constrain_to_domain=args.domain if args.constrained else None,
    )


def _init(args: argparse.Namespace) -> int:
    ca_dir = Path(args.ca_dir)
    crt, key = ca_dir / "ca.crt", ca_dir / "ca.key"
    for path in (crt, key):
        if path.exists() or path.is_symlink():
            raise UsageError(
                f"{ca_dir} already holds a CA ({path}), left untouched; add nodes with "
                f"`qrpc certs issue {ca_dir} OUT_DIR --name NAME`"
            )
    _directory(ca_dir, "CA_DIR")
    ca = _new_ca(args)
    _write(ca, crt, key)
    print(f"CA          {ca.cert.subject.rfc4514_string()}")
    print(f"certificate {crt}\nkey         {key} (mode 0600: keep it off the nodes)")
    return 0


def _load_ca(ca_dir: Path) -> Issued:
    crt, key = ca_dir / "ca.crt", ca_dir / "ca.key"
    if not key.exists() and (ca_dir / "ca" / "ca.key").exists():
        raise UsageError(f"{ca_dir} holds no ca.key; the CA of `qrpc certs DIR` is {ca_dir / 'ca'}")
    try:
        ca = load_issuer(crt, key)
    except ConfigError as exc:
        raise UsageError(
            f"{exc} (CA_DIR must hold ca.crt and ca.key from `qrpc certs init`)"
        ) from None
    if ca.cert.not_valid_after_utc < dt.datetime.now(dt.UTC):
        raise UsageError(f"the CA in {ca_dir} expired; make a new one with `qrpc certs init`")
    return ca


def _issue_domain(ca: Issued, given: str | None) -> str:
    limit = constrained_domain(ca.cert)
    if given is not None and limit is not None and given != limit:
        raise UsageError(f"the CA is constrained to domain {limit!r}; drop --domain {given}")
    return given or limit or DEFAULT_DOMAIN


def _check_lifetime(ca: Issued, days: int) -> None:
    end = dt.datetime.now(dt.UTC) + dt.timedelta(days=days)
    ca_end = ca.cert.not_valid_after_utc
    if end > ca_end:
        left = max((ca_end - dt.datetime.now(dt.UTC)).days, 1)
        raise UsageError(
            f"--days {days} outlasts the CA (valid until {ca_end:%Y-%m-%d}); use --days {left} "
            "or less"
        )


def _place_ca_copy(ca: Issued, target: Path) -> None:
    """Copy the CA certificate to `target`, or accept a file already trusting it."""
    if target.exists():
        try:
            present = load_certificates(target)
        except ConfigError as exc:
            raise UsageError(f"{exc}; move it away so the CA certificate can be copied") from None
        if ca.cert not in present:
            raise UsageError(
                f"{target} holds another CA; use a fresh OUT_DIR or add this CA's ca.crt to it"
            )
        return
    _write(ca, target, None)


def _issue(args: argparse.Namespace) -> int:
    ca_dir, out = Path(args.ca_dir), Path(args.out_dir)
    if _NAME.fullmatch(args.name) is None or args.name == "ca":
        raise UsageError(
            f"--name {args.name!r} is not a file name: use letters, digits, '.', '_', '-' "
            "(and not 'ca')"
        )
    node_id = args.id
    if node_id is not None:
        try:
            node_id = normalize_node_id(node_id)
        except ValueError as exc:
            raise UsageError(f"--id: {exc}") from None
    ca = _load_ca(ca_dir)
    domain = _issue_domain(ca, args.domain)
    _check_lifetime(ca, args.days)
    if out.exists() and out.resolve() == ca_dir.resolve():
        raise UsageError("OUT_DIR must not be CA_DIR: nodes read OUT_DIR and must never see ca.key")
    if (out / "ca.key").exists():
        raise UsageError(f"{out} holds a CA key; nodes read OUT_DIR: move ca.key to the CA folder")
    crt, key = out / f"{args.name}.crt", out / f"{args.name}.key"
    _refuse_existing([crt, key], "pick another --name or remove the old files")
    _directory(out, "OUT_DIR")
    node = issue_node_cert(ca, node_id, domain=domain, days=args.days)
    _place_ca_copy(ca, out / "ca.crt")
    _write(node, crt, key)
    print(f"node ID     {node.node_id}")
    print(f"certificate {crt}\nkey         {key} (mode 0600)\nCA          {out / 'ca.crt'}")
    return 0


def _extension(cert: x509.Certificate, kind: type[x509.ExtensionType]) -> Any:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _key_usages(cert: x509.Certificate) -> str:
    usage = _extension(cert, x509.KeyUsage)
    if usage is None:
        return "-"
    names = [
        "digital_signature",
        "content_commitment",
        "key_encipherment",
        "data_encipherment",
        "key_agreement",
        "key_cert_sign",
        "crl_sign",
    ]
    found = [name for name in names if getattr(usage, name)]
    if usage.key_agreement:
        found += [name for name in ("encipher_only", "decipher_only") if getattr(usage, name)]
    return ", ".join(found) or "-"


def _node_id(cert: x509.Certificate, domain: str) -> str:
    try:
        node_id = PeerIdentity.from_certificate(cert, domain).node_id
    except PeerAuthError as exc:
        return f"none: peers refuse this certificate ({exc})"
    if node_id is None:
        return f"none (no identity SAN '<node-id>.node.{domain}'; another domain? pass --domain)"
    return f"{node_id} (trust domain {domain})"


def _guess_domain(cert: x509.Certificate) -> str:
    sans = _extension(cert, x509.SubjectAlternativeName)
    dns = sans.get_values_for_type(x509.DNSName) if sans is not None else []
    domains = {name.split(".node.", 1)[1].lower() for name in dns if ".node." in name}
    return domains.pop() if len(domains) == 1 else DEFAULT_DOMAIN


def _describe(cert: x509.Certificate, domain: str | None, now: dt.datetime) -> str:
    """Describe `cert` in lines of ``label  value``; the node ID is read as a node
    of trust domain `domain` would (None: the domain of its identity SAN)."""
    domain = domain or _guess_domain(cert)
    constraints = _extension(cert, x509.BasicConstraints)
    is_ca = constraints is not None and constraints.ca
    sans = _extension(cert, x509.SubjectAlternativeName)
    ekus = _extension(cert, x509.ExtendedKeyUsage)
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    state = "EXPIRED" if now > end else "NOT YET VALID" if now < start else "valid"
    rows = [
        ("subject", cert.subject.rfc4514_string()),
        ("issuer", cert.issuer.rfc4514_string()),
        ("CA", "yes" if is_ca else "no"),
        ("node ID", "- (a CA has none)" if is_ca else _node_id(cert, domain)),
        ("SANs", ", ".join(str(getattr(n, "value", n)) for n in sans or ()) or "-"),
        ("not before", f"{start:%Y-%m-%d %H:%M:%S} UTC"),
        ("not after", f"{end:%Y-%m-%d %H:%M:%S} UTC ({state})"),
        ("key usage", _key_usages(cert)),
        ("ext. usage", ", ".join(oid._name for oid in ekus or ()) or "-"),
        ("serial", f"{cert.serial_number:x}"),
    ]
    constrained = constrained_domain(cert) if is_ca else None
    if constrained is not None:
        rows.insert(3, ("constrained", f"node.{constrained}"))
    return "\n".join(f"{label:<12}{value}" for label, value in rows)


def _show(args: argparse.Namespace) -> int:
    try:
        certs = load_certificates(args.file)
    except ConfigError as exc:
        hint = "; give a PEM certificate such as ca.crt or NAME.crt" if "no PEM" in str(exc) else ""
        raise UsageError(f"{exc}{hint}") from None
    now = dt.datetime.now(dt.UTC)
    print("\n\n".join(_describe(cert, args.domain, now) for cert in certs))
    return 0


def _quick(args: argparse.Namespace) -> int:
    out = Path(args.directory)
    ca_dir = out / "ca"
    if any(p.exists() for p in (out / "ca.key", ca_dir / "ca.crt", ca_dir / "ca.key")):
        where = ca_dir if (ca_dir / "ca.key").exists() else out
        raise UsageError(
            f"{out} already holds a CA; add nodes with "
            f"`qrpc certs issue {where} OUT_DIR --name NAME`"
        )
    stems = [out / f"node-{index + 1}" for index in range(args.nodes)]
    _refuse_existing(
        [out / "ca.crt", *(s.with_suffix(x) for s in stems for x in (".crt", ".key"))],
        "use an empty folder, or `qrpc certs issue` to add nodes",
    )
    _directory(out, "DIR")
    _directory(ca_dir, "the CA folder")
    ca = _new_ca(args)
    _write(ca, ca_dir / "ca.crt", ca_dir / "ca.key")
    _write(ca, out / "ca.crt", None)
    print(f"CA          {ca_dir / 'ca.crt'}  {ca_dir / 'ca.key'} (keep this key off the nodes)")
    for stem in stems:
        node = issue_node_cert(ca, domain=args.domain, days=min(args.days, NODE_DAYS))
        _write(node, stem.with_suffix(".crt"), stem.with_suffix(".key"))
        print(f"node {node.node_id}  {stem}.crt  {stem}.key")
    return 0


class _Dispatch:
    """Run ``qrpc certs WORDS``: a subcommand's parser, or else the ``DIR`` quick form."""

    def __init__(self, actions: dict[str, argparse.ArgumentParser], quick: Parser) -> None:
        self.actions, self.quick = actions, quick

    def __call__(self, args: argparse.Namespace) -> int:
        words: list[str] = args.words
        if not words:
            raise UsageError("give init, issue, show or a DIR (see qrpc certs --help)")
        action = self.actions.get(words[0])
        chosen = action.parse_args(words[1:]) if action else self.quick.parse_args(words)
        status: int = chosen.run(chosen)
        return status


def _ca_options(parser: argparse.ArgumentParser, days: int) -> None:
    parser.add_argument(
        "--domain", type=_domain, default=DEFAULT_DOMAIN, help="trust domain of identity SANs"
    )
    parser.add_argument(
        "--constrained", action="store_true", help="name-constrain the CA to node.<domain>"
    )
    parser.add_argument("--days", type=_days, default=days, help=f"validity (default {days})")


def add_commands(commands: Any) -> None:
    """Add ``certs`` (``init``, ``issue``, ``show`` and the ``DIR`` quick form)."""
    certs = commands.add_parser(
        "certs",
        help="create a CA, issue node certificates, show a certificate",
        description=__doc__.split("\n\n")[1].replace("``", ""),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    certs.add_argument(
        "words", nargs=argparse.REMAINDER, metavar="{init,issue,show} | DIR ...", help=_WORDS
    )
    init = Parser(prog="qrpc certs init", description="Create a CA (ca.crt, ca.key) in CA_DIR.")
    init.add_argument("ca_dir", metavar="CA_DIR", help="a folder without a CA yet")
    _ca_options(init, CA_DAYS)
    init.set_defaults(run=_init)
    issue = Parser(prog="qrpc certs issue", description="Sign one node certificate into OUT_DIR.")
    issue.add_argument("ca_dir", metavar="CA_DIR", help="the folder of `qrpc certs init`")
    issue.add_argument("out_dir", metavar="OUT_DIR", help="gets NAME.crt, NAME.key and ca.crt")
    issue.add_argument("--name", required=True, help="file name stem of the certificate and key")
    issue.add_argument("--id", metavar="NODE_ID", help="the node ID (default: a new ULID)")
    issue.add_argument(
        "--days", type=_days, default=NODE_DAYS, help=f"validity (default {NODE_DAYS})"
    )
    issue.add_argument(
        "--domain", type=_domain, help="trust domain (default: the CA's constraint, else qrpc)"
    )
    issue.set_defaults(run=_issue)
    show = Parser(prog="qrpc certs show", description="Describe the certificates of a PEM file.")
    show.add_argument("file", metavar="FILE", help="a .crt file (a node's or a CA's)")
    show.add_argument(
        "--domain", type=_domain, help="trust domain to read the node ID in (default: guessed)"
    )
    show.set_defaults(run=_show)
    quick = Parser(prog="qrpc certs", description="A CA in DIR/ca/ and N node certificates in DIR.")
    quick.add_argument("directory", metavar="DIR", help="a folder without a CA yet")
    quick.add_argument("--nodes", type=_nodes, default=2, help="node certificates to issue")
    _ca_options(quick, CA_DAYS)
    quick.set_defaults(run=_quick)
    certs.set_defaults(run=_Dispatch({"init": init, "issue": issue, "show": show}, quick))
