"""Unit tests for offrecord.ake: the whole exchange, the transition table walked
exhaustively, colliding D-H Commits, retransmissions and forged messages."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest

from offrecord.ake import AKE, TRANSITIONS, AKEComplete, AKEStep, AuthState, derive_ake_keys
from offrecord.crypto import dh
from offrecord.crypto.dsa import DSAPrivateKey, generate_private_key
from offrecord.crypto.primitives import aes_ctr, hmac_sha256, hmac_sha256_160, sha256
from offrecord.wire.codec import Reader, encode_data, encode_int, encode_mpi
from offrecord.wire.messages import (
    DataMessage,
    DHCommit,
    DHKey,
    EncodedMessage,
    MessageType,
    RevealSignature,
    Signature,
    decode_message,
    encode_message,
)

ALICE_TAG = 0x0000A11C
BOB_TAG = 0x00000B0B
CAROL_TAG = 0x0000CA01
ZERO_CTR = b"\x00" * 8

KEYS: dict[str, DSAPrivateKey] = {
    name: generate_private_key(random.Random(seed).randbytes)
    for name, seed in (("alice", 0xA1), ("bob", 0xB2), ("carol", 0xC3))
}
TAGS = {"alice": ALICE_TAG, "bob": BOB_TAG, "carol": CAROL_TAG}


def party(name: str, seed: int = 0) -> AKE:
    rng = random.Random(f"{name}-{seed}")
    return AKE(KEYS[name], rng.randbytes, TAGS[name])


def wire(msg: EncodedMessage | None) -> EncodedMessage:
    """Send a message over the 'network': encode and decode it again."""
    assert msg is not None
    return decode_message(encode_message(msg))


@dataclass
class Exchange:
    """A complete AKE between an initiator and a responder, step by step."""

    initiator: AKE
    responder: AKE
    version: int
    sent: list[EncodedMessage] = field(default_factory=list)
    done: list[AKEComplete] = field(default_factory=list)

    def deliver(self, to: AKE, msg: EncodedMessage) -> AKEStep:
        step = to.receive(wire(msg))
        assert step.discarded is None, step.discarded
        if step.reply is not None:
            self.sent.append(step.reply)
        if step.complete is not None:
            self.done.append(step.complete)
        return step

    def run(self) -> tuple[AKEComplete, AKEComplete]:
        """Initiator and responder results, in that order."""
        commit = self.initiator.start(self.version, 0)
        self.sent.append(commit)
        dhkey = self.deliver(self.responder, commit).reply
        assert isinstance(dhkey, DHKey)
        reveal = self.deliver(self.initiator, dhkey).reply
        assert isinstance(reveal, RevealSignature)
        sig = self.deliver(self.responder, reveal).reply
        assert isinstance(sig, Signature)
        assert self.deliver(self.initiator, sig).reply is None
        responder_done, initiator_done = self.done
        return initiator_done, responder_done


VERSIONS = pytest.mark.parametrize("version", [2, 3])


# --- the whole exchange ---------------------------------------------------------------


@VERSIONS
def test_whole_ake(version: int) -> None:
    bob, alice = party("bob"), party("alice")
    ex = Exchange(bob, alice, version)
    bob_done, alice_done = ex.run()

    assert [type(m) for m in ex.sent] == [DHCommit, DHKey, RevealSignature, Signature]
    assert all(m.version == version for m in ex.sent)
    assert alice.state is AuthState.NONE
    assert bob.state is AuthState.NONE

    assert bob_done.ssid == alice_done.ssid
    assert len(bob_done.ssid) == 8
    assert bob_done.sent_reveal_signature and not alice_done.sent_reveal_signature
    assert bob_done.their_public_key == KEYS["alice"].public
    assert alice_done.their_public_key == KEYS["bob"].public
    assert bob_done.their_fingerprint == KEYS["alice"].fingerprint()
    assert alice_done.their_fingerprint == KEYS["bob"].fingerprint()
    assert bob_done.their_dh == alice_done.our_dh.public
    assert alice_done.their_dh == bob_done.our_dh.public
    assert bob_done.our_keyid == alice_done.their_keyid == 1
    assert alice_done.our_keyid == bob_done.their_keyid == 1
    assert bob_done.version == alice_done.version == version
    if version == 3:
        assert bob_done.their_instance == ALICE_TAG
        assert alice_done.their_instance == BOB_TAG


@VERSIONS
def test_instance_tags_on_the_wire(version: int) -> None:
    ex = Exchange(party("bob"), party("alice"), version)
    ex.run()
    commit, dhkey, reveal, sig = ex.sent
    expected = {
        3: [(BOB_TAG, 0), (ALICE_TAG, BOB_TAG), (BOB_TAG, ALICE_TAG), (ALICE_TAG, BOB_TAG)],
        2: [(0, 0)] * 4,
    }[version]
    received = [wire(m) for m in (commit, dhkey, reveal, sig)]
    assert [(m.sender_tag, m.receiver_tag) for m in received] == expected


def test_ake_keys_follow_the_spec() -> None:
    s = 0x0123456789ABCDEF << 1000
    raw = s.to_bytes((s.bit_length() + 7) // 8, "big")
    secbytes = len(raw).to_bytes(4, "big") + raw
    keys = derive_ake_keys(s)

    def h2(b: int) -> bytes:
        return sha256(bytes([b]) + secbytes)

    assert keys.ssid == h2(0)[:8]
    assert keys.c == h2(1)[:16]
    assert keys.c_prime == h2(1)[16:]
    assert (keys.m1, keys.m2, keys.m1_prime, keys.m2_prime) == (h2(2), h2(3), h2(4), h2(5))


@VERSIONS
def test_messages_carry_what_the_spec_says(version: int) -> None:
    """Check the commitment, the revealed key and both signed parts independently."""
    bob, alice = party("bob"), party("alice")
    ex = Exchange(bob, alice, version)
    bob_done, alice_done = ex.run()
    commit, dhkey, reveal, sig = ex.sent
    assert isinstance(commit, DHCommit) and isinstance(dhkey, DHKey)
    assert isinstance(reveal, RevealSignature) and isinstance(sig, Signature)

    gx, gy = bob_done.our_dh.public, alice_done.our_dh.public
    assert dhkey.gy == gy
    assert commit.hashed_gx == sha256(encode_mpi(gx))
    assert aes_ctr(reveal.revealed_key, ZERO_CTR, commit.encrypted_gx) == encode_mpi(gx)

    keys = derive_ake_keys(pow(gy, bob_done.our_dh.secret, dh.MODULUS))
    assert keys.ssid == bob_done.ssid
    for encrypted, mac, c, m1, m2, signer, ours, theirs in (
        (reveal.encrypted_signature, reveal.mac, keys.c, keys.m1, keys.m2, "bob", gx, gy),
        (sig.encrypted_signature, sig.mac, keys.c_prime, keys.m1_prime, keys.m2_prime,
         "alice", gy, gx),
    ):  # fmt: skip
        assert mac == hmac_sha256_160(m2, encode_data(encrypted))
        x = aes_ctr(c, ZERO_CTR, encrypted)
        pub = KEYS[signer].public.encode()
        assert x[: len(pub)] == pub
        assert x[len(pub) : len(pub) + 4] == encode_int(1)
        signature = x[len(pub) + 4 :]
        assert len(signature) == 40
        m = hmac_sha256(m1, encode_mpi(ours) + encode_mpi(theirs) + pub + encode_int(1))
        assert KEYS[signer].public.verify(m, signature)


def test_fresh_exchanges_give_fresh_keys() -> None:
    first = Exchange(party("bob", 1), party("alice", 1), 3).run()[0]
    second = Exchange(party("bob", 2), party("alice", 2), 3).run()[0]
    assert first.ssid != second.ssid
    assert first.our_dh != second.our_dh


def test_repr_hides_progress() -> None:
    bob = party("bob")
    bob.start(3)
    assert repr(bob) == "AKE(state=AWAITING_DHKEY)"


# --- the transition table, exhaustively -----------------------------------------------

# What each (state, message) pair must do: the next state and the reply's type.
# None as the reply type and the state unchanged means "ignored".
COLLISION = "collision"  # decided by the hashed g^x, tested separately below
EXPECTED: dict[tuple[AuthState, MessageType], tuple[AuthState, type | None] | str] = {
    (AuthState.NONE, MessageType.DH_COMMIT): (AuthState.AWAITING_REVEALSIG, DHKey),
    (AuthState.NONE, MessageType.DH_KEY): (AuthState.NONE, None),
    (AuthState.NONE, MessageType.REVEAL_SIGNATURE): (AuthState.NONE, None),
    (AuthState.NONE, MessageType.SIGNATURE): (AuthState.NONE, None),
    (AuthState.NONE, MessageType.DATA): (AuthState.NONE, None),
    (AuthState.AWAITING_DHKEY, MessageType.DH_COMMIT): COLLISION,
    (AuthState.AWAITING_DHKEY, MessageType.DH_KEY): (AuthState.AWAITING_SIG, RevealSignature),
    (AuthState.AWAITING_DHKEY, MessageType.REVEAL_SIGNATURE): (AuthState.AWAITING_DHKEY, None),
    (AuthState.AWAITING_DHKEY, MessageType.SIGNATURE): (AuthState.AWAITING_DHKEY, None),
    (AuthState.AWAITING_DHKEY, MessageType.DATA): (AuthState.AWAITING_DHKEY, None),
    (AuthState.AWAITING_REVEALSIG, MessageType.DH_COMMIT): (
        AuthState.AWAITING_REVEALSIG,
        DHKey,
    ),
    (AuthState.AWAITING_REVEALSIG, MessageType.DH_KEY): (AuthState.AWAITING_REVEALSIG, None),
    (AuthState.AWAITING_REVEALSIG, MessageType.REVEAL_SIGNATURE): (AuthState.NONE, Signature),
    (AuthState.AWAITING_REVEALSIG, MessageType.SIGNATURE): (AuthState.AWAITING_REVEALSIG, None),
    (AuthState.AWAITING_REVEALSIG, MessageType.DATA): (AuthState.AWAITING_REVEALSIG, None),
    (AuthState.AWAITING_SIG, MessageType.DH_COMMIT): (AuthState.AWAITING_REVEALSIG, DHKey),
    (AuthState.AWAITING_SIG, MessageType.DH_KEY): (AuthState.AWAITING_SIG, RevealSignature),
    (AuthState.AWAITING_SIG, MessageType.REVEAL_SIGNATURE): (AuthState.AWAITING_SIG, None),
    (AuthState.AWAITING_SIG, MessageType.SIGNATURE): (AuthState.NONE, None),
    (AuthState.AWAITING_SIG, MessageType.DATA): (AuthState.AWAITING_SIG, None),
}


def test_expected_table_covers_every_pair() -> None:
    assert set(EXPECTED) == {(s, t) for s in AuthState for t in MessageType}


def test_transitions_table_holds_exactly_the_handled_pairs() -> None:
    handled = {
        pair
        for pair, outcome in EXPECTED.items()
        if outcome == COLLISION or outcome[0] is not pair[0] or outcome[1] is not None
    }
    assert set(TRANSITIONS) == handled


@dataclass
class Scenario:
    """``me`` in a given state, ``peer`` in the matching state, and for every
    message type the message ``me`` would naturally get next."""

    me: AKE
    peer: AKE
    incoming: dict[MessageType, EncodedMessage]


def stray_messages(version: int) -> dict[MessageType, EncodedMessage]:
    """Valid messages of every type, from an unrelated exchange (carol and bob)."""
    ex = Exchange(party("carol", 9), party("bob", 9), version)
    ex.run()
    stray: dict[MessageType, EncodedMessage] = {m.type: m for m in ex.sent}
    stray[MessageType.DATA] = DataMessage(
        version, CAROL_TAG if version == 3 else 0, ALICE_TAG if version == 3 else 0,
        0, 1, 1, pow(2, 99, dh.MODULUS), b"\x00" * 7 + b"\x01", b"hi", b"\x00" * 20, b"",
    )  # fmt: skip
    return stray


def scenario(state: AuthState, version: int) -> Scenario:
    me, peer = party("alice"), party("bob")
    incoming = stray_messages(version)
    if state is AuthState.NONE:
        incoming[MessageType.DH_COMMIT] = peer.start(version)
    elif state is AuthState.AWAITING_DHKEY:
        mine = me.start(version)
        dhkey = peer.receive(wire(mine)).reply
        assert dhkey is not None
        incoming[MessageType.DH_KEY] = dhkey
    elif state is AuthState.AWAITING_REVEALSIG:
        commit = peer.start(version)
        my_dhkey = me.receive(wire(commit)).reply
        assert my_dhkey is not None
        reveal = peer.receive(wire(my_dhkey)).reply
        assert reveal is not None
        incoming[MessageType.DH_COMMIT] = commit
        incoming[MessageType.REVEAL_SIGNATURE] = reveal
    else:
        mine = me.start(version)
        dhkey = peer.receive(wire(mine)).reply
        assert dhkey is not None
        my_reveal = me.receive(wire(dhkey)).reply
        assert my_reveal is not None
        sig = peer.receive(wire(my_reveal)).reply
        assert sig is not None
        incoming[MessageType.DH_KEY] = dhkey
        incoming[MessageType.SIGNATURE] = sig
    assert me.state is state
    return Scenario(me, peer, incoming)


def finish(s: Scenario) -> None:
    """Drive ``me`` from its state to a completed AKE with ``peer``; this only
    works if an ignored message left the exchange in progress intact."""
    state = s.me.state
    if state is AuthState.AWAITING_DHKEY:
        reveal = s.me.receive(wire(s.incoming[MessageType.DH_KEY])).reply
        assert reveal is not None
        sig = s.peer.receive(wire(reveal)).reply
        assert sig is not None
        step = s.me.receive(wire(sig))
    elif state is AuthState.AWAITING_REVEALSIG:
        step = s.me.receive(wire(s.incoming[MessageType.REVEAL_SIGNATURE]))
    elif state is AuthState.AWAITING_SIG:
        step = s.me.receive(wire(s.incoming[MessageType.SIGNATURE]))
    else:
        return
    assert step.complete is not None, step.discarded
    assert s.me.state is AuthState.NONE


PAIRS = [(s, t) for s in AuthState for t in MessageType]


@VERSIONS
@pytest.mark.parametrize(("state", "kind"), PAIRS, ids=[f"{s.name}-{t.name}" for s, t in PAIRS])
def test_every_state_and_message_pair(state: AuthState, kind: MessageType, version: int) -> None:
    s = scenario(state, version)
    msg = s.incoming[kind]
    expected = EXPECTED[(state, kind)]
    if expected == COLLISION:
        assert isinstance(msg, DHCommit)
        theirs = int.from_bytes(msg.hashed_gx, "big")
        ours = int.from_bytes(sha256(encode_mpi(_my_gx(s.me))), "big")
        expected = (
            (AuthState.AWAITING_DHKEY, DHCommit)
            if ours > theirs
            else (AuthState.AWAITING_REVEALSIG, DHKey)
        )
    assert isinstance(expected, tuple)
    next_state, reply_type = expected

    step = s.me.receive(wire(msg))

    assert s.me.state is next_state
    if reply_type is None:
        assert step.reply is None
    else:
        assert type(step.reply) is reply_type
    completes = state is not next_state and next_state is AuthState.NONE
    assert (step.complete is not None) == completes
    ignored = next_state is state and reply_type is None
    if ignored:
        assert step.discarded is not None
        finish(s)  # the exchange in progress is intact


def _my_gx(ake: AKE) -> int:
    assert ake._p.our_dh is not None
    return ake._p.our_dh.public


@VERSIONS
def test_different_dhkey_in_awaiting_sig_is_ignored(version: int) -> None:
    s = scenario(AuthState.AWAITING_SIG, version)
    other = party("carol").receive(wire(party("alice", 5).start(version))).reply
    assert isinstance(other, DHKey)
    step = s.me.receive(wire(other))
    assert step.reply is None and step.complete is None and step.discarded
    assert s.me.state is AuthState.AWAITING_SIG
    finish(s)


@VERSIONS
def test_dhkey_of_another_version_is_ignored(version: int) -> None:
    s = scenario(AuthState.AWAITING_DHKEY, version)
    dhkey = s.incoming[MessageType.DH_KEY]
    assert isinstance(dhkey, DHKey)
    other = DHKey(5 - version, dhkey.sender_tag, dhkey.receiver_tag, dhkey.gy)
    step = s.me.receive(wire(other))
    assert step.reply is None and step.discarded
    assert s.me.state is AuthState.AWAITING_DHKEY
    finish(s)


# --- colliding D-H Commits -----------------------------------------------------------


@VERSIONS
@pytest.mark.parametrize("seed", [1, 2, 3, 4])
@pytest.mark.parametrize("alice_first", [True, False])
def test_simultaneous_commits_converge(version: int, seed: int, alice_first: bool) -> None:
    alice, bob = party("alice", seed), party("bob", seed)
    commits = {"alice": alice.start(version), "bob": bob.start(version)}
    sides = {"alice": alice, "bob": bob}
    hashes = {n: int.from_bytes(c.hashed_gx, "big") for n, c in commits.items()}
    winner = max(hashes, key=lambda n: hashes[n])
    loser = "bob" if winner == "alice" else "alice"

    order = ["alice", "bob"] if alice_first else ["bob", "alice"]
    replies: dict[str, EncodedMessage | None] = {}
    for receiver in order:
        sender = "bob" if receiver == "alice" else "alice"
        replies[receiver] = sides[receiver].receive(wire(commits[sender])).reply

    # The higher hash keeps its commit and sends it again; the other answers it.
    assert sides[winner].state is AuthState.AWAITING_DHKEY
    assert replies[winner] == commits[winner]
    assert sides[loser].state is AuthState.AWAITING_REVEALSIG
    assert isinstance(replies[loser], DHKey)

    # Deliver everything until both are quiet: both finish with the same ssid.
    queue: list[tuple[str, EncodedMessage]] = [(n, m) for n, m in replies.items() if m is not None]
    done: dict[str, AKEComplete] = {}
    for _ in range(10):
        if not queue:
            break
        sender, msg = queue.pop(0)
        receiver = "bob" if sender == "alice" else "alice"
        step = sides[receiver].receive(wire(msg))
        if step.reply is not None:
            queue.append((receiver, step.reply))
        if step.complete is not None:
            done[receiver] = step.complete
    assert set(done) == {"alice", "bob"}
    assert done["alice"].ssid == done["bob"].ssid
    # The winner's commit is the one that was used: it sent the Reveal Signature.
    assert done[winner].sent_reveal_signature
    assert not done[loser].sent_reveal_signature


def test_both_sides_win_some_collisions() -> None:
    """The seeds used above make each side the winner at least once."""
    winners = set()
    for seed in (1, 2, 3, 4):
        a = party("alice", seed).start(3).hashed_gx
        b = party("bob", seed).start(3).hashed_gx
        winners.add("alice" if a > b else "bob")
    assert winners == {"alice", "bob"}


# --- retransmissions -------------------------------------------------------------------


@VERSIONS
def test_duplicate_commit_in_awaiting_revealsig_gets_the_same_dhkey(version: int) -> None:
    alice, bob = party("alice"), party("bob")
    commit = bob.start(version)
    first = alice.receive(wire(commit)).reply
    again = alice.receive(wire(commit)).reply
    assert first is not None and again is not None
    assert encode_message(again) == encode_message(first)
    assert alice.state is AuthState.AWAITING_REVEALSIG
    # The exchange still completes.
    reveal = bob.receive(wire(again)).reply
    assert reveal is not None
    assert alice.receive(wire(reveal)).complete is not None


@VERSIONS
def test_new_commit_in_awaiting_revealsig_replaces_the_old_one(version: int) -> None:
    alice, bob = party("alice"), party("bob")
    first_dhkey = alice.receive(wire(bob.start(version))).reply
    bob2 = party("bob", 7)
    second_dhkey = alice.receive(wire(bob2.start(version))).reply
    assert first_dhkey == second_dhkey  # the same D-H Key again
    assert second_dhkey is not None
    # Only the new commit can be revealed now.
    stale = bob.receive(wire(first_dhkey)).reply
    assert stale is not None
    assert alice.receive(wire(stale)).complete is None
    fresh = bob2.receive(wire(second_dhkey)).reply
    assert fresh is not None
    assert alice.receive(wire(fresh)).complete is not None


@VERSIONS
def test_duplicate_dhkey_in_awaiting_sig_gets_the_same_reveal_signature(version: int) -> None:
    alice, bob = party("alice"), party("bob")
    dhkey = alice.receive(wire(bob.start(version))).reply
    assert dhkey is not None
    first = bob.receive(wire(dhkey)).reply
    again = bob.receive(wire(dhkey)).reply
    assert first is not None and again is not None
    assert encode_message(again) == encode_message(first)
    assert bob.state is AuthState.AWAITING_SIG
    sig = alice.receive(wire(again)).reply
    assert sig is not None
    assert bob.receive(wire(sig)).complete is not None


@VERSIONS
def test_new_commit_in_awaiting_sig_restarts_as_responder(version: int) -> None:
    s = scenario(AuthState.AWAITING_SIG, version)
    carol = party("carol")
    old_gx = _my_gx(s.me)
    step = s.me.receive(wire(carol.start(version)))
    assert isinstance(step.reply, DHKey)
    assert step.reply.gy != old_gx  # a new D-H key
    assert s.me.state is AuthState.AWAITING_REVEALSIG
    reveal = carol.receive(wire(step.reply)).reply
    assert reveal is not None
    done = s.me.receive(wire(reveal)).complete
    assert done is not None and done.their_public_key == KEYS["carol"].public


# --- forged and corrupted messages leave the state unchanged -----------------------------


def flip(data: bytes, at: int = -1) -> bytes:
    out = bytearray(data)
    out[at] ^= 0x01
    return bytes(out)


@dataclass
class SignedPartContext:
    """What a signer needs to build the encrypted, MACed signature part."""

    signer: DSAPrivateKey
    m1: bytes
    c: bytes
    m2: bytes
    signer_dh: int
    verifier_dh: int

    def build(
        self,
        *,
        keyid: int = 1,
        sign_with: DSAPrivateKey | None = None,
        m1: bytes | None = None,
        swap_dh: bool = False,
    ) -> tuple[bytes, bytes]:
        """(encrypted signature, MAC), written from the spec; the keyword
        arguments introduce one flaw each."""
        pub = self.signer.public.encode()
        first, second = self.signer_dh, self.verifier_dh
        if swap_dh:
            first, second = second, first
        m = hmac_sha256(
            m1 or self.m1, encode_mpi(first) + encode_mpi(second) + pub + encode_int(keyid)
        )
        x = pub + encode_int(keyid) + (sign_with or self.signer).sign(m)
        encrypted = aes_ctr(self.c, ZERO_CTR, x)
        return encrypted, hmac_sha256_160(self.m2, encode_data(encrypted))


def reveal_context(s: Scenario, reveal: RevealSignature) -> SignedPartContext:
    commit = s.incoming[MessageType.DH_COMMIT]
    assert isinstance(commit, DHCommit)
    gx = Reader(aes_ctr(reveal.revealed_key, ZERO_CTR, commit.encrypted_gx)).mpi()
    assert s.me._p.our_dh is not None
    keys = derive_ake_keys(dh.shared_secret(s.me._p.our_dh, gx))
    return SignedPartContext(KEYS["bob"], keys.m1, keys.c, keys.m2, gx, _my_gx(s.me))


def signature_context(s: Scenario) -> SignedPartContext:
    keys = s.me._p.keys
    assert keys is not None
    return SignedPartContext(
        KEYS["bob"], keys.m1_prime, keys.c_prime, keys.m2_prime, s.me._p.their_gy, _my_gx(s.me)
    )


FORGERIES = [
    "bad-mac",
    "bad-ciphertext",
    "keyid-0",
    "impostor-signature",
    "dh-values-swapped",
    "wrong-m1",
    "mac-with-another-key",
]


def forge(
    ctx: SignedPartContext, real_enc: bytes, real_mac: bytes, how: str
) -> tuple[bytes, bytes]:
    if how == "bad-mac":
        return real_enc, flip(real_mac)
    if how == "bad-ciphertext":
        return flip(real_enc, 10), real_mac
    if how == "keyid-0":
        return ctx.build(keyid=0)
    if how == "impostor-signature":
        return ctx.build(sign_with=KEYS["carol"])
    if how == "dh-values-swapped":
        return ctx.build(swap_dh=True)
    if how == "wrong-m1":
        return ctx.build(m1=ctx.m2)
    assert how == "mac-with-another-key"
    return real_enc, hmac_sha256_160(b"k" * 32, encode_data(real_enc))


@VERSIONS
@pytest.mark.parametrize("keyid", [1, 5])
def test_signed_part_helper_builds_what_the_ake_accepts(version: int, keyid: int) -> None:
    """Control for the forgeries below: without a flaw, the built part verifies."""
    s = scenario(AuthState.AWAITING_REVEALSIG, version)
    real = s.incoming[MessageType.REVEAL_SIGNATURE]
    assert isinstance(real, RevealSignature)
    enc, mac = reveal_context(s, real).build(keyid=keyid)
    msg = RevealSignature(real.version, real.sender_tag, real.receiver_tag, real.revealed_key,
                          enc, mac)  # fmt: skip
    done = s.me.receive(wire(msg)).complete
    assert done is not None
    assert done.their_keyid == keyid

    s = scenario(AuthState.AWAITING_SIG, version)
    real_sig = s.incoming[MessageType.SIGNATURE]
    enc, mac = signature_context(s).build(keyid=keyid)
    sig = Signature(real_sig.version, real_sig.sender_tag, real_sig.receiver_tag, enc, mac)
    done = s.me.receive(wire(sig)).complete
    assert done is not None
    assert done.their_keyid == keyid


@VERSIONS
@pytest.mark.parametrize("forgery", ["wrong-r", *FORGERIES])
def test_forged_reveal_signature_is_ignored(version: int, forgery: str) -> None:
    s = scenario(AuthState.AWAITING_REVEALSIG, version)
    real = s.incoming[MessageType.REVEAL_SIGNATURE]
    assert isinstance(real, RevealSignature)
    r = real.revealed_key
    if forgery == "wrong-r":
        r, enc, mac = flip(r), real.encrypted_signature, real.mac
    else:
        enc, mac = forge(reveal_context(s, real), real.encrypted_signature, real.mac, forgery)
    forged = RevealSignature(real.version, real.sender_tag, real.receiver_tag, r, enc, mac)
    step = s.me.receive(wire(forged))
    assert step.complete is None and step.reply is None
    assert step.discarded
    assert s.me.state is AuthState.AWAITING_REVEALSIG
    finish(s)


@VERSIONS
@pytest.mark.parametrize("forgery", FORGERIES)
def test_forged_signature_is_ignored(version: int, forgery: str) -> None:
    s = scenario(AuthState.AWAITING_SIG, version)
    real = s.incoming[MessageType.SIGNATURE]
    assert isinstance(real, Signature)
    enc, mac = forge(signature_context(s), real.encrypted_signature, real.mac, forgery)
    step = s.me.receive(wire(Signature(real.version, real.sender_tag, real.receiver_tag, enc, mac)))
    assert step.complete is None and step.reply is None
    assert step.discarded
    assert s.me.state is AuthState.AWAITING_SIG
    finish(s)


@VERSIONS
def test_reveal_not_matching_the_committed_hash_is_ignored(version: int) -> None:
    """The peer's reveal and signature are honest, but the commit we got had a
    different hash: the commitment does not hold, so the AKE must not complete."""
    alice, bob = party("alice"), party("bob")
    commit = bob.start(version)
    tampered = DHCommit(commit.version, commit.sender_tag, commit.receiver_tag,
                        commit.encrypted_gx, flip(commit.hashed_gx))  # fmt: skip
    dhkey = alice.receive(wire(tampered)).reply
    assert dhkey is not None
    reveal = bob.receive(wire(dhkey)).reply
    assert reveal is not None
    step = alice.receive(wire(reveal))
    assert step.complete is None and step.reply is None
    assert step.discarded is not None and "hash" in step.discarded
    assert alice.state is AuthState.AWAITING_REVEALSIG
    # The genuine commit replaces the tampered one; the same reveal then completes.
    assert alice.receive(wire(commit)).reply == dhkey
    assert alice.receive(wire(reveal)).complete is not None


@VERSIONS
@pytest.mark.parametrize("gx", [0, 1, dh.MODULUS - 1, dh.MODULUS])
def test_revealed_gx_out_of_range_is_ignored(version: int, gx: int) -> None:
    """A commitment to a bad g^x is only caught once r is revealed."""
    alice = party("alice")
    r = b"\x42" * 16
    gx_mpi = encode_mpi(gx)
    commit = DHCommit(
        version, CAROL_TAG if version == 3 else 0, 0, aes_ctr(r, ZERO_CTR, gx_mpi), sha256(gx_mpi)
    )
    assert isinstance(alice.receive(wire(commit)).reply, DHKey)
    # Borrow a structurally valid signed part; it is never reached.
    real = scenario(AuthState.AWAITING_REVEALSIG, version).incoming[MessageType.REVEAL_SIGNATURE]
    assert isinstance(real, RevealSignature)
    forged = RevealSignature(
        version, commit.sender_tag, real.receiver_tag, r, real.encrypted_signature, real.mac
    )
    step = alice.receive(wire(forged))
    assert step.complete is None and step.discarded is not None
    assert "out of range" in step.discarded
    assert alice.state is AuthState.AWAITING_REVEALSIG
