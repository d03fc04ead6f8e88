"""Private keys of every type the certificate tests need, generated once per session."""

from __future__ import annotations

import functools
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

AnyKey = (
    ec.EllipticCurvePrivateKey
    | rsa.RSAPrivateKey
    | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
    | dsa.DSAPrivateKey
)

_FACTORIES: dict[str, Callable[[], AnyKey]] = {
    "p256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "p384": lambda: ec.generate_private_key(ec.SECP384R1()),
    "p521": lambda: ec.generate_private_key(ec.SECP521R1()),
    "secp256k1": lambda: ec.generate_private_key(ec.SECP256K1()),
    "ed25519": ed25519.Ed25519PrivateKey.generate,
    "ed448": ed448.Ed448PrivateKey.generate,
    "rsa1024": lambda: rsa.generate_private_key(public_exponent=65537, key_size=1024),
    "rsa2048": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
    "dsa": lambda: dsa.generate_private_key(key_size=2048),
}


@functools.cache
def private_key(kind: str) -> AnyKey:
    """A private key of `kind`, generated once per test session (RSA and DSA are slow)."""
    return _FACTORIES[kind]()
