"""Configuration values: bootstrap `PeerAddress`es, node `Limits` and `QuicSettings`.

Each is a frozen dataclass checked when it is constructed; a bad value
raises `ConfigError` naming the field (or file) and the reason.  Defaults
are documented in ``docs/configuration.md``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from typing import Final, Literal

from cryptography import x509

from qrpc.errors import ConfigError, RegistryError
from qrpc.ids import normalize_node_id
from qrpc.registry import Registry
from qrpc.schema import SchemaMode
from qrpc.tls.credentials import TLS
from qrpc.tls.pem import load_ca_file
from qrpc.wire.frames import HEADER_SIZE
from qrpc.wire.hello import MIN_WINDOW
from qrpc_codecs import Codec, CodecError, get_codec, register_codec

__all__ = [
    "MAX_DATAGRAM_SIZE",
    "Limits",
    "Peer",
    "PeerAddress",
    "QuicSettings",
    "check_listen",
    "check_node_id",
    "check_registry",
    "check_schema_mode",
    "check_peer",
    "check_peers",
    "resolve_codecs",
]

MiB: Final = 1024 * 1024
MAX_DATAGRAM_SIZE: Final = 16383
"""The largest QUIC packet aioquic builds correctly: it writes a frame's length in
two bytes, so a larger packet carries a corrupt length and the peer closes."""
_MAX_U32: Final = 0xFFFF_FFFF


@dataclass(frozen=True, slots=True)
class PeerAddress:
    """Where to reach a peer: an address this node dials and keeps dialing.

    Not to be confused with a peer's *identity* (`PeerIdentity`, what its
    certificate proves, e.g. ``ctx.identity``) or its *ID* (a string, as in
    `Node.peers()`).  `qrpc.Peer` is the same class under its first name.

    Args:
        host: host name or IP address (names are resolved at each attempt).
        port: UDP port.
        expected_id: the node ID the peer must prove; the dial fails
            permanently with `PeerIdMismatch` otherwise.  None: accept any
            node the CA vouches for and learn its ID.
        ca: a PEM CA file to verify this peer with, instead of the node's CA.
            Requires `expected_id`: a foreign CA can mint a certificate for
            any node ID, this node's own peers' included.
    """

    host: str
    port: int
    expected_id: str | None = None
    ca: str | os.PathLike[str] | None = None
    trust: tuple[x509.Certificate, ...] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if not isinstance(self.host, str) or not self.host.strip():
            raise ConfigError(
                "PeerAddress.host", f"must be a non-empty host name or address, got {self.host!r}"
            )
        if (
            isinstance(self.port, bool)
            or not isinstance(self.port, int)
            or not 1 <= self.port <= 65535
        ):
            raise ConfigError("PeerAddress.port", f"must be an int in 1..65535, got {self.port!r}")
        if self.expected_id is not None:
            try:
                object.__setattr__(self, "expected_id", normalize_node_id(self.expected_id))
            except ValueError as exc:
                raise ConfigError("PeerAddress.expected_id", str(exc)) from None
        if self.ca is not None:
            if self.expected_id is None:
                raise ConfigError(
                    "PeerAddress.ca",
                    "a per-peer CA needs expected_id: the foreign CA could otherwise "
                    "vouch for any node ID, including those of your own nodes",
                )
            object.__setattr__(self, "trust", load_ca_file(self.ca))

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}" + (f" ({self.expected_id})" if self.expected_id else "")


Peer = PeerAddress
"""The first name of `PeerAddress`, kept so existing code keeps working."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-node and per-peer limits.  Every field has a safe default.

    Args:
        max_message_size: largest encoded message, in bytes; bigger ones
            raise `MessageTooLarge` at the sender.  Also the largest frame
            this node accepts.
        inbound_window: per peer, bytes of received messages that may wait
            for (or be in) their handler; the peer's `send` waits beyond it.
        outbound_high_water: per peer, bytes of messages queued locally for
            credit before `send` waits.
        max_peers: live peers; HELLO from one more is refused with
            CONNECTION_LIMIT.
        max_half_open: accepted connections still in TLS or HELLO; further
            Initial packets are dropped until one completes.  From half of it
            on, new clients must first pass address validation (Retry).
        max_half_open_per_source: the same, from one source host: one flooding
            address cannot take every slot.
        handshake_timeout: seconds for TLS plus HELLO, either role.
        connect_timeout: seconds a dial waits for the first answer from the
            peer; a silent address fails after this rather than after
            `handshake_timeout`, so a restarted peer is redialed promptly.
        request_timeout: default seconds `request` waits for a reply.
        shutdown_timeout: seconds shutdown waits for queued messages to leave.
        drain_timeout: seconds `Node.drain` (and `serve()` on a signal) waits
            for requests in flight to finish before closing.
        max_concurrent_requests: requests this node may have outstanding in all.
        max_header_bytes: largest headers section of a received frame, in
            bytes (at most 65535); announced in HELLO, so senders check it.
        discovery_interval: seconds between two rounds of asking the
            discovery plugins (``qrpc_discover_peers``) for peers.
    """

    max_message_size: int = 4 * MiB
    inbound_window: int = 8 * MiB
    outbound_high_water: int = 1 * MiB
    max_peers: int = 1024
    max_half_open: int = 64
    max_half_open_per_source: int = 16
    handshake_timeout: float = 10.0
    connect_timeout: float = 2.0
    request_timeout: float = 30.0
    shutdown_timeout: float = 5.0
    drain_timeout: float = 10.0
    max_concurrent_requests: int = 65536
    max_header_bytes: int = 4096
    discovery_interval: float = 10.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "int":
                _check_int(f"Limits.{f.name}", value, 1, _MAX_U32)
            else:
                _check_seconds(f"Limits.{f.name}", value)
        if self.max_header_bytes > 0xFFFF:
            raise ConfigError("Limits.max_header_bytes", "must be at most 65535 bytes")
        if self.max_message_size < MIN_WINDOW:
            raise ConfigError("Limits.max_message_size", f"must be at least {MIN_WINDOW} bytes")
        if self.inbound_window < self.max_message_size + HEADER_SIZE:
            raise ConfigError(
                "Limits.inbound_window",
                f"must hold one maximum-size message ({self.max_message_size + HEADER_SIZE} bytes)",
            )


@dataclass(frozen=True, slots=True)
class QuicSettings:
    """QUIC knobs (see ``docs/performance.md`` for their measured effect).

    Args:
        max_datagram_size: largest UDP payload sent, in bytes, 1200 to
            16383 (aioquic writes frame lengths in two bytes).  With
            `path_mtu_discovery` it is the ceiling of the search; without, the
            size of every datagram.
        path_mtu_discovery: start at 1200 bytes, the size every QUIC path
            carries, and probe the path for larger datagrams up to
            `max_datagram_size` (loopback and jumbo-frame networks carry far
            more per packet); a size the path stops carrying is dropped again.
            Off: send `max_datagram_size` from the start (only where every
            hop carries it).
        max_data: QUIC connection flow-control window, in bytes.
        max_stream_data: QUIC per-stream flow-control window, in bytes.
        idle_timeout: seconds of silence after which a link is declared dead.
        keepalive_interval: a link that heard nothing from its peer for this
            many seconds gets a PING; None disables them (the link then dies
            after `idle_timeout` of application silence).  It is also how soon
            a restarted peer is noticed (it answers with a stateless reset).
        dead_peer_timeout: seconds without any datagram from the peer (PINGs
            included) after which the link is closed as PEER_UNRESPONSIVE and
            its dial loop redials; at most `idle_timeout` (a larger value acts
            as `idle_timeout`); None leaves it to `idle_timeout`.  Checked at
            every keep-alive interval, so it needs `keepalive_interval`.
        congestion_control: "reno" or "cubic".
        retry: validate client addresses with a Retry packet before keeping
            any state (recommended beyond loopback; costs one round trip).
        qlog_dir: debugging only: write one qlog file (JSON) per connection
            into this directory, created if missing.
        key_log_file: debugging only: append the TLS secrets of every
            connection to this file in SSLKEYLOGFILE format (Wireshark).
            Anyone who has the file can decrypt the traffic it covers.
    """

    max_datagram_size: int = MAX_DATAGRAM_SIZE
    path_mtu_discovery: bool = True
    max_data: int = 4 * MiB
    max_stream_data: int = 4 * MiB
    idle_timeout: float = 30.0
    keepalive_interval: float | None = 2.5
    dead_peer_timeout: float | None = 10.0
    congestion_control: Literal["reno", "cubic"] = "reno"
    retry: bool = False
    qlog_dir: str | os.PathLike[str] | None = None
    key_log_file: str | os.PathLike[str] | None = None

    def __post_init__(self) -> None:
        _check_int(
            "QuicSettings.max_datagram_size", self.max_datagram_size, 1200, MAX_DATAGRAM_SIZE
        )
        if not isinstance(self.path_mtu_discovery, bool):
            raise ConfigError(
                "QuicSettings.path_mtu_discovery",
                f"must be a bool, got {self.path_mtu_discovery!r}",
            )
        _check_int("QuicSettings.max_data", self.max_data, 64 * 1024, 2**62)
        _check_int("QuicSettings.max_stream_data", self.max_stream_data, 64 * 1024, 2**62)
        _check_seconds("QuicSettings.idle_timeout", self.idle_timeout)
        if self.keepalive_interval is not None:
            _check_seconds("QuicSettings.keepalive_interval", self.keepalive_interval)
            if self.keepalive_interval >= self.idle_timeout:
                raise ConfigError(
                    "QuicSettings.keepalive_interval", "must be shorter than idle_timeout"
                )
        if self.dead_peer_timeout is not None:
            _check_seconds("QuicSettings.dead_peer_timeout", self.dead_peer_timeout)
            keepalive = self.keepalive_interval
            if (
                keepalive is not None
                and self.dead_after is not None
                and self.dead_after <= keepalive
            ):
                raise ConfigError(
                    "QuicSettings.dead_peer_timeout",
                    f"must be longer than keepalive_interval ({keepalive} s), or None",
                )
        if self.congestion_control not in ("reno", "cubic"):
            raise ConfigError(
                "QuicSettings.congestion_control",
                f"must be 'reno' or 'cubic', got {self.congestion_control!r}",
            )
        if not isinstance(self.retry, bool):
            raise ConfigError("QuicSettings.retry", f"must be a bool, got {self.retry!r}")
        if self.qlog_dir is not None:
            object.__setattr__(self, "qlog_dir", _writable_dir(self.qlog_dir))
        if self.key_log_file is not None:
            object.__setattr__(self, "key_log_file", _writable_file(self.key_log_file))

    @property
    def dead_after(self) -> float | None:
        """The dead-peer timeout in effect: `dead_peer_timeout`, at most
        `idle_timeout`; None when it is off (or keep-alives are)."""
        if self.dead_peer_timeout is None or self.keepalive_interval is None:
            return None
        return min(self.dead_peer_timeout, self.idle_timeout)


def _writable_dir(path: object) -> str:
    name = "QuicSettings.qlog_dir"
    if not isinstance(path, str | os.PathLike):
        raise ConfigError(name, f"must be a directory path, got {path!r}")
    directory = os.fspath(path)
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise ConfigError(name, f"cannot create directory {directory!r}: {exc.strerror}") from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ConfigError(name, f"{directory!r} is not a writable directory")
    return str(directory)


def _writable_file(path: object) -> str:
    name = "QuicSettings.key_log_file"
    if not isinstance(path, str | os.PathLike):
        raise ConfigError(name, f"must be a file path, got {path!r}")
    file = str(os.fspath(path))
    parent = os.path.dirname(os.path.abspath(file))
    if os.path.isdir(file):
        raise ConfigError(name, f"{file!r} is a directory, not a file")
    if os.path.exists(file):
        if not os.access(file, os.W_OK):
            raise ConfigError(name, f"{file!r} is not writable")
    elif not os.path.isdir(parent) or not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(name, f"cannot create {file!r}: {parent!r} is not a writable directory")
    return file


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(name, f"must be an int in {low}..{high}, got {value!r}")


def _check_seconds(name: str, value: object) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ConfigError(name, f"must be a positive number of seconds, got {value!r}")


def check_listen(listen: object) -> tuple[str, int]:
    """Return `listen` as (host, port) or raise `ConfigError` naming ``Node.listen``."""
    if (
        not isinstance(listen, tuple)
        or len(listen) != 2
        or not isinstance(listen[0], str)
        or isinstance(listen[1], bool)
        or not isinstance(listen[1], int)
        or not 0 <= listen[1] <= 65535
    ):
        raise ConfigError(
            "Node.listen", f"must be (host, port) with port in 0..65535, got {listen!r}"
        )
    return listen[0], listen[1]


def check_peer(peer: object) -> PeerAddress:
    """Return `peer` if it is a `PeerAddress`, else raise `ConfigError` naming ``Node.peers``."""
    if not isinstance(peer, PeerAddress):
        raise ConfigError("Node.peers", f"entries must be qrpc.PeerAddress, got {peer!r}")
    return peer


def check_peers(peers: object) -> list[PeerAddress]:
    """Return `peers` (an iterable of `PeerAddress`) as a list, else raise
    `ConfigError` naming ``Node.peers`` and the fix."""
    if isinstance(peers, PeerAddress):
        raise ConfigError(
            "Node.peers",
            f"must be a list of qrpc.PeerAddress, got a single one ({peers}): "
            "pass peers=[qrpc.Peer(...)]",
        )
    if isinstance(peers, str | bytes) or not isinstance(peers, Iterable):
        raise ConfigError(
            "Node.peers",
            f"must be a list of qrpc.PeerAddress, got {peers!r}: pass peers=[qrpc.Peer(...)]",
        )
    return [check_peer(peer) for peer in peers]


def check_node_id(wanted: str | None, tls: object) -> str:
    """Return the node ID `tls` (a `TLS`) proves, checking it against ``Node(id=...)``."""
    if not isinstance(tls, TLS):
        raise ConfigError("Node.tls", f"must be a qrpc.TLS, got {tls!r}")
    if wanted is None:
        return tls.node_id
    try:
        canonical = normalize_node_id(wanted)
    except ValueError as exc:
        raise ConfigError("Node.id", str(exc)) from None
    if canonical != tls.node_id:
        raise ConfigError(
            tls.cert_path, f"certificate proves node ID {tls.node_id!r}, not {canonical!r}"
        )
    return canonical


def check_registry(registry: object) -> Registry:
    """Return `registry` if it is a `Registry`, else raise `ConfigError`."""
    if not isinstance(registry, Registry):
        raise ConfigError("Node.registry", f"must be a qrpc.Registry, got {registry!r}")
    return registry


def resolve_codecs(
    names: Sequence[str], registry: Registry, *, bundled: Iterable[Codec] = ()
) -> list[Codec]:
    """Register the `bundled` codecs of plugins, then return the codecs `names` name,
    each checked to carry every type of `registry`.

    Raises:
        ConfigError: an unknown codec, one that cannot carry a registered type,
            or a bundled codec that cannot be registered.
    """
    for codec in bundled:
        try:
            register_codec(codec, replace=True)
        except CodecError as exc:
            raise ConfigError("qrpc_register_codecs", str(exc)) from None
    if isinstance(names, str) or not names:
        raise ConfigError("Node.codecs", "must be a non-empty sequence of codec names")
    codecs = []
    for name in names:
        try:
            codec = get_codec(name)
            registry.decoders(codec)  # every registered type must fit the codec
        except (CodecError, RegistryError) as exc:
            raise ConfigError(f"Node.codecs[{name!r}]", str(exc)) from None
        codecs.append(codec)
    return codecs


def check_schema_mode(mode: object) -> SchemaMode:
    """Return `mode` or raise `ConfigError` naming ``Node.schema``."""
    if mode not in ("strict", "compatible", "off"):
        raise ConfigError("Node.schema", f'must be "strict", "compatible" or "off", got {mode!r}')
    return mode
