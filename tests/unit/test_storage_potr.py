"""Unit tests for offrecord.storage.potr (python-potr .key3 / .fpr import)."""

from __future__ import annotations

import os
import random
import struct
from pathlib import Path

import pytest

from offrecord.crypto.dsa import DSAPrivateKey, generate_private_key
from offrecord.errors import LocalProtocolError, StorageError
from offrecord.storage import import_potr_account
from offrecord.storage.base import FingerprintRecord
from offrecord.storage.libotr import LibotrStore
from offrecord.storage.memory import MemoryStore
from offrecord.storage.potr import (
    PotrImport,
    find_potr_accounts,
    load_fpr,
    load_key3,
    parse_fpr,
    parse_key3,
)

FP1 = bytes(range(20))
FP2 = bytes(range(1, 21))
FP3 = bytes(range(100, 120))


@pytest.fixture(scope="module")
def key() -> DSAPrivateKey:
    return generate_private_key(random.Random(7).randbytes)


@pytest.fixture(scope="module")
def other_key() -> DSAPrivateKey:
    return generate_private_key(random.Random(8).randbytes)


def potr_mpi(value: int) -> bytes:
    """potr's pack_mpi: minimal big-endian bytes behind a 4-byte length."""
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return struct.pack("!I", len(raw)) + raw


def key3_bytes(key: DSAPrivateKey) -> bytes:
    return b"\x00\x00" + b"".join(potr_mpi(v) for v in (key.p, key.q, key.g, key.y, key.x))


def fpr_line(peer: str, account: str, protocol: str, fingerprint: bytes, trust: str) -> bytes:
    return "\t".join((peer, account, protocol, fingerprint.hex(), trust)).encode() + b"\n"


# ---------------------------------------------------------------------------
# .key3


def test_parse_key3(key: DSAPrivateKey) -> None:
    assert parse_key3(key3_bytes(key)) == key


def test_load_key3(tmp_path: Path, key: DSAPrivateKey) -> None:
    path = tmp_path / "me@example.org.key3"
    path.write_bytes(key3_bytes(key))
    assert load_key3(path) == key
    with pytest.raises(StorageError, match="no such file"):
        load_key3(tmp_path / "missing.key3")


def _key3_cases(key: DSAPrivateKey) -> list[tuple[str, bytes, str]]:
    good = key3_bytes(key)
    return [
        ("empty", b"", "too short"),
        ("one byte", b"\x00", "too short"),
        ("wrong type", b"\x00\x01" + good[2:], "unsupported potr key type 0x0001"),
        ("no mpis", b"\x00\x00", "truncated before the length of p"),
        ("cut in a length", good[:4], "truncated before the length of p"),
        ("cut in p", good[:100], "truncated inside the MPI p"),
        ("cut in x", good[:-1], "truncated inside the MPI x"),
        ("trailing bytes", good + b"\x00", "1 unexpected bytes after the key"),
        ("huge length", b"\x00\x00\xff\xff\xff\xff", "implausibly long"),
        (
            "x and y disagree",
            key3_bytes(DSAPrivateKey(key.p, key.q, key.g, key.y, key.x ^ 1)),
            "do not belong",
        ),
        ("all zero", b"\x00\x00" + bytes(20), "DSA q must be"),
        ("pickle", b"\x80\x04\x95\x00", "unsupported potr key type"),
    ]


def test_malformed_key3(key: DSAPrivateKey) -> None:
    for label, data, fragment in _key3_cases(key):
        with pytest.raises(StorageError) as info:
            parse_key3(data, path="/otr/me.key3")
        assert info.value.path == "/otr/me.key3", label
        assert fragment in str(info.value), (label, str(info.value))
        assert f"{key.x:x}" not in str(info.value), label


# ---------------------------------------------------------------------------
# .fpr


def test_parse_fpr() -> None:
    data = (
        fpr_line("bob@example.org", "me@example.org", "xmpp", FP1, "verified")
        + fpr_line("carol@example.org", "me@example.org", "xmpp", FP2, "")
        + b"\n"
        + fpr_line("bob@example.org", "me@example.org", "xmpp", FP3, "smp").replace(b"\n", b"\r\n")
        + fpr_line("bob@example.org", "me@example.org", "xmpp", FP1, "smp")  # duplicate: later wins
    )
    assert parse_fpr(data) == (
        FingerprintRecord("bob@example.org", "me@example.org", "xmpp", FP1, "smp"),
        FingerprintRecord("carol@example.org", "me@example.org", "xmpp", FP2, ""),
        FingerprintRecord("bob@example.org", "me@example.org", "xmpp", FP3, "smp"),
    )
    assert parse_fpr(b"") == ()


def test_load_fpr(tmp_path: Path) -> None:
    assert load_fpr(tmp_path / "missing.fpr") == ()
    path = tmp_path / "me.fpr"
    path.write_bytes(fpr_line("u", "me", "irc", FP1, ""))
    assert load_fpr(path) == (FingerprintRecord("u", "me", "irc", FP1, ""),)


FPR_CASES: list[tuple[str, bytes, int, str]] = [
    ("four fields", b"u\tme\tirc\t" + FP1.hex().encode() + b"\n", 1, "found 4"),
    ("six fields", b"u\tme\tirc\t" + FP1.hex().encode() + b"\tsmp\tx\n", 1, "found 6"),
    ("short fingerprint", b"u\tme\tirc\tabcd\t\n", 1, "not 4 characters"),
    ("non-hex", b"u\tme\tirc\t" + b"x" * 40 + b"\t\n", 1, "not hexadecimal"),
    ("empty peer", b"\tme\tirc\t" + FP1.hex().encode() + b"\t\n", 1, "empty peer"),
    ("truncated", fpr_line("u", "me", "irc", FP1, "") + b"u\tme", 2, "no line feed"),
    ("binary", b"\x00\x01\t\x02\t\x03\t\x04\t\x05\n", 1, "control character"),
]


@pytest.mark.parametrize(("label", "data", "line", "fragment"), FPR_CASES)
def test_malformed_fpr(label: str, data: bytes, line: int, fragment: str) -> None:
    with pytest.raises(StorageError) as info:
        parse_fpr(data, path="/otr/me.fpr")
    assert info.value.path == "/otr/me.fpr"
    assert info.value.line == line
    assert fragment in str(info.value)


# ---------------------------------------------------------------------------
# Import


@pytest.fixture
def weechat_dir(tmp_path: Path, key: DSAPrivateKey) -> Path:
    directory = tmp_path / "weechat" / "otr"
    directory.mkdir(parents=True)
    (directory / "me@libera.key3").write_bytes(key3_bytes(key))
    (directory / "me@libera.fpr").write_bytes(
        fpr_line("bob@libera", "me@libera", "irc", FP1, "verified")
        + fpr_line("carol@libera", "me@libera", "irc", FP2, "")
        + fpr_line("dave@libera", "me@libera", "irc", FP3, "smp")
        + fpr_line("eve@oftc", "me@oftc", "irc", FP1, "")  # another account
        + fpr_line("zed@libera", "me@libera", "xmpp", FP1, "")  # another protocol
    )
    (directory / "me@oftc.fpr").write_bytes(b"")
    (directory / "notes.txt").write_bytes(b"")
    return directory


def test_find_potr_accounts(weechat_dir: Path) -> None:
    assert find_potr_accounts(weechat_dir) == ("me@libera", "me@oftc")
    with pytest.raises(StorageError):
        find_potr_accounts(weechat_dir / "missing")


@pytest.mark.parametrize("kind", ["memory", "libotr"])
def test_import_into_a_store(
    weechat_dir: Path, tmp_path: Path, key: DSAPrivateKey, kind: str
) -> None:
    store = MemoryStore() if kind == "memory" else LibotrStore(tmp_path / "purple")
    result = import_potr_account(
        store, weechat_dir, "me@libera", protocol="prpl-irc", source_protocol="irc"
    )
    assert result == PotrImport("me@libera", "prpl-irc", True, 3, 0, 2)
    assert store.get_private_key("me@libera", "prpl-irc") == key
    assert {
        (r.username, r.fingerprint, r.trust)
        for r in store.list_fingerprints("me@libera", "prpl-irc")
    } == {
        ("bob@libera", FP1, "verified"),
        ("carol@libera", FP2, ""),
        ("dave@libera", FP3, "smp"),
    }
    # importing again changes nothing
    again = import_potr_account(
        store, weechat_dir, "me@libera", protocol="prpl-irc", source_protocol="irc"
    )
    assert again == PotrImport("me@libera", "prpl-irc", False, 0, 0, 2)


def test_import_without_protocol_filter(weechat_dir: Path) -> None:
    store = MemoryStore()
    result = import_potr_account(store, weechat_dir, "me@libera", protocol="irc")
    assert (result.fingerprints_added, result.lines_skipped) == (4, 1)


def test_import_never_lowers_trust(weechat_dir: Path) -> None:
    store = MemoryStore()
    store.add_fingerprint("me@libera", "irc", "bob@libera", FP1, "smp")  # potr says verified
    store.add_fingerprint("me@libera", "irc", "carol@libera", FP2, "smp")  # potr says ""
    store.add_fingerprint("me@libera", "irc", "dave@libera", FP3, "")  # potr says smp
    result = import_potr_account(
        store, weechat_dir, "me@libera", protocol="irc", source_protocol="irc"
    )
    assert (result.fingerprints_added, result.trust_raised) == (0, 1)
    assert store.get_fingerprint("me@libera", "irc", "bob@libera", FP1) == FingerprintRecord(
        "bob@libera", "me@libera", "irc", FP1, "smp"
    )
    assert store.get_fingerprint("me@libera", "irc", "carol@libera", FP2) == FingerprintRecord(
        "carol@libera", "me@libera", "irc", FP2, "smp"
    )
    assert store.get_fingerprint("me@libera", "irc", "dave@libera", FP3) == FingerprintRecord(
        "dave@libera", "me@libera", "irc", FP3, "smp"
    )


def test_import_key_conflict(
    weechat_dir: Path, key: DSAPrivateKey, other_key: DSAPrivateKey
) -> None:
    store = MemoryStore()
    store.save_private_key("me@libera", "irc", other_key)
    with pytest.raises(LocalProtocolError, match="replace_key"):
        import_potr_account(store, weechat_dir, "me@libera", protocol="irc")
    assert store.get_private_key("me@libera", "irc") == other_key
    assert store.list_fingerprints("me@libera", "irc") == ()
    result = import_potr_account(store, weechat_dir, "me@libera", protocol="irc", replace_key=True)
    assert result.key_imported
    assert store.get_private_key("me@libera", "irc") == key


def test_import_same_key_is_not_a_conflict(weechat_dir: Path, key: DSAPrivateKey) -> None:
    store = MemoryStore()
    store.save_private_key("me@libera", "irc", key)
    assert not import_potr_account(store, weechat_dir, "me@libera", protocol="irc").key_imported


def test_import_only_fingerprints(weechat_dir: Path) -> None:
    store = MemoryStore()
    result = import_potr_account(store, weechat_dir, "me@oftc", protocol="irc")
    assert result == PotrImport("me@oftc", "irc", False, 0, 0, 0)
    assert store.list_key_accounts() == ()


def test_import_only_key(weechat_dir: Path, key: DSAPrivateKey) -> None:
    (weechat_dir / "me@libera.fpr").unlink()
    store = MemoryStore()
    assert import_potr_account(store, weechat_dir, "me@libera", protocol="irc").key_imported


def test_import_is_all_or_nothing(weechat_dir: Path) -> None:
    with open(weechat_dir / "me@libera.fpr", "ab") as handle:
        handle.write(b"broken line\n")
    store = MemoryStore()
    with pytest.raises(StorageError) as info:
        import_potr_account(store, weechat_dir, "me@libera", protocol="irc")
    assert info.value.path == str(weechat_dir / "me@libera.fpr")
    assert info.value.line == 6
    assert store.list_key_accounts() == ()
    assert store.list_fingerprints("me@libera", "irc") == ()


def test_import_errors(weechat_dir: Path) -> None:
    store = MemoryStore()
    with pytest.raises(StorageError, match=r"neither nobody\.key3 nor nobody\.fpr exists"):
        import_potr_account(store, weechat_dir, "nobody", protocol="irc")
    for bad in ("../etc/passwd", "..", "a/b"):
        with pytest.raises(LocalProtocolError):
            import_potr_account(store, weechat_dir, bad, protocol="irc")
    with pytest.raises(LocalProtocolError):
        import_potr_account(store, weechat_dir, "me@libera", protocol="")
    with pytest.raises(LocalProtocolError):
        import_potr_account(
            store, weechat_dir, "me@libera", protocol="irc", source_protocol="i\trc"
        )


def test_home_is_expanded(weechat_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(weechat_dir.parent))
    assert find_potr_accounts("~/otr") == ("me@libera", "me@oftc")
    assert import_potr_account(MemoryStore(), "~/otr", "me@libera", protocol="irc").key_imported
    assert load_fpr("~/otr/me@oftc.fpr") == ()
    assert load_key3("~/otr/me@libera.key3") is not None


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "me.key3")
    with pytest.raises(StorageError, match="not a regular file"):
        load_key3(tmp_path / "me.key3")
