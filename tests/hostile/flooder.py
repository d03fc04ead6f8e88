"""A flood from one source, in a process of its own so it does not share the node's CPU.

    python tests/hostile/flooder.py HOST PORT SECONDS RATE SEED

Sends RATE datagrams per second for SECONDS: half Initial-shaped noise that never
decrypts, half real ClientHellos (the first flight of fresh aioquic clients), then
prints ``sent <count>``.
"""

from __future__ import annotations

import random
import socket
import sys
import time

from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection


def _noise(rng: random.Random) -> bytes:
    payload = 1252 - 26
    return (
        bytes([0xC0 | rng.randrange(4)])
        + (1).to_bytes(4, "big")
        + bytes([8])
        + rng.randbytes(8)
        + bytes([8])
        + rng.randbytes(8)
        + b"\x00"
        + (0x4000 | payload).to_bytes(2, "big")
        + rng.randbytes(payload)
    )


def _client_hellos(target: tuple[str, int], count: int) -> list[bytes]:
    flights: list[bytes] = []
    for _ in range(count):
        quic = QuicConnection(
            configuration=QuicConfiguration(is_client=True, alpn_protocols=["qrpc/1"])
        )
        quic.connect(target, now=time.monotonic())
        flights.extend(d for d, _ in quic.datagrams_to_send(now=time.monotonic()))
    return flights


def main(host: str, port: int, seconds: float, rate: int, seed: int) -> None:
    rng = random.Random(seed)
    hellos = _client_hellos((host, port), 300)
    sent = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        start = time.monotonic()
        tick = 0.01
        per_tick = max(1, int(rate * tick))
        for step in range(int(seconds / tick)):
            for index in range(per_tick):
                datagram = hellos[(sent // 2) % len(hellos)] if index % 2 else _noise(rng)
                try:
                    sock.sendto(datagram, (host, port))
                    sent += 1
                except BlockingIOError:
                    pass
            delay = start + (step + 1) * tick - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    print("sent", sent, flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
