"""Discovery: ``qrpc_discover_peers`` plugins and DNS SRV records feed peers to a running node.

The SRV tests run a DNS server on 127.0.0.1 (dnspython messages over a real
UDP socket) whose records the test changes while the node runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

import qrpc
from qrpc.hooks.view import NodeView
from tests.conftest import NodeFactory, eventually

FAST = qrpc.Limits(discovery_interval=0.2, connect_timeout=0.5)
SERVICE = "_qrpc._udp.app.test."


class FakeDns(asyncio.DatagramProtocol):
    """Answers queries from `records` ((name, type) -> rdata texts); NXDOMAIN otherwise."""

    def __init__(self) -> None:
        self.records: dict[tuple[str, str], list[str]] = {}
        self.transport: asyncio.DatagramTransport | None = None
        self.queries = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.queries += 1
        query = dns.message.from_wire(data)
        response = dns.message.make_response(query)
        question = query.question[0]
        kind = dns.rdatatype.to_text(question.rdtype)
        texts = self.records.get((question.name.to_text(), kind))
        if texts:
            response.answer.append(dns.rrset.from_text(question.name, 5, "IN", kind, *texts))
        else:
            response.set_rcode(dns.rcode.NXDOMAIN)
        if self.transport is not None:
            self.transport.sendto(response.to_wire(), addr)


@pytest.fixture
async def fake_dns() -> AsyncIterator[tuple[FakeDns, int]]:
    loop = asyncio.get_running_loop()
    transport, server = await loop.create_datagram_endpoint(FakeDns, local_addr=("127.0.0.1", 0))
    try:
        yield server, transport.get_extra_info("sockname")[1]
    finally:
        transport.close()


async def test_a_peer_whose_srv_record_appears_later_is_connected(
    make_node: NodeFactory, fake_dns: tuple[FakeDns, int]
) -> None:
    server, dns_port = fake_dns
    target = await make_node()
    srv = qrpc.SrvDiscovery(SERVICE, nameservers=["127.0.0.1"], port=dns_port, timeout=0.5)
    dialer = await make_node(plugins=[srv], limits=FAST)
    await eventually(lambda: server.queries >= 2)  # rounds that find nothing: NXDOMAIN
    assert dialer.peers() == []  # is transient, the next round asks again
    server.records[(SERVICE, "SRV")] = [f"0 0 {target.address[1]} node-1.app.test."]
    server.records[("node-1.app.test.", "A")] = ["127.0.0.1"]
    loop = asyncio.get_running_loop()
    appeared = loop.time()
    await dialer.wait_for_peer(target.id, timeout=FAST.discovery_interval + 1.0)
    assert loop.time() - appeared <= FAST.discovery_interval + 1.0
    assert [s.address for s in dialer.dial_states()] == [
        qrpc.PeerAddress("127.0.0.1", target.address[1])
    ]


async def test_a_target_without_address_records_is_dialed_by_name(
    make_node: NodeFactory, fake_dns: tuple[FakeDns, int]
) -> None:
    server, dns_port = fake_dns
    target = await make_node()
    server.records[(SERVICE, "SRV")] = [f"0 0 {target.address[1]} localhost."]
    srv = qrpc.SrvDiscovery(SERVICE, nameservers=["127.0.0.1"], port=dns_port, timeout=0.5)
    dialer = await make_node(plugins=[srv], limits=FAST)
    await dialer.wait_for_peer(target.id, timeout=3.0)  # the system resolver knows localhost
    assert [s.address.host for s in dialer.dial_states()] == ["localhost"]


def test_srv_discovery_refuses_unusable_arguments() -> None:
    with pytest.raises(qrpc.ConfigError, match=r"SrvDiscovery\.name"):
        qrpc.SrvDiscovery("")
    with pytest.raises(qrpc.ConfigError, match=r"SrvDiscovery\.timeout"):
        qrpc.SrvDiscovery(SERVICE, timeout=0)


class Listing:
    """A discovery plugin returning whatever the test puts in `peers`."""

    def __init__(self, result: Any = None, *, delay: float = 0.0, error: bool = False) -> None:
        self.result = result
        self.delay = delay
        self.error = error
        self.calls = 0

    @qrpc.hookimpl
    async def qrpc_discover_peers(self, node: NodeView) -> Any:
        self.calls += 1
        if self.error:
            raise RuntimeError("discovery backend down")
        await asyncio.sleep(self.delay)
        return self.result


async def test_a_raising_a_slow_and_a_lying_plugin_do_not_stop_a_good_one(
    make_node: NodeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    target = await make_node()
    good = Listing([qrpc.PeerAddress(*target.address)])
    bad = [Listing(error=True), Listing(delay=5.0), Listing(["127.0.0.1:1"])]
    with caplog.at_level(logging.WARNING):
        dialer = await make_node(plugins=[*bad, good], limits=FAST)
        await dialer.wait_for_peer(target.id, timeout=2.0)
    assert "discovery backend down" in caplog.text
    assert "took over 0.2 s" in caplog.text
    assert "something other than PeerAddress" in caplog.text
    assert len(dialer.dial_states()) == 1


async def test_a_plugin_cannot_make_the_node_dial_more_than_its_peer_limit(
    make_node: NodeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    flood = Listing([qrpc.PeerAddress("127.0.0.1", port) for port in range(20000, 20100)])
    limits = qrpc.Limits(discovery_interval=0.2, connect_timeout=0.5, max_peers=3)
    with caplog.at_level(logging.WARNING):
        dialer = await make_node(plugins=[flood], limits=limits)
        for _ in range(50):
            if flood.calls >= 2:
                break
            await asyncio.sleep(0.05)
    assert flood.calls >= 2
    assert len(dialer.dial_states()) == 3
    assert caplog.text.count("not dialing more") == 1


async def test_without_a_discovery_plugin_there_is_no_discovery_task(
    make_node: NodeFactory,
) -> None:
    await make_node(limits=FAST)
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "qrpc-discovery"]
