"""The schema check at connect: `Node(schema=...)` refuses a peer whose registry
disagrees on a cmd_id both use, with the cmd_id in the error."""

from __future__ import annotations

import msgspec
import pytest

import qrpc
from qrpc.testing import TestPKI
from tests.conftest import NodeFactory, next_event


class PingV1(msgspec.Struct):
    text: str


class PingText(msgspec.Struct):
    text: bytes  # the same field, another type


class PingTraced(msgspec.Struct):
    text: str
    trace: str = ""  # an added optional field


class Other(msgspec.Struct):
    n: int


class PingRequired(msgspec.Struct):
    text: str
    trace: str  # an added required field


def _registry(ping: type[msgspec.Struct], *, extra: bool = False) -> qrpc.Registry:
    registry = qrpc.Registry()
    registry.register(1, ping)
    if extra:
        registry.register(9, Other)  # only on this side: never compared
    return registry


async def _dial(
    make_node: NodeFactory, local: qrpc.Registry, remote: qrpc.Registry, **modes: str
) -> qrpc.NodeEvent:
    acceptor = await make_node(reg=remote, schema=modes.get("acceptor", "compatible"))
    dialer = await make_node(reg=local, schema=modes.get("dialer", "compatible"))
    events = dialer.events()
    dialer.add_peer(qrpc.PeerAddress(*acceptor.address, expected_id=acceptor.id))
    return await next_event(events, qrpc.Connected | qrpc.ConnectFailed, timeout=10)  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["strict", "compatible"])
async def test_a_changed_field_type_is_refused_naming_the_cmd_id(
    make_node: NodeFactory, mode: str
) -> None:
    event = await _dial(
        make_node, _registry(PingV1), _registry(PingText), acceptor=mode, dialer=mode
    )
    assert isinstance(event, qrpc.ConnectFailed)
    assert event.kind is qrpc.FailureKind.PERMANENT
    assert isinstance(event.error, qrpc.SchemaMismatch)
    assert event.error.cmd_ids == (1,)
    assert "cmd_id 1" in event.detail
    assert event.retry_in is None


async def test_compatible_admits_an_added_optional_field(make_node: NodeFactory) -> None:
    event = await _dial(make_node, _registry(PingV1, extra=True), _registry(PingTraced))
    assert isinstance(event, qrpc.Connected)


async def test_strict_refuses_an_added_optional_field(make_node: NodeFactory) -> None:
    event = await _dial(
        make_node, _registry(PingV1), _registry(PingTraced), acceptor="strict", dialer="strict"
    )
    assert isinstance(event, qrpc.ConnectFailed)
    assert isinstance(event.error, qrpc.SchemaMismatch)


async def test_compatible_refuses_an_added_required_field(make_node: NodeFactory) -> None:
    event = await _dial(make_node, _registry(PingV1), _registry(PingRequired))
    assert isinstance(event, qrpc.ConnectFailed)
    assert isinstance(event.error, qrpc.SchemaMismatch)
    assert "trace" in event.detail


async def test_the_dialer_checks_even_when_the_acceptor_does_not(make_node: NodeFactory) -> None:
    event = await _dial(
        make_node, _registry(PingV1), _registry(PingText), acceptor="off", dialer="strict"
    )
    assert isinstance(event, qrpc.ConnectFailed)
    assert isinstance(event.error, qrpc.SchemaMismatch)
    assert event.error.cmd_ids == (1,)


async def test_off_on_both_sides_connects_anyway(make_node: NodeFactory) -> None:
    event = await _dial(
        make_node, _registry(PingV1), _registry(PingText), acceptor="off", dialer="off"
    )
    assert isinstance(event, qrpc.Connected)


def test_a_bad_mode_is_a_config_error(qrpc_pki: TestPKI) -> None:
    with pytest.raises(qrpc.ConfigError, match=r"Node\.schema"):
        qrpc.Node(_registry(PingV1), tls=qrpc_pki.node_tls(), schema="loose")  # type: ignore[arg-type]
