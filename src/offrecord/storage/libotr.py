"""libotr's three files, as libotr 4.1.1 (and so Pidgin, Finch, irssi-otr...) keeps them.

``otr.private_key`` — an S-expression (see :mod:`offrecord.storage.sexp`),
written by libotr as::

    (privkeys
     (account
    (name "alice@example.org")
    (protocol prpl-jabber)
    (private-key
     (dsa
      (p #00FC...#)
      (q #00E8...#)
      (g #3F4A...#)
      (y #1B2C...#)
      (x #0AD1...#)
      )
     )
     )
    )

with a trailing space after ``private-key`` and ``dsa``: ``(privkeys`` and
``" (account"`` are printed by libotr itself, each ``(name ..)``,
``(protocol ..)`` and ``(private-key ..)`` by ``gcry_sexp_sprint``.  Each
MPI holds libgcrypt's two's-complement form (a leading ``00`` byte when the
top bit is set), and the printer picks a token, a quoted string or ``#hex#``
for every atom — so a name like ``alice@example.org`` is quoted, ``bob``
and ``prpl-jabber`` are bare, and an ``x`` whose bytes happen to be
printable is written as a quoted string.  libotr finds ``name``,
``protocol``, ``private-key``, then ``dsa`` and ``p q g y`` with
``gcry_sexp_find_token`` (the first matching list in document order); we do
the same, also for ``x``.

``otr.fingerprints`` — one line per fingerprint::

    username<TAB>accountname<TAB>protocol<TAB>40 lowercase hex<TAB>trust<LF>

The trust field is empty, ``verified``, ``smp`` or any other string, and may
itself contain tabs.  libotr also reads lines without the last tab (trust
unset) and ends a field at CR, so CRLF files work.

``otr.instance_tags`` — a comment line (:data:`INSTANCE_TAGS_HEADER`,
``# WARNING! You shouldn't copy this file to another computer. ...``), then
one line per account::

    accountname<TAB>protocol<TAB>8 lowercase hex<LF>

How we differ from libotr:

* libotr silently skips lines it cannot use (missing fields, a fingerprint
  that is not 40 characters, an instance tag below 0x100) and reads a
  non-hex digit as 0.  We refuse the whole file with a
  :class:`~offrecord.errors.StorageError` naming the file and the line, and
  never write over it: every save re-reads the file under its lock, so a
  file that does not parse cannot be replaced.
* A last line without its line feed is refused as truncated (libotr ignores
  it).  An empty file (or, for the key file, whitespace only) is empty.
* libotr reverses the order of the instance-tag and fingerprint lists each
  time it loads and saves them.  We keep the file's order, so loading and
  saving a libotr-written file without changes gives the same bytes.  New
  fingerprints go where libotr would put them: contexts sorted by
  username, account, protocol (as bytes), the newest fingerprint first.
* Duplicates mean what they mean to libotr: for keys and instance tags the
  last entry of an account wins; duplicate fingerprint lines are merged,
  the last trust winning.  Saving a key or a tag replaces every entry of
  that account.

:class:`LibotrStore` adds the guarantees libotr lacks: writes go to a
temporary file in the same directory which is fsynced, renamed over the
target, and the directory fsynced; files are created 0600; a sidecar
``<file>.lock`` (``fcntl.flock``) serialises writers, which re-read the file
under the lock before changing it.  libotr itself does not lock, so a
running Pidgin writing the same file at the same moment is not excluded.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Generic, TypeVar

from offrecord.crypto.dsa import DSAPrivateKey
from offrecord.errors import LocalProtocolError, StorageError
from offrecord.storage import sexp
from offrecord.storage.base import (
    FINGERPRINT_LENGTH,
    MIN_INSTANCE_TAG,
    TRUST_NONE,
    AccountId,
    FingerprintRecord,
    InstanceTagRecord,
    check_fingerprint,
    check_instance_tag,
    check_name,
    check_trust,
    decode_name,
    encode_name,
    private_key_problem,
    select_fingerprints,
)
from offrecord.storage.sexp import Atom, SList

__all__ = [
    "FINGERPRINTS_FILE",
    "INSTANCE_TAGS_FILE",
    "INSTANCE_TAGS_HEADER",
    "MAX_FILE_SIZE",
    "MAX_LINE_LENGTH",
    "PRIVATE_KEY_FILE",
    "LibotrStore",
    "PrivateKeyEntry",
    "format_fingerprints",
    "format_instance_tags",
    "format_private_keys",
    "parse_fingerprints",
    "parse_instance_tags",
    "parse_private_keys",
    "private_key_sexp",
]

PRIVATE_KEY_FILE: Final = "otr.private_key"
FINGERPRINTS_FILE: Final = "otr.fingerprints"
INSTANCE_TAGS_FILE: Final = "otr.instance_tags"

INSTANCE_TAGS_HEADER: Final = (
    b"# WARNING! You shouldn't copy this file to another computer. "
    b"It is unnecessary and can cause problems.\n"
)

MAX_FILE_SIZE: Final = 16 * 1024 * 1024
"""Files larger than this are refused."""

MAX_LINE_LENGTH: Final = 999
"""libotr reads lines into a 1000-byte buffer: longer lines fall apart."""

_FILE_MODE: Final = 0o600
_DIR_MODE: Final = 0o700
_LOCK_POLL_SECONDS: Final = 0.01


# ---------------------------------------------------------------------------
# otr.private_key


@dataclass(frozen=True, slots=True)
class PrivateKeyEntry:
    """One ``(account ...)`` of the key file.

    ``source`` is the ``(private-key ...)`` expression the key was read from;
    :func:`format_private_keys` writes it back unchanged as long as it still
    describes ``key``, so that whatever libotr wrote survives a rewrite.
    """

    account: str
    protocol: str
    key: DSAPrivateKey
    source: SList | None = field(default=None, repr=False, compare=False)


def _mpi_std(value: int) -> bytes:
    """libgcrypt's GCRYMPI_FMT_STD for a non-negative integer: minimal big-endian
    two's complement, so a leading 00 when the top bit is set."""
    if value < 0:
        raise ValueError("negative MPI")
    if value == 0:
        return b""
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return b"\x00" + raw if raw[0] & 0x80 else raw


def private_key_sexp(key: DSAPrivateKey) -> SList:
    """``(private-key (dsa (p ..) (q ..) (g ..) (y ..) (x ..)))`` as libgcrypt builds it."""
    params = tuple(
        SList.of(name, _mpi_std(value))
        for name, value in (("p", key.p), ("q", key.q), ("g", key.g), ("y", key.y), ("x", key.x))
    )
    return SList.of("private-key", SList((Atom(b"dsa"), *params)))


def _second_atom(node: SList) -> Atom | None:
    if len(node) >= 2 and isinstance(node[1], Atom):
        return node[1]
    return None


def _key_from_sexp(node: SList, path: str) -> DSAPrivateKey:
    dsa = sexp.find_token(node, b"dsa")
    if dsa is None:
        raise StorageError("the private key is not a (dsa ...) key", path=path, line=node.line)
    values: dict[str, int] = {}
    for name in ("p", "q", "g", "y", "x"):
        param = sexp.find_token(dsa, name.encode("ascii"))
        if param is None:
            raise StorageError(f"the DSA key has no ({name} ...)", path=path, line=dsa.line)
        atom = _second_atom(param)
        if atom is None:
            raise StorageError(
                f"the DSA parameter {name} is not a number", path=path, line=param.line
            )
        values[name] = int.from_bytes(atom.data, "big")  # read unsigned, as libotr does
    return DSAPrivateKey(values["p"], values["q"], values["g"], values["y"], values["x"])


def _source_matches(source: SList, key: DSAPrivateKey) -> bool:
    try:
        return _key_from_sexp(source, "") == key
    except StorageError:
        return False


def parse_private_keys(data: bytes, *, path: str = PRIVATE_KEY_FILE) -> tuple[PrivateKeyEntry, ...]:
    """Read an ``otr.private_key`` file.  All or nothing: a problem anywhere
    raises :class:`~offrecord.errors.StorageError` with the line."""
    if not data.strip(b" \t\v\f\r\n"):
        return ()
    root = sexp.parse(data, path=path)
    if root.head != b"privkeys":
        raise StorageError("expected (privkeys ...)", path=path, line=root.line)
    entries: list[PrivateKeyEntry] = []
    for item in root.items[1:]:
        if not isinstance(item, SList) or item.head != b"account":
            line = item.line
            raise StorageError("expected (account ...) inside (privkeys ...)", path=path, line=line)
        texts: dict[str, str] = {}
        for field_name in ("name", "protocol"):
            node = sexp.find_token(item, field_name.encode("ascii"))
            if node is None:
                raise StorageError(f"account has no ({field_name} ...)", path=path, line=item.line)
            atom = _second_atom(node)
            if atom is None:
                raise StorageError(f"({field_name} ...) has no value", path=path, line=node.line)
            texts[field_name] = decode_name(atom.data)
        source = sexp.find_token(item, b"private-key")
        if source is None:
            raise StorageError("account has no (private-key ...)", path=path, line=item.line)
        key = _key_from_sexp(source, path)
        problem = private_key_problem(key)
        if problem is not None:
            raise StorageError(problem, path=path, line=source.line)
        entries.append(PrivateKeyEntry(texts["name"], texts["protocol"], key, source))
    return tuple(entries)


def format_private_keys(entries: Iterable[PrivateKeyEntry]) -> bytes:
    """Write an ``otr.private_key`` file exactly as libotr does."""
    out = bytearray(b"(privkeys\n")
    for entry in entries:
        source = entry.source
        if source is None or not _source_matches(source, entry.key):
            source = private_key_sexp(entry.key)
        out += b" (account\n"
        out += sexp.dumps(SList.of(b"name", encode_name(entry.account)))
        out += sexp.dumps(SList.of(b"protocol", encode_name(entry.protocol)))
        out += sexp.dumps(source)
        out += b" )\n"
    out += b")\n"
    return bytes(out)


# ---------------------------------------------------------------------------
# Line-based files


def _split_lines(data: bytes, path: str) -> Iterator[tuple[int, bytes]]:
    """(line number, content without LF or a final CR); refuses a missing
    final LF, long lines and NUL bytes."""
    pieces = data.split(b"\n")
    for number, piece in enumerate(pieces, 1):
        if number == len(pieces):
            if piece:
                raise StorageError(
                    "the last line has no line feed (truncated file?)", path=path, line=number
                )
            return
        if len(piece) + 1 > MAX_LINE_LENGTH:
            raise StorageError(
                f"line longer than {MAX_LINE_LENGTH} bytes (libotr cannot read it)",
                path=path,
                line=number,
            )
        if b"\x00" in piece:
            raise StorageError("NUL byte in a line (binary data?)", path=path, line=number)
        if piece.endswith(b"\r"):
            piece = piece[:-1]
        if b"\r" in piece:
            raise StorageError("carriage return inside a line", path=path, line=number)
        yield number, piece


_HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")


def _parse_hex(text: bytes, digits: int, what: str, path: str, line: int) -> bytes:
    if len(text) != digits:
        raise StorageError(
            f"{what} must be {digits} hex digits, not {len(text)} characters",
            path=path,
            line=line,
        )
    # Checked digit by digit: bytes.fromhex() would skip spaces, and a short
    # value would then be read (and later written back unreadable).
    if not _HEX_DIGITS.issuperset(text):
        raise StorageError(f"{what} is not hexadecimal", path=path, line=line)
    return bytes.fromhex(text.decode("ascii"))


def parse_fingerprints(
    data: bytes, *, path: str = FINGERPRINTS_FILE
) -> tuple[FingerprintRecord, ...]:
    """Read an ``otr.fingerprints`` file (all or nothing; blank lines are skipped)."""
    records: list[FingerprintRecord] = []
    index: dict[tuple[str, str, str, bytes], int] = {}
    for number, line in _split_lines(data, path):
        if not line:
            continue
        fields = line.split(b"\t", 4)
        if len(fields) < 4:
            raise StorageError(
                "expected username, account, protocol, fingerprint and trust separated by tabs",
                path=path,
                line=number,
            )
        username, account, protocol, hex_digits = fields[:4]
        trust = fields[4] if len(fields) == 5 else b""
        fingerprint = _parse_hex(hex_digits, 2 * FINGERPRINT_LENGTH, "fingerprint", path, number)
        record = FingerprintRecord(
            decode_name(username),
            decode_name(account),
            decode_name(protocol),
            fingerprint,
            decode_name(trust),
        )
        key = (record.username, record.account, record.protocol, fingerprint)
        if key in index:  # libotr keeps one entry; the later line sets the trust
            records[index[key]] = record
        else:
            index[key] = len(records)
            records.append(record)
    return tuple(records)


def format_fingerprints(records: Iterable[FingerprintRecord]) -> bytes:
    """Write an ``otr.fingerprints`` file exactly as libotr does."""
    out = bytearray()
    for record in records:
        out += b"\t".join(
            (
                encode_name(record.username),
                encode_name(record.account),
                encode_name(record.protocol),
                record.fingerprint.hex().encode("ascii"),
                encode_name(record.trust),
            )
        )
        out += b"\n"
    return bytes(out)


def parse_instance_tags(
    data: bytes, *, path: str = INSTANCE_TAGS_FILE
) -> tuple[InstanceTagRecord, ...]:
    """Read an ``otr.instance_tags`` file (all or nothing).  Blank lines and
    ``#`` lines without a tab are comments."""
    records: list[InstanceTagRecord] = []
    for number, line in _split_lines(data, path):
        if b"\t" not in line:
            if not line or line.startswith(b"#"):
                continue
            raise StorageError(
                "expected account, protocol and instance tag separated by tabs",
                path=path,
                line=number,
            )
        fields = line.split(b"\t", 2)
        if len(fields) < 3:
            raise StorageError(
                "expected account, protocol and instance tag separated by tabs",
                path=path,
                line=number,
            )
        account, protocol, hex_digits = fields
        tag = int.from_bytes(_parse_hex(hex_digits, 8, "instance tag", path, number), "big")
        if tag < MIN_INSTANCE_TAG:
            raise StorageError(
                f"instance tag below the minimum 0x{MIN_INSTANCE_TAG:x}", path=path, line=number
            )
        records.append(InstanceTagRecord(decode_name(account), decode_name(protocol), tag))
    return tuple(records)


def format_instance_tags(records: Iterable[InstanceTagRecord]) -> bytes:
    """Write an ``otr.instance_tags`` file exactly as libotr does."""
    out = bytearray(INSTANCE_TAGS_HEADER)
    for record in records:
        out += encode_name(record.account) + b"\t" + encode_name(record.protocol)
        out += b"\t%08x\n" % record.tag
    return bytes(out)


# ---------------------------------------------------------------------------
# Files on disk: reading, atomic writing, locking


def _read_file(path: Path, display: str) -> bytes | None:
    """The file's bytes, or ``None`` if it does not exist."""
    try:
        # O_NONBLOCK: opening a FIFO planted at the path must not hang us.
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StorageError(f"cannot open: {exc.strerror}", path=display) from None
    try:
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise StorageError("not a regular file", path=display)
            data = handle.read(MAX_FILE_SIZE + 1)
    except OSError as exc:
        raise StorageError(f"cannot read: {exc.strerror}", path=display) from None
    if len(data) > MAX_FILE_SIZE:
        raise StorageError(f"file is larger than {MAX_FILE_SIZE} bytes", path=display)
    return data


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_write(path: Path, data: bytes, display: str) -> None:
    """Temporary file (0600) in the same directory, fsync, rename, fsync the directory."""
    directory = path.parent
    try:
        fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise StorageError(
            f"cannot create a temporary file: {exc.strerror}", path=display
        ) from None
    try:
        try:
            os.fchmod(fd, _FILE_MODE)
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp_name, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        if isinstance(exc, OSError):
            raise StorageError(f"cannot write: {exc.strerror}", path=display) from None
        raise
    try:
        _fsync_directory(directory)
    except OSError as exc:
        raise StorageError(
            f"written, but syncing the directory failed: {exc.strerror}", path=display
        ) from None


@contextlib.contextmanager
def _exclusive_lock(lock_path: Path, timeout: float) -> Iterator[None]:
    """``flock`` on a sidecar file.  The data file itself is replaced on every
    write, so it cannot carry the lock."""
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, _FILE_MODE)
    except OSError as exc:
        raise StorageError(
            f"cannot open the lock file: {exc.strerror}", path=str(lock_path)
        ) from None
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise StorageError(
                        f"another process has held the lock for over {timeout:g} s",
                        path=str(lock_path),
                    ) from None
                time.sleep(_LOCK_POLL_SECONDS)
            except OSError as exc:
                raise StorageError(f"cannot lock: {exc.strerror}", path=str(lock_path)) from None
        yield
    finally:
        os.close(fd)  # releases the lock


_Record = TypeVar("_Record")


class _StoredFile(Generic[_Record]):
    """One file: cached reads, locked read-modify-write updates."""

    def __init__(
        self,
        path: Path,
        parse: Callable[[bytes, str], tuple[_Record, ...]],
        render: Callable[[Sequence[_Record]], bytes],
        lock_timeout: float,
    ) -> None:
        self.path = path
        self._parse = parse
        self._render = render
        self._lock_timeout = lock_timeout
        self._cache: tuple[bytes, tuple[_Record, ...]] | None = None
        self._mutex = threading.Lock()

    def _load_from(self, target: Path) -> tuple[_Record, ...]:
        display = str(self.path)
        data = _read_file(target, display)
        if data is None:
            return ()
        with self._mutex:
            cached = self._cache
        if cached is not None and cached[0] == data:
            return cached[1]
        records = self._parse(data, display)  # raises before anything is kept
        with self._mutex:
            self._cache = (data, records)
        return records

    def load(self) -> tuple[_Record, ...]:
        return self._load_from(self.path)

    def update(
        self, change: Callable[[tuple[_Record, ...]], tuple[_Record, ...] | None]
    ) -> tuple[_Record, ...]:
        """Under the lock: re-read, apply ``change`` (``None`` = nothing to do),
        write atomically.  A file that does not parse is never written."""
        target = Path(os.path.realpath(self.path))
        try:
            target.parent.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(
                f"cannot create the directory: {exc.strerror}", path=str(self.path)
            ) from None
        lock_path = target.with_name(target.name + ".lock")
        with _exclusive_lock(lock_path, self._lock_timeout):
            current = self._load_from(target)
            changed = change(current)
            if changed is None:
                return current
            data = self._render(changed)
            _atomic_write(target, data, str(self.path))
            with self._mutex:
                self._cache = (data, changed)
            return changed


def _parse_keys(data: bytes, display: str) -> tuple[PrivateKeyEntry, ...]:
    return parse_private_keys(data, path=display)


def _parse_fingerprints(data: bytes, display: str) -> tuple[FingerprintRecord, ...]:
    return parse_fingerprints(data, path=display)


def _parse_tags(data: bytes, display: str) -> tuple[InstanceTagRecord, ...]:
    return parse_instance_tags(data, path=display)


def _replace_account_entries(
    entries: tuple[_Record, ...],
    matches: Callable[[_Record], bool],
    new: _Record,
) -> tuple[_Record, ...]:
    """Drop every entry of the account; put ``new`` where the first one was
    (at the end if there was none)."""
    positions = [i for i, entry in enumerate(entries) if matches(entry)]
    kept = [entry for entry in entries if not matches(entry)]
    kept.insert(positions[0] if positions else len(kept), new)
    return tuple(kept)


def _context_key(record: FingerprintRecord) -> tuple[bytes, bytes, bytes]:
    return (
        encode_name(record.username),
        encode_name(record.account),
        encode_name(record.protocol),
    )


def _insert_like_libotr(
    records: tuple[FingerprintRecord, ...], new: FingerprintRecord
) -> tuple[FingerprintRecord, ...]:
    """libotr keeps contexts sorted by (username, account, protocol) and puts
    a new fingerprint at the front of its context."""
    key = _context_key(new)
    position = len(records)
    for i, record in enumerate(records):
        if _context_key(record) >= key:
            position = i
            break
    return (*records[:position], new, *records[position:])


class LibotrStore:
    """A :class:`~offrecord.storage.base.Store` over libotr's three files.

    ``LibotrStore("~/.purple")`` uses Pidgin's files there; the names can be
    changed.  Files that do not exist read as empty and are created (0600,
    directory 0700) on the first save.  Reads are cached by content; every
    change re-reads its file under an exclusive lock and replaces it
    atomically.  A symlinked file is written through to its target.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        private_key_file: str = PRIVATE_KEY_FILE,
        fingerprints_file: str = FINGERPRINTS_FILE,
        instance_tags_file: str = INSTANCE_TAGS_FILE,
        lock_timeout: float = 30.0,
    ) -> None:
        base = Path(os.path.expanduser(os.fspath(directory)))
        self.directory = base
        self._keys: _StoredFile[PrivateKeyEntry] = _StoredFile(
            base / private_key_file, _parse_keys, format_private_keys, lock_timeout
        )
        self._fingerprints: _StoredFile[FingerprintRecord] = _StoredFile(
            base / fingerprints_file, _parse_fingerprints, format_fingerprints, lock_timeout
        )
        self._tags: _StoredFile[InstanceTagRecord] = _StoredFile(
            base / instance_tags_file, _parse_tags, format_instance_tags, lock_timeout
        )

    def __repr__(self) -> str:
        return f"LibotrStore({str(self.directory)!r})"

    @property
    def private_key_path(self) -> Path:
        return self._keys.path

    @property
    def fingerprints_path(self) -> Path:
        return self._fingerprints.path

    @property
    def instance_tags_path(self) -> Path:
        return self._tags.path

    # Private keys

    def get_private_key(self, account: str, protocol: str) -> DSAPrivateKey | None:
        check_name(account, "account")
        check_name(protocol, "protocol")
        found: DSAPrivateKey | None = None
        for entry in self._keys.load():
            if entry.account == account and entry.protocol == protocol:
                found = entry.key  # the last one wins, as in libotr
        return found

    def save_private_key(self, account: str, protocol: str, key: DSAPrivateKey) -> None:
        check_name(account, "account")
        check_name(protocol, "protocol")
        if not isinstance(key, DSAPrivateKey):
            raise TypeError("key must be a DSAPrivateKey")
        problem = private_key_problem(key)
        if problem is not None:
            raise LocalProtocolError(f"refusing to save an invalid key: {problem}")

        def change(entries: tuple[PrivateKeyEntry, ...]) -> tuple[PrivateKeyEntry, ...]:
            source = None
            for entry in entries:
                if entry.account == account and entry.protocol == protocol:
                    source = entry.source if entry.key == key else None
            new = PrivateKeyEntry(account, protocol, key, source)
            return _replace_account_entries(
                entries, lambda e: e.account == account and e.protocol == protocol, new
            )

        self._keys.update(change)

    def list_key_accounts(self) -> tuple[AccountId, ...]:
        seen: dict[AccountId, None] = {}
        for entry in self._keys.load():
            seen[AccountId(entry.account, entry.protocol)] = None
        return tuple(seen)

    # Instance tags

    def get_instance_tag(self, account: str, protocol: str) -> int | None:
        check_name(account, "account")
        check_name(protocol, "protocol")
        found: int | None = None
        for record in self._tags.load():
            if record.account == account and record.protocol == protocol:
                found = record.tag
        return found

    def save_instance_tag(self, account: str, protocol: str, tag: int) -> None:
        check_name(account, "account")
        check_name(protocol, "protocol")
        check_instance_tag(tag)
        new = InstanceTagRecord(account, protocol, tag)
        _check_line_length(format_instance_tags((new,))[len(INSTANCE_TAGS_HEADER) :])
        self._tags.update(
            lambda records: _replace_account_entries(
                records, lambda r: r.account == account and r.protocol == protocol, new
            )
        )

    # Fingerprints

    def list_fingerprints(
        self, account: str, protocol: str, username: str | None = None
    ) -> tuple[FingerprintRecord, ...]:
        return select_fingerprints(self._fingerprints.load(), account, protocol, username)

    def get_fingerprint(
        self, account: str, protocol: str, username: str, fingerprint: bytes
    ) -> FingerprintRecord | None:
        probe = _fingerprint_probe(account, protocol, username, fingerprint)
        return _find(self._fingerprints.load(), probe)

    def add_fingerprint(
        self,
        account: str,
        protocol: str,
        username: str,
        fingerprint: bytes,
        trust: str = TRUST_NONE,
    ) -> FingerprintRecord:
        probe = _fingerprint_probe(account, protocol, username, fingerprint, trust)
        result: list[FingerprintRecord] = []

        def change(records: tuple[FingerprintRecord, ...]) -> tuple[FingerprintRecord, ...] | None:
            existing = _find(records, probe)
            if existing is not None:
                result.append(existing)
                return None
            result.append(probe)
            return _insert_like_libotr(records, probe)

        self._fingerprints.update(change)
        return result[0]

    def set_trust(
        self, account: str, protocol: str, username: str, fingerprint: bytes, trust: str
    ) -> FingerprintRecord:
        probe = _fingerprint_probe(account, protocol, username, fingerprint, trust)

        def change(records: tuple[FingerprintRecord, ...]) -> tuple[FingerprintRecord, ...] | None:
            existing = _find(records, probe)
            if existing is None:
                return _insert_like_libotr(records, probe)
            if existing.trust == probe.trust:
                return None
            return tuple(probe if _same(r, probe) else r for r in records)

        self._fingerprints.update(change)
        return probe

    def forget_fingerprint(
        self, account: str, protocol: str, username: str, fingerprint: bytes
    ) -> bool:
        probe = _fingerprint_probe(account, protocol, username, fingerprint)
        removed: list[bool] = []

        def change(records: tuple[FingerprintRecord, ...]) -> tuple[FingerprintRecord, ...] | None:
            kept = tuple(r for r in records if not _same(r, probe))
            removed.append(len(kept) != len(records))
            return kept if removed[0] else None

        self._fingerprints.update(change)
        return removed[0]


def _check_line_length(line: bytes) -> None:
    if len(line) > MAX_LINE_LENGTH:
        raise LocalProtocolError(
            f"names too long: libotr cannot read lines longer than {MAX_LINE_LENGTH} bytes"
        )


def _fingerprint_probe(
    account: str, protocol: str, username: str, fingerprint: bytes, trust: str = TRUST_NONE
) -> FingerprintRecord:
    record = FingerprintRecord(
        check_name(username, "username"),
        check_name(account, "account"),
        check_name(protocol, "protocol"),
        check_fingerprint(fingerprint),
        check_trust(trust),
    )
    _check_line_length(format_fingerprints((record,)))
    return record


def _same(a: FingerprintRecord, b: FingerprintRecord) -> bool:
    return (
        a.fingerprint == b.fingerprint
        and a.username == b.username
        and a.account == b.account
        and a.protocol == b.protocol
    )


def _find(
    records: Iterable[FingerprintRecord], probe: FingerprintRecord
) -> FingerprintRecord | None:
    for record in records:
        if _same(record, probe):
            return record
    return None
