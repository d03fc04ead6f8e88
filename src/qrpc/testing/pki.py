"""Throw-away certificates for tests.

- `TestPKI`: a CA in a directory, issuing node certificates and `qrpc.TLS`
  objects for them;
- `refused_tls`: credentials peers will refuse (foreign CA, expired, wrong
  key usage, or no certificate at all), built without the checks `TLS`
  normally applies, to test refusal paths.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Final

from qrpc.ids import new_node_id
from qrpc.tls.certs import Issued, issue_ca, issue_node_cert, new_ca_name, write_pem
from qrpc.tls.credentials import TLS
from qrpc.tls.identity import DEFAULT_DOMAIN

__all__ = ["TestPKI", "refused_tls"]

_counter: Final = itertools.count()


class TestPKI:
    """A CA and the node certificates it issued, as PEM files under `directory`.

    Args:
        directory: where to write the files.
        domain: trust domain of the identity SANs.
        name: the CA's common name (default: a unique one, so two test CAs
            never share an issuer name).
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self, directory: Path, *, domain: str = DEFAULT_DOMAIN, name: str | None = None
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.domain = domain
        self.ca = issue_ca(new_ca_name("qrpc test CA") if name is None else name)
        self.ca_path = self.directory / f"ca-{next(_counter)}.crt"
        write_pem(self.ca, self.ca_path)

    def issue(self, node_id: str | None = None, **options: Any) -> Issued:
        """Issue a node certificate (options as `qrpc.tls.certs.issue_node_cert`)."""
        options.setdefault("domain", self.domain)
        return issue_node_cert(self.ca, node_id, **options)

    def write(self, issued: Issued, *, password: bytes | None = None) -> tuple[Path, Path]:
        """Write a certificate and key; return their paths."""
        stem = self.directory / f"{issued.node_id or 'cert'}-{next(_counter)}"
        cert_path, key_path = stem.with_suffix(".crt"), stem.with_suffix(".key")
        write_pem(issued, cert_path, key_path, password=password)
        return cert_path, key_path

    def node_tls(self, node_id: str | None = None, **options: Any) -> TLS:
        """Issue a node certificate and return checked `TLS` credentials for it."""
        cert_path, key_path = self.write(self.issue(node_id, **options))
        return TLS(self.ca_path, cert_path, key_path, domain=self.domain)


def refused_tls(trust_pki: TestPKI, issued: Issued | None, node_id: str | None = None) -> TLS:
    """Credentials that trust `trust_pki`'s CA but present `issued` unchecked.

    `issued` may come from another CA, be expired or lack clientAuth; with
    None, the node presents no certificate at all.  Use these to dial a node
    and check that it refuses.
    """
    node_id = node_id or (issued.node_id if issued is not None else None) or new_node_id()
    return TLS._unchecked(
        trust=(trust_pki.ca.cert,),
        certificate=issued.cert if issued is not None else None,
        private_key=issued.key if issued is not None else None,
        node_id=node_id,
        domain=trust_pki.domain,
    )
