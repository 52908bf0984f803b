"""Import keys and fingerprints from python-potr based clients.

weechat-otr, poezio and Gajim's old OTR plugin use python-potr and keep, per
local account, two files in one directory (weechat: ``<weechat dir>/otr``,
poezio: ``$XDG_DATA_HOME/poezio/otr``):

``<account>.key3``
    potr's ``serializePrivateKey()``: the 2-byte key type ``00 00`` (DSA)
    followed by five OTR MPIs — p, q, g, y, x — each a 4-byte big-endian
    length and that many big-endian bytes.  potr ignores anything after the
    fifth MPI; we refuse it as a sign of a damaged file.

``<account>.fpr``
    One line per fingerprint, like libotr's ``otr.fingerprints`` but with
    exactly five fields::

        peer<TAB>account<TAB>protocol<TAB>40 hex digits<TAB>trust<LF>

    The protocol is the client's own name for it (``irc``, ``xmpp``), the
    trust ``""``, ``verified`` or ``smp``.  potr's loaders only keep the lines
    whose account and protocol are their own.

Nothing here writes potr files.  :func:`import_potr_account` parses both
files completely before touching the target store, never replaces an
existing different key unless asked, and never lowers a trust.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from offrecord.crypto.dsa import DSAPrivateKey
from offrecord.errors import LocalProtocolError, StorageError
from offrecord.storage.base import (
    FINGERPRINT_LENGTH,
    TRUST_NONE,
    FingerprintRecord,
    Store,
    check_name,
    decode_name,
    private_key_problem,
)

__all__ = [
    "FPR_SUFFIX",
    "KEY3_SUFFIX",
    "PotrImport",
    "find_potr_accounts",
    "import_potr_account",
    "load_fpr",
    "load_key3",
    "parse_fpr",
    "parse_key3",
]

KEY3_SUFFIX: Final = ".key3"
FPR_SUFFIX: Final = ".fpr"

_MAX_FILE_SIZE: Final = 16 * 1024 * 1024
_MAX_MPI_BYTES: Final = 1024
_DSA_KEY_TYPE: Final = b"\x00\x00"
_HEX_DIGITS: Final = frozenset(b"0123456789abcdefABCDEF")


# ---------------------------------------------------------------------------
# Parsers


def parse_key3(data: bytes, *, path: str = "<key3>") -> DSAPrivateKey:
    """A potr ``.key3`` file's key; :class:`~offrecord.errors.StorageError` if malformed."""
    if len(data) < 2:
        raise StorageError("too short for a potr key (truncated file?)", path=path)
    if data[:2] != _DSA_KEY_TYPE:
        raise StorageError(
            f"unsupported potr key type 0x{int.from_bytes(data[:2], 'big'):04x}", path=path
        )
    offset = 2
    values: list[int] = []
    for name in ("p", "q", "g", "y", "x"):
        if len(data) - offset < 4:
            raise StorageError(f"truncated before the length of {name} (byte {offset})", path=path)
        length = int.from_bytes(data[offset : offset + 4], "big")
        offset += 4
        if length > _MAX_MPI_BYTES:
            raise StorageError(f"the MPI {name} is implausibly long ({length} bytes)", path=path)
        if len(data) - offset < length:
            raise StorageError(f"truncated inside the MPI {name} (byte {offset})", path=path)
        values.append(int.from_bytes(data[offset : offset + length], "big"))
        offset += length
    if offset != len(data):
        raise StorageError(
            f"{len(data) - offset} unexpected bytes after the key (byte {offset})", path=path
        )
    p, q, g, y, x = values
    key = DSAPrivateKey(p, q, g, y, x)
    problem = private_key_problem(key)
    if problem is not None:
        raise StorageError(problem, path=path)
    return key


def parse_fpr(data: bytes, *, path: str = "<fpr>") -> tuple[FingerprintRecord, ...]:
    """A potr ``.fpr`` file's records (all or nothing; blank lines are skipped).

    Duplicate lines are merged, the later trust winning (potr keeps a dict).
    """
    if not data:
        return ()
    pieces = data.split(b"\n")
    if pieces[-1]:
        raise StorageError(
            "the last line has no line feed (truncated file?)", path=path, line=len(pieces)
        )
    records: list[FingerprintRecord] = []
    index: dict[tuple[str, str, str, bytes], int] = {}
    for number, piece in enumerate(pieces[:-1], 1):
        line = piece[:-1] if piece.endswith(b"\r") else piece
        if not line:
            continue
        if b"\x00" in line or b"\r" in line:
            raise StorageError("control character in a line (binary data?)", path=path, line=number)
        fields = line.split(b"\t")
        if len(fields) != 5:
            raise StorageError(
                f"expected 5 tab-separated fields (peer, account, protocol, fingerprint, "
                f"trust), found {len(fields)}",
                path=path,
                line=number,
            )
        username, account, protocol, hex_digits, trust = fields
        if not username or not account or not protocol:
            raise StorageError("empty peer, account or protocol", path=path, line=number)
        if len(hex_digits) != 2 * FINGERPRINT_LENGTH:
            raise StorageError(
                f"fingerprint must be {2 * FINGERPRINT_LENGTH} hex digits, "
                f"not {len(hex_digits)} characters",
                path=path,
                line=number,
            )
        # Digit by digit: bytes.fromhex() would skip spaces and read a short value.
        if not _HEX_DIGITS.issuperset(hex_digits):
            raise StorageError("fingerprint is not hexadecimal", path=path, line=number)
        fingerprint = bytes.fromhex(hex_digits.decode("ascii"))
        record = FingerprintRecord(
            decode_name(username),
            decode_name(account),
            decode_name(protocol),
            fingerprint,
            decode_name(trust),
        )
        key = (record.username, record.account, record.protocol, fingerprint)
        if key in index:
            records[index[key]] = record
        else:
            index[key] = len(records)
            records.append(record)
    return tuple(records)


def _expand(path: str | os.PathLike[str]) -> Path:
    return Path(os.path.expanduser(os.fspath(path)))


def _read(path: Path) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StorageError(f"cannot open: {exc.strerror}", path=str(path)) from None
    try:
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise StorageError("not a regular file", path=str(path))
            data = handle.read(_MAX_FILE_SIZE + 1)
    except OSError as exc:
        raise StorageError(f"cannot read: {exc.strerror}", path=str(path)) from None
    if len(data) > _MAX_FILE_SIZE:
        raise StorageError(f"file is larger than {_MAX_FILE_SIZE} bytes", path=str(path))
    return data


def load_key3(path: str | os.PathLike[str]) -> DSAPrivateKey:
    """Read and parse a ``.key3`` file."""
    location = _expand(path)
    data = _read(location)
    if data is None:
        raise StorageError("no such file", path=str(location))
    return parse_key3(data, path=str(location))


def load_fpr(path: str | os.PathLike[str]) -> tuple[FingerprintRecord, ...]:
    """Read and parse a ``.fpr`` file; a missing file has no records."""
    location = _expand(path)
    data = _read(location)
    return () if data is None else parse_fpr(data, path=str(location))


# ---------------------------------------------------------------------------
# Import


@dataclass(frozen=True, slots=True)
class PotrImport:
    """What :func:`import_potr_account` did."""

    account: str
    protocol: str
    key_imported: bool
    """A key was written (it was new, or replaced a different one)."""
    fingerprints_added: int
    trust_raised: int
    """Known fingerprints whose empty trust was set from the potr file."""
    lines_skipped: int
    """Lines for another account or protocol."""


def find_potr_accounts(directory: str | os.PathLike[str]) -> tuple[str, ...]:
    """Account names that have a ``.key3`` or ``.fpr`` file in ``directory``
    (``~`` is expanded), sorted."""
    names: set[str] = set()
    try:
        entries = list(os.scandir(_expand(directory)))
    except OSError as exc:
        raise StorageError(f"cannot list: {exc.strerror}", path=os.fspath(directory)) from None
    for entry in entries:
        for suffix in (KEY3_SUFFIX, FPR_SUFFIX):
            if entry.name.endswith(suffix) and len(entry.name) > len(suffix):
                names.add(entry.name[: -len(suffix)])
    return tuple(sorted(names))


def import_potr_account(
    store: Store,
    directory: str | os.PathLike[str],
    account: str,
    *,
    protocol: str,
    source_protocol: str | None = None,
    replace_key: bool = False,
) -> PotrImport:
    """Import ``<directory>/<account>.key3`` and ``.fpr`` into ``store``.

    Everything lands under ``(account, protocol)`` — ``protocol`` is this
    store's name for it (e.g. ``"prpl-jabber"`` to share the files with
    Pidgin).  Of the ``.fpr`` lines, those for another account are skipped,
    and so are those for a protocol other than ``source_protocol`` when it
    is given (weechat-otr writes ``irc``, poezio ``xmpp``).

    A different key already stored for the account raises
    :class:`~offrecord.errors.LocalProtocolError` unless ``replace_key``.
    Fingerprints are added with their trust; a fingerprint the store already
    knows keeps its trust unless that is empty and the import's is not.
    Both files are parsed before anything is written; at least one must
    exist.
    """
    check_name(account, "account")
    check_name(protocol, "protocol")
    if source_protocol is not None:
        check_name(source_protocol, "source_protocol")
    if "/" in account or account in (".", ".."):
        raise LocalProtocolError("account is not usable as a file name")
    base = _expand(directory)
    key_path = base / (account + KEY3_SUFFIX)
    fpr_path = base / (account + FPR_SUFFIX)

    key_data = _read(key_path)
    fpr_data = _read(fpr_path)
    if key_data is None and fpr_data is None:
        raise StorageError(f"neither {key_path.name} nor {fpr_path.name} exists", path=str(base))
    key = None if key_data is None else parse_key3(key_data, path=str(key_path))
    records = () if fpr_data is None else parse_fpr(fpr_data, path=str(fpr_path))

    wanted = [
        r
        for r in records
        if r.account == account and (source_protocol is None or r.protocol == source_protocol)
    ]
    skipped = len(records) - len(wanted)

    key_imported = False
    if key is not None:
        existing = store.get_private_key(account, protocol)
        if existing is not None and existing != key and not replace_key:
            raise LocalProtocolError(
                f"a different private key is already stored for {account} ({protocol}); "
                "pass replace_key=True to replace it"
            )
        if existing != key:
            store.save_private_key(account, protocol, key)
            key_imported = True

    added = raised = 0
    for record in wanted:
        known = store.get_fingerprint(account, protocol, record.username, record.fingerprint)
        if known is None:
            store.add_fingerprint(
                account, protocol, record.username, record.fingerprint, record.trust
            )
            added += 1
        elif known.trust == TRUST_NONE and record.trust != TRUST_NONE:
            store.set_trust(account, protocol, record.username, record.fingerprint, record.trust)
            raised += 1
    return PotrImport(account, protocol, key_imported, added, raised, skipped)
