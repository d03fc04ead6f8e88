"""``qrpc ping | call | peers | stats``: talk to a running node from the shell.

Each command starts a short-lived node with the given certificate
(``--ca --cert --key``, plugins not loaded), dials HOST:PORT, waits up to
``--timeout`` seconds for the link, asks, prints and closes.  A command-line
mistake exits 2; a node that cannot be reached, a refusal or an unanswered
request is one line on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

import msgspec

from qrpc.cli._common import UsageError
from qrpc.codes import RemoteErrorCode
from qrpc.config import PeerAddress
from qrpc.errors import ConfigError, QrpcError, RegistryError, RemoteError
from qrpc.node import Node
from qrpc.registry import Registry
from qrpc.runtime.events import Connected, ConnectFailed
from qrpc.runtime.link import LinkStats
from qrpc.runtime.services import (
    Health,
    HealthCheck,
    PeersQuery,
    PeersReport,
    StatsQuery,
    StatsReport,
)
from qrpc.targets import TargetError, load_target, registry_of
from qrpc.tls.credentials import TLS

__all__ = ["add_commands"]

FAILED: Final = 1  # exit status when the node cannot be reached or does not answer
Action = Callable[[Node, str, argparse.Namespace], Awaitable[int]]


class _Failure(Exception):
    """The node could not be reached or did not answer: one line, exit status 1."""


def add_commands(commands: Any) -> None:
    """Add ``ping``, ``call``, ``peers`` and ``stats`` to the ``qrpc`` parser."""
    ping = _command(commands, "ping", "ask a node whether it is alive (always answered)")
    ping.add_argument("--count", type=int, default=1, help="pings to send (default 1)")
    ping.add_argument("--interval", type=float, default=1.0, help="seconds between pings")
    ping.set_defaults(run=_runner(_ping, _ping_registry))
    call = _command(commands, "call", "send one request of the application and print the reply")
    call.add_argument("cmd_id", help="the request's cmd_id in the application's registry")
    call.add_argument("json", metavar="JSON", help='the request as JSON, e.g. \'{"text": "hi"}\'')
    call.add_argument("--app", required=True, metavar="TARGET", help="the app's registry")
    call.set_defaults(run=_runner(_call, _app_registry))
    for name, helptext in (
        ("peers", "list a node's live links (introspection must allow you)"),
        ("stats", "show a node's totals and links (introspection must allow you)"),
    ):
        sub = _command(commands, name, helptext)
        sub.add_argument("--json", action="store_true", help="print JSON instead of a table")
        sub.set_defaults(run=_runner(_peers if name == "peers" else _stats, _empty_registry))


def _command(commands: Any, name: str, helptext: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(name, help=helptext)
    parser.add_argument("address", metavar="HOST:PORT", help="the node to ask")
    parser.add_argument("--ca", required=True, help="CA certificate (PEM)")
    parser.add_argument("--cert", required=True, help="this client's node certificate (PEM)")
    parser.add_argument("--key", required=True, help="its private key (PEM)")
    parser.add_argument(
        "--timeout", type=float, default=5.0, help="seconds to connect, and per request"
    )
    return parser


def _runner(
    action: Action, registry: Callable[[argparse.Namespace], Registry]
) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        host, port = _address(args.address)
        if not args.timeout > 0:
            raise UsageError(f"--timeout must be positive, got {args.timeout}")
        try:
            tls = TLS(args.ca, args.cert, args.key)
        except ConfigError as exc:
            raise UsageError(f"{exc}; check --ca, --cert and --key") from None
        app = registry(args)  # mistakes in the request are found before dialing
        logging.getLogger("qrpc").addHandler(logging.NullHandler())  # one line, not a log
        try:
            return asyncio.run(_session(app, tls, host, port, args, action))
        except _Failure as exc:
            print(f"qrpc: {exc}", file=sys.stderr)
            return FAILED

    return run


def _address(text: str) -> tuple[str, int]:
    host, colon, port = text.rpartition(":")
    host = host.strip("[]")
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"{text!r} is not HOST:PORT; write it like 127.0.0.1:20001")
    return host, int(port)


def _empty_registry(args: argparse.Namespace) -> Registry:
    return Registry()


def _ping_registry(args: argparse.Namespace) -> Registry:
    if args.count < 1 or not args.interval >= 0:
        raise UsageError("--count must be at least 1 and --interval at least 0")
    return Registry()


def _app_registry(args: argparse.Namespace) -> Registry:
    try:
        registry = registry_of(load_target(args.app))
    except TargetError as exc:
        raise UsageError(str(exc)) from None
    try:
        cmd_id = int(args.cmd_id, 0)
        type_ = registry.type_of(cmd_id)
    except (ValueError, RegistryError):
        known = ", ".join(f"{i} ({t.__name__})" for i, t in registry) or "none"
        raise UsageError(
            f"cmd_id {args.cmd_id!r} is not in the registry of {args.app}; known: {known}"
        ) from None
    try:
        args.message = msgspec.json.decode(args.json.encode(), type=type_)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise UsageError(f"JSON for {type_.__name__} (cmd_id {cmd_id}): {exc}") from None
    return registry


async def _session(
    registry: Registry,
    tls: TLS,
    host: str,
    port: int,
    args: argparse.Namespace,
    action: Action,
) -> int:
    node = Node(
        registry,
        tls=tls,
        listen=("::" if ":" in host else "0.0.0.0", 0),
        peers=[PeerAddress(host, port)],
        codecs=("msgpack", "json"),
        autoload_plugins=False,
    )
    events = node.events()
    try:
        await node.start()
        peer_id = await _linked(events, f"{host}:{port}", args.timeout)
        return await action(node, peer_id, args)
    except RemoteError as exc:
        name = _code_name(exc.code)
        raise _Failure(f"{host}:{port} answered {name} ({exc.code}): {exc.text}") from None
    except QrpcError as exc:
        raise _Failure(f"{host}:{port}: {exc}") from None
    finally:
        await node.close()


async def _linked(events: Any, where: str, timeout: float) -> str:
    """The peer's ID once the link is up; `_Failure` naming the last cause otherwise."""
    failure: ConnectFailed | None = None
    try:
        async with asyncio.timeout(timeout):
            async for event in events:
                if isinstance(event, Connected):
                    return event.peer_id
                if isinstance(event, ConnectFailed):
                    failure = event
                    if event.retry_in is None:  # permanent: the dial loop stopped
                        break
    except TimeoutError:
        pass
    if failure is None:
        raise _Failure(f"cannot connect to {where}: no answer within {timeout:g} s")
    cause = " ".join(failure.detail.split())
    raise _Failure(f"cannot connect to {where}: {cause}")


async def _ping(node: Node, peer_id: str, args: argparse.Namespace) -> int:
    answered = 0
    for index in range(args.count):
        if index:
            await asyncio.sleep(args.interval)
        started = time.perf_counter()
        try:
            health = await node.request(peer_id, HealthCheck(), reply=Health, timeout=args.timeout)
        except QrpcError as exc:
            print(f"no reply from {peer_id}: {exc}", flush=True)
            continue
        answered += 1
        rtt = (time.perf_counter() - started) * 1000
        print(
            f"reply from {health.node_id}: time={rtt:.2f} ms protocol={health.protocol_version}"
            f" uptime={health.uptime:.0f}s peers={health.peers}",
            flush=True,
        )
    return 0 if answered == args.count else FAILED


async def _call(node: Node, peer_id: str, args: argparse.Namespace) -> int:
    reply = await node.request(peer_id, args.message, timeout=args.timeout)
    print(msgspec.json.encode(reply).decode())
    return 0


async def _peers(node: Node, peer_id: str, args: argparse.Namespace) -> int:
    report = await node.request(peer_id, PeersQuery(), reply=PeersReport, timeout=args.timeout)
    if args.json:
        print(msgspec.json.encode(report).decode())
    else:
        print("\n".join(_table(report.peers)))
    return 0


async def _stats(node: Node, peer_id: str, args: argparse.Namespace) -> int:
    report = await node.request(peer_id, StatsQuery(), reply=StatsReport, timeout=args.timeout)
    stats = report.stats
    if args.json:
        print(msgspec.json.encode(stats).decode())
        return 0
    print(f"node      {stats.node_id}")
    print(f"uptime    {stats.uptime:.1f} s")
    print(f"peers     {len(stats.peers)}")
    print(f"messages  {stats.messages_in} in, {stats.messages_out} out")
    print(f"bytes     {stats.bytes_in} in, {stats.bytes_out} out")
    print()
    print("\n".join(_table(stats.peers)))
    return 0


_COLUMNS: Final = (
    "PEER",
    "ADDRESS",
    "ROLE",
    "RTT_MS",
    "MSG_IN",
    "MSG_OUT",
    "BYTES_IN",
    "BYTES_OUT",
    "QUEUED",
    "CREDIT",
    "INBOUND",
    "DRAINING",
    "IDENTITY",
)


def _table(peers: Sequence[LinkStats]) -> list[str]:
    rows = [list(_COLUMNS)]
    for p in peers:
        rows.append(
            [
                p.peer_id,
                f"{p.remote_address[0]}:{p.remote_address[1]}",
                "dialed" if p.dialed else "accepted",
                "-" if p.rtt is None else f"{p.rtt * 1000:.2f}",
                *(str(n) for n in (p.messages_in, p.messages_out, p.bytes_in, p.bytes_out)),
                *(str(n) for n in (p.queued_bytes, p.send_credit, p.inbound_bytes)),
                "yes" if p.draining else "no",
                p.identity,
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def _code_name(code: int) -> str:
    try:
        return RemoteErrorCode(code).name
    except ValueError:
        return "error"
