"""The public facade stays honest: everything exported exists and presents itself as qrpc."""

from __future__ import annotations

import importlib

import qrpc
from qrpc import errors


def test_all_names_exist() -> None:
    for name in qrpc.__all__:
        assert hasattr(qrpc, name), name


def test_public_classes_present_themselves_as_qrpc() -> None:
    for name in qrpc.__all__:
        obj = getattr(qrpc, name)
        if isinstance(obj, type) and obj.__module__.startswith("qrpc"):
            assert obj.__module__ == "qrpc", f"{name}.__module__ is {obj.__module__}"


def test_every_error_is_exported() -> None:
    for name in errors.__all__:
        if name in {
            "BadHello",
            "EarlyDataLimit",
            "HeadersTooLarge",
            "FlowControlViolation",
            "FrameTooLarge",
            "HelloRequired",
            "MalformedFrame",
            "UnknownFrameKind",
            "UnsupportedVersion",
        }:
            continue  # wire-level: reach applications only as a close code
        assert name in qrpc.__all__, name


def test_module_all_lists_match_their_modules() -> None:
    for module_name in ("qrpc.errors", "qrpc.runtime.events", "qrpc.wire", "qrpc_codecs"):
        module = importlib.import_module(module_name)
        for name in module.__all__:
            assert hasattr(module, name), f"{module_name}.{name}"


def test_first_names_stay_as_aliases() -> None:
    # PeerAddress was called Peer, ctx.identity was ctx.peer: both first names keep working.
    assert qrpc.Peer is qrpc.PeerAddress
    assert qrpc.Context.peer.__doc__ is not None
    assert "identity" in qrpc.Context.peer.__doc__
