"""Unit tests of the interop router with fake peers.

The in-process ``ToyPeer`` speaks a made-up "encryption" (ROT13 behind a
two-message handshake) through the peer protocol, which is enough to check
routing, hooks, recording and the assertion helpers.  Fake subprocess peers
(small Python scripts) check that hangs, crashes and protocol violations fail
loudly instead of passing.
"""

from __future__ import annotations

import codecs
import os
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.interop.router import (
    ExpectationFailed,
    Message,
    PeerExited,
    PeerFailure,
    PeerLike,
    PeerTimeout,
    ProtocolViolation,
    Router,
    RoutingStorm,
    Side,
    Status,
    SubprocessPeer,
    peer_args,
    validate_event,
)

REPO_ROOT = Path(__file__).resolve().parents[2]

Event = dict[str, Any]


class ToyPeer:
    """In-process peer with a toy protocol.

    ``start`` sends ``?TOY?``; the receiver answers ``?TOY-OK`` and both are
    "encrypted".  Encrypted text travels as ``TOY:`` + ROT13.  ``end`` sends
    ``TOY-END`` (the receiver becomes finished).  SMP: ``smp`` sends
    ``TOY-SMP:<question>|<secret>``; ``smp_respond`` compares and sends
    ``TOY-SMP-RESULT:<result>``.
    """

    def __init__(self, name: str, fingerprint: str) -> None:
        self.name = name
        self.fingerprint = fingerprint
        self.their_fingerprint: str | None = None
        self.state = "plaintext"
        self.closed = False
        self.commands: list[dict[str, Any]] = []
        self.stderr = f"{name}: toy peer log\n"
        self._smp_secret: str | None = None

    @property
    def ready(self) -> Event:
        return {"ev": "ready", "impl": "toy", "versions": [3], "our_fingerprint": self.fingerprint}

    def _go_encrypted(self, events: list[Event]) -> None:
        self.state = "encrypted"
        events.append({"ev": "state", "state": "encrypted"})

    def command(self, cmd: Mapping[str, Any]) -> list[Event]:
        if self.closed:
            raise PeerFailure(f"{self.name} is closed")
        self.commands.append(dict(cmd))
        op = cmd.get("op")
        ev: list[Event] = []
        if op == "start":
            ev.append({"ev": "wire", "data": "?TOY?" + self.fingerprint})
        elif op == "send":
            text = str(cmd["text"])
            if self.state == "encrypted":
                ev.append({"ev": "wire", "data": "TOY:" + codecs.encode(text, "rot13")})
            elif self.state == "finished":
                ev.append({"ev": "error", "text": "not sent: finished"})
            else:
                ev.append({"ev": "wire", "data": text})
        elif op == "recv":
            self._recv(str(cmd["data"]), ev)
        elif op == "end":
            if self.state == "encrypted":
                ev.append({"ev": "wire", "data": "TOY-END"})
            if self.state != "plaintext":
                self.state = "plaintext"
                ev.append({"ev": "state", "state": "plaintext"})
        elif op == "smp":
            question = cmd.get("question")
            self._smp_secret = str(cmd["secret"])
            q = "" if question is None else "Q" + str(question)
            ev.append({"ev": "wire", "data": f"TOY-SMP:{q}|{cmd['secret']}"})
        elif op == "smp_respond":
            if self._smp_secret is None:
                ev.append({"ev": "error", "text": "no smp"})
            else:
                result = "success" if self._smp_secret == cmd["secret"] else "failure"
                self._smp_secret = None
                ev.append({"ev": "wire", "data": "TOY-SMP-RESULT:" + result})
                ev.append({"ev": "smp", "result": result})
        elif op == "status":
            enc = self.state == "encrypted"
            ev.append(
                {
                    "ev": "status",
                    "state": self.state,
                    "version": 3 if self.their_fingerprint else None,
                    "our_fingerprint": self.fingerprint,
                    "their_fingerprint": self.their_fingerprint,
                    "trusted": False,
                    "ssid": "0011223344556677" if enc else None,
                }
            )
        elif op == "quit":
            self.closed = True
        else:
            ev.append({"ev": "error", "text": f"unknown op {op!r}"})
        for event in ev:
            problem = validate_event(event)
            assert problem is None, problem
        return ev

    def _recv(self, data: str, ev: list[Event]) -> None:
        if data.startswith("?TOY?"):
            self.their_fingerprint = data[5:]
            ev.append({"ev": "wire", "data": "?TOY-OK" + self.fingerprint})
            self._go_encrypted(ev)
        elif data.startswith("?TOY-OK"):
            self.their_fingerprint = data[7:]
            self._go_encrypted(ev)
        elif data.startswith("TOY:"):
            if self.state == "encrypted":
                text = codecs.decode(data[4:], "rot13")
                ev.append({"ev": "message", "text": text, "encrypted": True})
            else:
                ev.append({"ev": "error", "text": "cannot read encrypted message"})
        elif data == "TOY-END":
            self.state = "finished"
            ev.append({"ev": "state", "state": "finished"})
        elif data.startswith("TOY-SMP:"):
            question, _, secret = data[8:].partition("|")
            self._smp_secret = secret
            ev.append({"ev": "smp", "state": "asked", "question": question[1:] or None})
        elif data.startswith("TOY-SMP-RESULT:"):
            self._smp_secret = None
            ev.append({"ev": "smp", "result": data[15:]})
        else:
            if self.state != "plaintext":
                ev.append({"ev": "error", "text": "unencrypted message"})
            ev.append({"ev": "message", "text": data, "encrypted": False})

    def close(self) -> None:
        self.closed = True


class EchoStormPeer(ToyPeer):
    """Answers every network message with another one: a ping-pong storm."""

    def command(self, cmd: Mapping[str, Any]) -> list[Event]:
        if cmd.get("op") == "recv":
            return [{"ev": "wire", "data": "ping " + str(cmd["data"])[:20]}]
        return super().command(cmd)


def toy_router(**kwargs: Any) -> Router:
    return Router(ToyPeer("alice", "A" * 40), ToyPeer("bob", "B" * 40), **kwargs)


# --------------------------------------------------------------------------
# Routing with in-process peers
# --------------------------------------------------------------------------


def test_toy_peer_satisfies_peer_like() -> None:
    peer: PeerLike = ToyPeer("x", "C" * 40)
    assert isinstance(peer, PeerLike)


def test_establish_and_messages() -> None:
    router = toy_router()
    ex = router.establish("A")
    assert ex.states("A") == ["encrypted"] and ex.states("B") == ["encrypted"]
    a, b = router.wait_encrypted(version=3)
    assert a.their_fingerprint == "B" * 40 and b.their_fingerprint == "A" * 40
    assert router.send("A", "hello") == [Message("hello", True)]
    router.expect_message("B", "hi back")
    assert [p.data for p in router.network] == [
        "?TOY?" + "A" * 40,
        "?TOY-OK" + "B" * 40,
        "TOY:uryyb",
        "TOY:uv onpx",
    ]
    assert [(p.src, p.dst) for p in router.network] == [
        ("A", "B"),
        ("B", "A"),
        ("A", "B"),
        ("B", "A"),
    ]
    assert router.wire_containing("hello") == []
    assert [p.data for p in router.deliveries] == [p.data for p in router.network]


def test_exchange_collects_events_of_both_sides_in_order() -> None:
    router = toy_router()
    ex = router.start("B")
    assert [(side, ev["ev"]) for side, ev in ex.log] == [
        ("B", "wire"),
        ("A", "wire"),
        ("A", "state"),
        ("B", "state"),
    ]
    assert ex.wires("B") == ["?TOY?" + "B" * 40]
    assert router.last is ex


def test_wrong_expectation_fails() -> None:
    router = toy_router()
    router.establish("A")
    # The message arrives encrypted, so expecting plaintext must fail ...
    with pytest.raises(ExpectationFailed, match="encrypted=False"):
        router.expect_message("A", "secret", encrypted=False)
    # ... and so must expecting no message at all.
    with pytest.raises(ExpectationFailed):
        router.expect_no_message("A", "shown anyway")
    # A tampering network makes the receiver show something else.
    router.on_wire = lambda src, data: ["TOY:" + codecs.encode("forged", "rot13")]
    with pytest.raises(ExpectationFailed) as info:
        router.expect_message("A", "original")
    text = str(info.value)
    assert "'forged'" in text and "network messages" in text and "toy peer log" in text
    # Dropping everything: nothing shown.
    router.on_wire = lambda src, data: []
    with pytest.raises(ExpectationFailed, match="showed nothing"):
        router.expect_message("A", "lost")
    router.on_wire = None
    router.expect_message("A", "fine again")


def test_wrong_state_expectations_fail() -> None:
    router = toy_router()
    with pytest.raises(ExpectationFailed, match="no matching encrypted session"):
        router.wait_encrypted()
    with pytest.raises(ExpectationFailed):
        router.expect_state("A", "encrypted")
    router.establish("A")
    with pytest.raises(ExpectationFailed, match="version"):
        router.wait_encrypted(version=2)
    router.end("A")
    router.expect_state("A", "plaintext")
    router.expect_state("B", "finished")
    with pytest.raises(ExpectationFailed):
        router.expect_state("B", "plaintext")


def test_establish_fails_when_handshake_is_dropped() -> None:
    router = toy_router(on_wire=lambda src, data: [] if src == "B" else [data])
    with pytest.raises(ExpectationFailed, match="announced no encrypted state"):
        router.establish("A")


def test_drop_duplicate_and_tamper_hooks() -> None:
    router = toy_router()
    router.establish("A")
    seen: list[tuple[Side, str]] = []

    def duplicate(src: Side, data: str) -> list[str]:
        seen.append((src, data))
        return [data, data]

    router.on_wire = duplicate
    assert router.send("A", "twice") == [Message("twice", True)] * 2
    assert seen == [("A", "TOY:gjvpr")]
    assert router.network[-1].data == "TOY:gjvpr"
    assert [p.data for p in router.deliveries[-2:]] == ["TOY:gjvpr", "TOY:gjvpr"]

    router.on_wire = lambda src, data: []
    assert router.send("B", "dropped") == []
    assert router.network[-1].data == "TOY:qebccrq"  # still recorded as sent

    router.on_wire = lambda src, data: [data.upper()]
    assert router.send("A", "abc") == [Message("ABC", True)]


def test_hook_must_return_strings() -> None:
    router = toy_router(on_wire=lambda src, data: [b"bytes"])
    with pytest.raises(TypeError):
        router.send("A", "x")


def test_inject_forged_traffic() -> None:
    router = toy_router()
    router.establish("A")
    ex = router.inject("B", "TOY:sbetrq")
    assert ex.messages("B") == [Message("forged", True)]
    assert router.deliveries[-1].injected is True
    assert router.deliveries[-1].src == "A"
    assert router.network[-1].data != "TOY:sbetrq"  # forged data never was "sent"


def test_inject_plaintext_shows_warning() -> None:
    router = toy_router()
    router.establish("A")
    ex = router.inject("A", "in the clear")
    assert ex.messages("A") == [Message("in the clear", False)]
    assert ex.errors("A") == ["unencrypted message"]


def test_wire_order_is_preserved() -> None:
    class Burst(ToyPeer):
        def command(self, cmd: Mapping[str, Any]) -> list[Event]:
            if cmd.get("op") == "send":
                return [{"ev": "wire", "data": f"{cmd['text']}-{i}"} for i in range(5)]
            return super().command(cmd)

    router = Router(Burst("a", "A" * 40), ToyPeer("b", "B" * 40))
    assert [m.text for m in router.send("A", "part")] == [f"part-{i}" for i in range(5)]


def test_ping_pong_storm_fails_instead_of_hanging() -> None:
    router = Router(EchoStormPeer("a", "A" * 40), EchoStormPeer("b", "B" * 40), max_deliveries=50)
    with pytest.raises(RoutingStorm, match="ping-pong"):
        router.send("A", "hello")
    assert len(router.deliveries) == 50


def test_manual_delivery() -> None:
    router = toy_router(auto_deliver=False)
    ex = router.start("A")
    assert ex.states("B") == []
    assert list(router.pending) == [("A", "?TOY?" + "A" * 40)]
    ex = router.deliver_one()
    assert ex.states("B") == ["encrypted"]
    assert list(router.pending) == [("B", "?TOY-OK" + "B" * 40)]
    assert router.drop_pending() == [("B", "?TOY-OK" + "B" * 40)]
    assert router.deliver_one().log == []
    router.expect_state("A", "plaintext")
    router.expect_state("B", "encrypted")


def test_wait_encrypted_delivers_queued_traffic() -> None:
    router = toy_router(auto_deliver=False)
    router.start("A")
    router.wait_encrypted()
    assert not router.pending


def test_smp_helpers() -> None:
    router = toy_router()
    router.establish("A")
    assert router.run_smp("A", "s", "s") == (["success"], ["success"])
    assert router.run_smp("B", "s", "t", question="colour?") == (["failure"], ["failure"])
    router.on_wire = lambda src, data: [data.replace("TOY-SMP:Qreal", "TOY-SMP:Qfake")]
    with pytest.raises(ExpectationFailed, match="was asked"):
        router.run_smp("A", "s", "s", question="real")


def test_status_parsing_and_validation() -> None:
    router = toy_router()
    assert router.status("A") == Status("plaintext", None, "A" * 40, None, False, None)
    with pytest.raises(ProtocolViolation):
        Status.from_event({"ev": "status", "state": "secure"})
    with pytest.raises(ProtocolViolation):
        Status.from_event(
            {
                "ev": "status",
                "state": "plaintext",
                "version": None,
                "our_fingerprint": "a" * 40,  # must be upper case
                "their_fingerprint": None,
                "trusted": False,
                "ssid": None,
            }
        )


@pytest.mark.parametrize(
    "event",
    [
        {"ev": "wire", "data": ""},
        {"ev": "wire"},
        {"ev": "message", "text": "x"},
        {"ev": "message", "text": "x", "encrypted": "yes"},
        {"ev": "state", "state": "secure"},
        {"ev": "smp", "result": "maybe"},
        {"ev": "smp", "state": "waiting"},
        {"ev": "error"},
        {"ev": "ready", "impl": "x"},
        {"ev": "bogus"},
        {"no": "ev"},
        ["ev", "wire"],
    ],
)
def test_validate_event_rejects(event: Any) -> None:
    assert validate_event(event) is not None


def test_close_closes_both() -> None:
    a, b = ToyPeer("a", "A" * 40), ToyPeer("b", "B" * 40)
    with Router(a, b):
        pass
    assert a.closed and b.closed


def test_peer_args() -> None:
    assert peer_args("a", "b") == ["--account", "a", "--peer", "b"]
    assert peer_args(
        "a",
        "b",
        protocol="xmpp",
        keyfile=Path("/k"),
        policy=["v3", "require"],
        max_fragment=150,
        instance_tag=0x1234,
    ) == [
        "--account", "a", "--peer", "b", "--protocol", "xmpp", "--keyfile", "/k",
        "--policy", "v3,require", "--max-fragment", "150", "--instance-tag", "0x00001234",
    ]  # fmt: skip


# --------------------------------------------------------------------------
# Subprocess peers that misbehave
# --------------------------------------------------------------------------

FAKE_PEER = textwrap.dedent(
    """
    import json, sys, time
    mode = sys.argv[1]
    def out(obj):
        sys.stdout.write(json.dumps(obj) + "\\n")
        sys.stdout.flush()
    def err(text):
        sys.stderr.write(text + "\\n")
        sys.stderr.flush()
    err("fake peer in mode " + mode)
    if mode == "silent":
        time.sleep(60)
        sys.exit(0)
    if mode == "notready":
        out({"ev": "wire", "data": "too early"})
    elif mode == "crash-at-start":
        err("CRASH-MARKER: cannot start")
        sys.exit(7)
    else:
        out({"ev": "ready", "impl": "fake", "versions": [3], "our_fingerprint": "F" * 40})
    for line in sys.stdin:
        cmd = json.loads(line)
        op, cid = cmd.get("op"), cmd.get("id")
        if mode == "hang":
            err("HANG-MARKER: ignoring " + str(op))
            continue
        if mode == "die":
            err("DIE-MARKER")
            sys.exit(3)
        if mode == "garbage":
            sys.stdout.write("this is not json\\n")
            sys.stdout.flush()
            continue
        if mode == "wrongid":
            out({"ev": "done", "id": "not-" + str(cid)})
            continue
        if mode == "badevent":
            out({"ev": "wire", "data": ""})
        if op == "quit":
            out({"ev": "done", "id": cid})
            sys.exit(0)
        if op == "send":
            out({"ev": "wire", "data": cmd["text"]})
        if op == "recv":
            out({"ev": "message", "text": cmd["data"], "encrypted": False})
        out({"ev": "done", "id": cid})
        if mode == "chatty":
            out({"ev": "log", "text": "unsolicited"})
    """
)


def fake(mode: str, **kwargs: Any) -> SubprocessPeer:
    return SubprocessPeer([sys.executable, "-c", FAKE_PEER, mode], name=f"fake-{mode}", **kwargs)


def test_subprocess_peer_round_trip() -> None:
    with fake("ok") as peer:
        assert peer.ready["impl"] == "fake"
        assert peer.command({"op": "send", "text": "h\u00e9 \U0001f600"}) == [
            {"ev": "wire", "data": "h\u00e9 \U0001f600"}
        ]
        assert peer.command({"op": "status", "id": [1, {"x": None}]}) == []
        assert peer.history[-1][0]["id"] == [1, {"x": None}]
    assert peer.returncode == 0
    # stderr is read by a background thread: check it once the peer has exited.
    assert "fake peer in mode ok" in peer.stderr
    peer.close()  # idempotent


def test_subprocess_routes_between_two_fakes() -> None:
    router = Router(fake("ok"), fake("ok", ascii_json=True))
    with router:
        assert router.send("A", "x\u00e9") == [Message("x\u00e9", False)]
        assert router.send("B", "lone \ud800") == [Message("lone \ud800", False)]


def test_hung_peer_times_out_with_stderr() -> None:
    peer = fake("hang", timeout=0.5)
    with pytest.raises(PeerTimeout) as info:
        peer.command({"op": "status"})
    message = str(info.value)
    assert "timed out" in message
    assert "HANG-MARKER" in message
    assert not peer.alive  # the hung process was killed
    assert isinstance(info.value, AssertionError)
    peer.close()


def test_peer_that_never_gets_ready_times_out() -> None:
    with pytest.raises(PeerTimeout, match="ready"):
        fake("silent", startup_timeout=0.5)


def test_peer_crashing_at_startup() -> None:
    with pytest.raises(PeerExited, match="CRASH-MARKER") as info:
        fake("crash-at-start")
    assert "exit status 7" in str(info.value)


def test_peer_not_starting_with_ready() -> None:
    with pytest.raises(ProtocolViolation, match="not ready"):
        fake("notready")


def test_dying_peer() -> None:
    peer = fake("die")
    with pytest.raises(PeerExited, match="DIE-MARKER") as info:
        peer.command({"op": "status"})
    assert "exit status 3" in str(info.value)
    peer.close()


@pytest.mark.parametrize(
    ("mode", "pattern"),
    [("garbage", "not JSON"), ("wrongid", "done with id"), ("badevent", "non-empty")],
)
def test_protocol_violations(mode: str, pattern: str) -> None:
    peer = fake(mode, timeout=5)
    try:
        with pytest.raises(ProtocolViolation, match=pattern):
            peer.command({"op": "status"})
    finally:
        peer.kill()


def test_output_between_commands_is_a_violation() -> None:
    peer = fake("chatty", timeout=5)
    try:
        peer.command({"op": "status"})
        with pytest.raises(ProtocolViolation, match="between commands"):
            # Give the unsolicited line time to arrive.
            for _ in range(50):
                peer.command({"op": "status"})
    finally:
        peer.kill()


def test_router_reports_hung_peer_as_failure() -> None:
    router = Router(fake("ok"), fake("hang", timeout=0.5))
    with pytest.raises(PeerTimeout, match="HANG-MARKER"):
        router.send("A", "hello?")
    router.close()


INNER_TEST = textwrap.dedent(
    """
    import sys
    from tests.interop.router import Router, SubprocessPeer
    from tests.interop.test_router_unit import FAKE_PEER

    def peer(mode):
        return SubprocessPeer([sys.executable, "-c", FAKE_PEER, mode], timeout=0.5)

    def test_talks_to_a_hung_peer():
        router = Router(peer("ok"), peer("hang"))
        try:
            router.expect_message("A", "hello", encrypted=False)
        finally:
            router.close()

    def test_wrong_expectation():
        router = Router(peer("ok"), peer("ok"))
        try:
            router.expect_message("A", "hello", encrypted=True)
        finally:
            router.close()
    """
)


def test_hung_peer_and_wrong_expectation_fail_the_test(tmp_path: Path) -> None:
    """Run real pytest sessions: both scenarios must be reported as failed."""
    test_file = tmp_path / "test_inner.py"
    test_file.write_text(INNER_TEST)
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(tmp_path),
            str(test_file),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "2 failed" in output, output
    assert "PeerTimeout" in output and "ExpectationFailed" in output, output
