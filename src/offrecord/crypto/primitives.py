"""Thin wrappers over maintained primitives, and the injected randomness type.

The core never reaches for global randomness: every component that needs
random bytes takes a :data:`RandomSource`.  Applications pass
:func:`system_random`; tests pass a seeded, deterministic source.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

__all__ = [
    "AESCounterMode",
    "HMACSHA1Key",
    "RandomSource",
    "aes_ctr",
    "hmac_sha1",
    "hmac_sha256",
    "hmac_sha256_160",
    "macs_equal",
    "sha1",
    "sha256",
    "system_random",
]

RandomSource = Callable[[int], bytes]
"""A callable returning that many uniformly random bytes."""


def system_random(n: int) -> bytes:
    """The operating system's CSPRNG."""
    return secrets.token_bytes(n)


def aes_ctr(key: bytes, counter_top: bytes, data: bytes) -> bytes:
    """AES-128 in CTR mode; the initial counter block is ``counter_top`` || zeros.

    OTR uses a 16-byte key, an 8-byte top half (zero for the AKE) and a zero
    bottom half.  Encryption and decryption are the same operation.
    """
    if len(key) != 16:
        raise ValueError("AES-128 key must be 16 bytes")
    block = counter_top.ljust(16, b"\x00")
    ctx = Cipher(algorithms.AES(key), modes.CTR(block)).encryptor()
    return ctx.update(data) + ctx.finalize()


_ZERO_BOTTOM = bytes(8)


class AESCounterMode:
    """:func:`aes_ctr` for many messages under one key.

    Setting up an AES context costs more than encrypting a chat message, so
    this keeps one CTR context and sets its counter block anew for every
    message (``CipherContext.reset_nonce``, cryptography 43).  The output is
    identical to :func:`aes_ctr` (a property test checks it).
    """

    __slots__ = ("_ctx", "_key")

    def __init__(self, key: bytes) -> None:
        if len(key) != 16:
            raise ValueError("AES-128 key must be 16 bytes")
        self._key = key
        self._ctx = Cipher(algorithms.AES(key), modes.CTR(bytes(16))).encryptor()

    def __reduce__(self) -> tuple[type[AESCounterMode], tuple[bytes]]:
        # Copies (and pickles) set up a context of their own from the key.
        return AESCounterMode, (self._key,)

    def crypt(self, counter_top: bytes, data: bytes) -> bytes:
        """Encrypt or decrypt ``data`` from the counter block ``counter_top`` || zeros."""
        if len(counter_top) != 8:
            raise ValueError("the counter's top half must be 8 bytes")
        ctx = self._ctx
        ctx.reset_nonce(counter_top + _ZERO_BOTTOM)
        return ctx.update(data)


class HMACSHA1Key:
    """A SHA1-HMAC key set up once and used for many messages (data-message
    MACs): each MAC starts from a copy of the keyed context."""

    __slots__ = ("_base", "_key")

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._base = crypto_hmac.HMAC(key, hashes.SHA1())  # noqa: S303 - OTR v3 mandates it

    def __reduce__(self) -> tuple[type[HMACSHA1Key], tuple[bytes]]:
        return HMACSHA1Key, (self._key,)

    def digest(self, data: bytes) -> bytes:
        mac = self._base.copy()
        mac.update(data)
        return mac.finalize()


def sha1(data: bytes) -> bytes:
    return hashlib.sha1(data).digest()  # noqa: S324 - OTR v3 mandates SHA-1 here


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


# The digest is named by string: hmac then takes OpenSSL's HMAC directly,
# twice as fast as with a hashlib constructor.
def hmac_sha1(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, "sha1").digest()


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, "sha256").digest()


def hmac_sha256_160(key: bytes, data: bytes) -> bytes:
    """SHA256-HMAC truncated to its first 160 bits (AKE signature MACs)."""
    return hmac_sha256(key, data)[:20]


# Constant-time MAC comparison (the function itself: it runs for every message).
macs_equal = hmac.compare_digest
