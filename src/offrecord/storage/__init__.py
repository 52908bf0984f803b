"""Persistent keys, instance tags and fingerprints.

* :class:`Store` — what an account needs (see :mod:`offrecord.storage.base`).
* :class:`LibotrStore` — libotr/Pidgin's ``otr.private_key``,
  ``otr.fingerprints`` and ``otr.instance_tags``, byte-compatible with
  libotr 4.1.1, written atomically, 0600, under a lock.
* :class:`MemoryStore` — the same in memory.
* :func:`import_potr_account` — bring over python-potr clients' files.

Malformed or unreadable files raise :class:`~offrecord.errors.StorageError`
naming the file and line; nothing is half-loaded and such a file is never
overwritten.  See ``docs/storage.md``.
"""

from offrecord.storage.base import (
    TRUST_NONE,
    TRUST_SMP,
    TRUST_VERIFIED,
    AccountId,
    FingerprintRecord,
    InstanceTagRecord,
    Store,
)
from offrecord.storage.libotr import LibotrStore
from offrecord.storage.memory import MemoryStore
from offrecord.storage.potr import PotrImport, find_potr_accounts, import_potr_account

__all__ = [
    "TRUST_NONE",
    "TRUST_SMP",
    "TRUST_VERIFIED",
    "AccountId",
    "FingerprintRecord",
    "InstanceTagRecord",
    "LibotrStore",
    "MemoryStore",
    "PotrImport",
    "Store",
    "find_potr_accounts",
    "import_potr_account",
]
