"""pytest fixtures shipped with qrpc (loaded through the ``pytest11`` entry point).

- ``qrpc_pki``: a session-wide `qrpc.testing.TestPKI` in a temporary directory.
"""

from __future__ import annotations

import pytest

from qrpc.testing import TestPKI


@pytest.fixture(scope="session")
def qrpc_pki(tmp_path_factory: pytest.TempPathFactory) -> TestPKI:
    """A throw-away CA; call ``qrpc_pki.node_tls()`` for node credentials."""
    return TestPKI(tmp_path_factory.mktemp("qrpc-pki"))
