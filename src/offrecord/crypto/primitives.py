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

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

__all__ = [
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


def sha1(data: bytes) -> bytes:
    return hashlib.sha1(data).digest()  # noqa: S324 - OTR v3 mandates SHA-1 here


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def hmac_sha1(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha1).digest()


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def hmac_sha256_160(key: bytes, data: bytes) -> bytes:
    """SHA256-HMAC truncated to its first 160 bits (AKE signature MACs)."""
    return hmac_sha256(key, data)[:20]


def macs_equal(a: bytes, b: bytes) -> bool:
    """Constant-time MAC comparison."""
    return hmac.compare_digest(a, b)
