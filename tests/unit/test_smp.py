"""Unit tests for offrecord.smp (the Socialist Millionaires' Protocol)."""

from __future__ import annotations

import copy
import ctypes
import ctypes.util
import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from offrecord.crypto.dh import MODULUS, ORDER
from offrecord.errors import LocalProtocolError
from offrecord.smp import (
    EXPONENTIATIONS_PER_SIDE,
    SMP,
    SMP_TLV_TYPES,
    TRANSITIONS,
    SMPInput,
    SMPOutcome,
    SMPState,
    SMPStep,
    smp_secret,
)
from offrecord.wire.codec import Reader, encode_int, encode_mpi
from offrecord.wire.tlv import TLV, TLVType

P = MODULUS
Q = ORDER
FP_A = bytes(range(20))
FP_B = bytes(range(100, 120))
SSID = bytes.fromhex("0102030405060708")
ABORT = TLV(TLVType.SMP_ABORT)
COUNTS: dict[int, int] = {
    TLVType.SMP1: 6,
    TLVType.SMP1Q: 6,
    TLVType.SMP2: 11,
    TLVType.SMP3: 8,
    TLVType.SMP4: 3,
}
FAILURES = (SMPOutcome.CHEATED, SMPOutcome.ERROR)


class DRBG:
    """Deterministic randomness for tests: SHA-256(seed || 64-bit counter) blocks."""

    def __init__(self, seed: bytes) -> None:
        self._seed = seed
        self._counter = 0
        self._buf = b""

    def __call__(self, n: int) -> bytes:
        while len(self._buf) < n:
            block = self._seed + self._counter.to_bytes(8, "big")
            self._buf += hashlib.sha256(block).digest()
            self._counter += 1
        out, self._buf = self._buf[:n], self._buf[n:]
        return out


def secret(answer: bytes = b"correct horse") -> int:
    """The secret as both sides build it when A (FP_A) initiated."""
    return smp_secret(FP_A, FP_B, SSID, answer)


def pair(tag: str = "") -> tuple[SMP, SMP]:
    return SMP(DRBG(b"alice" + tag.encode())), SMP(DRBG(b"bob" + tag.encode()))


def mpis(tlv: TLV) -> tuple[bytes, list[int]]:
    """(question prefix, MPI values) of an SMP TLV, parsed independently."""
    payload = tlv.value
    prefix = b""
    if tlv.type == TLVType.SMP1Q:
        nul = payload.index(b"\x00")
        prefix, payload = payload[: nul + 1], payload[nul + 1 :]
    reader = Reader(payload)
    values = [reader.mpi() for _ in range(reader.int32())]
    reader.end()
    return prefix, values


def build(kind: int, values: list[int], prefix: bytes = b"", count: int | None = None) -> TLV:
    n = len(values) if count is None else count
    return TLV(kind, prefix + encode_int(n) + b"".join(encode_mpi(v) for v in values))


def replace(tlv: TLV, index: int, value: int) -> TLV:
    prefix, values = mpis(tlv)
    values[index] = value
    return build(tlv.type, values, prefix)


def assert_reset(smp: SMP, step: SMPStep, outcome: SMPOutcome) -> None:
    assert step.outcome is outcome
    assert step.reply == (ABORT,)
    assert step.finished and not step.needs_secret
    assert smp.state is SMPState.EXPECT1
    assert not smp.in_progress and smp.initiator is None


@dataclass
class Transcript:
    """One complete run, with a snapshot of each side in each state."""

    m1: TLV
    m2: TLV
    m3: TLV
    m4: TLV
    snapshots: dict[SMPState, SMP]
    alice: SMP
    bob: SMP
    results: list[SMPStep]


def transcript(
    x: int | None = None, y: int | None = None, question: str | None = None, tag: str = ""
) -> Transcript:
    x = secret() if x is None else x
    y = x if y is None else y
    alice, bob = pair(tag)
    snaps = {SMPState.EXPECT1: copy.deepcopy(alice)}
    (m1,) = alice.start(x, question)
    snaps[SMPState.EXPECT2] = copy.deepcopy(alice)
    r1 = bob.receive(m1)
    snaps[SMPState.AWAIT_ANSWER] = copy.deepcopy(bob)
    m2 = bob.respond(y)
    snaps[SMPState.EXPECT3] = copy.deepcopy(bob)
    r2 = alice.receive(m2)
    snaps[SMPState.EXPECT4] = copy.deepcopy(alice)
    (m3,) = r2.reply
    r3 = bob.receive(m3)
    (m4,) = r3.reply
    r4 = alice.receive(m4)
    return Transcript(m1, m2, m3, m4, snaps, alice, bob, [r1, r2, r3, r4])


@pytest.fixture(scope="module")
def run() -> Transcript:
    return transcript()


@pytest.fixture(scope="module")
def other() -> Transcript:
    return transcript(tag="other")


@pytest.fixture(scope="module")
def qrun() -> Transcript:
    return transcript(question="Where did we meet?", tag="q")


def full_run(alice: SMP, bob: SMP, x: int, y: int, question: str | None = None) -> None:
    """Run SMP to the end, checking every step; the expected result is x == y."""
    (m1,) = alice.start(x, question)
    r1 = bob.receive(m1)
    assert r1.outcome is SMPOutcome.REQUESTED and r1.needs_secret and r1.question == question
    m2 = bob.respond(y)
    r2 = alice.receive(m2)
    assert r2.outcome is SMPOutcome.IN_PROGRESS and not r2.finished
    r3 = bob.receive(r2.reply[0])
    r4 = alice.receive(r3.reply[0])
    want = SMPOutcome.SUCCEEDED if x == y else SMPOutcome.FAILED
    assert r3.outcome is want and r4.outcome is want
    assert r4.reply == ()
    assert alice.state is SMPState.EXPECT1 and bob.state is SMPState.EXPECT1


# -- the secret ----------------------------------------------------------------


def test_smp_secret_is_the_spec_hash() -> None:
    want = hashlib.sha256(b"\x01" + FP_A + FP_B + SSID + b"pass").digest()
    assert smp_secret(FP_A, FP_B, SSID, b"pass") == int.from_bytes(want, "big")
    assert smp_secret(FP_A, FP_B, SSID, b"pass") != smp_secret(FP_B, FP_A, SSID, b"pass")
    assert smp_secret(FP_A, FP_B, SSID, b"") < 1 << 256


@pytest.mark.parametrize(
    ("a", "b", "ssid"),
    [(FP_A[:19], FP_B, SSID), (FP_A, FP_B + b"x", SSID), (FP_A, FP_B, SSID[:7]), (FP_A, FP_B, b"")],
)
def test_smp_secret_rejects_wrong_lengths(a: bytes, b: bytes, ssid: bytes) -> None:
    with pytest.raises(LocalProtocolError):
        smp_secret(a, b, ssid, b"x")


def test_fingerprint_order_matters() -> None:
    # Both sides must put the initiator's fingerprint first.
    alice, bob = pair()
    full_run(alice, bob, smp_secret(FP_A, FP_B, SSID, b"s"), smp_secret(FP_A, FP_B, SSID, b"s"))
    full_run(alice, bob, smp_secret(FP_A, FP_B, SSID, b"s"), smp_secret(FP_B, FP_A, SSID, b"s"))


# -- complete runs ---------------------------------------------------------------


def test_success(run: Transcript) -> None:
    r1, r2, r3, r4 = run.results
    assert r1 == SMPStep(SMPOutcome.REQUESTED)
    assert r2.outcome is SMPOutcome.IN_PROGRESS and r2.trust is None
    assert r3.outcome is SMPOutcome.SUCCEEDED and r3.trust is True
    assert r4 == SMPStep(SMPOutcome.SUCCEEDED, trust=True)
    assert run.m1.type == TLVType.SMP1
    assert [t.type for t in (run.m2, run.m3, run.m4)] == [3, 4, 5]
    assert run.alice.exponentiations == EXPONENTIATIONS_PER_SIDE == 29
    assert run.bob.exponentiations == EXPONENTIATIONS_PER_SIDE


def test_failure_clears_trust_on_both_sides() -> None:
    t = transcript(secret(b"one"), secret(b"two"), tag="f")
    assert t.results[2] == SMPStep(SMPOutcome.FAILED, reply=(t.m4,), trust=False)
    assert t.results[3] == SMPStep(SMPOutcome.FAILED, trust=False)
    assert t.alice.exponentiations == t.bob.exponentiations == EXPONENTIATIONS_PER_SIDE


def test_with_question(qrun: Transcript) -> None:
    r1, _, r3, r4 = qrun.results
    assert qrun.m1.type == TLVType.SMP1Q
    assert qrun.m1.value.startswith(b"Where did we meet?\x00\x00\x00\x00\x06")
    assert r1 == SMPStep(SMPOutcome.REQUESTED, question="Where did we meet?")
    # libotr: the side that answered a question does not change trust.
    assert r3.outcome is SMPOutcome.SUCCEEDED and r3.trust is None
    assert r4.outcome is SMPOutcome.SUCCEEDED and r4.trust is True


def test_question_state_and_properties(qrun: Transcript) -> None:
    bob = copy.deepcopy(qrun.snapshots[SMPState.AWAIT_ANSWER])
    assert bob.question == "Where did we meet?" and bob.received_question
    assert bob.initiator is False and bob.in_progress
    bob.respond(secret())
    assert bob.question is None and bob.received_question and bob.initiator is False
    alice = qrun.snapshots[SMPState.EXPECT2]
    assert alice.initiator is True and alice.question is None and not alice.received_question


@pytest.mark.parametrize("question", ["", "ünïcødé ✓ 秘密", "x" * 60000])
def test_question_texts(question: str) -> None:
    alice, bob = pair("qt")
    full_run(alice, bob, 5, 5, question)


def test_zero_and_extreme_secrets() -> None:
    alice, bob = pair("z")
    full_run(alice, bob, 0, 0)
    full_run(alice, bob, (1 << 256) - 1, (1 << 256) - 1)
    full_run(alice, bob, 0, 1)


def test_new_run_after_one_ended_either_role() -> None:
    alice, bob = pair("again")
    full_run(alice, bob, 1, 1)
    full_run(alice, bob, 1, 2)
    full_run(bob, alice, 3, 3, "q")
    full_run(alice, bob, 4, 4)


# -- the state table ---------------------------------------------------------------


RECEIVED = (
    SMPInput.MSG1,
    SMPInput.MSG1Q,
    SMPInput.MSG2,
    SMPInput.MSG3,
    SMPInput.MSG4,
    SMPInput.PEER_ABORT,
)


def test_table_shape() -> None:
    for state in SMPState:
        for always in (SMPInput.PEER_ABORT, SMPInput.ABORT):
            assert TRANSITIONS[(state, always)] is SMPState.EXPECT1
        assert TRANSITIONS[(state, SMPInput.START)] is SMPState.EXPECT2
    assert [k for k in TRANSITIONS if k[1] is SMPInput.RESPOND] == [
        (SMPState.AWAIT_ANSWER, SMPInput.RESPOND)
    ]
    assert set(SMP_TLV_TYPES) == {2, 3, 4, 5, 6, 7}


def message_for(t: Transcript, other: Transcript, kind: SMPInput) -> TLV:
    """A well-formed TLV of ``kind``: the one the party in the transcript expects."""
    return {
        SMPInput.MSG1: other.m1,  # a fresh request from someone else
        SMPInput.MSG1Q: TLV(TLVType.SMP1Q, b"q\x00" + other.m1.value),
        SMPInput.MSG2: t.m2,
        SMPInput.MSG3: t.m3,
        SMPInput.MSG4: t.m4,
        SMPInput.PEER_ABORT: ABORT,
    }[kind]


@pytest.mark.parametrize("state", list(SMPState))
@pytest.mark.parametrize("kind", RECEIVED)
def test_walk_received(run: Transcript, other: Transcript, state: SMPState, kind: SMPInput) -> None:
    smp = copy.deepcopy(run.snapshots[state])
    tlv = message_for(run, other, kind)
    step = smp.receive(tlv)
    want = TRANSITIONS.get((state, kind))
    if want is None:
        assert_reset(smp, step, SMPOutcome.ERROR)
        return
    assert step.outcome not in FAILURES, step.reason
    assert smp.state is want
    expected = {
        SMPInput.MSG1: SMPOutcome.REQUESTED,
        SMPInput.MSG1Q: SMPOutcome.REQUESTED,
        SMPInput.MSG2: SMPOutcome.IN_PROGRESS,
        SMPInput.MSG3: SMPOutcome.SUCCEEDED,
        SMPInput.MSG4: SMPOutcome.SUCCEEDED,
        SMPInput.PEER_ABORT: SMPOutcome.ABORTED,
    }[kind]
    assert step.outcome is expected
    # Wherever it landed, a fresh run works from there.
    if not smp.in_progress:
        full_run(smp, SMP(DRBG(b"fresh")), 9, 9)


@pytest.mark.parametrize("state", list(SMPState))
def test_walk_user_actions(run: Transcript, state: SMPState) -> None:
    smp = copy.deepcopy(run.snapshots[state])
    out = smp.start(secret())
    assert smp.state is TRANSITIONS[(state, SMPInput.START)] is SMPState.EXPECT2
    if state is SMPState.EXPECT1:
        assert len(out) == 1 and out[0].type == TLVType.SMP1
    else:
        assert out[0] == ABORT and out[1].type == TLVType.SMP1

    smp = copy.deepcopy(run.snapshots[state])
    if (state, SMPInput.RESPOND) in TRANSITIONS:
        assert smp.respond(secret()).type == TLVType.SMP2
        assert smp.state is TRANSITIONS[(state, SMPInput.RESPOND)]
    else:
        with pytest.raises(LocalProtocolError):
            smp.respond(secret())
        assert smp.state is state

    smp = copy.deepcopy(run.snapshots[state])
    assert smp.abort() == ABORT
    assert smp.state is TRANSITIONS[(state, SMPInput.ABORT)] is SMPState.EXPECT1

    smp = copy.deepcopy(run.snapshots[state])
    smp.reset()
    assert smp.state is SMPState.EXPECT1


def test_receiving_abort_while_idle_reports_it() -> None:
    # libotr raises OTRL_SMPEVENT_ABORT whatever the state.
    smp = SMP(DRBG(b"x"))
    assert smp.receive(ABORT) == SMPStep(SMPOutcome.ABORTED)
    assert smp.receive(TLV(TLVType.SMP_ABORT, b"ignored payload")).outcome is SMPOutcome.ABORTED


def test_simultaneous_start_both_abort() -> None:
    alice, bob = pair("sim")
    (a1,) = alice.start(1)
    (b1,) = bob.start(1)
    ra, rb = alice.receive(b1), bob.receive(a1)
    assert_reset(alice, ra, SMPOutcome.ERROR)
    assert_reset(bob, rb, SMPOutcome.ERROR)
    assert alice.receive(rb.reply[0]).outcome is SMPOutcome.ABORTED
    full_run(alice, bob, 2, 2)


# -- aborts and restarts ---------------------------------------------------------


@pytest.mark.parametrize("point", range(5))
@pytest.mark.parametrize("who", ["alice", "bob"])
def test_abort_at_every_step(point: int, who: str) -> None:
    alice, bob = pair(f"ab{point}{who}")
    box: dict[str, TLV] = {}

    def s0() -> None:
        (box["m1"],) = alice.start(7)

    def s1() -> None:
        bob.receive(box["m1"])

    def s2() -> None:
        box["m2"] = bob.respond(7)

    def s3() -> None:
        (box["m3"],) = alice.receive(box["m2"]).reply

    def s4() -> None:
        bob.receive(box["m3"])

    steps: list[Callable[[], None]] = [s0, s1, s2, s3, s4]
    for s in steps[: point + 1]:
        s()
    aborter, other = (alice, bob) if who == "alice" else (bob, alice)
    tlv = aborter.abort()
    assert tlv == ABORT and aborter.state is SMPState.EXPECT1
    assert other.receive(tlv) == SMPStep(SMPOutcome.ABORTED)
    assert other.state is SMPState.EXPECT1
    full_run(alice, bob, 8, 8)
    full_run(bob, alice, 8, 9)


def test_restart_while_question_pending_via_abort(qrun: Transcript) -> None:
    alice = copy.deepcopy(qrun.snapshots[SMPState.EXPECT2])
    bob = copy.deepcopy(qrun.snapshots[SMPState.AWAIT_ANSWER])
    abort, m1 = alice.start(secret(b"new"), "Second question?")
    assert abort == ABORT
    assert bob.receive(abort).outcome is SMPOutcome.ABORTED
    assert bob.receive(m1) == SMPStep(SMPOutcome.REQUESTED, question="Second question?")
    r2 = alice.receive(bob.respond(secret(b"new")))
    r3 = bob.receive(r2.reply[0])
    assert r3.outcome is SMPOutcome.SUCCEEDED
    assert alice.receive(r3.reply[0]).outcome is SMPOutcome.SUCCEEDED


def test_new_request_replaces_pending_one(qrun: Transcript) -> None:
    # libotr stays in EXPECT1 while the user has not answered, so a second
    # message 1 simply replaces the first.
    bob = copy.deepcopy(qrun.snapshots[SMPState.AWAIT_ANSWER])
    alice = SMP(DRBG(b"second alice"))
    (m1,) = alice.start(secret(b"2"))
    assert bob.receive(m1) == SMPStep(SMPOutcome.REQUESTED)
    assert bob.question is None and not bob.received_question
    r2 = alice.receive(bob.respond(secret(b"2")))
    r3 = bob.receive(r2.reply[0])
    assert r3.outcome is SMPOutcome.SUCCEEDED and r3.trust is True


def test_bad_new_request_drops_pending_one(qrun: Transcript) -> None:
    bob = copy.deepcopy(qrun.snapshots[SMPState.AWAIT_ANSWER])
    step = bob.receive(replace(qrun.m1, 1, 12345))
    assert_reset(bob, step, SMPOutcome.CHEATED)
    with pytest.raises(LocalProtocolError):
        bob.respond(secret())


def test_starting_while_asked_aborts_first(qrun: Transcript) -> None:
    alice = copy.deepcopy(qrun.snapshots[SMPState.EXPECT2])
    bob = copy.deepcopy(qrun.snapshots[SMPState.AWAIT_ANSWER])
    abort, m1 = bob.start(secret(b"reverse"))
    assert abort == ABORT and bob.initiator is True
    assert alice.receive(abort).outcome is SMPOutcome.ABORTED
    assert alice.receive(m1).outcome is SMPOutcome.REQUESTED
    r2 = bob.receive(alice.respond(secret(b"reverse")))
    r3 = alice.receive(r2.reply[0])
    assert r3.outcome is SMPOutcome.SUCCEEDED
    assert bob.receive(r3.reply[0]).outcome is SMPOutcome.SUCCEEDED


def test_reset_forgets_silently(run: Transcript) -> None:
    for state, snap in run.snapshots.items():
        smp = copy.deepcopy(snap)
        smp.reset()
        assert smp.state is SMPState.EXPECT1, state
        step = smp.receive(run.m2)
        assert_reset(smp, step, SMPOutcome.ERROR)


# -- malformed messages ---------------------------------------------------------------


EXPECTING = {
    TLVType.SMP1: SMPState.EXPECT1,
    TLVType.SMP1Q: SMPState.EXPECT1,
    TLVType.SMP2: SMPState.EXPECT2,
    TLVType.SMP3: SMPState.EXPECT3,
    TLVType.SMP4: SMPState.EXPECT4,
}


def good(t: Transcript, kind: int) -> TLV:
    table: dict[int, TLV] = {
        TLVType.SMP1: t.m1,
        TLVType.SMP1Q: TLV(TLVType.SMP1Q, b"Q?\x00" + t.m1.value),
        TLVType.SMP2: t.m2,
        TLVType.SMP3: t.m3,
        TLVType.SMP4: t.m4,
    }
    return table[kind]


def feed(t: Transcript, tlv: TLV, kind: int | None = None) -> tuple[SMP, SMPStep, int]:
    """Deliver ``tlv`` to the side that expects a TLV of ``kind``; also return
    the number of exponentiations the delivery cost."""
    smp = copy.deepcopy(t.snapshots[EXPECTING[TLVType(kind or tlv.type)]])
    before = smp.exponentiations
    step = smp.receive(tlv)
    return smp, step, smp.exponentiations - before


def cheated(t: Transcript, tlv: TLV, kind: int | None = None) -> int:
    smp, step, cost = feed(t, tlv, kind)
    assert_reset(smp, step, SMPOutcome.CHEATED)
    assert step.reason
    return cost


@pytest.mark.parametrize("kind", list(COUNTS))
def test_good_messages_pass(run: Transcript, kind: int) -> None:
    _, step, _ = feed(run, good(run, kind))
    assert step.outcome not in FAILURES, step.reason


@pytest.mark.parametrize("kind", list(COUNTS))
def test_wrong_counts_and_lengths(run: Transcript, kind: int) -> None:
    prefix, values = mpis(good(run, kind))
    n = COUNTS[kind]
    assert len(values) == n
    variants = [
        build(kind, [*values, 5], prefix),  # one MPI too many
        build(kind, values[:-1], prefix),  # one too few
        build(kind, values, prefix, count=n + 1),  # count says more than there is
        build(kind, values, prefix, count=n - 1),  # count says fewer: trailing bytes
        build(kind, values, prefix, count=0),
        build(kind, values, prefix, count=0xFFFFFFFF),
        TLV(kind, good(run, kind).value + b"\x00"),  # a trailing byte
        TLV(kind, good(run, kind).value[:-1]),  # truncated in the last MPI
        TLV(kind, prefix + b"\x00\x00\x00"),  # truncated count
        TLV(kind, prefix + encode_int(n) + b"\x00\x00\x04\x01\x02"),  # MPI overruns the buffer
    ]
    if kind != TLVType.SMP1Q:
        variants.append(TLV(kind, b""))
    for tlv in variants:
        assert cheated(run, tlv, kind) == 0


def test_leading_zero_mpis_are_accepted(run: Transcript) -> None:
    # libotr reads MPIs with leading zero bytes as their value; so do we.
    _, values = mpis(run.m2)
    padded = encode_int(len(values)) + b"".join(
        encode_int(len(v.to_bytes(200, "big"))) + v.to_bytes(200, "big") for v in values
    )
    _, step, _ = feed(run, TLV(TLVType.SMP2, padded))
    assert step.outcome is SMPOutcome.IN_PROGRESS


def test_question_without_nul(run: Transcript) -> None:
    cheated(run, TLV(TLVType.SMP1Q, b"no terminator at all"), TLVType.SMP1Q)
    # A NUL as the only and last byte leaves no MPIs.
    cheated(run, TLV(TLVType.SMP1Q, b"question\x00"), TLVType.SMP1Q)
    # Without its NUL, the question swallows the count.
    cheated(run, TLV(TLVType.SMP1Q, b"q" + run.m1.value), TLVType.SMP1Q)


def test_empty_question_tlv_is_an_error(run: Transcript) -> None:
    # libotr ignores a zero-length type 7 TLV and reports OTRL_SMPEVENT_ERROR.
    smp, step, _ = feed(run, TLV(TLVType.SMP1Q, b""))
    assert_reset(smp, step, SMPOutcome.ERROR)


def test_invalid_utf8_question_is_shown_replaced(run: Transcript) -> None:
    smp, step, _ = feed(run, TLV(TLVType.SMP1Q, b"caf\xe9 \xff?\x00" + run.m1.value))
    assert step == SMPStep(SMPOutcome.REQUESTED, question="caf\ufffd \ufffd?")
    assert smp.state is SMPState.AWAIT_ANSWER and smp.received_question


# Position of every group element, D exponent and hash value in each message.
ELEMENTS: dict[int, tuple[int, ...]] = {
    TLVType.SMP1: (0, 3),
    TLVType.SMP2: (0, 3, 6, 7),
    TLVType.SMP3: (0, 1, 5),
    TLVType.SMP4: (0,),
}
EXPONENTS: dict[int, tuple[int, ...]] = {
    TLVType.SMP1: (2, 5),
    TLVType.SMP2: (2, 5, 9, 10),
    TLVType.SMP3: (3, 4, 7),
    TLVType.SMP4: (2,),
}
HASHES: dict[int, tuple[int, ...]] = {
    TLVType.SMP1: (1, 4),
    TLVType.SMP2: (1, 4, 8),
    TLVType.SMP3: (2, 6),
    TLVType.SMP4: (1,),
}
# The hash checked first (before any exponentiation) in each message.
FIRST_HASH: dict[int, int] = {TLVType.SMP1: 1, TLVType.SMP2: 1, TLVType.SMP3: 2, TLVType.SMP4: 1}


@pytest.mark.parametrize("kind", list(ELEMENTS))
def test_group_element_bounds(run: Transcript, kind: int) -> None:
    msg = good(run, kind)
    for index in ELEMENTS[kind]:
        for bad in (0, 1, P - 1, P, P + 1, 1 << 2000):
            # Out of [2, p-2]: rejected before any exponentiation.
            assert cheated(run, replace(msg, index, bad)) == 0, (index, bad)
        for edge in (2, P - 2):
            # In range, so the proofs are computed, and they fail.
            assert cheated(run, replace(msg, index, edge)) > 0, (index, edge)


@pytest.mark.parametrize("kind", list(EXPONENTS))
def test_exponent_bounds(run: Transcript, kind: int) -> None:
    msg = good(run, kind)
    for index in EXPONENTS[kind]:
        for bad in (0, Q, Q + 1, P):
            assert cheated(run, replace(msg, index, bad)) == 0, (index, bad)
        for edge in (1, Q - 1):
            assert cheated(run, replace(msg, index, edge)) > 0, (index, edge)


@pytest.mark.parametrize("kind", list(HASHES))
def test_tampered_proofs(run: Transcript, kind: int) -> None:
    msg = good(run, kind)
    _, values = mpis(msg)
    for index in HASHES[kind] + EXPONENTS[kind]:
        value = values[index]
        for other in {value ^ 1, value + 1, value - 1, 0}:
            cheated(run, replace(msg, index, other))
    # A hash value longer than 256 bits can never verify: no work is done.
    assert cheated(run, replace(msg, FIRST_HASH[kind], 1 << 256)) == 0


@pytest.mark.parametrize("kind", list(ELEMENTS))
def test_substituted_elements(run: Transcript, kind: int) -> None:
    # Another valid group element in any position breaks a proof.
    msg = good(run, kind)
    _, values = mpis(msg)
    for index in ELEMENTS[kind]:
        assert cheated(run, replace(msg, index, values[index] * 4 % P)) > 0, index


def test_cheating_in_message_3_and_4_clears_trust(run: Transcript, qrun: Transcript) -> None:
    _, step, _ = feed(run, replace(run.m3, 2, 1))
    assert step.outcome is SMPOutcome.CHEATED and step.trust is False
    _, step, _ = feed(run, replace(run.m4, 1, 1))
    assert step.outcome is SMPOutcome.CHEATED and step.trust is False
    # The responder to a question leaves trust alone, as libotr does.
    _, step, _ = feed(qrun, replace(qrun.m3, 2, 1))
    assert step.outcome is SMPOutcome.CHEATED and step.trust is None
    # Cheating in message 1 or 2 says nothing about trust.
    for tlv in (replace(run.m1, 1, 1), replace(run.m2, 1, 1)):
        _, step, _ = feed(run, tlv)
        assert step.outcome is SMPOutcome.CHEATED and step.trust is None


def test_replayed_messages_are_rejected(run: Transcript) -> None:
    # Message 2 has Bob's proofs under versions 3 and 4; fed back as message 1
    # (versions 1 and 2) they must not verify.
    _, values = mpis(run.m2)
    cheated(run, build(TLVType.SMP1, values[:6]))
    # A transcript's message 3 does not fit another run's state.
    other = transcript(tag="replay")
    cheated(run, other.m3)
    cheated(run, other.m4)


def test_failure_leaves_state_usable(run: Transcript) -> None:
    bob, _, _ = feed(run, replace(run.m3, 0, 2))
    alice = SMP(DRBG(b"after failure"))
    full_run(alice, bob, 1, 1)
    full_run(bob, alice, 1, 1)


# -- caller errors -----------------------------------------------------------------------


@pytest.mark.parametrize("bad", [-1, 1 << 256, True, 1.0, "secret", b"secret"])
def test_bad_secret_is_a_local_error(run: Transcript, bad: object) -> None:
    smp = SMP(DRBG(b"bad"))
    with pytest.raises(LocalProtocolError):
        smp.start(bad)  # type: ignore[arg-type]
    assert smp.state is SMPState.EXPECT1 and smp.exponentiations == 0
    waiting = copy.deepcopy(run.snapshots[SMPState.AWAIT_ANSWER])
    with pytest.raises(LocalProtocolError):
        waiting.respond(bad)  # type: ignore[arg-type]
    assert waiting.state is SMPState.AWAIT_ANSWER


@pytest.mark.parametrize("question", ["nul\x00inside", "x" * 65000, "lone \ud800 surrogate"])
def test_bad_question_is_a_local_error(question: str) -> None:
    smp = SMP(DRBG(b"badq"))
    with pytest.raises(LocalProtocolError):
        smp.start(1, question)
    assert smp.state is SMPState.EXPECT1


@pytest.mark.parametrize("kind", [0, 1, 8, 9, 0xFFFF])
def test_non_smp_tlv_is_a_local_error(run: Transcript, kind: int) -> None:
    smp = copy.deepcopy(run.snapshots[SMPState.EXPECT3])
    with pytest.raises(LocalProtocolError):
        smp.receive(TLV(kind, b"whatever"))
    assert smp.state is SMPState.EXPECT3


def test_short_random_source_is_a_local_error() -> None:
    smp = SMP(lambda n: b"\x01" * (n - 1))
    with pytest.raises(LocalProtocolError):
        smp.start(1)
    assert smp.state is SMPState.EXPECT1


# -- secrets stay out of sight ------------------------------------------------------------


def test_no_secrets_in_reprs_or_errors() -> None:
    x = secret(b"hunter2")
    randomness: list[bytes] = []
    base = DRBG(b"repr")

    def recording(n: int) -> bytes:
        randomness.append(base(n))
        return randomness[-1]

    alice, bob = SMP(recording), SMP(DRBG(b"repr bob"))
    (m1,) = alice.start(x, "q")
    bob.receive(m1)
    m2 = bob.respond(x)
    step = alice.receive(m2)
    needles = [str(x), f"{x:x}", f"{x:X}"]
    for raw in randomness:
        value = int.from_bytes(raw, "big")
        needles += [str(value), f"{value:x}", raw.hex()]
    texts = [repr(alice), repr(bob), repr(step), repr(alice._ctx), repr(bob._ctx)]
    texts += [str(step), repr(m1), repr(m2)]
    try:
        alice.start(-x)
    except LocalProtocolError as exc:
        texts.append(str(exc))
    bad = bob.receive(replace(step.reply[0], 7, 1))
    assert bad.reason is not None
    texts.append(bad.reason)
    for text in texts:
        for needle in needles:
            assert needle not in text
    assert repr(alice) == "SMP(state=EXPECT4)"


# -- known-answer vector -----------------------------------------------------------------

# Produced by this implementation with DRBG(b"offrecord smp kat alice") for the
# initiator and DRBG(b"offrecord smp kat bob") for the responder (SHA-256 of
# seed || 64-bit big-endian counter, concatenated), the secret
# smp_secret(FP_A, FP_B, SSID, b"42"), the question "What is the answer?",
# exponents drawn in spec order (initiator: a2, a3, r2, r3, then r4, r5, r6,
# r7; responder: b2, b3, r2, r3, r4, r5, r6, then r7).  Each TLV value was
# also checked against libotr 4.1.1's otrl_sm_step* (see the interop tests).
KAT_SECRET = 0x3A3E498B58FC0CF3CC53CC23DDA93083C5329CCC018505D7C0134B2B09AF4139
KAT: dict[int, str] = {
    7: (
        "576861742069732074686520616e737765723f0000000006000000c02cd216eb4f464f2dd285b750f14514d9"
        "714b25d92d82abf746a785062b63445a8649f69f9f2ee398cbc18278fc9f6137d225cbecb1a4d12d862853d3"
        "4d56822e41dc9bb42e1a1c107d929a30ddf558aa43c233990001979b2794a62a4dc839bd46538b49678cd3f9"
        "8c73140dcb41b4f32dabb87832efc07d22c272bc8fcc88a5b029341aa24ffa72563a2420581f0e9288a54c4a"
        "a3ee6d7da701981ebe36c9f898f50c1bb215101c1e9c06627d33f6932b1a4126e9fdf795846fd330b22c5dc8"
        "0000002056932d50f612aa361ff58f43f310ae8e023d11b46667d6e0ee2c318050b70c43000000c02b72e5a4"
        "f2f9e7c53002b2c7f75886163841234167d81cbd01ac92ac96c52c4ebc6115851aad4836b316f874ff2be76c"
        "7a8eb07c8d0e5f24701062c67e59c9564d539687f0704c487af3b094575bf87d5a1ab912d4f73ee8ad256e67"
        "f40723a369ee220967506f1811078a1a2ede9a777d9f013d451d51a76759944011308554ea5a3273c1a472fd"
        "ac74efb104ceb7c2953e6fe61a5be4d6afbacdc107254bd32ccf70ea37f36de08344314b7dce6753324cdc48"
        "399a142251a9742cf1b82507000000c0e5df19fd8ffeb2308d09926dd02b9318e4c3b63af6c81f7bed1884d5"
        "3d7cc0324ce5639b500bcd67bbfcdc5a4d7ffd40a27f472c0f2e5c8870858e9591c00de10f000ccea34121b3"
        "8b457e6e55b4f7282b4bbe8ac718f54090894fb670cd0f6e7b2663051490ddbb065c25d9e0c581845f5ae186"
        "05875ecc79ce7c5486d4b41dfcb08b3d45cc30e3102d2aeff5c5db1c6ad63925c934cd46d44fce63f47836a6"
        "e1b8d60c6c33e6309e22c61e213c369cb12ba5f1e4a228aa854bed0646781b5e00000020fb3b9ced364e6200"
        "65be3a9ec4dba044453a18fe5d5e5ea7bcd9a3b293794b00000000c035d0601690c7cf75c5fc5b32408a09c1"
        "e4f74556cd5fc6a1b9cf1b0c8c077e96444a48d3563e14d2b753991b6c9996370d032a3251f60283a6183c57"
        "c70c00c10b019709414fc83581e505b6374cfeeec5adfbb907f7c0a25c61e749acf801b24ecb3aea02b894d0"
        "569ced8c5194886e7a4ebc99cfd3ec9a39c4aa8bca0b268bbc4e0db1b8b05d6aa8aa3a8a16919aa5cb9c24b0"
        "332dadb2650fc5d598c111b40b49f70675495a744974f94417b3bf9a09fee887b8a6db269584c3f9fba63624"
    ),
    3: (
        "0000000b000000c00ded553cf662d85d44e30aba76564c664a846d041a25eac6c41c093a355130b7deb376d7"
        "b0f8fed800c60e737a0828db3427d324c08a81f57e98e7b64248a8a9e3bac18ac426d41481daaebef66ec898"
        "2b8ba46fd5b31dddc4a6ed216caed190043ba3961b835a3b2d32f34e5ec94d8b23d804173911d7770039f232"
        "fcaaa5068179a39565ba4261f4381d0b8ef0089e49ec67dc97f52dc12209537a45b8e369a3cd04471eb127ca"
        "80d88278b1a0edbf16e39d449bb2da0482438b6a09bfacc400000020225e733a644f4a1d53550372e477db1b"
        "df0fdbe1ef6ad89e66c59b6d2d221cb6000000c0511708f4f0c2d6a8e4e66462459429800d2dd6b108c4916a"
        "a420f3e304c3617e88cba987e0e9e83732c70d8a511df1d5db9d17081b0e7e249208eeb43c29ab5a20a1ee9d"
        "35b927d0e9589234454e8081af7593ba526edf52501e7f22988a50194a5280596178b0a5cd39fa3a0c858837"
        "34b50629375512896a65bbf1fc8cedc37234c9c6ee8ed209dd442f3f880f0aff5437ac2090b14baff3b57ba8"
        "fd3364e3826196844f7c4f31485fb6199be79e30da8ba173254dc94ac7c61d1003f9f970000000c0a3cafa22"
        "547f365be60e4de3bf262f8ec002a06ac5e80ad2c53a6fe8fc8425bee18c4155a0761ad45ea98c58d26431e6"
        "4482e877ad37f6852d7346e06f1563bc4ed7588e3b4fd5beb03d96965cd08db0e85fe5f80d91ab70d075c451"
        "cd24ac04cb9dd9ff9a0b912ca1ed311e3780465812fbabd983751f50450f21ff607449c022ea2b5b4877921f"
        "b1b8b8dcf9605b641906439d4ae625899956cd6899bbb66fb3a8461e7eeee4bf04e1c12eb60744b7b54b5a9d"
        "23593c385621c8486d07dc8200000020437a4967ad3ef6673a74d29a8b68c4c9ba88e77e7ffe26ca0c0bd017"
        "f8b84158000000c04269a52f37c8639d830e4f86d9ea4b1c08dc5558ac403e5c881029d0f717797852f316c4"
        "4f319dd5c5b5f4c35d0d50f7e910bad3b1bdd62694ee3c4bd958d28fb7a66ff258352f670e26ec680c2f1f6c"
        "d7e70c510dc22a40b51b645be059d89fc3e8e5566913cc76182a82da1664a5c01ded39f22785ad00a6c2f1c7"
        "bed7938655459f1fdbb0878a56ed39e49797140ac29cfdd67bd04fa89bd1a7859fed4664f067ea297a6fde2b"
        "9b4de0e30e0f0d8d043d829c28446384c42edee2e77e8b3a000000c0bcbf65955999126bac8a9a0e980fd4e8"
        "61c2f15a5a373c15a0fb3ec38ab3bd8d2b6b13f40728f47de0d1b9ae9da9e7cf9ece8f60d834b8186089ee5b"
        "81337ce4bbc4bb6f584305b6b48b2d81add7fcdb283cb52cdb3bdf6a36ad66e410e7de9955021edd84c173db"
        "27aa2336c222d7847ea067b38570f99fe1b77a627c54e4df647218b4f027b6b4766727d0544650c4d2997340"
        "8aa70a71766e22c3909e73104b590db27895f3be655a326a1a47bb7f6272aef1257239ed2b65df147966699f"
        "000000c08cde3cca5508e302421af76c3cba889514eda97c14ebf0603dd63c614577dab88890e08fbea8e554"
        "908bf93e929de6d53818cd213780a5d33294613575e7b5c66131870a2f0d9b5b072de2b48a189795b310a927"
        "5126e6573f59d4eefca48be0d9bca8432d2840a6327f9ff3876b20bab71521128873714923bcea12b814b650"
        "533d71780b796ebfedbe41f923f27782acf5c4d4432cae6d85b7030539129ea85de732cd7f51cc49aeeb726e"
        "8e6287dd9c29b2768f94b83ed94cfc367ac685680000002077d37c02ba82ceb85ecca68e19c53bf5c67055f1"
        "297ed3bb835f8768a335b0ec000000c002ffeea36d64a91563a32b55c9ca1adee44d5b09e14e52efc463026f"
        "91f65e66e1610caa81d1aaf9cb6fd43e725eec2c76dfd3e90c42a8c91ad23aea7757b70017dcc52cc87021df"
        "6c2ba8a0ee2b1f98a31aeba1db2792ce7a7e9ace6a056617ae14d3c7c30252e803e959761900178abdd0db9c"
        "f2496a1a1d58c0fa1271ffb813c085f8002d0e6c88e87575422b2a2f279c7c89fd9d1c170b7519f5e6493c99"
        "e5785d2e71571f709ebbf72eb716d71e02b0e0d3a1c8a6a2718a8e8d9028f6ce000000c0401ae9c0762d7260"
        "542ede99c9c297526bd57e4f8e782958ce75f83708c6fd44c971d9bf6ce5affedd7c5762b0d480de41f23153"
        "d9d5d93f4534136ff21b559947846abf7b166da96ea1ef541367141269a3e0cdfa8c442f47e851d1983c20c1"
        "777f98eb6632a8eac0984f1efcf383df57969fe2b19228bf9e39a6ede1a05a3088f77e114b7a5ab547887d2d"
        "5408df83ef82fb409d393cb3a365df0822cbf50286c51268480ee4ed2d34b9b97e0a5b31204599365e4a3bdd"
        "f5ff70e95c54db54"
    ),
    4: (
        "00000008000000c0e55ba2cf747474222334f18c4698029b43a3dd30a30691524c065b5a9434e3e501f1f4e1"
        "a4a784a802a56fc0d559fc3eb368fb7ac1c421fd22d52b1eb5b6dc2c9ed498733426ba5c22f66f979cbe4835"
        "ab6dbadc10d25d761a6dfdf3467e1169a4eddb590c836cd0e0005b60daf58f429f3a721456da15755320ef3e"
        "40196ea02b0b4902a87ca04a549ee93b4d5ad7f9b2cab6a7023cef6836343293d4e20970d079426bbbc7b443"
        "aa8ae848fffd3ddb9c8998c5b5b2c3d8fbb717c5a5a3e428000000c0766abd38af563822e8ce75d4673f6d40"
        "edcdf0a3dac9a4272336647055baa6696b78e641b2edff776db32781eb57aeeb137ae0dfc8f51e7f86f47487"
        "c7de9bc3b6278616d3603416729c958ba2b74d260fef969004f48667c76ed3d1e68b408ce77f4a97fcb93781"
        "efb63629e5e553f2bc64edca9e4b9efee39898341afe87a3a003ffee21d8aa37244c9beada2f263c31e86ac2"
        "8cb815a4fd185bd97cbd5bd6f3efeaba6892564621424ce632ed203cdd0d8b3056394338ebe2b062ec9d3e75"
        "00000020ed6aba500c0ab605ef367ee6248cd23320b600f44660275c3703428dc5998247000000c03bf88a6b"
        "dcceba3197f109a476c06745ba035bda8508c3eb6397305616d2fe4874c5840af4c3243d4ef16a73e152b430"
        "d665cf11d504785a57c05f0f7620995d5354aa06c77ab0d0a5857e9cca30ca8e976aaa97049902eab767c12f"
        "5780ab3d27eb63e6ebbb4f371d074a7218ddd943fb2c57e83c1fe51ef9d5e5a76c65d4b34610113787ce6f81"
        "a5b7f63d9da49528fc0e8e3a9b21a952cbce4e1d450b7fa1d5600f2a2d47550d87fc5860d8ce3da0ca78e83e"
        "3f366ce881a58a9b46d25415000000c03347f6c678e612838bdfaca6f5857de96761bc04bf7bfb0fe9b86b6f"
        "16831d5692c456d79e7f71e551c514e00e864a478007a7f9ccf0ff995b57c8021af6d66c55578716a3b2caea"
        "26db7b1af842eb77a8d97f2ba561825ac80d0139ecebc4b2cdc7ccc90ec3ec409618f069243e55f8525ec9d9"
        "7ca095ec2235c6b10cc989812faa965f4907552dfa3b16362f41b9a59540779e8179d39ebaf24025c904194d"
        "6c28c7a5c1654b6c378346999d99153c7a81ba74d8698cdc2f0da7ab515cbd0f000000c04a95c14e7826547e"
        "26ca73be91f79dd730771be0083d916b7d22fe1d57b406a5366057c865e907f85c09f1c85ce555f3068eed04"
        "e02ef4e919080c25851c42f1b41eabbdfd3ac62f8839f4fee28f6174299fb855cb936264d8a4e8e709e87acf"
        "5dee1186864a7d24c0d323d1b57a08138a9822c1f9379f7982d8e3e78cd8c2a5c1639f58a4669bcdb76f6bda"
        "9e0fe91f05bab6c9a56acaff3ddda22a445037cd104ac2392b7641e77edcb3432e65ee537528a0cc45fc4365"
        "da474a17cebb087a000000205e893c2d35d52dcf73e26be6e77d208e861a6cc19de6de4a84e3b56db705ae9d"
        "000000c03b2d834dd1e12b22e581aee51280035c69897a526e0567af847d9b0feecf8641109a050010da1079"
        "b7d2a52a54a7be7793c3bbf12a0f0530accf0008d8bbacc50ee18761a3de1d0d1310c79ba2c73d827afac9d1"
        "1f54378a13ea5114f3b7db62f467e893aa2e9cc5b8d1fe7843079c58eeec014cf82a6ee78c8f138e951bf67d"
        "cde5d682e14c92948aac43418081b61c564b88eb2756c0ed8801ed96bbe5fa489c91b8008724b9ad226ab551"
        "04e6cc27d6175f05d261f22007f60a3a5ac94240"
    ),
    5: (
        "00000003000000c0aa184219e041e380f843e1e523cf0968564fb261a05f0a08b06099b52f90a07477fc9996"
        "a5261b624c6ff892ff78861849bde351bf826b71844e8fa207fdf2852baf1fda49c7733dde68d204df0adb9d"
        "d43e84c7bbef0ac646becc53593d9b89bf708ffd7adc58299724a2a9c72bb40e73d15cd4da2d7705ba76c5e9"
        "e083e1d83313d3468842344d751d9e73237c9857c969fe0d49f182190accfc973cb3efc1925b2c7f6e83fdcc"
        "d34ff480fd549b127e492989e1e629deb2036ca43ce0741800000020b3d7f790d575a673445d3deac9d6a08c"
        "25d501dc036760b7e31aa9d482e64c83000000c037b8fee891b65eba762bcbe2a2d1f9321bec87087dbf8a99"
        "fd49e0a7b5f3e84f72c42b24cf631f5ee03270ed421802b094766e2bc7f3b1bb3b4fe025d9477ab293ad9410"
        "9242083c75945e80f84b06234163fe1a7763e7a02dea107d5631e8badb56bef36797b4f539b6e8914c80a7f8"
        "58f7f9f07f7f9d6b875d8e1d4fafcb34dba1c9dec696a6bc863b1c993d15989efbf5271a309dc8b357377fdc"
        "f92af43eb25e72ab245add5549dcfe69633fee4d965b96cd689e59a6f05e8266fd620b15"
    ),
}


def test_known_answer() -> None:
    assert smp_secret(FP_A, FP_B, SSID, b"42") == KAT_SECRET
    alice = SMP(DRBG(b"offrecord smp kat alice"))
    bob = SMP(DRBG(b"offrecord smp kat bob"))
    (m1,) = alice.start(KAT_SECRET, "What is the answer?")
    assert bob.receive(m1).question == "What is the answer?"
    m2 = bob.respond(KAT_SECRET)
    (m3,) = alice.receive(m2).reply
    r3 = bob.receive(m3)
    (m4,) = r3.reply
    assert r3.outcome is alice.receive(m4).outcome is SMPOutcome.SUCCEEDED
    for tlv in (m1, m2, m3, m4):
        assert tlv.value.hex() == KAT[tlv.type], tlv.type
        # Output MPIs are minimal.
        prefix, values = mpis(tlv)
        assert build(tlv.type, values, prefix) == tlv


# -- against libotr 4.1.1 ------------------------------------------------------------------


class _LibOTRSM:
    """libotr's SMP steps (sm.c), driven through ctypes."""

    STATE_SIZE = 256  # OtrlSMState is 11 pointers and 3 ints
    PROG_OFFSET = 11 * 8 + 2 * 4  # sm_prog_state

    def __init__(self) -> None:
        name = ctypes.util.find_library("otr") or "libotr.so.5"
        self.lib = ctypes.CDLL(name)
        self.libc = ctypes.CDLL(None)
        self.lib.otrl_init.restype = ctypes.c_uint
        if self.lib.otrl_init(4, 1, 1) != 0:
            raise OSError("libotr refused version 4.1.1")
        for fn in ("step1", "step2a", "step2b", "step3", "step4", "step5"):
            getattr(self.lib, f"otrl_sm_{fn}").restype = ctypes.c_uint

    def state(self) -> ctypes.Array[ctypes.c_char]:
        buf = ctypes.create_string_buffer(self.STATE_SIZE)
        self.lib.otrl_sm_state_new(buf)
        return buf

    def progress(self, state: ctypes.Array[ctypes.c_char]) -> int:
        raw = state.raw[self.PROG_OFFSET : self.PROG_OFFSET + 4]
        return int.from_bytes(raw, "little", signed=True)

    def call(self, fn: str, *args: object) -> tuple[int, bytes]:
        out = ctypes.POINTER(ctypes.c_ubyte)()
        n = ctypes.c_int(0)
        err = getattr(self.lib, f"otrl_sm_{fn}")(*args, ctypes.byref(out), ctypes.byref(n))
        data = ctypes.string_at(out, n.value) if out else b""
        if out:
            self.libc.free(out)
        return int(err), data


@pytest.fixture(scope="module")
def libotr() -> _LibOTRSM:
    try:
        return _LibOTRSM()
    except (OSError, AttributeError) as exc:
        pytest.skip(f"libotr 4.1.1 not available: {exc}")


PROG_SUCCEEDED, PROG_FAILED, PROG_CHEATED = 1, -1, -2


@pytest.mark.interop
@pytest.mark.parametrize("same", [True, False])
def test_libotr_responds_to_us(libotr: _LibOTRSM, same: bool) -> None:
    x, y = secret(b"a"), secret(b"a" if same else b"b")
    alice, bob = SMP(DRBG(b"interop alice")), libotr.state()
    (m1,) = alice.start(x)
    assert libotr.lib.otrl_sm_step2a(bob, m1.value, len(m1.value), 0) == 0
    assert libotr.progress(bob) == 0
    err, m2 = libotr.call("step2b", bob, y.to_bytes(32, "big"), 32)
    assert err == 0
    step = alice.receive(TLV(TLVType.SMP2, m2))
    assert step.outcome is SMPOutcome.IN_PROGRESS, step.reason
    m3 = step.reply[0].value
    err, m4 = libotr.call("step4", bob, m3, len(m3))
    assert libotr.progress(bob) == (PROG_SUCCEEDED if same else PROG_FAILED)
    want = SMPOutcome.SUCCEEDED if same else SMPOutcome.FAILED
    assert alice.receive(TLV(TLVType.SMP4, m4)).outcome is want
    libotr.lib.otrl_sm_state_free(bob)


@pytest.mark.interop
@pytest.mark.parametrize("same", [True, False])
def test_we_respond_to_libotr(libotr: _LibOTRSM, same: bool) -> None:
    x, y = secret(b"a"), secret(b"a" if same else b"b")
    alice, bob = libotr.state(), SMP(DRBG(b"interop bob"))
    err, m1 = libotr.call("step1", alice, x.to_bytes(32, "big"), 32)
    assert err == 0
    assert bob.receive(TLV(TLVType.SMP1, m1)).outcome is SMPOutcome.REQUESTED
    m2 = bob.respond(y).value
    err, m3 = libotr.call("step3", alice, m2, len(m2))
    assert err == 0 and libotr.progress(alice) == 0
    step = bob.receive(TLV(TLVType.SMP3, m3))
    want = SMPOutcome.SUCCEEDED if same else SMPOutcome.FAILED
    assert step.outcome is want, step.reason
    m4 = step.reply[0].value
    libotr.lib.otrl_sm_step5(alice, m4, len(m4))
    assert libotr.progress(alice) == (PROG_SUCCEEDED if same else PROG_FAILED)
    libotr.lib.otrl_sm_state_free(alice)


@pytest.mark.interop
def test_libotr_accepts_the_known_answer_vector(libotr: _LibOTRSM) -> None:
    bob = libotr.state()
    payload = bytes.fromhex(KAT[TLVType.SMP1Q])
    m1 = payload[payload.index(b"\x00") + 1 :]
    assert libotr.lib.otrl_sm_step2a(bob, m1, len(m1), 1) == 0
    assert libotr.progress(bob) == 0
    libotr.lib.otrl_sm_state_free(bob)


@pytest.mark.interop
def test_libotr_rejects_what_we_reject(libotr: _LibOTRSM, run: Transcript) -> None:
    # Tampered proofs and out-of-range values: libotr marks them cheated too.
    for tlv in (replace(run.m1, 1, 1), replace(run.m1, 0, P - 1), replace(run.m1, 2, Q)):
        bob = libotr.state()
        libotr.lib.otrl_sm_step2a(bob, tlv.value, len(tlv.value), 0)
        assert libotr.progress(bob) == PROG_CHEATED
        libotr.lib.otrl_sm_state_free(bob)
        _, step, _ = feed(run, tlv)
        assert step.outcome is SMPOutcome.CHEATED
