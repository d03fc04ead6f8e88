"""qrpc: typed peer-to-peer messaging over QUIC with mutual TLS.

Quick start::

    registry = qrpc.Registry()
    registry.register(1, Ping)
    node = qrpc.Node(registry, tls=qrpc.TLS(ca="ca.crt", cert="a.crt", key="a.key"),
                     peers=[qrpc.Peer("127.0.0.1", 20001)])

    @node.handler(1)
    async def on_ping(ctx: qrpc.Context, msg: Ping) -> None: ...

    async with node:
        peer_id = await node.wait_for_peer(timeout=5)
        await node.send(peer_id, Ping("hello"))
"""

from qrpc.app import App as App, NodeSettings as NodeSettings
from qrpc.codes import ErrorCode as ErrorCode, RemoteErrorCode as RemoteErrorCode
from qrpc.config import (
    Limits as Limits,
    Peer as Peer,
    PeerAddress as PeerAddress,
    QuicSettings as QuicSettings,
)
from qrpc.errors import (
    AddressError as AddressError,
    ConfigError as ConfigError,
    ConnectError as ConnectError,
    ConnectionLimitReached as ConnectionLimitReached,
    ConnectionRefused as ConnectionRefused,
    ConnectTimeout as ConnectTimeout,
    DuplicateLink as DuplicateLink,
    HandshakeError as HandshakeError,
    HeaderError as HeaderError,
    IncompatiblePeer as IncompatiblePeer,
    MessageEncodeError as MessageEncodeError,
    MessageTooLarge as MessageTooLarge,
    NoCommonCodec as NoCommonCodec,
    NodeClosed as NodeClosed,
    PeerAuthError as PeerAuthError,
    PeerDisconnected as PeerDisconnected,
    PeerDraining as PeerDraining,
    PeerIdMismatch as PeerIdMismatch,
    PeerNotFound as PeerNotFound,
    PeerWaitTimeout as PeerWaitTimeout,
    ProtocolError as ProtocolError,
    QrpcError as QrpcError,
    RegistryError as RegistryError,
    RemoteError as RemoteError,
    RequestLimitReached as RequestLimitReached,
    RequestTimeout as RequestTimeout,
    SchemaMismatch as SchemaMismatch,
    SelfConnection as SelfConnection,
)
from qrpc.hooks.specs import hookimpl as hookimpl, hookspec as hookspec
from qrpc.hooks.srv import SrvDiscovery as SrvDiscovery
from qrpc.hooks.tracer import (
    BaseTracer as BaseTracer,
    TraceEvent as TraceEvent,
    TraceKind as TraceKind,
    Tracer as Tracer,
)
from qrpc.ids import new_node_id as new_node_id
from qrpc.node import Node as Node
from qrpc.policy import Backoff as Backoff, FailureKind as FailureKind
from qrpc.registry import Registry as Registry
from qrpc.runtime.context import Context as Context
from qrpc.runtime.dialer import DialState as DialState
from qrpc.runtime.events import (
    Connected as Connected,
    ConnectFailed as ConnectFailed,
    Connecting as Connecting,
    Disconnected as Disconnected,
    EventsDropped as EventsDropped,
    EventStream as EventStream,
    NodeEvent as NodeEvent,
    PeerFlapping as PeerFlapping,
)
from qrpc.runtime.handlers import HandlerSpec as HandlerSpec
from qrpc.runtime.link import LinkStats as LinkStats
from qrpc.runtime.services import Health as Health, HealthCheck as HealthCheck
from qrpc.runtime.stats import NodeStats as NodeStats
from qrpc.tls.credentials import TLS as TLS
from qrpc.tls.identity import PeerIdentity as PeerIdentity

__version__ = "0.1.0"

__all__ = [
    "TLS",
    "AddressError",
    "App",
    "Backoff",
    "BaseTracer",
    "ConfigError",
    "ConnectError",
    "ConnectFailed",
    "ConnectTimeout",
    "Connected",
    "Connecting",
    "ConnectionLimitReached",
    "ConnectionRefused",
    "Context",
    "DialState",
    "Disconnected",
    "DuplicateLink",
    "ErrorCode",
    "EventStream",
    "EventsDropped",
    "FailureKind",
    "HandlerSpec",
    "HandshakeError",
    "Health",
    "HealthCheck",
    "HeaderError",
    "IncompatiblePeer",
    "Limits",
    "LinkStats",
    "MessageEncodeError",
    "MessageTooLarge",
    "Node",
    "NoCommonCodec",
    "NodeClosed",
    "NodeEvent",
    "NodeStats",
    "NodeSettings",
    "Peer",
    "PeerAddress",
    "PeerAuthError",
    "PeerDisconnected",
    "PeerDraining",
    "PeerFlapping",
    "PeerIdMismatch",
    "PeerIdentity",
    "PeerNotFound",
    "PeerWaitTimeout",
    "ProtocolError",
    "QrpcError",
    "QuicSettings",
    "Registry",
    "RegistryError",
    "RemoteError",
    "RemoteErrorCode",
    "RequestLimitReached",
    "RequestTimeout",
    "SchemaMismatch",
    "SelfConnection",
    "SrvDiscovery",
    "TraceEvent",
    "TraceKind",
    "Tracer",
    "__version__",
    "hookimpl",
    "hookspec",
    "new_node_id",
]

for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type) and _obj.__module__.startswith("qrpc."):
        _obj.__module__ = "qrpc"
del _name, _obj
