"""Heartbeats: after receiving a data message when it has sent nothing for 60 s,
offrecord sends an empty IGNORE_UNREADABLE data message (as libotr does);
libotr accepts it silently, and the key rotation it carries keeps working."""

from __future__ import annotations

from pathlib import Path

import pytest

from offrecord.session import HEARTBEAT_INTERVAL
from offrecord.wire.envelope import classify
from offrecord.wire.messages import DataMessage, decode_message
from tests.interop.offrecord_peer import InProcessPeer
from tests.interop.router import Router, SubprocessPeer, peer_args

pytestmark = pytest.mark.interop

ALICE, BOB = "alice@example.org", "bob@example.org"


def test_heartbeat_is_sent_and_accepted_by_libotr(libotr_exe: Path) -> None:
    now = [1000.0]
    ours = InProcessPeer(ALICE, BOB, seed=4, clock=lambda: now[0])
    libotr = SubprocessPeer([libotr_exe, *peer_args(BOB, ALICE)], name="libotr:bob")
    with Router(ours, libotr) as router:
        router.start("A")
        router.wait_encrypted(version=3)
        router.expect_message("A", "hello")
        now[0] += HEARTBEAT_INTERVAL + 1
        mark = len(router.network)
        exchange = router.command("B", {"op": "send", "text": "are you there?"})
        assert exchange.messages("A") == [("are you there?", True)]
        ours_sent = [p.data for p in router.network[mark:] if p.src == "A"]
        assert len(ours_sent) == 1, "exactly one heartbeat"
        beat = decode_message(classify(ours_sent[0]).payload)
        assert isinstance(beat, DataMessage) and beat.ignore_unreadable
        # libotr took it silently: no message shown, no error, still encrypted.
        assert exchange.messages("B") == [] and exchange.errors("B") == []
        assert router.status("B").state == "encrypted"
        # Within the interval no second heartbeat goes out.
        mark = len(router.network)
        router.command("B", {"op": "send", "text": "again"})
        assert [p for p in router.network[mark:] if p.src == "A"] == []
        router.expect_message("A", "and the conversation goes on")
        router.expect_message("B", "indeed")
