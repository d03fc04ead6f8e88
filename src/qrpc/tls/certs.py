"""Issue a CA and node certificates in the form qrpc expects.

A node certificate carries the identity SAN ``<node-id>.node.<domain>``,
both ``clientAuth`` and ``serverAuth`` (every node dials and accepts), and a
P-256 key by default.  The CA may be name-constrained to
``node.<domain>`` so it cannot mint identities elsewhere.

This is for development, tests and small deployments; in production, issue
the same shape of certificate from your own PKI (``docs/security.md``).
Also available as ``qrpc certs init`` / ``qrpc certs issue``
(``docs/certificates.md``).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from qrpc.errors import ConfigError
from qrpc.ids import is_node_id, new_node_id, normalize_node_id
from qrpc.tls.identity import DEFAULT_DOMAIN, identity_name
from qrpc.tls.pem import Path, PrivateKey, load_ca_file, load_private_key

__all__ = [
    "Issued",
    "KeyType",
    "check_domain",
    "constrained_domain",
    "issue_ca",
    "issue_node_cert",
    "load_issuer",
    "new_ca_name",
    "new_key",
    "write_pem",
]

MAX_DOMAIN_LENGTH: Final = 240  # leaves room for "<63-char id>.node." within DNS's 253

KeyType = Literal["p256", "p384", "ed25519", "rsa2048"]
_EKU = {"client": ExtendedKeyUsageOID.CLIENT_AUTH, "server": ExtendedKeyUsageOID.SERVER_AUTH}


@dataclass(frozen=True, slots=True)
class Issued:
    """A certificate and its private key."""

    cert: x509.Certificate
    key: PrivateKey
    node_id: str | None = None
    """The node ID in the identity SAN (None for a CA)."""

    def cert_pem(self) -> bytes:
        """The certificate as PEM."""
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def key_pem(self, password: bytes | None = None) -> bytes:
        """The private key as PKCS#8 PEM, encrypted if `password` is given."""
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(password)
            if password
            else serialization.NoEncryption()
        )
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )


def new_key(key_type: KeyType = "p256") -> PrivateKey:
    """Generate a private key of a type qrpc accepts."""
    if key_type == "p256":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "p384":
        return ec.generate_private_key(ec.SECP384R1())
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if key_type == "rsa2048":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise ValueError(f"unknown key type {key_type!r}")


def new_ca_name(prefix: str = "qrpc CA") -> str:
    """Return a CA common name no other CA has: `prefix` and a fresh ULID.

    Peers match a certificate's issuer by name first, so two CAs of the same
    name make a foreign certificate look like a bad one of ours
    (bad_certificate) instead of an unknown CA's (unknown_ca).
    """
    return f"{prefix} {new_node_id()}"


def check_domain(domain: str) -> str:
    """Return `domain` in lower case if it can be a trust domain, else raise ValueError.

    A trust domain is a DNS name: dot-separated labels of letters, digits and
    '-', short enough that ``<node-id>.node.<domain>`` stays a valid name.
    """
    canonical = domain.lower()
    labels = canonical.split(".")
    if len(canonical) > MAX_DOMAIN_LENGTH or not all(is_node_id(label) for label in labels):
        raise ValueError(
            f"{domain!r} is not a trust domain: use a DNS name such as 'qrpc' or "
            f"'example.org' (labels of letters, digits, '-'; at most {MAX_DOMAIN_LENGTH} chars)"
        )
    return canonical


def constrained_domain(ca_cert: x509.Certificate) -> str | None:
    """The trust domain a CA from ``issue_ca(constrain_to_domain=...)`` is limited
    to, or None if its name constraints are absent or of another shape."""
    try:
        constraints = ca_cert.extensions.get_extension_for_class(x509.NameConstraints).value
    except x509.ExtensionNotFound:
        return None
    names = [
        name.value
        for name in constraints.permitted_subtrees or ()
        if isinstance(name, x509.DNSName) and name.value.startswith("node.")
    ]
    return names[0].removeprefix("node.") if len(names) == 1 else None


def load_issuer(cert_path: Path, key_path: Path, password: str | bytes | None = None) -> Issued:
    """Load a CA certificate and its private key, to issue node certificates with.

    Raises:
        ConfigError: a file is missing or garbled, the certificate is not a
            single CA certificate, or the key does not belong to it.
    """
    certs = load_ca_file(cert_path)
    if len(certs) != 1:
        raise ConfigError(cert_path, f"holds {len(certs)} certificates; an issuer needs one")
    key = load_private_key(key_path, password)
    if _public_der(key) != _public_der(certs[0]):
        raise ConfigError(key_path, f"is not the private key of {cert_path}")
    return Issued(certs[0], key)


def issue_ca(
    common_name: str | None = None,
    *,
    days: float = 3650,
    key_type: KeyType = "p256",
    constrain_to_domain: str | None = None,
) -> Issued:
    """Create a self-signed CA.

    Args:
        common_name: the CA's subject CN (default: a unique one, `new_ca_name`).
        days: validity from now.
        key_type: the CA key type (not Ed25519: WebPKI forbids it for CAs).
        constrain_to_domain: if set, permit only DNS names under
            ``node.<domain>`` in certificates this CA signs.
    """
    if key_type == "ed25519":
        raise ValueError("WebPKI verifiers refuse Ed25519 CA keys; use p256, p384 or rsa2048")
    key = new_key(key_type)
    cn = new_ca_name() if common_name is None else common_name
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if constrain_to_domain is not None:
        builder = builder.add_extension(
            x509.NameConstraints(
                permitted_subtrees=[x509.DNSName(f"node.{constrain_to_domain}")],
                excluded_subtrees=None,
            ),
            critical=True,
        )
    return Issued(builder.sign(key, _hash_for(key)), key)


def issue_node_cert(
    ca: Issued,
    node_id: str | None = None,
    *,
    domain: str = DEFAULT_DOMAIN,
    days: float = 365,
    key_type: KeyType = "p256",
    key: PrivateKey | None = None,
    usages: Iterable[Literal["client", "server"]] = ("client", "server"),
    extra_sans: Sequence[x509.GeneralName] = (),
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
) -> Issued:
    """Issue a node certificate signed by `ca`.

    Args:
        ca: the issuing CA.
        node_id: the node's ID; a new ULID if omitted.
        domain: trust domain of the identity SAN.
        days: validity from now (ignored for bounds given explicitly).
        key_type: type of the generated key (ignored if `key` is given).
        key: use this key instead of generating one.
        usages: extended key usages; keep both for a normal node.
        extra_sans: additional SANs, such as a DNS name or IP address.
        not_before: start of validity (default: 5 minutes ago).
        not_after: end of validity (default: now + `days`).
    """
    node_id = normalize_node_id(node_id) if node_id is not None else new_node_id()
    key = key if key is not None else new_key(key_type)
    now = dt.datetime.now(dt.UTC)
    sans: list[x509.GeneralName] = [x509.DNSName(identity_name(node_id, domain)), *extra_sans]
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, node_id)]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - dt.timedelta(minutes=5))
        .not_valid_after(not_after or now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
    )
    ekus = [_EKU[usage] for usage in usages]
    if ekus:
        builder = builder.add_extension(x509.ExtendedKeyUsage(ekus), critical=False)
    return Issued(builder.sign(ca.key, _hash_for(ca.key)), key, node_id)


def write_pem(
    issued: Issued,
    cert_path: str | os.PathLike[str],
    key_path: str | os.PathLike[str] | None = None,
    *,
    password: bytes | None = None,
) -> None:
    """Write the certificate (and the key, mode 0600, if `key_path` is given) as PEM."""
    with open(cert_path, "wb") as file:
        file.write(issued.cert_pem())
    if key_path is not None:
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # the mode above applies only to a new file
        with os.fdopen(fd, "wb") as file:
            file.write(issued.key_pem(password))


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _public_der(owner: PrivateKey | x509.Certificate) -> bytes:
    return owner.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _hash_for(key: PrivateKey) -> hashes.SHA256 | None:
    return None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
