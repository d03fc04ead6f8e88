"""What every ``qrpc`` subcommand shares: the one-line usage error, the parser."""

from __future__ import annotations

import argparse
from typing import Any, NoReturn

__all__ = ["USAGE_ERROR", "Parser", "UsageError", "name_choices"]

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
