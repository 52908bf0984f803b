"""Unit tests for offrecord.storage.libotr: the three libotr files and LibotrStore."""

from __future__ import annotations

import base64
import multiprocessing
import os
import random
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from offrecord.crypto.dsa import DSAPrivateKey, generate_private_key
from offrecord.errors import LocalProtocolError, StorageError
from offrecord.storage import libotr
from offrecord.storage.base import (
    TRUST_NONE,
    TRUST_SMP,
    TRUST_VERIFIED,
    AccountId,
    FingerprintRecord,
    InstanceTagRecord,
    Store,
)
from offrecord.storage.libotr import (
    INSTANCE_TAGS_HEADER,
    LibotrStore,
    PrivateKeyEntry,
    format_fingerprints,
    format_instance_tags,
    format_private_keys,
    parse_fingerprints,
    parse_instance_tags,
    parse_private_keys,
)
from offrecord.storage.memory import MemoryStore

FP1 = bytes(range(20))
FP2 = bytes(range(1, 21))
FP3 = bytes(range(100, 120))


def _hex_mpi(value: int) -> bytes:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    if raw[0] & 0x80:
        raw = b"\x00" + raw
    return b"#" + raw.hex().upper().encode() + b"#"


def _all_hex(key: DSAPrivateKey) -> bool:
    """Whether libgcrypt prints every MPI of the key as #hex# (it does unless
    the bytes happen to be printable)."""
    for value in (key.p, key.q, key.g, key.y, key.x):
        raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
        if not (raw[0] & 0x80 or any(b < 0x20 or 0x7F <= b <= 0xA0 for b in raw)):
            return False
    return True


def _key(seed: int) -> DSAPrivateKey:
    while True:
        key = generate_private_key(random.Random(seed).randbytes)
        if _all_hex(key):
            return key
        seed += 1000


@pytest.fixture(scope="module")
def key1() -> DSAPrivateKey:
    return _key(1)


@pytest.fixture(scope="module")
def key2() -> DSAPrivateKey:
    return _key(2)


def libotr_account(name: bytes, protocol: bytes, key: DSAPrivateKey) -> bytes:
    """One account exactly as libotr 4.1.1 writes it (written out by hand)."""
    return (
        b" (account\n(name "
        + name
        + b")\n(protocol "
        + protocol
        + b")\n(private-key \n (dsa \n"
        + b"".join(
            b"  (" + n + b" " + _hex_mpi(v) + b")\n"
            for n, v in ((b"p", key.p), (b"q", key.q), (b"g", key.g), (b"y", key.y), (b"x", key.x))
        )
        + b"  )\n )\n )\n"
    )


def libotr_keyfile(*accounts: bytes) -> bytes:
    return b"(privkeys\n" + b"".join(accounts) + b")\n"


def _with_x(key: DSAPrivateKey, x: int) -> DSAPrivateKey:
    return DSAPrivateKey(key.p, key.q, key.g, pow(key.g, x, key.p), x)


# ---------------------------------------------------------------------------
# otr.private_key format


def test_format_private_keys_matches_libotr_layout(
    key1: DSAPrivateKey, key2: DSAPrivateKey
) -> None:
    entries = [
        PrivateKeyEntry("alice@example.org", "prpl-jabber", key1),
        PrivateKeyEntry("bob", "prpl-irc", key2),
    ]
    expected = libotr_keyfile(
        libotr_account(b'"alice@example.org"', b"prpl-jabber", key1),
        libotr_account(b"bob", b"prpl-irc", key2),
    )
    assert format_private_keys(entries) == expected
    parsed = parse_private_keys(expected)
    assert parsed == tuple(entries)
    assert format_private_keys(parsed) == expected


def test_empty_key_file() -> None:
    assert format_private_keys([]) == b"(privkeys\n)\n"
    assert parse_private_keys(b"(privkeys\n)\n") == ()
    assert parse_private_keys(b"") == ()
    assert parse_private_keys(b" \n\t") == ()


@pytest.mark.parametrize(
    ("name", "written"),
    [
        ("bob", b"bob"),
        ("1bob", b'"1bob"'),
        ("caf\u00e9@x", b'"caf\xc3\xa9@x"'),
        ("\u015bx", b"#C59B78#"),
        ('q"b\\s', b'"q\\"b\\\\s"'),
        ("sp ace", b'"sp ace"'),
    ],
)
def test_names_are_encoded_like_libgcrypt(key1: DSAPrivateKey, name: str, written: bytes) -> None:
    data = format_private_keys([PrivateKeyEntry(name, "prpl-irc", key1)])
    assert data == libotr_keyfile(libotr_account(written, b"prpl-irc", key1))
    assert parse_private_keys(data)[0].account == name


def test_printable_x_is_a_quoted_string_or_token(key1: DSAPrivateKey) -> None:
    for x_bytes, written in (
        (b"printable x \xe9value", b'"printable x \xe9value"'),
        (b"tokenx", b"tokenx"),
    ):
        key = _with_x(key1, int.from_bytes(x_bytes, "big"))
        data = format_private_keys([PrivateKeyEntry("a", "p", key)])
        assert b"  (x " + written + b")\n" in data
        assert parse_private_keys(data)[0].key == key


def test_non_utf8_names_survive(key1: DSAPrivateKey) -> None:
    data = libotr_keyfile(libotr_account(b'"caf\xe9"', b"prpl-irc", key1))
    entry = parse_private_keys(data)[0]
    assert entry.account == "caf\udce9"
    assert format_private_keys([entry]) == data


def test_unusual_but_valid_key_files_are_preserved(key1: DSAPrivateKey) -> None:
    """Whatever libgcrypt accepts and libotr would print back: extra
    parameters, other atom forms.  The private-key expression is kept."""
    text = (
        b"(privkeys (account (protocol prpl-irc) (name 3:bob) (junk one)"
        b" (private-key (dsa (p " + _hex_mpi(key1.p) + b") (q " + _hex_mpi(key1.q) + b")"
        b" (g " + _hex_mpi(key1.g) + b") (y " + _hex_mpi(key1.y) + b")"
        b" (x |" + base64.b64encode(key1.x.to_bytes(20, "big")) + b"|)"
        b" (extra #01#)))))"
    )
    entries = parse_private_keys(text)
    assert entries == (PrivateKeyEntry("bob", "prpl-irc", key1),)
    rewritten = format_private_keys(entries)
    assert b"(extra #01#)" in rewritten
    assert b"(junk" not in rewritten  # libotr drops it too
    assert parse_private_keys(rewritten) == entries


def test_stale_source_is_not_reused(key1: DSAPrivateKey, key2: DSAPrivateKey) -> None:
    entry = parse_private_keys(libotr_keyfile(libotr_account(b"a", b"p", key1)))[0]
    moved = PrivateKeyEntry("a", "p", key2, entry.source)
    assert format_private_keys([moved]) == libotr_keyfile(libotr_account(b"a", b"p", key2))


def test_entry_repr_hides_the_secret(key1: DSAPrivateKey) -> None:
    entry = parse_private_keys(libotr_keyfile(libotr_account(b"a", b"p", key1)))[0]
    assert str(key1.x) not in repr(entry)
    assert f"{key1.x:X}" not in repr(entry)
    assert f"{key1.x:x}" not in repr(entry)


def _keyfile_cases(key: DSAPrivateKey) -> list[tuple[str, bytes, int | None, str]]:
    good = libotr_keyfile(libotr_account(b"a", b"p", key))
    lines = good.split(b"\n")

    def swap(name: bytes, value: bytes) -> bytes:
        return b"\n".join(
            b"  (" + name + b" " + value + b")" if line.startswith(b"  (" + name + b" ") else line
            for line in lines
        )

    return [
        ("truncated", good[: len(good) // 2], 9, "not closed"),
        ("truncated in hex", good[:200], 7, "hex string opened on line 7 is not closed"),
        ("bad hex", swap(b"g", b"#00ZZ#"), 9, "bad character in hex"),
        ("odd hex", swap(b"g", b"#123#"), 9, "odd number"),
        ("not privkeys", good.replace(b"(privkeys", b"(keys"), 1, "expected (privkeys"),
        ("bare atom", b"(privkeys\n foo\n)\n", 2, "expected (account"),
        ("wrong list", b"(privkeys\n (acount (name a))\n)\n", 2, "expected (account"),
        ("no name", good.replace(b"(name a)", b"(nom a)"), 2, "no (name"),
        ("no protocol", good.replace(b"(protocol p)", b"(proto p)"), 2, "no (protocol"),
        ("empty name", good.replace(b"(name a)", b"(name)"), 3, "(name ...) has no value"),
        ("name is a list", good.replace(b"(name a)", b"(name (a))"), 3, "has no value"),
        (
            "no private-key",
            b"(privkeys\n (account\n(name a)\n(protocol p)))\n",
            2,
            "no (private-key",
        ),
        ("not dsa", good.replace(b"(dsa", b"(rsa"), 5, "not a (dsa"),
        ("no x", b"\n".join(line for line in lines if not line.startswith(b"  (x ")), 6, "no (x"),
        ("x is a list", swap(b"x", b"(#01#)"), 11, "x is not a number"),
        ("x and y disagree", swap(b"y", _hex_mpi(key.y ^ 2)), 5, "x and y do not belong"),
        ("x out of range", swap(b"x", _hex_mpi(key.q)), 5, "x is out of range"),
        ("x zero", swap(b"x", b'""'), 5, "x is out of range"),
        ("q too large", swap(b"q", _hex_mpi(1 << 170 | 1)), 5, "DSA q must be"),
        ("q does not divide p-1", swap(b"q", _hex_mpi(key.q + 2)), 5, "q must divide"),
        ("g out of range", swap(b"g", _hex_mpi(key.p + 1)), 5, "DSA g"),
        ("g of wrong order", swap(b"g", _hex_mpi(key.p - 1)), 5, "DSA g"),
        ("trailing data", good + b"(privkeys)\n", 16, "after the end"),
        ("binary garbage", bytes(range(256)) * 4, 1, "expected '('"),
        ("unmatched paren", good + b")", 16, "unmatched"),
    ]


def test_malformed_key_files(key1: DSAPrivateKey) -> None:
    for label, data, line, fragment in _keyfile_cases(key1):
        with pytest.raises(StorageError) as info:
            parse_private_keys(data, path="/x/otr.private_key")
        assert info.value.path == "/x/otr.private_key", label
        assert info.value.line == line, (label, str(info.value))
        assert fragment in str(info.value), (label, str(info.value))
        assert f"{key1.x:x}" not in str(info.value).lower(), label


# ---------------------------------------------------------------------------
# otr.fingerprints format


def test_fingerprints_round_trip() -> None:
    data = (
        b"zed\talice@example.org\tprpl-jabber\t" + FP1.hex().encode() + b"\tverified\n"
        b"amy\talice@example.org\tprpl-jabber\t" + FP2.hex().encode() + b"\t\n"
        b"amy\talice@example.org\tprpl-jabber\t" + FP3.hex().encode() + b"\tsmp\n"
        b"bob\tbob\tprpl-irc\t" + FP1.hex().encode() + b"\tcustom\twith tab\n"
    )
    records = parse_fingerprints(data)
    assert records == (
        FingerprintRecord("zed", "alice@example.org", "prpl-jabber", FP1, TRUST_VERIFIED),
        FingerprintRecord("amy", "alice@example.org", "prpl-jabber", FP2, TRUST_NONE),
        FingerprintRecord("amy", "alice@example.org", "prpl-jabber", FP3, TRUST_SMP),
        FingerprintRecord("bob", "bob", "prpl-irc", FP1, "custom\twith tab"),
    )
    assert format_fingerprints(records) == data
    assert parse_fingerprints(b"") == ()
    assert format_fingerprints([]) == b""


def test_fingerprints_accepted_like_libotr_and_normalised() -> None:
    upper = FP1.hex().upper().encode()
    data = (
        b"u\ta\tp\t" + upper + b"\n"  # no trust field at all
        b"\n"  # blank lines are skipped
        b"v\ta\tp\t" + FP2.hex().encode() + b"\tsmp\r\n"  # CRLF
        b"u\ta\tp\t" + FP1.hex().encode() + b"\tverified\n"  # duplicate: later trust wins
    )
    records = parse_fingerprints(data)
    assert records == (
        FingerprintRecord("u", "a", "p", FP1, TRUST_VERIFIED),
        FingerprintRecord("v", "a", "p", FP2, TRUST_SMP),
    )
    assert format_fingerprints(records) == (
        b"u\ta\tp\t" + FP1.hex().encode() + b"\tverified\n"
        b"v\ta\tp\t" + FP2.hex().encode() + b"\tsmp\n"
    )


FINGERPRINT_CASES: list[tuple[str, bytes, int, str]] = [
    ("missing fields", b"u\ta\tp\n", 1, "separated by tabs"),
    ("one field", b"garbage\n", 1, "separated by tabs"),
    ("short fingerprint", b"u\ta\tp\t" + FP1.hex()[:-1].encode() + b"\t\n", 1, "not 39"),
    ("long fingerprint", b"u\ta\tp\t" + FP1.hex().encode() + b"00\t\n", 1, "not 42"),
    ("non-hex fingerprint", b"u\ta\tp\t" + b"g" * 40 + b"\t\n", 1, "not hexadecimal"),
    ("non-ascii fingerprint", b"u\ta\tp\t" + b"\xe9" * 40 + b"\t\n", 1, "not hexadecimal"),
    ("spaced fingerprint", b"u\ta\tp\t" + b"0a " * 13 + b"0\t\n", 1, "not hexadecimal"),
    (
        "second line bad",
        b"u\ta\tp\t" + FP1.hex().encode() + b"\t\nu\ta\tp\tzz\t\n",
        2,
        "must be 40 hex digits",
    ),
    ("truncated", b"u\ta\tp\t" + FP1.hex().encode() + b"\tverif", 1, "no line feed"),
    ("truncated later", b"u\ta\tp\t" + FP1.hex().encode() + b"\t\nu\ta", 2, "no line feed"),
    ("NUL", b"u\x00\ta\tp\t" + FP1.hex().encode() + b"\t\n", 1, "NUL"),
    ("CR inside", b"u\ta\rb\tp\t" + FP1.hex().encode() + b"\t\n", 1, "carriage return"),
    ("too long", b"u" * 960 + b"\ta\tp\t" + FP1.hex().encode() + b"\t\n", 1, "longer than 999"),
    ("binary garbage", bytes(range(256)) + b"\n", 1, "NUL"),
]


@pytest.mark.parametrize(("label", "data", "line", "fragment"), FINGERPRINT_CASES)
def test_malformed_fingerprint_files(label: str, data: bytes, line: int, fragment: str) -> None:
    with pytest.raises(StorageError) as info:
        parse_fingerprints(data, path="/x/otr.fingerprints")
    assert info.value.path == "/x/otr.fingerprints"
    assert info.value.line == line
    assert fragment in str(info.value)


# ---------------------------------------------------------------------------
# otr.instance_tags format


def test_instance_tags_round_trip() -> None:
    data = (
        INSTANCE_TAGS_HEADER
        + b"bob\tprpl-irc\t7894bd35\nalice@example.org\tprpl-jabber\t00000100\n"
    )
    records = parse_instance_tags(data)
    assert records == (
        InstanceTagRecord("bob", "prpl-irc", 0x7894BD35),
        InstanceTagRecord("alice@example.org", "prpl-jabber", 0x100),
    )
    assert format_instance_tags(records) == data
    assert format_instance_tags([]) == INSTANCE_TAGS_HEADER
    assert parse_instance_tags(b"") == ()
    assert parse_instance_tags(INSTANCE_TAGS_HEADER) == ()


def test_instance_tags_accepted_like_libotr() -> None:
    data = b"# another comment\n\nbob\tprpl-irc\tFFFFFFFF\r\n"
    assert parse_instance_tags(data) == (InstanceTagRecord("bob", "prpl-irc", 0xFFFFFFFF),)
    assert format_instance_tags(parse_instance_tags(data)) == (
        INSTANCE_TAGS_HEADER + b"bob\tprpl-irc\tffffffff\n"
    )


INSTAG_CASES: list[tuple[str, bytes, int, str]] = [
    ("missing tag", INSTANCE_TAGS_HEADER + b"bob\tprpl-irc\n", 2, "separated by tabs"),
    ("no tabs", b"bob prpl-irc 00000100\n", 1, "separated by tabs"),
    ("short tag", b"bob\tprpl-irc\t100\n", 1, "must be 8 hex digits"),
    ("extra field", b"bob\tprpl-irc\t00000100\tx\n", 1, "must be 8 hex digits"),
    ("non-hex tag", b"bob\tprpl-irc\t0000010g\n", 1, "not hexadecimal"),
    ("signed tag", b"bob\tprpl-irc\t+0000100\n", 1, "not hexadecimal"),
    ("reserved tag", b"bob\tprpl-irc\t000000ff\n", 1, "below the minimum 0x100"),
    ("zero tag", b"bob\tprpl-irc\t00000000\n", 1, "below the minimum"),
    ("truncated", INSTANCE_TAGS_HEADER + b"bob\tprpl-irc\t0000", 2, "no line feed"),
    ("binary garbage", b"\x89PNG\r\n\x1a\n\x00\x00", 1, "separated by tabs"),
    ("binary garbage with NUL", b"\x00\x01\x02\t\n", 1, "NUL"),
]


@pytest.mark.parametrize(("label", "data", "line", "fragment"), INSTAG_CASES)
def test_malformed_instance_tag_files(label: str, data: bytes, line: int, fragment: str) -> None:
    with pytest.raises(StorageError) as info:
        parse_instance_tags(data, path="/x/otr.instance_tags")
    assert info.value.path == "/x/otr.instance_tags"
    assert info.value.line == line
    assert fragment in str(info.value)


# ---------------------------------------------------------------------------
# The store: semantics (shared with MemoryStore)


@pytest.fixture(params=["libotr", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "libotr":
        return LibotrStore(tmp_path / "purple")
    return MemoryStore()


def test_store_protocol(store: Store) -> None:
    assert isinstance(store, Store)


def test_private_keys(store: Store, key1: DSAPrivateKey, key2: DSAPrivateKey) -> None:
    assert store.get_private_key("alice", "xmpp") is None
    assert store.list_key_accounts() == ()
    store.save_private_key("alice", "xmpp", key1)
    store.save_private_key("alice", "irc", key2)
    assert store.get_private_key("alice", "xmpp") == key1
    assert store.get_private_key("alice", "irc") == key2
    assert store.get_private_key("bob", "xmpp") is None
    store.save_private_key("alice", "xmpp", key2)
    assert store.get_private_key("alice", "xmpp") == key2
    assert store.list_key_accounts() == (AccountId("alice", "xmpp"), AccountId("alice", "irc"))


def test_instance_tags(store: Store) -> None:
    assert store.get_instance_tag("alice", "xmpp") is None
    store.save_instance_tag("alice", "xmpp", 0x12345678)
    store.save_instance_tag("bob", "xmpp", 0x100)
    assert store.get_instance_tag("alice", "xmpp") == 0x12345678
    store.save_instance_tag("alice", "xmpp", 0xFFFFFFFF)
    assert store.get_instance_tag("alice", "xmpp") == 0xFFFFFFFF
    assert store.get_instance_tag("bob", "xmpp") == 0x100
    for bad in (0, 0xFF, 1 << 32, -1, True):
        with pytest.raises(LocalProtocolError):
            store.save_instance_tag("alice", "xmpp", bad)


def test_fingerprints(store: Store) -> None:
    assert store.list_fingerprints("alice", "xmpp") == ()
    record = store.add_fingerprint("alice", "xmpp", "bob", FP1)
    assert record == FingerprintRecord("bob", "alice", "xmpp", FP1, TRUST_NONE)
    assert not record.trusted
    assert record.hex == FP1.hex().upper()
    # adding again changes nothing, whatever the trust argument
    assert store.add_fingerprint("alice", "xmpp", "bob", FP1, TRUST_VERIFIED) == record
    store.add_fingerprint("alice", "xmpp", "bob", FP2, TRUST_SMP)
    store.add_fingerprint("alice", "xmpp", "carol", FP3)
    store.add_fingerprint("alice", "irc", "bob", FP1)
    assert {r.fingerprint for r in store.list_fingerprints("alice", "xmpp", "bob")} == {FP1, FP2}
    assert len(store.list_fingerprints("alice", "xmpp")) == 3
    assert len(store.list_fingerprints("alice", "irc")) == 1

    updated = store.set_trust("alice", "xmpp", "bob", FP1, TRUST_VERIFIED)
    assert updated.trusted
    assert store.get_fingerprint("alice", "xmpp", "bob", FP1) == updated
    assert store.set_trust("alice", "xmpp", "bob", FP1, "") == record
    # set_trust adds an unknown fingerprint
    assert store.set_trust("alice", "xmpp", "dave", FP3, "custom").trust == "custom"

    assert store.forget_fingerprint("alice", "xmpp", "bob", FP1)
    assert not store.forget_fingerprint("alice", "xmpp", "bob", FP1)
    assert store.get_fingerprint("alice", "xmpp", "bob", FP1) is None
    assert store.get_fingerprint("alice", "irc", "bob", FP1) is not None


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.add_fingerprint("alice", "xmpp", "bob", b"short"),
        lambda s: s.add_fingerprint("alice", "xmpp", "bob", "x" * 20),
        lambda s: s.add_fingerprint("alice", "xmpp", "b\tob", FP1),
        lambda s: s.add_fingerprint("alice", "xmpp", "", FP1),
        lambda s: s.add_fingerprint("alice", "xm\npp", "bob", FP1),
        lambda s: s.add_fingerprint("al\x00ice", "xmpp", "bob", FP1),
        lambda s: s.add_fingerprint("alice", "xmpp", "bob", FP1, "a\nb"),
        lambda s: s.add_fingerprint("alice", "xmpp", "bob", FP1, 3),
        lambda s: s.add_fingerprint("alice", "xmpp", "\ud800", FP1),
        lambda s: s.set_trust("alice", "xmpp", "bob", FP1, "a\rb"),
        lambda s: s.get_fingerprint("alice", "xmpp", b"bob", FP1),
        lambda s: s.list_fingerprints("alice", "xmpp", "b\tob"),
        lambda s: s.get_private_key("", "xmpp"),
        lambda s: s.get_instance_tag("alice", 5),
        lambda s: s.forget_fingerprint("alice", "xmpp", "bob", FP1[:19]),
    ],
)
def test_bad_arguments(store: Store, call: Callable[[Store], object]) -> None:
    with pytest.raises(LocalProtocolError):
        call(store)


def test_save_rejects_invalid_keys(tmp_path: Path, key1: DSAPrivateKey) -> None:
    store = LibotrStore(tmp_path)
    bad = DSAPrivateKey(key1.p, key1.q, key1.g, key1.y, key1.x + 1)
    with pytest.raises(LocalProtocolError, match="do not belong"):
        store.save_private_key("a", "p", bad)
    with pytest.raises(TypeError):
        store.save_private_key("a", "p", key1.public)  # type: ignore[arg-type]
    assert not store.private_key_path.exists()


def test_names_too_long_for_libotr(tmp_path: Path) -> None:
    store = LibotrStore(tmp_path)
    with pytest.raises(LocalProtocolError, match="999"):
        store.add_fingerprint("a", "p", "u" * 960, FP1)
    with pytest.raises(LocalProtocolError, match="999"):
        store.save_instance_tag("a" * 990, "p", 0x100)


# ---------------------------------------------------------------------------
# The store over libotr's files


def test_store_writes_libotr_files(tmp_path: Path, key1: DSAPrivateKey) -> None:
    store = LibotrStore(tmp_path)
    store.save_private_key("alice@example.org", "prpl-jabber", key1)
    store.save_instance_tag("alice@example.org", "prpl-jabber", 0xDEADBEEF)
    store.add_fingerprint("alice@example.org", "prpl-jabber", "bob@example.org", FP1, "smp")
    assert (tmp_path / "otr.private_key").read_bytes() == libotr_keyfile(
        libotr_account(b'"alice@example.org"', b"prpl-jabber", key1)
    )
    assert (tmp_path / "otr.instance_tags").read_bytes() == (
        INSTANCE_TAGS_HEADER + b"alice@example.org\tprpl-jabber\tdeadbeef\n"
    )
    assert (tmp_path / "otr.fingerprints").read_bytes() == (
        b"bob@example.org\talice@example.org\tprpl-jabber\t" + FP1.hex().encode() + b"\tsmp\n"
    )
    assert repr(store) == f"LibotrStore({str(tmp_path)!r})"


def test_custom_file_names_and_home_expansion(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    store = LibotrStore("~/otr", fingerprints_file="trust.txt", instance_tags_file="tags.txt")
    store.add_fingerprint("a", "p", "u", FP1)
    store.save_instance_tag("a", "p", 0x100)
    assert (tmp_path / "otr" / "trust.txt").exists()
    assert (tmp_path / "otr" / "tags.txt").exists()
    assert store.private_key_path == tmp_path / "otr" / "otr.private_key"


def test_noop_rewrites_are_byte_identical(
    tmp_path: Path, key1: DSAPrivateKey, key2: DSAPrivateKey
) -> None:
    keys = libotr_keyfile(
        libotr_account(b"bob", b"prpl-irc", key2),
        libotr_account(b'"alice@example.org"', b"prpl-jabber", key1),
    )
    fingerprints = (
        b"zed\talice@example.org\tprpl-jabber\t" + FP1.hex().encode() + b"\tverified\n"
        b"amy\talice@example.org\tprpl-jabber\t" + FP2.hex().encode() + b"\t\n"
    )
    tags = (
        INSTANCE_TAGS_HEADER
        + b"bob\tprpl-irc\t7894bd35\nalice@example.org\tprpl-jabber\t9dc2a869\n"
    )
    (tmp_path / "otr.private_key").write_bytes(keys)
    (tmp_path / "otr.fingerprints").write_bytes(fingerprints)
    (tmp_path / "otr.instance_tags").write_bytes(tags)
    store = LibotrStore(tmp_path)

    store.save_private_key("bob", "prpl-irc", key2)
    store.save_instance_tag("bob", "prpl-irc", 0x7894BD35)
    store.set_trust("alice@example.org", "prpl-jabber", "newcomer", FP3, "x")  # unknown: added
    assert (tmp_path / "otr.fingerprints").read_bytes() != fingerprints
    store.forget_fingerprint("alice@example.org", "prpl-jabber", "newcomer", FP3)
    assert (tmp_path / "otr.private_key").read_bytes() == keys
    assert (tmp_path / "otr.fingerprints").read_bytes() == fingerprints
    assert (tmp_path / "otr.instance_tags").read_bytes() == tags


def test_new_fingerprints_go_where_libotr_puts_them(tmp_path: Path) -> None:
    store = LibotrStore(tmp_path)
    store.add_fingerprint("acct", "p", "mike", FP1)
    store.add_fingerprint("acct", "p", "bob", FP1)
    store.add_fingerprint("acct", "p", "zoe", FP1)
    store.add_fingerprint("acct", "p", "mike", FP2)  # newest first within its context
    store.add_fingerprint("acct", "o", "mike", FP3)  # protocol sorts after account
    order = [
        (r.username, r.protocol, r.fingerprint)
        for r in parse_fingerprints((tmp_path / "otr.fingerprints").read_bytes())
    ]
    assert order == [
        ("bob", "p", FP1),
        ("mike", "o", FP3),
        ("mike", "p", FP2),
        ("mike", "p", FP1),
        ("zoe", "p", FP1),
    ]


def test_duplicates_resolve_like_libotr(
    tmp_path: Path, key1: DSAPrivateKey, key2: DSAPrivateKey
) -> None:
    (tmp_path / "otr.private_key").write_bytes(
        libotr_keyfile(
            libotr_account(b"a", b"p", key1),
            libotr_account(b"b", b"p", key1),
            libotr_account(b"a", b"p", key2),
        )
    )
    (tmp_path / "otr.instance_tags").write_bytes(
        b"a\tp\t00000100\nb\tp\t00000200\na\tp\t00000300\n"
    )
    store = LibotrStore(tmp_path)
    assert store.get_private_key("a", "p") == key2
    assert store.get_instance_tag("a", "p") == 0x300
    assert store.list_key_accounts() == (AccountId("a", "p"), AccountId("b", "p"))
    store.save_private_key("a", "p", key1)
    store.save_instance_tag("a", "p", 0x400)
    assert [
        (e.account, e.key) for e in parse_private_keys((tmp_path / "otr.private_key").read_bytes())
    ] == [
        ("a", key1),
        ("b", key1),
    ]
    assert parse_instance_tags((tmp_path / "otr.instance_tags").read_bytes()) == (
        InstanceTagRecord("a", "p", 0x400),
        InstanceTagRecord("b", "p", 0x200),
    )


def test_external_changes_are_seen(tmp_path: Path, key1: DSAPrivateKey) -> None:
    store = LibotrStore(tmp_path)
    store.add_fingerprint("a", "p", "u", FP1)
    other = LibotrStore(tmp_path)
    other.set_trust("a", "p", "u", FP1, "smp")
    assert store.get_fingerprint("a", "p", "u", FP1) == FingerprintRecord("u", "a", "p", FP1, "smp")
    (tmp_path / "otr.fingerprints").unlink()
    assert store.list_fingerprints("a", "p") == ()


# ---------------------------------------------------------------------------
# Guarantees: malformed files, atomicity, permissions, locking


@pytest.fixture
def umask() -> Iterator[Callable[[int], None]]:
    original = os.umask(0o022)
    os.umask(original)

    def set_umask(value: int) -> None:
        os.umask(value)

    yield set_umask
    os.umask(original)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("mask", [0o000, 0o022, 0o077, 0o277])
def test_files_are_created_0600(
    tmp_path: Path, key1: DSAPrivateKey, umask: Callable[[int], None], mask: int
) -> None:
    umask(mask)
    store = LibotrStore(tmp_path / "new" / "dir")
    store.save_private_key("a", "p", key1)
    store.save_instance_tag("a", "p", 0x100)
    store.add_fingerprint("a", "p", "u", FP1)
    for name in ("otr.private_key", "otr.instance_tags", "otr.fingerprints"):
        assert _mode(tmp_path / "new" / "dir" / name) == 0o600, name
        assert _mode(tmp_path / "new" / "dir" / (name + ".lock")) & 0o077 == 0, name
    assert _mode(tmp_path / "new" / "dir") & 0o077 == 0
    assert sorted(p.name for p in (tmp_path / "new" / "dir").iterdir()) == [
        "otr.fingerprints",
        "otr.fingerprints.lock",
        "otr.instance_tags",
        "otr.instance_tags.lock",
        "otr.private_key",
        "otr.private_key.lock",
    ]


def test_existing_loose_permissions_are_tightened(tmp_path: Path) -> None:
    path = tmp_path / "otr.fingerprints"
    path.write_bytes(b"")
    path.chmod(0o644)
    LibotrStore(tmp_path).add_fingerprint("a", "p", "u", FP1)
    assert _mode(path) == 0o600


def test_write_is_temp_fsync_rename_fsync_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        kind = "dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"
        events.append(f"fsync {kind}")
        real_fsync(fd)

    def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        assert Path(src).parent == Path(dst).parent
        assert Path(src).name.startswith(".otr.fingerprints.")
        events.append("rename")
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    LibotrStore(tmp_path).add_fingerprint("a", "p", "u", FP1)
    assert events == ["fsync file", "rename", "fsync dir"]


def test_failed_write_leaves_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = LibotrStore(tmp_path)
    store.add_fingerprint("a", "p", "u", FP1)
    before = store.fingerprints_path.read_bytes()

    def broken(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(StorageError, match="No space left") as info:
        store.add_fingerprint("a", "p", "u", FP2)
    assert info.value.path == str(store.fingerprints_path)
    monkeypatch.undo()
    assert store.fingerprints_path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    assert store.list_fingerprints("a", "p") == (FingerprintRecord("u", "a", "p", FP1),)


def test_interrupted_write_leaves_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LibotrStore(tmp_path)
    store.add_fingerprint("a", "p", "u", FP1)
    before = store.fingerprints_path.read_bytes()

    def interrupted(fd: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        store.add_fingerprint("a", "p", "u", FP2)
    monkeypatch.undo()
    assert store.fingerprints_path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def _malformed_files(
    key: DSAPrivateKey,
) -> list[tuple[str, bytes, Callable[[LibotrStore], object]]]:
    keyfile = libotr_keyfile(libotr_account(b"a", b"p", key))
    return [
        ("otr.private_key", keyfile[:-30], lambda s: s.save_private_key("b", "p", key)),
        (
            "otr.private_key",
            keyfile.replace(b"(x ", b"(z "),
            lambda s: s.save_private_key("a", "p", key),
        ),
        (
            "otr.fingerprints",
            b"u\ta\tp\t" + b"0" * 39 + b"\t\n",
            lambda s: s.add_fingerprint("a", "p", "u", FP1),
        ),
        (
            "otr.fingerprints",
            b"u\ta\tp\t" + b"0" * 40 + b"\t",
            lambda s: s.set_trust("a", "p", "u", FP1, "smp"),
        ),
        ("otr.fingerprints", bytes(range(256)), lambda s: s.forget_fingerprint("a", "p", "u", FP1)),
        ("otr.instance_tags", b"a\tp\t000000ff\n", lambda s: s.save_instance_tag("a", "p", 0x100)),
    ]


def test_malformed_files_are_never_overwritten(tmp_path: Path, key1: DSAPrivateKey) -> None:
    for name, data, write in _malformed_files(key1):
        path = tmp_path / name
        path.write_bytes(data)
        store = LibotrStore(tmp_path)
        with pytest.raises(StorageError) as info:
            write(store)
        assert info.value.path == str(path)
        assert path.read_bytes() == data, name
        path.unlink()


def test_malformed_file_leaves_no_partial_state(
    tmp_path: Path, key1: DSAPrivateKey, key2: DSAPrivateKey
) -> None:
    store = LibotrStore(tmp_path)
    store.save_private_key("a", "p", key1)
    good = store.private_key_path.read_bytes()
    # a second account whose key is broken: nothing of the file may be used
    broken = good[:-2] + libotr_account(b"b", b"p", key2).replace(b"(q ", b"(r ") + b")\n"
    store.private_key_path.write_bytes(broken)
    with pytest.raises(StorageError, match="no \\(q"):
        store.get_private_key("a", "p")
    with pytest.raises(StorageError):
        store.list_key_accounts()
    with pytest.raises(StorageError):
        store.save_private_key("a", "p", key2)
    assert store.private_key_path.read_bytes() == broken
    store.private_key_path.write_bytes(good)
    assert store.get_private_key("a", "p") == key1


def test_unreadable_files(tmp_path: Path) -> None:
    (tmp_path / "otr.fingerprints").mkdir()
    store = LibotrStore(tmp_path)
    with pytest.raises(StorageError) as info:
        store.list_fingerprints("a", "p")
    assert info.value.path == str(tmp_path / "otr.fingerprints")
    if os.geteuid() != 0:
        path = tmp_path / "otr.instance_tags"
        path.write_bytes(b"")
        path.chmod(0)
        with pytest.raises(StorageError, match="cannot open"):
            store.get_instance_tag("a", "p")


def test_oversized_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(libotr, "MAX_FILE_SIZE", 10)
    (tmp_path / "otr.instance_tags").write_bytes(INSTANCE_TAGS_HEADER)
    with pytest.raises(StorageError, match="larger than 10 bytes"):
        LibotrStore(tmp_path).get_instance_tag("a", "p")


def test_symlinked_file_is_written_through(tmp_path: Path) -> None:
    real_dir = tmp_path / "real"
    real_dir.mkdir()
    (real_dir / "fp").write_bytes(b"")
    link_dir = tmp_path / "links"
    link_dir.mkdir()
    (link_dir / "otr.fingerprints").symlink_to(real_dir / "fp")
    store = LibotrStore(link_dir)
    store.add_fingerprint("a", "p", "u", FP1)
    assert (link_dir / "otr.fingerprints").is_symlink()
    assert parse_fingerprints((real_dir / "fp").read_bytes()) == (
        FingerprintRecord("u", "a", "p", FP1),
    )
    assert (real_dir / "fp.lock").exists()


def test_lock_timeout(tmp_path: Path) -> None:
    import fcntl

    store = LibotrStore(tmp_path, lock_timeout=0.05)
    lock_path = tmp_path / "otr.fingerprints.lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(StorageError, match="held the lock") as info:
            store.add_fingerprint("a", "p", "u", FP1)
        assert info.value.path == str(lock_path)
        # reading does not need the lock
        assert store.list_fingerprints("a", "p") == ()
    finally:
        os.close(fd)
    store.add_fingerprint("a", "p", "u", FP1)


def _concurrent_writer(directory: str, worker: int, count: int) -> None:
    store = LibotrStore(directory)
    for i in range(count):
        fingerprint = bytes([worker, i]) + bytes(18)
        store.add_fingerprint("acct", "proto", f"user{worker}", fingerprint, "smp" if i % 2 else "")
        store.save_instance_tag(f"acct{worker}", "proto", 0x100 + i)


def test_concurrent_writers_do_not_lose_updates(tmp_path: Path) -> None:
    workers, count = 4, 15
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=_concurrent_writer, args=(str(tmp_path), worker, count))
        for worker in range(workers)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
        assert process.exitcode == 0
    store = LibotrStore(tmp_path)
    records = store.list_fingerprints("acct", "proto")
    assert len(records) == workers * count
    assert {r.fingerprint for r in records} == {
        bytes([w, i]) + bytes(18) for w in range(workers) for i in range(count)
    }
    for worker in range(workers):
        assert store.get_instance_tag(f"acct{worker}", "proto") == 0x100 + count - 1
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "otr.fingerprints")
    with pytest.raises(StorageError, match="not a regular file"):
        LibotrStore(tmp_path).list_fingerprints("a", "p")
