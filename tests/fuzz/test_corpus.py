"""The fuzz targets in the ordinary test suite, without atheris.

- Every checked-in corpus file (``tests/fuzz/corpus/<target>/``) replays
  cleanly through its target; ``crash-*`` files are inputs that once broke a
  rule and must keep passing.
- The ``seed-*`` files are what `targets.seeds()` builds, and each reaches
  deep code (frames decoded, HELLOs accepted, links OPEN with messages), so
  a target that stopped reading its input properly fails here instead of
  fuzzing nothing.
- A fixed-seed mutation smoke run over the corpus (a few seconds in all).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from qrpc.errors import FrameTooLarge, MalformedFrame, UnknownFrameKind, UnsupportedVersion
from qrpc.wire.frames import MAX_ID, PROTOCOL_VERSION, Flags, FrameKind
from qrpc.wire.link import MAX_HELLO_SIZE
from tests.fuzz import targets

CORPUS = Path(__file__).parent / "corpus"
TARGETS: dict[str, Callable[[bytes], None]] = {
    "decoder": targets.fuzz_decoder,
    "hello": targets.fuzz_hello,
    "link": targets.fuzz_link,
}
MAX_CORPUS_BYTES = 200 * 1024

# Corpus entries that still break a rule, until the library is fixed
# (`targets.KNOWN_BUGS`): replaying them is a strict xfail, so a fix makes the entry
# XPASS, and fail, until it is removed there; the smoke run skips mutants that hit the
# same messages, and so does a long run (`tests.fuzz.run`).
KNOWN_BUGS = targets.KNOWN_BUGS

KIND_FLAGS = {  # the flags each kind may carry
    **{int(kind): 0 for kind in FrameKind},
    int(FrameKind.MESSAGE): Flags.HEADERS,
    int(FrameKind.REQUEST): Flags.HEADERS | Flags.DEADLINE,
    int(FrameKind.RESPONSE): Flags.HEADERS,
    int(FrameKind.ERROR): Flags.HEADERS,
}
SMOKE_ITERATIONS = {"decoder": 15_000, "hello": 60_000, "link": 20_000}
SMOKE_SECONDS = 2.0  # per target: a cap for slow machines; here the counts bound it
LENGTHS = {  # the length-field values the smoke run writes: 0, max, max + 1, 2**32 - 1
    "decoder": sorted(
        {0, MAX_ID, *targets.DECODER_MAX_SIZES, *(m + 1 for m in targets.DECODER_MAX_SIZES)}
    ),
    "link": sorted(
        {0, MAX_ID, MAX_HELLO_SIZE, MAX_HELLO_SIZE + 1}
        | {m for size in targets.LINK_MAX_FRAME_SIZES for m in (size, size + 1)}
    ),
    "hello": [0, 1, 63, 64, 65, 0xFFFF, MAX_ID],  # str/array/bin lengths in msgpack
}


def corpus_files() -> list[tuple[str, Path]]:
    return [
        (target, path)
        for target in sorted(TARGETS)
        for path in sorted((CORPUS / target).iterdir())
        if path.is_file()
    ]


def corpus_params() -> list[Any]:
    params: list[Any] = []
    for target, path in corpus_files():
        key = f"{target}/{path.name}"
        bug = KNOWN_BUGS.get(key)
        marks = [pytest.mark.xfail(reason=bug[0], raises=targets.Violation)] if bug else []
        params.append(pytest.param(target, path, id=key, marks=marks))
    return params


# -- replay --------------------------------------------------------------------------------


@pytest.mark.parametrize(("target", "path"), corpus_params())
def test_corpus_entry_passes(target, path):
    TARGETS[target](path.read_bytes())


def test_corpus_is_seeds_and_crashes_and_small():
    files = corpus_files()
    assert {target for target, _ in files} == set(TARGETS)
    for target, path in files:
        assert path.name.startswith(("seed-", "crash-")), f"{target}/{path.name}"
    assert sum(path.stat().st_size for _, path in files) < MAX_CORPUS_BYTES
    present = {f"{target}/{path.name}" for target, path in files}
    assert set(KNOWN_BUGS) <= present, "a KNOWN_BUGS entry names no corpus file"


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_seed_files_are_the_built_seeds(target):
    built = targets.seeds()[target]
    on_disk = {p.name: p.read_bytes() for p in (CORPUS / target).glob("seed-*")}
    assert on_disk.keys() == built.keys(), "run: python -m tests.fuzz.run --write-seeds"
    for name, data in built.items():
        assert on_disk[name] == data, f"{name} is stale: python -m tests.fuzz.run --write-seeds"


# -- the seeds reach deep code -------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(targets.seeds()["decoder"]))
def test_decoder_seed_decodes_frames(name):
    frames, error = targets.run_decoder(targets.seeds()["decoder"][name])
    assert len(frames) >= 2
    assert (error is not None) == name.startswith("seed-error-")


def test_decoder_seeds_cover_every_kind_and_error():
    kinds: set[FrameKind] = set()
    errors: set[type] = set()
    for data in targets.seeds()["decoder"].values():
        frames, error = targets.run_decoder(data)
        kinds.update(frame.kind for frame in frames)
        if error is not None:
            errors.add(error)
    assert kinds == set(FrameKind)
    assert errors == {UnsupportedVersion, UnknownFrameKind, MalformedFrame, FrameTooLarge}


def test_decoder_seeds_cover_every_flag_each_kind_may_carry():
    flagged: set[tuple[FrameKind, int]] = set()
    for data in targets.seeds()["decoder"].values():
        frames, _ = targets.run_decoder(data)
        flagged.update((frame.kind, frame.flags) for frame in frames if frame.flags)
    both = Flags.DEADLINE | Flags.HEADERS
    assert {(kind, flags & bit) for kind, flags in flagged for bit in (1, 2) if flags & bit} == {
        (FrameKind.MESSAGE, Flags.HEADERS),
        (FrameKind.REQUEST, Flags.DEADLINE),
        (FrameKind.REQUEST, Flags.HEADERS),
        (FrameKind.RESPONSE, Flags.HEADERS),
        (FrameKind.ERROR, Flags.HEADERS),
    }
    assert (FrameKind.REQUEST, both) in flagged


HELLO_ACCEPTED = {
    "seed-raw-valid",
    "seed-raw-extra-fields",
    "seed-fields-valid",
    "seed-fields-many-codecs",
    "seed-fields-extras",
    "seed-fields-limits",
    "seed-fields-generated-id",
    "seed-fields-input-window",
    "seed-fields-header-limit-max",
    "seed-fields-schema-max",
    "seed-fields-schema-input",
}


@pytest.mark.parametrize("name", sorted(targets.seeds()["hello"]))
def test_hello_seed_is_accepted_or_refused_as_meant(name):
    hello = targets.run_hello(targets.seeds()["hello"][name])
    assert (hello is not None) == (name in HELLO_ACCEPTED)


# What each link seed must reach (`LinkRun.reached`); "clean" means a well-behaved
# peer throughout, so every frame was checked against its event.
LINK_REACHES: dict[str, set[str]] = {
    "seed-dialer-session": {
        "clean",
        "state:OPEN",
        "admitted",
        "MessageReceived",
        "RequestReceived",
        "ResponseReceived",
        "ErrorReceived",
        "CreditReceived",
        "GoodbyeReceived",
        "sent:REQUEST",
        "sent:RESPONSE",
        "sent:GOODBYE",
        "state:CLOSING",
        "state:CLOSED",
        "finished",
    },
    "seed-acceptor-credit": {
        "clean",
        "state:OPEN",
        "MessageReceived",
        "RequestReceived",
        "CreditReceived",
        "GoodbyeReceived",
        "sent:CREDIT",
        "sent:ERROR",
        "state:CLOSED",
        "finished",
    },
    "seed-large-frames": {"clean", "state:OPEN", "MessageReceived", "sent:CREDIT", "finished"},
    "seed-early-data-limit": {"state:OPEN", "failed:EARLY_DATA_LIMIT"},
    "seed-frame-before-hello": {"failed:HELLO_REQUIRED"},
    "seed-acceptor-refuses-early-frame": {"HelloReceived", "failed:HELLO_REQUIRED"},
    "seed-flow-control": {"state:OPEN", "admitted", "failed:FLOW_CONTROL"},
    "seed-second-hello": {"admitted", "failed:PROTOCOL_VIOLATION"},
    "seed-raw-headers": {
        "state:OPEN",
        "MessageReceived",
        "CreditReceived",
        "failed:FRAME_TOO_LARGE",
    },
    "seed-after-goodbye": {"GoodbyeReceived", "failed:PROTOCOL_VIOLATION"},
    "seed-bad-frame-after-held-goodbye": {
        "admitted",
        "GoodbyeReceived",
        "state:CLOSED",
        "finished",
    },
    "seed-credit-after-goodbye": {"state:OPEN", "GoodbyeReceived", "failed:PROTOCOL_VIOLATION"},
    # version 2
    "seed-v2-session": {
        "clean",
        "headers:MessageReceived",
        "headers:RequestReceived",
        "deadline:RequestReceived",
        "headers:ResponseReceived",
        "headers:ErrorReceived",
        "CancelReceived",
        "DrainingReceived",
        "sent-headers",
        "sent:MESSAGE+flags",
        "sent:REQUEST+flags",
        "sent:RESPONSE+flags",
        "sent:ERROR+flags",
        "sent:CANCEL",
        "sent:DRAINING",
        "GoodbyeReceived",
        "state:CLOSED",
        "finished",
    },
    "seed-v2-header-refusals": {"clean", "refused:headers", "sent:MESSAGE+flags", "finished"},
    "seed-v2-bad-header-key": {"admitted", "failed:MALFORMED_FRAME"},
    "seed-v2-headers-too-large": {"admitted", "failed:HEADERS_TOO_LARGE"},
    "seed-v2-section-longer-than-body": {"sent:REQUEST", "failed:MALFORMED_FRAME"},
    "seed-v2-deadline-cut": {"admitted", "failed:MALFORMED_FRAME"},
    "seed-v2-error-without-code": {"sent:REQUEST", "failed:MALFORMED_FRAME"},
    "seed-v2-flags-on-credit": {"admitted", "failed:MALFORMED_FRAME"},
    "seed-v2-unknown-flag": {"admitted", "failed:MALFORMED_FRAME"},
    "seed-v2-cancel-with-body": {"admitted", "failed:MALFORMED_FRAME"},
    "seed-v2-draining-before-our-hello": {"HelloReceived", "failed:HELLO_REQUIRED"},
    "seed-v2-cancel-after-goodbye": {"GoodbyeReceived", "failed:PROTOCOL_VIOLATION"},
    "seed-v2-cancel-and-draining-timing": {"clean", "sent:CANCEL", "sent:DRAINING", "finished"},
}


def test_every_link_seed_has_its_expectations():
    assert LINK_REACHES.keys() == targets.seeds()["link"].keys()


@pytest.mark.parametrize("name", sorted(LINK_REACHES))
def test_link_seed_reaches_deep_states(name):
    run = targets.run_link(targets.seeds()["link"][name])
    reached = run.reached | ({"clean"} if not run.tainted else set())
    assert LINK_REACHES[name] <= reached, sorted(LINK_REACHES[name] - reached)


# -- fixed-seed mutation smoke run ---------------------------------------------------------


def mutate(rng: random.Random, data: bytes, lengths: list[int], target: str) -> bytes:
    """1-4 random edits: bit flips, truncation, duplication, insertion, length fields."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        edit = rng.randrange(6)
        if edit == 0 and buf:
            buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
        elif edit == 1 and buf:
            del buf[rng.randrange(len(buf)) :]
        elif edit == 2 and buf:
            start = rng.randrange(len(buf))
            piece = buf[start : start + rng.randint(1, 64)]
            at = rng.randrange(len(buf) + 1)
            buf[at:at] = piece
        elif edit == 3:
            at = rng.randrange(len(buf) + 1)
            buf[at:at] = rng.randbytes(rng.randint(1, 8))
        elif edit == 4 and buf:
            buf[rng.randrange(len(buf))] = rng.choice((0, 1, 0x7F, 0x80, 0xC0, 0xFF))
        else:
            _edit_length(rng, buf, rng.choice(lengths), target)
    return bytes(buf)


def _edit_length(rng: random.Random, buf: bytearray, length: int, target: str) -> None:
    if target == "hello":  # a msgpack str32 / array32 / bin32 header in place of a byte
        at = rng.randrange(len(buf) + 1)
        buf[at : at + 1] = bytes([rng.choice((0xDB, 0xDD, 0xC6))]) + length.to_bytes(4, "big")
        return
    # A frame header: our version, a known kind, flags it may carry; its length field follows.
    headers = [
        i
        for i in range(len(buf) - 7)
        if buf[i] == PROTOCOL_VERSION
        and buf[i + 1] in KIND_FLAGS
        and not (buf[i + 2] << 8 | buf[i + 3]) & ~KIND_FLAGS[buf[i + 1]]
    ]
    if headers:
        at = rng.choice(headers) + 4
        buf[at : at + 4] = length.to_bytes(4, "big")


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_mutation_smoke_run(target):
    rng = random.Random(1234)
    function = TARGETS[target]
    inputs = [
        path.read_bytes()
        for name, path in corpus_files()
        if name == target and f"{name}/{path.name}" not in KNOWN_BUGS
    ]
    deadline = time.monotonic() + SMOKE_SECONDS
    for iteration in range(SMOKE_ITERATIONS[target]):
        if time.monotonic() > deadline:
            break
        data = mutate(rng, rng.choice(inputs), LENGTHS[target], target)
        try:
            function(data)
        except targets.Violation as exc:
            if targets.is_known_bug(exc):
                continue  # a known bug (KNOWN_BUGS), already in the corpus
            pytest.fail(
                f"{target} iteration {iteration}: {exc!r}\n"
                f"reproduce: targets.fuzz_{target}(bytes.fromhex({data.hex()!r}))",
                pytrace=True,
            )
        except Exception as exc:
            pytest.fail(
                f"{target} iteration {iteration}: {exc!r}\n"
                f"reproduce: targets.fuzz_{target}(bytes.fromhex({data.hex()!r}))",
                pytrace=True,
            )
