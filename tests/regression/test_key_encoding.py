"""Leading zero bytes and the AES-CTR counter: values that other
implementations encoded differently from libotr.

potr, otr4j and otr.js each once failed about one session in 256 against
libotr because a value whose top byte was zero was serialised with a
different length: otr4j wrote Java's ``BigInteger.toByteArray()`` (a sign
byte in front of MPIs with the top bit set, a missing byte for a leading
zero), otr.js converted AES keys through big integers and lost their leading
zero bytes, potr padded or stripped MPIs before hashing.  The derived keys
then differed and every message failed its MAC.

These tests construct exactly those cases (a shared secret, a D-H public key,
an AES key and a DSA y with a leading zero byte) and compare offrecord with
libotr 4.1.1's own functions (``otrl_dh_session``,
``otrl_dh_compute_v2_auth_keys``, gcry MPI printing) and, end to end, with the
libotr peer.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import gmpy2
import pytest

from offrecord.account import Account
from offrecord.ake import derive_ake_keys
from offrecord.crypto import dh
from offrecord.crypto.dsa import DSAPrivateKey
from offrecord.crypto.primitives import aes_ctr, hmac_sha1, hmac_sha256, sha1, sha256
from offrecord.keys import PairKeys
from offrecord.transports.peer import PeerDriver, parse_policy
from offrecord.wire.codec import encode_mpi
from offrecord.wire.envelope import classify
from offrecord.wire.messages import DataMessage, decode_message
from tests.interop.offrecord_peer import InProcessPeer
from tests.interop.router import Router, SubprocessPeer, peer_args
from tests.regression.libotr_oracle import available, oracle
from tests.regression.pair import KEYS, Pair

_MISSING = available()
pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(_MISSING is not None, reason=f"libotr: {_MISSING}"),
]

_BYTES = 192  # 1536 bits
_DATA = b"forty-two bytes of plaintext for three AES blocks!"


def _keypair(rng: random.Random) -> dh.DHKeyPair:
    return dh.generate_keypair(rng.randbytes(dh.DH_EXPONENT_BITS // 8))


def _short_public(rng: random.Random) -> dh.DHKeyPair:
    """A key pair whose public value has a zero top byte (g^x < 2^1528)."""
    while True:
        pair = _keypair(rng)
        if pair.public.bit_length() <= (_BYTES - 1) * 8:
            return pair


def _pair_with(rng: random.Random, accept: Callable[[int], bool]) -> tuple[dh.DHKeyPair, int]:
    """Our key pair and their public value such that ``accept(s)`` holds for
    the shared secret s."""
    theirs = _keypair(rng).public
    while True:
        ours = _keypair(rng)
        if accept(dh.shared_secret(ours, theirs)):
            return ours, theirs


def _secret_has_leading_zero(s: int) -> bool:
    return s.bit_length() <= (_BYTES - 1) * 8


def _assert_session_keys_match(ours: dh.DHKeyPair, theirs: int, top: bytes) -> None:
    mine = PairKeys.derive(ours, theirs)
    libotr = oracle().dh_session(ours.secret, ours.public, theirs, top + bytes(8), _DATA)
    assert libotr.send_mac_key == mine.send_mac
    assert libotr.recv_mac_key == mine.recv_mac
    assert libotr.extra_key == mine.extra_symmetric_key()
    assert libotr.encrypted == aes_ctr(mine.send_aes, top, _DATA)
    assert libotr.decrypted == aes_ctr(mine.recv_aes, top, _DATA)


def test_shared_secret_with_a_leading_zero_byte_gives_libotrs_session_keys() -> None:
    """s = g^xy with a zero top byte: secbytes is the minimal MPI (191 bytes),
    and every data-phase key equals libotr's."""
    ours, theirs = _pair_with(random.Random("s-zero"), _secret_has_leading_zero)
    secret = dh.shared_secret(ours, theirs)
    assert encode_mpi(secret)[:4] == (_BYTES - 1).to_bytes(4, "big")
    assert encode_mpi(secret)[4:] == oracle().mpi_bytes(secret)
    _assert_session_keys_match(ours, theirs, (1).to_bytes(8, "big"))
    # The mistake this guards against would have been caught: a 192-byte
    # (padded) secbytes gives keys libotr does not have.
    padded = _BYTES.to_bytes(4, "big") + secret.to_bytes(_BYTES, "big")
    libotr = oracle().dh_session(ours.secret, ours.public, theirs, bytes(16), _DATA)
    assert sha1(sha1(b"\x01" + padded)[:16]) not in (libotr.send_mac_key, libotr.recv_mac_key)


def test_shared_secret_with_a_leading_zero_byte_gives_libotrs_ake_keys() -> None:
    """The same s through the AKE's key derivation (ssid, c, c', m1, m1', m2, m2')."""
    ours, theirs = _pair_with(random.Random("s-zero-ake"), _secret_has_leading_zero)
    mine = derive_ake_keys(dh.shared_secret(ours, theirs))
    libotr = oracle().auth_keys(ours.secret, ours.public, theirs, _DATA)
    assert libotr.ssid == mine.ssid
    assert libotr.c_encrypted == aes_ctr(mine.c, bytes(8), _DATA)
    assert libotr.c_prime_encrypted == aes_ctr(mine.c_prime, bytes(8), _DATA)
    assert libotr.macs == tuple(
        hmac_sha256(key, _DATA) for key in (mine.m1, mine.m1_prime, mine.m2, mine.m2_prime)
    )


@pytest.mark.parametrize("which", ["send", "receive"])
def test_aes_key_with_a_leading_zero_byte(which: str) -> None:
    """An AES key whose first byte is zero (sha1(0x01 or 0x02 || secbytes)
    starting with 0x00) is used as 16 bytes, as libotr does."""
    rng = random.Random(f"aes-zero/{which}")
    theirs = _keypair(rng).public
    while True:
        ours = _keypair(rng)
        keys = PairKeys.derive(ours, theirs)
        key = keys.send_aes if which == "send" else keys.recv_aes
        if key[0] == 0:
            break
    _assert_session_keys_match(ours, theirs, (7).to_bytes(8, "big"))


def test_public_key_with_a_leading_zero_byte_is_encoded_as_libotr_does() -> None:
    """g^x < 2^1528: its MPI is 191 bytes, byte for byte what libgcrypt prints,
    and the D-H Commit's hash is over exactly that encoding."""
    ours = _short_public(random.Random("gx-zero"))
    encoded = encode_mpi(ours.public)
    assert encoded == (_BYTES - 1).to_bytes(4, "big") + oracle().mpi_bytes(ours.public)
    theirs = _keypair(random.Random("gx-zero/theirs")).public
    _assert_session_keys_match(ours, theirs, (1).to_bytes(8, "big"))
    # and from the other side, whose view of our value is the 191-byte one
    assert sha256(encoded) == sha256(b"\x00\x00\x00\xbf" + ours.public.to_bytes(191, "big"))


@pytest.mark.parametrize(
    "top",
    [
        bytes(8),
        (1).to_bytes(8, "big"),
        (0xFF).to_bytes(8, "big"),
        (1 << 32).to_bytes(8, "big"),
        b"\xff" * 8,
    ],
    ids=["0", "1", "0xff", "2^32", "2^64-1"],
)
def test_aes_ctr_counter_block_is_libotrs(top: bytes) -> None:
    """The counter block is the 8-byte counter on top and 8 zero bytes below;
    CTR then counts the whole 128-bit block (a 50-byte message spans 4 blocks).
    Checked against libgcrypt as libotr drives it."""
    ours, theirs = _pair_with(random.Random("ctr"), lambda s: True)
    _assert_session_keys_match(ours, theirs, top)
    incremented = oracle().incremented_counter(top)
    assert incremented[8:] == bytes(8)
    if top != b"\xff" * 8:
        assert int.from_bytes(incremented[:8], "big") == int.from_bytes(top, "big") + 1


def test_data_messages_decrypt_and_verify_with_libotrs_keys() -> None:
    """Known answer from a real conversation: each data message offrecord
    sends (counters 1, 2, 3 under one key pair, then fresh pairs as keys
    rotate) is decrypted and its MAC verified with the keys libotr derives
    from the receiver's DH key pair."""
    pair = Pair(seed="ctr-kat").secure()
    seen_counters: list[int] = []
    for round_ in range(3):
        for i in range(3):
            sender, receiver = ("alice", "bob") if round_ % 2 == 0 else ("bob", "alice")
            text = f"message {i} of round {round_}"
            pair.conv(sender).send(text)
            (wire,) = pair.out(sender)
            msg = decode_message(classify(wire).payload)
            assert isinstance(msg, DataMessage)
            keys = pair.session(receiver)._keys
            assert keys is not None
            ours = keys._our[msg.recipient_keyid]
            theirs = keys._their[msg.sender_keyid]
            libotr = oracle().dh_session(ours.secret, ours.public, theirs,
                                         msg.counter + bytes(8), msg.encrypted)  # fmt: skip
            assert libotr.decrypted == text.encode()
            assert hmac_sha1(libotr.recv_mac_key, msg.authenticated_part()) == msg.mac
            assert libotr.recv_mac_key != bytes(20)
            seen_counters.append(int.from_bytes(msg.counter, "big"))
            pair.deliver(receiver, [wire])
        pair.pump()
    assert seen_counters[:3] == [1, 2, 3]


# --- end to end against the libotr peer -------------------------------------------


class _ShortKeys:
    """A random source whose DH exponents all give a public value with a
    leading zero byte (so every D-H Commit, D-H Key and data message's next
    key of ours is a 191-byte MPI)."""

    def __init__(self, seed: str) -> None:
        self._rng = random.Random(seed)
        self.short_keys = 0

    def __call__(self, n: int) -> bytes:
        if n != dh.DH_EXPONENT_BITS // 8:
            return self._rng.randbytes(n)
        while True:
            raw = self._rng.randbytes(n)
            if dh.generate_keypair(raw).public.bit_length() <= (_BYTES - 1) * 8:
                self.short_keys += 1
                return raw


def _key_with_short_y() -> DSAPrivateKey:
    """Alice's DSA domain with an x whose y = g^x mod p has a zero top byte."""
    base = KEYS["alice"]
    rng = random.Random("short-y")
    top = (base.p.bit_length() + 7) // 8
    while True:
        x = rng.randrange(1, base.q)
        y = int(gmpy2.powmod(base.g, x, base.p))
        if y.bit_length() <= (top - 1) * 8:
            return DSAPrivateKey(base.p, base.q, base.g, y, x)


class _Peer(InProcessPeer):
    def __init__(self, account: Account, peer: str) -> None:
        self.key = account.private_key
        self.account = account
        self.driver = PeerDriver(account, peer)
        self._ready = self.driver.ready()
        self.name = f"offrecord:{account.name}"


def test_leading_zero_keys_interoperate_with_libotr(libotr_exe: Path) -> None:
    """offrecord with a DSA key whose y has a leading zero byte, and only DH
    keys whose public values have one, against the libotr peer: the AKE
    completes both ways, libotr shows our fingerprint, messages rotate keys
    in both directions, and SMP succeeds."""
    key = _key_with_short_y()
    assert encode_mpi(key.y)[4:] == oracle().mpi_bytes(key.y)
    source = _ShortKeys("e2e")
    account = Account("alice@example.org", "irc", key, policy=parse_policy("v2,v3"),
                      random_bytes=source)  # fmt: skip
    libotr = SubprocessPeer(
        [libotr_exe, *peer_args("bob@example.org", "alice@example.org")], name="libotr:bob"
    )
    with Router(_Peer(account, "bob@example.org"), libotr) as router:
        for starter in ("A", "B"):
            router.start(starter)
            _, b = router.wait_encrypted(version=3)
            assert b.their_fingerprint == key.fingerprint().hex().upper()
            for i in range(4):
                router.expect_message("A", f"from offrecord {starter} {i}")
                router.expect_message("B", f"from libotr {starter} {i}")
        router.smp("A", "a shared secret", question="which secret?")
        router.smp_respond("B", "a shared secret")
        assert router.status("A").trusted
    assert source.short_keys >= 10
