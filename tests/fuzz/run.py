"""Run one fuzz target under atheris, coverage-guided, for long runs.

Usage, from the repository root::

    python -m tests.fuzz.run TARGET [atheris/libFuzzer args] [CORPUS_DIR... | INPUT...]
    python -m tests.fuzz.run --write-seeds

TARGET is ``decoder``, ``hello`` or ``link`` (see ``tests/fuzz/targets.py``).
Without a directory or file argument the run reads the checked-in corpus
``tests/fuzz/corpus/TARGET`` and writes new inputs, and any crash, to a
scratch directory (``$QRPC_FUZZ_DIR/TARGET``, default under the system temp
directory), never to the checked-in corpus.  libFuzzer writes new inputs to
the first directory given, so pass the scratch one first::

    python -m tests.fuzz.run link -max_total_time=60 /tmp/scratch tests/fuzz/corpus/link

Replay one input (a crash, say) by passing its file instead of directories.
``--write-seeds`` rewrites the ``seed-*`` files of the corpus from
`targets.seeds()` (``crash-*`` files are kept).

Inputs that hit a bug still open (`targets.KNOWN_BUGS`, whose ``crash-*``
files are in the corpus) pass, so a run looks for new ones instead of
stopping at the first known one; set ``QRPC_FUZZ_KNOWN=1`` to have them crash.

Exits 2, with a one-line error, when atheris is not installed (``pip install
-e '.[fuzz]'``) or TARGET is unknown.
"""

from __future__ import annotations

import importlib
import os
import sys
import tempfile
from pathlib import Path

TARGETS = ("decoder", "hello", "link")
MAX_LEN = {"decoder": 32768, "hello": 512, "link": 2048}  # bytes: default -max_len
CORPUS = Path(__file__).resolve().parent / "corpus"


def main(argv: list[str]) -> int:
    if argv[:1] == ["--write-seeds"]:
        return write_seeds()
    if not argv or argv[0] not in TARGETS:
        given = repr(argv[0]) if argv else "none given"
        print(
            f"error: unknown fuzz target ({given}); choose one of {', '.join(TARGETS)}",
            file=sys.stderr,
        )
        return 2
    target, args = argv[0], argv[1:]
    try:
        atheris = importlib.import_module("atheris")
    except ImportError:
        print("error: atheris is not installed; run: pip install -e '.[fuzz]'", file=sys.stderr)
        return 2
    with atheris.instrument_imports(include=["qrpc", "tests.fuzz.targets"]):
        targets = importlib.import_module("tests.fuzz.targets")
    function = getattr(targets, f"fuzz_{target}")
    if os.environ.get("QRPC_FUZZ_KNOWN") != "1":
        function = targets.skipping_known_bugs(function)
    if not any(not arg.startswith("-") for arg in args):
        scratch = Path(os.environ.get("QRPC_FUZZ_DIR") or Path(tempfile.gettempdir(), "qrpc-fuzz"))
        scratch = scratch / target
        (scratch / "artifacts").mkdir(parents=True, exist_ok=True)
        if not any(arg.startswith("-artifact_prefix=") for arg in args):
            args.append(f"-artifact_prefix={scratch / 'artifacts'}{os.sep}")
        args += [str(scratch), str(CORPUS / target)]
    if not any(arg.startswith("-timeout=") for arg in args):
        args.insert(0, "-timeout=10")  # seconds per input: a hang is a crash
    if not any(arg.startswith("-max_len=") for arg in args):
        args.insert(0, f"-max_len={MAX_LEN[target]}")
    atheris.Setup([sys.argv[0], *args], function)
    atheris.Fuzz()
    return 0  # not reached: atheris exits the process


def write_seeds() -> int:
    from tests.fuzz.targets import seeds

    for target, entries in seeds().items():
        directory = CORPUS / target
        directory.mkdir(parents=True, exist_ok=True)
        for old in directory.glob("seed-*"):
            old.unlink()
        for name, data in entries.items():
            (directory / name).write_bytes(data)
        print(f"{directory}: {len(entries)} seeds")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
