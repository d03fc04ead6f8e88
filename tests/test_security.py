"""Loading TLS material eagerly: `qrpc.TLS` and `load_ca_file`.

Every unusable file must fail *at construction* with `qrpc.ConfigError`
naming the file and the reason (unusable key types, a key that does not
match its certificate, garbled or empty PEM files, a missing or non-CA CA
file, encrypted keys without the right password) -- never a raw
`IndexError`/`TypeError`, and never later, at the first handshake.
Certificates are generated per test, in tmp_path; keys of the slow types
(RSA, DSA) are generated once per session and reused.
"""

from __future__ import annotations

import datetime as dt
import re
import ssl
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

import qrpc
from qrpc.testing import TestPKI
from qrpc.tls.certs import Issued, issue_node_cert, write_pem
from qrpc.tls.credentials import TLS
from qrpc.tls.pem import load_ca_file
from qrpc.transport.mtls import ALPN, quic_configuration
from tests.keys import AnyKey, private_key

NOW = dt.datetime.now(dt.UTC)
BOUND = 0.5  # seconds; the requirement is "well under 100 ms", the slack avoids flakiness
NODE_ID = "01jd3k9q2m4n5p6r7s8t9v0wxy"


def _build_cert(
    issuer: Issued,
    key: AnyKey,
    *,
    sans: Sequence[x509.GeneralName],
    ekus: Sequence[x509.ObjectIdentifier] = (
        ExtendedKeyUsageOID.CLIENT_AUTH,
        ExtendedKeyUsageOID.SERVER_AUTH,
    ),
) -> x509.Certificate:
    """A node-shaped leaf with free choice of key and SANs (qrpc.tls.certs fixes both)."""
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test leaf")]))
        .issuer_name(issuer.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(
                issuer.cert.public_key()  # type: ignore[arg-type]  # the test CA is P-256
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage(list(ekus)), critical=False)
        .sign(issuer.key, hashes.SHA256())
    )


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(
    key: AnyKey,
    fmt: serialization.PrivateFormat = serialization.PrivateFormat.PKCS8,
    password: bytes | None = None,
) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(serialization.Encoding.PEM, fmt, encryption)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path


CORRUPT_PEM = b"-----BEGIN CERTIFICATE-----\nAAECAwQFBgcICQ==\n-----END CERTIFICATE-----\n"
"""PEM framing around a body that is not a certificate."""


def _config_error(**kwargs: Any) -> qrpc.ConfigError:
    """Construct TLS(**kwargs), which must raise ConfigError, fast."""
    start = time.perf_counter()
    with pytest.raises(qrpc.ConfigError) as info:
        TLS(**kwargs)
    elapsed = time.perf_counter() - start
    assert elapsed < BOUND, f"ConfigError took {elapsed:.3f} s"
    error = info.value
    assert isinstance(error, ValueError)
    assert isinstance(error, qrpc.QrpcError)
    assert str(error) == f"{error.path}: {error.reason}"
    return error


@pytest.fixture
def pki(tmp_path: Path) -> TestPKI:
    return TestPKI(tmp_path / "pki")


@pytest.fixture
def good(pki: TestPKI) -> tuple[Issued, Path, Path]:
    """A valid node certificate with its files: (issued, cert path, key path)."""
    issued = pki.issue(NODE_ID)
    cert_path, key_path = pki.write(issued)
    return issued, cert_path, key_path


# --------------------------------------------------------------------------- cert file

# id: (writes the bad cert file into the directory and returns its path, reason pattern)
CERT_FILE_CASES: dict[str, tuple[Callable[[Path, Issued], Path], str]] = {
    "missing": (lambda d, n: d / "absent.crt", r"^file not found$"),
    "empty": (lambda d, n: _write(d / "empty.crt", b""), r"^file is empty$"),
    "whitespace-only": (lambda d, n: _write(d / "blank.crt", b"  \n\n\t\n"), r"^file is empty$"),
    "garbage-text": (
        lambda d, n: _write(d / "garbage.crt", b"this is not a certificate\n"),
        r"^no PEM certificate found \(expected '-----BEGIN CERTIFICATE-----'\)$",
    ),
    "der-instead-of-pem": (
        lambda d, n: _write(d / "der.crt", n.cert.public_bytes(serialization.Encoding.DER)),
        r"^no PEM certificate found",
    ),
    "private-key-instead-of-cert": (
        lambda d, n: _write(d / "key-as.crt", n.key_pem()),
        r"^no PEM certificate found",
    ),
    "truncated-pem-half": (
        lambda d, n: _write(d / "half.crt", n.cert_pem()[: len(n.cert_pem()) // 2]),
        r"^garbled PEM certificate: ",
    ),
    "truncated-pem-no-end-line": (
        lambda d, n: _write(
            d / "noend.crt", n.cert_pem().replace(b"-----END CERTIFICATE-----\n", b"")
        ),
        r"^garbled PEM certificate: ",
    ),
    "corrupted-base64": (
        lambda d, n: _write(d / "corrupt.crt", CORRUPT_PEM),
        r"^garbled PEM certificate: ",
    ),
    "directory": (lambda d, n: _mkdir(d / "a-directory"), r"^cannot read file: "),
}


@pytest.mark.parametrize("case", list(CERT_FILE_CASES))
def test_bad_cert_file_raises_config_error_naming_it(
    case: str, pki: TestPKI, good: tuple[Issued, Path, Path], tmp_path: Path
) -> None:
    make, reason = CERT_FILE_CASES[case]
    issued, _, key_path = good
    bad = make(tmp_path, issued)

    error = _config_error(ca=pki.ca_path, cert=bad, key=key_path)

    assert error.path == str(bad)
    assert re.search(reason, error.reason), error.reason


# --------------------------------------------------------------------------- key file

KEY_FILE_CASES: dict[str, tuple[Callable[[Path, Issued], Path], str]] = {
    "missing": (lambda d, n: d / "absent.key", r"^file not found$"),
    "empty": (lambda d, n: _write(d / "empty.key", b""), r"^file is empty$"),
    "garbage-text": (
        lambda d, n: _write(d / "garbage.key", b"not a key at all\n"),
        r"^no PEM private key found \(expected '-----BEGIN \.\.\. PRIVATE KEY-----'\)$",
    ),
    "der-instead-of-pem": (
        lambda d, n: _write(
            d / "der.key",
            n.key.private_bytes(
                serialization.Encoding.DER,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        ),
        r"^no PEM private key found",
    ),
    "certificate-instead-of-key": (
        lambda d, n: _write(d / "cert-as.key", n.cert_pem()),
        r"^no PEM private key found",
    ),
    "garbled-pem-body": (
        lambda d, n: _write(
            d / "garbled.key", b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
        ),
        r"^cannot load the key \(garbled key\): ",
    ),
    "directory": (lambda d, n: _mkdir(d / "a-directory"), r"^cannot read file: "),
}


@pytest.mark.parametrize("case", list(KEY_FILE_CASES))
def test_bad_key_file_raises_config_error_naming_it(
    case: str, pki: TestPKI, good: tuple[Issued, Path, Path], tmp_path: Path
) -> None:
    make, reason = KEY_FILE_CASES[case]
    issued, cert_path, _ = good
    bad = make(tmp_path, issued)

    error = _config_error(ca=pki.ca_path, cert=cert_path, key=bad)

    assert error.path == str(bad)
    assert re.search(reason, error.reason), error.reason


def test_key_that_does_not_match_the_certificate_is_refused(
    pki: TestPKI, good: tuple[Issued, Path, Path]
) -> None:
    _, cert_path, _ = good
    _, other_key_path = pki.write(pki.issue())  # same CA, same key type, another key

    error = _config_error(ca=pki.ca_path, cert=cert_path, key=other_key_path)

    assert error.path == str(other_key_path)
    assert error.reason == f"key does not match the certificate in {cert_path}"


# --------------------------------------------------------------------------- encrypted keys

PASSWORD = b"correct horse battery staple"


@pytest.mark.parametrize(
    ("key_password", "given", "reason"),
    [
        pytest.param(PASSWORD, None, r"^key is encrypted: pass its password$", id="no-password"),
        pytest.param(
            PASSWORD, "wrong", r"^cannot load the key \(wrong password\): ", id="wrong-password"
        ),
        pytest.param(
            PASSWORD, b"wrong", r"^cannot load the key \(wrong password\): ", id="wrong-bytes"
        ),
        pytest.param(
            None,
            "unneeded",
            r"^a password was given but the key is not encrypted$",
            id="password-for-plain-key",
        ),
    ],
)
def test_key_password_errors(
    pki: TestPKI,
    good: tuple[Issued, Path, Path],
    key_password: bytes | None,
    given: str | bytes | None,
    reason: str,
) -> None:
    issued, cert_path, _ = good
    _, key_path = pki.write(issued, password=key_password)

    error = _config_error(ca=pki.ca_path, cert=cert_path, key=key_path, password=given)

    assert error.path == str(key_path)
    assert re.search(reason, error.reason), error.reason


def test_empty_password_for_encrypted_key_is_not_reported_as_plain_key(
    pki: TestPKI, good: tuple[Issued, Path, Path]
) -> None:
    # An empty password (an unset environment variable, say) given for an
    # encrypted key must not be explained as "the key is not encrypted".
    issued, cert_path, _ = good
    _, key_path = pki.write(issued, password=PASSWORD)
    assert key_path.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")

    error = _config_error(ca=pki.ca_path, cert=cert_path, key=key_path, password="")

    assert error.path == str(key_path)
    assert "not encrypted" not in error.reason
    assert re.search(r"key is encrypted|wrong password", error.reason), error.reason


@pytest.mark.parametrize(
    "password", [pytest.param(PASSWORD.decode(), id="str"), pytest.param(PASSWORD, id="bytes")]
)
def test_encrypted_key_with_the_right_password_loads(
    pki: TestPKI, good: tuple[Issued, Path, Path], password: str | bytes
) -> None:
    issued, cert_path, _ = good
    _, key_path = pki.write(issued, password=PASSWORD)

    tls = TLS(pki.ca_path, cert_path, key_path, password=password)

    assert tls.node_id == NODE_ID
    assert _key_pem(tls.private_key) == issued.key_pem()


# --------------------------------------------------------------------------- key formats

TRADITIONAL = serialization.PrivateFormat.TraditionalOpenSSL


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
@pytest.mark.parametrize(
    ("kind", "fmt", "header"),
    [
        pytest.param("p256", serialization.PrivateFormat.PKCS8, b"PRIVATE KEY", id="pkcs8-p256"),
        pytest.param("p256", TRADITIONAL, b"EC PRIVATE KEY", id="sec1-p256"),
        pytest.param("p384", TRADITIONAL, b"EC PRIVATE KEY", id="sec1-p384"),
        pytest.param("rsa2048", TRADITIONAL, b"RSA PRIVATE KEY", id="pkcs1-rsa2048"),
        pytest.param(
            "rsa2048", serialization.PrivateFormat.PKCS8, b"PRIVATE KEY", id="pkcs8-rsa2048"
        ),
        pytest.param(
            "ed25519", serialization.PrivateFormat.PKCS8, b"PRIVATE KEY", id="pkcs8-ed25519"
        ),
    ],
)
def test_key_formats_load(
    pki: TestPKI,
    tmp_path: Path,
    kind: str,
    fmt: serialization.PrivateFormat,
    header: bytes,
    encrypted: bool,
) -> None:
    key = private_key(kind)
    assert isinstance(
        key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    )
    issued = pki.issue(NODE_ID, key=key)
    cert_path = tmp_path / "node.crt"
    write_pem(issued, cert_path)
    password = PASSWORD if encrypted else None
    pem = _key_pem(key, fmt, password)
    if encrypted and fmt is serialization.PrivateFormat.PKCS8:
        assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n")
    else:
        assert pem.startswith(b"-----BEGIN " + header + b"-----\n")
    assert (b"ENCRYPTED" in pem) is encrypted
    key_path = _write(tmp_path / "node.key", pem)

    tls = TLS(pki.ca_path, cert_path, key_path, password=password)

    assert tls.node_id == NODE_ID
    assert _key_pem(tls.private_key) == _key_pem(key)


# --------------------------------------------------------------------------- key types


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        pytest.param(
            "p521", r"^EC curve secp521r1 is not supported \(use P-256 or P-384\)$", id="p521"
        ),
        pytest.param("secp256k1", r"^EC curve secp256k1 is not supported", id="secp256k1"),
        pytest.param("rsa1024", r"^RSA-1024 is too weak \(use >= 2048 bits\)$", id="rsa1024"),
        pytest.param("ed448", r"^Ed448PrivateKey keys are not supported", id="ed448"),
        pytest.param("dsa", r"^DSAPrivateKey keys are not supported", id="dsa2048"),
    ],
)
def test_refused_key_types_name_the_key_file(
    pki: TestPKI, tmp_path: Path, kind: str, reason: str
) -> None:
    key = private_key(kind)
    cert = _build_cert(pki.ca, key, sans=[x509.DNSName(f"{NODE_ID}.node.qrpc")])
    cert_path = _write(tmp_path / f"{kind}.crt", _pem(cert))
    key_path = _write(tmp_path / f"{kind}.key", _key_pem(key))

    error = _config_error(ca=pki.ca_path, cert=cert_path, key=key_path)

    assert error.path == str(key_path)
    assert re.search(reason, error.reason), error.reason


# --------------------------------------------------------------------------- CA file

CA_FILE_CASES: dict[str, tuple[Callable[[Path, TestPKI, Issued], Path], str]] = {
    "missing": (lambda d, p, n: d / "absent-ca.crt", r"^file not found$"),
    "empty": (lambda d, p, n: _write(d / "empty-ca.crt", b""), r"^file is empty$"),
    "garbage-text": (
        lambda d, p, n: _write(d / "garbage-ca.crt", b"\x00\x01 definitely not PEM"),
        r"^no PEM certificate found",
    ),
    "der-instead-of-pem": (
        lambda d, p, n: _write(
            d / "der-ca.crt", p.ca.cert.public_bytes(serialization.Encoding.DER)
        ),
        r"^no PEM certificate found",
    ),
    "truncated-pem": (
        lambda d, p, n: _write(d / "half-ca.crt", p.ca.cert_pem()[:300]),
        r"^garbled PEM certificate: ",
    ),
    "leaf-instead-of-ca": (
        lambda d, p, n: _write(d / "leaf-ca.crt", n.cert_pem()),
        rf"^certificate 'CN={NODE_ID}' is not a CA certificate$",
    ),
    "ca-then-leaf-bundle": (
        lambda d, p, n: _write(d / "bundle-ca.crt", p.ca.cert_pem() + n.cert_pem()),
        rf"^certificate 'CN={NODE_ID}' is not a CA certificate$",
    ),
}


@pytest.mark.parametrize("case", list(CA_FILE_CASES))
def test_bad_ca_file_raises_config_error_naming_it(
    case: str, pki: TestPKI, good: tuple[Issued, Path, Path], tmp_path: Path
) -> None:
    make, reason = CA_FILE_CASES[case]
    issued, cert_path, key_path = good
    bad = make(tmp_path, pki, issued)

    error = _config_error(ca=bad, cert=cert_path, key=key_path)

    assert error.path == str(bad)
    assert re.search(reason, error.reason), error.reason


@pytest.mark.parametrize("case", ["missing", "empty", "garbage-text", "leaf-instead-of-ca"])
def test_load_ca_file_raises_the_same_config_error(
    case: str, pki: TestPKI, good: tuple[Issued, Path, Path], tmp_path: Path
) -> None:
    make, reason = CA_FILE_CASES[case]
    bad = make(tmp_path, pki, good[0])

    with pytest.raises(qrpc.ConfigError) as info:
        load_ca_file(bad)

    assert info.value.path == str(bad)
    assert re.search(reason, info.value.reason), info.value.reason


def test_load_ca_file_returns_every_ca_of_a_bundle(tmp_path: Path) -> None:
    first, second = TestPKI(tmp_path / "a", name="CA one"), TestPKI(tmp_path / "b", name="CA two")
    bundle = _write(tmp_path / "bundle.crt", first.ca.cert_pem() + second.ca.cert_pem())

    assert load_ca_file(bundle) == (first.ca.cert, second.ca.cert)
    assert load_ca_file(str(bundle)) == (first.ca.cert, second.ca.cert)


def test_a_second_ca_in_the_bundle_is_trusted(tmp_path: Path) -> None:
    first, second = TestPKI(tmp_path / "a", name="CA one"), TestPKI(tmp_path / "b", name="CA two")
    bundle = _write(tmp_path / "bundle.crt", first.ca.cert_pem() + second.ca.cert_pem())
    cert_path, key_path = second.write(second.issue(NODE_ID))

    tls = TLS(bundle, cert_path, key_path)

    assert tls.trust == (first.ca.cert, second.ca.cert)
    assert tls.node_id == NODE_ID


# --------------------------------------------------------------------------- own certificate

# id: (issues the node's own certificate, reason pattern)
OWN_CERT_CASES: dict[str, tuple[Callable[[TestPKI, TestPKI], Issued], str]] = {
    "expired": (
        lambda p, o: p.issue(
            NODE_ID, not_before=NOW - dt.timedelta(days=30), not_after=NOW - dt.timedelta(days=1)
        ),
        rf"^peers would refuse this certificate: certificate CN={NODE_ID} is not valid at ",
    ),
    "not-yet-valid": (
        lambda p, o: p.issue(
            NODE_ID, not_before=NOW + dt.timedelta(days=1), not_after=NOW + dt.timedelta(days=30)
        ),
        rf"^peers would refuse this certificate: certificate CN={NODE_ID} is not valid at ",
    ),
    "signed-by-another-ca": (
        lambda p, o: o.issue(NODE_ID),
        r"^peers would refuse this certificate: "
        r"certificate issuer CN=some other CA is not a trusted CA \(this node trusts the CA in "
        r".*ca-\d+\.crt; use certificates issued by the same CA\)$",
    ),
    "eku-client-auth-only": (
        lambda p, o: p.issue(NODE_ID, usages=("client",)),
        r"^peers would refuse this certificate: .*extended key usage lacks serverAuth",
    ),
    "eku-server-auth-only": (
        lambda p, o: p.issue(NODE_ID, usages=("server",)),
        r"^peers would refuse this certificate: .*extended key usage lacks clientAuth",
    ),
    "no-eku": (
        lambda p, o: p.issue(NODE_ID, usages=()),
        r"^peers would refuse this certificate: certificate refused: ",
    ),
    "no-identity-san-dns-localhost-only": (
        lambda p, o: _without_identity_san(p.ca),
        r"^certificate has no identity SAN '<node-id>\.node\.qrpc' ",
    ),
    "identity-san-of-another-domain": (
        lambda p, o: p.issue(NODE_ID, domain="example.org"),
        r"^certificate has no identity SAN '<node-id>\.node\.qrpc' ",
    ),
}


def _without_identity_san(ca: Issued) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    return Issued(_build_cert(ca, key, sans=[x509.DNSName("localhost")]), key)


@pytest.fixture
def other_pki(tmp_path: Path) -> TestPKI:
    return TestPKI(tmp_path / "other", name="some other CA")


@pytest.mark.parametrize("case", list(OWN_CERT_CASES))
def test_own_certificate_that_peers_would_refuse_names_the_cert_file(
    case: str, pki: TestPKI, other_pki: TestPKI
) -> None:
    make, reason = OWN_CERT_CASES[case]
    cert_path, key_path = pki.write(make(pki, other_pki))

    error = _config_error(ca=pki.ca_path, cert=cert_path, key=key_path)

    assert error.path == str(cert_path)
    assert re.search(reason, error.reason), error.reason


# --------------------------------------------------------------------------- what TLS holds


def test_tls_holds_the_checked_material(pki: TestPKI, good: tuple[Issued, Path, Path]) -> None:
    issued, cert_path, key_path = good

    tls = TLS(pki.ca_path, cert_path, key_path)

    assert tls.node_id == NODE_ID
    assert tls.identity.node_id == NODE_ID
    assert tls.identity.certificate == issued.cert
    assert tls.certificate == issued.cert
    assert tls.chain == ()
    assert tls.trust == (pki.ca.cert,)
    assert tls.domain == "qrpc"
    assert (tls.ca_path, tls.cert_path, tls.key_path) == (
        str(pki.ca_path),
        str(cert_path),
        str(key_path),
    )
    assert _key_pem(tls.private_key) == issued.key_pem()
    assert repr(tls) == (
        f"TLS(node_id={NODE_ID!r}, cert={str(cert_path)!r}, ca={str(pki.ca_path)!r})"
    )


def test_tls_accepts_str_paths(pki: TestPKI, good: tuple[Issued, Path, Path]) -> None:
    _, cert_path, key_path = good

    tls = TLS(str(pki.ca_path), str(cert_path), str(key_path))

    assert tls.node_id == NODE_ID


def test_node_id_is_the_identity_san_in_lower_case(pki: TestPKI, tmp_path: Path) -> None:
    key = private_key("p256")
    upper = NODE_ID.upper()
    cert = _build_cert(
        pki.ca, key, sans=[x509.DNSName("localhost"), x509.DNSName(f"{upper}.node.qrpc")]
    )
    cert_path = _write(tmp_path / "upper.crt", _pem(cert))
    key_path = _write(tmp_path / "upper.key", _key_pem(key))

    tls = TLS(pki.ca_path, cert_path, key_path)

    assert tls.node_id == NODE_ID
    assert tls.identity.sans == ("localhost", f"{upper}.node.qrpc")


def test_custom_domain(pki: TestPKI, tmp_path: Path) -> None:
    cert_path, key_path = pki.write(pki.issue(NODE_ID, domain="example.org"))

    tls = TLS(pki.ca_path, cert_path, key_path, domain="example.org")

    assert (tls.node_id, tls.domain) == (NODE_ID, "example.org")


def test_cert_file_with_an_intermediate_loads_the_chain(tmp_path: Path) -> None:
    root = TestPKI(tmp_path / "root", name="root CA")
    intermediate = _intermediate(root.ca, "intermediate CA")
    node = issue_node_cert(intermediate, NODE_ID)
    cert_path = _write(tmp_path / "chain.crt", node.cert_pem() + intermediate.cert_pem())
    key_path = _write(tmp_path / "chain.key", node.key_pem())

    tls = TLS(root.ca_path, cert_path, key_path)
    config = quic_configuration(tls, is_client=True, settings=qrpc.QuicSettings())

    assert tls.certificate == node.cert
    assert tls.chain == (intermediate.cert,)
    assert config.certificate_chain == [intermediate.cert]
    assert tls.node_id == NODE_ID


def test_cert_file_without_its_intermediate_is_refused(tmp_path: Path) -> None:
    root = TestPKI(tmp_path / "root", name="root CA")
    intermediate = _intermediate(root.ca, "intermediate CA")
    node = issue_node_cert(intermediate, NODE_ID)
    cert_path = _write(tmp_path / "leaf-only.crt", node.cert_pem())
    key_path = _write(tmp_path / "leaf-only.key", node.key_pem())

    error = _config_error(ca=root.ca_path, cert=cert_path, key=key_path)

    assert error.path == str(cert_path)
    assert error.reason == (
        "peers would refuse this certificate: "
        "certificate issuer CN=intermediate CA is not a trusted CA "
        f"(this node trusts the CA in {root.ca_path}; use certificates issued by the same CA)"
    )


def _intermediate(parent: Issued, name: str) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(parent.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=60))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(
                parent.cert.public_key()  # type: ignore[arg-type]  # the test CA is P-256
            ),
            critical=False,
        )
        .sign(parent.key, hashes.SHA256())
    )
    return Issued(cert, key)


@pytest.mark.parametrize("is_client", [True, False], ids=["client", "server"])
def test_quic_configuration(pki: TestPKI, good: tuple[Issued, Path, Path], is_client: bool) -> None:
    _, cert_path, key_path = good
    tls = TLS(pki.ca_path, cert_path, key_path)
    settings = qrpc.QuicSettings()

    config = quic_configuration(tls, is_client=is_client, settings=settings)

    assert ALPN == "qrpc/2"
    assert config.alpn_protocols == ["qrpc/2"]
    assert config.is_client is is_client
    assert config.certificate is tls.certificate
    assert config.certificate_chain == []
    assert config.private_key is tls.private_key
    assert config.verify_mode == ssl.CERT_NONE  # qrpc verifies in its own TLS hook
    assert config.session_ticket is None
    assert (config.cafile, config.capath, config.cadata) == (None, None, None)
    assert config.idle_timeout == settings.idle_timeout == 30.0
    assert config.max_datagram_size == 1200  # where path MTU discovery starts...
    assert settings.max_datagram_size == 16383  # ...and how far it may go
    assert config.max_datagram_frame_size == 16383  # path probes are welcome
    assert config.max_data == settings.max_data
    assert config.max_stream_data == settings.max_stream_data
    assert config.congestion_control_algorithm == "reno"


def test_quic_configuration_follows_the_settings(
    pki: TestPKI, good: tuple[Issued, Path, Path]
) -> None:
    _, cert_path, key_path = good
    tls = TLS(pki.ca_path, cert_path, key_path)
    settings = qrpc.QuicSettings(
        max_datagram_size=1350,
        path_mtu_discovery=False,  # every datagram is max_datagram_size
        max_data=2 * 1024 * 1024,
        max_stream_data=512 * 1024,
        idle_timeout=12.0,
        keepalive_interval=3.0,
        congestion_control="cubic",
    )

    config = quic_configuration(tls, is_client=False, settings=settings)

    assert (
        config.max_datagram_size,
        config.max_data,
        config.max_stream_data,
        config.idle_timeout,
        config.congestion_control_algorithm,
    ) == (1350, 2 * 1024 * 1024, 512 * 1024, 12.0, "cubic")
