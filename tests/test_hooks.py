"""Every hookspec, exercised through real nodes (one test_hook_<name> per spec),
plus plugin discovery and the checks that keep the plugin surface documented."""

from __future__ import annotations

import asyncio
import inspect
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import msgspec
import pytest
from cryptography import x509

import qrpc
from qrpc.hooks import manager, specs
from qrpc.testing import RecordingTracer, TestPKI, refused_tls
from qrpc.tls.identity import PeerIdentity
from qrpc_codecs import Codec
from qrpc_codecs.msgpack import codec as msgpack_codec
from tests.conftest import NodeFactory, Ping, Pong, connect, eventually, next_event
from tests.plugins.recorder import Recorder

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted(name for name in dir(specs.HookSpecs) if name.startswith("qrpc_"))


def test_every_hookspec_has_a_test() -> None:
    tests = {name for name in globals() if name.startswith("test_hook_")}
    missing = [spec for spec in SPECS if f"test_hook_{spec}" not in tests]
    assert not missing, f"hookspecs without a test: {missing}"


def test_every_hookspec_is_documented_with_its_arguments() -> None:
    doc = (ROOT / "docs" / "plugins.md").read_text()
    for spec in SPECS:
        assert f"`{spec}(" in doc, f"{spec} missing from docs/plugins.md"
        params = [
            p for p in inspect.signature(getattr(specs.HookSpecs, spec)).parameters if p != "self"
        ]
        signature = re.search(rf"`{spec}\(([^)]*)\)", doc)
        assert signature is not None
        assert [p.strip() for p in signature.group(1).split(",") if p.strip()] == params, spec


def test_every_hookspec_has_a_docstring() -> None:
    for spec in SPECS:
        assert (getattr(specs.HookSpecs, spec).__doc__ or "").strip(), spec


async def test_hook_qrpc_node_started(make_node: NodeFactory) -> None:
    recorder = Recorder()
    node = await make_node(plugins=[recorder])
    assert recorder.calls == [("started", node.id)]


async def test_hook_qrpc_node_stopped(make_node: NodeFactory) -> None:
    recorder = Recorder()
    node = await make_node(plugins=[recorder])
    await node.close()
    assert recorder.calls == [("started", node.id), ("stopped", node.id)]


async def test_hook_qrpc_peer_connected(make_node: NodeFactory) -> None:
    recorder = Recorder()
    a = await make_node(plugins=[recorder])
    b = await make_node()
    await connect(b, a)
    assert ("connected", a.id, b.id) in recorder.calls


async def test_hook_qrpc_peer_disconnected(make_node: NodeFactory) -> None:
    recorder = Recorder()
    a = await make_node(plugins=[recorder])
    b = await make_node()
    await connect(b, a)
    await b.close()
    await eventually(lambda: ("disconnected", a.id, b.id, 0) in recorder.calls)


async def test_hook_qrpc_link_tracer(make_node: NodeFactory) -> None:
    tracer = RecordingTracer()
    a = await make_node(plugins=[tracer])
    b = await make_node()

    @a.handler(1)
    async def on_ping(ctx: qrpc.Context, msg: Ping) -> Pong:
        return Pong(msg.text)

    await connect(b, a)
    await b.send(a.id, Ping("one-way"))
    assert await b.request(a.id, Ping("rpc"), reply=Pong, timeout=5) == Pong("rpc")
    await a.send(b.id, Ping("out"))
    await a.broadcast(Ping("all"))
    assert [(r.kind, r.peer_id, r.cmd_id, r.message) for r in tracer.records] == [
        ("receive", b.id, 1, Ping("one-way")),
        ("handler-enter", b.id, 1, Ping("one-way")),
        ("handler-exit", b.id, 1, Ping("one-way")),
        ("receive", b.id, 1, Ping("rpc")),
        ("handler-enter", b.id, 1, Ping("rpc")),
        ("handler-exit", b.id, 1, Ping("rpc")),
        ("send", b.id, 2, Pong("rpc")),
        ("send", b.id, 1, Ping("out")),
        ("send", b.id, 1, Ping("all")),
    ]


async def test_hook_qrpc_authorize_peer(make_node: NodeFactory) -> None:
    seen: list[tuple[str, bool]] = []
    handled: list[Ping] = []

    class DenyAll:
        @qrpc.hookimpl
        async def qrpc_authorize_peer(self, identity: PeerIdentity, dialed: bool) -> bool:
            await asyncio.sleep(0)  # decisions may need IO
            seen.append((identity.node_id or "", dialed))
            return False

    acceptor = await make_node(plugins=[DenyAll()])

    @acceptor.handler(1)
    async def on_ping(ctx: qrpc.Context, msg: Ping) -> None:
        handled.append(msg)

    dialer = await make_node()
    events = dialer.events()
    dialer.add_peer(qrpc.Peer(*acceptor.address))
    event = await next_event(events, qrpc.ConnectFailed)
    assert isinstance(event.error, qrpc.PeerAuthError)
    assert event.kind is qrpc.FailureKind.PERMANENT
    assert seen == [(dialer.id, False)]
    assert acceptor.peers() == []
    assert dialer.peers() == []
    assert handled == []


async def test_hook_qrpc_authorize_peer_none_and_true_approve(make_node: NodeFactory) -> None:
    class Neutral:
        @qrpc.hookimpl
        def qrpc_authorize_peer(self) -> None:
            return None

    class Yes:
        @qrpc.hookimpl
        def qrpc_authorize_peer(self) -> bool:
            return True

    a = await make_node(plugins=[Neutral(), Yes()])
    b = await make_node(plugins=[Neutral()])
    await connect(b, a)
    assert (a.peers(), b.peers()) == ([b.id], [a.id])


async def test_hook_qrpc_certified_node_id(make_node: NodeFactory, qrpc_pki: TestPKI) -> None:
    """A plugin admits certificates whose identity is not in the SAN convention."""
    # b's certificate names it in another domain; its node ID comes from a table.
    legacy_id = qrpc.new_node_id()
    issued = qrpc_pki.issue(legacy_id, domain="legacy.example")
    table = {f"{legacy_id}.node.legacy.example": legacy_id}

    class MapLegacy:
        @qrpc.hookimpl
        def qrpc_certified_node_id(self, identity: PeerIdentity) -> str | None:
            for san in identity.sans:
                if san in table:
                    return table[san]
            return None

    a = await make_node(plugins=[MapLegacy()])
    b = await make_node(tls=refused_tls(qrpc_pki, issued, node_id=legacy_id), plugins=[MapLegacy()])
    await connect(b, a)
    assert a.identity(legacy_id).node_id is None  # no SAN in qrpc's domain
    assert isinstance(a.identity(legacy_id).certificate, x509.Certificate)

    # Without the plugin the same certificate is refused at HELLO.
    c = await make_node()
    c_dialer = await make_node(tls=refused_tls(qrpc_pki, issued, node_id=legacy_id))
    events = c_dialer.events()
    c_dialer.add_peer(qrpc.Peer(*c.address))
    event = await next_event(events, qrpc.ConnectFailed)
    assert isinstance(event.error, qrpc.PeerIdMismatch)
    assert c.peers() == []


async def test_hook_qrpc_next_reconnect_delay(make_node: NodeFactory) -> None:
    calls: list[int] = []

    class Once:
        @qrpc.hookimpl
        def qrpc_next_reconnect_delay(self, attempt: int, error: BaseException) -> bool:
            calls.append(attempt)
            return False

    a = await make_node(
        peers=[qrpc.Peer("127.0.0.1", 9)],
        plugins=[Once()],
        limits=qrpc.Limits(connect_timeout=0.2),
    )
    await eventually(lambda: a.dial_states()[0].stopped)
    assert calls == [1]


async def test_hook_qrpc_discover_peers(make_node: NodeFactory) -> None:
    target = await make_node()

    class Listing:
        @qrpc.hookimpl
        async def qrpc_discover_peers(self, node: Any) -> list[qrpc.PeerAddress]:
            return [qrpc.PeerAddress(*target.address)]

    dialer = await make_node(plugins=[Listing()], limits=qrpc.Limits(discovery_interval=0.2))
    await dialer.wait_for_peer(target.id, timeout=5)


async def test_hook_qrpc_authorize_introspection(make_node: NodeFactory) -> None:
    from qrpc.runtime.services import PeersQuery, PeersReport

    asked: list[str] = []

    class Approve:
        @qrpc.hookimpl
        def qrpc_authorize_introspection(self, peer_id: str) -> bool:
            asked.append(peer_id)
            return True

    b = await make_node(introspection=True, plugins=[Approve()])
    a = await make_node()
    await connect(a, b)
    report = await a.request(b.id, PeersQuery(), reply=PeersReport, timeout=5)
    assert [p.peer_id for p in report.peers] == [a.id]
    assert asked == [a.id]


class Upper(msgspec.Struct):
    text: str


class ShoutCodec:
    """A codec that upper-cases every str field on the wire (visible in tests)."""

    name = "shout"

    def encode(self, value: Any) -> bytes:
        return msgpack_codec.encode(value)

    def decoder(self, type_: type) -> Any:
        inner: Any = msgpack_codec.decoder(type_)

        def decode(data: bytes) -> Any:
            value = inner(data)
            return type(value)(value.text.upper()) if hasattr(value, "text") else value

        return decode


async def test_hook_qrpc_register_codecs(make_node: NodeFactory, monkeypatch) -> None:
    import qrpc_codecs

    monkeypatch.setattr(qrpc_codecs, "_registry", dict(qrpc_codecs._registry))
    codec = ShoutCodec()
    assert isinstance(codec, Codec)

    class Codecs:
        @qrpc.hookimpl
        def qrpc_register_codecs(self) -> list[Codec]:
            return [codec]

    a = await make_node(plugins=[Codecs()], codecs=("shout",))
    b = await make_node(plugins=[Codecs()], codecs=("shout", "msgpack"))
    got: list[Ping] = []

    @a.handler(1)
    async def on_ping(ctx: qrpc.Context, msg: Ping) -> None:
        got.append(msg)

    await connect(b, a)
    await b.send(a.id, Ping("quiet"))
    await eventually(lambda: bool(got))
    assert got == [Ping("QUIET")]


# -- discovery -----------------------------------------------------------------------


def _entry_point(name: str, value: Any, *, fails: Exception | None = None) -> Any:
    def load() -> Any:
        if fails is not None:
            raise fails
        return value

    return SimpleNamespace(
        name=name, value=f"fake:{name}", dist=SimpleNamespace(name="qrpc-fake"), load=load
    )


def _patch_entry_points(monkeypatch: pytest.MonkeyPatch, *eps: Any) -> None:
    monkeypatch.setattr(manager, "entry_points", lambda group: list(eps) if group == "qrpc" else [])


def test_entry_point_plugins_are_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = Recorder()
    _patch_entry_points(monkeypatch, _entry_point("recorder", recorder))
    pm = manager.get_plugin_manager()
    assert pm.is_registered(recorder)
    assert pm.get_name(recorder) == "qrpc-fake:recorder"


def test_autoload_can_be_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = Recorder()
    _patch_entry_points(monkeypatch, _entry_point("recorder", recorder))
    assert not manager.get_plugin_manager(autoload=False).is_registered(recorder)
    monkeypatch.setenv("QRPC_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert not manager.get_plugin_manager().is_registered(recorder)


def test_broken_entry_point_names_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    _patch_entry_points(monkeypatch, _entry_point("broken", None, fails=ImportError("no module x")))
    with pytest.raises(qrpc.ConfigError, match=r"entry point 'broken'.*qrpc-fake.*no module x"):
        manager.get_plugin_manager()


def test_class_instead_of_instance_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    _patch_entry_points(monkeypatch, _entry_point("klass", Recorder))
    with pytest.raises(qrpc.ConfigError, match="is a class"):
        manager.get_plugin_manager()


def test_misspelt_hook_fails_at_start() -> None:
    class Typo:
        @qrpc.hookimpl
        def qrpc_node_startd(self, node: qrpc.Node) -> None:  # missing "e"
            pass

    with pytest.raises(qrpc.ConfigError, match="qrpc_node_startd"):
        manager.get_plugin_manager([Typo()], autoload=False)


def test_unknown_argument_in_hookimpl_fails_at_start() -> None:
    class BadArgs:
        @qrpc.hookimpl
        def qrpc_node_started(self, node: qrpc.Node, flavour: str) -> None:
            pass

    with pytest.raises(qrpc.ConfigError, match="flavour"):
        manager.get_plugin_manager([BadArgs()], autoload=False)


async def test_a_raising_auth_hook_rejects_the_peer(make_node: NodeFactory) -> None:
    class Broken:
        @qrpc.hookimpl
        async def qrpc_authorize_peer(self) -> bool:
            raise RuntimeError("allowlist service down")

    acceptor = await make_node(plugins=[Broken()])
    dialer = await make_node()
    events = dialer.events()
    dialer.add_peer(qrpc.Peer(*acceptor.address))
    event = await next_event(events, qrpc.ConnectFailed)
    assert isinstance(event.error, qrpc.PeerAuthError)
    assert acceptor.peers() == []


async def test_a_raising_reconnect_hook_falls_back_to_the_builtin_policy(
    make_node: NodeFactory,
) -> None:
    class Broken:
        @qrpc.hookimpl
        def qrpc_next_reconnect_delay(self) -> float:
            raise RuntimeError("bug in a policy plugin")

    a = await make_node(
        peers=[qrpc.Peer("127.0.0.1", 9)],
        plugins=[Broken()],
        limits=qrpc.Limits(connect_timeout=0.2),
        backoff=qrpc.Backoff(base=0.1, jitter=0),
    )
    events = a.events()
    first = await next_event(events, qrpc.ConnectFailed)
    second = await next_event(events, qrpc.ConnectFailed)
    assert (first.retry_in, second.retry_in) == (0.1, 0.2)
