"""pytest fixtures shipped with qrpc (loaded through the ``pytest11`` entry point).

- ``qrpc_pki``: a session-wide `qrpc.testing.TestPKI` in a temporary directory.
- ``qrpc_network``: call it with your registry to get a `qrpc.testing.Network`;
  at teardown every network is closed, and the test fails if a node, socket,
  proxy or qrpc task of theirs is left.  It is async: it needs pytest-asyncio
  (``asyncio_mode = "auto"``, or mark the test ``@pytest.mark.asyncio``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final

import pytest

from qrpc.registry import Registry
from qrpc.testing.network import Network, NetworkFactory
from qrpc.testing.pki import TestPKI

TEARDOWN_TIMEOUT: Final = 30.0
"Seconds teardown gives the networks to close (each node bounds its own shutdown)."


@pytest.fixture(scope="session")
def qrpc_pki(tmp_path_factory: pytest.TempPathFactory) -> TestPKI:
    """A throw-away CA; call ``qrpc_pki.node_tls()`` for node credentials."""
    return TestPKI(tmp_path_factory.mktemp("qrpc-pki"))


def _qrpc_tasks() -> set[asyncio.Task[object]]:
    return {t for t in asyncio.all_tasks() if t.get_name().startswith("qrpc-") and not t.done()}


@asynccontextmanager
async def _networks(pki: TestPKI) -> AsyncIterator[NetworkFactory]:
    before = _qrpc_tasks()
    networks: list[Network] = []

    def make(registry: Registry) -> Network:
        network = Network(registry, pki=pki)
        networks.append(network)
        return network

    yield make
    problems: list[str] = []
    try:
        async with asyncio.timeout(TEARDOWN_TIMEOUT):
            for network in networks:
                await network.close()
    except TimeoutError:
        problems.append(f"closing the networks took over {TEARDOWN_TIMEOUT} s")
    for network in networks:
        problems += network.leftovers()
    for _ in range(3):  # let cancelled tasks finish
        await asyncio.sleep(0)
    problems += [f"task {t.get_name()} is still running" for t in _qrpc_tasks() - before]
    if problems:
        pytest.fail("qrpc_network left behind:\n  " + "\n  ".join(problems), pytrace=False)


try:
    import pytest_asyncio
except ImportError:  # qrpc works without pytest-asyncio; only this fixture needs it

    @pytest.fixture(name="qrpc_network")
    def _qrpc_network_unavailable() -> NetworkFactory:
        """Needs pytest-asyncio (``pip install pytest-asyncio``)."""
        raise pytest.UsageError("the qrpc_network fixture needs pytest-asyncio: pip install it")

else:

    @pytest_asyncio.fixture
    async def qrpc_network(qrpc_pki: TestPKI) -> AsyncIterator[NetworkFactory]:
        """``net = qrpc_network(registry)``: a `Network` closed and checked at teardown."""
        async with _networks(qrpc_pki) as factory:
            yield factory
