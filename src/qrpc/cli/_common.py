"""What every ``qrpc`` subcommand shares: the one-line usage error, the parser."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

T = TypeVar("T")

__all__ = ["USAGE_ERROR", "Parser", "UsageError", "argument_type", "name_choices"]

USAGE_ERROR = 2  # exit status of a mistake on the command line


class UsageError(Exception):
    """A mistake of the user: printed as one line, ``qrpc: ...``, exit status 2.

    Its text names the problem and the fix."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are `UsageError` (one line, no usage dump)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")


def name_choices(commands: Any) -> None:
    """Name the subcommands in "required" errors (argparse would name the dest)."""
    commands.metavar = "{" + ",".join(commands.choices) + "}"


def argument_type(check: Callable[[str], T]) -> Callable[[str], T]:
    """`check` as an argparse ``type=``: its ValueError becomes argparse's one-line error."""

    def convert(text: str) -> T:
        try:
            return check(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = getattr(check, "__name__", "value")  # argparse names it in errors
    return convert
