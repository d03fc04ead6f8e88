"""`Plugins`: the one place the runtime calls hooks, each call guarded.

- Observer hooks (`node_started`, `peer_connected`, ...) are called after
  the state change they report is complete; an impl that raises is logged
  with its traceback and ignored, so a plugin bug cannot leave the node
  half-updated.  They and tracer factories are called one impl at a time
  (pluggy stops a call at the first impl that raises): one plugin's bug
  never hides the event from the others.
- Decision hooks fail safe: a raising auth or certified-ID hook refuses the
  peer; a raising reconnect policy falls back to the built-in one; a raising
  tracer factory leaves the link untraced by it.
- Every hook is called with keyword arguments and ``node`` as a read-only
  `NodeView`.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import pluggy

from qrpc.config import PeerAddress
from qrpc.hooks.tracer import Tracer, adapt
from qrpc.hooks.view import NodeView
from qrpc.policy import FailureKind

if TYPE_CHECKING:
    from qrpc.tls.identity import PeerIdentity
    from qrpc.wire.hello import Hello
    from qrpc_codecs import Codec

__all__ = ["Plugins"]

log = logging.getLogger("qrpc.plugins")


class Plugins:
    """The node's plugin manager, called the way the runtime needs it.

    Args:
        pm: the plugin manager (`qrpc.hooks.manager.get_plugin_manager`).
        node: what hooks receive as ``node``.
    """

    __slots__ = ("_node", "pm")

    def __init__(self, pm: pluggy.PluginManager, node: NodeView) -> None:
        self.pm = pm
        self._node = node

    # -- observers: after the fact, logged and ignored if they raise ----------

    def node_started(self) -> None:
        """The node is listening."""
        self._observe("qrpc_node_started")

    def node_stopped(self) -> None:
        """The node has shut down."""
        self._observe("qrpc_node_stopped")

    def peer_connected(self, peer_id: str, identity: PeerIdentity) -> None:
        """`peer_id` was registered."""
        self._observe("qrpc_peer_connected", peer_id=peer_id, identity=identity)

    def peer_disconnected(self, peer_id: str, code: int, reason: str) -> None:
        """`peer_id` was unregistered."""
        self._observe("qrpc_peer_disconnected", peer_id=peer_id, code=code, reason=reason)

    def _observe(self, name: str, **kwargs: Any) -> None:
        self._each(name, kwargs, "ignored")

    def _each(self, name: str, kwargs: dict[str, Any], outcome: str) -> list[Any]:
        """Call each impl of hook `name` on its own (wrappers around each), in
        pluggy's order; return the non-None results of those that did not raise
        (those are logged, followed by `outcome`)."""
        plain = [i for i in getattr(self.pm.hook, name).get_hookimpls() if not _wraps(i)]
        results = []
        for impl in reversed(plain):  # pluggy calls the last-registered impl first
            others = [other.plugin for other in plain if other is not impl]
            try:
                result = self.pm.subset_hook_caller(name, others)(node=self._node, **kwargs)
            except Exception:
                log.exception(
                    "the %s hook of plugin %s raised; %s", name, impl.plugin_name, outcome
                )
                continue
            results += result
        return results

    # -- decisions: fail safe --------------------------------------------------

    def certified_node_id(self, identity: PeerIdentity) -> str | None:
        """The node ID `identity` proves, or None (refuse) -- also when a hook raises."""
        try:
            result = self.pm.hook.qrpc_certified_node_id(node=self._node, identity=identity)
        except Exception:
            log.exception("a qrpc_certified_node_id hook raised; refusing %s", identity.subject)
            return None
        return result if isinstance(result, str) else None

    async def authorize(self, identity: PeerIdentity, hello: Hello, *, dialed: bool) -> bool:
        """Run every auth hook; any False -- or any exception -- rejects."""
        try:
            results = self.pm.hook.qrpc_authorize_peer(
                node=self._node, identity=identity, hello=hello, dialed=dialed
            )
        except Exception:
            log.exception("an auth hook raised; rejecting peer %s", hello.node_id)
            return False
        pending = [r for r in results if inspect.isawaitable(r)]
        values = [r for r in results if not inspect.isawaitable(r)]
        values += await asyncio.gather(*pending, return_exceptions=True)  # all awaited, always
        for value in values:
            if isinstance(value, BaseException):
                log.error("an auth hook raised %r; rejecting peer %s", value, hello.node_id)
                return False
        return all(value is not False for value in values)

    def authorize_introspection(self, peer_id: str, identity: PeerIdentity) -> bool | None:
        """The introspection hooks' verdict on `peer_id`: False if any impl says
        False or raises, else True if any says True, else None (no opinion)."""
        try:
            results = self.pm.hook.qrpc_authorize_introspection(
                node=self._node, peer_id=peer_id, identity=identity
            )
        except Exception:
            log.exception("an introspection hook raised; refusing peer %s", peer_id)
            return False
        if any(result is False for result in results):
            return False
        return True if any(result is True for result in results) else None

    def next_reconnect_delay(
        self, peer: PeerAddress, attempt: int, error: BaseException, kind: FailureKind
    ) -> float | None:
        """Seconds before the next dial attempt, or None to stop dialing."""
        try:
            decision = self.pm.hook.qrpc_next_reconnect_delay(
                node=self._node, peer=peer, attempt=attempt, error=error, kind=kind
            )
        except Exception:
            log.exception("a reconnect-policy hook raised; using the built-in policy")
            decision = False if kind is FailureKind.PERMANENT else self._node.backoff.delay(attempt)
        if decision is False or decision is None:
            return None
        return max(0.0, float(decision))

    def link_tracers(self, peer_id: str, identity: PeerIdentity) -> list[Tracer]:
        """The tracers plugins want for a new link (a factory that raises adds none)."""
        kwargs = {"peer_id": peer_id, "identity": identity}
        tracers = []
        for result in self._each("qrpc_link_tracer", kwargs, f"no tracer for {peer_id}"):
            try:
                tracers.append(adapt(result))
            except TypeError as exc:
                log.error("a qrpc_link_tracer hook returned an unusable tracer: %s", exc)
        return tracers

    def implements(self, name: str) -> bool:
        """Whether any plugin implements hook `name`."""
        return bool(getattr(self.pm.hook, name).get_hookimpls())

    async def discover_peers(self, timeout: float) -> list[PeerAddress]:
        """Ask every ``qrpc_discover_peers`` impl for peers (`timeout` seconds each,
        async ones concurrently); one that raises, times out or returns something
        other than `PeerAddress` items contributes nothing this round (logged)."""
        results = self._each("qrpc_discover_peers", {}, "no peers from it this round")
        found: list[PeerAddress] = []
        pending = [r for r in results if inspect.isawaitable(r)]
        answers = await asyncio.gather(
            *(asyncio.wait_for(r, timeout) for r in pending), return_exceptions=True
        )
        for answer in [r for r in results if not inspect.isawaitable(r)] + answers:
            if isinstance(answer, TimeoutError):
                log.warning("a qrpc_discover_peers hook took over %.1f s; skipped", timeout)
            elif isinstance(answer, Exception):
                log.error("a qrpc_discover_peers hook raised", exc_info=answer)
            elif isinstance(answer, BaseException):
                raise answer
            elif answer is not None:
                found += _addresses(answer)
        return found

    def codecs(self) -> Iterable[Codec]:
        """Codecs that plugins bundle (``qrpc_register_codecs``); errors propagate
        to the node's constructor, which reports them as `ConfigError`."""
        for result in self.pm.hook.qrpc_register_codecs(node=self._node):
            yield from result or ()


def _wraps(impl: pluggy.HookImpl) -> bool:
    return bool(impl.wrapper or impl.hookwrapper)


def _addresses(answer: object) -> list[PeerAddress]:
    try:
        items = list(answer)  # type: ignore[call-overload]
    except TypeError:
        items = [answer]
    good = [item for item in items if isinstance(item, PeerAddress)]
    if len(good) != len(items):
        log.error("a qrpc_discover_peers hook returned something other than PeerAddress items")
        return []
    return good
