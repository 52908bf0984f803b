"""``offrecord keys``, ``fingerprints``, ``trust``, ``distrust``, ``forget``,
``import`` and ``export``: the long-term keys and the buddies' fingerprints in
a libotr-format store directory (see ``docs/cli.md``).

The store directory is, in this order: ``--store DIR``, the environment
variable ``OFFRECORD_STORE``, or the platform's user data directory
(:func:`default_store_directory`).  It holds libotr's ``otr.private_key``,
``otr.fingerprints`` and ``otr.instance_tags``, so ``--store ~/.purple``
works on Pidgin's own files.

Exit codes: 0 success, 1 failure (a malformed or unreadable file, a
conflict, an unknown fingerprint), 2 bad usage, 130 interrupted.  Messages
go to stderr; stdout carries only results.  Private key material is never
printed — only fingerprints.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import string
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, TextIO

from offrecord.crypto.dsa import DSAPrivateKey, format_fingerprint
from offrecord.errors import LocalProtocolError, StorageError
from offrecord.keygen import generate_private_key_async
from offrecord.storage.base import (
    FINGERPRINT_LENGTH,
    TRUST_NONE,
    TRUST_VERIFIED,
    AccountId,
    FingerprintRecord,
)
from offrecord.storage.libotr import (
    FINGERPRINTS_FILE,
    INSTANCE_TAGS_FILE,
    MAX_FILE_SIZE,
    PRIVATE_KEY_FILE,
    LibotrStore,
    parse_fingerprints,
    parse_instance_tags,
    parse_private_keys,
)
from offrecord.storage.potr import (
    FPR_SUFFIX,
    KEY3_SUFFIX,
    find_potr_accounts,
    import_potr_account,
    load_fpr,
    load_key3,
)

__all__ = [
    "ENV_STORE",
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "CommandError",
    "default_store_directory",
    "generate_with_progress",
    "parse_fingerprint",
    "register_commands",
    "resolve_store_directory",
]

ENV_STORE: Final = "OFFRECORD_STORE"
APP_NAME: Final = "offrecord"

EXIT_OK: Final = 0
EXIT_FAILURE: Final = 1
EXIT_USAGE: Final = 2
EXIT_INTERRUPTED: Final = 130

_SPINNER: Final = "|/-\\"
_SPIN_INTERVAL: Final = 0.1
_UNVERIFIED_LABEL: Final = "unverified"


class CommandError(Exception):
    """A command failed; ``code`` is the exit status."""

    def __init__(self, message: str, code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.code = code


# ---------------------------------------------------------------------------
# Where the store is


def default_store_directory(
    environ: Mapping[str, str] | None = None, platform: str | None = None
) -> Path:
    """The platform's per-user data directory for offrecord.

    Linux and other Unix: ``$XDG_DATA_HOME/offrecord`` when ``XDG_DATA_HOME``
    is set to an absolute path (the XDG spec says to ignore relative ones),
    else ``~/.local/share/offrecord``.  macOS:
    ``~/Library/Application Support/offrecord``.  Windows:
    ``%APPDATA%\\offrecord``.
    """
    env = os.environ if environ is None else environ
    system = sys.platform if platform is None else platform
    home = Path(env.get("HOME") or os.path.expanduser("~"))
    if system == "darwin":
        return home / "Library" / "Application Support" / APP_NAME
    if system.startswith("win"):
        appdata = env.get("APPDATA")
        base = Path(appdata) if appdata else home / "AppData" / "Roaming"
        return base / APP_NAME
    xdg = env.get("XDG_DATA_HOME", "")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / APP_NAME
    return home / ".local" / "share" / APP_NAME


def resolve_store_directory(
    option: str | None, environ: Mapping[str, str] | None = None, platform: str | None = None
) -> Path:
    """``--store`` if given, else ``$OFFRECORD_STORE`` if set and not empty,
    else :func:`default_store_directory`.  ``~`` is expanded."""
    env = os.environ if environ is None else environ
    chosen = option if option else env.get(ENV_STORE) or None
    if chosen is None:
        return default_store_directory(env, platform)
    return Path(os.path.expanduser(chosen))


def _open_store(args: argparse.Namespace) -> LibotrStore:
    directory = resolve_store_directory(getattr(args, "store", None))
    if directory.exists() and not directory.is_dir():
        raise CommandError(f"{directory}: the store is not a directory")
    return LibotrStore(directory)


# ---------------------------------------------------------------------------
# Output


def _printable(text: str) -> str:
    """``text`` safe for a terminal: bytes that were not UTF-8 (surrogate
    escapes) as ``\\xNN``, other unprintable characters escaped."""
    out: list[str] = []
    for ch in text:
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:
            out.append(f"\\x{code - 0xDC00:02x}")
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    return "".join(out)


def _write(stream: TextIO, line: str) -> None:
    encoding = getattr(stream, "encoding", None) or "utf-8"
    try:
        safe = line.encode(encoding, "backslashreplace").decode(encoding)
    except LookupError:
        safe = line
    stream.write(safe + "\n")


def _out(line: str) -> None:
    _write(sys.stdout, line)


def _note(line: str) -> None:
    _write(sys.stderr, line)


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def _count(number: int, singular: str, plural: str | None = None) -> str:
    return f"{number} {singular if number == 1 else plural or singular + 's'}"


def _account_label(account: str, protocol: str) -> str:
    return f"{_printable(account)} ({_printable(protocol)})"


def _trust_label(trust: str) -> str:
    return _printable(trust) if trust != TRUST_NONE else _UNVERIFIED_LABEL


# ---------------------------------------------------------------------------
# Arguments


def parse_fingerprint(parts: str | Sequence[str]) -> bytes:
    """40 hex digits, any case, with or without spaces (one string or the
    five groups as separate words) -> 20 bytes.  :class:`CommandError` with
    exit code 2 otherwise."""
    text = parts if isinstance(parts, str) else " ".join(parts)
    digits = "".join(text.split())
    bad = next((ch for ch in digits if ch not in string.hexdigits), None)
    if bad is not None:
        raise CommandError(
            f"invalid fingerprint: {_printable(bad)!r} is not a hex digit", EXIT_USAGE
        )
    if len(digits) != 2 * FINGERPRINT_LENGTH:
        raise CommandError(
            f"invalid fingerprint: expected {2 * FINGERPRINT_LENGTH} hex digits, got {len(digits)}",
            EXIT_USAGE,
        )
    return bytes.fromhex(digits)


# ---------------------------------------------------------------------------
# Reading whole files (validated) from a store


def _read_bytes(path: Path) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_FILE_SIZE + 1)
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise StorageError("is a directory, not a file", path=str(path)) from None
    except OSError as exc:
        raise StorageError(f"cannot read: {exc.strerror}", path=str(path)) from None
    if len(data) > MAX_FILE_SIZE:
        raise StorageError(f"file is larger than {MAX_FILE_SIZE} bytes", path=str(path))
    return data


def _all_fingerprints(store: LibotrStore) -> tuple[FingerprintRecord, ...]:
    """Every record of the store's fingerprint file, for all accounts."""
    path = store.fingerprints_path
    data = _read_bytes(path)
    return () if data is None else parse_fingerprints(data, path=str(path))


def _known_account(store: LibotrStore, account: str, protocol: str) -> bool:
    if AccountId(account, protocol) in store.list_key_accounts():
        return True
    return any(r.account == account and r.protocol == protocol for r in _all_fingerprints(store))


# ---------------------------------------------------------------------------
# Key generation with progress


async def generate_with_progress(
    label: str,
    stream: TextIO,
    *,
    generate: Callable[[], asyncio.Future[DSAPrivateKey]] | None = None,
    interval: float = _SPIN_INTERVAL,
) -> DSAPrivateKey:
    """Generate a key in a thread while showing progress on ``stream``: a
    spinner when it is a terminal, one line otherwise."""
    future: asyncio.Future[DSAPrivateKey] = (
        asyncio.ensure_future(generate_private_key_async()) if generate is None else generate()
    )
    if not stream.isatty():
        _write(stream, f"offrecord: generating a DSA-1024 key for {label}...")
        stream.flush()
        return await future
    stream.write(f"Generating a DSA-1024 key for {label}... ")
    frame = 0
    try:
        while True:
            done, _ = await asyncio.wait({future}, timeout=interval)
            if done:
                break
            stream.write(_SPINNER[frame % len(_SPINNER)] + "\b")
            stream.flush()
            frame += 1
    except BaseException:
        stream.write("interrupted\n")
        stream.flush()
        future.cancel()
        raise
    key = future.result()
    stream.write("done\n")
    stream.flush()
    return key


# ---------------------------------------------------------------------------
# Commands


def _cmd_keys_generate(args: argparse.Namespace) -> int:
    store = _open_store(args)
    account, protocol = args.account, args.protocol
    label = _account_label(account, protocol)
    old = store.get_private_key(account, protocol)  # also: the file must parse
    if old is not None and not args.force:
        raise CommandError(
            f"{label} already has a key ({format_fingerprint(old.fingerprint())}) in "
            f"{store.directory}; use --force to replace it (buddies will see a new fingerprint)"
        )
    key = asyncio.run(generate_with_progress(label, sys.stderr))
    store.save_private_key(account, protocol, key)
    if old is not None:
        _note(f"replaced the key {format_fingerprint(old.fingerprint())}")
    _out(f"{label}: {format_fingerprint(key.fingerprint())}")
    return EXIT_OK


def _cmd_keys_list(args: argparse.Namespace) -> int:
    store = _open_store(args)
    rows: list[list[str]] = []
    for ident in store.list_key_accounts():
        key = store.get_private_key(ident.account, ident.protocol)
        if key is None:  # pragma: no cover - listed accounts have keys
            continue
        rows.append(
            [
                _printable(ident.account),
                _printable(ident.protocol),
                format_fingerprint(key.fingerprint()),
            ]
        )
    if not rows:
        _note(f"no private keys in {store.directory}")
        return EXIT_OK
    for line in _table([["ACCOUNT", "PROTOCOL", "FINGERPRINT"], *rows]):
        _out(line)
    return EXIT_OK


def _cmd_fingerprints(args: argparse.Namespace) -> int:
    store = _open_store(args)
    records = [
        r
        for r in _all_fingerprints(store)
        if (args.account is None or r.account == args.account)
        and (args.protocol is None or r.protocol == args.protocol)
        and (args.buddy is None or r.username == args.buddy)
    ]
    if not records:
        _note(f"no matching fingerprints in {store.directory}")
        return EXIT_OK
    rows = [
        [
            _printable(r.username),
            _printable(r.account),
            _printable(r.protocol),
            _trust_label(r.trust),
            format_fingerprint(r.fingerprint),
        ]
        for r in records
    ]
    for line in _table([["BUDDY", "ACCOUNT", "PROTOCOL", "TRUST", "FINGERPRINT"], *rows]):
        _out(line)
    return EXIT_OK


def _fingerprint_target(args: argparse.Namespace) -> tuple[LibotrStore, bytes, str]:
    fingerprint = parse_fingerprint(args.fingerprint)
    store = _open_store(args)
    what = (
        f"{format_fingerprint(fingerprint)} of {_printable(args.buddy)} "
        f"for {_account_label(args.account, args.protocol)}"
    )
    return store, fingerprint, what


def _cmd_trust(args: argparse.Namespace) -> int:
    store, fingerprint, what = _fingerprint_target(args)
    account, protocol, buddy = args.account, args.protocol, args.buddy
    record = store.get_fingerprint(account, protocol, buddy, fingerprint)
    if record is not None and record.trusted:
        _out(f"already trusted ({_trust_label(record.trust)}): {what}")
        return EXIT_OK
    if record is None and not _known_account(store, account, protocol):
        _note(
            f"note: {store.directory} has no key or fingerprints for "
            f"{_account_label(account, protocol)} yet; check the account and protocol "
            "(Pidgin names protocols like prpl-jabber, prpl-irc)"
        )
    store.set_trust(account, protocol, buddy, fingerprint, TRUST_VERIFIED)
    verb = "trusted" if record is not None else "added and trusted"
    _out(f"{verb}: {what}")
    return EXIT_OK


def _cmd_distrust(args: argparse.Namespace) -> int:
    store, fingerprint, what = _fingerprint_target(args)
    record = store.get_fingerprint(args.account, args.protocol, args.buddy, fingerprint)
    if record is None:
        raise CommandError(f"unknown fingerprint: {what} is not in {store.fingerprints_path}")
    if not record.trusted:
        _out(f"already not trusted: {what}")
        return EXIT_OK
    store.set_trust(args.account, args.protocol, args.buddy, fingerprint, TRUST_NONE)
    _out(f"no longer trusted (was {_trust_label(record.trust)}): {what}")
    return EXIT_OK


def _cmd_forget(args: argparse.Namespace) -> int:
    store, fingerprint, what = _fingerprint_target(args)
    if not store.forget_fingerprint(args.account, args.protocol, args.buddy, fingerprint):
        raise CommandError(f"unknown fingerprint: {what} is not in {store.fingerprints_path}")
    _out(f"forgotten: {what}")
    return EXIT_OK


# -- import ------------------------------------------------------------------


@dataclass
class _Summary:
    key: str = "no key"
    added: int = 0
    raised: int = 0

    def text(self) -> str:
        parts = [self.key, _count(self.added, "fingerprint") + " added"]
        if self.raised:
            parts.append(_count(self.raised, "trust") + " raised")
        return ", ".join(parts)


def _same_directory(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _merge_fingerprint(target: LibotrStore, record: FingerprintRecord, summary: _Summary) -> None:
    """Add a fingerprint; never lower a trust, raise an empty one."""
    known = target.get_fingerprint(
        record.account, record.protocol, record.username, record.fingerprint
    )
    if known is None:
        target.add_fingerprint(
            record.account, record.protocol, record.username, record.fingerprint, record.trust
        )
        summary.added += 1
    elif not known.trusted and record.trusted:
        target.set_trust(
            record.account, record.protocol, record.username, record.fingerprint, record.trust
        )
        summary.raised += 1


@dataclass
class _ImportPlan:
    """Everything parsed and checked before the first write."""

    libotr_keys: dict[AccountId, DSAPrivateKey] = field(default_factory=dict)
    libotr_records: list[FingerprintRecord] = field(default_factory=list)
    potr_accounts: list[AccountId] = field(default_factory=list)
    conflicts: list[AccountId] = field(default_factory=list)


def _check_key(
    target: LibotrStore, ident: AccountId, key: DSAPrivateKey, plan: _ImportPlan
) -> None:
    existing = target.get_private_key(ident.account, ident.protocol)
    if existing is not None and existing != key and ident not in plan.conflicts:
        plan.conflicts.append(ident)


def _plan_libotr(
    source_dir: Path, target: LibotrStore, args: argparse.Namespace, plan: _ImportPlan
) -> None:
    source = LibotrStore(source_dir)
    for ident in source.list_key_accounts():  # parses the whole key file
        key = source.get_private_key(ident.account, ident.protocol)
        if key is not None and args.account in (None, ident.account):
            plan.libotr_keys[ident] = key
            _check_key(target, ident, key, plan)
    plan.libotr_records = [
        r for r in _all_fingerprints(source) if args.account in (None, r.account)
    ]


def _potr_protocol(source_dir: Path, account: str, args: argparse.Namespace) -> str:
    if args.protocol is not None:
        return str(args.protocol)
    if args.source_protocol is not None:
        return str(args.source_protocol)
    records = load_fpr(source_dir / (account + FPR_SUFFIX))
    protocols = {r.protocol for r in records if r.account == account}
    if len(protocols) == 1:
        return protocols.pop()
    raise CommandError(
        f"cannot tell the protocol of the python-potr account {_printable(account)!r}; "
        "give it with --protocol (e.g. --protocol prpl-irc to share the files with Pidgin)",
        EXIT_USAGE,
    )


def _plan_potr(
    source_dir: Path, target: LibotrStore, args: argparse.Namespace, plan: _ImportPlan
) -> None:
    for account in find_potr_accounts(source_dir):
        if args.account not in (None, account):
            continue
        ident = AccountId(account, _potr_protocol(source_dir, account, args))
        load_fpr(source_dir / (account + FPR_SUFFIX))  # must parse
        key_path = source_dir / (account + KEY3_SUFFIX)
        if key_path.exists():
            _check_key(target, ident, load_key3(key_path), plan)
        plan.potr_accounts.append(ident)


def _run_import(
    source_dir: Path, target: LibotrStore, args: argparse.Namespace, plan: _ImportPlan
) -> dict[AccountId, _Summary]:
    summaries: dict[AccountId, _Summary] = {}
    for ident, key in plan.libotr_keys.items():
        summary = summaries.setdefault(ident, _Summary())
        existing = target.get_private_key(ident.account, ident.protocol)
        if existing == key:
            summary.key = "key already present"
        else:
            target.save_private_key(ident.account, ident.protocol, key)
            summary.key = "key replaced" if existing is not None else "key imported"
    for record in plan.libotr_records:
        ident = AccountId(record.account, record.protocol)
        _merge_fingerprint(target, record, summaries.setdefault(ident, _Summary()))
    for ident in plan.potr_accounts:
        had_key = target.get_private_key(ident.account, ident.protocol) is not None
        result = import_potr_account(
            target,
            source_dir,
            ident.account,
            protocol=ident.protocol,
            source_protocol=args.source_protocol,
            replace_key=args.replace_keys,
        )
        summary = summaries.setdefault(ident, _Summary())
        if result.key_imported:
            summary.key = "key replaced" if had_key else "key imported"
        elif (source_dir / (ident.account + KEY3_SUFFIX)).exists():
            summary.key = "key already present"
        summary.added += result.fingerprints_added
        summary.raised += result.trust_raised
    return summaries


def _cmd_import(args: argparse.Namespace) -> int:
    source_dir = Path(os.path.expanduser(args.directory))
    if not source_dir.is_dir():
        raise CommandError(f"{source_dir}: no such directory")
    target = _open_store(args)
    if _same_directory(source_dir, target.directory):
        raise CommandError(f"{source_dir} is the store itself; nothing to import")
    has_libotr = any((source_dir / name).exists() for name in (PRIVATE_KEY_FILE, FINGERPRINTS_FILE))
    has_potr = bool(find_potr_accounts(source_dir))
    if not has_libotr and not has_potr:
        raise CommandError(
            f"{source_dir} has neither libotr files ({PRIVATE_KEY_FILE}, {FINGERPRINTS_FILE}) "
            f"nor python-potr files (*{KEY3_SUFFIX}, *{FPR_SUFFIX})"
        )
    # Parse every file involved — the target's too — before writing anything.
    target.list_key_accounts()
    _all_fingerprints(target)
    plan = _ImportPlan()
    if has_libotr:
        _plan_libotr(source_dir, target, args, plan)
    if has_potr:
        _plan_potr(source_dir, target, args, plan)
    if plan.conflicts and not args.replace_keys:
        names = ", ".join(_account_label(i.account, i.protocol) for i in plan.conflicts)
        raise CommandError(
            f"the store already has a different key for {names}; nothing was imported "
            "(use --replace-keys to replace it)"
        )
    if not (plan.libotr_keys or plan.libotr_records or plan.potr_accounts):
        what = f" for {_printable(args.account)}" if args.account is not None else ""
        raise CommandError(f"nothing to import{what} in {source_dir}")
    summaries = _run_import(source_dir, target, args, plan)
    for ident, summary in summaries.items():
        _out(f"{_account_label(ident.account, ident.protocol)}: {summary.text()}")
    _note(f"imported into {target.directory}")
    return EXIT_OK


# -- export ------------------------------------------------------------------


def _write_new_file(path: Path, data: bytes, *, replace: bool) -> None:
    """Write ``data`` to ``path`` (0600) via a temporary file; without
    ``replace``, fail if ``path`` exists (no clobbering, even in a race)."""
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        try:
            os.fchmod(fd, 0o600)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        if replace:
            os.replace(temp_name, path)
        else:
            os.link(temp_name, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)


def _cmd_export(args: argparse.Namespace) -> int:
    store = _open_store(args)
    destination = Path(os.path.expanduser(args.to))
    sources = (
        (store.private_key_path, PRIVATE_KEY_FILE, "key", parse_private_keys),
        (store.fingerprints_path, FINGERPRINTS_FILE, "fingerprint", parse_fingerprints),
        (store.instance_tags_path, INSTANCE_TAGS_FILE, "instance tag", parse_instance_tags),
    )
    files: list[tuple[str, bytes, str]] = []
    for path, name, noun, parse in sources:
        data = _read_bytes(path)
        if data is None:
            continue
        count = len(parse(data, path=str(path)))  # never export a malformed file
        files.append((name, data, f"{name} ({_count(count, noun)})"))
    if not files:
        raise CommandError(f"nothing to export: {store.directory} has no libotr files")
    if destination.exists() and not destination.is_dir():
        raise CommandError(f"{destination}: not a directory")
    if _same_directory(destination, store.directory):
        raise CommandError(f"{destination} is the store itself")
    existing = [name for name, _, _ in files if os.path.lexists(destination / name)]
    if existing and not args.force:
        raise CommandError(
            f"refusing to overwrite {', '.join(existing)} in {destination} (use --force)"
        )
    try:
        destination.mkdir(mode=0o700, parents=True, exist_ok=True)
        for name, data, _ in files:
            _write_new_file(destination / name, data, replace=args.force)
    except FileExistsError as exc:
        raise CommandError(
            f"refusing to overwrite {exc.filename or destination} (use --force)"
        ) from None
    except OSError as exc:
        raise CommandError(f"{exc.filename or destination}: cannot write: {exc.strerror}") from None
    for _, _, description in files:
        _out(f"exported {description}")
    _note(f"to {destination}")
    return EXIT_OK


# ---------------------------------------------------------------------------
# Registration and error handling


def _run(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Turn every expected failure into a message on stderr and an exit code."""

    def wrapper(args: argparse.Namespace) -> int:
        prog = f"offrecord {args.command_name}"
        try:
            return func(args)
        except CommandError as exc:
            _note(f"{prog}: {exc}")
            return exc.code
        except StorageError as exc:
            _note(f"{prog}: {exc}")
            if exc.line is not None:
                _note(f"{prog}: the file was left unchanged; fix or move it, then try again")
            return EXIT_FAILURE
        except LocalProtocolError as exc:
            _note(f"{prog}: {exc}")
            return EXIT_USAGE
        except KeyboardInterrupt:
            _note(f"{prog}: interrupted; nothing more was written")
            return EXIT_INTERRUPTED

    return wrapper


def _common() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--store",
        metavar="DIR",
        default=None,
        help=f"the store directory (default: ${ENV_STORE}, else {default_store_directory()})",
    )
    return parent


def _add_fingerprint_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("account", metavar="ACCOUNT", help="your account, e.g. alice@example.org")
    parser.add_argument("protocol", metavar="PROTOCOL", help="its protocol, e.g. prpl-jabber")
    parser.add_argument("buddy", metavar="BUDDY", help="the buddy's user name")
    parser.add_argument(
        "fingerprint",
        metavar="FINGERPRINT",
        nargs="+",
        help="40 hex digits, any case, with or without spaces",
    )


def _command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    func: Callable[[argparse.Namespace], int],
    *,
    help: str,
    description: str,
    parents: Sequence[argparse.ArgumentParser],
    command_name: str | None = None,
) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=help, description=description, parents=list(parents))
    parser.set_defaults(func=_run(func), command_name=command_name or name)
    return parser


def register_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the key and trust commands to the ``offrecord`` parser's subcommands."""
    common = [_common()]

    keys = sub.add_parser(
        "keys",
        help="generate and list your private keys",
        description="Your long-term DSA keys, one per account and protocol.",
    )
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="SUBCOMMAND")
    generate = _command(
        keys_sub,
        "generate",
        _cmd_keys_generate,
        help="generate a key for an account",
        description="Generate a DSA-1024 key for ACCOUNT on PROTOCOL and save it in the store. "
        "Prints the new fingerprint.",
        parents=common,
        command_name="keys generate",
    )
    generate.add_argument("account", metavar="ACCOUNT", help="e.g. alice@example.org")
    generate.add_argument(
        "protocol", metavar="PROTOCOL", help="e.g. prpl-jabber (Pidgin's names), xmpp, irc"
    )
    generate.add_argument(
        "--force", action="store_true", help="replace an existing key for the account"
    )
    _command(
        keys_sub,
        "list",
        _cmd_keys_list,
        help="list accounts and their fingerprints",
        description="List every account that has a private key, with its fingerprint.",
        parents=common,
        command_name="keys list",
    )

    fingerprints = _command(
        sub,
        "fingerprints",
        _cmd_fingerprints,
        help="list known buddies' fingerprints and trust",
        description="List the buddies' fingerprints the store knows, with their trust: "
        "'verified' (checked by hand), 'smp' (by the Socialist Millionaires' Protocol) "
        "or 'unverified'.",
        parents=common,
    )
    fingerprints.add_argument("--account", default=None, help="only this local account")
    fingerprints.add_argument("--protocol", default=None, help="only this protocol")
    fingerprints.add_argument("--buddy", default=None, help="only this buddy")

    trust = _command(
        sub,
        "trust",
        _cmd_trust,
        help="mark a buddy's fingerprint as verified",
        description="Mark FINGERPRINT of BUDDY as verified for your ACCOUNT on PROTOCOL "
        "(as Pidgin's 'I have verified'). An unknown fingerprint is added.",
        parents=common,
    )
    _add_fingerprint_arguments(trust)
    distrust = _command(
        sub,
        "distrust",
        _cmd_distrust,
        help="mark a buddy's fingerprint as not verified",
        description="Remove the trust of a known fingerprint (it stays known).",
        parents=common,
    )
    _add_fingerprint_arguments(distrust)
    forget = _command(
        sub,
        "forget",
        _cmd_forget,
        help="forget a buddy's fingerprint",
        description="Remove a fingerprint from the store altogether.",
        parents=common,
    )
    _add_fingerprint_arguments(forget)

    import_ = _command(
        sub,
        "import",
        _cmd_import,
        help="import keys and fingerprints (Pidgin ~/.purple, python-potr)",
        description="Import keys and fingerprints from DIR: libotr's files (a Pidgin "
        "~/.purple, irssi, Finch) and/or python-potr files (<account>.key3, "
        "<account>.fpr from weechat-otr, poezio, Gajim). New fingerprints are added "
        "with their trust; a known fingerprint's trust is never lowered. Instance tags "
        "are not imported. Nothing is written if a file does not parse or a different "
        "key is already stored (unless --replace-keys).",
        parents=common,
    )
    import_.add_argument("directory", metavar="DIR", help="the directory to import from")
    import_.add_argument("--account", default=None, help="import only this account")
    import_.add_argument(
        "--protocol",
        default=None,
        help="python-potr files: the protocol to store their accounts under "
        "(default: the one in the .fpr file)",
    )
    import_.add_argument(
        "--source-protocol",
        default=None,
        help="python-potr files: only the .fpr lines of this protocol (e.g. irc, xmpp)",
    )
    import_.add_argument(
        "--replace-keys",
        action="store_true",
        help="replace keys that differ from the imported ones",
    )

    export = _command(
        sub,
        "export",
        _cmd_export,
        help="copy the store's libotr files to a directory",
        description="Write the store's otr.private_key, otr.fingerprints and "
        "otr.instance_tags into DIR (created if needed, files 0600), as a copy Pidgin "
        "or any libotr client can use. Each file is checked before it is copied.",
        parents=common,
    )
    export.add_argument("--to", required=True, metavar="DIR", help="the target directory")
    export.add_argument("--force", action="store_true", help="overwrite existing files")
