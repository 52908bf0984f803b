"""Regression tests for bugs found in potr (pure-python-otr, used by Gajim's
and other Python clients' OTR plugins)."""

from __future__ import annotations

import time

import pytest

from offrecord import events as ev
from offrecord.policy import Policy
from offrecord.session import MessageState
from offrecord.wire.codec import encode_short
from offrecord.wire.envelope import classify, tag_plaintext
from offrecord.wire.messages import DHCommit, decode_message
from offrecord.wire.tlv import MAX_TLVS, TLV, decode_tlvs
from tests.regression.libotr_oracle import available, oracle
from tests.regression.pair import ALICE_TAG, BOB_TAG, Pair

_MISSING = available()

# --- unknown TLV types and floods of empty TLVs ---------------------------------------


def _send_raw(pair: Pair, sender: str, payload: bytes) -> list[ev.Event]:
    """Encrypt ``payload`` (text, NUL, TLV bytes) exactly as given and deliver it."""
    session = pair.session(sender)
    keys = session._keys
    assert keys is not None
    tags = (ALICE_TAG, BOB_TAG) if sender == "alice" else (BOB_TAG, ALICE_TAG)
    msg, _ = keys.encrypt(payload, flags=0, sender_tag=tags[0], receiver_tag=tags[1])
    session._queue_encoded(msg, None)
    return pair.deliver("bob" if sender == "alice" else "alice", pair.out(sender))


def _empty_tlvs(kind: int, count: int) -> bytes:
    return (encode_short(kind) + encode_short(0)) * count


@pytest.mark.parametrize("kind", [9, 0x0100, 0x7FFF, 0xFFFF])
def test_potr_unknown_tlv_type(kind: int) -> None:
    """potr's ``TLV.parse`` raised ``UnknownTLV`` for any type it had no class
    for, so a peer (or a newer client) crashed the receive path with one
    unknown TLV.  The spec says unknown types are ignored: offrecord shows
    the text, hands the TLV to the application untouched, and nothing else
    happens."""
    pair = Pair(seed=f"potr-unknown/{kind}").secure()
    payload = b"hello\x00" + encode_short(kind) + encode_short(3) + b"abc" + _empty_tlvs(kind, 2)
    events = _send_raw(pair, "alice", payload)
    assert events == [
        ev.MessageReceived("hello", True, instance=ALICE_TAG,
                           tlvs=(TLV(kind, b"abc"), TLV(kind), TLV(kind)))
    ]  # fmt: skip
    assert pair.out("bob") == []
    pair.assert_usable()


@pytest.mark.parametrize("kind", [0, 9, 0xFFFF])
def test_potr_ten_thousand_empty_tlvs(kind: int) -> None:
    """potr parsed TLVs recursively, one stack frame per record: 10 000
    zero-length TLVs in one message (40 000 bytes, well inside a chat
    message's size) raised RecursionError.  offrecord parses iteratively,
    quickly, and shows the text."""
    pair = Pair(seed=f"potr-flood/{kind}").secure()
    started = time.perf_counter()
    events = _send_raw(pair, "alice", b"flood\x00" + _empty_tlvs(kind, 10_000))
    # generous for a loaded CI machine; quadratic work would take far longer
    assert time.perf_counter() - started < 10.0
    (shown,) = events
    assert isinstance(shown, ev.MessageReceived)
    assert (shown.text, shown.encrypted, len(shown.tlvs)) == ("flood", True, 10_000)
    assert pair.out("bob") == []
    pair.assert_usable()


def test_potr_tlv_flood_beyond_the_cap_keeps_the_text() -> None:
    """More records than ``MAX_TLVS``: the TLVs are dropped with a typed
    event, the text is still shown, and the session moves on."""
    pair = Pair(seed="potr-flood-cap").secure()
    events = _send_raw(pair, "alice", b"text\x00" + _empty_tlvs(9, MAX_TLVS + 1))
    assert [type(e) for e in events] == [ev.MessageDiscarded, ev.MessageReceived]
    assert [e.text for e in events if isinstance(e, ev.MessageReceived)] == ["text"]
    pair.assert_usable()


@pytest.mark.interop
@pytest.mark.skipif(_MISSING is not None, reason=f"libotr: {_MISSING}")
@pytest.mark.parametrize("count", [0, 1, 10_000])
def test_potr_tlv_flood_parsed_as_libotr_does(count: int) -> None:
    """libotr's ``otrl_tlv_parse`` reads the same number of records."""
    data = _empty_tlvs(0xFFFF, count) + encode_short(1) + encode_short(2) + b"xy"
    assert oracle().tlv_count(data) == count + 1 == len(decode_tlvs(data))


# --- simultaneous D-H Commits ------------------------------------------------------------


def _crossing(pair: Pair, limit: int = 20) -> int:
    """Deliver both sides' messages at the same time, round after round (each
    side sends before it sees what the other sent); returns how many went."""
    sent = 0
    for _ in range(limit):
        a, b = pair.out("alice"), pair.out("bob")
        if not a and not b:
            return sent
        sent += len(a) + len(b)
        pair.deliver("bob", a)
        pair.deliver("alice", b)
    raise AssertionError("the exchange never went quiet")


def _converged(pair: Pair, sent: int) -> None:
    assert pair.conv("alice").state is MessageState.ENCRYPTED
    assert pair.conv("bob").state is MessageState.ENCRYPTED
    assert pair.session("alice").ssid == pair.session("bob").ssid
    assert sent <= 10
    pair.assert_usable()


@pytest.mark.parametrize("version", [2, 3])
def test_potr_simultaneous_dh_commits(version: int) -> None:
    """potr's ``handleDHCommit`` answered a D-H Commit with a D-H Key even
    while it was itself waiting for a D-H Key, without comparing the hashes
    as the spec says; when both sides committed at once both ended in
    AWAITING_REVEALSIG, each ignoring the other's D-H Key: a deadlock.
    offrecord follows the spec (the larger hash keeps its commit) and the
    two converge on one session."""
    policy = Policy.ALLOW_V2 if version == 2 else Policy.MANUAL
    pair = Pair(seed=f"potr-commits/{version}", policy=policy)
    pair.conv("alice").start()
    pair.conv("bob").start()
    queries = {name: pair.out(name) for name in ("alice", "bob")}
    pair.deliver("bob", queries["alice"])
    pair.deliver("alice", queries["bob"])
    commits = {name: pair.out(name) for name in ("alice", "bob")}
    for name in ("alice", "bob"):  # both committed before seeing the other's commit
        (text,) = commits[name]
        assert isinstance(decode_message(classify(text).payload), DHCommit)
    pair.deliver("bob", commits["alice"])
    pair.deliver("alice", commits["bob"])
    _converged(pair, 2 + _crossing(pair))
    assert pair.session("alice").version == version


@pytest.mark.parametrize("seed", range(4))
def test_potr_simultaneous_queries(seed: int) -> None:
    """Both users press "start private conversation" at once: queries cross,
    both answer with D-H Commits, which cross too."""
    pair = Pair(seed=f"potr-queries/{seed}")
    pair.conv("alice").start()
    pair.conv("bob").start()
    _converged(pair, _crossing(pair))


def test_potr_simultaneous_whitespace_tags() -> None:
    """Both send tagged plaintext at once under the opportunistic policy:
    each tag starts an AKE, the commits cross."""
    pair = Pair(seed="potr-tags", policy=Policy.OPPORTUNISTIC)
    pair.deliver("bob", [tag_plaintext("hi bob", frozenset({2, 3}))])
    pair.deliver("alice", [tag_plaintext("hi alice", frozenset({2, 3}))])
    _converged(pair, _crossing(pair))


def test_potr_simultaneous_refresh() -> None:
    """Both refresh an encrypted session at once: a new session each, the same."""
    pair = Pair(seed="potr-refresh").secure()
    old = pair.session("alice").ssid
    pair.conv("alice").start()
    pair.conv("bob").start()
    _converged(pair, _crossing(pair))
    assert pair.session("alice").ssid != old
