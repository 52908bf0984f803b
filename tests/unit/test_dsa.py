"""Unit tests for offrecord.crypto.dsa (OTR's long-term DSA keys)."""

from __future__ import annotations

import hashlib
import random
import warnings
from collections.abc import Callable

import gmpy2
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa as crypto_dsa
from cryptography.hazmat.primitives.asymmetric import utils as crypto_utils

from offrecord.crypto import dsa
from offrecord.crypto.dsa import (
    SIGNATURE_LENGTH,
    DSAPrivateKey,
    DSAPublicKey,
    fingerprint_hex,
    fingerprint_of_encoding,
    format_fingerprint,
    generate_private_key,
)
from offrecord.errors import RemoteProtocolError
from offrecord.wire.codec import Reader, encode_mpi, encode_short


def seeded(seed: int) -> Callable[[int], bytes]:
    return random.Random(seed).randbytes


@pytest.fixture(scope="module")
def key() -> DSAPrivateKey:
    return generate_private_key(seeded(1))


@pytest.fixture(scope="module")
def other_key() -> DSAPrivateKey:
    return generate_private_key(seeded(2))


# --- RFC 6979 appendix A.2.1 (DSA, 1024 bits) --------------------------------

RFC_P = int(
    "86F5CA03DCFEB225063FF830A0C769B9DD9D6153AD91D7CE27F787C43278B447"
    "E6533B86B18BED6E8A48B784A14C252C5BE0DBF60B86D6385BD2F12FB763ED88"
    "73ABFD3F5BA2E0A8C0A59082EAC056935E529DAF7C610467899C77ADEDFC846C"
    "881870B7B19B2B58F9BE0521A17002E3BDD6B86685EE90B3D9A1B02B782B1779",
    16,
)
RFC_Q = int("996F967F6C8E388D9E28D01E205FBA957A5698B1", 16)
RFC_G = int(
    "07B0F92546150B62514BB771E2A0C0CE387F03BDA6C56B505209FF25FD3C133D"
    "89BBCD97E904E09114D9A7DEFDEADFC9078EA544D2E401AEECC40BB9FBBF78FD"
    "87995A10A1C27CB7789B594BA7EFB5C4326A9FE59A070E136DB77175464ADCA4"
    "17BE5DCE2F40D10A46A3A3943F26AB7FD9C0398FF8C76EE0A56826A8A88F1DBD",
    16,
)
RFC_X = int("411602CB19A6CCC34494D79D98EF1E7ED5AF25F7", 16)
RFC_Y = int(
    "5DF5E01DED31D0297E274E1691C192FE5868FEF9E19A84776454B100CF16F653"
    "92195A38B90523E2542EE61871C0440CB87C322FC4B4D2EC5E1E7EC766E1BE8D"
    "4CE935437DC11C3C8FD426338933EBFE739CB3465F4D3668C5E473508253B1E6"
    "82F65CBDC4FAE93C2EA212390E54905A86E2223170B44EAA7DA5DD9FFCFB7F3B",
    16,
)
RFC_KEY = DSAPrivateKey(RFC_P, RFC_Q, RFC_G, RFC_Y, RFC_X)

# (message, k, r, s) for SHA-256, whose HMAC is also the DRBG hash here.
RFC_SHA256_VECTORS = [
    (
        b"sample",
        "519BA0546D0C39202A7D34D7DFA5E760B318BCFB",
        "81F2F5850BE5BC123C43F71A3033E9384611C545",
        "4CDD914B65EB6C66A8AAAD27299BEE6B035F5E89",
    ),
    (
        b"test",
        "5A67592E8128E03A417B0484410FB72C0B630E1A",
        "22518C127299B0F6FDC9872B282B9E70D0790812",
        "6837EC18F150D55DE95B5E29BE7AF5D01E4FE160",
    ),
]


@pytest.mark.parametrize(("message", "k_hex", "r_hex", "s_hex"), RFC_SHA256_VECTORS)
def test_rfc6979_vectors(message: bytes, k_hex: str, r_hex: str, s_hex: str) -> None:
    # RFC 6979 signs bits2int(SHA-256(m)), i.e. the leftmost 160 bits of the
    # hash; feeding exactly that value as the message gives the same
    # representative, hence the same nonce and signature.
    h1 = int.from_bytes(hashlib.sha256(message).digest(), "big") >> (256 - 160)
    signed = h1.to_bytes(20, "big")
    nonces = dsa._rfc6979_nonces(RFC_X, RFC_Q, h1 % RFC_Q)
    assert next(nonces) == int(k_hex, 16)
    signature = RFC_KEY.sign(signed)
    assert signature == bytes.fromhex(r_hex + s_hex)
    assert RFC_KEY.public.verify(signed, signature)


def test_rfc_key_is_consistent() -> None:
    assert pow(RFC_G, RFC_X, RFC_P) == RFC_Y


# --- signing and verification ------------------------------------------------


def test_sign_verify_roundtrip(key: DSAPrivateKey) -> None:
    message = bytes(range(32))
    signature = key.sign(message)
    assert len(signature) == SIGNATURE_LENGTH == 40
    assert key.public.verify(message, signature)


def test_sign_is_deterministic(key: DSAPrivateKey) -> None:
    message = b"\x42" * 32
    assert key.sign(message) == key.sign(message)
    assert key.sign(message) != key.sign(b"\x43" * 32)


def test_signature_depends_on_key(key: DSAPrivateKey, other_key: DSAPrivateKey) -> None:
    message = b"\x42" * 32
    assert key.sign(message) != other_key.sign(message)


def test_message_is_reduced_modulo_q(key: DSAPrivateKey) -> None:
    # Two 32-byte values congruent modulo q are the same representative.
    low = 12345
    message_a = low.to_bytes(32, "big")
    message_b = (low + key.q * 2**90).to_bytes(32, "big")
    assert int.from_bytes(message_b, "big").bit_length() > 160
    signature = key.sign(message_a)
    assert key.sign(message_b) == signature
    assert key.public.verify(message_b, signature)


def test_message_is_not_truncated(key: DSAPrivateKey) -> None:
    # FIPS 186 would keep the leftmost 160 bits; OTR reduces modulo q, so two
    # messages sharing their leftmost 160 bits are different representatives.
    message_a = b"\x11" * 20 + b"\x00" * 12
    message_b = b"\x11" * 20 + b"\x00" * 11 + b"\x01"
    signature = key.sign(message_a)
    assert not key.public.verify(message_b, signature)


def test_short_signature_values_are_zero_padded() -> None:
    # Find a message whose r or s has a zero top byte (about 1 in 128).
    k = RFC_KEY
    for i in range(4000):
        message = i.to_bytes(32, "big")
        signature = k.sign(message)
        if signature[0] == 0 or signature[20] == 0:
            assert len(signature) == 40
            assert k.public.verify(message, signature)
            return
    pytest.fail("no signature with a leading zero byte found")


def test_empty_message_signs_zero(key: DSAPrivateKey) -> None:
    # libotr signs an empty buffer as the integer 0.
    signature = key.sign(b"")
    assert key.public.verify(b"\x00" * 32, signature)


def test_verify_rejects_tampered_message(key: DSAPrivateKey) -> None:
    message = bytes(range(32))
    signature = key.sign(message)
    for i in range(32):
        tampered = bytearray(message)
        tampered[i] ^= 0x01
        assert not key.public.verify(bytes(tampered), signature)


def test_verify_rejects_tampered_signature(key: DSAPrivateKey) -> None:
    message = bytes(range(32))
    signature = key.sign(message)
    for i in range(SIGNATURE_LENGTH):
        tampered = bytearray(signature)
        tampered[i] ^= 0x80
        assert not key.public.verify(message, bytes(tampered))


def test_verify_rejects_wrong_key(key: DSAPrivateKey, other_key: DSAPrivateKey) -> None:
    message = bytes(range(32))
    assert not other_key.public.verify(message, key.sign(message))


@pytest.mark.parametrize("length", [0, 1, 20, 39, 41, 80])
def test_verify_rejects_bad_length(key: DSAPrivateKey, length: int) -> None:
    message = bytes(range(32))
    signature = key.sign(message)
    candidate = (signature * 2)[:length]
    assert not key.public.verify(message, candidate)


def _sig(r: int, s: int) -> bytes:
    return r.to_bytes(20, "big") + s.to_bytes(20, "big")


def test_verify_rejects_out_of_range_r_s(key: DSAPrivateKey) -> None:
    message = bytes(range(32))
    good = key.sign(message)
    r = int.from_bytes(good[:20], "big")
    s = int.from_bytes(good[20:], "big")
    q = key.q
    for bad_r, bad_s in [(0, s), (r, 0), (0, 0), (q, s), (r, q), (r + q, s), (r, s + q)]:
        if bad_r < 2**160 and bad_s < 2**160:
            assert not key.public.verify(message, _sig(bad_r, bad_s))
    assert not key.public.verify(message, b"\xff" * 40)


def test_verify_never_raises_on_degenerate_key() -> None:
    # Keys built directly (not decoded) may be nonsense; verify stays False.
    message = b"\x01" * 32
    signature = _sig(1, 1)
    for p, q, g, y in [(0, 0, 0, 0), (23, 1, 2, 2), (23, 4, 2, 2), (23, 11, 2, 2), (2, 11, 2, 2)]:
        assert DSAPublicKey(p, q, g, y).verify(message, signature) in (False, True)
    assert not DSAPublicKey(23, 4, 2, 2).verify(message, _sig(1, 2))
    assert not DSAPublicKey(0, 0, 0, 0).verify(message, signature)


# --- encoding ------------------------------------------------------------------


def test_encode_layout(key: DSAPrivateKey) -> None:
    pub = key.public
    expected = (
        b"\x00\x00" + encode_mpi(pub.p) + encode_mpi(pub.q) + encode_mpi(pub.g) + encode_mpi(pub.y)
    )
    assert pub.encode() == expected
    # 1024-bit p and 160-bit q: lengths 128 and 20
    assert pub.encode()[2:6] == (128).to_bytes(4, "big")
    assert pub.encode()[6 + 128 : 6 + 128 + 4] == (20).to_bytes(4, "big")


def test_encode_decode_roundtrip(key: DSAPrivateKey) -> None:
    pub = key.public
    reader = Reader(pub.encode() + b"trailer")
    assert DSAPublicKey.decode(reader) == pub
    assert reader.rest() == b"trailer"


def _small_y_key() -> DSAPrivateKey:
    # A key whose y has a zero top byte (y < 2^1016): search x deterministically.
    k = RFC_KEY
    for x in range(1, 5000):
        y = pow(k.g, x, k.p)
        if y < 2**1016:
            return DSAPrivateKey(k.p, k.q, k.g, y, x)
    raise AssertionError("no small y found")


def test_minimal_mpi_for_leading_zero_values() -> None:
    small = _small_y_key()
    encoded = small.public.encode()
    y_bytes = small.y.to_bytes((small.y.bit_length() + 7) // 8, "big")
    assert encoded.endswith(len(y_bytes).to_bytes(4, "big") + y_bytes)
    assert len(y_bytes) < 128
    assert DSAPublicKey.decode(Reader(encoded)) == small.public
    assert small.public.verify(b"\x05" * 32, small.sign(b"\x05" * 32))


def test_decode_accepts_leading_zero_mpis() -> None:
    pub = RFC_KEY.public

    def padded(value: int) -> bytes:
        raw = b"\x00\x00" + value.to_bytes((value.bit_length() + 7) // 8, "big")
        return len(raw).to_bytes(4, "big") + raw

    wire = b"\x00\x00" + padded(pub.p) + padded(pub.q) + padded(pub.g) + padded(pub.y)
    decoded = DSAPublicKey.decode(Reader(wire))
    assert decoded == pub
    # re-encoding (and so the fingerprint) is minimal again
    assert decoded.encode() == pub.encode()
    assert decoded.fingerprint() == pub.fingerprint()
    # ... while libotr hashes the received bytes verbatim
    assert fingerprint_of_encoding(wire) == hashlib.sha1(wire[2:]).digest()
    assert fingerprint_of_encoding(wire) != pub.fingerprint()
    assert fingerprint_of_encoding(pub.encode()) == pub.fingerprint()
    for bad in (b"", b"\x00", b"\x00\x01" + wire[2:]):
        with pytest.raises(ValueError):
            fingerprint_of_encoding(bad)


def _wire(p: int, q: int, g: int, y: int, key_type: int = 0) -> bytes:
    return encode_short(key_type) + encode_mpi(p) + encode_mpi(q) + encode_mpi(g) + encode_mpi(y)


def _bad_parameter_cases() -> list[tuple[str, bytes]]:
    p, q, g, y = RFC_P, RFC_Q, RFC_G, RFC_Y
    big_p = (1 << 4096) + 1  # 4097 bits
    return [
        ("type 1", _wire(p, q, g, y, key_type=1)),
        ("type 0xffff", _wire(p, q, g, y, key_type=0xFFFF)),
        ("q = 0", _wire(p, 0, g, y)),
        ("q = 1", _wire(p, 1, g, y)),
        ("q 161 bits", _wire(p, 1 << 160, g, y)),
        ("p 4097 bits", _wire(big_p, q, g, y)),
        ("g = 0", _wire(p, q, 0, y)),
        ("g = 1", _wire(p, q, 1, y)),
        ("g = p", _wire(p, q, p, y)),
        ("g > p", _wire(p, q, p + 5, y)),
        ("y = 0", _wire(p, q, g, 0)),
        ("y = 1", _wire(p, q, g, 1)),
        ("y = p", _wire(p, q, g, p)),
        ("y > p", _wire(p, q, g, p + 5)),
        ("p = 0", _wire(0, q, g, y)),
        ("truncated", _wire(p, q, g, y)[:-1]),
        ("empty", b""),
        ("type only", b"\x00\x00"),
    ]


@pytest.mark.parametrize(("what", "wire"), _bad_parameter_cases())
def test_decode_rejects_bad_parameters(what: str, wire: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        DSAPublicKey.decode(Reader(wire))


def test_decode_limits_are_inclusive() -> None:
    # q of exactly 160 bits and p of exactly 4096 bits are fine (cheap checks only).
    p = (1 << 4095) + 1
    q = (1 << 159) + 7
    assert DSAPublicKey.decode(Reader(_wire(p, q, 2, 2))) == DSAPublicKey(p, q, 2, 2)
    assert DSAPublicKey.decode(Reader(_wire(7, 2, 2, 6))) == DSAPublicKey(7, 2, 2, 6)


def test_decode_errors_do_not_leak_values() -> None:
    secretish = 0xDEADBEEF1234
    with pytest.raises(RemoteProtocolError) as info:
        DSAPublicKey.decode(Reader(_wire(RFC_P, RFC_Q, RFC_G, secretish + RFC_P)))
    assert "deadbeef" not in str(info.value).lower()
    assert str(secretish) not in str(info.value)


# --- fingerprints -------------------------------------------------------------


def test_fingerprint_is_sha1_without_type(key: DSAPrivateKey) -> None:
    pub = key.public
    assert pub.fingerprint() == hashlib.sha1(pub.encode()[2:]).digest()
    assert key.fingerprint() == pub.fingerprint()
    assert len(pub.fingerprint()) == 20


def test_fingerprint_formats() -> None:
    fp = bytes.fromhex("0123456789abcdef0011223344556677deadbeef")
    assert fingerprint_hex(fp) == "0123456789ABCDEF0011223344556677DEADBEEF"
    assert format_fingerprint(fp) == "01234567 89ABCDEF 00112233 44556677 DEADBEEF"
    for bad in (b"", b"\x00" * 19, b"\x00" * 21):
        with pytest.raises(ValueError):
            fingerprint_hex(bad)
        with pytest.raises(ValueError):
            format_fingerprint(bad)


# --- secrecy --------------------------------------------------------------------


def test_repr_and_str_hide_x(key: DSAPrivateKey) -> None:
    for text in (repr(key), str(key)):
        assert "x=" not in text
        assert str(key.x) not in text
        assert hex(key.x)[2:] not in text.lower()


# --- key generation --------------------------------------------------------------


def _check_domain(k: DSAPrivateKey) -> None:
    assert k.p.bit_length() == 1024
    assert k.q.bit_length() == 160
    assert gmpy2.is_prime(k.p, 50)
    assert gmpy2.is_prime(k.q, 50)
    assert (k.p - 1) % k.q == 0
    assert 1 < k.g < k.p
    assert pow(k.g, k.q, k.p) == 1
    assert 1 <= k.x < k.q
    assert pow(k.g, k.x, k.p) == k.y


@pytest.mark.parametrize("seed", [1, 2, 3, 2024])
def test_keygen_produces_valid_domain(seed: int) -> None:
    _check_domain(generate_private_key(seeded(seed)))


def test_keygen_is_deterministic_under_seed() -> None:
    assert generate_private_key(seeded(7)) == generate_private_key(seeded(7))
    assert generate_private_key(seeded(7)) != generate_private_key(seeded(8))


def test_keygen_uses_only_injected_randomness(monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import secrets

    def forbidden(*_args: object) -> bytes:
        raise AssertionError("global randomness used")

    monkeypatch.setattr(os, "urandom", forbidden)
    monkeypatch.setattr(secrets, "token_bytes", forbidden)
    calls: list[int] = []
    source = seeded(11)

    def counting(n: int) -> bytes:
        calls.append(n)
        return source(n)

    _check_domain(generate_private_key(counting))
    assert calls


def test_keygen_rejects_short_random_source() -> None:
    with pytest.raises(ValueError):
        generate_private_key(lambda n: b"\x00" * (n - 1))


def test_sign_rejects_oversized_q() -> None:
    big = DSAPrivateKey(RFC_P, (1 << 160) + 7, RFC_G, RFC_Y, RFC_X)
    with pytest.raises(ValueError) as info:
        big.sign(b"\x00" * 32)
    assert str(RFC_X) not in str(info.value)


# --- cross-check with the cryptography package ----------------------------------


def _crypto_private(k: DSAPrivateKey) -> crypto_dsa.DSAPrivateKey:
    params = crypto_dsa.DSAParameterNumbers(k.p, k.q, k.g)
    public = crypto_dsa.DSAPublicNumbers(k.y, params)
    return crypto_dsa.DSAPrivateNumbers(k.x, public).private_key()


def _prehashed(message: bytes, q: int) -> bytes:
    # The representative as a 20-byte "SHA-1 digest": OpenSSL uses the
    # leftmost 160 bits of the digest, which is then exactly the value.
    return (int.from_bytes(message, "big") % q).to_bytes(20, "big")


@pytest.mark.parametrize("seed", [1, 5])
def test_cross_check_with_cryptography(seed: int) -> None:
    k = generate_private_key(seeded(seed))
    rng = random.Random(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        theirs = _crypto_private(k)
        for _ in range(5):
            message = rng.randbytes(32)
            digest = _prehashed(message, k.q)
            algorithm = crypto_utils.Prehashed(hashes.SHA1())
            # ours -> cryptography
            r, s = int.from_bytes(k.sign(message)[:20]), int.from_bytes(k.sign(message)[20:])
            theirs.public_key().verify(crypto_utils.encode_dss_signature(r, s), digest, algorithm)
            # cryptography -> ours
            der = theirs.sign(digest, algorithm)
            r2, s2 = crypto_utils.decode_dss_signature(der)
            assert k.public.verify(message, _sig(r2, s2))
            assert not k.public.verify(rng.randbytes(32), _sig(r2, s2))
