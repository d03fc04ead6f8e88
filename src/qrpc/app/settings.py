"""`NodeSettings`: a node's settings from a TOML file, ``QRPC_*`` variables or code.

Every field is optional (`msgspec.UNSET`: "not set here"), so settings from
several places stack: `NodeSettings.merged` takes each setting from the
highest layer that sets it (tables key by key, lists whole).  `load` checks a
file completely -- unknown keys, types and values -- and raises `ConfigError`
naming the file, the key and the reason; `from_env` does the same for the
variables, naming the variable.  ``docs/running.md`` is the reference.
"""

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final, Literal, TypeVar

import msgspec
from msgspec import UNSET, UnsetType

from qrpc.config import Limits, PeerAddress, QuicSettings
from qrpc.errors import ConfigError
from qrpc.policy import Backoff
from qrpc.tls.credentials import TLS

__all__ = [
    "LOG_LEVELS",
    "BackoffTable",
    "LimitsTable",
    "NodeSettings",
    "PeerTable",
    "QuicTable",
    "TLSTable",
    "check_log_level",
    "parse_address",
    "parse_bool",
]

LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_TRUE: Final = frozenset({"1", "true", "yes"})
_FALSE: Final = frozenset({"0", "false", "no"})


class _Table(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A table of settings; a field left UNSET is taken from the layer below.

    (No postponed annotations in this module: msgspec reads them at class
    creation, so `qrpc` may present these classes as its own.)"""


class TLSTable(_Table):
    """``[tls]``: the PEM files of `qrpc.TLS` (relative paths: from the file's directory)."""

    ca: str | UnsetType = UNSET
    cert: str | UnsetType = UNSET
    key: str | UnsetType = UNSET


class PeerTable(_Table):
    """One ``peers`` entry written as a table: the fields of `qrpc.PeerAddress`."""

    host: str
    port: int
    expected_id: str | None = None
    ca: str | None = None


class LimitsTable(_Table):
    """``[limits]``: the fields of `qrpc.Limits`."""

    max_message_size: int | UnsetType = UNSET
    inbound_window: int | UnsetType = UNSET
    outbound_high_water: int | UnsetType = UNSET
    max_peers: int | UnsetType = UNSET
    max_half_open: int | UnsetType = UNSET
    max_half_open_per_source: int | UnsetType = UNSET
    handshake_timeout: float | UnsetType = UNSET
    connect_timeout: float | UnsetType = UNSET
    request_timeout: float | UnsetType = UNSET
    shutdown_timeout: float | UnsetType = UNSET
    drain_timeout: float | UnsetType = UNSET
    max_concurrent_requests: int | UnsetType = UNSET
    max_header_bytes: int | UnsetType = UNSET
    discovery_interval: float | UnsetType = UNSET


class QuicTable(_Table):
    """``[quic]``: the fields of `qrpc.QuicSettings` (TOML has no None: a setting
    whose off-value is None stays at its default unless set in code; relative
    paths are taken from the file's directory)."""

    max_datagram_size: int | UnsetType = UNSET
    path_mtu_discovery: bool | UnsetType = UNSET
    max_data: int | UnsetType = UNSET
    max_stream_data: int | UnsetType = UNSET
    idle_timeout: float | UnsetType = UNSET
    keepalive_interval: float | UnsetType = UNSET
    dead_peer_timeout: float | UnsetType = UNSET
    congestion_control: Literal["reno", "cubic"] | UnsetType = UNSET
    retry: bool | UnsetType = UNSET
    qlog_dir: str | UnsetType = UNSET
    key_log_file: str | UnsetType = UNSET


class BackoffTable(_Table):
    """``[backoff]``: the fields of `qrpc.Backoff`."""

    base: float | UnsetType = UNSET
    factor: float | UnsetType = UNSET
    cap: float | UnsetType = UNSET
    jitter: float | UnsetType = UNSET
    stable_after: float | UnsetType = UNSET


_TABLES: Final[Mapping[str, type[_Table]]] = {
    "tls": TLSTable,
    "peers": PeerTable,
    "limits": LimitsTable,
    "quic": QuicTable,
    "backoff": BackoffTable,
}
_VALUES: Final = (("limits", Limits), ("quic", QuicSettings), ("backoff", Backoff))
T = TypeVar("T", bound=_Table)


class NodeSettings(_Table):
    """A node's settings, each optional; the TOML file's schema.

    Fields mirror `Node`'s arguments: ``listen`` and ``peers`` entries are
    ``"HOST:PORT"`` strings (a peer may also be a `PeerTable`), ``tls`` the
    certificate files, ``limits`` / ``quic`` / ``backoff`` the fields of
    `Limits` / `QuicSettings` / `Backoff`; ``introspection`` the node IDs the
    introspection service answers; ``log_level`` is for the process
    (``qrpc run``), not the node.
    """

    listen: str | UnsetType = UNSET
    peers: list[str | PeerTable] | UnsetType = UNSET
    id: str | UnsetType = UNSET
    codecs: list[str] | UnsetType = UNSET
    schema: Literal["strict", "compatible", "off"] | UnsetType = UNSET
    autoload_plugins: bool | UnsetType = UNSET
    introspection: list[str] | UnsetType = UNSET
    log_level: str | UnsetType = UNSET
    tls: TLSTable | UnsetType = UNSET
    limits: LimitsTable | UnsetType = UNSET
    quic: QuicTable | UnsetType = UNSET
    backoff: BackoffTable | UnsetType = UNSET

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "NodeSettings":
        """Read and check a TOML file; relative file names in it are taken
        from the file's directory.

        Raises:
            ConfigError: the file cannot be read, is not TOML, has an unknown
                key, a value of the wrong type or an unusable value; its text
                names the file and the key.
        """
        where = os.fspath(path)
        try:
            data = Path(where).read_bytes()
        except FileNotFoundError:
            raise ConfigError(where, "config file not found; check the path") from None
        except OSError as exc:
            raise ConfigError(where, f"cannot read it: {exc.strerror or exc}") from None
        try:
            settings = msgspec.toml.decode(data, type=cls)
        except msgspec.ValidationError as exc:
            raise ConfigError(where, _explain(str(exc))) from None
        except msgspec.DecodeError as exc:
            raise ConfigError(where, f"not valid TOML: {exc}") from None
        except UnicodeDecodeError:
            raise ConfigError(where, "not UTF-8 text; save it as UTF-8") from None
        settings = settings._relative_to(Path(where).parent)
        _options(settings, where)
        return settings

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "NodeSettings":
        """The settings of the ``QRPC_*`` variables of `environ` (default
        `os.environ`); an empty variable counts as unset.

        Raises:
            ConfigError: a variable's value is unusable; its text names it.
        """
        env = os.environ if environ is None else environ

        def get(name: str, convert: Callable[[str], Any] = str) -> Any:
            text = env.get(name, "").strip()
            if not text:
                return UNSET
            try:
                return convert(text)
            except ValueError as exc:
                raise ConfigError(name, str(exc)) from None

        def listen(text: str) -> str:
            parse_address(text, lowest_port=0)
            return text

        def peers(text: str) -> list[str | PeerTable]:
            entries: list[str | PeerTable] = [entry.strip() for entry in text.split(",")]
            for entry in entries:
                parse_address(str(entry), lowest_port=1)
            return entries

        tls = TLSTable(ca=get("QRPC_CA"), cert=get("QRPC_CERT"), key=get("QRPC_KEY"))
        return cls(
            listen=get("QRPC_LISTEN", listen),
            peers=get("QRPC_PEERS", peers),
            log_level=get("QRPC_LOG_LEVEL", check_log_level),
            autoload_plugins=get("QRPC_AUTOLOAD_PLUGINS", parse_bool),
            introspection=get("QRPC_INTROSPECTION", lambda text: text.replace(" ", "").split(",")),
            tls=tls if tls != TLSTable() else UNSET,
        )

    @classmethod
    def merged(cls, *layers: "NodeSettings") -> "NodeSettings":
        """Stack `layers`, lowest precedence first: each setting comes from the
        last layer that sets it (tables merge key by key, lists are replaced)."""
        result = cls()
        for layer in layers:
            result = _merge(layer, result)
        return result

    def set_keys(self) -> list[str]:
        """The names of the settings that are set, tables as ``table.key``."""
        keys = []
        for name in self.__struct_fields__:
            value = getattr(self, name)
            if isinstance(value, _Table):
                keys += [f"{name}.{key}" for key in _set_values(value)]
            elif value is not UNSET:
                keys.append(name)
        return keys

    def node_options(self) -> dict[str, Any]:
        """`Node` keyword arguments for the settings that are set (``tls`` a
        `qrpc.TLS` of the three files, left out when none is set; ``log_level``
        is left out).

        Raises:
            ConfigError: a value is unusable, a TLS file is missing or
                unusable, or ``tls`` sets some of ca, cert and key, not all.
        """
        options = _options(self, "node settings")
        tls = self.tls if self.tls is not UNSET else TLSTable()
        files = _set_values(tls)
        missing = [name for name in TLSTable.__struct_fields__ if name not in files]
        if len(missing) == len(TLSTable.__struct_fields__):
            return options
        if missing:
            raise ConfigError(
                "tls",
                f"no {' / '.join(missing)} file: give --ca, --cert and --key "
                "(or QRPC_CA, QRPC_CERT and QRPC_KEY, or a [tls] table in the config file)",
            )
        options["tls"] = TLS(files["ca"], files["cert"], files["key"])
        return options

    def _relative_to(self, base: Path) -> "NodeSettings":
        def resolve(name: str | None) -> str | None:
            return name if name is None or Path(name).is_absolute() else str(base / name)

        changes: dict[str, Any] = {}
        if self.tls is not UNSET:
            files: dict[str, Any] = {k: resolve(v) for k, v in _set_values(self.tls).items()}
            changes["tls"] = TLSTable(**files)
        if self.peers is not UNSET:
            changes["peers"] = [
                msgspec.structs.replace(peer, ca=resolve(peer.ca))
                if isinstance(peer, PeerTable)
                else peer
                for peer in self.peers
            ]
        if self.quic is not UNSET:
            paths = {
                name: resolve(value)
                for name, value in _set_values(self.quic).items()
                if name in ("qlog_dir", "key_log_file")
            }
            changes["quic"] = msgspec.structs.replace(self.quic, **paths)
        return msgspec.structs.replace(self, **changes)


def parse_address(text: str, *, lowest_port: int = 1) -> tuple[str, int]:
    """``HOST:PORT`` (an IPv6 host in brackets: ``[::1]:20001``) as (host, port).

    Raises:
        ValueError: a one-line reason.
    """
    host, colon, port = text.strip().rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"write an IPv6 host in brackets, [{host}]:{port}")
    if not colon or not host.strip():
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    if not (port.isascii() and port.isdigit()) or not lowest_port <= int(port) <= 65535:
        raise ValueError(f"the port of {text!r} must be a number in {lowest_port}..65535")
    return host, int(port)


def parse_bool(text: str) -> bool:
    """``1``/``true``/``yes`` or ``0``/``false``/``no`` (any case); else `ValueError`."""
    word = text.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ValueError(f"must be 1/true/yes or 0/false/no, got {text!r}")


def check_log_level(text: str) -> str:
    """A logging level name in upper case (``debug`` -> ``DEBUG``); else `ValueError`."""
    level = text.strip().upper()
    if level not in LOG_LEVELS:
        raise ValueError(f"must be one of {', '.join(LOG_LEVELS)} (any case), got {text!r}")
    return level


def _set_values(table: _Table) -> dict[str, Any]:
    return {
        name: value
        for name in table.__struct_fields__
        if (value := getattr(table, name)) is not UNSET
    }


def _merge(high: T, low: T) -> T:
    changes: dict[str, Any] = {}
    for name in high.__struct_fields__:
        upper, lower = getattr(high, name), getattr(low, name)
        if upper is UNSET:
            changes[name] = lower
        elif isinstance(upper, _Table) and isinstance(lower, _Table):
            changes[name] = _merge(upper, lower)
    return msgspec.structs.replace(high, **changes)


def _options(settings: NodeSettings, where: str) -> dict[str, Any]:
    """The set values as `Node` keyword arguments (but ``tls``), each checked."""

    def fail(key: str, reason: str) -> ConfigError:
        return ConfigError(where, f"{key}: {reason}")

    options = {
        name: value
        for name, value in _set_values(settings).items()
        if name in ("id", "schema", "autoload_plugins")
    }
    if settings.codecs is not UNSET:
        options["codecs"] = tuple(settings.codecs)
    if settings.introspection is not UNSET:  # node IDs, checked by the Node
        options["introspection"] = tuple(settings.introspection)
    if settings.log_level is not UNSET:
        try:
            check_log_level(settings.log_level)
        except ValueError as exc:
            raise fail("log_level", str(exc)) from None
    if settings.listen is not UNSET:
        try:
            options["listen"] = parse_address(settings.listen, lowest_port=0)
        except ValueError as exc:
            raise fail("listen", str(exc)) from None
    if settings.peers is not UNSET:
        options["peers"] = [
            _peer(entry, f"peers[{index}]", fail) for index, entry in enumerate(settings.peers)
        ]
    for name, cls in _VALUES:
        table = getattr(settings, name)
        if table is not UNSET:
            try:
                options[name] = cls(**_set_values(table))
            except ConfigError as exc:
                raise fail(*_field_of(exc, cls.__name__, name)) from None
    return options


def _peer(entry: str | PeerTable, key: str, fail: Callable[[str, str], ConfigError]) -> PeerAddress:
    try:
        if isinstance(entry, str):
            return PeerAddress(*parse_address(entry, lowest_port=1))
        return PeerAddress(entry.host, entry.port, expected_id=entry.expected_id, ca=entry.ca)
    except ConfigError as exc:
        raise fail(*_field_of(exc, "PeerAddress", key)) from None
    except ValueError as exc:
        raise fail(key, str(exc)) from None


def _field_of(exc: ConfigError, prefix: str, key: str) -> tuple[str, str]:
    """(key, reason) of a value's `ConfigError`: ``Limits.max_peers`` -> ``limits.max_peers``;
    an error naming a file (a peer's CA) keeps the file in the reason."""
    owner, dot, field = exc.path.partition(".")
    if owner == prefix:
        return (f"{key}.{field}" if dot else key), exc.reason
    return key, str(exc)


def _explain(message: str) -> str:
    """msgspec's ``Expected `int`, got `str` - at `$.limits.max_peers``` as
    ``limits.max_peers: expected int, got str``."""
    problem, _, at = message.partition(" - at `$")
    key = at.rstrip("`").lstrip(".")
    unknown = "Object contains unknown field `"
    if problem.startswith(unknown):
        name = problem.removeprefix(unknown).rstrip("`")
        table = key.partition("[")[0]
        known = _TABLES[table] if table else NodeSettings
        where = f"[{table}]" if table else "the top level"
        keys = ", ".join(known.__struct_fields__)
        return f"{key + '.' if key else ''}{name}: unknown key; known at {where}: {keys}"
    problem = problem.replace("`", "")
    return f"{key or 'the top level'}: {problem[:1].lower()}{problem[1:]}"
