"""libotr peer against libotr peer through the router.

These tests prove the harness itself (the C peer, the router and the peer
protocol) before it is used to test offrecord against libotr.
"""

from __future__ import annotations

import base64
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.interop import build
from tests.interop.build import build_libotr_peer
from tests.interop.router import (
    SIDES,
    Message,
    Router,
    Side,
    SubprocessPeer,
    other,
    peer_args,
)

pytestmark = pytest.mark.interop

ALICE = "alice@example.org"
BOB = "bob@example.org"
ACCOUNTS: dict[Side, tuple[str, str]] = {"A": (ALICE, BOB), "B": (BOB, ALICE)}

WHITESPACE_BASE = " \t  \t\t\t\t \t \t \t  "
V3_FRAGMENT = re.compile(r"^\?OTR\|[0-9a-f]{8}\|[0-9a-f]{8},\d{5},\d{5},[^,]*,$")
V2_FRAGMENT = re.compile(r"^\?OTR,\d{5},\d{5},[^,]*,$")

PeerFactory = Callable[..., SubprocessPeer]
RouterFactory = Callable[..., Router]


@pytest.fixture(scope="session")
def libotr_peer() -> Path:
    return build_libotr_peer()


@pytest.fixture(scope="session")
def keydir(tmp_path_factory: pytest.TempPathFactory, libotr_peer: Path) -> Path:
    """Long-term keys for alice and bob, generated once per session."""
    path = tmp_path_factory.mktemp("libotr-keys")
    for account, peer in ACCOUNTS.values():
        SubprocessPeer(
            [libotr_peer, *peer_args(account, peer, keyfile=path / f"{account}.key")]
        ).close()
    return path


@pytest.fixture
def make_peer(libotr_peer: Path, keydir: Path) -> Iterator[PeerFactory]:
    """Start a libotr peer; keyfile defaults to the account's session key."""
    started: list[SubprocessPeer] = []

    def make(
        account: str, peer: str, *, ascii_json: bool = False, timeout: float = 30.0, **opts: Any
    ) -> SubprocessPeer:
        opts.setdefault("keyfile", keydir / f"{account}.key")
        proc = SubprocessPeer(
            [libotr_peer, *peer_args(account, peer, **opts)],
            name=f"libotr:{account}",
            ascii_json=ascii_json,
            timeout=timeout,
        )
        started.append(proc)
        return proc

    yield make
    for proc in started:
        proc.close()


@pytest.fixture
def make_router(make_peer: PeerFactory) -> RouterFactory:
    """Router between alice (A) and bob (B); ``a``/``b`` are per-side options."""

    def make(
        a: dict[str, Any] | None = None, b: dict[str, Any] | None = None, **common: Any
    ) -> Router:
        opts: dict[Side, dict[str, Any]] = {
            "A": {**common, **(a or {})},
            "B": {**common, **(b or {})},
        }
        return Router(
            make_peer(*ACCOUNTS["A"], **opts["A"]),
            make_peer(*ACCOUNTS["B"], **opts["B"]),
        )

    return make


def assert_alive(router: Router) -> None:
    for side in SIDES:
        router.status(side)  # raises if the peer died or hangs


def assert_no_leak(router: Router, texts: list[str], since: int = 0) -> None:
    leaked = [(t, p.seq) for t in texts for p in router.wire_containing(t, since=since)]
    assert not leaked, f"plaintext seen on the wire: {leaked}"


def otr_header(packet_data: str) -> tuple[int, int, int, int]:
    """(version, type, sender tag, receiver tag) of an encoded v3 message."""
    raw = base64.b64decode(packet_data[5:21])
    version = int.from_bytes(raw[0:2], "big")
    return version, raw[2], int.from_bytes(raw[3:7], "big"), int.from_bytes(raw[7:11], "big")


# --------------------------------------------------------------------------
# Building
# --------------------------------------------------------------------------


def test_build_reuses_and_rebuilds(
    libotr_peer: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert build_libotr_peer() == libotr_peer  # unchanged source: no rebuild
    source = tmp_path / "libotr_peer.c"
    source.write_bytes(build.SOURCE.read_bytes())
    monkeypatch.setattr(build, "SOURCE", source)
    monkeypatch.setattr(build, "BUILD_DIR", tmp_path / "out")
    first = build_libotr_peer()
    assert first.parent == tmp_path / "out"
    mtime = first.stat().st_mtime_ns
    assert build_libotr_peer() == first
    assert first.stat().st_mtime_ns == mtime
    source.write_bytes(source.read_bytes() + b"\n/* changed */\n")
    second = build_libotr_peer()
    assert second != first
    assert not first.exists()
    assert [p.name for p in (tmp_path / "out").iterdir()] == [second.name]


def test_build_without_headers_explains_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(build, "BUILD_DIR", tmp_path / "out")
    monkeypatch.setattr(build, "_headers_present", lambda cc: False)
    with pytest.raises(RuntimeError, match="apt-get install libotr5-dev"):
        build_libotr_peer(force=True)


def test_build_module_entry_point() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tests.interop.build"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()) == build_libotr_peer()


# --------------------------------------------------------------------------
# Startup and options
# --------------------------------------------------------------------------


def test_ready_event(make_peer: PeerFactory) -> None:
    peer = make_peer(ALICE, BOB)
    assert peer.ready["impl"] == "libotr 4.1.1"
    assert peer.ready["versions"] == [2, 3]
    status = peer.command({"op": "status"})
    assert status == [
        {
            "ev": "status",
            "state": "plaintext",
            "version": None,
            "our_fingerprint": peer.ready["our_fingerprint"],
            "their_fingerprint": None,
            "trusted": False,
            "ssid": None,
        }
    ]


@pytest.mark.parametrize(
    ("policy", "versions"),
    [("v2", [2]), ("v3", [3]), ("v3,v2,whitespace", [2, 3]), ("whitespace", [])],
)
def test_ready_versions_follow_policy(
    make_peer: PeerFactory, policy: str, versions: list[int]
) -> None:
    assert make_peer(ALICE, BOB, policy=policy).ready["versions"] == versions


def test_keyfile_reused_and_fresh_keys(make_peer: PeerFactory, tmp_path: Path) -> None:
    keyfile = tmp_path / "k" / "alice.key"
    keyfile.parent.mkdir()
    first = make_peer(ALICE, BOB, keyfile=keyfile)
    assert keyfile.exists()
    second = make_peer(ALICE, BOB, keyfile=keyfile)
    assert first.ready["our_fingerprint"] == second.ready["our_fingerprint"]
    fresh1 = make_peer(ALICE, BOB, keyfile=None)
    fresh2 = make_peer(ALICE, BOB, keyfile=None)
    assert fresh1.ready["our_fingerprint"] != fresh2.ready["our_fingerprint"]
    assert fresh1.ready["our_fingerprint"] != first.ready["our_fingerprint"]


@pytest.mark.parametrize(
    "args",
    [
        ["--policy", "v2,v4"],
        ["--policy", "v3,always"],
        ["--instance-tag", "0xff"],
        ["--instance-tag", "banana"],
        ["--max-fragment", "-5"],
        ["--max-fragment", "10"],
        ["--frobnicate", "1"],
        ["--account"],
    ],
)
def test_startup_errors(libotr_peer: Path, tmp_path: Path, args: list[str]) -> None:
    result = subprocess.run(
        [libotr_peer, "--account", ALICE, "--peer", BOB, "--keyfile", tmp_path / "k", *args],
        input=b'{"op":"quit"}\n',
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert result.returncode != 0
    assert result.stdout == b""
    assert result.stderr.strip()


def test_missing_required_options(libotr_peer: Path) -> None:
    result = subprocess.run(
        [libotr_peer, "--peer", BOB], capture_output=True, timeout=30, check=False
    )
    assert result.returncode != 0
    assert b"--account" in result.stderr


def test_unreadable_keyfile_is_startup_error(libotr_peer: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.key"
    bad.write_text("this is not an s-expression\n")
    result = subprocess.run(
        [libotr_peer, "--account", ALICE, "--peer", BOB, "--keyfile", bad],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert result.returncode != 0
    assert result.stdout == b""
    assert b"key" in result.stderr


def test_malformed_commands_do_not_kill_the_peer(make_peer: PeerFactory) -> None:
    peer = make_peer(ALICE, BOB)
    for line in [
        "not json",
        "{",
        "[1,2,3]",
        '"just a string"',
        '{"op": 5}',
        '{"op":"send"} trailing',
        '{"op":"send","text":"\\ud800',
        '{"op":"send","text":"a\tb"}',
        '{"op":"send","text":"x"' + "]" * 5,
        "[" * 10000,
    ]:
        events = peer.raw(line)
        assert [ev["ev"] for ev in events] == ["error"], (line, events)
    assert [
        ev["ev"]
        for ev in peer.raw(
            '{"op":"fly","id":{"a":[1,2.5e3,null,true]}}', expect_id={"a": [1, 2500.0, None, True]}
        )
    ] == ["error"]
    assert [ev["ev"] for ev in peer.command({"op": "send"})] == ["error"]
    assert [ev["ev"] for ev in peer.command({"op": "recv", "data": 7})] == ["error"]
    assert [ev["ev"] for ev in peer.command({"op": "smp"})] == ["error"]
    assert [ev["ev"] for ev in peer.command({"op": "status"})] == ["status"]


def test_ids_are_echoed(make_peer: PeerFactory) -> None:
    peer = make_peer(ALICE, BOB)
    for ident in [0, -3, 1.5, 'x\u00e9\U0001f600"\\', None, True, [1, [2, {}]], {"k": "v"}]:
        assert peer.command({"op": "status", "id": ident})[0]["ev"] == "status"
    peer.raw('{"op":"status","id":12345678901234567890}', expect_id=12345678901234567890)


# --------------------------------------------------------------------------
# AKE
# --------------------------------------------------------------------------


@pytest.mark.parametrize("initiator", SIDES)
def test_ake_by_query(make_router: RouterFactory, initiator: Side) -> None:
    router = make_router()
    ex = router.start(initiator)
    query = ex.wires(initiator)[0]
    assert query.startswith("?OTRv23?\n")
    account = ACCOUNTS[initiator][0]
    assert f"<b>{account}</b> has requested an" in query
    assert ex.states("A") == ["encrypted"]
    assert ex.states("B") == ["encrypted"]
    a, b = router.wait_encrypted(version=3)
    assert a.trusted is False and b.trusted is False
    # DH-Commit, DH-Key, Reveal Signature, Signature after the query.
    assert len(router.network) == 5
    assert [otr_header(p.data)[1] for p in router.network[1:]] == [0x02, 0x0A, 0x11, 0x12]
    router.expect_message("A", "hello bob")
    router.expect_message("B", "hello alice")


def test_status_fields_after_ake(make_router: RouterFactory) -> None:
    router = make_router()
    router.establish("A")
    a, b = router.status("A"), router.status("B")
    assert a.our_fingerprint == router.peer("A").ready["our_fingerprint"]
    assert a.their_fingerprint == router.peer("B").ready["our_fingerprint"]
    assert a.ssid is not None and re.fullmatch(r"[0-9A-F]{16}", a.ssid)
    assert a.ssid == b.ssid


def test_refresh_emits_encrypted_again(make_router: RouterFactory) -> None:
    router = make_router()
    router.establish("A")
    first = router.status("A").ssid
    ex = router.start("B")
    # libotr quirk: when the DH-Key of a refresh arrives at the instance
    # context, libotr copies the master context's msgstate (plaintext in v3)
    # into it until the AKE completes; the peer reports that faithfully.
    assert ex.states("A") == ["plaintext", "encrypted"]
    assert ex.states("B") == ["encrypted"]  # still_secure
    a, _ = router.wait_encrypted()
    assert a.ssid != first
    router.expect_message("A", "after refresh")
    router.expect_message("B", "after refresh too")


def test_libotr_sends_plaintext_during_a_refresh_it_did_not_start(
    make_router: RouterFactory,
) -> None:
    """Documents libotr 4.1.1 behaviour (not a harness requirement).

    Between receiving the DH-Key of a refresh started by the other side and
    the Signature message, libotr treats the instance as plaintext, so a
    message typed in that window goes out in the clear.
    """
    router = make_router()
    router.establish("A")
    router.auto_deliver = False
    router.start("B")
    for _ in range(3):  # query, DH-Commit, DH-Key
        router.deliver_one()
    router.expect_state("A", "plaintext")
    ex = router.command("A", {"op": "send", "text": "typed in the window"})
    assert ex.wires("A") == ["typed in the window"]
    router.auto_deliver = True
    ex = router.flush()
    assert Message("typed in the window", False) in ex.messages("B")
    assert ex.states("A") == ["encrypted"]
    router.wait_encrypted()


def test_ake_by_whitespace_tag(make_router: RouterFactory) -> None:
    router = make_router(a={"policy": "v2,v3,whitespace"}, b={"policy": "v2,v3,whitespace-start"})
    ex = router.command("A", {"op": "send", "text": "hello there"})
    first = router.network[0].data
    assert first.startswith("hello there" + WHITESPACE_BASE)
    assert ex.messages("B")[0] == Message("hello there", False)
    assert ex.states("A") == ["encrypted"]
    assert ex.states("B") == ["encrypted"]
    router.wait_encrypted(version=3)
    router.expect_message("A", "now private")


def test_whitespace_tag_without_start_policy_only_shows_text(make_router: RouterFactory) -> None:
    router = make_router(a={"policy": "v2,v3,whitespace"})
    assert router.send("A", "tagged hello") == [Message("tagged hello", False)]
    assert len(router.network) == 1
    router.expect_state("B", "plaintext")


@pytest.mark.parametrize(("a_policy", "b_policy"), [("v2", "v2,v3"), ("v2,v3", "v2"), ("v2", "v2")])
def test_v2_only(make_router: RouterFactory, a_policy: str, b_policy: str) -> None:
    router = make_router(a={"policy": a_policy}, b={"policy": b_policy})
    router.establish("A", version=2)
    for p in router.network[1:]:
        assert p.data.startswith("?OTR:AAI")  # protocol version 2 header
    router.expect_message("A", "v2 hello")
    router.expect_message("B", "v2 hello back")


def test_v3_only_peers_agree_on_v3(make_router: RouterFactory) -> None:
    router = make_router(policy="v3")
    ex = router.start("B")
    assert ex.wires("B")[0].startswith("?OTRv3?")
    router.wait_encrypted(version=3)


def test_no_common_version(make_router: RouterFactory) -> None:
    router = make_router(a={"policy": "v3"}, b={"policy": "v2"})
    ex = router.start("A")
    assert ex.states("A") == [] and ex.states("B") == []
    router.expect_state("A", "plaintext")
    router.expect_state("B", "plaintext")


# --------------------------------------------------------------------------
# Messages
# --------------------------------------------------------------------------


def test_plaintext_before_otr(make_router: RouterFactory) -> None:
    router = make_router()
    router.expect_message("A", "plain hello", encrypted=False)
    router.expect_message("B", "plain reply", encrypted=False)
    assert [p.data for p in router.network] == ["plain hello", "plain reply"]


def test_fifty_messages_both_ways(make_router: RouterFactory) -> None:
    router = make_router()
    router.establish("A")
    mark = router.mark()
    texts: list[str] = []
    samples = [
        "plain ascii",
        "h\u00e9llo w\u00f6rld",
        "\u65e5\u672c\u8a9e \u306e text",
        "emoji \U0001f600\U0001f680",
        'quotes " and \\ backslash',
        "tab\tand\nnewline",
        "<b>html</b> &amp;",
        "\u0645\u0631\u062d\u0628\u0627 rtl",
    ]
    for i in range(50):
        side: Side = "A" if i % 2 == 0 else "B"
        text = f"message {i} from {side}: {samples[i % len(samples)]}"
        texts.append(text)
        router.expect_message(side, text)
    big = "five kilobytes of text. " * 213
    assert len(big) >= 5000
    router.expect_message("A", big)
    router.expect_message("B", big[::-1])
    assert_no_leak(router, [*texts, big[:40], big[::-1][:40]], since=mark)
    for p in router.network[mark:]:
        assert p.data.startswith("?OTR:AAMD"), p


def test_json_escapes_in_commands(make_router: RouterFactory, make_peer: PeerFactory) -> None:
    router = Router(make_peer(ALICE, BOB, ascii_json=True), make_peer(BOB, ALICE, ascii_json=True))
    router.establish("A")
    for text in [
        "\U0001f600 surrogate pair",
        "\u00e9\u20ac\U00010348",
        "ctl \x01\x1f\x7f end",
        'slash / and \\/ and "q"',
    ]:
        router.expect_message("A", text)
    # A lone surrogate cannot be represented in UTF-8: it becomes U+FFFD.
    assert router.send("A", "lone \ud800 surrogate") == [Message("lone \ufffd surrogate", True)]
    # Text after an embedded NUL is dropped (C strings).
    assert router.send("B", "before\x00after") == [Message("before", True)]


def test_unencrypted_message_while_encrypted_is_shown_with_warning(
    make_router: RouterFactory,
) -> None:
    router = make_router()
    router.establish("A")
    ex = router.inject("B", "sneaky plaintext")
    assert ex.messages("B") == [Message("sneaky plaintext", False)]
    assert ex.errors("B")
    router.expect_message("A", "still fine")


def test_require_policy_never_sends_plaintext(make_router: RouterFactory) -> None:
    router = make_router(a={"policy": "v2,v3,require"})
    ex = router.command("A", {"op": "send", "text": "top secret words"})
    assert router.network[0].data.startswith("?OTRv23?")
    assert ex.errors("A")  # "encryption required"
    assert ex.states("A") == ["encrypted"]
    # libotr resends the held-back message once the session is up.
    assert ex.messages("B") == [Message("top secret words", True)]
    assert_no_leak(router, ["top secret words"])


def test_error_start_policy(make_router: RouterFactory) -> None:
    router = make_router(b={"policy": "v2,v3,error-start"})
    ex = router.inject("B", "?OTR Error: something broke")
    assert any("something broke" in e for e in ex.errors("B"))
    assert ex.wires("B")[0].startswith("?OTRv23?")
    router.wait_encrypted(version=3)


def test_dropped_and_duplicated_data_messages(make_router: RouterFactory) -> None:
    router = make_router()
    router.establish("A")

    router.on_wire = lambda src, data: []
    ex = router.command("A", {"op": "send", "text": "lost in transit"})
    assert ex.messages("B") == []
    router.on_wire = None
    router.expect_message("A", "after a loss")

    router.on_wire = lambda src, data: [data, data]
    ex = router.command("B", {"op": "send", "text": "said twice"})
    router.on_wire = None
    assert ex.messages("A")[0] == Message("said twice", True)
    assert len(ex.messages("A")) == 1, "a replayed data message must not be shown again"
    assert ex.errors("A")
    router.expect_message("A", "after a duplicate")
    router.expect_message("B", "and back")


def test_tampered_data_message_is_rejected(make_router: RouterFactory) -> None:
    router = make_router()
    router.establish("A")

    def flip(src: Side, data: str) -> list[str]:
        if src != "A" or not data.startswith("?OTR:"):
            return [data]
        raw = bytearray(base64.b64decode(data[5:-1]))
        raw[-30] ^= 0x01  # inside the encrypted message / MAC area
        return ["?OTR:" + base64.b64encode(bytes(raw)).decode() + "."]

    router.on_wire = flip
    ex = router.command("A", {"op": "send", "text": "tamper with me"})
    router.on_wire = None
    assert ex.messages("B") == []
    assert ex.errors("B")
    # libotr answers an unreadable message with an OTR Error message.
    assert any(w.startswith("?OTR Error:") for w in ex.wires("B"))
    assert ex.errors("A")
    router.expect_message("A", "untampered")


# --------------------------------------------------------------------------
# Fragmentation
# --------------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["v2,v3", "v2"])
def test_fragmentation_at_150(make_router: RouterFactory, policy: str) -> None:
    router = make_router(policy=policy, max_fragment=150)
    router.establish("A", version=3 if "v3" in policy else 2)
    big = "fragment me please " * 270
    router.expect_message("A", big)
    router.expect_message("B", "short one")
    results = router.run_smp("A", "fragmented secret", "fragmented secret")
    assert results == (["success"], ["success"])
    ex = router.end("B")
    assert ex.states("A") == ["finished"]

    pattern = V3_FRAGMENT if "v3" in policy else V2_FRAGMENT
    fragments = 0
    for p in router.network:
        if p.data.startswith(("?OTRv", "?OTR Error")):
            continue  # queries and error messages are exempt
        assert len(p.data) <= 150, p
        assert not p.data.startswith("?OTR:"), f"unfragmented long message {p}"
        assert pattern.match(p.data), p
        fragments += 1
    assert fragments > 60


def test_lost_fragment_then_recovery(make_router: RouterFactory) -> None:
    router = make_router(max_fragment=150)
    router.establish("A")
    counter = {"n": 0}

    def drop_third(src: Side, data: str) -> list[str]:
        counter["n"] += 1
        return [] if counter["n"] == 3 else [data]

    router.on_wire = drop_third
    ex = router.command("A", {"op": "send", "text": "incomplete " * 80})
    router.on_wire = None
    assert ex.messages("B") == []
    router.expect_message("A", "complete " * 80)
    router.expect_message("B", "reply")


def test_instance_tags_in_fragments(make_router: RouterFactory) -> None:
    router = make_router(a={"instance_tag": 0x1A2B3C4D}, b={"instance_tag": 4096}, max_fragment=200)
    router.establish("A")
    router.command("A", {"op": "send", "text": "x" * 500})
    router.command("B", {"op": "send", "text": "y" * 500})
    a_frag = [p.data for p in router.wire_since(src="A") if p.data.startswith("?OTR|")]
    b_frag = [p.data for p in router.wire_since(src="B") if p.data.startswith("?OTR|")]
    assert a_frag and all(d.startswith("?OTR|1a2b3c4d|00001000,") for d in a_frag[-3:])
    assert b_frag and all(d.startswith("?OTR|00001000|1a2b3c4d,") for d in b_frag[-3:])


# --------------------------------------------------------------------------
# SMP
# --------------------------------------------------------------------------


def test_smp_success_without_question(make_router: RouterFactory) -> None:
    router = make_router()
    router.establish("A")
    assert router.run_smp("A", "shared secret \u00e9", "shared secret \u00e9") == (
        ["success"],
        ["success"],
    )
    # libotr trusts on both sides when no question was asked.
    assert router.status("A").trusted is True
    assert router.status("B").trusted is True


def test_smp_failure(make_router: RouterFactory) -> None:
    router = make_router()
    router.establish("B")
    assert router.run_smp("B", "one secret", "another secret") == (["failure"], ["failure"])
    assert router.status("A").trusted is False
    assert router.status("B").trusted is False
    router.expect_message("A", "still talking")


def test_smp_with_question_trusts_only_the_asker(make_router: RouterFactory) -> None:
    router = make_router()
    router.establish("A")
    results = router.run_smp("A", "blue", "blue", question="Favourite colour? \u2603")
    assert results == (["success"], ["success"])
    assert router.status("A").trusted is True
    assert router.status("B").trusted is False


def test_smp_empty_question(make_router: RouterFactory) -> None:
    router = make_router()
    router.establish("A")
    assert router.run_smp("A", "s", "s", question="") == (["success"], ["success"])


def test_smp_abort_and_retry(make_router: RouterFactory) -> None:
    router = make_router()
    router.establish("A")
    ex = router.smp("A", "secret", "Shall we?")
    assert ex.smp_asked("B") == ["Shall we?"]
    ex = router.smp_abort("B")
    assert ex.smp_results("A") == ["aborted"]
    assert ex.smp_results("B") == []
    ex = router.smp_respond("B", "secret")
    assert ex.errors("B"), "answering an aborted SMP must be refused"
    assert router.wire_since(router.mark()) == []
    assert router.run_smp("B", "again", "again") == (["success"], ["success"])
    router.expect_message("A", "after smp")


def test_smp_abort_by_asker(make_router: RouterFactory) -> None:
    router = make_router()
    router.establish("A")
    router.smp("A", "secret")
    ex = router.smp_abort("A")
    assert ex.smp_results("B") == ["aborted"]
    assert router.smp_respond("B", "secret").errors("B")


def test_smp_commands_without_session(make_router: RouterFactory) -> None:
    router = make_router()
    for cmd in ({"op": "smp", "secret": "x"}, {"op": "smp_respond", "secret": "x"}):
        ex = router.command("A", cmd)
        assert ex.errors("A"), cmd
    ex = router.smp_abort("A")
    assert ex.wires("A") == []
    assert router.network == []


def test_simultaneous_smp_start_recovers(make_router: RouterFactory) -> None:
    router = make_router()
    router.establish("A")
    router.auto_deliver = False
    router.smp("A", "x")
    router.smp("B", "x")
    router.auto_deliver = True
    ex = router.flush()
    for side in SIDES:
        assert "error" in ex.smp_results(side), ex.log
        assert "success" not in ex.smp_results(side)
    assert router.run_smp("A", "x", "x") == (["success"], ["success"])


def test_smp_out_of_order_message(make_router: RouterFactory) -> None:
    router = make_router()
    router.establish("A")
    router.smp("A", "x")  # B is asked
    smp1 = router.deliveries[-1].data
    ex = router.smp_respond("B", "x")
    assert ex.smp_results("A") == ["success"] and ex.smp_results("B") == ["success"]
    ex = router.inject("B", smp1)  # replayed SMP message 1
    assert ex.messages("B") == []
    router.expect_message("A", "fine after replay")


# --------------------------------------------------------------------------
# Ending
# --------------------------------------------------------------------------


@pytest.mark.parametrize("ender", SIDES)
def test_end_from_either_side(make_router: RouterFactory, ender: Side) -> None:
    router = make_router()
    router.establish("A")
    remaining = other(ender)
    ex = router.end(ender)
    assert ex.states(ender) == ["plaintext"]
    assert ex.states(remaining) == ["finished"]
    router.expect_state(ender, "plaintext")
    st = router.expect_state(remaining, "finished")
    assert st.ssid is None
    assert st.their_fingerprint == router.peer(ender).ready["our_fingerprint"]
    assert st.version == 3

    mark = router.mark()
    ex = router.command(remaining, {"op": "send", "text": "words after the end"})
    assert router.wire_since(mark) == []
    assert ex.errors(remaining)
    assert_no_leak(router, ["words after the end"])

    # The ender now talks in the clear (its choice) ...
    router.expect_message(ender, "plain again", encrypted=False)
    # ... and the finished side shows it with a warning.
    mark = router.mark()
    ex = router.end(remaining)
    assert ex.states(remaining) == ["plaintext"]
    assert router.wire_since(mark) == []
    router.establish(remaining)
    router.expect_message(ender, "private again")


def test_end_without_session_is_harmless(make_router: RouterFactory) -> None:
    router = make_router()
    ex = router.end("A")
    assert ex.log == []
    assert router.network == []


# --------------------------------------------------------------------------
# Restarts and instances
# --------------------------------------------------------------------------


def test_restarted_peer_with_same_key_and_instance_tag(
    make_router: RouterFactory, make_peer: PeerFactory, tmp_path: Path
) -> None:
    keyfile = tmp_path / "alice.key"
    tag = 0x0BADCAFE
    router = make_router(a={"keyfile": keyfile, "instance_tag": tag})
    router.establish("A")
    fingerprint = router.peer("A").ready["our_fingerprint"]
    old_ssid = router.status("B").ssid
    for p in router.wire_since(src="A")[1:]:
        assert otr_header(p.data)[2] == tag

    router.replace("A", make_peer(ALICE, BOB, keyfile=keyfile, instance_tag=f"{tag}"))
    assert router.peer("A").ready["our_fingerprint"] == fingerprint
    router.expect_state("A", "plaintext")
    router.expect_state("B", "encrypted")

    # Bob still encrypts to the old session, which the new Alice cannot read;
    # libotr drops a data message for an instance it has no context for
    # without any notice.
    ex = router.command("B", {"op": "send", "text": "into the void"})
    assert ex.messages("A") == []
    assert_no_leak(router, ["into the void"])

    ex = router.start("A")
    assert ex.states("A") == ["encrypted"]
    # Bob answers from his old, still encrypted instance context: the same
    # msgstate quirk as in test_refresh_emits_encrypted_again.
    assert ex.states("B") == ["plaintext", "encrypted"]
    a, b = router.wait_encrypted(version=3)
    assert a.ssid != old_ssid
    assert b.their_fingerprint == fingerprint
    router.expect_message("A", "I am back")
    router.expect_message("B", "welcome back")


def test_second_instance_of_the_same_account(
    make_router: RouterFactory, make_peer: PeerFactory
) -> None:
    """Bob keeps one session per instance and reports the one he sends to."""
    router = make_router(a={"instance_tag": 0x1111})
    router.establish("A")
    first_ssid = router.status("B").ssid
    router.replace("A", make_peer(ALICE, BOB, instance_tag=0x2222), close_old=True)
    router.establish("A")
    second_ssid = router.status("B").ssid
    assert second_ssid != first_ssid
    router.expect_message("B", "to the newest instance")
    ex = router.command("B", {"op": "send", "text": "who gets this"})
    receiver = otr_header(router.wire_since(src="B")[-1].data)[3]
    assert receiver == 0x2222
    assert ex.messages("A") == [Message("who gets this", True)]


# --------------------------------------------------------------------------
# Garbage on the network
# --------------------------------------------------------------------------

GARBAGE = [
    "?OTR:===.",
    "?OTR:",
    "?OTR:.",
    "?OTR:AAMD",
    "?OTR:AAMD!!!not*base64!!!.",
    "?OTR:AAMDAAAAAAAAAAAA.",
    "?OTR:AAIDAAAAAQ==.",
    "?OTR:AAMC" + "A" * 400 + ".",
    "?OTR:AAMK" + "/" * 100 + ".",
    "?OTR:AAMR" + "+" * 1000 + ".",
    "?OTR:AAMS" + "B" * 50 + ".",
    "?OTR|",
    "?OTR|12345678|",
    "?OTR|00000100|00000100,00001",
    "?OTR|00000000|00000000,00001,00002,abc,",
    "?OTR|ffffffff|ffffffff,00001,00001,?OTR:AAMD.,",
    "?OTR,00001,00002,abc",
    "?OTR,00002,00001,abc,",
    "?OTR,65535,65535,x,",
    "?OTR,0,0,,",
    "?OTR,1,1,?OTR:===.,",
    "?OTR,00001,00003,?OTR:AAMD,",
    "?OTR Error:",
    "?OTR?",
    "?OTRv?",
    "?OTRv9876543210?",
    "?OTR" * 1000,
    "\ud800\udfff \x01 \u2028",
    "?OTR:" + "QUFB" * 25000 + ".",
]


@pytest.mark.parametrize("victim", SIDES)
def test_injected_garbage_keeps_both_working(make_router: RouterFactory, victim: Side) -> None:
    router = make_router()
    router.establish("A")
    for junk in GARBAGE:
        router.inject(victim, junk)
        assert_alive(router)
    # A fragment for the real instance that is never completed.
    a_tag = otr_header(router.wire_since(src="A")[-1].data)[2]
    b_tag = otr_header(router.wire_since(src="B")[-1].data)[2]
    tags = (a_tag, b_tag) if victim == "B" else (b_tag, a_tag)
    router.inject(victim, f"?OTR|{tags[0]:08x}|{tags[1]:08x},00001,00002,?OTR:AAMD,")
    router.inject(victim, f"?OTR|{tags[0]:08x}|{tags[1]:08x},00002,00002,garbage,")
    assert_alive(router)
    router.wait_encrypted(version=3)
    router.expect_message("A", "still working")
    router.expect_message("B", "me too")
    assert router.run_smp("A", "x", "x") == (["success"], ["success"])


def test_garbage_before_any_session(make_router: RouterFactory) -> None:
    router = make_router()
    for junk in GARBAGE:
        router.inject("B", junk)
    assert_alive(router)
    router.establish("B")
    router.expect_message("A", "works")


def test_garbage_during_ake(make_router: RouterFactory) -> None:
    router = make_router()
    injected = {"done": False}

    def meddle(src: Side, data: str) -> list[str]:
        if data.startswith("?OTR:AAMK") and not injected["done"]:
            injected["done"] = True
            return ["?OTR:AAMR" + data[9:40] + ".", data]
        return [data]

    router.on_wire = meddle
    router.start("A")
    router.on_wire = None
    assert injected["done"]
    router.wait_encrypted(version=3)
    router.expect_message("B", "survived")
