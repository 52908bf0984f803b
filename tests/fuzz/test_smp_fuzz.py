"""Fuzzing offrecord.smp: arbitrary SMP TLVs, in any state.

The contract under test (docs/smp.md): ``SMP.receive`` never raises for a TLV
of an SMP type; it returns an outcome allowed for that state and input, a
failure always lands in EXPECT1 with an abort to send, and from wherever it
lands a fresh SMP still succeeds.
"""

from __future__ import annotations

import copy
import functools
import hashlib

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from offrecord.crypto.dh import MODULUS, ORDER
from offrecord.smp import (
    SMP,
    SMP_TLV_TYPES,
    TRANSITIONS,
    SMPInput,
    SMPOutcome,
    SMPState,
    SMPStep,
)
from offrecord.wire.codec import encode_int, encode_mpi
from offrecord.wire.tlv import TLV, TLVType

ABORT = TLV(TLVType.SMP_ABORT)
INPUT_OF_TYPE = {
    2: SMPInput.MSG1,
    7: SMPInput.MSG1Q,
    3: SMPInput.MSG2,
    4: SMPInput.MSG3,
    5: SMPInput.MSG4,
    6: SMPInput.PEER_ABORT,
}
# What an accepted input may report.
SUCCESS_OUTCOMES = {
    SMPInput.MSG1: {SMPOutcome.REQUESTED},
    SMPInput.MSG1Q: {SMPOutcome.REQUESTED},
    SMPInput.MSG2: {SMPOutcome.IN_PROGRESS},
    SMPInput.MSG3: {SMPOutcome.SUCCEEDED, SMPOutcome.FAILED},
    SMPInput.MSG4: {SMPOutcome.SUCCEEDED, SMPOutcome.FAILED},
    SMPInput.PEER_ABORT: {SMPOutcome.ABORTED},
}


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


@functools.cache
def prepared() -> tuple[dict[SMPState, SMP], dict[int, bytes]]:
    """One side in each state, and the genuine payloads of one run."""
    alice, bob = SMP(DRBG(b"fuzz alice")), SMP(DRBG(b"fuzz bob"))
    snaps = {SMPState.EXPECT1: copy.deepcopy(alice)}
    (m1,) = alice.start(77, "fuzz?")
    snaps[SMPState.EXPECT2] = copy.deepcopy(alice)
    bob.receive(m1)
    snaps[SMPState.AWAIT_ANSWER] = copy.deepcopy(bob)
    m2 = bob.respond(77)
    snaps[SMPState.EXPECT3] = copy.deepcopy(bob)
    (m3,) = alice.receive(m2).reply
    snaps[SMPState.EXPECT4] = copy.deepcopy(alice)
    (m4,) = bob.receive(m3).reply
    payloads = {7: m1.value, 2: m1.value[m1.value.index(b"\x00") + 1 :]}
    payloads.update({3: m2.value, 4: m3.value, 5: m4.value})
    return snaps, payloads


INTERESTING = st.sampled_from(
    [0, 1, 2, 3, MODULUS - 2, MODULUS - 1, MODULUS, ORDER - 1, ORDER, ORDER + 1, 1 << 256]
)
VALUES = INTERESTING | st.integers(min_value=0, max_value=(1 << 1600) - 1)


@st.composite
def structured(draw: st.DrawFn) -> bytes:
    """A count and MPIs: shaped like an SMP message, with edge-case values."""
    values = draw(st.lists(VALUES, max_size=12))
    count = draw(st.sampled_from([len(values), len(values) + 1, max(len(values) - 1, 0)]))
    body = encode_int(count) + b"".join(encode_mpi(v) for v in values)
    prefix = draw(st.sampled_from([b"", b"q\x00", b"\x00", b"\xff\xfe\x00"]))
    return prefix + body + draw(st.sampled_from([b"", b"\x00", b"junk"]))


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A genuine payload with a few bytes flipped, cut or inserted."""
    _, payloads = prepared()
    data = bytearray(payloads[draw(st.sampled_from(sorted(payloads)))])
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        if not data:
            break
        where = draw(st.integers(min_value=0, max_value=len(data) - 1))
        how = draw(st.sampled_from(["flip", "cut", "insert", "truncate"]))
        if how == "flip":
            data[where] ^= draw(st.integers(min_value=1, max_value=255))
        elif how == "cut":
            del data[where]
        elif how == "insert":
            data[where:where] = draw(st.binary(min_size=1, max_size=4))
        else:
            del data[where:]
    return bytes(data)


@st.composite
def swapped(draw: st.DrawFn) -> bytes:
    """A genuine payload of one message type, to be delivered as another."""
    _, payloads = prepared()
    return payloads[draw(st.sampled_from(sorted(payloads)))]


PAYLOADS = st.binary(max_size=2500) | structured() | mutated() | swapped()
TLVS = st.builds(TLV, st.sampled_from(sorted(SMP_TLV_TYPES)), PAYLOADS)
STATES = st.sampled_from(list(SMPState))


def check(before: SMPState, tlv: TLV, step: SMPStep, smp: SMP) -> None:
    kind = INPUT_OF_TYPE[tlv.type]
    if step.outcome in (SMPOutcome.CHEATED, SMPOutcome.ERROR):
        assert step.reply == (ABORT,)
        assert smp.state is SMPState.EXPECT1
        assert step.reason
        if step.outcome is SMPOutcome.ERROR:
            assert (before, kind) not in TRANSITIONS or (kind is SMPInput.MSG1Q and not tlv.value)
        return
    assert step.outcome in SUCCESS_OUTCOMES[kind]
    assert smp.state is TRANSITIONS[(before, kind)]


def fresh_run_succeeds(smp: SMP) -> None:
    """From wherever ``smp`` is, a new SMP succeeds in both roles."""
    if smp.in_progress:
        smp.abort()
    for initiator_is_smp in (True, False):
        other = SMP(DRBG(b"fuzz partner"))
        a, b = (smp, other) if initiator_is_smp else (other, smp)
        (m1,) = a.start(123, "again?")
        assert b.receive(m1).outcome is SMPOutcome.REQUESTED
        r2 = a.receive(b.respond(123))
        r3 = b.receive(r2.reply[0])
        assert r3.outcome is SMPOutcome.SUCCEEDED
        assert a.receive(r3.reply[0]).outcome is SMPOutcome.SUCCEEDED


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(state=STATES, tlv=TLVS)
def test_any_tlv_in_any_state(state: SMPState, tlv: TLV) -> None:
    snaps, _ = prepared()
    smp = copy.deepcopy(snaps[state])
    step = smp.receive(tlv)
    event(f"{state.name} {INPUT_OF_TYPE[tlv.type].name} {step.outcome.name}")
    check(state, tlv, step, smp)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(state=STATES, tlvs=st.lists(TLVS, min_size=1, max_size=4))
def test_fresh_run_after_fuzzing(state: SMPState, tlvs: list[TLV]) -> None:
    snaps, _ = prepared()
    smp = copy.deepcopy(snaps[state])
    for tlv in tlvs:
        before = smp.state
        check(before, tlv, smp.receive(tlv), smp)
    fresh_run_succeeds(smp)
