"""An in-memory :class:`~offrecord.storage.base.Store`, for tests and ephemeral use.

Same semantics as the file-backed store (argument checks, idempotent
``add_fingerprint``, upserting ``set_trust``), no persistence.  Safe to share
between threads.
"""

from __future__ import annotations

import threading

from offrecord.crypto.dsa import DSAPrivateKey
from offrecord.storage.base import (
    TRUST_NONE,
    AccountId,
    FingerprintRecord,
    check_fingerprint,
    check_instance_tag,
    check_name,
    check_trust,
    select_fingerprints,
)

__all__ = ["MemoryStore"]

_FingerprintKey = tuple[str, str, str, bytes]  # account, protocol, username, fingerprint


class MemoryStore:
    """Keys, instance tags and fingerprints held in dictionaries."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: dict[tuple[str, str], DSAPrivateKey] = {}
        self._tags: dict[tuple[str, str], int] = {}
        self._fingerprints: dict[_FingerprintKey, FingerprintRecord] = {}

    def __repr__(self) -> str:
        return (
            f"MemoryStore(keys={len(self._keys)}, instance_tags={len(self._tags)}, "
            f"fingerprints={len(self._fingerprints)})"
        )

    # Private keys

    def get_private_key(self, account: str, protocol: str) -> DSAPrivateKey | None:
        ident = (check_name(account, "account"), check_name(protocol, "protocol"))
        with self._lock:
            return self._keys.get(ident)

    def save_private_key(self, account: str, protocol: str, key: DSAPrivateKey) -> None:
        ident = (check_name(account, "account"), check_name(protocol, "protocol"))
        if not isinstance(key, DSAPrivateKey):
            raise TypeError("key must be a DSAPrivateKey")
        with self._lock:
            self._keys[ident] = key

    def list_key_accounts(self) -> tuple[AccountId, ...]:
        with self._lock:
            return tuple(AccountId(account, protocol) for account, protocol in self._keys)

    # Instance tags

    def get_instance_tag(self, account: str, protocol: str) -> int | None:
        ident = (check_name(account, "account"), check_name(protocol, "protocol"))
        with self._lock:
            return self._tags.get(ident)

    def save_instance_tag(self, account: str, protocol: str, tag: int) -> None:
        ident = (check_name(account, "account"), check_name(protocol, "protocol"))
        value = check_instance_tag(tag)
        with self._lock:
            self._tags[ident] = value

    # Fingerprints

    def list_fingerprints(
        self, account: str, protocol: str, username: str | None = None
    ) -> tuple[FingerprintRecord, ...]:
        with self._lock:
            records = tuple(self._fingerprints.values())
        return select_fingerprints(records, account, protocol, username)

    def get_fingerprint(
        self, account: str, protocol: str, username: str, fingerprint: bytes
    ) -> FingerprintRecord | None:
        key = _key(account, protocol, username, fingerprint)
        with self._lock:
            return self._fingerprints.get(key)

    def add_fingerprint(
        self,
        account: str,
        protocol: str,
        username: str,
        fingerprint: bytes,
        trust: str = TRUST_NONE,
    ) -> FingerprintRecord:
        key = _key(account, protocol, username, fingerprint)
        trust = check_trust(trust)
        with self._lock:
            existing = self._fingerprints.get(key)
            if existing is not None:
                return existing
            record = FingerprintRecord(username, account, protocol, key[3], trust)
            self._fingerprints[key] = record
            return record

    def set_trust(
        self, account: str, protocol: str, username: str, fingerprint: bytes, trust: str
    ) -> FingerprintRecord:
        key = _key(account, protocol, username, fingerprint)
        trust = check_trust(trust)
        record = FingerprintRecord(username, account, protocol, key[3], trust)
        with self._lock:
            self._fingerprints[key] = record
        return record

    def forget_fingerprint(
        self, account: str, protocol: str, username: str, fingerprint: bytes
    ) -> bool:
        key = _key(account, protocol, username, fingerprint)
        with self._lock:
            return self._fingerprints.pop(key, None) is not None


def _key(account: str, protocol: str, username: str, fingerprint: bytes) -> _FingerprintKey:
    return (
        check_name(account, "account"),
        check_name(protocol, "protocol"),
        check_name(username, "username"),
        check_fingerprint(fingerprint),
    )
