"""qrpc schema export / diff, and the target loader (qrpc.targets) behind --app."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from qrpc.cli import main
from qrpc.registry import Registry
from qrpc.targets import TargetError, load_target, registry_of

APP_V1 = """
    import msgspec
    import qrpc


    class Ping(msgspec.Struct):
        text: str
        seq: int = 0


    class Pong(msgspec.Struct):
        text: str


    registry = qrpc.Registry()
    registry.register(1, Ping)
    registry.register(2, Pong)


    class App:
        registry = registry


    app = App()
"""
APP_REMOVED = APP_V1.replace("        seq: int = 0\n", "")
APP_ADDED = APP_V1.replace(
    "        seq: int = 0\n", "        seq: int = 0\n        note: str = ''\n"
)


def _write(path: Path, source: str) -> Path:
    path.write_text(textwrap.dedent(source))
    return path


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = main(argv)
    out, err = capsys.readouterr()
    return status, out, err


def _one_line_error(err: str) -> str:
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("qrpc: ")
    return lines[0]


@pytest.fixture
def module_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A directory on sys.path; modules imported from it are forgotten afterwards."""
    directory = tmp_path / "modules"
    directory.mkdir()
    monkeypatch.syspath_prepend(str(directory))
    before = set(sys.modules)
    yield directory
    for name in set(sys.modules) - before:
        del sys.modules[name]


# -- export ---------------------------------------------------------------------------


def test_export_a_file_target_to_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    app = _write(tmp_path / "app.py", APP_V1)
    status, out, err = _run(["schema", "export", "--app", f"{app}:registry"], capsys)
    assert (status, err) == (0, "")
    document = json.loads(out)
    assert document["qrpc_schema"] == 1
    assert sorted(document["messages"]) == ["1", "2"]
    assert document["messages"]["1"]["name"] == "Ping"
    assert out == json.dumps(document, indent=2, sort_keys=True) + "\n"
    assert str(tmp_path) not in sys.path


def test_export_a_module_target_to_a_file(
    module_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write(module_dir / "schema_cli_app.py", APP_V1)
    out_file = tmp_path / "schema.json"
    status, out, err = _run(
        ["schema", "export", "--app", "schema_cli_app:app.registry", "--out", str(out_file)], capsys
    )
    assert (status, out, err) == (0, "", "")
    assert json.loads(out_file.read_text())["messages"]["2"]["name"] == "Pong"


def test_an_object_with_a_registry_is_a_target(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app = _write(tmp_path / "app.py", APP_V1)
    assert _run(["schema", "export", "--app", f"{app}:app"], capsys)[0] == 0


# -- diff -----------------------------------------------------------------------------


def _export(tmp_path: Path, name: str, source: str) -> Path:
    app = _write(tmp_path / f"{name}.py", source)
    out = tmp_path / f"{name}.json"
    assert main(["schema", "export", "--app", f"{app}:registry", "--out", str(out)]) == 0
    return out


def test_diff_of_a_removed_field_is_breaking(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = _export(tmp_path, "v1", APP_V1), _export(tmp_path, "v2", APP_REMOVED)
    status, out, err = _run(["schema", "diff", str(old), str(new)], capsys)
    assert (status, out, err) == (1, "cmd_id 1: breaking: field 'seq' removed\n", "")


def test_diff_of_an_added_optional_field_is_compatible(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = _export(tmp_path, "v1", APP_V1), _export(tmp_path, "v2", APP_ADDED)
    status, out, err = _run(["schema", "diff", str(old), str(new)], capsys)
    assert (status, out, err) == (0, "cmd_id 1: compatible: field 'note' added (optional)\n", "")


def test_diff_of_identical_exports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = _export(tmp_path, "v1", APP_V1)
    assert _run(["schema", "diff", str(old), str(old)], capsys) == (0, "no changes\n", "")


# -- mistakes: one line, status 2 -----------------------------------------------------


EXPORT = ["schema", "export", "--app"]
MISTAKES = {  # argv ({names} are files of the `files` fixture), what the one line says
    "no colon": ([*EXPORT, "{app}"], "must name a module and an attribute"),
    "empty attribute": ([*EXPORT, "{app}:"], "must name a module and an attribute"),
    "bad attribute": ([*EXPORT, "{app}:1x"], "is not a (dotted) attribute name"),
    "missing file": ([*EXPORT, "{tmp}/nope.py:registry"], "not found"),
    "missing module": ([*EXPORT, "no_such_module_qrpc:registry"], "no module named"),
    "import fails": ([*EXPORT, "{broken}:registry"], "RuntimeError: boom second line"),
    "syntax error": ([*EXPORT, "{syntax}:registry"], "SyntaxError"),
    "missing attribute": ([*EXPORT, "{app}:registy"], "it has: App, Ping, Pong"),
    "missing nested": ([*EXPORT, "{app}:app.nope"], "'app' has no attribute 'nope'"),
    "not a registry": ([*EXPORT, "{app}:Ping"], "is not a qrpc.Registry"),
    "no --app": (["schema", "export"], "required: --app"),
    "unwritable out": ([*EXPORT, "{app}:registry", "--out", "{tmp}"], "cannot write"),
    "missing old": (["schema", "diff", "{tmp}/nope.json", "{good}"], "cannot read"),
    "invalid json": (["schema", "diff", "{good}", "{not_json}"], "is not valid JSON"),
    "not a schema": (["schema", "diff", "{other}", "{good}"], "not a qrpc schema"),
    "a list": (["schema", "diff", "{good}", "{list}"], "not a qrpc schema"),
    "one file": (["schema", "diff", "{good}"], "required: new"),
    "no action": (["schema"], "required: {export,diff}"),
    "no command": ([], "required: {run,ping,call,peers,stats,certs,schema,plugins,codecs,bench}"),
}


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    return {
        "tmp": tmp_path,
        "app": _write(tmp_path / "app.py", APP_V1),
        "broken": _write(tmp_path / "broken.py", "raise RuntimeError('boom\\nsecond line')\n"),
        "syntax": _write(tmp_path / "syntax.py", "def f(:\n"),
        "good": _write(tmp_path / "good.json", '{"qrpc_schema": 1, "messages": {}}'),
        "not_json": _write(tmp_path / "not.json", "{nope"),
        "other": _write(tmp_path / "other.json", '{"name": "something else"}'),
        "list": _write(tmp_path / "list.json", "[1, 2]"),
    }


@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_each_mistake_is_one_line_and_status_2(
    mistake: str, files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    argv, expected = MISTAKES[mistake]
    status, out, err = _run([arg.format(**files) for arg in argv], capsys)
    assert (status, out) == (2, "")
    assert expected in _one_line_error(err)


def test_a_document_error_names_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = _export(tmp_path, "v1", APP_V1)
    other = _write(tmp_path / "other.json", "{}")
    _, _, err = _run(["schema", "diff", str(good), str(other)], capsys)
    assert _one_line_error(err).startswith(f"qrpc: {other}: not a qrpc schema export")


def test_the_real_command_prints_no_traceback(tmp_path: Path) -> None:
    broken = _write(tmp_path / "broken.py", "raise ImportError('no such thing')\n")
    result = subprocess.run(
        [sys.executable, "-m", "qrpc", "schema", "export", "--app", f"{broken}:registry"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout) == (2, "")
    assert "ImportError: no such thing" in _one_line_error(result.stderr)
    app = _write(tmp_path / "app.py", APP_V1)
    result = subprocess.run(
        [sys.executable, "-m", "qrpc", "schema", "export", "--app", f"{app}:registry"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stderr) == (0, "")
    assert json.loads(result.stdout)["qrpc_schema"] == 1


# -- qrpc.targets ---------------------------------------------------------------------


def test_each_file_load_is_a_new_module(tmp_path: Path) -> None:
    app = _write(tmp_path / "app.py", APP_V1)
    first, second = load_target(f"{app}:registry"), load_target(f"{app}:registry")
    assert isinstance(first, Registry)
    assert isinstance(second, Registry)
    assert first is not second
    assert str(tmp_path) not in sys.path


def test_a_file_target_may_import_its_neighbours(tmp_path: Path) -> None:
    _write(
        tmp_path / "schema_cli_messages.py",
        "import msgspec\nclass Ping(msgspec.Struct):\n    x: int\n",
    )
    app = _write(
        tmp_path / "app.py",
        "import qrpc\nfrom schema_cli_messages import Ping\n"
        "registry = qrpc.Registry()\nregistry.register(1, Ping)\n",
    )
    try:
        assert len(registry_of(load_target(f"{app}:registry"))) == 1
    finally:
        sys.modules.pop("schema_cli_messages", None)
    assert str(tmp_path) not in sys.path


def test_registry_of_accepts_a_registry_or_a_holder() -> None:
    registry = Registry()

    class Holder:
        def __init__(self) -> None:
            self.registry = registry

    assert registry_of(registry) is registry
    assert registry_of(Holder()) is registry
    with pytest.raises(TargetError, match=r"has no \.registry"):
        registry_of(object())


def test_target_errors_are_value_errors() -> None:
    with pytest.raises(ValueError, match="must name a module"):
        load_target("nothing")
