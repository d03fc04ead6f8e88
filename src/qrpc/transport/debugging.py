"""QUIC debugging files of one endpoint: qlog traces and the TLS key log.

Both are off by default and meant for debugging only (``docs/configuration.md``):

- ``QuicSettings.qlog_dir``: aioquic's `QuicFileLogger` writes one qlog file
  (JSON) per connection when it ends, named ``<ODCID>-<client|server>.qlog``
  here, so the two ends of one connection written to the same directory do
  not overwrite each other;
- ``QuicSettings.key_log_file``: aioquic appends each connection's TLS
  secrets in SSLKEYLOGFILE format (Wireshark can then decrypt a capture).
"""

from __future__ import annotations

import json
import os
from typing import TextIO

from aioquic.quic.logger import QLOG_VERSION, QuicFileLogger, QuicLoggerTrace

from qrpc.config import QuicSettings
from qrpc.errors import ConfigError

__all__ = ["DebugFiles"]


class _QlogFiles(QuicFileLogger):
    """aioquic's one-file-per-connection qlog writer, with the role in the name."""

    def end_trace(self, trace: QuicLoggerTrace) -> None:
        data = trace.to_dict()
        role = data["vantage_point"].get("type", "unknown")
        path = os.path.join(self.path, f"{data['common_fields']['ODCID']}-{role}.qlog")
        with open(path, "w", encoding="utf-8") as file:
            json.dump({"qlog_format": "JSON", "qlog_version": QLOG_VERSION, "traces": [data]}, file)
        self._traces.remove(trace)


class DebugFiles:
    """The qlog writer and the open key log of one endpoint (None when off).

    Raises:
        ConfigError: the qlog directory is gone, or the key log file cannot
            be opened.
    """

    __slots__ = ("key_log", "qlog")

    def __init__(self, settings: QuicSettings) -> None:
        self.qlog: _QlogFiles | None = None
        if settings.qlog_dir is not None:
            try:
                self.qlog = _QlogFiles(os.fspath(settings.qlog_dir))
            except ValueError as exc:  # the directory was removed since
                raise ConfigError("QuicSettings.qlog_dir", str(exc)) from None
        self.key_log: TextIO | None = None
        if settings.key_log_file is not None:
            try:
                self.key_log = open(  # noqa: SIM115  (closed by `close`)
                    settings.key_log_file, "a", encoding="ascii", buffering=1
                )
            except OSError as exc:
                raise ConfigError("QuicSettings.key_log_file", str(exc)) from None

    def close(self) -> None:
        """Close the key log (connections are gone by then)."""
        if self.key_log is not None:
            self.key_log.close()
            self.key_log = None
