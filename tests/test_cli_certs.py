"""``qrpc certs``: init, issue, show and the quick DIR form, run as real subprocesses.

Nodes are started from the files the command wrote and linked over real
sockets, so "trusted" means a real mutual TLS handshake succeeded.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import qrpc
from qrpc.tls.certs import issue_ca, issue_node_cert, write_pem
from tests.conftest import NodeFactory, connect

TIMEOUT = 60  # seconds for one qrpc process
NODE_ID = re.compile(r"^node ID +([0-9a-z-]+)$", re.M)


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run ``python -m qrpc ARGS`` and return what it did."""
    return subprocess.run(
        [sys.executable, "-m", "qrpc", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env={k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"},
    )


def ok(*args: str | Path) -> str:
    """Run a qrpc command that must succeed; return its stdout."""
    done = run(*args)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return done.stdout


def issued_id(stdout: str) -> str:
    match = NODE_ID.search(stdout)
    assert match is not None, stdout
    return match.group(1)


def snapshot(root: Path) -> dict[str, tuple[int, bytes]]:
    """Every file under `root`: its mode and bytes."""
    return {
        str(path.relative_to(root)): (path.stat().st_mode, path.read_bytes())
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def tls(folder: Path, name: str, domain: str = "qrpc") -> qrpc.TLS:
    return qrpc.TLS(
        folder / "ca.crt", folder / f"{name}.crt", folder / f"{name}.key", domain=domain
    )


# ----------------------------------------------------------------------------- init


def test_init_writes_a_ca_with_a_private_key(tmp_path: Path) -> None:
    out = ok("certs", "init", tmp_path / "ca")
    assert sorted(p.name for p in (tmp_path / "ca").iterdir()) == ["ca.crt", "ca.key"]
    assert mode(tmp_path / "ca" / "ca.key") == 0o600
    assert "keep it off the nodes" in out
    shown = ok("certs", "show", tmp_path / "ca" / "ca.crt")
    assert re.search(r"^CA +yes$", shown, re.M)
    assert "key_cert_sign, crl_sign" in shown


def test_init_twice_refuses_and_leaves_the_ca_unchanged(tmp_path: Path) -> None:
    ca = tmp_path / "ca"
    ok("certs", "init", ca)
    before = snapshot(ca)
    agains: list[list[str | Path]] = [
        ["certs", "init", ca],
        ["certs", "init", ca, "--constrained", "--days", "9"],
    ]
    for again in agains:
        done = run(*again)
        assert done.returncode == 2
        assert done.stdout == ""
        assert done.stderr.count("\n") == 1
        assert done.stderr.startswith(f"qrpc: {ca} already holds a CA")
        assert "qrpc certs issue" in done.stderr
        assert snapshot(ca) == before
    (ca / "ca.crt").unlink()  # a lone key is a CA too: never replaced
    key = (ca / "ca.key").read_bytes()
    assert run("certs", "init", ca).returncode == 2
    assert (ca / "ca.key").read_bytes() == key
    assert not (ca / "ca.crt").exists()


def test_every_ca_gets_its_own_name(tmp_path: Path) -> None:
    subjects = set()
    for name in ("one", "two"):
        ok("certs", "init", tmp_path / name)
        shown = ok("certs", "show", tmp_path / name / "ca.crt")
        subject = re.search(r"^subject +(CN=qrpc CA \S+)$", shown, re.M)
        assert subject is not None, shown
        subjects.add(subject.group(1))
    assert len(subjects) == 2


# ----------------------------------------------------------------------------- issue


async def test_a_node_issued_later_is_trusted_by_an_earlier_one(
    tmp_path: Path, make_node: NodeFactory
) -> None:
    ca, first, second = tmp_path / "ca", tmp_path / "first", tmp_path / "second"
    ok("certs", "init", ca)
    alice = issued_id(ok("certs", "issue", ca, first, "--name", "alice"))
    bob = issued_id(ok("certs", "issue", ca, second, "--name", "bob", "--id", "Bob-2"))
    assert bob == "bob-2"  # node IDs are kept in lower case
    for folder, name in ((first, "alice"), (second, "bob")):
        assert sorted(p.name for p in folder.iterdir()) == sorted(
            ["ca.crt", f"{name}.crt", f"{name}.key"]
        )
        assert mode(folder / f"{name}.key") == 0o600
        assert (folder / "ca.crt").read_bytes() == (ca / "ca.crt").read_bytes()

    earlier = await make_node(tls=tls(first, "alice"))
    later = await make_node(tls=tls(second, "bob"))
    assert (earlier.id, later.id) == (alice, bob)
    await connect(later, earlier)
    assert earlier.peers() == [bob]
    assert later.peers() == [alice]


def test_issue_refuses_to_overwrite_a_node(tmp_path: Path) -> None:
    ca, out = tmp_path / "ca", tmp_path / "out"
    ok("certs", "init", ca)
    ok("certs", "issue", ca, out, "--name", "alice")
    before = snapshot(out)
    done = run("certs", "issue", ca, out, "--name", "alice")
    assert done.returncode == 2
    assert done.stderr.startswith(f"qrpc: {out / 'alice.crt'} already exists")
    assert snapshot(out) == before
    ok("certs", "issue", ca, out, "--name", "bob")  # the same folder takes another name
    assert snapshot(out).items() >= before.items()


def test_a_constrained_ca_issues_in_its_own_domain(tmp_path: Path) -> None:
    ca, out = tmp_path / "ca", tmp_path / "out"
    ok("certs", "init", ca, "--constrained", "--domain", "Example.org")
    node_id = issued_id(ok("certs", "issue", ca, out, "--name", "n"))
    assert tls(out, "n", domain="example.org").node_id == node_id
    shown = ok("certs", "show", out / "n.crt")
    assert f"{node_id} (trust domain example.org)" in shown
    assert f"{node_id}.node.example.org" in shown
    assert "constrained node.example.org" in ok("certs", "show", ca / "ca.crt")


# ----------------------------------------------------------------------------- show


def test_show_describes_a_node_certificate(tmp_path: Path) -> None:
    ca, out = tmp_path / "ca", tmp_path / "out"
    ok("certs", "init", ca)
    node_id = issued_id(ok("certs", "issue", ca, out, "--name", "n", "--days", "30"))
    ca_subject = re.search(r"^subject +(.+)$", ok("certs", "show", ca / "ca.crt"), re.M)
    assert ca_subject is not None
    shown = ok("certs", "show", out / "n.crt")
    assert re.search(rf"^node ID +{node_id} \(trust domain qrpc\)$", shown, re.M)
    assert re.search(rf"^subject +CN={node_id}$", shown, re.M)
    assert re.search(rf"^issuer +{re.escape(ca_subject.group(1))}$", shown, re.M)
    assert re.search(rf"^SANs +{node_id}\.node\.qrpc$", shown, re.M)
    assert re.search(r"^CA +no$", shown, re.M)
    assert re.search(r"^key usage +digital_signature$", shown, re.M)
    assert re.search(r"^ext\. usage +clientAuth, serverAuth$", shown, re.M)
    after = re.search(r"^not after +(\d{4}-\d\d-\d\d) .* \(valid\)$", shown, re.M)
    assert after is not None, shown
    expected = dt.datetime.now(dt.UTC) + dt.timedelta(days=30)
    assert abs(dt.date.fromisoformat(after.group(1)) - expected.date()) <= dt.timedelta(days=1)
    assert re.search(r"^not before +\d{4}-\d\d-\d\d", shown, re.M)


def test_show_says_expired_and_reads_the_id_another_domain_would(tmp_path: Path) -> None:
    ca = issue_ca("a CA")
    now = dt.datetime.now(dt.UTC)
    old = issue_node_cert(
        ca, "old-node", not_before=now - dt.timedelta(days=9), not_after=now - dt.timedelta(days=2)
    )
    write_pem(old, tmp_path / "old.crt")
    shown = ok("certs", "show", tmp_path / "old.crt")
    assert re.search(r"^not after +.* \(EXPIRED\)$", shown, re.M)
    assert "old-node (trust domain qrpc)" in shown
    elsewhere = ok("certs", "show", tmp_path / "old.crt", "--domain", "example.org")
    assert re.search(
        r"^node ID +none \(no identity SAN '<node-id>\.node\.example\.org'", elsewhere, re.M
    )


def test_show_describes_each_certificate_of_a_bundle(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.crt"
    bundle.write_bytes(issue_ca("first CA").cert_pem() + issue_ca("second CA").cert_pem())
    shown = ok("certs", "show", bundle)
    assert re.findall(r"^subject +(.+)$", shown, re.M) == ["CN=first CA", "CN=second CA"]


# ----------------------------------------------------------------------------- trust across CAs


async def test_a_node_of_another_qrpc_ca_is_an_unknown_ca(
    tmp_path: Path, make_node: NodeFactory
) -> None:
    # Both CAs come from `qrpc certs init` with default options: only their unique
    # names tell them apart, and a peer must refuse the other's node as unknown_ca.
    for name in ("a", "b"):
        ok("certs", "init", tmp_path / f"ca-{name}")
        ok("certs", "issue", tmp_path / f"ca-{name}", tmp_path / name, "--name", "n")
    acceptor = await make_node(tls=tls(tmp_path / "a", "n"))
    dialer = await make_node(tls=tls(tmp_path / "b", "n"))
    events = dialer.events()
    dialer.add_peer(qrpc.Peer(*acceptor.address))
    async with asyncio.timeout(5):
        async for event in events:
            if isinstance(event, qrpc.ConnectFailed | qrpc.Connected):
                break
    assert isinstance(event, qrpc.ConnectFailed), event
    assert isinstance(event.error, qrpc.PeerAuthError)
    assert event.error.alert == 48  # unknown_ca, not bad_certificate (42)
    assert acceptor.peers() == dialer.peers() == []


# ----------------------------------------------------------------------------- qrpc certs DIR


async def test_the_quick_form_keeps_the_ca_key_out_of_the_node_folder(
    tmp_path: Path, make_node: NodeFactory
) -> None:
    out = tmp_path / "certs"
    printed = ok("certs", out, "--nodes", "2")
    assert sorted(p.name for p in out.iterdir()) == [
        "ca",
        "ca.crt",
        "node-1.crt",
        "node-1.key",
        "node-2.crt",
        "node-2.key",
    ]
    assert sorted(p.name for p in (out / "ca").iterdir()) == ["ca.crt", "ca.key"]
    assert (out / "ca.crt").read_bytes() == (out / "ca" / "ca.crt").read_bytes()
    assert {mode(out / "ca" / "ca.key"), mode(out / "node-1.key"), mode(out / "node-2.key")} == {
        0o600
    }
    assert "keep this key off the nodes" in printed

    before = snapshot(out)
    again = run("certs", out, "--nodes", "3")
    assert again.returncode == 2
    assert again.stderr == (
        f"qrpc: {out} already holds a CA; add nodes with "
        f"`qrpc certs issue {out / 'ca'} OUT_DIR --name NAME`\n"
    )
    assert snapshot(out) == before

    node_3 = issued_id(ok("certs", "issue", out / "ca", out, "--name", "node-3"))
    first = await make_node(tls=tls(out, "node-1"))
    third = await make_node(tls=tls(out, "node-3"))
    assert third.id == node_3
    await connect(third, first)


def test_help_names_every_form() -> None:
    text = ok("certs", "--help")
    for form in ("certs init CA_DIR", "certs issue CA_DIR OUT_DIR", "certs show FILE", "DIR"):
        assert form in text
    assert "--name NAME" in ok("certs", "issue", "--help")


# ----------------------------------------------------------------------------- mistakes


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA (ca/), a node folder (out/alice.*), a quick set-up (quick/) and odd files."""
    root = tmp_path_factory.mktemp("mistakes")
    ok("certs", "init", root / "ca")
    ok("certs", "issue", root / "ca", root / "out", "--name", "alice")
    ok("certs", root / "quick", "--nodes", "1")
    (root / "file.txt").write_text("not a certificate\n")
    (root / "garbled.crt").write_text(
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    )
    foreign = root / "foreign"
    foreign.mkdir()
    write_pem(issue_ca("a foreign CA"), foreign / "ca.crt")
    return root


MISTAKES: dict[str, list[str]] = {
    "nothing": ["certs"],
    "init-no-dir": ["certs", "init"],
    "init-existing": ["certs", "init", "{base}/ca"],
    "init-existing-quick-ca": ["certs", "init", "{base}/quick/ca"],
    "init-days-zero": ["certs", "init", "{new}", "--days", "0"],
    "init-days-word": ["certs", "init", "{new}", "--days", "ten"],
    "init-days-huge": ["certs", "init", "{new}", "--days", "99999999"],
    "init-bad-domain": ["certs", "init", "{new}", "--domain", "bad_domain!"],
    "init-empty-label": ["certs", "init", "{new}", "--domain", "a..b"],
    "init-on-a-file": ["certs", "init", "{base}/file.txt"],
    "init-unwritable": ["certs", "init", "/proc/nope/ca"],
    "init-extra": ["certs", "init", "{new}", "surplus"],
    "issue-no-name": ["certs", "issue", "{base}/ca", "{new}"],
    "issue-existing": ["certs", "issue", "{base}/ca", "{base}/out", "--name", "alice"],
    "issue-path-name": ["certs", "issue", "{base}/ca", "{new}", "--name", "../x"],
    "issue-name-ca": ["certs", "issue", "{base}/ca", "{new}", "--name", "ca"],
    "issue-id-space": ["certs", "issue", "{base}/ca", "{new}", "--name", "n", "--id", "a b"],
    "issue-id-underscore": ["certs", "issue", "{base}/ca", "{new}", "--name", "n", "--id", "a_b"],
    "issue-id-dash": ["certs", "issue", "{base}/ca", "{new}", "--name", "n", "--id=-ab"],
    "issue-id-long": ["certs", "issue", "{base}/ca", "{new}", "--name", "n", "--id", "a" * 64],
    "issue-no-ca": ["certs", "issue", "{new}", "{base}/out", "--name", "bob"],
    "issue-node-folder-as-ca": ["certs", "issue", "{base}/out", "{new}", "--name", "bob"],
    "issue-quick-folder-as-ca": ["certs", "issue", "{base}/quick", "{new}", "--name", "bob"],
    "issue-into-ca-dir": ["certs", "issue", "{base}/ca", "{base}/ca", "--name", "bob"],
    "issue-outlasts-ca": ["certs", "issue", "{base}/ca", "{new}", "--name", "n", "--days", "5000"],
    "issue-bad-domain": ["certs", "issue", "{base}/ca", "{new}", "--name", "n", "--domain", "-x"],
    "issue-into-a-file": ["certs", "issue", "{base}/ca", "{base}/file.txt", "--name", "n"],
    "issue-foreign-ca-copy": ["certs", "issue", "{base}/ca", "{base}/foreign", "--name", "n"],
    "issue-unwritable": ["certs", "issue", "{base}/ca", "/proc/nope", "--name", "n"],
    "show-nothing": ["certs", "show"],
    "show-key": ["certs", "show", "{base}/out/alice.key"],
    "show-missing": ["certs", "show", "{new}"],
    "show-text": ["certs", "show", "{base}/file.txt"],
    "show-garbled": ["certs", "show", "{base}/garbled.crt"],
    "show-directory": ["certs", "show", "{base}/ca"],
    "show-bad-domain": ["certs", "show", "{base}/ca/ca.crt", "--domain", "a b"],
    "quick-existing": ["certs", "{base}/quick", "--nodes", "1"],
    "quick-into-ca-dir": ["certs", "{base}/ca", "--nodes", "1"],
    "quick-zero-nodes": ["certs", "{new}", "--nodes", "0"],
    "quick-negative-nodes": ["certs", "{new}", "--nodes", "-1"],
    "quick-word-nodes": ["certs", "{new}", "--nodes", "two"],
    "quick-bad-domain": ["certs", "{new}", "--domain", "no spaces"],
    "quick-on-a-file": ["certs", "{base}/file.txt"],
    "quick-unwritable": ["certs", "/proc/nope"],
    "quick-option-first": ["certs", "--nodes", "2", "{new}"],
}


@pytest.mark.parametrize("case", sorted(MISTAKES))
def test_a_mistake_is_one_line_exit_2_and_touches_nothing(case: str, base: Path) -> None:
    new = base / f"new-{case}"
    args = [arg.format(base=base, new=new) for arg in MISTAKES[case]]
    before = snapshot(base)
    done = run(*args)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stdout == ""
    assert done.stderr.startswith("qrpc: ")
    assert done.stderr.count("\n") == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert snapshot(base) == before
    assert not new.exists()


def test_the_documented_commands_are_the_ones_the_help_lists() -> None:
    doc = (Path(__file__).resolve().parent.parent / "docs" / "certificates.md").read_text()
    block = re.search(r"## The commands\n\n```\n(.*?)```", doc, re.S)
    assert block is not None, "docs/certificates.md lost its command list"
    documented = block.group(1).splitlines()
    listed = [line.strip() for line in ok("certs", "--help").splitlines()]
    assert len(documented) == 4
    assert all(command in listed for command in documented), (documented, listed)
