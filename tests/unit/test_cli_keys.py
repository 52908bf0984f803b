"""The key and trust commands of ``offrecord`` through the real entry point
(``main([...])`` in process, and ``python -m offrecord.cli.main`` as a
subprocess), the store-directory rules, progress output and the async key
generation helpers."""

from __future__ import annotations

import asyncio
import io
import os
import random
import re
import stat
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from offrecord.cli import keys as cli_keys
from offrecord.cli.keys import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    CommandError,
    default_store_directory,
    generate_with_progress,
    parse_fingerprint,
    resolve_store_directory,
)
from offrecord.cli.main import main
from offrecord.crypto.dsa import DSAPrivateKey, format_fingerprint, generate_private_key
from offrecord.keygen import ensure_private_key, generate_private_key_async
from offrecord.storage.base import TRUST_NONE, TRUST_SMP, TRUST_VERIFIED
from offrecord.storage.libotr import LibotrStore
from offrecord.storage.memory import MemoryStore

ALICE, BOB, CAROL = "alice@example.org", "bob@example.org", "carol"
JABBER = "prpl-jabber"
FP1 = bytes(range(20))
FP2 = bytes(range(1, 21))
FP1_HUMAN = format_fingerprint(FP1)
HUMAN_FP = re.compile(r"\b[0-9A-F]{8}( [0-9A-F]{8}){4}\b")

_RNG = random.Random(99)
KEY_A, KEY_B = (generate_private_key(_RNG.randbytes) for _ in range(2))


@dataclass
class Result:
    code: int
    out: str
    err: str


RunFn = Callable[..., Result]


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Never touch the real user data directory."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.delenv("OFFRECORD_STORE", raising=False)
    yield home


@pytest.fixture
def store_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "store"
    monkeypatch.setenv("OFFRECORD_STORE", str(directory))
    return directory


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Iterator[RunFn]:
    def invoke(*argv: str) -> Result:
        capsys.readouterr()
        try:
            code = main(list(argv))
        except SystemExit as exc:  # argparse: --help and usage errors
            code = exc.code if isinstance(exc.code, int) else 1
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    yield invoke


def _ok(result: Result) -> Result:
    assert result.code == EXIT_OK, result.err
    return result


def _secret_forms(key: DSAPrivateKey) -> list[str]:
    return [f"{key.x:x}", f"{key.x:X}", str(key.x)]


# ---------------------------------------------------------------------------
# The store directory


def test_default_store_directory_follows_xdg() -> None:
    env = {"HOME": "/home/u"}
    assert default_store_directory(env, "linux") == Path("/home/u/.local/share/offrecord")
    env["XDG_DATA_HOME"] = "/data"
    assert default_store_directory(env, "linux") == Path("/data/offrecord")
    env["XDG_DATA_HOME"] = "relative/dir"  # ignored, as the XDG spec says
    assert default_store_directory(env, "linux") == Path("/home/u/.local/share/offrecord")
    env["XDG_DATA_HOME"] = ""
    assert default_store_directory(env, "freebsd13") == Path("/home/u/.local/share/offrecord")
    assert default_store_directory(env, "darwin") == Path(
        "/home/u/Library/Application Support/offrecord"
    )
    assert default_store_directory({"APPDATA": "C:/Users/u/AppData/Roaming"}, "win32") == Path(
        "C:/Users/u/AppData/Roaming/offrecord"
    )


def test_store_option_beats_environment_beats_default() -> None:
    env = {"HOME": "/home/u", "OFFRECORD_STORE": "/env/store"}
    assert resolve_store_directory("/opt/s", env, "linux") == Path("/opt/s")
    assert resolve_store_directory(None, env, "linux") == Path("/env/store")
    env["OFFRECORD_STORE"] = ""
    assert resolve_store_directory(None, env, "linux") == Path("/home/u/.local/share/offrecord")
    assert resolve_store_directory("~/.purple", env, "linux") == Path(
        os.path.expanduser("~/.purple")
    )


def test_the_default_directory_is_used_without_option_or_variable(
    run: RunFn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated_home: Path
) -> None:
    _ok(run("keys", "generate", ALICE, JABBER))
    assert (isolated_home / ".local/share/offrecord/otr.private_key").exists()
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    _ok(run("keys", "generate", BOB, JABBER))
    assert LibotrStore(tmp_path / "xdg/offrecord").get_private_key(BOB, JABBER) is not None
    monkeypatch.setenv("OFFRECORD_STORE", str(tmp_path / "env"))
    _ok(run("keys", "generate", CAROL, "irc"))
    _ok(run("keys", "generate", CAROL, "irc", "--store", str(tmp_path / "opt")))
    assert LibotrStore(tmp_path / "env").list_key_accounts()
    assert LibotrStore(tmp_path / "opt").list_key_accounts()


def test_a_store_that_is_a_file_is_refused(run: RunFn, tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    result = run("keys", "list", "--store", str(not_a_dir))
    assert result.code == EXIT_FAILURE
    assert "not a directory" in result.err


# ---------------------------------------------------------------------------
# Help and usage


COMMANDS = [
    [],
    ["keys"],
    ["keys", "generate"],
    ["keys", "list"],
    ["fingerprints"],
    ["trust"],
    ["distrust"],
    ["forget"],
    ["import"],
    ["export"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "offrecord")
def test_every_command_has_help(run: RunFn, command: list[str]) -> None:
    result = run(*command, "--help")
    assert result.code == EXIT_OK
    assert result.out.startswith("usage: offrecord")


@pytest.mark.parametrize(
    "argv",
    [
        ["keys"],
        ["keys", "generate", ALICE],
        ["trust", ALICE, JABBER, BOB],
        ["export"],
        ["import"],
        ["keys", "list", "--bogus"],
    ],
)
def test_usage_errors_exit_2(run: RunFn, store_dir: Path, argv: list[str]) -> None:
    result = run(*argv)
    assert result.code == EXIT_USAGE
    assert "usage:" in result.err


# ---------------------------------------------------------------------------
# keys generate / keys list


def test_keys_generate_saves_and_prints_the_fingerprint(run: RunFn, store_dir: Path) -> None:
    result = _ok(run("keys", "generate", ALICE, JABBER))
    key = LibotrStore(store_dir).get_private_key(ALICE, JABBER)
    assert key is not None
    assert result.out == f"{ALICE} ({JABBER}): {format_fingerprint(key.fingerprint())}\n"
    assert "generating a DSA-1024 key" in result.err  # stderr is not a TTY here
    assert len(result.err.splitlines()) == 1
    assert stat.S_IMODE((store_dir / "otr.private_key").stat().st_mode) == 0o600
    for secret in _secret_forms(key):
        assert secret not in result.out + result.err


def test_keys_generate_refuses_to_replace_without_force(run: RunFn, store_dir: Path) -> None:
    _ok(run("keys", "generate", ALICE, JABBER))
    before = (store_dir / "otr.private_key").read_bytes()
    old = LibotrStore(store_dir).get_private_key(ALICE, JABBER)
    assert old is not None
    result = run("keys", "generate", ALICE, JABBER)
    assert result.code == EXIT_FAILURE
    assert "already has a key" in result.err and "--force" in result.err
    assert format_fingerprint(old.fingerprint()) in result.err
    assert (store_dir / "otr.private_key").read_bytes() == before
    result = _ok(run("keys", "generate", ALICE, JABBER, "--force"))
    new = LibotrStore(store_dir).get_private_key(ALICE, JABBER)
    assert new is not None and new != old
    assert "replaced" in result.err
    assert format_fingerprint(new.fingerprint()) in result.out


def test_keys_generate_rejects_names_libotr_cannot_store(run: RunFn, store_dir: Path) -> None:
    result = run("keys", "generate", "a\tb", JABBER)
    assert result.code == EXIT_USAGE
    assert "tab" in result.err


def test_keys_generate_interrupted(
    run: RunFn, store_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def interrupted(*args: object, **kwargs: object) -> DSAPrivateKey:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_keys, "generate_with_progress", interrupted)
    result = run("keys", "generate", ALICE, JABBER)
    assert result.code == EXIT_INTERRUPTED
    assert "interrupted" in result.err
    assert not (store_dir / "otr.private_key").exists()


def test_keys_list(run: RunFn, store_dir: Path) -> None:
    result = _ok(run("keys", "list"))
    assert result.out == ""
    assert "no private keys" in result.err
    store = LibotrStore(store_dir)
    store.save_private_key(ALICE, JABBER, KEY_A)
    store.save_private_key(CAROL, "irc", KEY_B)
    result = _ok(run("keys", "list"))
    lines = result.out.splitlines()
    assert lines[0].split() == ["ACCOUNT", "PROTOCOL", "FINGERPRINT"]
    assert lines[1].startswith(ALICE) and JABBER in lines[1]
    assert lines[1].endswith(format_fingerprint(KEY_A.fingerprint()))
    assert lines[2].startswith(CAROL) and lines[2].endswith(format_fingerprint(KEY_B.fingerprint()))
    assert all(HUMAN_FP.search(line) for line in lines[1:])
    for secret in _secret_forms(KEY_A) + _secret_forms(KEY_B):
        assert secret not in result.out


# ---------------------------------------------------------------------------
# Fingerprints and trust


def test_parse_fingerprint_forms() -> None:
    digits = FP1.hex()
    assert parse_fingerprint(digits) == FP1
    assert parse_fingerprint(digits.upper()) == FP1
    assert parse_fingerprint(FP1_HUMAN) == FP1
    assert parse_fingerprint(FP1_HUMAN.lower().split()) == FP1
    assert parse_fingerprint(f"  {digits[:3]} {digits[3:]}\t") == FP1
    for bad in (digits[:-1], digits + "0", digits[:-1] + "g", "", "0x" + digits[2:]):
        with pytest.raises(CommandError) as info:
            parse_fingerprint(bad)
        assert info.value.code == EXIT_USAGE


def _fingerprint_lines(store_dir: Path) -> list[str]:
    return (store_dir / "otr.fingerprints").read_text().splitlines()


def test_trust_writes_verified_and_accepts_every_form(run: RunFn, store_dir: Path) -> None:
    LibotrStore(store_dir).add_fingerprint(ALICE, JABBER, BOB, FP1)
    result = _ok(run("trust", ALICE, JABBER, BOB, *FP1_HUMAN.lower().split()))
    assert result.out.startswith("trusted: " + FP1_HUMAN)
    assert _fingerprint_lines(store_dir) == [f"{BOB}\t{ALICE}\t{JABBER}\t{FP1.hex()}\tverified"]
    result = _ok(run("trust", ALICE, JABBER, BOB, FP1.hex().upper()))
    assert result.out.startswith("already trusted (verified)")


def test_trust_adds_an_unknown_fingerprint_and_warns_about_unknown_accounts(
    run: RunFn, store_dir: Path
) -> None:
    result = _ok(run("trust", ALICE, JABBER, BOB, FP1_HUMAN))
    assert result.out.startswith("added and trusted: ")
    assert "no key or fingerprints for" in result.err
    record = LibotrStore(store_dir).get_fingerprint(ALICE, JABBER, BOB, FP1)
    assert record is not None and record.trust == TRUST_VERIFIED
    result = _ok(run("trust", ALICE, JABBER, CAROL, FP2.hex()))
    assert result.err == ""  # the account is known now


def test_trust_keeps_smp_trust(run: RunFn, store_dir: Path) -> None:
    LibotrStore(store_dir).set_trust(ALICE, JABBER, BOB, FP1, TRUST_SMP)
    result = _ok(run("trust", ALICE, JABBER, BOB, FP1.hex()))
    assert "already trusted (smp)" in result.out
    assert _fingerprint_lines(store_dir)[0].endswith("\tsmp")


@pytest.mark.parametrize("command", ["trust", "distrust", "forget"])
def test_bad_fingerprints_exit_2(run: RunFn, store_dir: Path, command: str) -> None:
    for bad, message in ((FP1.hex()[:-1], "got 39"), (FP1.hex()[:-1] + "x", "not a hex digit")):
        result = run(command, ALICE, JABBER, BOB, bad)
        assert result.code == EXIT_USAGE
        assert message in result.err
        assert result.err.startswith(f"offrecord {command}: invalid fingerprint")
    assert not store_dir.exists()


def test_distrust(run: RunFn, store_dir: Path) -> None:
    LibotrStore(store_dir).set_trust(ALICE, JABBER, BOB, FP1, TRUST_SMP)
    result = _ok(run("distrust", ALICE, JABBER, BOB, FP1_HUMAN))
    assert "no longer trusted (was smp)" in result.out
    assert _fingerprint_lines(store_dir) == [f"{BOB}\t{ALICE}\t{JABBER}\t{FP1.hex()}\t"]
    result = _ok(run("distrust", ALICE, JABBER, BOB, FP1_HUMAN))
    assert "already not trusted" in result.out
    result = run("distrust", ALICE, JABBER, BOB, FP2.hex())
    assert result.code == EXIT_FAILURE
    assert "unknown fingerprint" in result.err


def test_forget(run: RunFn, store_dir: Path) -> None:
    store = LibotrStore(store_dir)
    store.add_fingerprint(ALICE, JABBER, BOB, FP1)
    store.add_fingerprint(ALICE, JABBER, BOB, FP2)
    result = _ok(run("forget", ALICE, JABBER, BOB, FP1_HUMAN))
    assert result.out.startswith("forgotten: ")
    assert [r.fingerprint for r in store.list_fingerprints(ALICE, JABBER)] == [FP2]
    result = run("forget", ALICE, JABBER, BOB, FP1_HUMAN)
    assert result.code == EXIT_FAILURE
    assert "unknown fingerprint" in result.err
    result = run("forget", ALICE, "prpl-irc", BOB, FP2.hex())
    assert result.code == EXIT_FAILURE


def test_fingerprints_lists_everything_and_filters(run: RunFn, store_dir: Path) -> None:
    result = _ok(run("fingerprints"))
    assert result.out == "" and "no matching fingerprints" in result.err
    store = LibotrStore(store_dir)
    store.add_fingerprint(ALICE, JABBER, BOB, FP1)
    store.set_trust(ALICE, JABBER, CAROL, FP2, TRUST_SMP)
    store.set_trust("dave", "prpl-irc", BOB, FP2, TRUST_VERIFIED)
    lines = _ok(run("fingerprints")).out.splitlines()
    assert lines[0].split() == ["BUDDY", "ACCOUNT", "PROTOCOL", "TRUST", "FINGERPRINT"]
    assert len(lines) == 4 and all(HUMAN_FP.search(line) for line in lines[1:])
    by_buddy_account = {(line.split()[0], line.split()[1]): line.split()[3] for line in lines[1:]}
    assert by_buddy_account == {
        (BOB, ALICE): "unverified",
        (CAROL, ALICE): "smp",
        (BOB, "dave"): "verified",
    }
    only = _ok(run("fingerprints", "--account", ALICE, "--buddy", BOB)).out.splitlines()
    assert len(only) == 2 and FP1_HUMAN in only[1]
    assert len(_ok(run("fingerprints", "--protocol", "prpl-irc")).out.splitlines()) == 2


def test_names_that_are_not_utf8_are_shown_escaped(run: RunFn, store_dir: Path) -> None:
    store_dir.mkdir()
    line = b"b\xffb\t" + ALICE.encode() + b"\t" + JABBER.encode() + b"\t" + FP1.hex().encode()
    (store_dir / "otr.fingerprints").write_bytes(line + b"\t\n")
    result = _ok(run("fingerprints"))
    assert "b\\xffb" in result.out
    # The same bytes given on the command line (as Python decodes argv) match.
    _ok(run("trust", ALICE, JABBER, "b\udcffb", FP1.hex()))
    assert (store_dir / "otr.fingerprints").read_bytes() == line + b"\tverified\n"


def test_trust_through_the_trust_book_is_visible_to_the_commands(
    run: RunFn, store_dir: Path
) -> None:
    from offrecord.storage.trust import StoreTrustBook

    book = StoreTrustBook(LibotrStore(store_dir), ALICE, JABBER)
    book.fingerprint_seen(BOB, FP1)
    assert "unverified" in _ok(run("fingerprints")).out
    _ok(run("trust", ALICE, JABBER, BOB, FP1.hex()))
    assert book.trust(BOB, FP1) == TRUST_VERIFIED


# ---------------------------------------------------------------------------
# Malformed files: a clear error naming file and line, exit 1, file unchanged

BAD_FINGERPRINTS = f"{BOB}\t{ALICE}\t{JABBER}\t{FP1.hex()}\t\n{BOB}\t{ALICE}\tx\t12\t\n"
BAD_KEYS = "(privkeys\n (account\n(name alice)\n(protocol irc)\n(private-key (rsa (n #00#)))\n))\n"


@pytest.mark.parametrize(
    "argv",
    [
        ["fingerprints"],
        ["trust", ALICE, JABBER, BOB, FP2.hex()],
        ["distrust", ALICE, JABBER, BOB, FP1.hex()],
        ["forget", ALICE, JABBER, BOB, FP1.hex()],
        ["export", "--to", "{tmp}/out"],
        ["import", "{tmp}/source"],
    ],
    ids=lambda argv: argv[0],
)
def test_a_malformed_fingerprint_file_is_reported_and_kept(
    run: RunFn, store_dir: Path, tmp_path: Path, argv: list[str]
) -> None:
    store_dir.mkdir()
    bad = store_dir / "otr.fingerprints"
    bad.write_text(BAD_FINGERPRINTS)
    source = tmp_path / "source"
    LibotrStore(source).add_fingerprint(ALICE, JABBER, CAROL, FP2)
    result = run(*(arg.format(tmp=tmp_path) for arg in argv))
    assert result.code == EXIT_FAILURE
    assert f"{bad}:2: fingerprint must be 40 hex digits" in result.err
    assert "left unchanged" in result.err
    assert bad.read_text() == BAD_FINGERPRINTS
    assert not (tmp_path / "out").exists()
    assert result.out == ""


@pytest.mark.parametrize(
    "argv",
    [["keys", "list"], ["keys", "generate", ALICE, JABBER], ["export", "--to", "{tmp}/out"]],
    ids=lambda argv: " ".join(argv[:2]),
)
def test_a_malformed_key_file_is_reported_and_kept(
    run: RunFn, store_dir: Path, tmp_path: Path, argv: list[str]
) -> None:
    store_dir.mkdir()
    bad = store_dir / "otr.private_key"
    bad.write_text(BAD_KEYS)
    result = run(*(arg.format(tmp=tmp_path) for arg in argv))
    assert result.code == EXIT_FAILURE
    assert f"{bad}:5: " in result.err
    assert bad.read_text() == BAD_KEYS
    assert not (tmp_path / "out").exists()


def test_a_truncated_instance_tag_file_stops_the_export(
    run: RunFn, store_dir: Path, tmp_path: Path
) -> None:
    LibotrStore(store_dir).save_private_key(ALICE, JABBER, KEY_A)
    (store_dir / "otr.instance_tags").write_bytes(b"# comment\nalice\tprpl\t0000")
    result = run("export", "--to", str(tmp_path / "out"))
    assert result.code == EXIT_FAILURE
    assert "otr.instance_tags:2: the last line has no line feed" in result.err
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------
# import


def _purple(tmp_path: Path) -> Path:
    source = tmp_path / "purple"
    store = LibotrStore(source)
    store.save_private_key(ALICE, JABBER, KEY_A)
    store.save_instance_tag(ALICE, JABBER, 0x12345678)
    store.add_fingerprint(ALICE, JABBER, BOB, FP1, TRUST_SMP)
    store.add_fingerprint(ALICE, JABBER, CAROL, FP2)
    store.add_fingerprint("other", "prpl-irc", BOB, FP2, TRUST_VERIFIED)
    return source


def test_import_a_pidgin_directory(run: RunFn, store_dir: Path, tmp_path: Path) -> None:
    source = _purple(tmp_path)
    result = _ok(run("import", str(source)))
    assert f"{ALICE} ({JABBER}): key imported, 2 fingerprints added" in result.out
    assert "other (prpl-irc): no key, 1 fingerprint added" in result.out
    target = LibotrStore(store_dir)
    assert target.get_private_key(ALICE, JABBER) == KEY_A
    assert target.get_instance_tag(ALICE, JABBER) is None  # never copied
    assert (store_dir / "otr.fingerprints").read_bytes() == (
        source / "otr.fingerprints"
    ).read_bytes()
    # Again: nothing changes.
    result = _ok(run("import", str(source)))
    assert "key already present, 0 fingerprints added" in result.out


def test_import_never_lowers_trust_and_raises_empty_trust(
    run: RunFn, store_dir: Path, tmp_path: Path
) -> None:
    source = _purple(tmp_path)
    target = LibotrStore(store_dir)
    target.add_fingerprint(ALICE, JABBER, BOB, FP1)  # source: smp
    target.add_fingerprint(ALICE, JABBER, CAROL, FP2, TRUST_VERIFIED)  # source: untrusted
    result = _ok(run("import", str(source), "--account", ALICE))
    assert "0 fingerprints added, 1 trust raised" in result.out
    assert "other" not in result.out
    trusts = {r.username: r.trust for r in target.list_fingerprints(ALICE, JABBER)}
    assert trusts == {BOB: TRUST_SMP, CAROL: TRUST_VERIFIED}


def test_import_refuses_a_different_key_and_writes_nothing(
    run: RunFn, store_dir: Path, tmp_path: Path
) -> None:
    source = _purple(tmp_path)
    LibotrStore(store_dir).save_private_key(ALICE, JABBER, KEY_B)
    result = run("import", str(source))
    assert result.code == EXIT_FAILURE
    assert "different key" in result.err and "--replace-keys" in result.err
    assert not (store_dir / "otr.fingerprints").exists()
    assert LibotrStore(store_dir).get_private_key(ALICE, JABBER) == KEY_B
    result = _ok(run("import", str(source), "--replace-keys"))
    assert "key replaced" in result.out
    assert LibotrStore(store_dir).get_private_key(ALICE, JABBER) == KEY_A


def _potr_mpi(value: int) -> bytes:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return struct.pack("!I", len(raw)) + raw


def _potr_dir(tmp_path: Path, protocols: tuple[str, ...] = ("irc",)) -> Path:
    source = tmp_path / "weechat-otr"
    source.mkdir()
    key = KEY_B
    (source / "carol.key3").write_bytes(
        b"\x00\x00" + b"".join(_potr_mpi(v) for v in (key.p, key.q, key.g, key.y, key.x))
    )
    lines = [f"{BOB}\tcarol\t{proto}\t{FP1.hex()}\tverified\n" for proto in protocols]
    (source / "carol.fpr").write_text("".join(lines))
    return source


def test_import_potr_files(run: RunFn, store_dir: Path, tmp_path: Path) -> None:
    source = _potr_dir(tmp_path)
    result = _ok(run("import", str(source)))
    assert result.out == "carol (irc): key imported, 1 fingerprint added\n"
    target = LibotrStore(store_dir)
    assert target.get_private_key(CAROL, "irc") == KEY_B
    record = target.get_fingerprint(CAROL, "irc", BOB, FP1)
    assert record is not None and record.trust == TRUST_VERIFIED
    result = _ok(
        run("import", str(source), "--protocol", "prpl-irc", "--store", str(tmp_path / "p"))
    )
    assert result.out == "carol (prpl-irc): key imported, 1 fingerprint added\n"


def test_import_potr_needs_a_protocol_when_the_files_do_not_tell(
    run: RunFn, store_dir: Path, tmp_path: Path
) -> None:
    source = _potr_dir(tmp_path, ("irc", "xmpp"))
    result = run("import", str(source))
    assert result.code == EXIT_USAGE
    assert "--protocol" in result.err
    assert not store_dir.exists()
    result = _ok(run("import", str(source), "--source-protocol", "xmpp"))
    assert result.out == "carol (xmpp): key imported, 1 fingerprint added\n"


def test_import_potr_malformed_file_names_it(run: RunFn, store_dir: Path, tmp_path: Path) -> None:
    source = _potr_dir(tmp_path)
    (source / "carol.fpr").write_text(f"{BOB}\tcarol\tirc\t{FP1.hex()}\n")
    result = run("import", str(source))
    assert result.code == EXIT_FAILURE
    assert f"{source / 'carol.fpr'}:1: expected 5 tab-separated fields" in result.err
    assert not store_dir.exists()


@pytest.mark.parametrize("case", ["missing", "empty", "store itself", "malformed source"])
def test_import_errors(run: RunFn, store_dir: Path, tmp_path: Path, case: str) -> None:
    if case == "missing":
        argv, message = [str(tmp_path / "nope")], "no such directory"
    elif case == "empty":
        (tmp_path / "empty").mkdir()
        argv, message = [str(tmp_path / "empty")], "has neither libotr files"
    elif case == "store itself":
        LibotrStore(store_dir).add_fingerprint(ALICE, JABBER, BOB, FP1)
        argv, message = [str(store_dir)], "is the store itself"
    else:
        (tmp_path / "src").mkdir()
        (tmp_path / "src/otr.private_key").write_text(BAD_KEYS)
        argv, message = [str(tmp_path / "src")], "otr.private_key:5: "
    result = run("import", *argv)
    assert result.code == EXIT_FAILURE
    assert message in result.err
    assert not (store_dir / "otr.private_key").exists()


def test_import_of_an_absent_account(run: RunFn, store_dir: Path, tmp_path: Path) -> None:
    result = run("import", str(_purple(tmp_path)), "--account", "nobody")
    assert result.code == EXIT_FAILURE
    assert "nothing to import for nobody" in result.err


# ---------------------------------------------------------------------------
# export


def test_export_copies_the_three_files(run: RunFn, store_dir: Path, tmp_path: Path) -> None:
    store = LibotrStore(store_dir)
    store.save_private_key(ALICE, JABBER, KEY_A)
    store.save_instance_tag(ALICE, JABBER, 0x12345678)
    store.add_fingerprint(ALICE, JABBER, BOB, FP1, TRUST_SMP)
    out = tmp_path / "export" / "deeper"
    result = _ok(run("export", "--to", str(out)))
    assert result.out.splitlines() == [
        "exported otr.private_key (1 key)",
        "exported otr.fingerprints (1 fingerprint)",
        "exported otr.instance_tags (1 instance tag)",
    ]
    for name in ("otr.private_key", "otr.fingerprints", "otr.instance_tags"):
        assert (out / name).read_bytes() == (store_dir / name).read_bytes()
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o600
    assert sorted(p.name for p in out.iterdir()) == [
        "otr.fingerprints",
        "otr.instance_tags",
        "otr.private_key",
    ]
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    copy = LibotrStore(out)
    assert copy.get_private_key(ALICE, JABBER) == KEY_A
    for secret in _secret_forms(KEY_A):
        assert secret not in result.out + result.err


def test_export_refuses_to_overwrite_without_force(
    run: RunFn, store_dir: Path, tmp_path: Path
) -> None:
    LibotrStore(store_dir).save_private_key(ALICE, JABBER, KEY_A)
    LibotrStore(store_dir).add_fingerprint(ALICE, JABBER, BOB, FP1)
    out = tmp_path / "out"
    out.mkdir()
    (out / "otr.fingerprints").write_text("precious\n")
    result = run("export", "--to", str(out))
    assert result.code == EXIT_FAILURE
    assert "refusing to overwrite otr.fingerprints" in result.err and "--force" in result.err
    assert (out / "otr.fingerprints").read_text() == "precious\n"
    assert not (out / "otr.private_key").exists()
    _ok(run("export", "--to", str(out), "--force"))
    assert (out / "otr.fingerprints").read_bytes() == (store_dir / "otr.fingerprints").read_bytes()
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_export_errors(run: RunFn, store_dir: Path, tmp_path: Path) -> None:
    result = run("export", "--to", str(tmp_path / "out"))
    assert result.code == EXIT_FAILURE and "nothing to export" in result.err
    LibotrStore(store_dir).save_private_key(ALICE, JABBER, KEY_A)
    result = run("export", "--to", str(store_dir))
    assert result.code == EXIT_FAILURE and "is the store itself" in result.err
    (tmp_path / "file").write_text("")
    result = run("export", "--to", str(tmp_path / "file"))
    assert result.code == EXIT_FAILURE and "not a directory" in result.err


# ---------------------------------------------------------------------------
# Progress and async key generation


class _FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_on_a_terminal_is_a_spinner() -> None:
    async def slow() -> DSAPrivateKey:
        await asyncio.sleep(0.05)
        return KEY_A

    stream = _FakeTTY()
    key = asyncio.run(
        generate_with_progress(
            "alice (irc)", stream, generate=lambda: asyncio.ensure_future(slow()), interval=0.005
        )
    )
    assert key == KEY_A
    text = stream.getvalue()
    assert text.startswith("Generating a DSA-1024 key for alice (irc)... ")
    assert text.endswith("done\n")
    assert "\b" in text and any(frame + "\b" in text for frame in "|/-\\")


def test_progress_elsewhere_is_one_line() -> None:
    async def instant() -> DSAPrivateKey:
        return KEY_A

    stream = io.StringIO()
    asyncio.run(
        generate_with_progress(
            "alice (irc)", stream, generate=lambda: asyncio.ensure_future(instant())
        )
    )
    assert stream.getvalue() == "offrecord: generating a DSA-1024 key for alice (irc)...\n"


def test_async_generation_leaves_the_event_loop_running() -> None:
    def slow_random(n: int) -> bytes:
        time.sleep(0.0005)
        return _RNG.randbytes(n)

    async def scenario() -> tuple[DSAPrivateKey, int]:
        ticks = 0
        task = asyncio.ensure_future(generate_private_key_async(slow_random))
        while not task.done():
            ticks += 1
            await asyncio.sleep(0.001)
        return await task, ticks

    key, ticks = asyncio.run(scenario())
    assert ticks > 5
    assert key.p.bit_length() == 1024 and key.q.bit_length() == 160


def test_ensure_private_key_creates_once() -> None:
    store = MemoryStore()

    async def scenario() -> list[tuple[DSAPrivateKey, bool]]:
        with ThreadPoolExecutor(max_workers=1) as executor:
            first = await ensure_private_key(
                store, ALICE, JABBER, random_bytes=_RNG.randbytes, executor=executor
            )
            second = await ensure_private_key(store, ALICE, JABBER, executor=executor)
        return [first, second]

    (key, created), (again, created_again) = asyncio.run(scenario())
    assert created is True and created_again is False
    assert key == again == store.get_private_key(ALICE, JABBER)


def test_ensure_private_key_keeps_a_key_saved_meanwhile() -> None:
    store = MemoryStore()
    calls = 0

    def racing_random(n: int) -> bytes:
        nonlocal calls
        calls += 1
        if calls == 1:  # another writer saves a key while ours is generated
            store.save_private_key(ALICE, JABBER, KEY_B)
        return _RNG.randbytes(n)

    key, created = asyncio.run(ensure_private_key(store, ALICE, JABBER, random_bytes=racing_random))
    assert created is False and key == KEY_B


# ---------------------------------------------------------------------------
# The real entry point in a subprocess


def _subprocess(*argv: str, env_store: Path | None, home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OFFRECORD_STORE", "XDG_DATA_HOME")}
    env["HOME"] = str(home)
    if env_store is not None:
        env["OFFRECORD_STORE"] = str(env_store)
    return subprocess.run(
        [sys.executable, "-m", "offrecord.cli.main", *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_subprocess_generate_trust_and_list(tmp_path: Path, isolated_home: Path) -> None:
    store = tmp_path / "store"
    done = _subprocess("keys", "generate", ALICE, JABBER, env_store=store, home=isolated_home)
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(rf"{re.escape(ALICE)} \({JABBER}\): {HUMAN_FP.pattern}\n", done.stdout)
    done = _subprocess("trust", ALICE, JABBER, BOB, FP1.hex(), env_store=store, home=isolated_home)
    assert done.returncode == 0, done.stderr
    done = _subprocess("fingerprints", env_store=store, home=isolated_home)
    assert done.returncode == 0 and "verified" in done.stdout and FP1_HUMAN in done.stdout
    done = _subprocess("keys", "list", env_store=None, home=isolated_home)
    assert done.returncode == 0 and "no private keys" in done.stderr
    done = _subprocess(
        "keys", "list", "--store", str(store), env_store=tmp_path / "elsewhere", home=isolated_home
    )
    assert done.returncode == 0 and ALICE in done.stdout


def test_subprocess_malformed_file(tmp_path: Path, isolated_home: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    (store / "otr.fingerprints").write_text(BAD_FINGERPRINTS)
    done = _subprocess("trust", ALICE, JABBER, BOB, FP2.hex(), env_store=store, home=isolated_home)
    assert done.returncode == EXIT_FAILURE
    assert f"{store / 'otr.fingerprints'}:2:" in done.stderr
    assert "Traceback" not in done.stderr
    assert (store / "otr.fingerprints").read_text() == BAD_FINGERPRINTS


def test_subprocess_help_and_bad_usage(tmp_path: Path, isolated_home: Path) -> None:
    done = _subprocess("trust", "--help", env_store=None, home=isolated_home)
    assert done.returncode == 0 and "FINGERPRINT" in done.stdout
    done = _subprocess("trust", ALICE, JABBER, BOB, "xyz", env_store=None, home=isolated_home)
    assert done.returncode == EXIT_USAGE and "invalid fingerprint" in done.stderr


def test_trust_constants_match_libotr() -> None:
    assert (TRUST_NONE, TRUST_VERIFIED, TRUST_SMP) == ("", "verified", "smp")
