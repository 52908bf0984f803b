"""Property tests for offrecord.smp: correctness over arbitrary secrets, and
state-machine invariants over arbitrary interleavings of user actions,
deliveries and losses."""

from __future__ import annotations

import hashlib
from collections import deque

from hypothesis import event, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from offrecord.smp import (
    EXPONENTIATIONS_PER_SIDE,
    SMP,
    TRANSITIONS,
    SMPInput,
    SMPOutcome,
    SMPState,
    SMPStep,
    smp_secret,
)
from offrecord.wire.codec import Reader, encode_int, encode_mpi
from offrecord.wire.tlv import TLV, TLVType

SECRETS = st.integers(min_value=0, max_value=(1 << 256) - 1)
QUESTIONS = st.none() | st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=40
)
COUNTS = {TLVType.SMP1: 6, TLVType.SMP1Q: 6, TLVType.SMP2: 11, TLVType.SMP3: 8, TLVType.SMP4: 3}
ABORT = TLV(TLVType.SMP_ABORT)


class DRBG:
    """Deterministic randomness: SHA-256(seed || counter) blocks."""

    def __init__(self, seed: bytes) -> None:
        self._seed = seed
        self._counter = 0
        self._buf = b""

    def __call__(self, n: int) -> bytes:
        while len(self._buf) < n:
            self._buf += hashlib.sha256(self._seed + self._counter.to_bytes(8, "big")).digest()
            self._counter += 1
        out, self._buf = self._buf[:n], self._buf[n:]
        return out


def check_wire_form(tlv: TLV) -> None:
    """Exact MPI count, minimal MPIs, nothing after them."""
    payload = tlv.value
    if tlv.type == TLVType.SMP1Q:
        payload = payload[payload.index(b"\x00") + 1 :]
    reader = Reader(payload)
    count = reader.int32()
    assert count == COUNTS[TLVType(tlv.type)]
    values = [reader.mpi() for _ in range(count)]
    reader.end()
    assert payload == encode_int(count) + b"".join(encode_mpi(v) for v in values)


@settings(max_examples=25, deadline=None)
@given(x=SECRETS, y=SECRETS, same=st.booleans(), question=QUESTIONS, seed=st.binary(max_size=8))
def test_result_is_equality_of_secrets(
    x: int, y: int, same: bool, question: str | None, seed: bytes
) -> None:
    y = x if same else y
    alice, bob = SMP(DRBG(b"a" + seed)), SMP(DRBG(b"b" + seed))
    (m1,) = alice.start(x, question)
    r1 = bob.receive(m1)
    assert r1.outcome is SMPOutcome.REQUESTED and r1.question == question
    m2 = bob.respond(y)
    r2 = alice.receive(m2)
    (m3,) = r2.reply
    r3 = bob.receive(m3)
    (m4,) = r3.reply
    r4 = alice.receive(m4)
    want = SMPOutcome.SUCCEEDED if x == y else SMPOutcome.FAILED
    assert r3.outcome is want and r4.outcome is want
    assert r4.trust is (x == y)
    assert r3.trust is (None if question is not None else x == y)
    for tlv in (m1, m2, m3, m4):
        check_wire_form(tlv)
    assert alice.exponentiations == bob.exponentiations == EXPONENTIATIONS_PER_SIDE
    assert alice.state is bob.state is SMPState.EXPECT1


@given(
    a=st.binary(min_size=20, max_size=20),
    b=st.binary(min_size=20, max_size=20),
    ssid=st.binary(min_size=8, max_size=8),
    user=st.binary(max_size=64),
)
def test_secret_layout(a: bytes, b: bytes, ssid: bytes, user: bytes) -> None:
    value = smp_secret(a, b, ssid, user)
    assert value == int.from_bytes(hashlib.sha256(b"\x01" + a + b + ssid + user).digest(), "big")
    assert 0 <= value < 1 << 256
    if a != b:
        assert smp_secret(b, a, ssid, user) != value


class TwoParties(RuleBasedStateMachine):
    """Alice and Bob with fixed secrets, a lossy in-order channel each way, and
    users who start, answer, abort and reset at random."""

    def __init__(self) -> None:
        super().__init__()
        self.smp = {"a": SMP(DRBG(b"sm alice")), "b": SMP(DRBG(b"sm bob"))}
        self.inbox: dict[str, deque[TLV]] = {"a": deque(), "b": deque()}
        self.secret = {"a": 1, "b": 1}

    @staticmethod
    def peer(side: str) -> str:
        return "b" if side == "a" else "a"

    @rule(same=st.booleans())
    def choose_secrets(self, same: bool) -> None:
        # Only between runs, so that every result can be judged.
        if not any(s.in_progress for s in self.smp.values()) and not any(self.inbox.values()):
            self.secret["b"] = self.secret["a"] if same else self.secret["a"] + 1

    @rule(side=st.sampled_from("ab"), question=QUESTIONS)
    def start(self, side: str, question: str | None) -> None:
        out = self.smp[side].start(self.secret[side], question)
        assert self.smp[side].state is SMPState.EXPECT2
        self.inbox[self.peer(side)].extend(out)

    @rule(side=st.sampled_from("ab"))
    def respond(self, side: str) -> None:
        smp = self.smp[side]
        if smp.state is SMPState.AWAIT_ANSWER:
            self.inbox[self.peer(side)].append(smp.respond(self.secret[side]))
            assert TRANSITIONS[(SMPState.AWAIT_ANSWER, SMPInput.RESPOND)] is smp.state

    @rule(side=st.sampled_from("ab"))
    def abort(self, side: str) -> None:
        self.inbox[self.peer(side)].append(self.smp[side].abort())
        assert self.smp[side].state is SMPState.EXPECT1

    @rule(side=st.sampled_from("ab"))
    def reset(self, side: str) -> None:
        self.smp[side].reset()

    @rule(side=st.sampled_from("ab"))
    def drop(self, side: str) -> None:
        if self.inbox[side]:
            self.inbox[side].popleft()

    @rule(side=st.sampled_from("ab"))
    def deliver(self, side: str) -> None:
        if not self.inbox[side]:
            return
        tlv = self.inbox[side].popleft()
        smp = self.smp[side]
        before = smp.state
        step = smp.receive(tlv)
        event(f"{step.outcome.name}")
        self.check_step(before, tlv, step, smp)
        self.inbox[self.peer(side)].extend(step.reply)

    @rule(answer=st.booleans())
    def converse(self, answer: bool) -> None:
        # Deliver everything in flight, answering requests if told to, so that
        # runs also get to their end.
        while any(self.inbox.values()):
            for side in "ab":
                self.deliver(side)
                if answer:
                    self.respond(side)

    @rule(side=st.sampled_from("ab"), question=QUESTIONS)
    def whole_run(self, side: str, question: str | None) -> None:
        self.start(side, question)
        self.converse(True)

    def check_step(self, before: SMPState, tlv: TLV, step: SMPStep, smp: SMP) -> None:
        kind = {
            2: SMPInput.MSG1,
            7: SMPInput.MSG1Q,
            3: SMPInput.MSG2,
            4: SMPInput.MSG3,
            5: SMPInput.MSG4,
            6: SMPInput.PEER_ABORT,
        }[tlv.type]
        if step.outcome in (SMPOutcome.CHEATED, SMPOutcome.ERROR):
            assert step.reply == (ABORT,)
            assert smp.state is SMPState.EXPECT1
            if step.outcome is SMPOutcome.ERROR:
                assert (before, kind) not in TRANSITIONS
            return
        assert smp.state is TRANSITIONS[(before, kind)]
        if step.outcome is SMPOutcome.SUCCEEDED:
            assert self.secret["a"] == self.secret["b"]
        if step.outcome is SMPOutcome.FAILED:
            assert self.secret["a"] != self.secret["b"]
        for out in step.reply:
            check_wire_form(out)

    @invariant()
    def roles_follow_state(self) -> None:
        for smp in self.smp.values():
            expected = {
                SMPState.EXPECT1: None,
                SMPState.AWAIT_ANSWER: False,
                SMPState.EXPECT2: True,
                SMPState.EXPECT3: False,
                SMPState.EXPECT4: True,
            }[smp.state]
            assert smp.initiator is expected
            assert smp.in_progress is (smp.state is not SMPState.EXPECT1)

    def teardown(self) -> None:
        # Whatever happened, a clean run still works after an abort exchange.
        alice, bob = self.smp["a"], self.smp["b"]
        bob.receive(alice.abort())
        alice.receive(bob.abort())
        (m1,) = alice.start(5)
        bob.receive(m1)
        r2 = alice.receive(bob.respond(5))
        r3 = bob.receive(r2.reply[0])
        assert r3.outcome is SMPOutcome.SUCCEEDED
        assert alice.receive(r3.reply[0]).outcome is SMPOutcome.SUCCEEDED


TwoParties.TestCase.settings = settings(max_examples=40, stateful_step_count=20, deadline=None)
test_two_parties = TwoParties.TestCase
