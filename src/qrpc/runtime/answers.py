"""How a request is answered when its handler does not return normally.

A handler that raises answers HANDLER_ERROR (a built-in service's `Refusal`
its own code); one cancelled at its deadline or by the requester's CANCEL
answers DEADLINE_EXCEEDED or CANCELLED; what nobody waits for is logged.
"""

from __future__ import annotations

import asyncio
import logging

from qrpc.codes import RemoteErrorCode
from qrpc.runtime.context import Context
from qrpc.runtime.handlers import Refusal
from qrpc.runtime.link import PeerLink

__all__ = ["handler_failed", "handler_stopped"]

log = logging.getLogger("qrpc.node")


def handler_stopped(ctx: Context, link: PeerLink, cancelled: bool) -> None:
    """The handler was cancelled at its deadline or by the requester's CANCEL:
    answer the request (unless it already was)."""
    ctx.handler_returned()
    if ctx.replied:
        return
    if cancelled:
        code, text = RemoteErrorCode.CANCELLED, "the requester cancelled the request"
    else:
        code, text = RemoteErrorCode.DEADLINE_EXCEEDED, "the request's deadline passed"
    log.info("handler for a request from %s stopped: %s", link.peer_id, text)
    link.outbox.fail_request(ctx.request_id, code, text)


def handler_failed(ctx: Context, link: PeerLink, cmd_id: int, error: BaseException) -> None:
    """The handler raised `error`: answer the request with it, or log it when
    nobody waits for it (a one-way message, or a request already answered)."""
    request_id = ctx.request_id
    if request_id:
        ctx.handler_returned()
    if not request_id or ctx.replied:  # nobody waits for this failure: log it
        log.error(
            "handler for cmd_id %d from %s raised%s: %s",
            cmd_id,
            link.peer_id,
            " after replying" if request_id else "",
            _describe(error),
            exc_info=error,
        )
        return
    if isinstance(error, Refusal):  # a built-in service said no, with its own code
        link.outbox.fail_request(request_id, error.code, str(error))
        return
    log.info("handler for cmd_id %d from %s raised %r", cmd_id, link.peer_id, error)
    link.outbox.fail_request(request_id, RemoteErrorCode.HANDLER_ERROR, _describe(error))


def _describe(error: BaseException) -> str:
    if isinstance(error, asyncio.CancelledError):
        return "the handler raised CancelledError without being cancelled"
    return f"{type(error).__name__}: {error}"
