"""`UdpSocket.send_batch`: runs of datagrams to one address leave in one system call
(UDP GSO, ``UDP_SEGMENT``) where the OS has it, one by one otherwise -- the same
datagrams, in the same order, either way."""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterator

import pytest

from qrpc.transport.udp import EndpointStats, UdpSocket, gso_supported


@pytest.fixture
def receiver() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(2)
    yield sock
    sock.close()


async def _sender(stats: EndpointStats, *, gso: bool | None = None) -> UdpSocket:
    sock = await UdpSocket.bind("127.0.0.1", 0)
    udp = UdpSocket(sock, stats, on_datagram=lambda *_: None, on_batch=lambda: None)
    if gso is not None:
        udp.gso = gso
    return udp


def _received(receiver: socket.socket, count: int) -> list[bytes]:
    return [receiver.recv(65536) for _ in range(count)]


def _datagrams(receiver: socket.socket) -> list[tuple[bytes, tuple[str, int]]]:
    where = receiver.getsockname()
    sizes = [1200] * 10 + [300]  # a burst: equal sizes, a shorter last one
    return [(bytes([index]) * size, where) for index, size in enumerate(sizes)]


async def test_a_burst_to_one_address_is_one_system_call(receiver: socket.socket) -> None:
    if not gso_supported():
        pytest.skip("this OS has no UDP GSO")
    stats = EndpointStats()
    udp = await _sender(stats)
    try:
        batch = _datagrams(receiver)
        udp.send_batch(batch)
        assert _received(receiver, len(batch)) == [data for data, _ in batch]
        assert (stats.datagrams_out, stats.send_calls) == (len(batch), 1)
    finally:
        udp.close(flush=False)


async def test_without_gso_the_same_datagrams_leave_one_by_one(receiver: socket.socket) -> None:
    stats = EndpointStats()
    udp = await _sender(stats, gso=False)
    try:
        batch = _datagrams(receiver)
        udp.send_batch(batch)
        assert _received(receiver, len(batch)) == [data for data, _ in batch]
        assert (stats.datagrams_out, stats.send_calls) == (len(batch), len(batch))
    finally:
        udp.close(flush=False)


async def test_runs_break_at_a_new_address_a_larger_datagram_and_the_segment_limit(
    receiver: socket.socket,
) -> None:
    if not gso_supported():
        pytest.skip("this OS has no UDP GSO")
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    other.bind(("127.0.0.1", 0))
    other.settimeout(2)
    stats = EndpointStats()
    udp = await _sender(stats)
    try:
        here, there = receiver.getsockname(), other.getsockname()
        batch = [(b"a" * 1000, here), (b"b" * 1000, here), (b"c" * 1000, there)]
        batch += [(b"d" * 500, here), (b"e" * 900, here)]  # larger than the run's size
        batch += [(b"f" * 100, here)] * 70  # more than one call's segments
        udp.send_batch(batch)
        to_here = [data for data, addr in batch if addr == here]
        assert _received(receiver, len(to_here)) == to_here
        assert _received(other, 1) == [b"c" * 1000]
        assert stats.send_calls == 6  # ab, c, d, e+f (a shorter one ends a run), f*64, f*5
    finally:
        udp.close(flush=False)
        other.close()


async def test_a_device_without_gso_turns_it_off_and_loses_nothing(
    receiver: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    stats = EndpointStats()
    udp = await _sender(stats, gso=True)
    real = udp._sock  # the socket's sendmsg refuses segmentation, as a device without it does

    class NoGso:
        def __getattr__(self, name: str) -> object:
            return getattr(real, name)

        def sendmsg(self, *args: object) -> int:
            raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(udp, "_sock", NoGso())
    try:
        batch = _datagrams(receiver)
        udp.send_batch(batch)
        assert _received(receiver, len(batch)) == [data for data, _ in batch]
        assert udp.gso is False
    finally:
        monkeypatch.setattr(udp, "_sock", real)
        udp.close(flush=False)
