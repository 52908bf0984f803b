"""Regression tests for what fuzzing found, each named after the finding."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from fuzz.conversation import receiver_key
from fuzz.targets import TARGETS
from offrecord import events as ev
from offrecord.account import Account
from offrecord.errors import LocalProtocolError, StorageError
from offrecord.policy import Policy
from offrecord.storage import potr
from offrecord.storage.libotr import parse_fingerprints
from offrecord.storage.memory import MemoryStore

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


# Found by the fingerprints target: bytes.fromhex() skips spaces, so a 40-character
# field holding 38 digits and two spaces was read as a 19-byte fingerprint, which
# could then be written back but never read again.
SHORT_FINGERPRINT = "0102030405060708090a0b0c0d0e0f10111213  "


def test_otr_fingerprints_with_spaces_in_the_hex_was_read_as_a_short_fingerprint() -> None:
    line = f"you\tme\tprpl-irc\t{SHORT_FINGERPRINT}\tverified\n".encode()
    with pytest.raises(StorageError, match="not hexadecimal"):
        parse_fingerprints(line, path="f")
    TARGETS["fingerprints"](line)


def test_potr_fpr_with_spaces_in_the_hex_made_the_import_raise_local_error(
    tmp_path: Path,
) -> None:
    """The same short fingerprint from a potr .fpr reached the store, which
    refused it with LocalProtocolError instead of a StorageError for the file."""
    line = f"me\tme\txmpp\t{SHORT_FINGERPRINT}\tverified\n".encode()
    with pytest.raises(StorageError, match="not hexadecimal"):
        potr.parse_fpr(line, path="fpr")
    (tmp_path / "me.fpr").write_bytes(line)
    store = MemoryStore()
    with pytest.raises(StorageError) as caught:
        potr.import_potr_account(store, tmp_path, "me", protocol="xmpp")
    assert caught.value.path == str(tmp_path / "me.fpr")
    assert store.list_fingerprints("me", "xmpp") == ()
