"""`qrpc.tls.certs`: the CA and node certificates qrpc issues, and how they are written."""

from __future__ import annotations

import datetime as dt
import os
import re
import stat
from pathlib import Path
from typing import Literal

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from ulid import ULID

import qrpc
from qrpc.tls.certs import Issued, KeyType, issue_ca, issue_node_cert, new_key, write_pem
from qrpc.tls.credentials import TLS
from qrpc.tls.identity import Alert, Role, verify_peer

NODE_ID = "01jd3k9q2m4n5p6r7s8t9v0wxy"
ULID_LOWER = re.compile(r"[0-9a-hjkmnp-tv-z]{26}")  # Crockford base32, lower case
PASSWORD = b"s3cret passphrase"
Usage = Literal["client", "server"]
NOW = dt.datetime.now(dt.UTC)
BOTH: tuple[Role, ...] = ("client", "server")


def _write(issued: Issued, directory: Path, stem: str) -> tuple[Path, Path]:
    cert_path, key_path = directory / f"{stem}.crt", directory / f"{stem}.key"
    write_pem(issued, cert_path, key_path)
    return cert_path, key_path


def _tls(ca: Issued, node: Issued, directory: Path, *, domain: str = "qrpc") -> TLS:
    ca_path = directory / "ca.crt"
    write_pem(ca, ca_path)
    cert_path, key_path = _write(node, directory, "node")
    return TLS(ca_path, cert_path, key_path, domain=domain)


def _private_pem(key: object) -> bytes:
    assert isinstance(
        key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
    )
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@pytest.fixture(scope="module")
def ca() -> Issued:
    return issue_ca("certs test CA")


# --------------------------------------------------------------------------- issue_ca


def test_issue_ca_makes_a_self_signed_ca(ca: Issued) -> None:
    cert = ca.cert

    assert cert.subject == cert.issuer
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "certs test CA"
    cert.verify_directly_issued_by(cert)
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical is True
    assert (constraints.value.ca, constraints.value.path_length) == (True, None)
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical is True
    assert (usage.value.key_cert_sign, usage.value.crl_sign, usage.value.digital_signature) == (
        True,
        True,
        False,
    )
    assert cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value == (
        x509.SubjectKeyIdentifier.from_public_key(ca.key.public_key())
    )
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.NameConstraints)
    assert ca.node_id is None
    assert isinstance(ca.key, ec.EllipticCurvePrivateKey)
    assert ca.key.curve.name == "secp256r1"


def test_issue_ca_defaults_and_validity() -> None:
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    issued = issue_ca(days=10)
    after = dt.datetime.now(dt.UTC)

    cert = issued.cert
    assert re.fullmatch(r"CN=qrpc CA [0-9a-z]{26}", cert.subject.rfc4514_string())
    assert issue_ca().cert.subject != cert.subject  # every CA has a name of its own
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == dt.timedelta(days=10, minutes=5)
    assert before - dt.timedelta(minutes=5) <= cert.not_valid_before_utc
    assert cert.not_valid_before_utc <= after - dt.timedelta(minutes=5)


@pytest.mark.parametrize("key_type", ["p256", "p384", "rsa2048"])
def test_ca_key_types_are_accepted_by_tls(tmp_path: Path, key_type: KeyType) -> None:
    ca = issue_ca(key_type=key_type)
    node = issue_node_cert(ca, NODE_ID)

    tls = _tls(ca, node, tmp_path)

    assert tls.node_id == NODE_ID
    assert tls.trust == (ca.cert,)


def test_an_ed25519_ca_is_refused_at_issue() -> None:
    # WebPKI verifiers refuse Ed25519 CA keys, so such a CA could never vouch for anyone.
    with pytest.raises(ValueError, match="Ed25519 CA keys"):
        issue_ca(key_type="ed25519")


# --------------------------------------------------------------------------- issue_node_cert


def test_issue_node_cert_shape(ca: Issued) -> None:
    node = issue_node_cert(ca, NODE_ID)
    cert = node.cert

    assert node.node_id == NODE_ID
    assert cert.subject.rfc4514_string() == f"CN={NODE_ID}"
    assert cert.issuer == ca.cert.subject
    cert.verify_directly_issued_by(ca.cert)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.critical is False
    assert list(san.value) == [x509.DNSName(f"{NODE_ID}.node.qrpc")]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert list(eku.value) == [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert (constraints.critical, constraints.value.ca) == (True, False)
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert (usage.digital_signature, usage.key_cert_sign, usage.crl_sign) == (True, False, False)
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    assert cert.public_key() == node.key.public_key()


def test_issue_node_cert_validity(ca: Issued) -> None:
    start = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    end = dt.datetime(2030, 2, 1, tzinfo=dt.UTC)

    explicit = issue_node_cert(ca, NODE_ID, not_before=start, not_after=end)
    by_days = issue_node_cert(ca, NODE_ID, days=7)

    assert (explicit.cert.not_valid_before_utc, explicit.cert.not_valid_after_utc) == (start, end)
    assert by_days.cert.not_valid_after_utc - by_days.cert.not_valid_before_utc == dt.timedelta(
        days=7, minutes=5
    )


def test_node_ids_default_to_fresh_lower_case_ulids(ca: Issued) -> None:
    before_ms = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
    ids = [issue_node_cert(ca).node_id for _ in range(50)]
    after_ms = int(dt.datetime.now(dt.UTC).timestamp() * 1000)

    assert len(set(ids)) == 50
    for node_id in ids:
        assert node_id is not None
        assert len(node_id) == 26
        assert ULID_LOWER.fullmatch(node_id), node_id
        assert before_ms <= ULID.from_str(node_id.upper()).milliseconds <= after_ms


def test_a_default_node_id_is_the_one_in_the_certificate(ca: Issued, tmp_path: Path) -> None:
    node = issue_node_cert(ca)
    assert node.node_id is not None

    tls = _tls(ca, node, tmp_path)

    assert tls.node_id == node.node_id
    san = node.cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [f"{node.node_id}.node.qrpc"]


def test_an_explicit_node_id_is_normalised_to_lower_case(ca: Issued) -> None:
    node = issue_node_cert(ca, "Node-A1")

    assert node.node_id == "node-a1"
    assert node.cert.subject.rfc4514_string() == "CN=node-a1"
    san = node.cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["node-a1.node.qrpc"]


@pytest.mark.parametrize(
    "bad_id",
    [
        pytest.param("", id="empty"),
        pytest.param("-leading-hyphen", id="leading-hyphen"),
        pytest.param("a.b", id="dot"),
        pytest.param("*", id="wildcard"),
        pytest.param("x" * 64, id="64-chars"),
    ],
)
def test_an_invalid_node_id_is_refused(ca: Issued, bad_id: str) -> None:
    with pytest.raises(ValueError, match="is not a node ID"):
        issue_node_cert(ca, bad_id)


@pytest.mark.parametrize(
    ("key_type", "key_class"),
    [
        pytest.param("p256", ec.EllipticCurvePrivateKey, id="p256"),
        pytest.param("p384", ec.EllipticCurvePrivateKey, id="p384"),
        pytest.param("ed25519", ed25519.Ed25519PrivateKey, id="ed25519"),
        pytest.param("rsa2048", rsa.RSAPrivateKey, id="rsa2048"),
    ],
)
def test_node_key_types_are_accepted_by_tls(
    ca: Issued, tmp_path: Path, key_type: KeyType, key_class: type
) -> None:
    node = issue_node_cert(ca, NODE_ID, key_type=key_type)

    tls = _tls(ca, node, tmp_path)

    assert isinstance(node.key, key_class)
    assert tls.node_id == NODE_ID
    assert _private_pem(tls.private_key) == _private_pem(node.key)


def _describe(key: object) -> str:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return f"EC {key.curve.name}"
    if isinstance(key, rsa.RSAPrivateKey):
        return f"RSA-{key.key_size} e={key.private_numbers().public_numbers.e}"
    return type(key).__name__


@pytest.mark.parametrize(
    ("key_type", "description"),
    [
        pytest.param("p256", "EC secp256r1", id="p256"),
        pytest.param("p384", "EC secp384r1", id="p384"),
        pytest.param("ed25519", "Ed25519PrivateKey", id="ed25519"),
        pytest.param("rsa2048", "RSA-2048 e=65537", id="rsa2048"),
    ],
)
def test_new_key(key_type: KeyType, description: str) -> None:
    assert _describe(new_key(key_type)) == description


def test_new_key_refuses_an_unknown_type() -> None:
    with pytest.raises(ValueError, match=r"^unknown key type 'p521'$"):
        new_key("p521")  # type: ignore[arg-type]


def test_a_given_key_is_certified(ca: Issued) -> None:
    key = new_key("p384")

    node = issue_node_cert(ca, NODE_ID, key=key, key_type="rsa2048")

    assert node.key is key
    assert node.cert.public_key() == key.public_key()


@pytest.mark.parametrize(
    ("usages", "ekus"),
    [
        pytest.param(("client",), [ExtendedKeyUsageOID.CLIENT_AUTH], id="client"),
        pytest.param(("server",), [ExtendedKeyUsageOID.SERVER_AUTH], id="server"),
        pytest.param(
            ("server", "client"),
            [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
            id="server-client",
        ),
    ],
)
def test_usages_set_the_extended_key_usage(
    ca: Issued, usages: tuple[Usage, ...], ekus: list[x509.ObjectIdentifier]
) -> None:
    node = issue_node_cert(ca, NODE_ID, usages=usages)

    assert list(node.cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == ekus


def test_no_usages_means_no_extended_key_usage_extension(ca: Issued) -> None:
    node = issue_node_cert(ca, NODE_ID, usages=())

    with pytest.raises(x509.ExtensionNotFound):
        node.cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)


def test_extra_sans_follow_the_identity_san(ca: Issued, tmp_path: Path) -> None:
    node = issue_node_cert(ca, NODE_ID, extra_sans=[x509.DNSName("localhost")])

    san = node.cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert list(san) == [x509.DNSName(f"{NODE_ID}.node.qrpc"), x509.DNSName("localhost")]
    assert _tls(ca, node, tmp_path).node_id == NODE_ID


def test_domain_sets_the_identity_san(ca: Issued, tmp_path: Path) -> None:
    node = issue_node_cert(ca, NODE_ID, domain="example.org")

    san = node.cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert list(san) == [x509.DNSName(f"{NODE_ID}.node.example.org")]
    assert _tls(ca, node, tmp_path, domain="example.org").node_id == NODE_ID


# --------------------------------------------------------------------------- PEM


def test_write_pem_writes_the_certificate_and_a_private_key_file(
    ca: Issued, tmp_path: Path
) -> None:
    node = issue_node_cert(ca, NODE_ID)
    cert_path, key_path = tmp_path / "n.crt", tmp_path / "n.key"

    write_pem(node, cert_path, key_path)

    assert cert_path.read_bytes() == node.cert_pem()
    assert x509.load_pem_x509_certificate(cert_path.read_bytes()) == node.cert
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert key_path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----\n")
    loaded = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    assert _private_pem(loaded) == _private_pem(node.key)


def test_write_pem_without_key_path_writes_only_the_certificate(ca: Issued, tmp_path: Path) -> None:
    write_pem(ca, tmp_path / "ca.crt")

    assert os.listdir(tmp_path) == ["ca.crt"]
    assert (tmp_path / "ca.crt").read_bytes() == ca.cert_pem()


def test_write_pem_makes_an_existing_key_file_private(ca: Issued, tmp_path: Path) -> None:
    # Re-issuing into a directory whose key file is world-readable (an old
    # copy, a `touch`) must still leave the new key readable by its owner only.
    node = issue_node_cert(ca, NODE_ID)
    key_path = tmp_path / "n.key"
    key_path.write_bytes(b"an old, much longer key file than the new one " * 100)
    key_path.chmod(0o644)

    write_pem(node, tmp_path / "n.crt", key_path)

    assert key_path.read_bytes() == node.key_pem()
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600


def test_an_encrypted_key_round_trips_with_its_password(ca: Issued, tmp_path: Path) -> None:
    node = issue_node_cert(ca, NODE_ID)
    cert_path, key_path = tmp_path / "n.crt", tmp_path / "n.key"
    ca_path = tmp_path / "ca.crt"
    write_pem(ca, ca_path)

    write_pem(node, cert_path, key_path, password=PASSWORD)

    pem = key_path.read_bytes()
    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n")
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    loaded = serialization.load_pem_private_key(pem, password=PASSWORD)
    assert _private_pem(loaded) == _private_pem(node.key)
    with pytest.raises(TypeError):
        serialization.load_pem_private_key(pem, password=None)
    with pytest.raises(ValueError, match="password"):
        serialization.load_pem_private_key(pem, password=b"wrong")
    tls = TLS(ca_path, cert_path, key_path, password=PASSWORD)
    assert tls.node_id == NODE_ID
    assert _private_pem(tls.private_key) == _private_pem(node.key)


def test_key_pem_formats(ca: Issued) -> None:
    assert ca.key_pem().startswith(b"-----BEGIN PRIVATE KEY-----\n")
    assert ca.key_pem(PASSWORD).startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n")
    assert ca.key_pem(b"") == ca.key_pem()  # an empty password means "not encrypted"
    assert ca.cert_pem() == ca.cert.public_bytes(serialization.Encoding.PEM)


# --------------------------------------------------------------------------- name constraints


@pytest.fixture(scope="module")
def constrained() -> Issued:
    return issue_ca("constrained CA", constrain_to_domain="qrpc")


def test_constrained_ca_carries_a_critical_name_constraint(constrained: Issued) -> None:
    ext = constrained.cert.extensions.get_extension_for_class(x509.NameConstraints)

    assert ext.critical is True
    assert ext.value.permitted_subtrees == [x509.DNSName("node.qrpc")]
    assert ext.value.excluded_subtrees is None


@pytest.mark.parametrize("role", BOTH)
def test_constrained_ca_node_certs_verify(constrained: Issued, role: Role) -> None:
    node = issue_node_cert(constrained, NODE_ID)

    identity = verify_peer(
        node.cert, [], trust=[constrained.cert], domain="qrpc", role=role, now=NOW
    )

    assert identity.node_id == NODE_ID


def test_constrained_ca_node_cert_loads_in_tls(constrained: Issued, tmp_path: Path) -> None:
    node = issue_node_cert(constrained, NODE_ID)

    assert _tls(constrained, node, tmp_path).node_id == NODE_ID


@pytest.mark.parametrize(
    ("extra_sans", "domain"),
    [
        pytest.param([x509.DNSName("localhost")], "qrpc", id="extra-dns-localhost"),
        pytest.param([x509.DNSName("node.qrpc.evil.example")], "qrpc", id="extra-dns-lookalike"),
        pytest.param([], "other", id="identity-san-in-another-domain"),
    ],
)
@pytest.mark.parametrize("role", BOTH)
def test_constrained_ca_refuses_names_outside_node_domain(
    constrained: Issued, extra_sans: list[x509.GeneralName], domain: str, role: Role
) -> None:
    node = issue_node_cert(constrained, NODE_ID, domain=domain, extra_sans=extra_sans)

    with pytest.raises(qrpc.PeerAuthError) as info:
        verify_peer(node.cert, [], trust=[constrained.cert], domain=domain, role=role, now=NOW)

    assert info.value.alert == Alert.BAD_CERTIFICATE
    assert info.value.reason.startswith("certificate refused: ")


@pytest.mark.parametrize(
    ("extra_sans", "domain"),
    [
        pytest.param([x509.DNSName("localhost")], "qrpc", id="extra-dns-localhost"),
        pytest.param([x509.DNSName("node.qrpc.evil.example")], "qrpc", id="extra-dns-lookalike"),
        pytest.param([], "other", id="identity-san-in-another-domain"),
    ],
)
def test_positive_control_the_same_certificates_from_an_unconstrained_ca_verify(
    ca: Issued, extra_sans: list[x509.GeneralName], domain: str
) -> None:
    node = issue_node_cert(ca, NODE_ID, domain=domain, extra_sans=extra_sans)

    identity = verify_peer(node.cert, [], trust=[ca.cert], domain=domain, role="client", now=NOW)

    assert identity.node_id == NODE_ID


def test_constrained_ca_own_cert_outside_the_domain_is_a_config_error(
    constrained: Issued, tmp_path: Path
) -> None:
    node = issue_node_cert(constrained, NODE_ID, extra_sans=[x509.DNSName("localhost")])

    with pytest.raises(qrpc.ConfigError) as info:
        _tls(constrained, node, tmp_path)

    assert info.value.path == str(tmp_path / "node.crt")
    assert info.value.reason.startswith("peers would refuse this certificate: certificate refused")
