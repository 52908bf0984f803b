"""A :class:`~offrecord.account.TrustBook` kept in a :class:`~offrecord.storage.base.Store`.

::

    store = LibotrStore("~/.purple")
    book = StoreTrustBook(store, "alice@example.org", "prpl-jabber")
    account = Account("alice@example.org", "prpl-jabber", key, trust=book)

Every fingerprint a peer authenticates with is added to the store (trust
``""``) the first time it is seen; the trust the session sets goes to the
store as well — ``"smp"`` after a successful SMP run, ``""`` after a failed
one, exactly as libotr records them.  Trust set by hand (``offrecord trust``,
Pidgin's "I have verified") is ``"verified"`` (:data:`TRUST_VERIFIED`).
Nothing is cached: every call reads the store (a :class:`LibotrStore` caches
the parsed file by content), so changes made by another process or by the
``offrecord`` command are seen at once.

When the store fails
    By default a :class:`~offrecord.errors.StorageError` (malformed or
    unreadable file, lock timeout, full disk) propagates to the caller —
    which, during an AKE, is :meth:`Account.receive`.  Pass ``on_error`` to
    keep going instead: the error is handed to it and the book falls back to
    memory for that call, *failing closed* (a fingerprint it cannot look up
    counts as new and not trusted).  What could not be written is remembered
    in memory for the life of the book and takes precedence over the store
    (a later successful :meth:`set_trust` moves it back to the store).

    Some names cannot be stored in libotr's files at all (a tab or newline in
    a peer's name, lines over 999 bytes): for those the book always keeps the
    fingerprint in memory only, and reports the
    :class:`~offrecord.errors.LocalProtocolError` to ``on_error`` if given.
"""

from __future__ import annotations

from collections.abc import Callable

from offrecord.account import TrustBook
from offrecord.errors import LocalProtocolError, OTRError, StorageError
from offrecord.storage.base import (
    TRUST_NONE,
    TRUST_SMP,
    TRUST_VERIFIED,
    FingerprintRecord,
    Store,
    check_name,
)

__all__ = ["TRUST_NONE", "TRUST_SMP", "TRUST_VERIFIED", "StoreTrustBook"]


class StoreTrustBook(TrustBook):
    """The fingerprints and trust of one local account's peers, in ``store``.

    ``account`` and ``protocol`` name the local account as the store knows
    it (for Pidgin's files, the protocol is its plugin id, e.g.
    ``prpl-jabber``).  See the module documentation for error handling.
    """

    def __init__(
        self,
        store: Store,
        account: str,
        protocol: str,
        *,
        on_error: Callable[[OTRError], None] | None = None,
    ) -> None:
        super().__init__()  # the in-memory book: fallback only
        self.store = store
        self.account = check_name(account, "account")
        self.protocol = check_name(protocol, "protocol")
        self._on_error = on_error

    def __repr__(self) -> str:
        return f"StoreTrustBook({self.store!r}, {self.account!r}, {self.protocol!r})"

    def _pending(self, peer: str, fingerprint: bytes) -> str | None:
        """The trust kept in memory because storing it failed, or ``None``."""
        return self._book.get(peer, {}).get(fingerprint)

    def _failed(self, exc: OTRError) -> None:
        """Report ``exc``, or re-raise it when there is no one to report to
        and it is a storage failure."""
        if self._on_error is not None:
            self._on_error(exc)
        elif isinstance(exc, StorageError):
            raise exc

    # -- TrustBook ---------------------------------------------------------

    def fingerprint_seen(self, peer: str, fingerprint: bytes) -> tuple[bool, bool]:
        """Record that ``peer`` authenticated with ``fingerprint``:
        ``(new, trusted)``.  A new fingerprint is stored untrusted."""
        pending = self._pending(peer, fingerprint)
        if pending is not None:
            return False, pending != TRUST_NONE
        try:
            record = self.store.get_fingerprint(self.account, self.protocol, peer, fingerprint)
            if record is not None:
                return False, record.trusted
            record = self.store.add_fingerprint(self.account, self.protocol, peer, fingerprint)
        except (StorageError, LocalProtocolError) as exc:
            self._failed(exc)
            return super().fingerprint_seen(peer, fingerprint)
        # Another writer may have added it in the meantime, with a trust.
        return True, record.trusted

    def set_trust(self, peer: str, fingerprint: bytes, trust: str) -> None:
        """Store ``trust`` for the fingerprint (adding it if unknown)."""
        try:
            self.store.set_trust(self.account, self.protocol, peer, fingerprint, trust)
        except (StorageError, LocalProtocolError) as exc:
            self._failed(exc)
            super().set_trust(peer, fingerprint, trust)
            return
        self._book.get(peer, {}).pop(fingerprint, None)  # the store has it now

    def trust(self, peer: str, fingerprint: bytes) -> str:
        """The fingerprint's trust string; ``""`` if unknown or not verified."""
        pending = self._pending(peer, fingerprint)
        if pending is not None:
            return pending
        record = self.record(peer, fingerprint)
        return TRUST_NONE if record is None else record.trust

    def fingerprints(self, peer: str) -> dict[bytes, str]:
        """Every known fingerprint of ``peer`` with its trust."""
        found: dict[bytes, str] = {}
        try:
            records = self.store.list_fingerprints(self.account, self.protocol, peer)
        except (StorageError, LocalProtocolError) as exc:
            self._failed(exc)
        else:
            found.update((record.fingerprint, record.trust) for record in records)
        found.update(super().fingerprints(peer))  # what could not be stored wins
        return found

    # -- extras ------------------------------------------------------------

    def record(self, peer: str, fingerprint: bytes) -> FingerprintRecord | None:
        """The stored record, or ``None`` (also when the store cannot be read
        and ``on_error`` is set)."""
        try:
            return self.store.get_fingerprint(self.account, self.protocol, peer, fingerprint)
        except (StorageError, LocalProtocolError) as exc:
            self._failed(exc)
            return None

    def verify(self, peer: str, fingerprint: bytes) -> None:
        """Mark the fingerprint as verified by hand (``"verified"``)."""
        self.set_trust(peer, fingerprint, TRUST_VERIFIED)

    def forget(self, peer: str, fingerprint: bytes) -> bool:
        """Forget the fingerprint; ``False`` if it was not known."""
        in_memory = self._book.get(peer, {}).pop(fingerprint, None) is not None
        try:
            stored = self.store.forget_fingerprint(self.account, self.protocol, peer, fingerprint)
        except (StorageError, LocalProtocolError) as exc:
            self._failed(exc)
            return in_memory
        return stored or in_memory
