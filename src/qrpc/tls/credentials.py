"""`TLS`: the node's certificate, key and CA, loaded eagerly and checked.

aioquic loads certificates lazily and reports mistakes late or not at all:
a key that does not match its certificate surfaces only as a failed
handshake.  `TLS` reads and checks everything when it is constructed and
raises `ConfigError(path, reason)` for:

- a missing, unreadable, empty or garbled certificate, key or CA file;
- an encrypted key without a password, or with a wrong one (and a
  password given for a key that is not encrypted);
- a key type qrpc cannot use, or a key that does not match the certificate;
- a CA file holding no certificate, or a certificate that is not a CA;
- an own certificate that peers would refuse (expired, wrong CA, missing
  clientAuth/serverAuth, no identity SAN).

How the credentials become QUIC configurations (session tickets and 0-RTT
off, because a resumed session would skip the client certificate) is
`qrpc.transport.mtls`'s job.
"""

from __future__ import annotations

import datetime as dt
import os

from cryptography import x509
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from qrpc.errors import ConfigError, PeerAuthError
from qrpc.tls.identity import DEFAULT_DOMAIN, PeerIdentity, check_key_type, verify_peer
from qrpc.tls.pem import Path, PrivateKey, load_ca_file, load_certificates, load_private_key

__all__ = ["TLS"]


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
        "secret_seed",
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
        certs = load_certificates(cert)
        self.certificate = certs[0]
        self.chain = tuple(certs[1:])
        self.private_key = load_private_key(key, password)
        if _public_der(self.private_key) != self.certificate.public_key().public_bytes(
            Encoding.DER, PublicFormat.SubjectPublicKeyInfo
        ):
            raise ConfigError(
                self.key_path, f"key does not match the certificate in {self.cert_path}"
            )
        self.identity = self._check_own_certificate()
        self.secret_seed: bytes = self.private_key.private_bytes(
            Encoding.DER, PrivateFormat.PKCS8, NoEncryption()
        )
        "Key material the node derives its secrets from (stateless-reset tokens)."
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
        self.secret_seed = (
            private_key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
            if private_key is not None
            else os.urandom(32)
        )
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
                    ca_file=self.ca_path,
                )
        except PeerAuthError as exc:
            raise ConfigError(
                self.cert_path, f"peers would refuse this certificate: {exc}"
            ) from None
        if identity.node_id is None:
            raise ConfigError(
                self.cert_path,
                f"certificate has no identity SAN '<node-id>.node.{self.domain}' "
                "(issue one with `qrpc certs` or qrpc.tls.certs.issue_node_cert)",
            )
        return identity

    def __repr__(self) -> str:
        return f"TLS(node_id={self.node_id!r}, cert={self.cert_path!r}, ca={self.ca_path!r})"


def _public_der(key: PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
