"""`FrameWriter.cancel` on a request that still waits for credit drops it unsent."""

from __future__ import annotations

from qrpc.wire.frames import HEADER_SIZE, FrameKind
from qrpc.wire.writer import FrameWriter
from tests.wire.test_link import frames_of


def test_a_request_waiting_for_credit_is_dropped_not_cancelled() -> None:
    writer = FrameWriter()
    writer.hello_sent = True
    writer.open(HEADER_SIZE + 10)  # room for one small frame
    writer.request(1, 7, b"0123456789")  # fits: on the wire
    writer.request(1, 8, b"waits")  # no credit left: queued
    assert writer.credit.pending_bytes == HEADER_SIZE + 5
    writer.cancel(8)
    assert writer.credit.pending_bytes == 0
    assert writer.unanswered == 1  # only request 7 can be answered now
    writer.cancel(7)
    kinds = [(f.kind, f.request_id) for f in frames_of(writer.take())]
    assert kinds == [(FrameKind.REQUEST, 7), (FrameKind.CANCEL, 7)]
