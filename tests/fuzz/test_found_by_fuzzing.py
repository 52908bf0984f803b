"""Regression tests for what fuzzing found, each named after the finding."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from fuzz.conversation import receiver_key
from fuzz.targets import TARGETS
from offrecord import events as ev
from offrecord.account import Account
from offrecord.errors import LocalProtocolError
from offrecord.policy import Policy

CORPUS = Path(__file__).resolve().parents[2] / "fuzz" / "corpus"


def pair(policy: Policy) -> tuple[Account, Account]:
    key = receiver_key()
    alice = Account("alice", "x", key, policy=policy, random_bytes=random.Random(1).randbytes)
    bob = Account("bob", "x", key, policy=policy, random_bytes=random.Random(2).randbytes)
    return alice, bob


def converse(alice: Account, bob: Account) -> list[ev.Event]:
    seen: list[ev.Event] = []
    for _ in range(10):
        for _peer, text in alice.data_to_send():
            seen.extend(bob.receive("alice", text))
        for _peer, text in bob.data_to_send():
            seen.extend(alice.receive("bob", text))
    return seen


@pytest.mark.parametrize("typed", ["lone \udc80 surrogate", "a NUL \x00 inside"])
def test_held_text_that_cannot_be_encrypted_made_receive_raise(typed: str) -> None:
    """A message typed under REQUIRE_ENCRYPTION was held unchecked and only
    encrypted when the AKE completed — inside Account.receive, which then
    raised (UnicodeEncodeError, LocalProtocolError) and lost the held
    messages.  Now send() refuses it at once and receive() only returns events."""
    alice, bob = pair(Policy.ALWAYS)
    conv = alice.conversation("bob")
    with pytest.raises(LocalProtocolError):
        conv.send(typed)
    assert conv.send("fine") == [ev.MessageHeld(1)]
    seen = converse(alice, bob)
    assert conv.state.value == "encrypted"
    assert [e.text for e in seen if isinstance(e, ev.MessageReceived)] == ["fine"]


@pytest.mark.parametrize("secret", ["\udc80", "x\ud800y"])
def test_smp_secret_with_lone_surrogates_raised_unicode_error(secret: str) -> None:
    """The SMP secret was encoded unchecked (UnicodeEncodeError); the question
    already gave LocalProtocolError, and now the secret does too."""
    alice, bob = pair(Policy.MANUAL)
    alice.conversation("bob").start()
    converse(alice, bob)
    session = alice.conversation("bob").best_session()
    assert session.is_encrypted
    with pytest.raises(LocalProtocolError):
        session.smp_start(secret)
    with pytest.raises(LocalProtocolError):
        alice.conversation("bob").send(secret)


def test_account_target_held_text_with_lone_surrogates() -> None:
    """The fuzz input that found it: the REQUIRE_ENCRYPTION seed conversation
    with a lone surrogate in the first held message."""
    seed = (CORPUS / "account" / "seed-always").read_bytes()
    assert b"sheld one" in seed
    TARGETS["account"](seed.replace(b"sheld one", b"sheld \xed\xb2\x80 one"))
