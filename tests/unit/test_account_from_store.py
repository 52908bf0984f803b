"""Account.from_store: key, instance tag and trust from libotr's files."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from offrecord.account import Account
from offrecord.crypto.dsa import generate_private_key
from offrecord.errors import LocalProtocolError
from offrecord.storage.libotr import LibotrStore
from offrecord.storage.memory import MemoryStore


def test_instance_tag_is_made_once_and_persisted(tmp_path: Path) -> None:
    store = LibotrStore(tmp_path)
    key = generate_private_key(random.Random(5).randbytes)
    store.save_private_key("alice@example.org", "prpl-jabber", key)
    first = Account.from_store(store, "alice@example.org", "prpl-jabber")
    again = Account.from_store(LibotrStore(tmp_path), "alice@example.org", "prpl-jabber")
    assert first.instance_tag == again.instance_tag >= 0x100
    assert first.fingerprint == again.fingerprint == key.fingerprint()
    assert (tmp_path / "otr.instance_tags").read_text().count("alice@example.org") == 1


def test_trust_learned_in_a_conversation_is_saved(tmp_path: Path) -> None:
    rng = random.Random(9)
    store = LibotrStore(tmp_path)
    store.save_private_key("alice", "irc", generate_private_key(rng.randbytes))
    alice = Account.from_store(store, "alice", "irc", random_bytes=rng.randbytes)
    bob = Account("bob", "irc", generate_private_key(rng.randbytes), random_bytes=rng.randbytes)
    alice.conversation("bob").start()
    for _ in range(6):
        for src, dst, name in ((alice, bob, "alice"), (bob, alice, "bob")):
            for _peer, text in src.data_to_send():
                dst.receive(name, text)
    (record,) = store.list_fingerprints("alice", "irc", "bob")
    assert record.fingerprint == bob.fingerprint and record.trust == ""
    alice.set_trust("bob", bob.fingerprint, "verified")
    (record,) = LibotrStore(tmp_path).list_fingerprints("alice", "irc", "bob")
    assert record.trust == "verified"


def test_missing_key_is_a_clear_error() -> None:
    with pytest.raises(LocalProtocolError, match="no private key"):
        Account.from_store(MemoryStore(), "nobody", "irc")
