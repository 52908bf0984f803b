"""What an :class:`~offrecord.account.Account` needs from persistent storage.

A :class:`Store` keeps, per local account — an ``(account, protocol)`` pair
such as ``("alice@example.org", "prpl-jabber")``:

* the long-term DSA private key;
* our instance tag;
* the peers' fingerprints we have seen, per username, each with a trust
  string.  libotr's convention: ``""`` means seen but not verified, and any
  other string means trusted — ``"verified"`` when the user compared
  fingerprints by hand, ``"smp"`` after a successful Socialist Millionaires'
  Protocol run; other strings are kept as they are.

Every record is a small frozen dataclass.  Names are ``str``; the file
formats store their UTF-8 encoding (bytes that are not UTF-8 come back as
surrogate escapes, so they survive a round trip).  Names may not contain a
tab, CR, LF or NUL (libotr's line formats cannot hold them) and may not be
empty; a trust string may not contain CR, LF or NUL.  Calls with bad
arguments raise :class:`~offrecord.errors.LocalProtocolError`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Protocol, runtime_checkable

import gmpy2

from offrecord.crypto.dsa import MAX_P_BITS, MAX_Q_BITS, DSAPrivateKey, fingerprint_hex
from offrecord.errors import LocalProtocolError

__all__ = [
    "FINGERPRINT_LENGTH",
    "MAX_INSTANCE_TAG",
    "MIN_INSTANCE_TAG",
    "TRUST_NONE",
    "TRUST_SMP",
    "TRUST_VERIFIED",
    "AccountId",
    "FingerprintRecord",
    "InstanceTagRecord",
    "Store",
    "check_fingerprint",
    "check_instance_tag",
    "check_name",
    "check_trust",
    "decode_name",
    "encode_name",
    "private_key_problem",
    "select_fingerprints",
]

TRUST_NONE: Final = ""
"""Seen, not verified."""
TRUST_VERIFIED: Final = "verified"
"""Verified by the user comparing fingerprints (Pidgin's "I have verified")."""
TRUST_SMP: Final = "smp"
"""Verified by a successful SMP run."""

FINGERPRINT_LENGTH: Final = 20
MIN_INSTANCE_TAG: Final = 0x100
"""Instance tags below this are reserved (libotr's ``OTRL_MIN_VALID_INSTAG``)."""
MAX_INSTANCE_TAG: Final = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class AccountId:
    """A local account: name and protocol, e.g. ``("alice@example.org", "prpl-jabber")``."""

    account: str
    protocol: str


@dataclass(frozen=True, slots=True)
class FingerprintRecord:
    """A peer's key fingerprint as seen from one local account."""

    username: str
    account: str
    protocol: str
    fingerprint: bytes
    trust: str = TRUST_NONE

    @property
    def trusted(self) -> bool:
        """libotr's rule: any non-empty trust string means trusted."""
        return self.trust != TRUST_NONE

    @property
    def hex(self) -> str:
        """40 uppercase hex digits."""
        return fingerprint_hex(self.fingerprint)


@dataclass(frozen=True, slots=True)
class InstanceTagRecord:
    """Our instance tag for one local account."""

    account: str
    protocol: str
    tag: int


@runtime_checkable
class Store(Protocol):
    """Keys, instance tags and fingerprints for any number of local accounts.

    Implementations: :class:`~offrecord.storage.memory.MemoryStore` (tests),
    :class:`~offrecord.storage.libotr.LibotrStore` (Pidgin/libotr files).
    """

    def get_private_key(self, account: str, protocol: str) -> DSAPrivateKey | None:
        """The account's private key, or ``None`` if it has none."""
        ...

    def save_private_key(self, account: str, protocol: str, key: DSAPrivateKey) -> None:
        """Store ``key`` for the account, replacing any previous key."""
        ...

    def list_key_accounts(self) -> tuple[AccountId, ...]:
        """Every account that has a private key."""
        ...

    def get_instance_tag(self, account: str, protocol: str) -> int | None:
        """The account's instance tag, or ``None`` if it has none yet."""
        ...

    def save_instance_tag(self, account: str, protocol: str, tag: int) -> None:
        """Store ``tag`` (>= 0x100) for the account, replacing any previous tag."""
        ...

    def list_fingerprints(
        self, account: str, protocol: str, username: str | None = None
    ) -> tuple[FingerprintRecord, ...]:
        """Known fingerprints of the account's peers (of one peer if ``username``)."""
        ...

    def get_fingerprint(
        self, account: str, protocol: str, username: str, fingerprint: bytes
    ) -> FingerprintRecord | None:
        """The record for this peer and fingerprint, or ``None``."""
        ...

    def add_fingerprint(
        self,
        account: str,
        protocol: str,
        username: str,
        fingerprint: bytes,
        trust: str = TRUST_NONE,
    ) -> FingerprintRecord:
        """Remember a fingerprint with ``trust``; if it is already known, change
        nothing and return the stored record."""
        ...

    def set_trust(
        self, account: str, protocol: str, username: str, fingerprint: bytes, trust: str
    ) -> FingerprintRecord:
        """Set the trust of a fingerprint, adding it first if it is unknown."""
        ...

    def forget_fingerprint(
        self, account: str, protocol: str, username: str, fingerprint: bytes
    ) -> bool:
        """Forget a fingerprint; ``False`` if it was not known."""
        ...


# ---------------------------------------------------------------------------
# Argument checks and name encoding, shared by the implementations

_FORBIDDEN_IN_NAMES: Final = ("\t", "\n", "\r", "\x00")
_FORBIDDEN_IN_TRUST: Final = ("\n", "\r", "\x00")


def encode_name(value: str) -> bytes:
    """UTF-8, with surrogate escapes turned back into the bytes they stand for."""
    return value.encode("utf-8", "surrogateescape")


def decode_name(value: bytes) -> str:
    """UTF-8; bytes that are not UTF-8 become surrogate escapes."""
    return value.decode("utf-8", "surrogateescape")


def check_name(value: object, what: str) -> str:
    """Validate an account, protocol or user name; return it."""
    if not isinstance(value, str):
        raise LocalProtocolError(f"{what} must be a str")
    if not value:
        raise LocalProtocolError(f"{what} must not be empty")
    if any(ch in value for ch in _FORBIDDEN_IN_NAMES):
        raise LocalProtocolError(f"{what} must not contain a tab, CR, LF or NUL")
    try:
        encode_name(value)
    except UnicodeEncodeError:
        raise LocalProtocolError(f"{what} is not encodable as UTF-8") from None
    return value


def check_trust(value: object) -> str:
    """Validate a trust string; return it."""
    if not isinstance(value, str):
        raise LocalProtocolError("trust must be a str")
    if any(ch in value for ch in _FORBIDDEN_IN_TRUST):
        raise LocalProtocolError("trust must not contain CR, LF or NUL")
    try:
        encode_name(value)
    except UnicodeEncodeError:
        raise LocalProtocolError("trust is not encodable as UTF-8") from None
    return value


def check_fingerprint(value: object) -> bytes:
    """Validate a raw 20-byte fingerprint; return it as ``bytes``."""
    if not isinstance(value, bytes | bytearray) or len(value) != FINGERPRINT_LENGTH:
        raise LocalProtocolError(f"a fingerprint is {FINGERPRINT_LENGTH} bytes")
    return bytes(value)


def check_instance_tag(value: object) -> int:
    """Validate an instance tag; return it."""
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or not MIN_INSTANCE_TAG <= value <= MAX_INSTANCE_TAG
    ):
        raise LocalProtocolError("an instance tag is an integer in [0x100, 0xffffffff]")
    return value


def private_key_problem(key: DSAPrivateKey) -> str | None:
    """What is wrong with a DSA key read from a file, or ``None``.

    Cheap consistency checks only (no primality tests): q has at most 160
    bits, p at most 4096 bits, q divides p - 1, g has order q, 0 < x < q and
    y = g^x mod p.  The message never contains key material.
    """
    p, q, g, y, x = key.p, key.q, key.g, key.y, key.x
    if q <= 1 or q.bit_length() > MAX_Q_BITS:
        return f"DSA q must be in (1, 2^{MAX_Q_BITS})"
    if p <= q or p.bit_length() > MAX_P_BITS:
        return f"DSA p must be larger than q and have at most {MAX_P_BITS} bits"
    if p % 2 == 0 or (p - 1) % q:
        return "DSA p must be odd and q must divide p - 1"
    if not 1 < g < p or gmpy2.powmod(g, q, p) != 1:
        return "DSA g is not an element of order q"
    if not 0 < x < q:
        return "DSA x is out of range"
    if not 1 < y < p or gmpy2.powmod_sec(g, x, p) != y:
        return "DSA x and y do not belong together"
    return None


def select_fingerprints(
    records: Iterable[FingerprintRecord], account: str, protocol: str, username: str | None
) -> tuple[FingerprintRecord, ...]:
    """The records of one local account (and one peer, if ``username`` is given),
    in their stored order; the names are checked as every store checks them."""
    check_name(account, "account")
    check_name(protocol, "protocol")
    if username is not None:
        check_name(username, "username")
    return tuple(
        record
        for record in records
        if record.account == account
        and record.protocol == protocol
        and (username is None or record.username == username)
    )
