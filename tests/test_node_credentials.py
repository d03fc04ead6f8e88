"""Links do not outlive the credentials that admitted them: a certificate that expires,
or a peer that an auth plugin stops admitting, ends its link."""

from __future__ import annotations

import asyncio
import datetime as dt

import qrpc
from qrpc.testing import TestPKI
from tests.conftest import NodeFactory, connect, next_event


class Denylist:
    """A test auth plugin: refuses the node IDs in `denied` (changed at run time)."""

    def __init__(self) -> None:
        self.denied: set[str] = set()

    @qrpc.hookimpl
    def qrpc_authorize_peer(self, identity: qrpc.PeerIdentity) -> bool:
        return identity.node_id not in self.denied


def _short_lived_tls(pki: TestPKI, seconds: float) -> qrpc.TLS:
    """Credentials whose certificate stops being valid `seconds` from now."""
    issued = pki.issue(not_after=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds))
    cert_path, key_path = pki.write(issued)
    return qrpc.TLS(pki.ca_path, cert_path, key_path, domain=pki.domain)


async def test_a_link_ends_when_the_peers_certificate_expires(
    make_node: NodeFactory, qrpc_pki: TestPKI
) -> None:
    a = await make_node()
    b = await make_node(tls=_short_lived_tls(qrpc_pki, 2.5))
    events = a.events()
    await connect(a, b)
    gone = await next_event(events, qrpc.Disconnected, timeout=6)
    assert gone.peer_id == b.id
    assert gone.code == qrpc.ErrorCode.CERTIFICATE_EXPIRED
    assert not a.is_connected(b.id)


async def test_reauthorize_closes_links_an_auth_hook_no_longer_admits(
    make_node: NodeFactory,
) -> None:
    deny = Denylist()
    a = await make_node(plugins=[deny])
    b = await make_node()
    c = await make_node()
    await connect(b, a)
    await connect(c, a)
    events = a.events()
    deny.denied.add(b.id)
    start = asyncio.get_running_loop().time()
    assert await a.reauthorize() == [b.id]
    gone = await next_event(events, qrpc.Disconnected, timeout=1)
    assert (gone.peer_id, gone.code) == (b.id, qrpc.ErrorCode.AUTH_REVOKED)
    assert asyncio.get_running_loop().time() - start < 1.0
    assert a.peers() == [c.id]
