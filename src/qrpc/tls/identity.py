"""Who a peer is: certificate verification and `PeerIdentity`, without IO.

A peer proves its node ID with a certificate chained to the configured CA
that carries exactly one *identity SAN*: the DNS name
``<node-id>.node.<domain>`` (``docs/security.md``).  `verify_peer` is the
one verifier both roles use; the TLS hook in `qrpc.transport.mtls` calls it during
the handshake.  On top of `cryptography`'s WebPKI checks (chain, validity,
basic constraints, key usage, critical extensions, CA key strength) it
requires:

- an Extended Key Usage extension listing ``clientAuth`` (the peer dialed
  us) or ``serverAuth`` (we dialed the peer) -- a certificate without EKU
  is refused, although WebPKI would accept it;
- a leaf key qrpc can use: P-256, P-384, Ed25519 or RSA >= 2048 bits;
- at most one identity SAN, whose first label is a valid node ID (so no
  wildcard), equal to the expected ID when the dialer knows it.

Failures raise `PeerAuthError` carrying the TLS alert to send.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Final, Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    Policy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from qrpc.errors import PeerAuthError, PeerIdMismatch
from qrpc.ids import is_node_id

__all__ = [
    "DEFAULT_DOMAIN",
    "MAX_CHAIN_DEPTH",
    "Alert",
    "PeerIdentity",
    "Role",
    "check_key_type",
    "domain_hint",
    "identity_name",
    "verify_peer",
]

DEFAULT_DOMAIN: Final = "qrpc"  # trust domain of identity SANs unless configured
MAX_CHAIN_DEPTH: Final = 1  # intermediates allowed between leaf and root
MIN_RSA_BITS: Final = 2048
Role = Literal["client", "server"]
"""The role of the certificate being checked: "client" = the peer dialed us."""


class Alert(IntEnum):
    """TLS alerts qrpc sends when it refuses a certificate (RFC 8446 §6.2)."""

    BAD_CERTIFICATE = 42
    UNSUPPORTED_CERTIFICATE = 43
    CERTIFICATE_EXPIRED = 45
    UNKNOWN_CA = 48
    CERTIFICATE_REQUIRED = 116


def identity_name(node_id: str, domain: str) -> str:
    """Return the identity SAN (a DNS name) for `node_id` in `domain`."""
    return f"{node_id}.node.{domain}"


@dataclass(frozen=True, slots=True)
class PeerIdentity:
    """What a verified certificate says about a peer."""

    node_id: str | None
    """Node ID from the identity SAN, or None if the certificate has none."""
    subject: str
    """The certificate subject (RFC 4514)."""
    sans: tuple[str, ...]
    """Every subject alternative name, as text."""
    fingerprint: str
    """SHA-256 of the DER certificate, lower-case hex."""
    serial: int
    """The certificate serial number."""
    not_valid_after: dt.datetime
    """End of validity (UTC)."""
    certificate: x509.Certificate
    """The verified leaf certificate."""
    chain_valid_until: dt.datetime | None = None
    """When the verified chain stops being valid: the earliest end of validity of
    the leaf, its intermediates and the root it chains to (None if not verified).
    A link is closed then (CERTIFICATE_EXPIRED)."""

    @classmethod
    def from_certificate(cls, cert: x509.Certificate, domain: str) -> PeerIdentity:
        """Describe `cert`.

        Raises:
            PeerAuthError: the certificate has more than one identity SAN, or
                one whose node ID is malformed (alert bad_certificate).
        """
        return cls(
            node_id=_identity_node_id(cert, domain),
            subject=cert.subject.rfc4514_string(),
            sans=tuple(_san_texts(cert)),
            fingerprint=hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest(),
            serial=cert.serial_number,
            not_valid_after=cert.not_valid_after_utc,
            certificate=cert,
        )


def verify_peer(
    leaf: x509.Certificate | None,
    intermediates: Sequence[x509.Certificate],
    *,
    trust: Sequence[x509.Certificate],
    domain: str,
    role: Role,
    now: dt.datetime,
    expected_id: str | None = None,
    ca_file: str | None = None,
) -> PeerIdentity:
    """Verify a peer's certificate chain for `role` at time `now`.

    Args:
        leaf: the peer's certificate; None if it sent none.
        intermediates: the rest of the chain the peer sent.
        trust: the CA certificates to anchor the chain in.
        domain: the trust domain of identity SANs.
        role: "client" if the peer dialed us, "server" if we dialed it.
        now: the validation time (a verifier is built per call, so expiry is
            judged at the handshake, not at the time a verifier was first built).
        expected_id: the node ID the dialer expects, if it knows one.
        ca_file: where `trust` came from, named in refusals.

    Raises:
        PeerAuthError: the chain or identity is refused; `alert` says which
            TLS alert to send.
        PeerIdMismatch: the certificate is valid but names another node.
    """
    if leaf is None:
        raise PeerAuthError("peer sent no certificate", alert=Alert.CERTIFICATE_REQUIRED)
    for cert in (leaf, *intermediates):
        start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
        if now < start or now > end:
            raise PeerAuthError(
                f"certificate {cert.subject.rfc4514_string()} is not valid at "
                f"{now:%Y-%m-%dT%H:%M:%SZ} (valid {start:%Y-%m-%d} to {end:%Y-%m-%d})",
                alert=Alert.CERTIFICATE_EXPIRED,
            )
    trusted = f"the CA in {ca_file}" if ca_file else "the configured CA"
    candidates = [c for c in (*trust, *intermediates) if c.subject == leaf.issuer]
    if not candidates:
        raise PeerAuthError(
            f"certificate issuer {leaf.issuer.rfc4514_string()} is not a trusted CA "
            f"(this node trusts {trusted}; use certificates issued by the same CA)",
            alert=Alert.UNKNOWN_CA,
        )
    check_key_type(leaf)
    required = (
        ExtendedKeyUsageOID.CLIENT_AUTH if role == "client" else ExtendedKeyUsageOID.SERVER_AUTH
    )
    verifier = (
        PolicyBuilder()
        .store(Store(list(trust)))
        .time(now)
        .max_chain_depth(MAX_CHAIN_DEPTH)
        .extension_policies(
            ca_policy=ExtensionPolicy.webpki_defaults_ca(),
            ee_policy=ExtensionPolicy.webpki_defaults_ee().require_present(
                x509.ExtendedKeyUsage, Criticality.AGNOSTIC, _require_eku(required)
            ),
        )
        .build_client_verifier()
    )
    try:
        verified = verifier.verify(leaf, list(intermediates))
    except VerificationError as exc:
        if not any(_signed_by(leaf, issuer) for issuer in candidates):  # say why, precisely
            raise PeerAuthError(
                f"certificate {leaf.subject.rfc4514_string()} names issuer "
                f"{leaf.issuer.rfc4514_string()} but was not signed by {trusted}: another CA "
                "with the same name issued it; use certificates issued by the same CA",
                alert=Alert.BAD_CERTIFICATE,
            ) from None
        raise PeerAuthError(f"certificate refused: {exc}", alert=Alert.BAD_CERTIFICATE) from None
    identity = dataclasses.replace(
        PeerIdentity.from_certificate(leaf, domain),
        chain_valid_until=min(cert.not_valid_after_utc for cert in verified.chain),
    )
    if expected_id is not None and identity.node_id != expected_id:
        detail = "in the peer's certificate" + domain_hint(identity, domain)
        raise PeerIdMismatch(expected_id, identity.node_id, detail)
    return identity


def domain_hint(identity: PeerIdentity, domain: str) -> str:
    """For a certificate without an identity SAN in `domain`: a hint naming the
    ``TLS(domain=...)`` setting if it has one in another trust domain, else ""."""
    if identity.node_id is not None:
        return ""
    suffix = f".node.{domain}".lower()
    foreign = [san for san in identity.sans if ".node." in san and not san.endswith(suffix)]
    if not foreign:
        return f" (it has no identity SAN '<node-id>{suffix}')"
    return (
        f" (it has no identity SAN '<node-id>{suffix}' but has {foreign[0]!r}: the nodes use "
        "different trust domains; set the same qrpc.TLS(domain=...) on both)"
    )


def _signed_by(leaf: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        leaf.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def check_key_type(cert: x509.Certificate) -> None:
    """Refuse leaf keys aioquic cannot sign with or that are too weak.

    Raises:
        PeerAuthError: the key is not P-256, P-384, Ed25519 or RSA >= 2048.
    """
    try:
        key = cert.public_key()
    except (ValueError, TypeError) as exc:  # unsupported algorithm
        raise PeerAuthError(
            f"unusable certificate key: {exc}", alert=Alert.BAD_CERTIFICATE
        ) from None
    if isinstance(key, ec.EllipticCurvePublicKey):
        ok = key.curve.name in ("secp256r1", "secp384r1")
        kind = f"EC {key.curve.name}"
    elif isinstance(key, rsa.RSAPublicKey):
        ok = key.key_size >= MIN_RSA_BITS
        kind = f"RSA-{key.key_size}"
    else:
        ok = isinstance(key, ed25519.Ed25519PublicKey)
        kind = type(key).__name__
    if not ok:
        raise PeerAuthError(
            f"certificate key {kind} is not allowed (use P-256, P-384, Ed25519 or RSA >= 2048)",
            alert=Alert.BAD_CERTIFICATE,
        )


def _require_eku(
    oid: x509.ObjectIdentifier,
) -> Callable[[Policy, x509.Certificate, x509.ExtendedKeyUsage], None]:
    def validate(policy: Policy, cert: x509.Certificate, eku: x509.ExtendedKeyUsage) -> None:
        if oid not in eku:
            raise ValueError(f"extended key usage lacks {oid._name}")

    return validate


def _identity_node_id(cert: x509.Certificate, domain: str) -> str | None:
    suffix = f".node.{domain}".lower()
    found: list[str] = []
    for name in _dns_sans(cert):
        lowered = name.lower()
        if lowered.endswith(suffix):
            found.append(lowered[: -len(suffix)])
    if not found:
        return None
    if len(found) > 1:
        raise PeerAuthError(
            f"certificate has {len(found)} identity SANs; exactly one is allowed",
            alert=Alert.BAD_CERTIFICATE,
        )
    node_id = found[0]
    if not is_node_id(node_id):
        raise PeerAuthError(
            f"identity SAN {node_id + suffix!r} does not hold a valid node ID",
            alert=Alert.BAD_CERTIFICATE,
        )
    return node_id


def _dns_sans(cert: x509.Certificate) -> list[str]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return ext.value.get_values_for_type(x509.DNSName)


def _san_texts(cert: x509.Certificate) -> list[str]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return [str(getattr(name, "value", name)) for name in ext.value]
