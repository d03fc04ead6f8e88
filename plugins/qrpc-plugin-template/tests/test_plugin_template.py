"""qrpc-plugin-template on real nodes, with qrpc's test kit (`qrpc.testing`).

``qrpc_network`` (a fixture of qrpc's pytest plugin) starts nodes on
127.0.0.1 with throw-away certificates, links them through fault proxies
and closes everything at teardown -- failing the test if anything is left.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

import msgspec
import pytest
import qrpc_plugin_template
from qrpc_plugin_template import LOGGER_NAME, LinkAudit, code_name

import qrpc
from qrpc.testing import HookRecorder, NetworkFactory, entry_point_plugin

TIMEOUT = 5.0  # seconds any single wait may take


class Note(msgspec.Struct):
    text: str


@pytest.fixture
def registry() -> qrpc.Registry:
    reg = qrpc.Registry()
    reg.register(1, Note)
    return reg


@pytest.fixture
def audit() -> LinkAudit:
    """A fresh plugin instance per test (the entry point's `plugin` is shared)."""
    return LinkAudit()


@pytest.fixture
def audit_log(caplog: pytest.LogCaptureFixture) -> Callable[[], list[str]]:
    """Capture the ``qrpc.audit`` logger at INFO; call the result for its lines so far."""
    caplog.set_level(logging.INFO, logger=LOGGER_NAME)

    def lines() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == LOGGER_NAME]

    return lines


DOWN = re.compile(
    r"^node (?P<node>\S+): link to (?P<peer>\S+) down after (?P<lasted>\d+\.\d{3}) s: "
    r"code (?P<code>\S+), reason '(?P<reason>.*)'$"
)


def parse_down(line: str) -> dict[str, str]:
    found = DOWN.match(line)
    assert found is not None, f"not a link-down line: {line!r}"
    return found.groupdict()


def test_the_entry_point_is_the_plugin_instance() -> None:
    assert entry_point_plugin("plugin-template") is qrpc_plugin_template.plugin
    assert isinstance(qrpc_plugin_template.plugin, LinkAudit)


async def test_connect_and_unresponsive_peer_are_logged(
    qrpc_network: NetworkFactory,
    registry: qrpc.Registry,
    audit: LinkAudit,
    audit_log: Callable[[], list[str]],
) -> None:
    net = qrpc_network(registry)
    a = await net.node(plugins=[audit])
    b = await net.node()
    await net.link(a, b, timeout=TIMEOUT)
    [up] = audit_log()
    fingerprint = a.identity(b.id).fingerprint
    assert up.startswith(f"node {a.id}: link to {b.id} up (certificate sha256:{fingerprint}, ")
    assert f"{b.id}.node.qrpc" in up  # the identity SAN
    assert set(audit.links(a.id)) == {b.id}

    net.partition(a, b)
    await net.wait_unlinked(a, b, timeout=TIMEOUT)
    [_, down] = audit_log()
    fields = parse_down(down)
    assert (fields["node"], fields["peer"], fields["code"]) == (a.id, b.id, "PEER_UNRESPONSIVE")
    assert float(fields["lasted"]) > 0
    assert audit.links(a.id) == {}


async def test_hook_recorder_sees_the_hooks_run_for_the_peer(
    qrpc_network: NetworkFactory, registry: qrpc.Registry, audit: LinkAudit
) -> None:
    net = qrpc_network(registry)
    a = await net.node(plugins=[audit])
    b = await net.node()
    with HookRecorder(a) as hooks:
        await net.link(a, b, timeout=TIMEOUT)
        connected = hooks.assert_called("qrpc_peer_connected", peer_id=b.id)
        assert connected.error is None  # our impl did not raise
        assert connected.kwargs["identity"].node_id == b.id
        hooks.assert_not_called("qrpc_peer_disconnected")
        await b.close()
        gone = await hooks.wait_for("qrpc_peer_disconnected", peer_id=b.id, timeout=TIMEOUT)
        assert gone.error is None
        assert gone.kwargs["code"] == qrpc.ErrorCode.NO_ERROR
    assert audit.links(a.id) == {}


async def test_a_stopped_node_is_forgotten(
    qrpc_network: NetworkFactory, registry: qrpc.Registry, audit: LinkAudit
) -> None:
    net = qrpc_network(registry)
    a, b = await net.nodes(2, timeout=TIMEOUT, plugins=[audit])  # one instance serves both nodes
    assert audit.nodes == {a.id, b.id}
    assert set(audit.links(a.id)) == {b.id}
    assert set(audit.links(b.id)) == {a.id}

    await a.close()
    assert audit.nodes == {b.id}
    assert audit.links(a.id) == {}
    await net.wait_unlinked(a, b, timeout=TIMEOUT)
    assert audit.nodes == {b.id}
    assert audit.links(b.id) == {}


async def test_a_graceful_close_logs_no_error_on_both_sides(
    qrpc_network: NetworkFactory,
    registry: qrpc.Registry,
    audit: LinkAudit,
    audit_log: Callable[[], list[str]],
) -> None:
    net = qrpc_network(registry)
    a, b = await net.nodes(2, timeout=TIMEOUT, plugins=[audit])
    await b.close()
    await net.wait_unlinked(a, b, timeout=TIMEOUT)
    downs = {
        (f["node"], f["peer"]): f
        for f in map(parse_down, [line for line in audit_log() if " down after " in line])
    }
    assert set(downs) == {(a.id, b.id), (b.id, a.id)}
    assert {f["code"] for f in downs.values()} == {"NO_ERROR"}


async def test_the_installed_plugin_is_autoloaded(
    qrpc_network: NetworkFactory, registry: qrpc.Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("QRPC_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    net = qrpc_network(registry)
    node = await net.node(autoload_plugins=True)
    plugin = qrpc_plugin_template.plugin
    assert node.plugin_manager.get_plugin("qrpc-plugin-template:plugin-template") is plugin
    assert node.id in plugin.nodes
    await node.close()
    assert node.id not in plugin.nodes


async def test_the_installed_plugin_logs_only_when_asked_to(
    qrpc_network: NetworkFactory,
    registry: qrpc.Registry,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.delenv("QRPC_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    monkeypatch.delenv(qrpc_plugin_template.ENV_ENABLE, raising=False)
    plugin = qrpc_plugin_template.plugin
    assert plugin.plugin_status().startswith("inert: set QRPC_AUDIT=1")
    net = qrpc_network(registry)
    with caplog.at_level(logging.INFO, qrpc_plugin_template.LOGGER_NAME):
        a, b = await net.nodes(2, autoload_plugins=True)
        assert b.id in plugin.links(a.id)  # tracked, not logged
        assert not [r for r in caplog.records if r.name == qrpc_plugin_template.LOGGER_NAME]
        monkeypatch.setenv(qrpc_plugin_template.ENV_ENABLE, "1")
        assert plugin.plugin_status().startswith("active")
        await net.restart(b)
        await net.wait_linked(a, b, timeout=TIMEOUT)
    assert [r for r in caplog.records if " up " in r.getMessage()]


async def test_unknown_codes_and_untracked_links_do_not_raise(
    qrpc_network: NetworkFactory,
    registry: qrpc.Registry,
    audit: LinkAudit,
    audit_log: Callable[[], list[str]],
) -> None:
    net = qrpc_network(registry)
    node = await net.node()
    peer_id = qrpc.new_node_id()
    # A link the audit never saw come up, with a code qrpc does not define.
    audit.qrpc_peer_disconnected(node=node, peer_id=peer_id, code=0x7F, reason="odd")
    assert audit_log() == [
        f"node {node.id}: link to {peer_id} down after an unknown time: code 0x7f, reason 'odd'"
    ]
    assert code_name(0) == "NO_ERROR"
    assert code_name(qrpc.ErrorCode.AUTH_REVOKED) == "AUTH_REVOKED"
