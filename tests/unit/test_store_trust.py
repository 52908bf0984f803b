"""StoreTrustBook: an account's trust book persisted in a Store (libotr's
otr.fingerprints), including a whole AKE + SMP between two accounts."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from offrecord import events as ev
from offrecord.account import Account, TrustBook
from offrecord.crypto.dsa import generate_private_key
from offrecord.errors import LocalProtocolError, OTRError, StorageError
from offrecord.storage.base import TRUST_NONE, TRUST_SMP, TRUST_VERIFIED, Store
from offrecord.storage.libotr import LibotrStore
from offrecord.storage.memory import MemoryStore
from offrecord.storage.trust import StoreTrustBook

ALICE, BOB = "alice@example.org", "bob@example.org"
PROTO = "prpl-jabber"
FP1 = bytes(range(20))
FP2 = bytes(range(1, 21))

_RNG = random.Random(2024)
_KEYS = [generate_private_key(_RNG.randbytes) for _ in range(2)]


@pytest.fixture(params=["memory", "libotr"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "memory":
        return MemoryStore()
    return LibotrStore(tmp_path)


def test_is_a_trust_book_and_checks_its_account() -> None:
    book = StoreTrustBook(MemoryStore(), ALICE, PROTO)
    assert isinstance(book, TrustBook)
    assert (book.account, book.protocol) == (ALICE, PROTO)
    assert "StoreTrustBook(" in repr(book)
    with pytest.raises(LocalProtocolError):
        StoreTrustBook(MemoryStore(), "", PROTO)
    with pytest.raises(LocalProtocolError):
        StoreTrustBook(MemoryStore(), ALICE, "a\tb")


def test_new_fingerprints_are_stored_untrusted(store: Store) -> None:
    book = StoreTrustBook(store, ALICE, PROTO)
    assert book.fingerprint_seen(BOB, FP1) == (True, False)
    assert book.fingerprint_seen(BOB, FP1) == (False, False)
    record = store.get_fingerprint(ALICE, PROTO, BOB, FP1)
    assert record is not None and record.trust == TRUST_NONE
    assert book.fingerprints(BOB) == {FP1: TRUST_NONE}
    assert book.fingerprints("nobody") == {}
    assert book.trust(BOB, FP2) == TRUST_NONE


def test_trust_is_stored_and_read_back(store: Store) -> None:
    book = StoreTrustBook(store, ALICE, PROTO)
    book.fingerprint_seen(BOB, FP1)
    book.set_trust(BOB, FP1, TRUST_SMP)
    assert store.get_fingerprint(ALICE, PROTO, BOB, FP1) is not None
    assert book.trust(BOB, FP1) == TRUST_SMP
    assert book.fingerprint_seen(BOB, FP1) == (False, True)
    book.set_trust(BOB, FP1, TRUST_NONE)  # what a failed SMP run does
    assert book.fingerprint_seen(BOB, FP1) == (False, False)
    book.verify(BOB, FP2)  # unknown: added as verified
    assert book.fingerprints(BOB) == {FP1: TRUST_NONE, FP2: TRUST_VERIFIED}
    record = book.record(BOB, FP2)
    assert record is not None and record.trusted


def test_only_its_own_account_is_touched(store: Store) -> None:
    store.add_fingerprint("other@example.org", PROTO, BOB, FP1, TRUST_VERIFIED)
    store.add_fingerprint(ALICE, "prpl-irc", BOB, FP1, TRUST_VERIFIED)
    book = StoreTrustBook(store, ALICE, PROTO)
    assert book.fingerprint_seen(BOB, FP1) == (True, False)
    assert book.fingerprints(BOB) == {FP1: TRUST_NONE}


def test_changes_by_others_are_seen_at_once(store: Store) -> None:
    book = StoreTrustBook(store, ALICE, PROTO)
    book.fingerprint_seen(BOB, FP1)
    store.set_trust(ALICE, PROTO, BOB, FP1, TRUST_VERIFIED)  # e.g. `offrecord trust`
    assert book.trust(BOB, FP1) == TRUST_VERIFIED
    assert book.fingerprint_seen(BOB, FP1) == (False, True)


def test_a_fingerprint_trusted_beforehand_is_not_new_and_trusted(store: Store) -> None:
    store.set_trust(ALICE, PROTO, BOB, FP1, TRUST_VERIFIED)
    book = StoreTrustBook(store, ALICE, PROTO)
    assert book.fingerprint_seen(BOB, FP1) == (False, True)


def test_forget(store: Store) -> None:
    book = StoreTrustBook(store, ALICE, PROTO)
    book.fingerprint_seen(BOB, FP1)
    assert book.forget(BOB, FP1) is True
    assert book.forget(BOB, FP1) is False
    assert book.fingerprint_seen(BOB, FP1) == (True, False)


def test_persists_in_libotrs_file_format(tmp_path: Path) -> None:
    book = StoreTrustBook(LibotrStore(tmp_path), ALICE, PROTO)
    book.fingerprint_seen(BOB, FP1)
    book.set_trust(BOB, FP1, TRUST_SMP)
    book.fingerprint_seen("carol", FP2)
    data = (tmp_path / "otr.fingerprints").read_bytes()
    assert data == (
        f"{BOB}\t{ALICE}\t{PROTO}\t{FP1.hex()}\tsmp\n"
        f"carol\t{ALICE}\t{PROTO}\t{FP2.hex()}\t\n".encode()
    )
    # A new process (a new store and book over the same directory) sees it all.
    again = StoreTrustBook(LibotrStore(tmp_path), ALICE, PROTO)
    assert again.fingerprint_seen(BOB, FP1) == (False, True)
    assert again.fingerprint_seen("carol", FP2) == (False, False)


# -- failures ----------------------------------------------------------------


def _malformed(tmp_path: Path) -> bytes:
    data = f"{BOB}\t{ALICE}\t{PROTO}\t0123\t\n".encode()
    (tmp_path / "otr.fingerprints").write_bytes(data)
    return data


def test_a_malformed_file_raises_by_default_and_is_not_overwritten(tmp_path: Path) -> None:
    data = _malformed(tmp_path)
    book = StoreTrustBook(LibotrStore(tmp_path), ALICE, PROTO)
    with pytest.raises(StorageError) as info:
        book.fingerprint_seen(BOB, FP1)
    assert info.value.line == 1 and "otr.fingerprints" in str(info.value)
    with pytest.raises(StorageError):
        book.set_trust(BOB, FP1, TRUST_SMP)
    with pytest.raises(StorageError):
        book.trust(BOB, FP1)
    with pytest.raises(StorageError):
        book.fingerprints(BOB)
    with pytest.raises(StorageError):
        book.forget(BOB, FP1)
    assert (tmp_path / "otr.fingerprints").read_bytes() == data


def test_on_error_falls_back_to_memory_and_fails_closed(tmp_path: Path) -> None:
    data = _malformed(tmp_path)
    errors: list[OTRError] = []
    book = StoreTrustBook(LibotrStore(tmp_path), ALICE, PROTO, on_error=errors.append)
    assert book.fingerprint_seen(BOB, FP1) == (True, False)
    assert book.fingerprint_seen(BOB, FP1) == (False, False)  # remembered in memory
    book.set_trust(BOB, FP1, TRUST_SMP)
    assert book.trust(BOB, FP1) == TRUST_SMP
    assert book.fingerprints(BOB) == {FP1: TRUST_SMP}
    assert book.record(BOB, FP1) is None
    assert book.trust(BOB, FP2) == TRUST_NONE
    assert errors and all(isinstance(e, StorageError) for e in errors)
    assert (tmp_path / "otr.fingerprints").read_bytes() == data
    # Once the file is repaired, trust set afterwards goes to the store.
    (tmp_path / "otr.fingerprints").unlink()
    book.set_trust(BOB, FP1, TRUST_VERIFIED)
    assert book.fingerprints(BOB) == {FP1: TRUST_VERIFIED}
    assert LibotrStore(tmp_path).get_fingerprint(ALICE, PROTO, BOB, FP1) is not None
    assert book.forget(BOB, FP1) is True


def test_names_libotr_cannot_store_stay_in_memory(tmp_path: Path) -> None:
    book = StoreTrustBook(LibotrStore(tmp_path), ALICE, PROTO)
    for peer in ("tab\there", "x" * 1000):
        assert book.fingerprint_seen(peer, FP1) == (True, False)
        book.set_trust(peer, FP1, TRUST_SMP)
        assert book.fingerprint_seen(peer, FP1) == (False, True)
        assert book.fingerprints(peer) == {FP1: TRUST_SMP}
        assert book.forget(peer, FP1) is True
    assert not (tmp_path / "otr.fingerprints").exists()
    errors: list[OTRError] = []
    reporting = StoreTrustBook(LibotrStore(tmp_path), ALICE, PROTO, on_error=errors.append)
    reporting.fingerprint_seen("tab\there", FP1)
    assert len(errors) == 1 and isinstance(errors[0], LocalProtocolError)


# -- with accounts -------------------------------------------------------------


def _pump(a: Account, b: Account) -> list[ev.Event]:
    """Deliver until quiet; the events ``a`` saw."""
    seen: list[ev.Event] = []
    for _ in range(20):
        moved = False
        for src, dst in ((a, b), (b, a)):
            for _peer, text in src.data_to_send():
                moved = True
                events = dst.receive(src.name, text)
                if dst is a:
                    seen += events
        if not moved:
            break
    return seen


def _accounts(tmp_path: Path) -> tuple[Account, Account]:
    book = StoreTrustBook(LibotrStore(tmp_path), ALICE, PROTO)
    alice = Account(ALICE, PROTO, _KEYS[0], random_bytes=_RNG.randbytes, trust=book)
    bob = Account(BOB, PROTO, _KEYS[1], random_bytes=_RNG.randbytes)
    return alice, bob


def test_an_account_persists_fingerprints_and_smp_trust(tmp_path: Path) -> None:
    alice, bob = _accounts(tmp_path)
    alice.conversation(BOB).start()
    seen = _pump(alice, bob)
    assert any(isinstance(e, ev.NewFingerprint) for e in seen)
    bob_fp = _KEYS[1].fingerprint()
    lines = (tmp_path / "otr.fingerprints").read_text().splitlines()
    assert lines == [f"{BOB}\t{ALICE}\t{PROTO}\t{bob_fp.hex()}\t"]

    alice.conversation(BOB).best_session().smp_start("our secret", "Where did we meet?")
    _pump(alice, bob)
    bob.conversation(ALICE).best_session().smp_respond("our secret")
    results = [e for e in _pump(alice, bob) if isinstance(e, ev.SMPResult)]
    assert results and all(r.success for r in results)
    lines = (tmp_path / "otr.fingerprints").read_text().splitlines()
    assert lines == [f"{BOB}\t{ALICE}\t{PROTO}\t{bob_fp.hex()}\tsmp"]

    # A restarted client: the fingerprint is known and trusted.
    restarted, bob2 = _accounts(tmp_path)
    restarted.conversation(BOB).start()
    seen = _pump(restarted, bob2)
    assert not any(isinstance(e, ev.NewFingerprint) for e in seen)
    secured = [e for e in seen if isinstance(e, ev.SessionSecured)]
    assert secured and secured[0].trusted is True
