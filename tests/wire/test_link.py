"""`LinkProtocol`: two links wired in memory (the aioquic roundtrip pattern)."""

from __future__ import annotations

from typing import TypeVar

import msgspec
import pytest
from hypothesis import example, given, strategies as st

from qrpc.codes import ErrorCode
from qrpc.errors import BadHello, PeerDisconnected
from qrpc.wire.decoder import FrameDecoder
from qrpc.wire.events import (
    CreditReceived,
    ErrorReceived,
    GoodbyeReceived,
    HelloReceived,
    LinkEvent,
    LinkFailed,
    MessageReceived,
    RequestReceived,
    ResponseReceived,
)
from qrpc.wire.frames import (
    HEADER_SIZE,
    Frame,
    FrameKind,
    encode_code_text,
    encode_frame,
    encode_header,
)
from qrpc.wire.hello import MIN_WINDOW, Hello, decode_hello, encode_hello
from qrpc.wire.link import MAX_HELLO_SIZE, LinkProtocol, LinkState

MAX_FRAME = 4096
WINDOW = 8192  # credit fraction 1/8: CREDIT is granted once 1024 bytes are consumed
IDLE_GRANT = WINDOW // 64  # when idle, credit is granted once 128 bytes are consumed
MAX_ROUNDS = 32

E = TypeVar("E", bound=LinkEvent)


# -- helpers ---------------------------------------------------------------------------


def make_hello(node_id: str = "node-a", window: int = WINDOW) -> Hello:
    return Hello(
        node_id=node_id,
        incarnation=7,
        codecs=["msgpack"],
        max_frame_size=MAX_FRAME,
        window=window,
    )


def new_link(window: int = WINDOW) -> LinkProtocol:
    return LinkProtocol(max_frame_size=MAX_FRAME, window=window)


def transfer(src: LinkProtocol, dst: LinkProtocol) -> int:
    """Move what `src` wants to send into `dst`; return the byte count."""
    data = src.data_to_send()
    if data:
        dst.receive_data(data)
    return len(data)


def roundtrip(a: LinkProtocol, b: LinkProtocol, max_rounds: int = MAX_ROUNDS) -> int:
    """Transfer both ways until neither side has anything to send; return the rounds."""
    for rounds in range(max_rounds):
        if transfer(a, b) + transfer(b, a) == 0:
            return rounds
    raise AssertionError(f"links still talking after {max_rounds} rounds (livelock?)")


def drop(link: LinkProtocol) -> bytes:
    """Discard (and return) what `link` wants to send, as if it was lost."""
    return link.data_to_send()


def link_pair(window_a: int = WINDOW, window_b: int = WINDOW) -> tuple[LinkProtocol, LinkProtocol]:
    """Two OPEN, admitted links after the HELLO exchange, with their events drained."""
    a, b = new_link(window_a), new_link(window_b)
    a.send_hello(make_hello("node-a", window_a))
    b.send_hello(make_hello("node-b", window_b))
    roundtrip(a, b)
    a.admit()
    b.admit()
    assert a.state is LinkState.OPEN
    assert b.state is LinkState.OPEN
    assert [type(e) for e in a.events()] == [HelloReceived]
    assert [type(e) for e in b.events()] == [HelloReceived]
    return a, b


def only(events: list[LinkEvent], type_: type[E]) -> E:
    """The single event in `events`, checked to be a `type_`."""
    assert len(events) == 1, events
    event = events[0]
    assert isinstance(event, type_), event
    return event


def failure(link: LinkProtocol) -> LinkFailed:
    """The link's single pending event, a LinkFailed; the link must now be CLOSED."""
    event = only(link.events(), LinkFailed)
    assert link.state is LinkState.CLOSED
    return event


def frames_of(data: bytes) -> list[Frame]:
    decoder = FrameDecoder(MAX_FRAME)
    decoder.feed(data)
    frames: list[Frame] = []
    for _ in range(len(data) // HEADER_SIZE + 1):
        frame = decoder.next_frame()
        if frame is None:
            assert decoder.buffered == 0
            return frames
        frames.append(frame)
    raise AssertionError("unreachable: more frames than headers")


def message_size(body: bytes) -> int:
    return HEADER_SIZE + len(body)


def credit_frame(amount: int) -> bytes:
    return encode_frame(FrameKind.CREDIT, amount.to_bytes(4, "big"))


# -- HELLO exchange --------------------------------------------------------------------


def test_new_link_starts_in_hello_state():
    link = new_link()
    assert link.state is LinkState.HELLO
    assert link.peer_hello is None
    assert link.peer_goodbye is None
    assert link.send.available == 0
    assert link.receive.used == 0
    assert link.send.pending_bytes == 0
    assert link.data_to_send() == b""
    assert link.events() == []


def test_send_hello_emits_one_hello_frame():
    link = new_link()
    hello = make_hello()
    link.send_hello(hello)
    assert frames_of(link.data_to_send()) == [
        Frame(FrameKind.HELLO, 0, 0, encode_hello(hello)),
    ]
    assert link.data_to_send() == b""
    assert link.state is LinkState.HELLO


def test_hello_exchange_opens_both_links():
    a, b = new_link(), new_link()
    a.send_hello(make_hello("node-a"))
    transfer(a, b)
    assert (a.state, b.state) == (LinkState.HELLO, LinkState.HELLO)  # b has not sent HELLO
    b.send_hello(make_hello("node-b"))
    assert (a.state, b.state) == (LinkState.HELLO, LinkState.OPEN)
    transfer(b, a)
    assert (a.state, b.state) == (LinkState.OPEN, LinkState.OPEN)


def test_hello_received_event_carries_the_peer_hello():
    a, b = new_link(), new_link()
    hello_a = make_hello("node-a", window=MIN_WINDOW * 3)
    a.send_hello(hello_a)
    b.send_hello(make_hello("node-b"))
    roundtrip(a, b)
    event = only(b.events(), HelloReceived)
    assert event.hello == hello_a
    assert b.peer_hello == hello_a
    assert only(a.events(), HelloReceived).hello.node_id == "node-b"


def test_send_credit_is_the_window_from_the_peer_hello():
    a, b = link_pair(window_a=5000, window_b=9000)
    assert a.send.available == 9000
    assert b.send.available == 5000


def test_simultaneous_hellos_open_both_links():
    a, b = new_link(), new_link()
    a.send_hello(make_hello("node-a"))
    b.send_hello(make_hello("node-b"))
    assert roundtrip(a, b) == 1
    assert a.state is LinkState.OPEN
    assert b.state is LinkState.OPEN


def test_send_hello_twice_raises():
    link = new_link()
    link.send_hello(make_hello())
    with pytest.raises(RuntimeError):
        link.send_hello(make_hello())


@pytest.mark.parametrize(
    "frame",
    [
        pytest.param(encode_frame(FrameKind.MESSAGE, b"m", cmd_id=1), id="message"),
        pytest.param(encode_frame(FrameKind.REQUEST, b"r", cmd_id=1, request_id=1), id="request"),
        pytest.param(encode_frame(FrameKind.RESPONSE, request_id=1), id="response"),
        pytest.param(credit_frame(100), id="credit"),
        pytest.param(encode_frame(FrameKind.GOODBYE, encode_code_text(0, "", 256)), id="goodbye"),
    ],
)
def test_frame_before_any_hello_fails_hello_required(frame):
    link = new_link()
    link.send_hello(make_hello())
    link.receive_data(frame)
    assert failure(link).code == ErrorCode.HELLO_REQUIRED


def test_message_after_peer_hello_but_before_ours_fails_hello_required():
    b = new_link()
    b.receive_data(encode_frame(FrameKind.HELLO, encode_hello(make_hello("node-a"))))
    assert only(b.events(), HelloReceived).hello.node_id == "node-a"
    b.receive_data(encode_frame(FrameKind.MESSAGE, b"early", cmd_id=1))
    assert failure(b).code == ErrorCode.HELLO_REQUIRED


@pytest.mark.parametrize(
    "frame",
    [
        pytest.param(encode_frame(FrameKind.RESPONSE, request_id=1), id="response"),
        pytest.param(
            encode_frame(FrameKind.ERROR, encode_code_text(1, "x", 256), request_id=1), id="error"
        ),
        pytest.param(credit_frame(100), id="credit"),
    ],
)
def test_control_frame_after_peer_hello_but_before_ours_fails_hello_required(frame):
    # link.py: "A frame other than HELLO before both HELLOs have been exchanged
    # closes the link with HELLO_REQUIRED".  A correct peer cannot send these
    # before it has received our HELLO.
    link = new_link()
    link.receive_data(encode_frame(FrameKind.HELLO, encode_hello(make_hello("node-a"))))
    only(link.events(), HelloReceived)
    link.receive_data(frame)
    assert failure(link).code == ErrorCode.HELLO_REQUIRED


def test_second_hello_fails_protocol_violation():
    _a, b = link_pair()
    b.receive_data(encode_frame(FrameKind.HELLO, encode_hello(make_hello("node-a"))))
    event = failure(b)
    assert event.code == ErrorCode.PROTOCOL_VIOLATION
    assert event.reason == "second HELLO"


def test_hello_in_the_same_chunk_twice_fails_protocol_violation():
    link = new_link()
    link.send_hello(make_hello("node-b"))
    hello = encode_frame(FrameKind.HELLO, encode_hello(make_hello("node-a")))
    link.receive_data(hello + hello)
    assert [type(e) for e in link.events()] == [HelloReceived]  # the rest waits for admit()
    link.admit()
    event = only(link.events(), LinkFailed)
    assert event.code == ErrorCode.PROTOCOL_VIOLATION
    assert link.state is LinkState.CLOSED


def _hello_body(**overrides: object) -> bytes:
    fields: dict[str, object] = {
        "node_id": "node-a",
        "incarnation": 1,
        "codecs": ["msgpack"],
        "max_frame_size": MAX_FRAME,
        "window": WINDOW,
    }
    fields.update(overrides)
    return msgspec.msgpack.encode(list(fields.values()))


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\xc1", id="never-used-byte"),
        pytest.param(b"\x95", id="truncated-array"),
        pytest.param(_hello_body() + b"\x00", id="trailing-bytes"),
        pytest.param(_hello_body(node_id="Node-A"), id="node-id-not-canonical"),
        pytest.param(_hello_body(node_id=""), id="node-id-empty"),
        pytest.param(_hello_body(node_id="-a"), id="node-id-leading-dash"),
        pytest.param(_hello_body(incarnation=-1), id="incarnation-negative"),
        pytest.param(_hello_body(codecs=[]), id="no-codecs"),
        pytest.param(_hello_body(codecs=[""]), id="empty-codec-name"),
        pytest.param(_hello_body(window=MIN_WINDOW - 1), id="window-too-small"),
        pytest.param(_hello_body(max_frame_size=MIN_WINDOW - 1), id="max-frame-too-small"),
        pytest.param(_hello_body(window=2**32), id="window-above-u32"),
        pytest.param(
            b"\x95\xa6node-\xff\x01\x91\xa7msgpack\xcd\x10\x00\xcd\x20\x00", id="bad-utf8"
        ),
        pytest.param(b"\x93\xa6node-a\x01\x91\xa7msgpack", id="too-few-fields"),
    ],
)
def test_bad_hello_body_fails_bad_hello(body):
    with pytest.raises(BadHello):
        decode_hello(body)
    link = new_link()
    link.send_hello(make_hello("node-b"))
    link.receive_data(encode_frame(FrameKind.HELLO, body))
    assert failure(link).code == ErrorCode.BAD_HELLO
    assert link.peer_hello is None


def test_hello_with_extra_fields_is_accepted():
    link = new_link()
    link.receive_data(encode_frame(FrameKind.HELLO, _hello_body(extra="future")))
    assert only(link.events(), HelloReceived).hello == Hello(
        "node-a", 1, ["msgpack"], MAX_FRAME, WINDOW
    )


def test_hello_at_minimum_limits_is_accepted():
    link = new_link()
    body = _hello_body(window=MIN_WINDOW, max_frame_size=MIN_WINDOW)
    link.receive_data(encode_frame(FrameKind.HELLO, body))
    assert only(link.events(), HelloReceived).hello.window == MIN_WINDOW


# -- events ------------------------------------------------------------------------------


def test_message_event_fields():
    a, b = link_pair()
    a.send_message(42, b"payload")
    transfer(a, b)
    event = only(b.events(), MessageReceived)
    assert (event.cmd_id, event.body, event.size) == (42, b"payload", HEADER_SIZE + 7)


def test_request_event_fields():
    a, b = link_pair()
    a.send_request(3, 99, b"question")
    transfer(a, b)
    event = only(b.events(), RequestReceived)
    assert (event.cmd_id, event.request_id, event.body, event.size) == (
        3,
        99,
        b"question",
        HEADER_SIZE + 8,
    )


def asked(a: LinkProtocol, b: LinkProtocol, *request_ids: int) -> None:
    """`a` sends requests `request_ids` to `b` (so `b` may answer them); events drained."""
    for request_id in request_ids:
        a.send_request(1, request_id, b"?")
    transfer(a, b)
    b.events()


def test_response_event_fields():
    a, b = link_pair()
    asked(a, b, 99)
    b.send_response(99, 4, b"answer")
    transfer(b, a)
    event = only(a.events(), ResponseReceived)
    assert (event.request_id, event.cmd_id, event.body) == (99, 4, b"answer")


def test_response_without_value_has_cmd_id_zero_and_empty_body():
    a, b = link_pair()
    asked(a, b, 5)
    b.send_response(5, 0, b"")
    transfer(b, a)
    event = only(a.events(), ResponseReceived)
    assert (event.request_id, event.cmd_id, event.body) == (5, 0, b"")


def test_response_with_cmd_id_zero_and_a_body_is_malformed():
    a, _b = link_pair()
    a.receive_data(encode_frame(FrameKind.RESPONSE, b"x", cmd_id=0, request_id=5))
    assert failure(a).code == ErrorCode.MALFORMED_FRAME


def test_error_event_fields():
    a, b = link_pair()
    asked(a, b, 17)
    b.send_error(17, 1, "handler raised", 256)
    transfer(b, a)
    event = only(a.events(), ErrorReceived)
    assert (event.request_id, event.code, event.text) == (17, 1, "handler raised")


def test_error_text_is_cut_to_the_limit():
    a, b = link_pair()
    asked(a, b, 1)
    b.send_error(1, 2, "x" * 100, 10)
    transfer(b, a)
    assert only(a.events(), ErrorReceived).text == "xxxxxx"


def test_error_with_invalid_utf8_text_is_replaced_not_failed():
    a, b = link_pair()
    asked(a, b, 3)
    a.receive_data(encode_frame(FrameKind.ERROR, b"\x00\x00\x00\x01\xff", request_id=3))
    event = only(a.events(), ErrorReceived)
    assert (event.request_id, event.code, event.text) == (3, 1, "\ufffd")
    assert a.state is LinkState.OPEN


def test_goodbye_event_fields():
    a, b = link_pair()
    assert b.send_goodbye(ErrorCode.REPLACED, "newer link") == 0
    transfer(b, a)
    event = only(a.events(), GoodbyeReceived)
    assert (event.code, event.reason) == (ErrorCode.REPLACED, "newer link")
    assert a.peer_goodbye is event


def test_credit_event_fields():
    a, _b = link_pair()
    a.send_message(1, b"x" * 284)  # spends 300 bytes of credit
    a.receive_data(credit_frame(300))
    assert only(a.events(), CreditReceived).amount == 300
    assert a.send.available == WINDOW


@pytest.mark.parametrize("spent", [0, 300], ids=["nothing-spent", "some-spent"])
def test_credit_beyond_what_was_spent_fails_flow_control(spent):
    # A peer can only return credit for bytes it received: more is a lie that would
    # let it decide how much this side buffers.
    a, _b = link_pair()
    if spent:
        a.send_message(1, b"x" * (spent - HEADER_SIZE))
    a.receive_data(credit_frame(spent + 1))
    assert failure(a).code == ErrorCode.FLOW_CONTROL


@pytest.mark.parametrize("kind", [FrameKind.RESPONSE, FrameKind.ERROR], ids=["response", "error"])
def test_an_answer_to_a_request_never_sent_fails_protocol_violation(kind):
    a, b = link_pair()
    asked(a, b, 1)
    body = b"\x00\x00\x00\x01no" if kind is FrameKind.ERROR else b""
    a.receive_data(encode_frame(kind, body, request_id=1))  # answers the one request
    assert [type(e) for e in a.events()] != []
    a.receive_data(encode_frame(kind, body, request_id=1))  # a second answer: forged
    assert failure(a).code == ErrorCode.PROTOCOL_VIOLATION


def test_many_frames_in_one_chunk_give_events_in_order():
    a, b = link_pair()
    a.send_message(1, b"one")
    a.send_request(2, 10, b"two")
    a.send_message(3, b"three")
    transfer(a, b)
    events = b.events()
    assert [(type(e).__name__, getattr(e, "cmd_id", None)) for e in events] == [
        ("MessageReceived", 1),
        ("RequestReceived", 2),
        ("MessageReceived", 3),
    ]


def test_frames_split_across_receive_calls():
    a, b = link_pair()
    a.send_message(1, b"split me")
    data = a.data_to_send()
    for i in range(len(data)):
        b.receive_data(data[i : i + 1])
        if i < len(data) - 1:
            assert b.events() == []
    assert only(b.events(), MessageReceived).body == b"split me"


# -- message credit ----------------------------------------------------------------------


def fill_credit(a: LinkProtocol, body: bytes) -> int:
    """Send `body` messages from `a` until its credit is too small; return how many."""
    size = message_size(body)
    count = 0
    for _ in range(a.send.available // size):
        a.send_message(count, body)
        count += 1
    assert a.send.pending_bytes == 0
    assert a.send.available < size
    return count


def test_sending_uses_credit():
    a, _b = link_pair()
    a.send_message(1, b"x" * 100)
    assert a.send.available == WINDOW - 116
    a.send_request(1, 1, b"y" * 10)
    assert a.send.available == WINDOW - 116 - 26


def test_messages_queue_once_credit_runs_out():
    a, _b = link_pair()
    body = b"m" * 1008  # 1024-byte frames: 8 fill the window exactly
    assert fill_credit(a, body) == 8
    assert a.send.available == 0
    sent = a.data_to_send()
    assert len(sent) == 8 * 1024
    a.send_message(100, body)
    a.send_request(101, 1, b"r")
    assert a.send.pending_bytes == 1024 + 17
    assert a.data_to_send() == b""
    assert a.send.available == 0


def test_queued_message_waits_behind_an_earlier_one_even_if_it_would_fit():
    a, _b = link_pair()
    fill_credit(a, b"m" * 1000)  # 8 frames of 1016 bytes: 64 bytes of credit left
    drop(a)
    assert a.send.available == 64
    a.send_message(1, b"x" * 100)  # 116 bytes: queued
    a.send_message(2, b"")  # 16 bytes would fit, but order is kept
    assert a.data_to_send() == b""
    assert a.send.pending_bytes == 132


def test_consumed_below_one_eighth_grants_nothing():
    a, b = link_pair()
    a.send_message(1, b"x" * 100)
    transfer(a, b)
    event = only(b.events(), MessageReceived)
    b.consumed(event.size, idle=False)
    assert b.data_to_send() == b""
    assert b.receive.used == 116


def test_consumed_when_idle_grants_credit_once_1_64_of_the_window_is_handled():
    a, b = link_pair()
    a.send_message(1, b"x" * 100)
    transfer(a, b)
    event = only(b.events(), MessageReceived)
    b.consumed(event.size, idle=True)
    assert b.data_to_send() == b""  # 116 < 128: a small exchange costs no CREDIT frame
    assert b.receive.used == 116
    assert a.send.available == WINDOW - 116 >= MAX_FRAME + HEADER_SIZE
    a.send_message(2, b"y" * 100)
    transfer(a, b)
    event = only(b.events(), MessageReceived)
    b.consumed(event.size, idle=True)
    assert frames_of(b.data_to_send()) == [Frame(FrameKind.CREDIT, 0, 0, (232).to_bytes(4, "big"))]
    assert b.receive.used == 0


def test_idle_credit_goes_back_at_once_when_the_largest_frame_would_not_fit():
    # Window = largest frame + header: any credit held back would block that frame.
    a, b = link_pair(window_b=MAX_FRAME + HEADER_SIZE)
    a.send_message(1, b"x" * 100)
    transfer(a, b)
    event = only(b.events(), MessageReceived)
    b.consumed(event.size, idle=True)
    grant = b.data_to_send()
    assert frames_of(grant) == [Frame(FrameKind.CREDIT, 0, 0, (116).to_bytes(4, "big"))]
    a.receive_data(grant)
    only(a.events(), CreditReceived)
    assert a.send.available == MAX_FRAME + HEADER_SIZE


def test_consumed_grants_credit_after_one_eighth_of_the_window():
    a, b = link_pair()
    body = b"x" * 240  # 256-byte frames: the 4th reaches WINDOW // 8 == 1024
    for i in range(4):
        a.send_message(i, body)
    transfer(a, b)
    events = b.events()
    assert len(events) == 4
    grants: list[bytes] = []
    for event in events:
        assert isinstance(event, MessageReceived)
        b.consumed(event.size, idle=False)
        grants.append(b.data_to_send())
    assert grants[:3] == [b"", b"", b""]
    assert frames_of(grants[3]) == [Frame(FrameKind.CREDIT, 0, 0, (1024).to_bytes(4, "big"))]
    assert b.receive.used == 0


def test_credit_releases_queued_messages_in_order():
    a, b = link_pair()
    body = b"m" * 1008
    fill_credit(a, body)
    transfer(a, b)
    for cmd_id in (100, 101, 102):
        a.send_message(cmd_id, body)
    assert a.send.pending_bytes == 3 * 1024
    received = b.events()
    assert len(received) == 8
    for event in received[:2]:
        assert isinstance(event, MessageReceived)
        b.consumed(event.size, idle=False)  # each reaches 1/8 of the window
    transfer(b, a)
    assert [e.amount for e in a.events() if isinstance(e, CreditReceived)] == [1024, 1024]
    assert a.send.pending_bytes == 1024
    assert a.send.available == 0
    transfer(a, b)
    assert [e.cmd_id for e in b.events() if isinstance(e, MessageReceived)] == [100, 101]
    assert b.receive.used == WINDOW


def test_receiver_accepts_exactly_its_window():
    _a, b = link_pair()
    half = encode_frame(FrameKind.MESSAGE, b"w" * (WINDOW // 2 - HEADER_SIZE), cmd_id=1)
    b.receive_data(half + half)
    assert [e.size for e in b.events() if isinstance(e, MessageReceived)] == [WINDOW // 2] * 2
    assert b.receive.used == WINDOW
    assert b.state is LinkState.OPEN


def test_peer_exceeding_credit_fails_flow_control():
    _a, b = link_pair()
    frame = encode_frame(FrameKind.MESSAGE, b"f" * 1008, cmd_id=1)
    b.receive_data(frame * 8)
    assert len(b.events()) == 8
    assert b.receive.used == WINDOW
    b.receive_data(encode_frame(FrameKind.MESSAGE, cmd_id=1))  # 16 more bytes
    event = failure(b)
    assert event.code == ErrorCode.FLOW_CONTROL
    assert b.receive.used == WINDOW


def test_request_beyond_credit_fails_flow_control():
    _a, b = link_pair(window_b=MIN_WINDOW)
    b.receive_data(encode_frame(FrameKind.REQUEST, b"r" * MIN_WINDOW, cmd_id=1, request_id=1))
    assert failure(b).code == ErrorCode.FLOW_CONTROL


def test_credit_granted_back_lets_the_peer_send_more():
    _a, b = link_pair()
    frame = encode_frame(FrameKind.MESSAGE, b"f" * 1008, cmd_id=1)
    b.receive_data(frame * 8)
    first = b.events()[0]
    assert isinstance(first, MessageReceived)
    b.consumed(first.size, idle=True)
    assert b.receive.used == WINDOW - 1024
    b.receive_data(frame)
    assert only(b.events(), MessageReceived).size == 1024
    assert b.receive.used == WINDOW


def _send_response(link: LinkProtocol) -> None:
    link.send_response(1, 5, b"r" * 2000)


def _send_error(link: LinkProtocol) -> None:
    link.send_error(1, 1, "e" * 2000, 256)


def _send_goodbye(link: LinkProtocol) -> None:
    link.send_goodbye(0, "bye")


@pytest.mark.parametrize(
    ("send", "expected"),
    [
        pytest.param(_send_response, ResponseReceived, id="response"),
        pytest.param(_send_error, ErrorReceived, id="error"),
        pytest.param(_send_goodbye, GoodbyeReceived, id="goodbye"),
    ],
)
def test_replies_are_exempt_from_credit(send, expected):
    a, b = link_pair()
    asked(a, b, 1)
    fill_credit(b, b"m" * 1008)
    transfer(b, a)
    assert len(a.events()) == 8
    assert b.send.available == 0
    send(b)
    assert b.send.pending_bytes == 0
    transfer(b, a)
    only(a.events(), expected)
    assert a.state is LinkState.OPEN
    assert b.send.available == 0
    assert a.receive.used == WINDOW  # replies are not counted against the window


def test_credit_frames_are_exempt_from_credit():
    a, b = link_pair()
    fill_credit(a, b"m" * 1008)
    fill_credit(b, b"m" * 1008)
    roundtrip(a, b)
    for event in a.events():
        assert isinstance(event, MessageReceived)
        a.consumed(event.size, idle=True)
    assert a.send.available == 0
    transfer(a, b)
    amounts = [e.amount for e in b.events() if isinstance(e, CreditReceived)]
    assert amounts == [1024] * 8
    assert b.send.available == WINDOW


def test_inbound_window_is_never_exceeded_by_a_well_behaved_sender():
    a, b = link_pair()
    body = b"q" * 500
    for i in range(50):
        a.send_message(i, body)
    received: list[int] = []
    for _ in range(MAX_ROUNDS):
        transfer(a, b)
        assert b.receive.used <= WINDOW
        events = b.events()
        for n, event in enumerate(events):
            assert isinstance(event, MessageReceived)
            received.append(event.cmd_id)
            b.consumed(event.size, idle=n == len(events) - 1)
        transfer(b, a)
        assert all(isinstance(e, CreditReceived) for e in a.events())
        if len(received) == 50:
            break
    assert received == list(range(50))
    assert roundtrip(a, b) == 0
    assert_window_reopened(a, b)


@given(
    sizes=st.lists(st.integers(min_value=0, max_value=MAX_FRAME), min_size=1, max_size=40),
    idle_every=st.integers(min_value=1, max_value=5),
)
@example(sizes=[WINDOW // 2 - HEADER_SIZE] * 2 + [0], idle_every=5)  # fills the window exactly
@example(sizes=[WINDOW // 2 - HEADER_SIZE, WINDOW // 2 - HEADER_SIZE - 1, 0, 0], idle_every=5)
@example(sizes=[MAX_FRAME] * 10, idle_every=5)
def test_credit_flow_delivers_every_message_in_order(sizes, idle_every):
    a, b = link_pair()
    for cmd_id, size in enumerate(sizes):
        a.send_message(cmd_id, bytes(size))
    delivered: list[tuple[int, int]] = []
    handled = 0
    for _ in range(4 * len(sizes) + MAX_ROUNDS):
        transfer(a, b)
        assert b.receive.used <= WINDOW
        events = b.events()
        for n, event in enumerate(events):
            assert isinstance(event, MessageReceived), event
            delivered.append((event.cmd_id, len(event.body)))
            handled += 1
            b.consumed(event.size, idle=n == len(events) - 1 or handled % idle_every == 0)
        transfer(b, a)
        for event in a.events():
            assert isinstance(event, CreditReceived), event
        if len(delivered) == len(sizes):
            break
    assert delivered == list(enumerate(sizes))
    assert_window_reopened(a, b)


def assert_window_reopened(sender: LinkProtocol, receiver: LinkProtocol) -> None:
    """Everything sent was handled: the credit is back, but for an idle remainder
    under 1/64 of the window that still leaves room for the largest frame."""
    assert sender.send.pending_bytes == 0
    assert sender.send.available + receiver.receive.used == WINDOW
    assert receiver.receive.used < IDLE_GRANT
    assert sender.send.available >= MAX_FRAME + HEADER_SIZE


def test_message_queued_before_the_hello_exchange_is_sent_once_open():
    # Credit "is granted by the receiver's HELLO window" (link.py); a message
    # queued before that HELLO arrived must go out when it does.
    a, b = new_link(), new_link()
    a.send_hello(make_hello("node-a"))
    a.send_message(1, b"early")
    assert a.send.pending_bytes == message_size(b"early")
    b.send_hello(make_hello("node-b"))
    roundtrip(a, b)
    assert a.state is LinkState.OPEN
    assert a.send.pending_bytes == 0
    assert [type(e) for e in b.events()] == [HelloReceived]
    b.admit()
    assert [type(e) for e in b.events()] == [MessageReceived]
    assert b.state is LinkState.OPEN


# -- GOODBYE and closing -----------------------------------------------------------------


def test_send_goodbye_moves_to_closing_and_emits_goodbye():
    a, _b = link_pair()
    assert a.send_goodbye(ErrorCode.NO_ERROR, "shutdown") == 0
    assert a.state is LinkState.CLOSING
    assert frames_of(a.data_to_send()) == [
        Frame(FrameKind.GOODBYE, 0, 0, b"\x00\x00\x00\x00shutdown"),
    ]


def test_goodbye_reason_is_cut_to_256_bytes():
    a, b = link_pair()
    a.send_goodbye(1, "r" * 1000)
    transfer(a, b)
    assert only(b.events(), GoodbyeReceived).reason == "r" * 252


def test_send_goodbye_returns_and_drops_queued_messages():
    a, _b = link_pair()
    fill_credit(a, b"m" * 1008)
    a.send_message(1, b"late")
    a.send_request(2, 1, b"later")
    a.send_message(3, b"latest")
    assert a.send_goodbye() == 3
    assert a.send.pending_bytes == 0
    frames = frames_of(a.data_to_send())
    assert [f.kind for f in frames] == [FrameKind.MESSAGE] * 8 + [FrameKind.GOODBYE]


def test_send_goodbye_twice_sends_once():
    a, _b = link_pair()
    a.send_goodbye()
    drop(a)
    assert a.send_goodbye(1, "again") == 0
    assert a.data_to_send() == b""
    assert a.state is LinkState.CLOSING


def test_peer_goodbye_after_ours_closes_the_link():
    a, b = link_pair()
    a.send_goodbye()
    transfer(a, b)
    assert only(b.events(), GoodbyeReceived).code == ErrorCode.NO_ERROR
    assert (a.state, b.state) == (LinkState.CLOSING, LinkState.OPEN)
    b.send_goodbye()
    assert (a.state, b.state) == (LinkState.CLOSING, LinkState.CLOSED)
    transfer(b, a)
    assert only(a.events(), GoodbyeReceived).code == ErrorCode.NO_ERROR
    assert (a.state, b.state) == (LinkState.CLOSED, LinkState.CLOSED)


def test_peer_may_still_send_while_we_are_closing():
    a, b = link_pair()
    asked(a, b, 3)
    a.send_goodbye()
    b.send_message(9, b"in flight")
    b.send_response(3, 1, b"reply")
    transfer(b, a)
    events = a.events()
    assert [type(e) for e in events] == [MessageReceived, ResponseReceived]
    assert a.state is LinkState.CLOSING


def test_consumed_while_closing_sends_no_credit():
    a, b = link_pair()
    b.send_message(9, b"in flight")
    transfer(b, a)
    event = only(a.events(), MessageReceived)
    a.send_goodbye()
    drop(a)
    a.consumed(event.size, idle=True)
    assert a.data_to_send() == b""
    assert a.receive.used == 0


@pytest.mark.parametrize(
    "frame",
    [
        pytest.param(encode_frame(FrameKind.MESSAGE, b"m", cmd_id=1), id="message"),
        pytest.param(encode_frame(FrameKind.REQUEST, b"r", cmd_id=1, request_id=1), id="request"),
        pytest.param(encode_frame(FrameKind.RESPONSE, b"r", cmd_id=1, request_id=1), id="resp"),
        pytest.param(credit_frame(1), id="credit"),
        pytest.param(
            encode_frame(FrameKind.GOODBYE, encode_code_text(0, "", 256)), id="second-goodbye"
        ),
    ],
)
def test_frame_after_peer_goodbye_fails_protocol_violation(frame):
    a, b = link_pair()
    b.send_goodbye()
    transfer(b, a)
    only(a.events(), GoodbyeReceived)
    a.receive_data(frame)
    assert failure(a).code == ErrorCode.PROTOCOL_VIOLATION


def test_goodbye_and_frame_in_one_chunk_fails_after_the_goodbye():
    a, _b = link_pair()
    a.receive_data(
        encode_frame(FrameKind.GOODBYE, encode_code_text(0, "bye", 256))
        + encode_frame(FrameKind.MESSAGE, b"m", cmd_id=1)
    )
    events = a.events()
    assert [type(e) for e in events] == [GoodbyeReceived, LinkFailed]
    assert isinstance(events[1], LinkFailed)
    assert events[1].code == ErrorCode.PROTOCOL_VIOLATION
    assert a.state is LinkState.CLOSED


def test_closed_link_ignores_data():
    a, b = link_pair()
    a.send_goodbye()
    b.send_goodbye()
    roundtrip(a, b)
    a.events()
    a.receive_data(b"\xff" * 64)
    assert a.events() == []
    assert a.state is LinkState.CLOSED


def test_nothing_is_sent_after_goodbye():
    # link.py: "After our GOODBYE nothing more is sent": a message or request raises
    # (never a silent drop); a late reply is dropped (its requester is gone anyway).
    a, b = link_pair()
    a.send_goodbye()
    transfer(a, b)
    b.events()
    with pytest.raises(PeerDisconnected):
        a.send_message(1, b"after goodbye")
    with pytest.raises(PeerDisconnected):
        a.send_request(1, 7, b"after goodbye")
    a.send_response(1, 1, b"reply after goodbye")
    transfer(a, b)
    assert [type(e) for e in b.events()] == []
    assert b.state is LinkState.OPEN


def test_goodbye_before_the_peer_hello_stays_closing():
    a, b = new_link(), new_link()
    a.send_hello(make_hello("node-a"))
    a.send_goodbye(0, "changed my mind")
    assert a.state is LinkState.CLOSING
    b.send_hello(make_hello("node-b"))
    transfer(b, a)
    only(a.events(), HelloReceived)
    assert a.state is LinkState.CLOSING


# -- failure -----------------------------------------------------------------------------


def test_link_failed_is_emitted_once_and_further_data_is_ignored():
    a, _b = link_pair()
    a.receive_data(b"\x02" + bytes(15))  # version 2
    event = failure(a)
    assert event.code == ErrorCode.UNSUPPORTED_VERSION
    a.receive_data(encode_frame(FrameKind.MESSAGE, b"m", cmd_id=1))
    a.receive_data(b"garbage" * 10)
    assert a.events() == []
    assert a.state is LinkState.CLOSED


def test_failure_discards_unsent_output_and_queued_messages():
    a, _b = link_pair()
    fill_credit(a, b"m" * 1008)
    a.send_message(1, b"queued")
    assert a.send.pending_bytes == message_size(b"queued")
    a.receive_data(encode_frame(FrameKind.HELLO, encode_hello(make_hello("node-b"))))
    assert failure(a).code == ErrorCode.PROTOCOL_VIOLATION
    assert a.send.pending_bytes == 0
    assert a.data_to_send() == b""


def test_events_before_a_failure_in_the_same_chunk_are_kept():
    a, b = link_pair()
    b.send_message(1, b"good")
    a.receive_data(b.data_to_send() + b"\x01\x09" + bytes(14))  # then kind 9
    events = a.events()
    assert [type(e) for e in events] == [MessageReceived, LinkFailed]
    assert isinstance(events[1], LinkFailed)
    assert events[1].code == ErrorCode.UNKNOWN_FRAME_KIND


def test_oversized_frame_fails_frame_too_large_on_the_header():
    a, _b = link_pair()
    a.receive_data(encode_header(FrameKind.MESSAGE, MAX_FRAME + 1, cmd_id=1))  # no body
    event = failure(a)
    assert event.code == ErrorCode.FRAME_TOO_LARGE


@given(data=st.binary(max_size=200), cut=st.integers(min_value=0, max_value=200))
@example(data=encode_frame(FrameKind.ERROR, b"\x00\x00\x00\x01\xff", request_id=1), cut=0)
@example(data=encode_frame(FrameKind.HELLO, b"\x95"), cut=17)
@example(data=encode_frame(FrameKind.RESPONSE, b"x", cmd_id=0, request_id=1), cut=3)
def test_open_link_survives_arbitrary_bytes(data, cut):
    a, _b = link_pair()
    a.receive_data(data[:cut])
    a.receive_data(data[cut:])
    events = a.events()
    failures = [e for e in events if isinstance(e, LinkFailed)]
    assert len(failures) <= 1
    if failures:
        assert events[-1] is failures[0]
        assert isinstance(failures[0].code, int)
        assert failures[0].code != ErrorCode.NO_ERROR
        assert a.state is LinkState.CLOSED
    else:
        assert a.state is LinkState.OPEN
    assert a.receive.used <= WINDOW


# -- admission: small frames before HELLO, nothing parsed after it until admit() --------


def test_a_frame_larger_than_a_hello_before_the_hello_is_refused_on_its_header():
    link = new_link()
    link.receive_data(encode_header(FrameKind.HELLO, MAX_HELLO_SIZE + 1))
    event = failure(link)
    assert event.code == ErrorCode.FRAME_TOO_LARGE


def test_the_dialer_holds_what_follows_the_peers_hello_until_admit():
    dialer, acceptor = new_link(), new_link()
    dialer.send_hello(make_hello("node-a"))
    transfer(dialer, acceptor)
    acceptor.send_hello(make_hello("node-b"))
    acceptor.admit()  # nothing held on the acceptor: its link opened on its own HELLO
    acceptor.send_message(1, b"right after the hello")
    transfer(acceptor, dialer)
    assert [type(e) for e in dialer.events()] == [HelloReceived]
    assert dialer.receive.used == 0  # held, not counted, not acted on
    dialer.admit()
    message = only(dialer.events(), MessageReceived)
    assert message.body == b"right after the hello"
    dialer.admit()  # a second admit is a no-op
    assert dialer.events() == []


def test_more_than_the_window_before_admission_fails_early_data_limit():
    dialer = new_link(window=64 * 1024)
    dialer.send_hello(make_hello("node-a"))
    dialer.receive_data(encode_frame(FrameKind.HELLO, encode_hello(make_hello("node-b"))))
    assert [type(e) for e in dialer.events()] == [HelloReceived]
    junk = encode_frame(FrameKind.RESPONSE, request_id=1) * 1024  # 16 KiB, credit-exempt
    for _ in range(9):  # 144 KiB: more than the 64 KiB window plus MAX_HELLO_SIZE
        dialer.receive_data(junk)
    event = failure(dialer)
    assert event.code == ErrorCode.EARLY_DATA_LIMIT


def test_the_acceptor_refuses_anything_but_goodbye_before_its_own_hello():
    acceptor = new_link()
    hello = encode_frame(FrameKind.HELLO, encode_hello(make_hello("node-a")))
    acceptor.receive_data(hello + encode_frame(FrameKind.MESSAGE, b"x", cmd_id=1))
    events = acceptor.events()
    assert [type(e) for e in events] == [HelloReceived, LinkFailed]
    assert isinstance(events[1], LinkFailed)
    assert events[1].code == ErrorCode.HELLO_REQUIRED
