"""offrecord's storage against the real libotr 4.1.1 and libgcrypt.

* Files libotr writes are read by offrecord with the same keys, fingerprints,
  trust and tags, and a load followed by a save that changes nothing gives
  the same bytes.
* Files offrecord writes are read by libotr with the same keys (it signs
  with them and we verify), fingerprints, trust and tags.
* The S-expression writer and parser agree with libgcrypt's own, on random
  trees and texts.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from offrecord.crypto.dsa import DSAPrivateKey, generate_private_key
from offrecord.errors import StorageError
from offrecord.storage import sexp
from offrecord.storage.base import FingerprintRecord
from offrecord.storage.libotr import (
    LibotrStore,
    PrivateKeyEntry,
    format_fingerprints,
    format_private_keys,
    parse_fingerprints,
    parse_instance_tags,
    parse_private_keys,
)
from offrecord.storage.sexp import SList
from tests.interop.libotr_ctypes import GCRYSEXP_FMT_ADVANCED, LibOTR, UserState, load
from tests.property.test_sexp_properties import trees, written_tree

LIB = load()

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(LIB is None, reason="libotr.so.5 is not installed"),
]

# (account, protocol) pairs as bytes, chosen to exercise every atom encoding
ACCOUNTS: list[tuple[bytes, bytes]] = [
    (b"alice@example.org", b"prpl-jabber"),  # quoted string
    (b"bob", b"prpl-irc"),  # token
    (b"1nick@irc.libera.chat", b"prpl-irc"),  # digit first: quoted
    ("\u015bwiat@example.pl".encode(), b"prpl-jabber"),  # 0x9b byte: hex
    (b'q"uo\\te', b"prpl-jabber"),  # escapes
    (b"caf\xe9", b"prpl-irc"),  # not UTF-8 (Latin-1)
]


@pytest.fixture(scope="module")
def lib() -> LibOTR:
    assert LIB is not None
    return LIB


@pytest.fixture
def us(lib: LibOTR) -> Iterator[UserState]:
    with lib.userstate() as state:
        yield state


def text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def key(seed: int) -> DSAPrivateKey:
    return generate_private_key(random.Random(seed).randbytes)


def with_x(base: DSAPrivateKey, x: int) -> DSAPrivateKey:
    return DSAPrivateKey(base.p, base.q, base.g, pow(base.g, x, base.p), x)


# ---------------------------------------------------------------------------
# libotr writes, offrecord reads and rewrites


@pytest.fixture(scope="module")
def libotr_keyfile(
    lib: LibOTR, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[tuple[bytes, bytes], bytes]]:
    """A key file libotr generated for every account, and libotr's fingerprints."""
    directory = tmp_path_factory.mktemp("libotr-keys")
    path = directory / "otr.private_key"
    fingerprints: dict[tuple[bytes, bytes], bytes] = {}
    with lib.userstate() as state:
        for account, protocol in ACCOUNTS:
            state.privkey_generate(path, account, protocol)
        for account, protocol in ACCOUNTS:
            raw = state.privkey_fingerprint_raw(account, protocol)
            assert raw is not None
            fingerprints[(account, protocol)] = raw
    return path, fingerprints


def test_libotr_key_file_is_read_with_the_same_keys(
    libotr_keyfile: tuple[Path, dict[tuple[bytes, bytes], bytes]], us: UserState
) -> None:
    path, fingerprints = libotr_keyfile
    store = LibotrStore(path.parent)
    assert {(a.account, a.protocol) for a in store.list_key_accounts()} == {
        (text(a), text(p)) for a, p in ACCOUNTS
    }
    us.privkey_read(path)
    for account, protocol in ACCOUNTS:
        found = store.get_private_key(text(account), text(protocol))
        assert found is not None
        assert found.fingerprint() == fingerprints[(account, protocol)]
        assert found.public.encode()[2:] == us.privkey_pubkey_data(account, protocol)
        assert us.privkey_fingerprint(account, protocol) == " ".join(
            found.fingerprint().hex().upper()[i : i + 8] for i in range(0, 40, 8)
        )


def test_libotr_key_file_rewrites_byte_identically(
    libotr_keyfile: tuple[Path, dict[tuple[bytes, bytes], bytes]], tmp_path: Path
) -> None:
    original = libotr_keyfile[0].read_bytes()
    entries = parse_private_keys(original)
    assert format_private_keys(entries) == original
    # even when every private-key expression is rebuilt from the numbers
    assert (
        format_private_keys(PrivateKeyEntry(e.account, e.protocol, e.key) for e in entries)
        == original
    )
    # and through the store: a save that changes nothing
    (tmp_path / "otr.private_key").write_bytes(original)
    store = LibotrStore(tmp_path)
    account, protocol = text(ACCOUNTS[1][0]), text(ACCOUNTS[1][1])
    same = store.get_private_key(account, protocol)
    assert same is not None
    store.save_private_key(account, protocol, same)
    assert (tmp_path / "otr.private_key").read_bytes() == original


def test_libotr_fingerprints_and_trust(us: UserState, tmp_path: Path) -> None:
    fp = [bytes([i]) * 20 for i in range(1, 7)]
    added = [
        (b"zed@example.org", b"alice@example.org", b"prpl-jabber", fp[0], b"verified"),
        (b"amy@example.org", b"alice@example.org", b"prpl-jabber", fp[1], None),
        (b"amy@example.org", b"alice@example.org", b"prpl-jabber", fp[2], b"smp"),
        (b"amy@example.org", b"alice@example.org", b"prpl-jabber", fp[3], b""),
        (b"nick", b"bob", b"prpl-irc", fp[4], b"custom\twith a tab"),
        ("\u015bwiat".encode(), b"caf\xe9", b"prpl-irc", fp[5], b"verified"),
    ]
    for username, account, protocol, fingerprint, trust in added:
        us.add_fingerprint(username, account, protocol, fingerprint, trust)
    path = tmp_path / "otr.fingerprints"
    us.write_fingerprints(path)
    original = path.read_bytes()

    records = parse_fingerprints(original)
    assert set(records) == {
        FingerprintRecord(text(u), text(a), text(p), f, text(t or b"")) for u, a, p, f, t in added
    }
    assert format_fingerprints(records) == original

    store = LibotrStore(tmp_path)
    # a change and its reversal: the file is rewritten twice
    store.set_trust("alice@example.org", "prpl-jabber", "amy@example.org", fp[1], "smp")
    assert path.read_bytes() != original
    store.set_trust("alice@example.org", "prpl-jabber", "amy@example.org", fp[1], "")
    assert path.read_bytes() == original
    store.add_fingerprint("bob", "prpl-irc", "new", bytes(20))
    store.forget_fingerprint("bob", "prpl-irc", "new", bytes(20))
    assert path.read_bytes() == original


def test_libotr_instance_tags(us: UserState, tmp_path: Path) -> None:
    path = tmp_path / "otr.instance_tags"
    for account, protocol in ACCOUNTS:
        us.instag_generate(path, account, protocol)
    original = path.read_bytes()
    records = parse_instance_tags(original)
    assert {(r.account, r.protocol) for r in records} == {(text(a), text(p)) for a, p in ACCOUNTS}
    store = LibotrStore(tmp_path)
    for account, protocol in ACCOUNTS:
        assert store.get_instance_tag(text(account), text(protocol)) == us.instag_find(
            account, protocol
        )
    account, protocol = ACCOUNTS[0]
    tag = store.get_instance_tag(text(account), text(protocol))
    assert tag is not None
    store.save_instance_tag(text(account), text(protocol), tag)
    assert path.read_bytes() == original


# ---------------------------------------------------------------------------
# offrecord writes, libotr reads


def test_offrecord_keys_are_read_and_used_by_libotr(us: UserState, tmp_path: Path) -> None:
    base = key(11)
    keys = {
        ACCOUNTS[0]: base,
        ACCOUNTS[1]: key(12),
        ACCOUNTS[3]: key(13),
        ACCOUNTS[4]: with_x(base, int.from_bytes(b"printable x \xe9value", "big")),  # quoted x
        ACCOUNTS[5]: with_x(base, int.from_bytes(b"tokenx", "big")),  # bare token x
    }
    store = LibotrStore(tmp_path)
    for (account, protocol), private in keys.items():
        store.save_private_key(text(account), text(protocol), private)
    data = (tmp_path / "otr.private_key").read_bytes()
    assert b'(x "printable x \xe9value")' in data
    assert b"(x tokenx)" in data

    us.privkey_read(tmp_path / "otr.private_key")
    message = bytes(range(32))
    for (account, protocol), private in keys.items():
        assert us.privkey_fingerprint_raw(account, protocol) == private.fingerprint()
        signature = us.privkey_sign(account, protocol, message)
        assert private.public.verify(message, signature), (account, protocol)

    # libotr regenerating one key keeps ours (its rewrite reorders the others)
    us.privkey_generate(tmp_path / "otr.private_key", *ACCOUNTS[2])
    fresh = LibotrStore(tmp_path)
    for (account, protocol), private in keys.items():
        assert fresh.get_private_key(text(account), text(protocol)) == private
    assert fresh.get_private_key(text(ACCOUNTS[2][0]), text(ACCOUNTS[2][1])) is not None


def test_offrecord_key_added_to_libotr_file(lib: LibOTR, us: UserState, tmp_path: Path) -> None:
    path = tmp_path / "otr.private_key"
    us.privkey_generate(path, *ACCOUNTS[0])
    ours = key(21)
    LibotrStore(tmp_path).save_private_key(text(ACCOUNTS[1][0]), text(ACCOUNTS[1][1]), ours)
    with lib.userstate() as other:
        other.privkey_read(path)
        assert other.privkey_fingerprint_raw(*ACCOUNTS[0]) == us.privkey_fingerprint_raw(
            *ACCOUNTS[0]
        )
        assert other.privkey_fingerprint_raw(*ACCOUNTS[1]) == ours.fingerprint()


def test_offrecord_fingerprints_are_read_by_libotr(us: UserState, tmp_path: Path) -> None:
    store = LibotrStore(tmp_path)
    expected = [
        ("zed", "alice@example.org", "prpl-jabber", bytes([1]) * 20, "verified"),
        ("amy", "alice@example.org", "prpl-jabber", bytes([2]) * 20, ""),
        ("amy", "alice@example.org", "prpl-jabber", bytes([3]) * 20, "smp"),
        ("nick", "bob", "prpl-irc", bytes([4]) * 20, "custom\twith a tab"),
        ("\u015bwiat", "caf\udce9", "prpl-irc", bytes([5]) * 20, "verified"),
        ("bob", "alice@example.org", "prpl-jabber", bytes([6]) * 20, ""),
    ]
    for username, account, protocol, fingerprint, trust in expected:
        store.set_trust(account, protocol, username, fingerprint, trust)
    path = tmp_path / "otr.fingerprints"
    us.read_fingerprints(path)
    for username, account, protocol, fingerprint, trust in expected:
        got = us.fingerprint_trust(
            username.encode("utf-8", "surrogateescape"),
            account.encode("utf-8", "surrogateescape"),
            protocol.encode(),
            fingerprint,
        )
        assert got == trust.encode(), username
    # what libotr writes back holds exactly the same records
    out = tmp_path / "libotr.fingerprints"
    us.write_fingerprints(out)
    assert set(parse_fingerprints(out.read_bytes())) == set(parse_fingerprints(path.read_bytes()))


def test_offrecord_fingerprint_order_is_libotrs(us: UserState, tmp_path: Path) -> None:
    """With one fingerprint per context libotr's load-and-save keeps the
    order, so it must give back exactly our bytes."""
    store = LibotrStore(tmp_path)
    for i, username in enumerate(["mike", "bob", "zoe", "Bob", "bob2", "\u00e9mile"]):
        store.add_fingerprint(
            "acct", "prpl-irc" if i % 2 else "prpl-jabber", username, bytes([i]) * 20, "smp"
        )
    us.read_fingerprints(tmp_path / "otr.fingerprints")
    us.write_fingerprints(tmp_path / "libotr.fingerprints")
    assert (tmp_path / "libotr.fingerprints").read_bytes() == (
        tmp_path / "otr.fingerprints"
    ).read_bytes()


def test_offrecord_instance_tags_are_read_by_libotr(us: UserState, tmp_path: Path) -> None:
    store = LibotrStore(tmp_path)
    tags = {account: 0x100 + 0x01010101 * i for i, account in enumerate(ACCOUNTS)}
    for (account, protocol), tag in tags.items():
        store.save_instance_tag(text(account), text(protocol), tag)
    us.instag_read(tmp_path / "otr.instance_tags")
    for (account, protocol), tag in tags.items():
        assert us.instag_find(account, protocol) == tag
    # libotr reverses the list on load; writing it back reverses the lines
    us.instag_write(tmp_path / "libotr.instance_tags")
    header, *lines = (tmp_path / "otr.instance_tags").read_bytes().splitlines(keepends=True)
    assert (tmp_path / "libotr.instance_tags").read_bytes() == header + b"".join(reversed(lines))


# ---------------------------------------------------------------------------
# S-expressions: offrecord against libgcrypt


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(trees)
def test_dumps_matches_gcry_sexp_sprint(lib: LibOTR, tree: SList) -> None:
    expected = lib.sexp_reprint(sexp.dumps_canonical(tree), GCRYSEXP_FMT_ADVANCED)
    if not tree.items:
        assert expected == b""  # libgcrypt has no empty top-level list
        return
    assert sexp.dumps(tree) == expected


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(written_tree())
def test_parse_matches_gcry_sexp_new(lib: LibOTR, case: tuple[bytes, SList]) -> None:
    written, tree = case
    assert sexp.parse(written) == tree
    if tree.items:
        assert lib.sexp_reprint(written) == sexp.dumps(tree)


def _mutations(seed: bytes) -> st.SearchStrategy[bytes]:
    @st.composite
    def mutate(draw: st.DrawFn) -> bytes:
        data = bytearray(seed)
        for _ in range(draw(st.integers(1, 3))):
            position = draw(st.integers(0, len(data)))
            if draw(st.booleans()):
                data[position:position] = draw(
                    st.sampled_from(
                        [
                            b"(",
                            b")",
                            b'"',
                            b"\\",
                            b"#",
                            b"|",
                            b"[",
                            b"]",
                            b"1",
                            b"0",
                            b":",
                            b"=",
                            b" ",
                            b"\x00",
                            b"\xff",
                            b"x",
                            b"\n",
                            b"%",
                        ]
                    )
                )
            else:
                del data[position : position + draw(st.integers(1, 3))]
        return bytes(data)

    return mutate()


SEED_TEXT = b'(a "b\\x41\\101\\n" #4142# |QUI=| 3:abc 2"xy" [hint]tok (n ()) "\xe9")'


@settings(max_examples=500, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(_mutations(SEED_TEXT), st.binary(max_size=40).map(lambda b: b"(" + b + b")")))
def test_parser_never_accepts_what_libgcrypt_rejects(lib: LibOTR, data: bytes) -> None:
    theirs = lib.sexp_reprint(data)
    try:
        ours = sexp.parse(data)
    except StorageError:
        return  # stricter than libgcrypt is allowed (see the module docs)
    assert theirs is not None, "offrecord accepted what libgcrypt rejects"
    if ours.items:
        assert sexp.dumps(ours) == theirs
