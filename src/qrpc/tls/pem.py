"""Reading PEM files eagerly, with `ConfigError`s that name the file and the reason.

aioquic loads certificates lazily and reports mistakes late or not at all:
a missing CA file, for one, surfaces only as a failed handshake.  These
functions read and parse everything at once instead.
"""

from __future__ import annotations

import os

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from qrpc.errors import ConfigError

__all__ = ["Path", "PrivateKey", "load_ca_file", "load_certificates", "load_private_key"]

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
Path = str | os.PathLike[str]


def load_ca_file(path: Path) -> tuple[x509.Certificate, ...]:
    """Load trusted CA certificates from a PEM file.

    Raises:
        ConfigError: the file is missing or garbled, holds no certificate, or
            holds a certificate that is not a CA.
    """
    certs = load_certificates(path)
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


def load_certificates(path: Path) -> list[x509.Certificate]:
    """Load every certificate of a PEM file, in file order.

    Raises:
        ConfigError: the file is missing, empty or holds no valid PEM certificate.
    """
    data = _read(path)
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise ConfigError(path, "no PEM certificate found (expected '-----BEGIN CERTIFICATE-----')")
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise ConfigError(path, f"garbled PEM certificate: {exc}") from None


def load_private_key(path: Path, password: str | bytes | None) -> PrivateKey:
    """Load a PEM private key of a type qrpc can sign with.

    Raises:
        ConfigError: the file is missing or garbled, the password is missing
            or wrong, or the key type is not P-256, P-384, Ed25519 or RSA >= 2048.
    """
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
