"""Waiting on tasks with deadlines: shutdown never hangs on code that will not stop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterable
from typing import Any, Final

__all__ = ["STOP_GRACE", "bounded", "cancel_within"]

log = logging.getLogger("qrpc.node")
STOP_GRACE: Final = 1.0  # seconds cancelled tasks get to finish before they are abandoned


async def bounded(deadline: float, *aws: Awaitable[Any]) -> None:
    """Await `aws` together until the loop time `deadline`, then cancel what is left."""
    if not aws:
        return
    remaining = max(0.0, deadline - asyncio.get_running_loop().time())
    tasks = [asyncio.ensure_future(a) for a in aws]
    _, pending = await asyncio.wait(tasks, timeout=remaining)
    for task in pending:
        task.cancel()
    await cancel_within(pending, STOP_GRACE, "waits")


async def cancel_within(
    tasks: Iterable[asyncio.Task[Any] | asyncio.Future[Any]], grace: float, what: str
) -> None:
    """Cancel `tasks` and wait at most `grace` seconds for them to end.

    A task that swallows its cancellation is abandoned with a WARNING naming
    it, rather than hanging the caller (typically `Node.close`).
    """
    tasks = [task for task in tasks if not task.done()]
    if not tasks:
        return
    for task in tasks:
        task.cancel()
    _, stuck = await asyncio.wait(tasks, timeout=grace)
    for task in stuck:
        name = task.get_name() if isinstance(task, asyncio.Task) else repr(task)
        log.warning(
            "%s: %s did not stop within %.1f s of being cancelled; abandoned", what, name, grace
        )
