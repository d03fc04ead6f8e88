"""qrpc.policy as tables: failure kinds, backoff delays, the duplicate-link tie-break."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from qrpc.codes import ErrorCode
from qrpc.errors import (
    AddressError,
    ConfigError,
    ConnectionLimitReached,
    ConnectionRefused,
    ConnectTimeout,
    DuplicateLink,
    NoCommonCodec,
    PeerAuthError,
    PeerIdMismatch,
    SelfConnection,
)
from qrpc.policy import (
    FAILURE_KINDS,
    Backoff,
    FailureKind,
    LinkFacts,
    Resolution,
    classify_failure,
    resolve_duplicate,
)

PERMANENT = FailureKind.PERMANENT
TRANSIENT = FailureKind.TRANSIENT
KEEP = Resolution.KEEP_EXISTING
REPLACE = Resolution.REPLACE_EXISTING

# -- failure kinds ------------------------------------------------------------------

_FAILURES = [
    pytest.param(PeerAuthError("certificate expired", alert=45), PERMANENT, id="PeerAuthError"),
    pytest.param(PeerIdMismatch("01AAA", "01BBB"), PERMANENT, id="PeerIdMismatch"),
    pytest.param(SelfConnection("dialed myself"), PERMANENT, id="SelfConnection"),
    pytest.param(AddressError("no such host"), TRANSIENT, id="AddressError"),
    pytest.param(
        NoCommonCodec(ErrorCode.NO_COMMON_CODEC, "json vs msgpack"), PERMANENT, id="NoCommonCodec"
    ),
    pytest.param(ConfigError("peers[0]", "bad port"), PERMANENT, id="ConfigError"),
    pytest.param(ConnectTimeout("no handshake in 5 s"), TRANSIENT, id="ConnectTimeout"),
    pytest.param(ConnectionRefused(ErrorCode.AUTH_REJECTED, ""), TRANSIENT, id="ConnectionRefused"),
    pytest.param(
        ConnectionLimitReached(ErrorCode.CONNECTION_LIMIT, "full"),
        TRANSIENT,
        id="ConnectionLimitReached",
    ),
    pytest.param(
        DuplicateLink(ErrorCode.DUPLICATE_LINK, "have one"), TRANSIENT, id="DuplicateLink"
    ),
    pytest.param(OSError(101, "Network is unreachable"), TRANSIENT, id="OSError"),
    pytest.param(ConnectionRefusedError(111, "refused"), TRANSIENT, id="ConnectionRefusedError"),
    pytest.param(TimeoutError(), TRANSIENT, id="TimeoutError"),
    pytest.param(RuntimeError("surprise"), TRANSIENT, id="RuntimeError"),
    pytest.param(ValueError("surprise"), TRANSIENT, id="ValueError"),
]


@pytest.mark.parametrize(("error", "kind"), _FAILURES)
def test_classify_failure(error: BaseException, kind: FailureKind) -> None:
    assert classify_failure(error) is kind


def test_failure_kinds_table_has_no_shadowed_rows() -> None:
    """First match wins, so no row may be a subclass of an earlier row."""
    for (i, (earlier, _)), (j, (later, _)) in itertools.combinations(enumerate(FAILURE_KINDS), 2):
        assert not issubclass(later, earlier), f"row {j} ({later}) is shadowed by row {i}"


def test_failure_kind_values() -> None:
    assert [kind.value for kind in FailureKind] == ["transient", "permanent"]


# -- backoff ---------------------------------------------------------------------------

DEFAULT_SEQUENCE = [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


@pytest.mark.parametrize(
    ("attempt", "delay"),
    list(enumerate(DEFAULT_SEQUENCE, start=1)),
    ids=[f"attempt-{n}" for n in range(1, len(DEFAULT_SEQUENCE) + 1)],
)
def test_backoff_default_sequence_without_jitter(attempt: int, delay: float) -> None:
    assert Backoff(jitter=0).delay(attempt) == delay


def test_backoff_defaults() -> None:
    assert Backoff() == Backoff(base=1.0, factor=2.0, cap=30.0, jitter=0.2)


@pytest.mark.parametrize(
    ("backoff", "delays"),
    [
        pytest.param(
            Backoff(base=0.5, factor=3, cap=10, jitter=0), [0.5, 1.5, 4.5, 10, 10], id="x3"
        ),
        pytest.param(Backoff(base=2, factor=1, cap=2, jitter=0), [2, 2, 2, 2, 2], id="constant"),
        pytest.param(Backoff(base=5, cap=5, jitter=0), [5, 5, 5, 5, 5], id="cap-equals-base"),
    ],
)
def test_backoff_custom_sequences(backoff: Backoff, delays: list[float]) -> None:
    assert [backoff.delay(n) for n in range(1, 6)] == delays


@pytest.mark.parametrize("attempt", [0, -1, -(10**9)], ids=["zero", "minus-one", "very-negative"])
def test_backoff_attempts_below_one_count_as_the_first(attempt: int) -> None:
    assert Backoff(jitter=0).delay(attempt) == 1.0


@pytest.mark.parametrize("attempt", [64, 65, 1000, 10**9, 2**64, 10**100])
def test_backoff_huge_attempt_stays_at_the_cap(attempt: int) -> None:
    assert Backoff(jitter=0).delay(attempt) == 30.0


@pytest.mark.parametrize("factor", [10.0, 1e6, 1e100], ids=["x10", "x1e6", "x1e100"])
def test_backoff_huge_attempt_with_a_large_factor_stays_at_the_cap(factor: float) -> None:
    """A valid Backoff must give a delay for every attempt, never OverflowError."""
    backoff = Backoff(factor=factor, jitter=0)
    assert backoff.delay(10**6) == 30.0


def test_backoff_with_jitter_stays_within_twenty_percent() -> None:
    backoff = Backoff()
    rng = random.Random(20240601)
    for attempt in range(1, 40):
        base = Backoff(jitter=0).delay(attempt)
        for _ in range(50):
            delay = backoff.delay(attempt, rng)
            assert base * 0.8 <= delay <= base * 1.2, (attempt, delay)


def test_backoff_jitter_actually_spreads() -> None:
    rng = random.Random(7)
    delays = {Backoff().delay(6, rng) for _ in range(100)}
    assert len(delays) == 100
    assert min(delays) < 30.0 < max(delays)


def test_backoff_jitter_is_reproducible_with_the_same_seed() -> None:
    backoff = Backoff()
    first = [backoff.delay(n, random.Random(1234)) for n in range(1, 10)]
    second = [backoff.delay(n, random.Random(1234)) for n in range(1, 10)]
    assert first == second
    one_rng = random.Random(99)
    again_rng = random.Random(99)
    assert [backoff.delay(n, one_rng) for n in range(1, 10)] == [
        backoff.delay(n, again_rng) for n in range(1, 10)
    ]


def test_backoff_jitter_uses_the_given_rng_exactly() -> None:
    expected_spread = random.Random(5).uniform(-0.2, 0.2)
    assert Backoff().delay(3, random.Random(5)) == 4.0 * (1 + expected_spread)


def test_backoff_is_frozen() -> None:
    backoff = Backoff()
    with pytest.raises(AttributeError):
        backoff.base = 5.0  # type: ignore[misc]


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"base": 0}, id="base-zero"),
        pytest.param({"base": -1}, id="base-negative"),
        pytest.param({"base": math.nan}, id="base-nan"),
        pytest.param({"factor": 0.5}, id="factor-below-one"),
        pytest.param({"factor": math.nan}, id="factor-nan"),
        pytest.param({"cap": 0.5}, id="cap-below-base"),
        pytest.param({"cap": math.nan}, id="cap-nan"),
        pytest.param({"jitter": -0.1}, id="jitter-negative"),
        pytest.param({"jitter": 1.0}, id="jitter-one"),
        pytest.param({"jitter": math.nan}, id="jitter-nan"),
    ],
)
def test_backoff_refuses_invalid_arguments(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError) as excinfo:
        Backoff(**kwargs)
    assert excinfo.value.path == "Backoff"
    assert excinfo.value.reason == (
        "need base > 0, factor >= 1, cap >= base, 0 <= jitter < 1 and stable_after >= 0"
    )


# -- duplicate links --------------------------------------------------------------------

LOW = "01HZZZLOWLOWLOWLOWLOWLOWLO"
HIGH = "01JZZZHIGHHIGHHIGHHIGHHIGH"


def _facts(dialer: str, incarnation: int | None) -> LinkFacts:
    return LinkFacts(dialed_by_local=dialer == "local", incarnation=incarnation)


# (local ID, peer ID, existing link, new link, expected); a link is (who dialed it,
# the peer's incarnation as seen on it).
_DUPLICATES = [
    # 1. different incarnation: the peer restarted, whoever dialed
    ("restart-same-dialer", LOW, HIGH, ("local", 1), ("local", 2), REPLACE),
    ("restart-different-dialers", LOW, HIGH, ("local", 1), ("peer", 2), REPLACE),
    ("restart-seen-by-high", HIGH, LOW, ("peer", 1), ("local", 2), REPLACE),
    ("restart-lower-incarnation", LOW, HIGH, ("local", 2), ("local", 1), REPLACE),
    # 2. same incarnation, same dialer: the newest link wins
    ("same-dialer-local", LOW, HIGH, ("local", 5), ("local", 5), REPLACE),
    ("same-dialer-peer", LOW, HIGH, ("peer", 5), ("peer", 5), REPLACE),
    ("same-dialer-local-high", HIGH, LOW, ("local", 5), ("local", 5), REPLACE),
    ("same-dialer-peer-high", HIGH, LOW, ("peer", 5), ("peer", 5), REPLACE),
    # 3. same incarnation, different dialers: the link dialed by the lower ID wins
    ("low-local-existing-dialed-by-low", LOW, HIGH, ("local", 5), ("peer", 5), KEEP),
    ("low-local-new-dialed-by-low", LOW, HIGH, ("peer", 5), ("local", 5), REPLACE),
    ("high-local-existing-dialed-by-low", HIGH, LOW, ("peer", 5), ("local", 5), KEEP),
    ("high-local-new-dialed-by-low", HIGH, LOW, ("local", 5), ("peer", 5), REPLACE),
    # an unknown incarnation (dial in flight) skips rule 1
    ("existing-unknown-keep", LOW, HIGH, ("local", None), ("peer", 9), KEEP),
    ("existing-unknown-replace", LOW, HIGH, ("peer", None), ("local", 9), REPLACE),
    ("existing-unknown-same-dialer", LOW, HIGH, ("local", None), ("local", 9), REPLACE),
    ("new-unknown-keep", LOW, HIGH, ("local", 9), ("peer", None), KEEP),
    ("both-unknown-keep", LOW, HIGH, ("local", None), ("peer", None), KEEP),
    ("both-unknown-replace", HIGH, LOW, ("local", None), ("peer", None), REPLACE),
]


@pytest.mark.parametrize(
    ("local_id", "peer_id", "existing", "new", "expected"),
    [pytest.param(*row[1:], id=row[0]) for row in _DUPLICATES],
)
def test_resolve_duplicate(
    local_id: str,
    peer_id: str,
    existing: tuple[str, int | None],
    new: tuple[str, int | None],
    expected: Resolution,
) -> None:
    resolution = resolve_duplicate(
        local_id=local_id, peer_id=peer_id, existing=_facts(*existing), new=_facts(*new)
    )
    assert resolution is expected


def _survivor(node: str, other: str, first: str, second: str, dialers: dict[str, str]) -> str:
    """Which physical link `node` keeps when `first` arrived before `second`.

    `dialers` maps a link name to the node that dialed it.
    """
    resolution = resolve_duplicate(
        local_id=node,
        peer_id=other,
        existing=LinkFacts(dialed_by_local=dialers[first] == node, incarnation=1),
        new=LinkFacts(dialed_by_local=dialers[second] == node, incarnation=1),
    )
    return first if resolution is KEEP else second


@pytest.mark.parametrize(
    ("a_order", "b_order"),
    [
        pytest.param(("a-dialed", "b-dialed"), ("a-dialed", "b-dialed"), id="same-order"),
        pytest.param(("a-dialed", "b-dialed"), ("b-dialed", "a-dialed"), id="a-first-b-reversed"),
        pytest.param(("b-dialed", "a-dialed"), ("a-dialed", "b-dialed"), id="b-first-a-reversed"),
        pytest.param(("b-dialed", "a-dialed"), ("b-dialed", "a-dialed"), id="both-reversed"),
    ],
)
@pytest.mark.parametrize(("a", "b"), [(LOW, HIGH), (HIGH, LOW)], ids=["a-is-low", "a-is-high"])
def test_simultaneous_dial_both_sides_keep_the_same_link(
    a: str, b: str, a_order: tuple[str, str], b_order: tuple[str, str]
) -> None:
    dialers = {"a-dialed": a, "b-dialed": b}
    kept_by_a = _survivor(a, b, *a_order, dialers)
    kept_by_b = _survivor(b, a, *b_order, dialers)
    assert kept_by_a == kept_by_b
    assert dialers[kept_by_a] == min(a, b)


def test_tie_break_compares_ids_as_strings() -> None:
    # "9" < "A" in ASCII and in Crockford base32 order alike
    assert (
        resolve_duplicate(
            local_id="9ZZZ", peer_id="A000", existing=LinkFacts(True, 1), new=LinkFacts(False, 1)
        )
        is KEEP
    )
