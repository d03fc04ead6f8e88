"""Targets for the fake ``qrpc.codecs`` entry points of tests/test_codecs.py.

Each attribute is what a third-party package might (wrongly or rightly)
point its entry point at.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from qrpc_codecs.msgpack import codec as _msgpack

T = TypeVar("T")


class FakeCodec:
    """A working codec under its own name: MessagePack underneath."""

    def __init__(self, name: str) -> None:
        self.name = name

    def encode(self, value: Any) -> bytes:
        return _msgpack.encode(value)

    def decoder(self, type_: type[T]) -> Callable[[bytes], T]:
        return _msgpack.decoder(type_)


class FakeCodecClass:
    """The classic plugin mistake: the entry point names the class, not an instance.

    It even has a class-level ``name``, so it looks like a codec to a
    structural check.
    """

    name = "fake-class"

    def encode(self, value: Any) -> bytes:
        return _msgpack.encode(value)

    def decoder(self, type_: type[T]) -> Callable[[bytes], T]:
        return _msgpack.decoder(type_)


codec = FakeCodec("fake")
"""The good one: entry point ``fake = tests.plugins.fake_codec:codec``."""

misnamed = FakeCodec("something-else")
"""Installed as ``fake-misnamed`` but calls itself ``something-else``."""

not_a_codec = "msgpack"
"""A plain string where a codec instance belongs."""
