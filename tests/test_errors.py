"""qrpc.errors: the tree in the docstring is the real one, and each class keeps its promises."""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

import qrpc
from qrpc import errors
from qrpc.codes import ErrorCode, RemoteErrorCode

ALL_CLASSES = [getattr(errors, name) for name in errors.__all__]
FACADE_ERRORS = [name for name in errors.__all__ if name in qrpc.__all__]
# The ProtocolError family is wire-level: applications see it only as a close
# code, so the facade exports the base class alone (see tests/test_exports.py).
WIRE_LEVEL = {
    name
    for name in errors.__all__
    if issubclass(getattr(errors, name), errors.ProtocolError) and name != "ProtocolError"
}


@dataclass(frozen=True)
class Drawn:
    """One line of the drawn tree."""

    name: str
    parent: str | None
    also: tuple[str, ...]


_LINE = re.compile(r"^(?P<prefix>(?:[│ ]   )*(?:[├└]── )?)(?P<name>\w+)(?P<rest>.*)$")
_ALSO = re.compile(r"\(also ([\w, ]+)\)")


def _drawn_tree() -> list[Drawn]:
    doc = errors.__doc__
    assert doc is not None
    lines = doc.split("The tree::", 1)[1].strip("\n").split("\n\n", 1)[0].splitlines()
    lines = [line[4:] for line in lines]  # the literal block is indented by 4
    drawn: list[Drawn] = []
    stack: list[str] = []
    for line in lines:
        match = _LINE.match(line)
        assert match, f"cannot parse tree line {line!r}"
        depth = len(match["prefix"]) // 4
        del stack[depth:]
        also = _ALSO.search(match["rest"])
        drawn.append(
            Drawn(
                name=match["name"],
                parent=stack[-1] if stack else None,
                also=tuple(n.strip() for n in also[1].split(",")) if also else (),
            )
        )
        stack.append(match["name"])
    return drawn


DRAWN = _drawn_tree()


def test_the_drawn_tree_has_one_root() -> None:
    assert [d.name for d in DRAWN if d.parent is None] == ["QrpcError"]


def test_the_drawn_tree_lists_every_class_once() -> None:
    names = [d.name for d in DRAWN]
    assert len(names) == len(set(names))
    assert sorted(names) == sorted(errors.__all__)


def test_every_class_in_the_module_is_in_all() -> None:
    defined = {
        name
        for name, obj in vars(errors).items()
        if inspect.isclass(obj)
        and issubclass(obj, BaseException)
        and obj.__module__ in {"qrpc.errors", "qrpc"}
    }
    assert defined == set(errors.__all__)


@pytest.mark.parametrize("drawn", [d for d in DRAWN if d.parent], ids=lambda d: d.name)
def test_drawn_parent_is_the_real_parent(drawn: Drawn) -> None:
    cls = getattr(errors, drawn.name)
    qrpc_bases = [b for b in cls.__bases__ if issubclass(b, errors.QrpcError)]
    assert [b.__name__ for b in qrpc_bases] == [drawn.parent]


@pytest.mark.parametrize("drawn", [d for d in DRAWN if d.also], ids=lambda d: d.name)
def test_drawn_also_bases_are_real(drawn: Drawn) -> None:
    cls = getattr(errors, drawn.name)
    other_bases = [b.__name__ for b in cls.__bases__ if not issubclass(b, errors.QrpcError)]
    assert other_bases == list(drawn.also)


def test_classes_with_builtin_bases_say_so_in_the_tree() -> None:
    drawn_also = {d.name for d in DRAWN if d.also}
    real = {
        cls.__name__
        for cls in ALL_CLASSES
        if any(not issubclass(b, errors.QrpcError) for b in cls.__bases__)
        and cls is not errors.QrpcError
    }
    assert drawn_also == real


def test_the_codec_tree_is_separate() -> None:
    from qrpc_codecs import CodecError

    assert not issubclass(CodecError, errors.QrpcError)


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=lambda c: c.__name__)
def test_every_class_has_its_own_docstring(cls: type[BaseException]) -> None:
    doc = vars(cls).get("__doc__")
    assert isinstance(doc, str)
    assert len(doc.strip()) >= 20, doc


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=lambda c: c.__name__)
def test_every_class_is_a_qrpc_error(cls: type[BaseException]) -> None:
    assert issubclass(cls, errors.QrpcError)


# -- promised builtin bases -----------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "builtin"),
    [
        pytest.param(errors.RequestTimeout, TimeoutError, id="RequestTimeout-TimeoutError"),
        pytest.param(errors.PeerWaitTimeout, TimeoutError, id="PeerWaitTimeout-TimeoutError"),
        pytest.param(errors.MessageTooLarge, ValueError, id="MessageTooLarge-ValueError"),
        pytest.param(errors.ConfigError, ValueError, id="ConfigError-ValueError"),
        pytest.param(errors.RegistryError, ValueError, id="RegistryError-ValueError"),
        pytest.param(errors.PeerNotFound, KeyError, id="PeerNotFound-KeyError"),
        pytest.param(errors.ConnectTimeout, TimeoutError, id="ConnectTimeout-TimeoutError"),
    ],
)
def test_builtin_base(cls: type[BaseException], builtin: type[BaseException]) -> None:
    assert issubclass(cls, builtin)
    assert issubclass(cls, errors.QrpcError)


def test_request_timeout_is_caught_by_except_timeout_error() -> None:
    with pytest.raises(TimeoutError):
        raise errors.RequestTimeout("no reply in 1 s")


def test_peer_not_found_is_caught_by_except_key_error() -> None:
    with pytest.raises(KeyError) as excinfo:
        raise errors.PeerNotFound("01HZZZ")
    assert str(excinfo.value) == "no live link to peer '01HZZZ'"


def test_peer_not_found_without_args() -> None:
    assert str(errors.PeerNotFound()) == "peer not found"


# -- attributes ------------------------------------------------------------------


def test_config_error_carries_path_and_reason() -> None:
    exc = errors.ConfigError("tls.cert", "file not found")
    assert exc.path == "tls.cert"
    assert exc.reason == "file not found"
    assert str(exc) == "tls.cert: file not found"


def test_config_error_path_may_be_a_path_object() -> None:
    exc = errors.ConfigError(Path("/etc/qrpc/node.key"), "not a PEM key")
    assert exc.path == "/etc/qrpc/node.key"
    assert str(exc) == "/etc/qrpc/node.key: not a PEM key"


def test_message_too_large_carries_size_and_limit() -> None:
    exc = errors.MessageTooLarge(2_000_000, 1_048_576)
    assert (exc.size, exc.limit) == (2_000_000, 1_048_576)
    assert exc.peer_id is None
    assert str(exc) == (
        "encoded message is 2000000 bytes; this node's Limits.max_message_size is 1048576 "
        "bytes: raise it (on the receiving nodes too, which enforce their own), or send "
        "smaller messages"
    )
    peers = errors.MessageTooLarge(2_000_000, 65_536, peer_id="n1")
    assert (peers.size, peers.limit, peers.peer_id) == (2_000_000, 65_536, "n1")
    assert str(peers) == (
        "encoded message is 2000000 bytes; peer n1 announced it accepts at most 65536 bytes: "
        "raise Limits.max_message_size on that receiving node, or send smaller messages"
    )


def test_remote_error_carries_code_and_text() -> None:
    code = next(iter(RemoteErrorCode))
    exc = errors.RemoteError(code, "boom")
    assert (exc.code, exc.text) == (code, "boom")
    assert str(exc) == f"{code.name}: boom"


def test_remote_error_with_an_unknown_code() -> None:
    assert str(errors.RemoteError(0xBEEF, "newer peer")) == f"{0xBEEF}: newer peer"


def test_connection_refused_names_the_code() -> None:
    exc = errors.ConnectionRefused(ErrorCode.CONNECTION_LIMIT, "full")
    assert (exc.code, exc.reason, exc.by_peer) == (ErrorCode.CONNECTION_LIMIT, "full", True)
    assert str(exc) == "peer refused the link: CONNECTION_LIMIT full"
    local = errors.DuplicateLink(0xABCD, "", by_peer=False)
    assert str(local) == "link refused: 0xabcd"


def test_peer_id_mismatch_carries_both_ids() -> None:
    exc = errors.PeerIdMismatch("01AAA", "01BBB", "from certificate")
    assert (exc.expected, exc.actual) == ("01AAA", "01BBB")
    assert str(exc) == "expected node ID '01AAA', peer is '01BBB': from certificate"


def test_peer_auth_error_carries_the_alert() -> None:
    exc = errors.PeerAuthError("certificate expired", alert=45)
    assert (exc.reason, exc.alert) == ("certificate expired", 45)


@pytest.mark.parametrize("name", sorted(WIRE_LEVEL))
def test_protocol_errors_carry_their_close_code(name: str) -> None:
    cls = getattr(errors, name)
    exc = cls("details")
    assert isinstance(exc.code, ErrorCode)
    assert exc.code is not errors.ProtocolError.code
    assert exc.reason == "details"
    assert str(exc) == f"{exc.code.name}: details"


def test_protocol_close_codes_are_distinct() -> None:
    codes = [getattr(errors, name).code for name in WIRE_LEVEL | {"ProtocolError"}]
    assert len(codes) == len(set(codes))


# -- the facade --------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(set(errors.__all__) - WIRE_LEVEL))
def test_error_is_reachable_from_the_facade(name: str) -> None:
    assert name in qrpc.__all__
    assert getattr(qrpc, name) is getattr(errors, name)


@pytest.mark.parametrize("name", FACADE_ERRORS)
def test_facade_error_presents_itself_as_qrpc(name: str) -> None:
    assert getattr(qrpc, name).__module__ == "qrpc"


@pytest.mark.parametrize("name", sorted(WIRE_LEVEL))
def test_wire_level_errors_stay_in_qrpc_errors(name: str) -> None:
    assert not hasattr(qrpc, name)
    assert getattr(errors, name).__module__ == "qrpc.errors"


def test_connect_error_docstring_promises_nothing_that_does_not_exist() -> None:
    # It once documented a `transient` attribute; the kind comes from qrpc.policy.
    doc = errors.ConnectError.__doc__ or ""
    assert "`transient`" not in doc
    assert not hasattr(errors.ConnectError("x"), "transient")


def test_a_peer_id_refusal_without_ids_does_not_print_none() -> None:
    refusal = errors.PeerIdMismatch(None, None, "node ID does not match the certificate")
    assert "None" not in str(refusal)
    assert "node ID does not match the certificate" in str(refusal)
