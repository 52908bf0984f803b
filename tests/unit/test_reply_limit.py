"""Automatic replies are bounded: errors for unreadable messages, queries after
OTR errors (ERROR_START_AKE) and AKE starts on queries."""

from __future__ import annotations

import random

from offrecord import events as ev
from offrecord.account import Account
from offrecord.crypto.dsa import generate_private_key
from offrecord.policy import Policy
from offrecord.wire.envelope import frame
from offrecord.wire.messages import DataMessage, encode_message

_KEY = generate_private_key(random.Random(7).randbytes)


def _account(policy: Policy = Policy.ALWAYS, clock: list[float] | None = None) -> Account:
    return Account(
        "alice",
        "irc",
        _KEY,
        policy=policy,
        instance_tag=0x1000,
        random_bytes=random.Random(1).randbytes,
        clock=(lambda: clock[0]) if clock is not None else None,
    )


def _unreadable() -> str:
    # Version 2 (no instances): it reaches the master session, which cannot read it.
    msg = DataMessage(2, 0, 0, 0, 1, 1, 5, b"\x00" * 7 + b"\x01", b"x", b"\x00" * 20, b"")
    return frame(encode_message(msg))


def test_error_replies_to_unreadable_messages_are_bounded_without_a_clock() -> None:
    alice = _account()
    events: list[ev.Event] = []
    for _ in range(50):
        events += alice.receive("bob", _unreadable())
    assert sum(isinstance(e, ev.UnreadableMessage) for e in events) == 50  # the user is told
    errors = [t for _p, t in alice.data_to_send() if t.startswith("?OTR Error:")]
    assert len(errors) == 5
    # A user action refills the allowance.
    alice.conversation("bob").start()
    alice.data_to_send()
    alice.receive("bob", _unreadable())
    assert len(alice.data_to_send()) == 1


def test_error_replies_refill_with_time() -> None:
    now = [0.0]
    alice = _account(clock=now)
    for _ in range(20):
        alice.receive("bob", _unreadable())
    assert len(alice.data_to_send()) == 5
    now[0] += 4.0  # two intervals
    for _ in range(20):
        alice.receive("bob", _unreadable())
    assert len(alice.data_to_send()) == 2


def test_error_start_ake_and_query_floods_are_bounded() -> None:
    alice = _account(Policy.ALWAYS)
    for _ in range(30):
        alice.receive("bob", "?OTR Error: you are wrong")
        alice.receive("bob", "?OTRv3?")
    assert len(alice.data_to_send()) == 5


def test_two_disagreeing_clients_converge_to_silence() -> None:
    """Two REQUIRE_ENCRYPTION + ERROR_START_AKE clients that cannot agree on a
    version (v2-only vs v3-only) exchange a bounded amount of traffic."""
    a = Account("a", "irc", _KEY, policy=Policy.ALWAYS & ~Policy.ALLOW_V3,
                random_bytes=random.Random(2).randbytes)  # fmt: skip
    b = Account("b", "irc", _KEY, policy=Policy.ALWAYS & ~Policy.ALLOW_V2,
                random_bytes=random.Random(3).randbytes)  # fmt: skip
    a.conversation("b").send("hello?")
    b.receive("a", "?OTR Error: not encrypted")
    total = 0
    for _ in range(100):
        moved = 0
        for src, dst, name in ((a, b, "a"), (b, a, "b")):
            for _peer, text in src.data_to_send():
                moved += 1
                dst.receive(name, text)
        total += moved
        if not moved:
            break
    assert total <= 20
