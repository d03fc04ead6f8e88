"""`qrpc.tls.identity.verify_peer` as a table, without sockets.

Each case of the mutual-TLS refusal matrix that concerns the certificate
itself (missing, foreign CA, forged issuer, self-signed, expired, wrong or
missing EKU, CA as leaf, bad key usage, weak key, unknown critical
extension, chain depth, SAN shape) becomes one call of `verify_peer(leaf, intermediates, trust=[ca],
domain="qrpc", role=..., now=...)` and asserts the exact TLS alert.  The
accepting rows double as positive controls: the same builder with the one
bad property fixed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

import qrpc
from qrpc.tls.identity import (
    Alert,
    PeerIdentity,
    Role,
    check_key_type,
    identity_name,
    verify_peer,
)
from tests.keys import private_key

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
DAY = dt.timedelta(days=1)
NODE_A = "01jd3k9q2m4n5p6r7s8t9v0wxy"
NODE_B = "01jd3k9q2m4n5p6r7s8t9v0wxz"
CLIENT_AUTH = ExtendedKeyUsageOID.CLIENT_AUTH
SERVER_AUTH = ExtendedKeyUsageOID.SERVER_AUTH
PRIVATE_OID = x509.ObjectIdentifier("1.3.6.1.4.1.55555.1.1")


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


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


@dataclass(frozen=True)
class CA:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey


def _make_ca(common_name: str, parent: CA | None = None, *, days: int = 3650) -> CA:
    """A P-256 CA, self-signed or signed by `parent`, valid from a year ago."""
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(parent.cert.subject if parent else _name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - 365 * DAY)
        .not_valid_after(NOW + days * DAY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if parent is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(parent.key.public_key()),
            critical=False,
        )
    return CA(builder.sign(parent.key if parent else key, hashes.SHA256()), key)


@dataclass(frozen=True)
class World:
    ca: CA  # the trusted root
    other: CA  # another CA with another name
    forged: CA  # another key under the trusted CA's exact name
    intermediate: CA  # signed by ca
    second_intermediate: CA  # signed by intermediate
    expired_intermediate: CA  # signed by ca, validity ended yesterday


@pytest.fixture(scope="module")
def world() -> World:
    ca = _make_ca("qrpc identity test CA")
    intermediate = _make_ca("qrpc intermediate CA", ca)
    expired = _make_ca("qrpc expired intermediate CA", ca, days=-1)
    return World(
        ca=ca,
        other=_make_ca("some other CA"),
        forged=_make_ca("qrpc identity test CA"),
        intermediate=intermediate,
        second_intermediate=_make_ca("qrpc second intermediate CA", intermediate),
        expired_intermediate=expired,
    )


_DEFAULT_SANS = (x509.DNSName(identity_name(NODE_A, "qrpc")),)


@dataclass(frozen=True)
class Leaf:
    """How to build one leaf; each field is one property a row may break."""

    key: str = "p256"
    sans: Sequence[x509.GeneralName] | None = _DEFAULT_SANS
    ekus: Sequence[x509.ObjectIdentifier] | None = (CLIENT_AUTH, SERVER_AUTH)
    is_ca: bool = False
    key_cert_sign: bool = False
    aki: bool = True
    not_before: dt.datetime = NOW - DAY
    not_after: dt.datetime = NOW + 30 * DAY
    extra: Sequence[x509.ExtensionType] = field(default_factory=tuple)

    def build(self, issuer: CA) -> x509.Certificate:
        key = private_key(self.key)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name("test leaf"))
            .issuer_name(issuer.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.not_before)
            .not_valid_after(self.not_after)
            .add_extension(x509.BasicConstraints(ca=self.is_ca, path_length=None), critical=True)
            .add_extension(_key_usage(cert_sign=self.key_cert_sign), critical=True)
        )
        if self.sans is not None:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(list(self.sans)), critical=False
            )
        if self.ekus is not None:
            builder = builder.add_extension(x509.ExtendedKeyUsage(list(self.ekus)), critical=False)
        if self.aki:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
                critical=False,
            )
        for extension in self.extra:
            builder = builder.add_extension(extension, critical=True)
        return builder.sign(issuer.key, hashes.SHA256())


Chain = tuple[x509.Certificate | None, list[x509.Certificate]]


def _leaf(leaf: Leaf | None = None, issuer: str = "ca", *chain: str) -> Callable[[World], Chain]:
    """A row's chain: `leaf` signed by the CA named `issuer`, sent with the CAs in `chain`."""

    def make(world: World) -> Chain:
        cas: dict[str, CA] = vars(world)
        return (leaf or Leaf()).build(cas[issuer]), [cas[name].cert for name in chain]

    return make


def _self_signed(world: World) -> Chain:
    """A node-shaped leaf that is its own issuer, signed by its own key."""
    key = private_key("p256")  # the key Leaf() certifies
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    name = _name("test leaf")
    # Leaf.build takes the issuer name from a certificate: give it one with the
    # leaf's own name and key, so that subject == issuer and the key signs itself.
    stand_in = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW - DAY)
        .not_valid_after(NOW + DAY)
        .sign(key, hashes.SHA256())
    )
    leaf = Leaf().build(CA(stand_in, key))
    assert leaf.issuer == leaf.subject
    leaf.verify_directly_issued_by(leaf)  # really self-signed
    return leaf, []


BOTH: tuple[Role, ...] = ("client", "server")


@dataclass(frozen=True)
class Refused:
    make: Callable[[World], Chain]
    alert: Alert
    reason: str  # a phrase the reason must contain
    roles: tuple[Role, ...] = BOTH
    now: dt.datetime = NOW


REFUSED: dict[str, Refused] = {
    # matrix row 1
    "no-certificate": Refused(lambda w: (None, []), Alert.CERTIFICATE_REQUIRED, "no certificate"),
    # rows 3-5: chain
    "signed-by-another-ca": Refused(
        _leaf(Leaf(), "other"), Alert.UNKNOWN_CA, "issuer CN=some other CA is not a trusted CA"
    ),
    "forged-issuer-name-other-key": Refused(
        _leaf(Leaf(), "forged"), Alert.BAD_CERTIFICATE, "but was not signed by the configured CA"
    ),
    "self-signed-leaf": Refused(_self_signed, Alert.UNKNOWN_CA, "is not a trusted CA"),
    # rows 6-7: validity
    "expired": Refused(
        _leaf(Leaf(not_before=NOW - 30 * DAY, not_after=NOW - DAY)),
        Alert.CERTIFICATE_EXPIRED,
        "is not valid at",
    ),
    "not-yet-valid": Refused(
        _leaf(Leaf(not_before=NOW + DAY, not_after=NOW + 30 * DAY)),
        Alert.CERTIFICATE_EXPIRED,
        "is not valid at",
    ),
    "time-trap-valid-today-but-now-is-after-expiry": Refused(
        _leaf(Leaf(not_before=NOW - DAY, not_after=NOW + DAY)),
        Alert.CERTIFICATE_EXPIRED,
        "is not valid at",
        now=NOW + 2 * DAY,
    ),
    "time-trap-valid-today-but-now-is-before-start": Refused(
        _leaf(Leaf(not_before=NOW - DAY, not_after=NOW + DAY)),
        Alert.CERTIFICATE_EXPIRED,
        "is not valid at",
        now=NOW - 2 * DAY,
    ),
    # rows 8-9, 20: extended key usage
    "eku-server-auth-only": Refused(
        _leaf(Leaf(ekus=(SERVER_AUTH,))),
        Alert.BAD_CERTIFICATE,
        "extended key usage lacks clientAuth",
        roles=("client",),
    ),
    "eku-client-auth-only": Refused(
        _leaf(Leaf(ekus=(CLIENT_AUTH,))),
        Alert.BAD_CERTIFICATE,
        "extended key usage lacks serverAuth",
        roles=("server",),
    ),
    "eku-code-signing-only": Refused(
        _leaf(Leaf(ekus=(ExtendedKeyUsageOID.CODE_SIGNING,))),
        Alert.BAD_CERTIFICATE,
        "certificate refused",
    ),
    "eku-any-extended-key-usage": Refused(
        _leaf(Leaf(ekus=(ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,))),
        Alert.BAD_CERTIFICATE,
        "certificate refused",
    ),
    "no-eku": Refused(_leaf(Leaf(ekus=None)), Alert.BAD_CERTIFICATE, "certificate refused"),
    # rows 10-11, 13: WebPKI shape
    "leaf-with-ca-true": Refused(
        _leaf(Leaf(is_ca=True)), Alert.BAD_CERTIFICATE, "certificate refused"
    ),
    "the-ca-certificate-itself": Refused(
        lambda w: (w.ca.cert, []), Alert.BAD_CERTIFICATE, "certificate refused"
    ),
    "leaf-key-usage-key-cert-sign": Refused(
        _leaf(Leaf(key_cert_sign=True)), Alert.BAD_CERTIFICATE, "certificate refused"
    ),
    "unknown-critical-extension": Refused(
        _leaf(Leaf(extra=(x509.UnrecognizedExtension(PRIVATE_OID, b"\x05\x00"),))),
        Alert.BAD_CERTIFICATE,
        "certificate refused",
    ),
    "no-authority-key-identifier": Refused(
        _leaf(Leaf(aki=False)), Alert.BAD_CERTIFICATE, "certificate refused"
    ),
    # rows 2, 12: leaf key type
    "rsa1024-leaf": Refused(
        _leaf(Leaf(key="rsa1024")), Alert.BAD_CERTIFICATE, "certificate key RSA-1024 is not"
    ),
    "p521-leaf": Refused(
        _leaf(Leaf(key="p521")), Alert.BAD_CERTIFICATE, "certificate key EC secp521r1 is not"
    ),
    "secp256k1-leaf": Refused(
        _leaf(Leaf(key="secp256k1")), Alert.BAD_CERTIFICATE, "certificate key EC secp256k1 is"
    ),
    "ed448-leaf": Refused(
        _leaf(Leaf(key="ed448")), Alert.BAD_CERTIFICATE, "certificate key Ed448PublicKey is"
    ),
    "dsa-leaf": Refused(
        _leaf(Leaf(key="dsa")), Alert.BAD_CERTIFICATE, "certificate key DSAPublicKey is"
    ),
    # rows 16-18: identity SAN
    "no-san-at-all": Refused(_leaf(Leaf(sans=None)), Alert.BAD_CERTIFICATE, "certificate refused"),
    "wildcard-identity-san": Refused(
        _leaf(Leaf(sans=[x509.DNSName("*.node.qrpc")])),
        Alert.BAD_CERTIFICATE,
        "identity SAN '*.node.qrpc' does not hold a valid node ID",
    ),
    "two-identity-sans": Refused(
        _leaf(
            Leaf(
                sans=[
                    x509.DNSName(identity_name(NODE_A, "qrpc")),
                    x509.DNSName(identity_name(NODE_B, "qrpc")),
                ]
            )
        ),
        Alert.BAD_CERTIFICATE,
        "certificate has 2 identity SANs; exactly one is allowed",
    ),
    "same-identity-san-twice": Refused(
        _leaf(Leaf(sans=[x509.DNSName(identity_name(NODE_A, "qrpc"))] * 2)),
        Alert.BAD_CERTIFICATE,
        "certificate has 2 identity SANs",
    ),
    "identity-san-with-two-labels": Refused(
        _leaf(Leaf(sans=[x509.DNSName(f"sub.{NODE_A}.node.qrpc")])),
        Alert.BAD_CERTIFICATE,
        f"identity SAN 'sub.{NODE_A}.node.qrpc' does not hold a valid node ID",
    ),
    "identity-san-label-with-underscore": Refused(
        _leaf(Leaf(sans=[x509.DNSName("bad_id.node.qrpc")])),
        Alert.BAD_CERTIFICATE,
        "identity SAN 'bad_id.node.qrpc' does not hold a valid node ID",
    ),
    "identity-san-label-starting-with-hyphen": Refused(
        _leaf(Leaf(sans=[x509.DNSName("-abc.node.qrpc")])),
        Alert.BAD_CERTIFICATE,
        "identity SAN '-abc.node.qrpc' does not hold a valid node ID",
    ),
    # row 14: chains
    "intermediate-omitted": Refused(
        _leaf(Leaf(), "intermediate"),
        Alert.UNKNOWN_CA,
        "issuer CN=qrpc intermediate CA is not a trusted CA",
    ),
    "intermediate-expired": Refused(
        _leaf(Leaf(), "expired_intermediate", "expired_intermediate"),
        Alert.CERTIFICATE_EXPIRED,
        "CN=qrpc expired intermediate CA is not valid at",
    ),
    # docs/security.md: "chains of at most one intermediate below the root"
    "two-intermediates-chain-too-deep": Refused(
        _leaf(Leaf(), "second_intermediate", "second_intermediate", "intermediate"),
        Alert.BAD_CERTIFICATE,
        "certificate refused",
    ),
}


def _refused_cases() -> list[object]:
    return [
        pytest.param(name, role, id=f"{name}-as-{role}")
        for name, row in REFUSED.items()
        for role in row.roles
    ]


@pytest.mark.parametrize(("case", "role"), _refused_cases())
def test_verify_peer_refuses(case: str, role: Role, world: World) -> None:
    row = REFUSED[case]
    leaf, intermediates = row.make(world)

    with pytest.raises(qrpc.PeerAuthError) as info:
        verify_peer(
            leaf, intermediates, trust=[world.ca.cert], domain="qrpc", role=role, now=row.now
        )

    assert type(info.value) is qrpc.PeerAuthError
    assert info.value.alert == row.alert
    assert row.reason in info.value.reason
    assert str(info.value) == info.value.reason


@dataclass(frozen=True)
class Accepted:
    make: Callable[[World], Chain]
    node_id: str | None
    roles: tuple[Role, ...] = BOTH
    now: dt.datetime = NOW
    domain: str = "qrpc"


ACCEPTED: dict[str, Accepted] = {
    "good": Accepted(_leaf(), NODE_A),
    "good-p384": Accepted(_leaf(Leaf(key="p384")), NODE_A),
    "good-ed25519": Accepted(_leaf(Leaf(key="ed25519")), NODE_A),
    "good-rsa2048": Accepted(_leaf(Leaf(key="rsa2048")), NODE_A),
    "eku-client-auth-only": Accepted(_leaf(Leaf(ekus=(CLIENT_AUTH,))), NODE_A, roles=("client",)),
    "eku-server-auth-only": Accepted(_leaf(Leaf(ekus=(SERVER_AUTH,))), NODE_A, roles=("server",)),
    "only-dns-localhost-san": Accepted(_leaf(Leaf(sans=[x509.DNSName("localhost")])), None),
    "identity-san-of-another-domain": Accepted(
        _leaf(Leaf(sans=[x509.DNSName(identity_name(NODE_A, "example.org"))])), None
    ),
    "identity-san-plus-host-and-ip-sans": Accepted(
        _leaf(
            Leaf(
                sans=[
                    x509.DNSName("localhost"),
                    x509.DNSName(identity_name(NODE_A, "qrpc")),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            )
        ),
        NODE_A,
    ),
    "upper-case-identity-san": Accepted(
        _leaf(Leaf(sans=[x509.DNSName(f"{NODE_A.upper()}.NODE.QRPC")])), NODE_A
    ),
    "custom-domain": Accepted(
        _leaf(Leaf(sans=[x509.DNSName(identity_name(NODE_A, "example.org"))])),
        NODE_A,
        domain="example.org",
    ),
    "one-intermediate-supplied": Accepted(_leaf(Leaf(), "intermediate", "intermediate"), NODE_A),
    "time-trap-future-cert-at-future-now": Accepted(
        _leaf(Leaf(not_before=NOW + 10 * DAY, not_after=NOW + 20 * DAY)),
        NODE_A,
        now=NOW + 15 * DAY,
    ),
    "time-trap-past-cert-at-past-now": Accepted(
        _leaf(Leaf(not_before=NOW - 20 * DAY, not_after=NOW - 10 * DAY)),
        NODE_A,
        now=NOW - 15 * DAY,
    ),
    "valid-at-the-last-second": Accepted(
        _leaf(Leaf(not_before=NOW - DAY, not_after=NOW + DAY)), NODE_A, now=NOW + DAY
    ),
}


def _accepted_cases() -> list[object]:
    return [
        pytest.param(name, role, id=f"{name}-as-{role}")
        for name, row in ACCEPTED.items()
        for role in row.roles
    ]


@pytest.mark.parametrize(("case", "role"), _accepted_cases())
def test_verify_peer_accepts(case: str, role: Role, world: World) -> None:
    row = ACCEPTED[case]
    leaf, intermediates = row.make(world)
    assert leaf is not None

    identity = verify_peer(
        leaf, intermediates, trust=[world.ca.cert], domain=row.domain, role=role, now=row.now
    )

    assert identity.node_id == row.node_id
    assert identity.certificate is leaf


def test_peer_identity_describes_the_certificate(world: World) -> None:
    leaf = Leaf(sans=[x509.DNSName("localhost"), x509.DNSName(f"{NODE_A}.node.qrpc")]).build(
        world.ca
    )

    identity = verify_peer(leaf, [], trust=[world.ca.cert], domain="qrpc", role="client", now=NOW)

    assert identity == PeerIdentity(
        node_id=NODE_A,
        subject="CN=test leaf",
        sans=("localhost", f"{NODE_A}.node.qrpc"),
        fingerprint=hashlib.sha256(leaf.public_bytes(serialization.Encoding.DER)).hexdigest(),
        serial=leaf.serial_number,
        not_valid_after=NOW + 30 * DAY,
        certificate=leaf,
        chain_valid_until=min(NOW + 30 * DAY, world.ca.cert.not_valid_after_utc),
    )
    assert len(identity.fingerprint) == 64
    assert identity.fingerprint == identity.fingerprint.lower()
    assert identity.not_valid_after.tzinfo == dt.UTC


def test_peer_identity_from_certificate_without_verification(world: World) -> None:
    leaf = Leaf(sans=[x509.DNSName(f"{NODE_B.upper()}.node.qrpc")]).build(world.other)

    identity = PeerIdentity.from_certificate(leaf, "qrpc")

    assert identity.node_id == NODE_B
    assert identity.sans == (f"{NODE_B.upper()}.node.qrpc",)


def test_peer_identity_from_certificate_refuses_two_identity_sans(world: World) -> None:
    leaf = Leaf(
        sans=[x509.DNSName(f"{NODE_A}.node.qrpc"), x509.DNSName(f"{NODE_B}.node.qrpc")]
    ).build(world.ca)

    with pytest.raises(qrpc.PeerAuthError) as info:
        PeerIdentity.from_certificate(leaf, "qrpc")

    assert info.value.alert == Alert.BAD_CERTIFICATE


@pytest.mark.parametrize(
    ("sans", "actual"),
    [
        pytest.param([x509.DNSName(identity_name(NODE_A, "qrpc"))], NODE_A, id="other-node-id"),
        pytest.param([x509.DNSName("localhost")], None, id="no-identity-san"),
    ],
)
@pytest.mark.parametrize("role", BOTH)
def test_expected_id_mismatch(
    world: World, sans: list[x509.GeneralName], actual: str | None, role: Role
) -> None:
    leaf = Leaf(sans=sans).build(world.ca)

    with pytest.raises(qrpc.PeerIdMismatch) as info:
        verify_peer(
            leaf,
            [],
            trust=[world.ca.cert],
            domain="qrpc",
            role=role,
            now=NOW,
            expected_id=NODE_B,
        )

    assert (info.value.expected, info.value.actual) == (NODE_B, actual)
    assert not isinstance(info.value, qrpc.PeerAuthError)
    assert isinstance(info.value, qrpc.HandshakeError)
    hint = "" if actual else " (it has no identity SAN '<node-id>.node.qrpc')"
    assert str(info.value) == (
        f"expected node ID {NODE_B!r}, peer is {actual!r}: in the peer's certificate{hint}"
    )


def test_expected_id_match(world: World) -> None:
    leaf = Leaf().build(world.ca)

    identity = verify_peer(
        leaf, [], trust=[world.ca.cert], domain="qrpc", role="server", now=NOW, expected_id=NODE_A
    )

    assert identity.node_id == NODE_A


def test_expected_id_is_checked_after_the_chain(world: World) -> None:
    # A foreign certificate is refused as such, not reported as a mismatch.
    leaf = Leaf().build(world.other)

    with pytest.raises(qrpc.PeerAuthError) as info:
        verify_peer(
            leaf,
            [],
            trust=[world.ca.cert],
            domain="qrpc",
            role="server",
            now=NOW,
            expected_id=NODE_B,
        )

    assert info.value.alert == Alert.UNKNOWN_CA


def test_alert_numbers() -> None:
    assert {alert.name: int(alert) for alert in Alert} == {
        "BAD_CERTIFICATE": 42,
        "UNSUPPORTED_CERTIFICATE": 43,
        "CERTIFICATE_EXPIRED": 45,
        "UNKNOWN_CA": 48,
        "CERTIFICATE_REQUIRED": 116,
    }


def test_identity_name() -> None:
    assert identity_name(NODE_A, "qrpc") == f"{NODE_A}.node.qrpc"
    assert identity_name("n1", "example.org") == "n1.node.example.org"


@pytest.mark.parametrize("kind", ["p256", "p384", "ed25519", "rsa2048"])
def test_check_key_type_accepts(world: World, kind: str) -> None:
    check_key_type(Leaf(key=kind).build(world.ca))  # does not raise


@pytest.mark.parametrize(
    ("kind", "described_as"),
    [
        pytest.param("p521", "EC secp521r1", id="p521"),
        pytest.param("secp256k1", "EC secp256k1", id="secp256k1"),
        pytest.param("rsa1024", "RSA-1024", id="rsa1024"),
        pytest.param("ed448", "Ed448PublicKey", id="ed448"),
        pytest.param("dsa", "DSAPublicKey", id="dsa2048"),
    ],
)
def test_check_key_type_refuses(world: World, kind: str, described_as: str) -> None:
    cert = Leaf(key=kind).build(world.ca)

    with pytest.raises(qrpc.PeerAuthError) as info:
        check_key_type(cert)

    assert info.value.alert == Alert.BAD_CERTIFICATE
    assert info.value.reason == (
        f"certificate key {described_as} is not allowed (use P-256, P-384, Ed25519 or RSA >= 2048)"
    )
