"""The real ``offrecord peer`` command (a subprocess, through the console entry
point's module) against the libotr peer: start-up, key files, a restarted
client with the same key and instance tag, and malformed input on stdin."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.interop.offrecord_peer import offrecord_subprocess
from tests.interop.router import Router, SubprocessPeer, peer_args

pytestmark = pytest.mark.interop

ALICE, BOB = "alice@example.org", "bob@example.org"


def _libotr(exe: Path, tmp_path: Path) -> SubprocessPeer:
    return SubprocessPeer(
        [exe, *peer_args(BOB, ALICE, keyfile=tmp_path / "bob.key")], name="libotr:bob"
    )


def test_offrecord_peer_talks_to_libotr_and_survives_a_restart(
    libotr_exe: Path, tmp_path: Path
) -> None:
    keyfile = tmp_path / "otr.private_key"
    tag = 0x12345678
    ours = offrecord_subprocess(ALICE, BOB, keyfile=keyfile, instance_tag=tag, max_fragment=200)
    fingerprint = ours.ready["our_fingerprint"]
    assert keyfile.exists() and (keyfile.stat().st_mode & 0o777) == 0o600
    with Router(ours, _libotr(libotr_exe, tmp_path)) as router:
        router.start("A")
        router.wait_encrypted(version=3)
        router.expect_message("A", "hello from the command " + "é" * 300)
        router.expect_message("B", "hello back")
        # Restart our side with the same key and instance tag: libotr still
        # holds the old session, so our first message is unreadable to us...
        restarted = offrecord_subprocess(
            ALICE, BOB, keyfile=keyfile, instance_tag=tag, max_fragment=200
        )
        assert restarted.ready["our_fingerprint"] == fingerprint
        router.replace("A", restarted)
        exchange = router.command("B", {"op": "send", "text": "are you still there?"})
        assert exchange.messages("A") == []
        assert exchange.errors("A"), "an unreadable message must be reported"
        # ...and a new AKE brings both back, with the same identity.
        router.start("A")
        status = router.wait_encrypted(version=3)[1]
        assert status.their_fingerprint == fingerprint
        router.expect_message("A", "back again")


def test_malformed_commands_never_kill_the_peer(tmp_path: Path) -> None:
    peer = offrecord_subprocess(ALICE, BOB)
    try:
        for line in ["not json", "[]", '{"op": 5}', '{"op":"send"}', '{"op":"recv","data":7}',
                     '{"op":"smp_respond","secret":"x"}', '{"op":"nope"}', "\udcff".encode(
                         "utf-8", "surrogateescape").decode("latin-1")]:  # fmt: skip
            events = peer.raw(line)
            assert any(e["ev"] == "error" for e in events), line
        assert peer.command({"op": "status"})[0]["state"] == "plaintext"
    finally:
        peer.close()


def test_bad_options_fail_at_startup(tmp_path: Path) -> None:
    for options in ({"policy": "v3,bogus"}, {"instance_tag": "0x10"}):
        with pytest.raises(AssertionError):
            offrecord_subprocess(ALICE, BOB, **options)


def test_restarted_libotr_side_with_same_key_and_instance_tag(
    libotr_exe: Path, tmp_path: Path
) -> None:
    """libotr restarts (same key file, same instance tag) mid-conversation."""
    keyfile = tmp_path / "bob.key"

    def libotr_bob() -> SubprocessPeer:
        args = peer_args(BOB, ALICE, keyfile=keyfile, instance_tag=0x0BADCAFE)
        return SubprocessPeer([libotr_exe, *args], name="libotr:bob")

    bob = libotr_bob()
    fingerprint = bob.ready["our_fingerprint"]
    with Router(offrecord_subprocess(ALICE, BOB), bob) as router:
        router.start("A")
        router.wait_encrypted(version=3)
        router.expect_message("A", "before the restart")
        router.replace("B", libotr_bob())
        # The fresh libotr has no session with our instance: libotr 4.1.1 drops
        # the data message silently (no context for that instance yet).
        secret = "sent into the void"
        exchange = router.command("A", {"op": "send", "text": secret})
        assert exchange.messages("B") == []
        assert all(secret not in p.data for p in router.network)
        router.start("A")
        status = router.wait_encrypted(version=3)[0]
        assert status.their_fingerprint == fingerprint
        router.expect_message("A", "after the restart")
        router.expect_message("B", "and back")
