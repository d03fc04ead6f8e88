"""`UdpProxy` on real sockets: faults follow the seed, each direction its own."""

from __future__ import annotations

import asyncio
import socket

import pytest

from qrpc.testing import Impairment, UdpProxy
from tests.conftest import eventually

COUNT = 300


class _Sink(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.got: list[bytes] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.got.append(data)
        assert self.transport is not None
        self.transport.sendto(b"echo " + data, addr)  # downstream traffic too


async def _fates(seed: int, impairment: Impairment) -> tuple[list[bytes], list[bytes]]:
    """Send COUNT numbered datagrams through a proxy, one at a time; return what
    reached the target and what came back."""
    loop = asyncio.get_running_loop()
    sink = _Sink()
    target, _ = await loop.create_datagram_endpoint(lambda: sink, local_addr=("127.0.0.1", 0))
    proxy = UdpProxy(target.get_extra_info("sockname")[:2], seed=seed, both=impairment)
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.setblocking(False)
    back: list[bytes] = []

    def drain() -> bool:
        while True:
            try:
                back.append(client.recv(100))
            except BlockingIOError:
                return len(back) >= proxy.downstream_stats.forwarded

    try:
        client.connect(await proxy.start())
        for n in range(COUNT):
            client.send(b"%05d" % n)
            await asyncio.sleep(0.001)  # one in flight: the order of fates is the order sent
            drain()
        await eventually(lambda: len(sink.got) >= proxy.upstream_stats.forwarded, timeout=5)
        await eventually(drain, timeout=5)
        return sorted(sink.got), sorted(back)
    finally:
        client.close()
        proxy.close()
        target.close()


async def test_the_same_seed_gives_the_same_faults() -> None:
    lossy = Impairment(loss=0.3, duplicate=0.1)
    first, second, other = await _fates(7, lossy), await _fates(7, lossy), await _fates(8, lossy)
    assert first == second
    assert first != other
    reached = first[0]
    assert 0.5 * COUNT < len(set(reached)) < 0.9 * COUNT  # the loss did happen
    assert len(reached) > len(set(reached))  # and so did duplication


def test_impairments_are_checked() -> None:
    with pytest.raises(ValueError, match=r"loss must be in 0\.\.1"):
        Impairment(loss=1.5)
    with pytest.raises(ValueError, match="delay must be >= 0"):
        Impairment(delay=-1)
