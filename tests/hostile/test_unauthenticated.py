"""Senders without a certificate: junk datagrams, Initial-shaped noise, real ClientHellos
by the hundred.  None of it may lock legitimate peers out or grow memory beyond a bound."""

from __future__ import annotations

import asyncio
import random
import socket
import time
from pathlib import Path

import pytest
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection

import qrpc
from tests.conftest import NodeFactory, Ping, Pong, eventually

RSS_BOUND = 50 * 1024 * 1024  # bytes a flood may add to the node's process


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _long_header(first: int, version: int, payload: int, rng: random.Random) -> bytes:
    """A long-header packet that parses: 8-byte connection IDs, no token (Initial),
    a 2-byte Length and `payload` random bytes."""
    token = b"\x00" if first & 0x30 == 0 else b""
    return (
        bytes([first])
        + version.to_bytes(4, "big")
        + bytes([8])
        + rng.randbytes(8)
        + bytes([8])
        + rng.randbytes(8)
        + token
        + (0x4000 | payload).to_bytes(2, "big")
        + rng.randbytes(payload)
    )


def _initial_noise(rng: random.Random, count: int) -> list[bytes]:
    """Initial packets (QUIC v1) of 1,252 bytes with random connection IDs and garbage
    payloads: they parse, but never decrypt."""
    return [_long_header(0xC0 | rng.randrange(4), 1, 1252 - 26, rng) for _ in range(count)]


def _unknown_version(size: int, rng: random.Random) -> bytes:
    """A `size`-byte long-header packet of a version no one speaks (0x1a2a3a4a)."""
    if size < 26:  # the shortest that parses: no connection IDs, a 0-Length 0-RTT packet
        return (
            bytes([0xD0]) + (0x1A2A3A4A).to_bytes(4, "big") + b"\x00\x00\x00" + b"\x00" * (size - 8)
        )
    return _long_header(0xD0, 0x1A2A3A4A, size - 25, rng)


def _client_hellos(target: tuple[str, int], count: int) -> list[bytes]:
    """The first flight of `count` real aioquic clients (a valid, decryptable ClientHello)."""
    flights: list[bytes] = []
    for _ in range(count):
        config = QuicConfiguration(is_client=True, alpn_protocols=["qrpc/1"])
        quic = QuicConnection(configuration=config)
        quic.connect(target, now=time.monotonic())
        flights.extend(datagram for datagram, _ in quic.datagrams_to_send(now=time.monotonic()))
    return flights


async def _blast(
    target: tuple[str, int], datagrams: list[bytes], source: str = "127.0.0.1"
) -> None:
    """Send `datagrams` from one socket, a few at a time so the loop keeps turning."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        sock.setblocking(False)
        for index, datagram in enumerate(datagrams):
            try:
                sock.sendto(datagram, target)
            except BlockingIOError:
                await asyncio.sleep(0.001)
            if index % 16 == 15:
                await asyncio.sleep(0)


async def _connects_within(make_node: NodeFactory, node: qrpc.Node, seconds: float) -> float:
    """Dial `node` from a new node listening on 127.0.0.2 (another source address);
    return how long the link took."""
    peer = await make_node(listen=("127.0.0.2", 0))
    start = asyncio.get_running_loop().time()
    peer.add_peer(qrpc.Peer(*node.address, expected_id=node.id))
    await peer.wait_for_peer(node.id, timeout=seconds)
    return asyncio.get_running_loop().time() - start


async def test_initial_noise_does_not_lock_new_peers_out(make_node: NodeFactory) -> None:
    node = await make_node()
    before = _rss()
    await _blast(node.address, _initial_noise(random.Random(64), 64))
    await eventually(lambda: node.endpoint.stats.datagrams_in >= 64, timeout=5)
    assert await _connects_within(make_node, node, 1.0) < 1.0
    assert _rss() - before < RSS_BOUND


async def test_client_hellos_from_one_source_do_not_lock_other_sources_out(
    make_node: NodeFactory,
) -> None:
    node = await make_node()
    flights = _client_hellos(node.address, 500)
    before = _rss()
    await _blast(node.address, flights)
    await eventually(lambda: node.endpoint.stats.datagrams_in >= 400, timeout=10)
    assert await _connects_within(make_node, node, 1.0) < 1.0
    assert _rss() - before < RSS_BOUND


async def test_a_client_that_sends_one_initial_and_goes_silent_is_reaped_soon(
    make_node: NodeFactory,
) -> None:
    node = await make_node()  # handshake_timeout stays at its 10 s default
    await _blast(node.address, _client_hellos(node.address, 3))
    await eventually(lambda: node.endpoint.half_open == 3, timeout=5)
    start = asyncio.get_running_loop().time()
    await eventually(lambda: node.endpoint.half_open == 0, timeout=6)
    assert asyncio.get_running_loop().time() - start < 5.0


def _recv_all(sock: socket.socket, seconds: float) -> list[bytes]:
    sock.settimeout(seconds)
    got = []
    for _ in range(100_000):
        try:
            got.append(sock.recv(65536))
        except TimeoutError:
            return got
    return got


@pytest.mark.parametrize("size", [8, 100, 1199])
async def test_short_datagrams_of_an_unknown_version_get_no_answer(
    make_node: NodeFactory, size: int
) -> None:
    """RFC 9000 section 5.2.2: a Version Negotiation answer to less than 1,200 bytes
    would make the node an amplifier."""
    node = await make_node()
    probe = _unknown_version(size, random.Random(size))
    assert len(probe) == size
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect(node.address)
        sock.send(probe)
        answers = await asyncio.to_thread(_recv_all, sock, 0.3)
    assert answers == []


async def test_stateless_replies_are_rate_limited(make_node: NodeFactory) -> None:
    node = await make_node()
    probe = _unknown_version(1200, random.Random(1200))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect(node.address)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        for _ in range(2000):
            sock.send(probe)
            await asyncio.sleep(0)
        answers = await asyncio.to_thread(_recv_all, sock, 0.5)
    assert 0 < len(answers) <= 200, f"{len(answers)} Version Negotiation replies to one source"


async def test_a_legitimate_peer_keeps_its_latency_during_a_flood(make_node: NodeFactory) -> None:
    node = await make_node()

    @node.handler(1)
    async def on_ping(ctx: qrpc.Context, msg: Ping) -> Pong:
        return Pong(msg.text)

    peer = await make_node(listen=("127.0.0.2", 0))
    peer.add_peer(qrpc.Peer(*node.address, expected_id=node.id))
    await peer.wait_for_peer(node.id, timeout=5)
    rng = random.Random(7)
    junk = _initial_noise(rng, 1000) + _client_hellos(node.address, 200)
    rng.shuffle(junk)
    blasting = asyncio.create_task(_blast(node.address, junk))
    times = []
    for index in range(50):
        start = time.perf_counter()
        assert (await peer.request(node.id, Ping(str(index)), reply=Pong, timeout=5)).text == str(
            index
        )
        times.append(time.perf_counter() - start)
    await blasting
    times.sort()
    assert times[int(len(times) * 0.99) - 1] < 0.5
