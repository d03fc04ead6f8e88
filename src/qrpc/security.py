"""Loading the node's TLS material, eagerly, with errors that name the file.

aioquic loads certificates lazily and reports mistakes late or not at all:
a key that does not match its certificate, or a missing CA file, surfaces
only as a failed handshake (SECURITY-NOTES §2.5).  `TLS` reads and checks
everything when it is constructed and raises `ConfigError(path, reason)`
for:

- a missing, unreadable, empty or garbled certificate, key or CA file;
- an encrypted key without a password, or with a wrong one (and a
  password given for a key that is not encrypted);
- a key type qrpc cannot use, or a key that does not match the certificate;
- a CA file holding no certificate, or a certificate that is not a CA;
- an own certificate that peers would refuse (expired, wrong CA, missing
  clientAuth/serverAuth, no identity SAN).

Session tickets and 0-RTT stay off: a resumed session would skip the
client certificate (SECURITY-NOTES §2.4).
"""

from __future__ import annotations

import datetime as dt
import os
import ssl
from typing import TYPE_CHECKING, Final

from aioquic.quic.configuration import QuicConfiguration
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_private_key,
)

from qrpc.errors import ConfigError, PeerAuthError
from qrpc.identity import PeerIdentity, check_key_type, verify_peer

if TYPE_CHECKING:
    from qrpc.config import QuicSettings

__all__ = ["ALPN", "TLS", "PrivateKey", "load_ca_file"]

ALPN: Final = "qrpc/1"
DEFAULT_DOMAIN: Final = "qrpc"
PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
Path = str | os.PathLike[str]


class TLS:
    """A node's certificate, key and trusted CA, loaded and checked at construction.

    Args:
        ca: PEM file with the CA certificate(s) peers must chain to.
        cert: PEM file with the node's certificate, then any intermediates.
        key: PEM file with the node's private key (PKCS#8, SEC1 or PKCS#1).
        password: the key's password, if it is encrypted.
        domain: trust domain of identity SANs (``<node-id>.node.<domain>``).

    Raises:
        ConfigError: naming the file and the reason (see the module docstring).
    """

    __slots__ = (
        "ca_path",
        "cert_path",
        "certificate",
        "chain",
        "domain",
        "identity",
        "key_path",
        "node_id",
        "private_key",
        "trust",
    )

    def __init__(
        self,
        ca: Path,
        cert: Path,
        key: Path,
        *,
        password: str | bytes | None = None,
        domain: str = DEFAULT_DOMAIN,
    ) -> None:
        self.ca_path = os.fspath(ca)
        self.cert_path = os.fspath(cert)
        self.key_path = os.fspath(key)
        self.domain = domain
        self.trust: tuple[x509.Certificate, ...] = load_ca_file(ca)
        certs = _load_certificates(cert)
        self.certificate = certs[0]
        self.chain = tuple(certs[1:])
        self.private_key = _load_key(key, password)
        if _public_der(self.private_key) != self.certificate.public_key().public_bytes(
            Encoding.DER, PublicFormat.SubjectPublicKeyInfo
        ):
            raise ConfigError(
                self.key_path, f"key does not match the certificate in {self.cert_path}"
            )
        self.identity = self._check_own_certificate()
        self.node_id: str = self.identity.node_id  # type: ignore[assignment]  # checked above

    @classmethod
    def _unchecked(
        cls,
        *,
        trust: tuple[x509.Certificate, ...],
        certificate: x509.Certificate | None,
        private_key: PrivateKey | None,
        node_id: str,
        chain: tuple[x509.Certificate, ...] = (),
        domain: str = DEFAULT_DOMAIN,
    ) -> TLS:
        """Build credentials *without* the checks of the constructor.

        Only for tests that must present what peers refuse -- an expired or
        foreign certificate, or none at all (`qrpc.testing.refused_tls`).
        """
        self = cls.__new__(cls)
        self.ca_path = self.cert_path = self.key_path = "<unchecked>"
        self.domain = domain
        self.trust = trust
        self.certificate = certificate  # type: ignore[assignment]
        self.chain = chain
        self.private_key = private_key  # type: ignore[assignment]
        self.identity = None  # type: ignore[assignment]
        self.node_id = node_id
        return self

    def _check_own_certificate(self) -> PeerIdentity:
        now = dt.datetime.now(dt.UTC)
        try:
            check_key_type(self.certificate)
            for role in ("client", "server"):
                identity = verify_peer(
                    self.certificate,
                    self.chain,
                    trust=self.trust,
                    domain=self.domain,
                    role=role,
                    now=now,
                )
        except PeerAuthError as exc:
            raise ConfigError(
                self.cert_path, f"peers would refuse this certificate: {exc}"
            ) from None
        if identity.node_id is None:
            raise ConfigError(
                self.cert_path,
                f"certificate has no identity SAN '<node-id>.node.{self.domain}' "
                "(issue one with `qrpc certs` or qrpc.certs.issue_node_cert)",
            )
        return identity

    def quic_configuration(self, *, is_client: bool, settings: QuicSettings) -> QuicConfiguration:
        """Return an aioquic configuration for one role, carrying these credentials.

        The client-side `verify_mode` is CERT_NONE because qrpc verifies the
        server certificate itself, inside the handshake (`qrpc._mtls`), with
        the same rules as for clients; aioquic's own check is weaker
        (SECURITY-NOTES §2.3).
        """
        config = QuicConfiguration(
            is_client=is_client,
            alpn_protocols=[ALPN],
            verify_mode=ssl.CERT_NONE,
            idle_timeout=settings.idle_timeout,
            max_datagram_size=settings.max_datagram_size,
            max_data=settings.max_data,
            max_stream_data=settings.max_stream_data,
            congestion_control_algorithm=settings.congestion_control,
        )
        config.certificate = self.certificate
        config.certificate_chain = list(self.chain)
        config.private_key = self.private_key
        return config

    def __repr__(self) -> str:
        return f"TLS(node_id={self.node_id!r}, cert={self.cert_path!r}, ca={self.ca_path!r})"


def load_ca_file(path: Path) -> tuple[x509.Certificate, ...]:
    """Load trusted CA certificates from a PEM file.

    Raises:
        ConfigError: the file is missing or garbled, holds no certificate, or
            holds a certificate that is not a CA.
    """
    certs = _load_certificates(path)
    for cert in certs:
        try:
            constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        except x509.ExtensionNotFound:
            constraints = None
        if constraints is None or not constraints.ca:
            raise ConfigError(
                path, f"certificate {cert.subject.rfc4514_string()!r} is not a CA certificate"
            )
    return tuple(certs)


def _read(path: Path) -> bytes:
    try:
        with open(path, "rb") as file:
            data = file.read()
    except FileNotFoundError:
        raise ConfigError(path, "file not found") from None
    except OSError as exc:
        raise ConfigError(path, f"cannot read file: {exc.strerror or exc}") from None
    if not data.strip():
        raise ConfigError(path, "file is empty")
    return data


def _load_certificates(path: Path) -> list[x509.Certificate]:
    data = _read(path)
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise ConfigError(path, "no PEM certificate found (expected '-----BEGIN CERTIFICATE-----')")
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise ConfigError(path, f"garbled PEM certificate: {exc}") from None


def _load_key(path: Path, password: str | bytes | None) -> PrivateKey:
    data = _read(path)
    if b"PRIVATE KEY-----" not in data:
        raise ConfigError(
            path, "no PEM private key found (expected '-----BEGIN ... PRIVATE KEY-----')"
        )
    secret = password.encode() if isinstance(password, str) else password
    try:
        key = load_pem_private_key(data, password=secret)
    except TypeError:
        if not secret:
            raise ConfigError(path, "key is encrypted: pass its password") from None
        raise ConfigError(path, "a password was given but the key is not encrypted") from None
    except ValueError as exc:
        reason = "wrong password" if secret is not None and b"ENCRYPTED" in data else "garbled key"
        raise ConfigError(path, f"cannot load the key ({reason}): {exc}") from None
    except Exception as exc:  # cryptography raises UnsupportedAlgorithm for exotic keys
        raise ConfigError(path, f"cannot load the key: {exc}") from None
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if key.curve.name not in ("secp256r1", "secp384r1"):
            raise ConfigError(
                path, f"EC curve {key.curve.name} is not supported (use P-256 or P-384)"
            )
    elif isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < 2048:
            raise ConfigError(path, f"RSA-{key.key_size} is too weak (use >= 2048 bits)")
    elif not isinstance(key, ed25519.Ed25519PrivateKey):
        raise ConfigError(
            path, f"{type(key).__name__} keys are not supported (use P-256, P-384, Ed25519 or RSA)"
        )
    return key


def _public_der(key: PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
