"""Runs mypy on tests/typing/api_types.py and checks every revealed type."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

mypy_api = pytest.importorskip("mypy.api")

TYPING = Path(__file__).resolve().parent / "typing" / "api_types.py"


def test_public_api_types() -> None:
    stdout, stderr, _status = mypy_api.run(
        [str(TYPING), "--strict", "--no-incremental", "--show-error-codes", "--no-error-summary"]
    )
    revealed: dict[int, str] = {}
    for line in stdout.splitlines():
        match = re.match(r".*api_types\.py:(\d+): note: Revealed type is \"(.*)\"", line)
        if match:
            revealed[int(match.group(1))] = match.group(2)
        elif ": error:" in line:
            raise AssertionError(f"mypy error in the typing checks: {line}")
    checks = 0
    for number, source in enumerate(TYPING.read_text().splitlines(), start=1):
        expectation = re.search(r'# assert "(.*)" in typ', source)
        if expectation and "reveal_type(" in source:
            checks += 1
            assert number in revealed, f"line {number} revealed nothing: {stdout}{stderr}"
            assert expectation.group(1) in revealed[number], (number, revealed[number])
    assert checks == len(revealed) == 14, (checks, revealed)
