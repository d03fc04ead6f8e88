"""Two nodes dialing each other at the same moment keep exactly one link.

The tie-break (qrpc.policy.resolve_duplicate) must pick the same link on both
sides, before any message is sent on the other, so nothing is duplicated or lost.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

import qrpc
from qrpc.testing import TestPKI
from qrpc.transport.connection import Connection
from tests.conftest import Count, eventually

ROUNDS = 100
MESSAGES = 30


def _live_links(node: qrpc.Node) -> list[Connection]:
    return [c for c in node.endpoint.connections if c.promoted and not c.closed]


async def _round(pki: TestPKI, reg: qrpc.Registry, expected_ids: bool) -> None:
    a = qrpc.Node(reg, tls=pki.node_tls(), autoload_plugins=False)
    b = qrpc.Node(reg, tls=pki.node_tls(), autoload_plugins=False)
    got: dict[str, list[int]] = {a.id: [], b.id: []}
    for node in (a, b):

        def install(node: qrpc.Node) -> None:
            @node.handler(3)
            async def on_count(ctx: qrpc.Context, msg: Count) -> None:
                got[node.id].append(msg.seq)

        install(node)
    async with a, b:
        a.add_peer(qrpc.Peer(*b.address, expected_id=b.id if expected_ids else None))
        b.add_peer(qrpc.Peer(*a.address, expected_id=a.id if expected_ids else None))

        async def talk(src: qrpc.Node, dst: qrpc.Node) -> None:
            await src.wait_for_peer(dst.id, timeout=10)
            for seq in range(MESSAGES):
                await src.send(dst.id, Count(seq))

        await asyncio.gather(talk(a, b), talk(b, a))
        await eventually(lambda: len(got[a.id]) >= MESSAGES and len(got[b.id]) >= MESSAGES)
        assert got[a.id] == list(range(MESSAGES)), got[a.id]
        assert got[b.id] == list(range(MESSAGES)), got[b.id]
        assert a.peers() == [b.id]
        assert b.peers() == [a.id]
        links_a, links_b = _live_links(a), _live_links(b)
        assert len(links_a) == 1, links_a
        assert len(links_b) == 1, links_b
        # The same physical link on both sides: dialed by one, accepted by the other.
        # (Which one depends on timing: the lower ID's dial wins only when both dials
        # reach HELLO together; a dial that finds the peer already registered stops.)
        assert links_a[0].is_client != links_b[0].is_client


async def test_simultaneous_dial_leaves_one_link_and_loses_nothing(
    qrpc_pki: TestPKI, registry: qrpc.Registry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="qrpc.node")
    for round_ in range(ROUNDS):
        await _round(qrpc_pki, registry, expected_ids=round_ % 2 == 0)
    # The race really happened: duplicate links were refused along the way.
    duplicates = [r for r in caplog.records if "DUPLICATE_LINK" in r.getMessage()]
    assert len(duplicates) >= ROUNDS // 2, len(duplicates)
