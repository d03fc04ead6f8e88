"""docs/testing.md is a small project: each Python block is a file named on its first
line, the TOML block its pytest configuration.  Run it as a user's pytest would."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).parents[2] / "docs" / "testing.md"
BLOCK = re.compile(r"```(python|toml)\n(.*?)```", re.DOTALL)
NAME = re.compile(r"# ([\w.]+\.(?:py|toml))\n")


def _files() -> dict[str, str]:
    files: dict[str, str] = {}
    for language, body in BLOCK.findall(DOC.read_text()):
        named = NAME.match(body)
        if named is None:
            raise AssertionError(f"a {language} block of {DOC.name} does not name its file")
        name = named.group(1)
        if name in files:
            raise AssertionError(f"{DOC.name} has two blocks for {name}")
        files[name] = body
    return files


def test_every_example_of_docs_testing_md_passes(pytester: pytest.Pytester) -> None:
    files = _files()
    assert "pyproject.toml" in files
    for name, body in files.items():
        (pytester.path / name).write_text(body)
    tests = sum(len(re.findall(r"^(?:async )?def test_", body, re.M)) for body in files.values())
    assert tests >= 10  # the page shows that many; fewer means the parsing missed some
    pytester.syspathinsert()  # `from app import ...`
    result = pytester.runpytest_inprocess("-q", "-W", "error")
    result.assert_outcomes(passed=tests)
