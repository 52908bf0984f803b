"""OTR's long-term DSA keys (spec "Public keys, signatures, and fingerprints").

Wire forms
    A public key (PUBKEY) is the SHORT type ``0x0000`` followed by the MPIs
    p, q, g, y, each minimal.  Its fingerprint is the SHA-1 of that encoding
    *without* the two type bytes.  A signature (SIG) is r then s, each a
    20-byte big-endian unsigned integer, zero-padded on the left: 40 bytes.
    libotr hard-codes both the 20-byte halves and the 40-byte total
    (``otrl_privkey_sign`` / ``otrl_privkey_verify``), so that is what we do;
    :meth:`DSAPublicKey.decode` only admits keys whose q fits in 160 bits,
    which guarantees r and s fit.

What is signed
    OTR signs a 32-byte MAC value (M_A / M_B of the AKE) directly: no further
    hashing, and the value is taken *modulo q* rather than truncated to q's
    bit length as FIPS 186 would.  libotr hands the bytes to libgcrypt as a
    plain (non-opaque) MPI, and libgcrypt's DSA then uses it unchanged inside
    arithmetic modulo q — which is the reduction.  Here the *representative*
    is ``int.from_bytes(message, "big") % q``.

Nonces
    :meth:`DSAPrivateKey.sign` is deterministic: the nonce k comes from the
    HMAC-SHA256 DRBG of RFC 6979 section 3.2, keyed with x and the
    representative (``int2octets(x) || int2octets(representative)``).  A
    signer with a broken random source therefore cannot leak x through a
    repeated or biased k.  Verifiers cannot tell the difference: the
    signature is an ordinary DSA signature.

Key generation (:func:`generate_private_key`)
    Only the injected :data:`~offrecord.crypto.primitives.RandomSource` is
    used, so a seeded source gives a reproducible key.  The domain follows
    the shape of FIPS 186's probable-prime construction:

    1. q: a random 160-bit odd integer with its top bit set is moved up to
       the next prime (gmpy2 ``next_prime``); retried if that overflows 160
       bits.
    2. p: a fresh random 1024-bit integer X (top bit set) is moved *down* to
       the largest value ``p <= X`` with ``p ≡ 1 (mod 2q)``, i.e.
       ``p = X - ((X - 1) mod 2q)``.  If p still has 1024 bits and passes
       ``is_prime`` it is taken, otherwise a new X is drawn.  ``2q | p - 1``
       holds by construction, so q divides p - 1 and p is odd.  Because every
       candidate is a fresh, uniformly random member of the residue class,
       the resulting p is uniform over the 1024-bit primes ≡ 1 (mod 2q) —
       there is no "prime after a gap" bias and no way to steer p towards a
       special form.  About 355 candidates (ln 2^1024 / 2) are needed on
       average; nearly all are rejected by trial division inside
       ``is_prime``.
    3. Primality: ``gmpy2.is_prime(n, 40)`` — with GMP >= 6.2 that is a
       Baillie-PSW test plus extra Miller-Rabin rounds, far beyond FIPS
       186-4's Table C.1 requirement for (1024, 160) probable primes; no
       composite is known to pass BPSW at all.
    4. g: ``g = h^((p-1)/q) mod p`` for h = 2, 3, ... until g != 1 (which
       fails with probability about 1/q).  g then has order exactly q
       because q is prime.
    5. x: uniform in [1, q-1] by rejection sampling of 160-bit strings;
       y = g^x mod p.

    The result is checked once more (sizes, primality, q | p-1, g^q = 1,
    y = g^x) before it is returned.  This yields the same kind of key as
    libgcrypt's ``(genkey (dsa (nbits 4:1024)))``, which libotr uses.

Secrets
    x and k are only ever exponents of ``gmpy2.powmod_sec`` (and k^-1 is
    computed as ``k^(q-2) mod q`` with ``powmod_sec`` too, rather than with
    a variable-time extended Euclid).  Python's own integer arithmetic for
    ``x * r`` is not constant-time; that is the residual exposure.  x never
    appears in ``repr``/``str`` or in any exception message.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from dataclasses import dataclass, field

import gmpy2

from offrecord.crypto.primitives import RandomSource, sha1
from offrecord.errors import RemoteProtocolError
from offrecord.wire.codec import Reader, encode_mpi, encode_short

__all__ = [
    "FINGERPRINT_LENGTH",
    "MAX_P_BITS",
    "MAX_Q_BITS",
    "PUBKEY_TYPE_DSA",
    "SIGNATURE_LENGTH",
    "DSAPrivateKey",
    "DSAPublicKey",
    "fingerprint_hex",
    "fingerprint_of_encoding",
    "format_fingerprint",
    "generate_private_key",
]

PUBKEY_TYPE_DSA = 0x0000
"""The PUBKEY type marker of a DSA key (the only type OTR v3 defines)."""

SIGNATURE_LENGTH = 40
"""Length of an OTR DSA signature: r and s, 20 bytes each."""

_HALF = SIGNATURE_LENGTH // 2
MAX_Q_BITS = 160
"""Largest q accepted from the network (r and s must fit into 20 bytes)."""
MAX_P_BITS = 4096
"""Largest p accepted from the network (bounds the cost of verification)."""

FINGERPRINT_LENGTH = 20

_P_BITS = 1024
_Q_BITS = 160
_PRIMALITY_REPS = 40


# ---------------------------------------------------------------------------
# Public key


@dataclass(frozen=True, slots=True)
class DSAPublicKey:
    """A DSA public key (p, q, g, y)."""

    p: int
    q: int
    g: int
    y: int

    def encode(self) -> bytes:
        """The PUBKEY wire form: type 0x0000, then minimal MPIs p, q, g, y."""
        return encode_short(PUBKEY_TYPE_DSA) + self._encode_params()

    def _encode_params(self) -> bytes:
        return encode_mpi(self.p) + encode_mpi(self.q) + encode_mpi(self.g) + encode_mpi(self.y)

    @classmethod
    def decode(cls, reader: Reader) -> DSAPublicKey:
        """Read a PUBKEY from ``reader`` and check it cheaply.

        Checks: type 0x0000; 1 < q with at most 160 bits; p at most 4096
        bits; 1 < g < p; 1 < y < p.  Primality and subgroup membership are
        *not* checked (libotr does not either; a bogus key can only produce
        signatures nobody else can verify against the owner's fingerprint).
        Raises :class:`~offrecord.errors.RemoteProtocolError`.
        """
        key_type = reader.short("public key type")
        if key_type != PUBKEY_TYPE_DSA:
            raise RemoteProtocolError(f"unsupported public key type {key_type:#06x}")
        p = reader.mpi("DSA p")
        q = reader.mpi("DSA q")
        g = reader.mpi("DSA g")
        y = reader.mpi("DSA y")
        if p.bit_length() > MAX_P_BITS:
            raise RemoteProtocolError(f"DSA p is larger than {MAX_P_BITS} bits")
        if q <= 1 or q.bit_length() > MAX_Q_BITS:
            raise RemoteProtocolError(f"DSA q must be in (1, 2^{MAX_Q_BITS})")
        if not 1 < g < p:
            raise RemoteProtocolError("DSA g is out of range")
        if not 1 < y < p:
            raise RemoteProtocolError("DSA y is out of range")
        return cls(p, q, g, y)

    def fingerprint(self) -> bytes:
        """20-byte SHA-1 fingerprint (of the encoding minus the type bytes)."""
        return sha1(self._encode_params())

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` (r || s) is valid for ``message``.

        ``message`` is the signed value itself (OTR: a 32-byte MAC); it is
        read as a big-endian integer and reduced modulo q.  Never raises for
        a bad signature: wrong length, r or s outside (0, q), or a key whose
        parameters make the computation impossible all give ``False``.
        """
        p, q = self.p, self.q
        if len(signature) != SIGNATURE_LENGTH or p < 3 or q < 2:
            return False
        r = int.from_bytes(signature[:_HALF], "big")
        s = int.from_bytes(signature[_HALF:], "big")
        if not (0 < r < q and 0 < s < q):
            return False
        try:
            w = gmpy2.invert(s, q)
        except ZeroDivisionError:  # only if q is not prime
            return False
        if w == 0:
            return False
        rep = _representative(message, q)
        u1 = rep * w % q
        u2 = r * w % q
        v = gmpy2.powmod(self.g, u1, p) * gmpy2.powmod(self.y, u2, p) % p % q
        return bool(v == r)


# ---------------------------------------------------------------------------
# Private key


@dataclass(frozen=True, slots=True)
class DSAPrivateKey:
    """A DSA key pair.  ``x`` is secret and kept out of ``repr``."""

    p: int
    q: int
    g: int
    y: int
    x: int = field(repr=False)

    @property
    def public(self) -> DSAPublicKey:
        return DSAPublicKey(self.p, self.q, self.g, self.y)

    def fingerprint(self) -> bytes:
        return self.public.fingerprint()

    def sign(self, message: bytes) -> bytes:
        """Sign ``message`` (OTR: a 32-byte MAC value, reduced modulo q).

        Returns r || s, 20 bytes each, zero-padded.  The nonce is derived
        deterministically per RFC 6979 (HMAC-SHA256), so equal inputs give
        equal signatures.
        """
        p, q, g, x = self.p, self.q, self.g, self.x
        if q.bit_length() > MAX_Q_BITS or q < 3:
            raise ValueError("DSA q must be in (1, 2^160) to produce an OTR signature")
        rep = _representative(message, q)
        for k in _rfc6979_nonces(x, q, rep):
            r = int(gmpy2.powmod_sec(g, k, p)) % q
            if r == 0:
                continue
            k_inv = int(gmpy2.powmod_sec(k, q - 2, q))
            s = k_inv * ((rep + x * r) % q) % q
            if s == 0:
                continue
            return r.to_bytes(_HALF, "big") + s.to_bytes(_HALF, "big")
        raise AssertionError("unreachable: the nonce generator is infinite")  # pragma: no cover


def _representative(message: bytes, q: int) -> int:
    return int.from_bytes(message, "big") % q


# ---------------------------------------------------------------------------
# RFC 6979 nonce generation (section 3.2, HMAC-SHA256)


def _int2octets(value: int, rlen: int) -> bytes:
    return value.to_bytes(rlen, "big")


def _bits2int(data: bytes, qlen: int) -> int:
    value = int.from_bytes(data, "big")
    excess = len(data) * 8 - qlen
    return value >> excess if excess > 0 else value


def _hmac256(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def _rfc6979_nonces(x: int, q: int, h: int) -> Iterator[int]:
    """Yield the successive RFC 6979 candidates k in [1, q-1].

    ``h`` is the message representative, already reduced modulo q (it is
    what RFC 6979 calls ``bits2int(H(m)) mod q``; bits2octets of it is then
    just int2octets).  Normally only the first value is used; the caller asks
    for the next one when r or s comes out 0.
    """
    qlen = q.bit_length()
    rlen = (qlen + 7) // 8
    seed = _int2octets(x, rlen) + _int2octets(h % q, rlen)
    v = b"\x01" * 32
    k = b"\x00" * 32
    k = _hmac256(k, v + b"\x00" + seed)
    v = _hmac256(k, v)
    k = _hmac256(k, v + b"\x01" + seed)
    v = _hmac256(k, v)
    while True:
        t = b""
        while len(t) * 8 < qlen:
            v = _hmac256(k, v)
            t += v
        candidate = _bits2int(t, qlen)
        if 1 <= candidate < q:
            yield candidate
        k = _hmac256(k, v + b"\x00")
        v = _hmac256(k, v)


# ---------------------------------------------------------------------------
# Key generation


def _random_bits(random_bytes: RandomSource, bits: int) -> int:
    nbytes = (bits + 7) // 8
    raw = random_bytes(nbytes)
    if len(raw) != nbytes:
        raise ValueError("random source returned the wrong number of bytes")
    return int.from_bytes(raw, "big") >> (nbytes * 8 - bits)


def _generate_q(random_bytes: RandomSource) -> int:
    while True:
        start = _random_bits(random_bytes, _Q_BITS) | (1 << (_Q_BITS - 1)) | 1
        q = int(gmpy2.next_prime(start - 1))
        if q.bit_length() == _Q_BITS and gmpy2.is_prime(q, _PRIMALITY_REPS):
            return q


def _generate_p(random_bytes: RandomSource, q: int) -> int:
    step = 2 * q
    while True:
        candidate = _random_bits(random_bytes, _P_BITS) | (1 << (_P_BITS - 1))
        p = candidate - (candidate - 1) % step
        if p.bit_length() == _P_BITS and gmpy2.is_prime(p, _PRIMALITY_REPS):
            return p


def _generate_g(p: int, q: int) -> int:
    exponent = (p - 1) // q
    h = 2
    while True:
        g = int(gmpy2.powmod(h, exponent, p))
        if g != 1:
            return g
        h += 1


def _generate_x(random_bytes: RandomSource, q: int) -> int:
    bits = q.bit_length()
    while True:
        x = _random_bits(random_bytes, bits)
        if 1 <= x < q:
            return x


def generate_private_key(random_bytes: RandomSource) -> DSAPrivateKey:
    """A fresh DSA key: 1024-bit p, 160-bit q (libgcrypt's DSA-1024 shape).

    Deterministic for a deterministic ``random_bytes``.  See the module
    documentation for the construction.
    """
    q = _generate_q(random_bytes)
    p = _generate_p(random_bytes, q)
    g = _generate_g(p, q)
    x = _generate_x(random_bytes, q)
    y = int(gmpy2.powmod_sec(g, x, p))
    key = DSAPrivateKey(p, q, g, y, x)
    if not _domain_is_valid(key):  # pragma: no cover - defensive
        raise AssertionError("generated DSA key failed its self-check")
    return key


def _domain_is_valid(key: DSAPrivateKey) -> bool:
    p, q, g, y, x = key.p, key.q, key.g, key.y, key.x
    return bool(
        p.bit_length() == _P_BITS
        and q.bit_length() == _Q_BITS
        and (p - 1) % q == 0
        and gmpy2.is_prime(q, _PRIMALITY_REPS)
        and gmpy2.is_prime(p, _PRIMALITY_REPS)
        and 1 < g < p
        and gmpy2.powmod(g, q, p) == 1
        and 1 <= x < q
        and gmpy2.powmod_sec(g, x, p) == y
    )


# ---------------------------------------------------------------------------
# Fingerprint presentation


def fingerprint_of_encoding(encoded: bytes) -> bytes:
    """Fingerprint of a PUBKEY exactly as it was received on the wire.

    libotr's AKE hashes the peer's key bytes verbatim (everything after the
    type SHORT), so a peer that pads an MPI with leading zeros gets a
    fingerprint different from :meth:`DSAPublicKey.fingerprint` of the
    decoded key, which re-encodes minimally.  Use this on the bytes a
    :class:`~offrecord.wire.codec.Reader` consumed for
    :meth:`DSAPublicKey.decode` to agree with libotr in that case too.
    """
    if len(encoded) < 2 or encoded[:2] != encode_short(PUBKEY_TYPE_DSA):
        raise ValueError("not a DSA PUBKEY encoding")
    return sha1(encoded[2:])


def fingerprint_hex(fingerprint: bytes) -> str:
    """40 uppercase hex digits, no separators."""
    if len(fingerprint) != FINGERPRINT_LENGTH:
        raise ValueError("a fingerprint is 20 bytes")
    return fingerprint.hex().upper()


def format_fingerprint(fingerprint: bytes) -> str:
    """Human form, as libotr and Pidgin show it: five groups of eight hex digits."""
    digits = fingerprint_hex(fingerprint)
    return " ".join(digits[i : i + 8] for i in range(0, len(digits), 8))
