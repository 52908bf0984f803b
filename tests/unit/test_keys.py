"""Unit tests for offrecord.keys: key ids and rotation (spec "Key Management"),
session keys, counters, revealing old MAC keys, lazy derivation, and that every
rejected message leaves the key state exactly as it was."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import pytest

from offrecord.ake import AKEComplete
from offrecord.crypto import dh
from offrecord.crypto.dsa import DSAPublicKey
from offrecord.crypto.primitives import aes_ctr, hmac_sha1, sha1, sha256
from offrecord.errors import LocalProtocolError, RemoteProtocolError
from offrecord.keys import DataKeys
from offrecord.wire.codec import encode_data, encode_mpi
from offrecord.wire.messages import DataMessage, decode_message, encode_message

A_TAG, B_TAG = 0x1111, 0x2222
ANY_KEY = DSAPublicKey(23, 11, 4, 9)  # DataKeys never looks at the long-term key


@dataclass
class Side:
    """One end: its DataKeys, and a log of what it sent and accepted."""

    name: str
    keys: DataKeys
    tag: int
    sent: list[tuple[DataMessage, bytes]] = field(default_factory=list)  # (msg, MAC key)
    accepted: list[DataMessage] = field(default_factory=list)
    revealed: list[bytes] = field(default_factory=list)


def make_pair(
    version: int = 3, seed: int = 0, *, a_keyid: int = 1, b_keyid: int = 1
) -> tuple[Side, Side]:
    """Two DataKeys as a completed AKE leaves them (AKE key ids a_keyid / b_keyid)."""
    rng_a = random.Random(f"a-{seed}").randbytes
    rng_b = random.Random(f"b-{seed}").randbytes
    a_dh = dh.generate_keypair(rng_a(40))
    b_dh = dh.generate_keypair(rng_b(40))

    def done(our: dh.DHKeyPair, our_id: int, their: dh.DHKeyPair, their_id: int) -> AKEComplete:
        return AKEComplete(
            version=version, their_public_key=ANY_KEY, their_fingerprint=b"\x00" * 20,
            their_keyid=their_id, their_dh=their.public, our_keyid=our_id, our_dh=our,
            ssid=b"\x00" * 8, sent_reveal_signature=False, their_instance=0,
        )  # fmt: skip

    a = Side("a", DataKeys(done(a_dh, a_keyid, b_dh, b_keyid), rng_a), A_TAG)
    b = Side("b", DataKeys(done(b_dh, b_keyid, a_dh, a_keyid), rng_b), B_TAG)
    return a, b


def encrypt(src: Side, dst: Side, text: bytes, flags: int = 0) -> tuple[DataMessage, bytes]:
    """Encrypt; log the message with its MAC key; return it (over the wire) and the extra key."""
    msg, extra = src.keys.encrypt(text, flags=flags, sender_tag=src.tag, receiver_tag=dst.tag)
    mac_key = src.keys._pairs[(msg.sender_keyid, msg.recipient_keyid)].send_mac
    src.sent.append((msg, mac_key))
    src.revealed += [msg.old_mac_keys[i : i + 20] for i in range(0, len(msg.old_mac_keys), 20)]
    received = decode_message(encode_message(msg))
    assert isinstance(received, DataMessage)
    return received, extra


def deliver(dst: Side, msg: DataMessage) -> bytes:
    plain = dst.keys.decrypt(msg).plaintext
    dst.accepted.append(msg)
    return plain


def send(src: Side, dst: Side, text: bytes = b"hello") -> DataMessage:
    msg, _ = encrypt(src, dst, text)
    assert deliver(dst, msg) == text
    return msg


def ids(keys: DataKeys) -> tuple[int, int]:
    return keys.our_keyid, keys.their_keyid


# --- key ids and rotation --------------------------------------------------------------


def test_after_the_ake_our_keyid_is_2_and_theirs_is_the_ake_keyid() -> None:
    a, b = make_pair(a_keyid=1, b_keyid=7)
    assert ids(a.keys) == (2, 7)
    assert ids(b.keys) == (8, 1)


@pytest.mark.parametrize("version", [2, 3])
def test_ping_pong_rotates_both_sides_every_message(version: int) -> None:
    a, b = make_pair(version)
    for n in range(1, 11):
        src, dst = (a, b) if n % 2 else (b, a)
        msg = send(src, dst, f"message {n}".encode())
        assert msg.version == version
        if n % 2:  # a -> b
            assert (msg.sender_keyid, msg.recipient_keyid) == ((n + 1) // 2, (n + 1) // 2)
        else:  # b -> a
            assert (msg.sender_keyid, msg.recipient_keyid) == (n // 2, n // 2 + 1)
        # The next_dh of each message is the sender's newest key pair.
        assert msg.next_dh == src.keys._our[src.keys.our_keyid].public
        assert msg.counter == b"\x00" * 7 + b"\x01"  # every pair is new
    assert ids(a.keys) == (7, 6)
    assert ids(b.keys) == (6, 6)


def test_burst_one_way_keeps_one_pair_and_counts_up() -> None:
    a, b = make_pair()
    burst = [send(a, b, b"x%d" % i) for i in range(5)]
    assert {(m.sender_keyid, m.recipient_keyid) for m in burst} == {(1, 1)}
    assert [int.from_bytes(m.counter, "big") for m in burst] == [1, 2, 3, 4, 5]
    assert len({m.next_dh for m in burst}) == 1
    # Only the first message of the burst advanced b's view of a's keys.
    assert ids(b.keys) == (2, 2)
    assert ids(a.keys) == (2, 1)

    reply = send(b, a, b"back")
    assert (reply.sender_keyid, reply.recipient_keyid) == (1, 2)
    assert ids(a.keys) == (3, 2)

    burst = [send(b, a, b"y%d" % i) for i in range(4)]
    assert {(m.sender_keyid, m.recipient_keyid) for m in burst} == {(1, 2)}
    assert [int.from_bytes(m.counter, "big") for m in burst] == [2, 3, 4, 5]
    assert ids(a.keys) == (3, 2)


def test_both_directions_interleaved_with_delays() -> None:
    """Messages cross on the wire: each side keeps decrypting with the previous keys."""
    a, b = make_pair()
    send(a, b)
    send(b, a)
    m_a, _ = encrypt(a, b, b"from a")
    m_b, _ = encrypt(b, a, b"from b")
    assert deliver(b, m_a) == b"from a"
    assert deliver(a, m_b) == b"from b"
    for _ in range(3):
        send(a, b)
        send(b, a)


# --- the session keys, recomputed from the spec --------------------------------------


def spec_keys(our: dh.DHKeyPair, their_public: int) -> tuple[bytes, bytes, bytes, bytes]:
    """(sending AES, sending MAC, receiving AES, receiving MAC) per the spec."""
    secbytes = encode_mpi(pow(their_public, our.secret, dh.MODULUS))
    send_byte, recv_byte = (b"\x01", b"\x02") if our.public > their_public else (b"\x02", b"\x01")
    send_aes = sha1(send_byte + secbytes)[:16]
    recv_aes = sha1(recv_byte + secbytes)[:16]
    return send_aes, sha1(send_aes), recv_aes, sha1(recv_aes)


def test_messages_are_encrypted_and_maced_as_the_spec_says() -> None:
    a, b = make_pair(seed=3)
    ends = set()
    for n in range(8):
        src, dst = (a, b) if n % 2 == 0 else (b, a)
        our = src.keys._our[src.keys.our_keyid - 1]
        their_public = src.keys._their[src.keys.their_keyid]
        ends.add(our.public > their_public)
        send_aes, send_mac, _, _ = spec_keys(our, their_public)
        plain = f"spec check {n}".encode()
        msg, _ = encrypt(src, dst, plain)
        assert msg.encrypted == aes_ctr(send_aes, msg.counter, plain)
        assert msg.mac == hmac_sha1(send_mac, msg.authenticated_part())
        # The receiver's receiving keys are the sender's sending keys.
        _, _, recv_aes, recv_mac = spec_keys(
            dst.keys._our[msg.recipient_keyid], dst.keys._their[msg.sender_keyid]
        )
        assert (recv_aes, recv_mac) == (send_aes, send_mac)
        assert deliver(dst, msg) == plain
    assert ends == {True, False}, "the high and low ends both occurred"


def test_extra_symmetric_key_is_h2_ff_of_the_pair_and_equal_on_both_sides() -> None:
    a, b = make_pair()
    send(a, b)
    our = b.keys._our[b.keys.our_keyid - 1]
    their_public = b.keys._their[b.keys.their_keyid]
    msg, sender_key = encrypt(b, a, b"")
    received_key = a.keys.decrypt(msg).extra_key
    secbytes = encode_mpi(pow(their_public, our.secret, dh.MODULUS))
    assert sender_key == received_key == sha256(b"\xff" + secbytes)


# --- rejections ---------------------------------------------------------------------------


def snapshot(keys: DataKeys) -> tuple[object, ...]:
    """Everything a rejected message must not change.  A pair derived only to
    check a MAC (all counters zero, never used) is a cache entry, not state."""
    pairs = {
        k: (p.send_counter, p.recv_counter, p.recv_mac_used)
        for k, p in keys._pairs.items()
        if (p.send_counter, p.recv_counter, p.recv_mac_used) != (0, 0, False)
    }
    return (
        keys.our_keyid,
        keys.their_keyid,
        sorted((k, v.public) for k, v in keys._our.items()),
        sorted(keys._their.items()),
        pairs,
        bytes(keys._to_reveal),
    )


def remac(msg: DataMessage, key: bytes, **changes: object) -> DataMessage:
    """``msg`` with fields changed and a MAC under ``key`` (a key the receiver knows)."""
    changed = replace(msg, **changes)  # type: ignore[arg-type]
    return replace(changed, mac=hmac_sha1(key, changed.authenticated_part()))


Tamper = Callable[[DataMessage, DataKeys], DataMessage]


def bad_mac(msg: DataMessage, _: DataKeys) -> DataMessage:
    return replace(msg, mac=bytes(20))


def flipped_ciphertext(msg: DataMessage, _: DataKeys) -> DataMessage:
    return replace(msg, encrypted=bytes([msg.encrypted[0] ^ 1]) + msg.encrypted[1:])


def flipped_next_dh(msg: DataMessage, _: DataKeys) -> DataMessage:
    return replace(msg, next_dh=msg.next_dh ^ 2)


def flipped_flags(msg: DataMessage, _: DataKeys) -> DataMessage:
    return replace(msg, flags=msg.flags ^ 1)


def recipient_too_new(msg: DataMessage, receiver: DataKeys) -> DataMessage:
    return replace(msg, recipient_keyid=receiver.our_keyid + 1)


def recipient_too_old(msg: DataMessage, receiver: DataKeys) -> DataMessage:
    return replace(msg, recipient_keyid=receiver.our_keyid - 2)


def sender_too_new(msg: DataMessage, receiver: DataKeys) -> DataMessage:
    return replace(msg, sender_keyid=receiver.their_keyid + 1)


def sender_too_old(msg: DataMessage, receiver: DataKeys) -> DataMessage:
    return replace(msg, sender_keyid=receiver.their_keyid - 2)


TAMPERINGS: list[tuple[Tamper, str]] = [
    (bad_mac, "MAC"),
    (flipped_ciphertext, "MAC"),
    (flipped_next_dh, "MAC"),
    (flipped_flags, "MAC"),
    (recipient_too_new, "unknown key of ours"),
    (recipient_too_old, "unknown key of ours"),
    (sender_too_new, "unknown key of theirs"),
    (sender_too_old, "unknown key of theirs"),
]


def mid_conversation() -> tuple[Side, Side]:
    """A few rounds in, so that every key id is > 2 and both sides hold two keys."""
    a, b = make_pair(seed=5)
    for _ in range(3):
        send(a, b)
        send(b, a)
    return a, b


def still_works(a: Side, b: Side) -> None:
    for _ in range(2):
        send(a, b, b"still fine")
        send(b, a, b"still fine")


@pytest.mark.parametrize(("tamper", "why"), TAMPERINGS, ids=[t.__name__ for t, _ in TAMPERINGS])
def test_tampered_message_is_rejected_and_changes_nothing(tamper: Tamper, why: str) -> None:
    a, b = mid_conversation()
    msg, _ = encrypt(a, b, b"the real one")
    before = snapshot(b.keys)
    with pytest.raises(RemoteProtocolError, match=why):
        b.keys.decrypt(tamper(msg, b.keys))
    assert snapshot(b.keys) == before
    assert deliver(b, msg) == b"the real one"
    still_works(a, b)


def test_replayed_counter_is_rejected_and_changes_nothing() -> None:
    a, b = mid_conversation()
    first = send(a, b, b"one")
    second = send(a, b, b"two")
    for replay in (first, second):
        before = snapshot(b.keys)
        with pytest.raises(RemoteProtocolError, match="counter"):
            b.keys.decrypt(replay)
        assert snapshot(b.keys) == before
    still_works(a, b)


def test_counter_must_increase_even_with_a_valid_mac() -> None:
    """A correctly MACed message whose counter is not larger is still rejected."""
    a, b = mid_conversation()
    msg = send(a, b, b"one")
    mac_key = a.sent[-1][1]
    for counter in (msg.counter, b"\x00" * 8):
        forged = remac(msg, mac_key, counter=counter)
        with pytest.raises(RemoteProtocolError, match="counter"):
            b.keys.decrypt(forged)
    bigger = remac(msg, mac_key, counter=b"\x00" * 7 + b"\x09")
    b.keys.decrypt(bigger)  # accepted: a larger counter with a valid MAC
    send(b, a)  # a moves on to a new pair, whose counter starts afresh
    still_works(a, b)


def test_out_of_order_delivery_within_a_pair_drops_the_older_message() -> None:
    a, b = mid_conversation()
    older, _ = encrypt(a, b, b"older")
    newer, _ = encrypt(a, b, b"newer")
    assert deliver(b, newer) == b"newer"
    with pytest.raises(RemoteProtocolError, match="counter"):
        b.keys.decrypt(older)


def test_previous_sender_key_without_a_stored_key_is_rejected() -> None:
    """After the AKE their_y[their_keyid-1] is NULL: a message naming it is rejected."""
    a, b = make_pair(a_keyid=5)
    msg, _ = encrypt(a, b, b"hi")
    assert msg.sender_keyid == 5
    assert b.keys.their_keyid == 5
    before = snapshot(b.keys)
    with pytest.raises(RemoteProtocolError, match="unknown key of theirs"):
        b.keys.decrypt(replace(msg, sender_keyid=4))
    assert snapshot(b.keys) == before
    assert deliver(b, msg) == b"hi"
    # Once a newer key arrived, the previous one is known and accepted.
    assert b.keys.their_keyid == 6
    older, _ = encrypt(a, b, b"still keyid 5")
    assert older.sender_keyid == 5
    assert deliver(b, older) == b"still keyid 5"


def test_message_with_keys_from_two_rotations_ago_is_rejected() -> None:
    a, b = make_pair()
    stale, _ = encrypt(a, b, b"stale")  # keys (1, 1)
    send(a, b)
    send(b, a)
    send(a, b)
    send(b, a)
    with pytest.raises(RemoteProtocolError, match="unknown key"):
        b.keys.decrypt(stale)


def test_send_counter_exhaustion_is_a_local_error() -> None:
    a, b = make_pair()
    send(a, b)
    pair = a.keys._pairs[(1, 1)]
    pair.send_counter = (1 << 64) - 1
    with pytest.raises(LocalProtocolError):
        a.keys.encrypt(b"x", flags=0, sender_tag=A_TAG, receiver_tag=B_TAG)


# --- revealing old MAC keys ------------------------------------------------------------------


def used_to_verify(side: Side, peer: Side) -> list[bytes]:
    """MAC keys ``side`` used to verify an accepted message (one per pair)."""
    keys_of = {m.authenticated_part(): k for m, k in peer.sent}
    used: list[bytes] = []
    for msg in side.accepted:
        key = keys_of[msg.authenticated_part()]
        if key not in used:
            used.append(key)
    return used


def pending(side: Side) -> set[bytes]:
    """MAC keys not revealed yet: still held in a live pair, or queued for the next message."""
    live = {p.recv_mac for p in side.keys._pairs.values() if p.recv_mac_used}
    queued = {
        bytes(side.keys._to_reveal[i : i + 20]) for i in range(0, len(side.keys._to_reveal), 20)
    }
    return live | queued


def check_reveals(side: Side, peer: Side) -> None:
    used = used_to_verify(side, peer)
    own_send_keys = {k for _, k in side.sent}
    assert len(side.revealed) == len(set(side.revealed)), "a MAC key was revealed twice"
    assert set(side.revealed) <= set(used), "revealed a key never used to verify"
    assert not set(side.revealed) & own_send_keys
    assert set(side.revealed) | pending(side) == set(used)
    assert not set(side.revealed) & pending(side)


def test_old_mac_keys_are_revealed_exactly_once_and_only_if_used() -> None:
    a, b = make_pair(seed=11)
    plan = "ab" * 4 + "aaa" + "b" + "bbbb" + "a" + "ab" * 3
    for who in plan:
        if who == "a":
            send(a, b)
        else:
            send(b, a)
    # A message b never receives: its keys are used by nobody to verify.
    dropped, _ = encrypt(a, b, b"lost")
    for _ in range(4):
        send(b, a)
        send(a, b)
    check_reveals(a, b)
    check_reveals(b, a)
    assert len(a.revealed) >= 5 and len(b.revealed) >= 5
    assert a.sent[-5][0] == dropped


def test_first_reveal_happens_when_a_used_pair_is_retired() -> None:
    a, b = make_pair()
    first = send(a, b)  # b verifies with pair (1, 1)
    assert first.old_mac_keys == b""
    second = send(b, a)  # a verifies with (b:1, a:2); nothing retired at b yet
    assert second.old_mac_keys == b""
    third = send(a, b)  # a retired its keyid 1: pair (1, 1) was only used by a to send
    assert third.old_mac_keys == b""
    fourth = send(b, a)  # b retired its keyid 1: pair (1, 1) verified `first`
    assert fourth.old_mac_keys == a.sent[0][1]
    fifth = send(a, b)  # a retired its keyid 2: pair (2, 1) verified `second`
    assert fifth.old_mac_keys == b.sent[0][1]


def test_forget_all_returns_the_keys_still_owed() -> None:
    a, b = make_pair()
    send(a, b)
    send(b, a)
    owed = b.keys.forget_all()
    assert owed == a.sent[0][1]
    assert b.keys.forget_all() == b""


# --- lazy derivation: count the exponentiations ---------------------------------------------


@dataclass
class Counter:
    shared: int = 0
    keypairs: int = 0


@pytest.fixture
def count(monkeypatch: pytest.MonkeyPatch) -> Counter:
    counter = Counter()
    real_shared, real_keypair = dh.shared_secret, dh.generate_keypair

    def shared(our: dh.DHKeyPair, their: int) -> int:
        counter.shared += 1
        return real_shared(our, their)

    def keypair(random_bytes: bytes) -> dh.DHKeyPair:
        counter.keypairs += 1
        return real_keypair(random_bytes)

    monkeypatch.setattr(dh, "shared_secret", shared)
    monkeypatch.setattr(dh, "generate_keypair", keypair)
    return counter


def test_ping_pong_derives_one_pair_per_message_per_side(count: Counter) -> None:
    a, b = make_pair()
    # The two AKE key pairs; DataKeys makes its next pair only when it sends.
    assert (count.shared, count.keypairs) == (0, 2)
    for n in range(1, 11):
        if n % 2:
            send(a, b)
        else:
            send(b, a)
        # Sender derives the pair to encrypt, receiver derives it to verify.
        assert count.shared == 2 * n
        # Every message makes its sender's next key pair (announced in it): the
        # peer used the previous one, so the receipt before it rotated it out.
        assert count.keypairs == 2 + n
    assert a.keys.derived_pairs <= 4 and b.keys.derived_pairs <= 4


def test_one_way_burst_derives_one_pair_per_side(count: Counter) -> None:
    a, b = make_pair()
    for _ in range(20):
        send(a, b)
    assert count.shared == 2
    assert count.keypairs == 3  # the sender's next pair; the receiver never needs one
    assert a.keys.derived_pairs == 1
    assert b.keys.derived_pairs == 1


def test_rejected_messages_do_not_derive_twice(count: Counter) -> None:
    a, b = make_pair()
    msg, _ = encrypt(a, b, b"x")
    for _ in range(5):
        with pytest.raises(RemoteProtocolError):
            b.keys.decrypt(bad_mac(msg, b.keys))
    assert count.shared == 2  # a's send and b's (cached) check
    deliver(b, msg)
    assert count.shared == 2


def test_our_next_key_pair_is_made_by_the_first_message_that_announces_it() -> None:
    a, b = make_pair()
    # Going encrypted made nothing yet: only the AKE key pair is held.
    assert list(b.keys._our) == [b.keys.our_keyid - 1]
    # The peer cannot know a key we never announced: a message "for" it is
    # refused, and refusing it makes no key pair either.
    msg, _ = encrypt(a, b, b"hi")
    with pytest.raises(RemoteProtocolError, match="unknown key of ours"):
        b.keys.decrypt(replace(msg, recipient_keyid=b.keys.our_keyid))
    assert b.keys.our_keyid not in b.keys._our
    reply, _ = encrypt(b, a, b"hello")
    assert reply.next_dh == b.keys._our[b.keys.our_keyid].public


def test_seal_gives_the_encoded_message_and_encrypt_decodes_it() -> None:
    # Sessions send what seal() returns; encrypt() is the same, decoded.
    a, b = make_pair()
    twin_a, _ = make_pair()
    encoded, extra = a.keys.seal(b"same", flags=0, sender_tag=A_TAG, receiver_tag=B_TAG)
    msg, extra_again = twin_a.keys.encrypt(b"same", flags=0, sender_tag=A_TAG, receiver_tag=B_TAG)
    assert encode_message(msg) == encoded and extra == extra_again
    assert deliver(b, msg) == b"same"


def test_the_mac_covers_the_bytes_as_received_as_libotr_computes_it() -> None:
    # A sender may encode the next DH key with a leading zero byte (libotr
    # reads such MPIs); the MAC is over the bytes it sent, and verifies.
    a, b = make_pair()
    msg, _ = a.keys.encrypt(b"padded", flags=0, sender_tag=A_TAG, receiver_tag=B_TAG)
    mpi = encode_mpi(msg.next_dh)
    padded = (len(mpi) - 3).to_bytes(4, "big") + b"\x00" + mpi[4:]
    signed = msg.authenticated_part().replace(mpi, padded, 1)
    mac_key = a.keys._pairs[(msg.sender_keyid, msg.recipient_keyid)].send_mac
    raw = signed + hmac_sha1(mac_key, signed) + encode_data(msg.old_mac_keys)
    received = decode_message(raw)
    assert isinstance(received, DataMessage)
    assert replace(received, mac=msg.mac) == msg  # the same fields but the MAC
    assert b.keys.decrypt(received).plaintext == b"padded"
