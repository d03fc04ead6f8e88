"""qrpc plugin: redial a bootstrap peer after a fixed delay, at most N times in a row.

It implements `qrpc_next_reconnect_delay` (a *firstresult* hook), replacing
qrpc's built-in exponential `Backoff` for the nodes it is registered with:

- a **permanent** failure (refused certificate, node ID mismatch,
  unusable address, ...) still stops the dial loop at once;
- after failed attempt number ``max_attempts`` in a row the loop stops
  (the node reports ``ConnectFailed(retry_in=None)``); a successful link
  resets the count;
- otherwise the loop waits ``delay`` seconds, without jitter.

Two ways to use it:

- **In code**: ``Node(..., plugins=[FixedDelay(2.0, max_attempts=10)])``.
- **Installed** (entry point ``reconnect-fixed`` in group ``qrpc``): set
  ``QRPC_RECONNECT_DELAY`` (seconds) and/or ``QRPC_RECONNECT_MAX_ATTEMPTS``.
  With only the limit set, delays still come from the node's `Backoff`.
  With neither set the installed plugin has no opinion and qrpc's default
  applies.  The variables are read at each failed attempt, never at import.
  Unusable values are logged at ERROR and ignored (qrpc's default applies);
  `FixedDelay.from_env()` raises instead, for applications that want to
  check them at start.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal

from qrpc import ConfigError, FailureKind, hookimpl

if TYPE_CHECKING:
    from qrpc import Node

__all__ = ["ENV_DELAY", "ENV_MAX_ATTEMPTS", "FixedDelay", "qrpc_next_reconnect_delay"]

ENV_DELAY: Final = "QRPC_RECONNECT_DELAY"
"""Environment variable: seconds between dial attempts (> 0)."""
ENV_MAX_ATTEMPTS: Final = "QRPC_RECONNECT_MAX_ATTEMPTS"
"""Environment variable: failed attempts in a row after which dialing stops (>= 1)."""

log = logging.getLogger("qrpc_reconnect_fixed")


@dataclass(frozen=True, slots=True)
class FixedDelay:
    """A reconnect policy: wait `delay` seconds between attempts, stop after
    `max_attempts` failures in a row or at the first permanent failure.

    Args:
        delay: seconds to wait before the next attempt (> 0).  None: take the
            delay from the next policy (qrpc's `Backoff`) and only enforce
            `max_attempts`.
        max_attempts: failed attempts in a row after which the dial loop
            stops (>= 1); None never stops on transient failures.

    Raises:
        ConfigError: a value is out of range.
    """

    delay: float | None
    max_attempts: int | None = None

    def __post_init__(self) -> None:
        delay = self.delay
        if delay is not None and (
            isinstance(delay, bool)
            or not isinstance(delay, int | float)
            or not (math.isfinite(delay) and delay > 0)
        ):
            raise ConfigError("FixedDelay.delay", f"must be a number of seconds > 0, got {delay!r}")
        limit = self.max_attempts
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 1
        ):
            raise ConfigError("FixedDelay.max_attempts", f"must be an int >= 1, got {limit!r}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> FixedDelay | None:
        """Build the policy ``QRPC_RECONNECT_DELAY`` and ``QRPC_RECONNECT_MAX_ATTEMPTS``
        describe, or return None if neither is set.

        Raises:
            ConfigError: a variable is set to an unusable value (names it).
        """
        env = os.environ if environ is None else environ
        delay_text, limit_text = env.get(ENV_DELAY), env.get(ENV_MAX_ATTEMPTS)
        if delay_text is None and limit_text is None:
            return None
        delay: float | None = None
        limit: int | None = None
        if delay_text is not None:
            try:
                delay = float(delay_text)
            except ValueError:
                delay = math.nan  # refused below, with the variable's name
            if not (math.isfinite(delay) and delay > 0):
                raise ConfigError(ENV_DELAY, f"must be a number of seconds > 0, got {delay_text!r}")
        if limit_text is not None:
            try:
                limit = int(limit_text)
            except ValueError:
                limit = 0
            if limit < 1:
                raise ConfigError(ENV_MAX_ATTEMPTS, f"must be an int >= 1, got {limit_text!r}")
        return cls(delay, limit)

    def next_delay(self, attempt: int, kind: FailureKind) -> float | Literal[False] | None:
        """Decide after failed attempt number `attempt` (1-based): seconds to
        wait, False to stop, or None to let the next policy choose the delay."""
        if kind is FailureKind.PERMANENT:
            return False
        if self.max_attempts is not None and attempt >= self.max_attempts:
            return False
        return self.delay

    @hookimpl
    def qrpc_next_reconnect_delay(
        self, attempt: int, kind: FailureKind
    ) -> float | Literal[False] | None:
        """The policy as a qrpc plugin; see `next_delay`."""
        return self.next_delay(attempt, kind)


def plugin_status() -> str:
    """One line for ``qrpc plugins``: active or inert, and how to change it."""
    if os.environ.get(ENV_DELAY) is None and os.environ.get(ENV_MAX_ATTEMPTS) is None:
        return f"inert: set {ENV_DELAY} and/or {ENV_MAX_ATTEMPTS} to replace the backoff"
    return f"active: redial policy from {ENV_DELAY} / {ENV_MAX_ATTEMPTS}"


@hookimpl
def qrpc_next_reconnect_delay(
    node: Node, attempt: int, kind: FailureKind
) -> float | Literal[False] | None:
    """The installed plugin: apply the policy from the environment, if any."""
    try:
        policy = FixedDelay.from_env()
    except ConfigError as exc:
        log.error("node %s: ignoring the reconnect settings: %s", node.id, exc)
        return None
    if policy is None:
        return None
    return policy.next_delay(attempt, kind)
