"""The Socialist Millionaires' Protocol (spec "Socialist Millionaires' Protocol (SMP)").

This module is the SMP of one conversation: the four messages, their
zero-knowledge proofs, and the SMP state machine as a table
(:data:`TRANSITIONS`).  It is pure: no I/O, no clock, randomness injected.
The session layer feeds it the SMP TLVs (types 2-7) found in verified data
messages and sends the TLVs it returns, each in a data message of its own.

Roles.  The side that calls :meth:`SMP.start` is the *initiator* (Alice in the
spec); the side that receives message 1 and calls :meth:`SMP.respond` is the
*responder* (Bob).  Both sides build their secret with :func:`smp_secret`,
always with the **initiator's** fingerprint first::

    smp.start(smp_secret(our_fp, their_fp, ssid, answer))      # we ask
    smp.respond(smp_secret(their_fp, our_fp, ssid, answer))    # we answer

Outcomes mirror libotr's ``OtrlSMPEvent`` (``message.c``, the SMP part of
``otrl_message_receiving``) together with what libotr's reference client does
with them: on ``CHEATED`` and ``ERROR`` it calls ``otrl_message_abort_smp``, so
here those outcomes reset to EXPECT1 and return an abort TLV to send.

Cost.  A complete run costs each side exactly :data:`EXPONENTIATIONS_PER_SIDE`
modular exponentiations (the spec's minimum: every value the spec computes
once, nothing twice); :attr:`SMP.exponentiations` counts them.  Exponentiations
with a secret exponent use ``gmpy2.powmod_sec`` (constant-time in the
exponent); verifications, whose exponents are public, use ``gmpy2.powmod``.
The products ``g^a * h^b`` in the checks are computed as two exponentiations
and a multiplication: gmpy2 offers no simultaneous multi-exponentiation, and
one written in Python (a loop of ~1536 squarings) is slower than two calls
into GMP.  Six of the 13 public exponentiations per side have a 256-bit
exponent (a hash), so they cost about a sixth of a full one.

Secrets (the secret, every random exponent, and the intermediate group values
they produce) never appear in a ``repr``, a log or an exception message.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

import gmpy2

from offrecord.crypto.dh import MODULUS, ORDER, check_element, check_exponent
from offrecord.crypto.dh import G as _GENERATOR
from offrecord.crypto.primitives import RandomSource, sha256
from offrecord.errors import LocalProtocolError, RemoteProtocolError
from offrecord.wire.codec import Reader, encode_int, encode_mpi
from offrecord.wire.tlv import TLV, TLVType

__all__ = [
    "EXPONENTIATIONS_PER_SIDE",
    "EXPONENT_BYTES",
    "SMP",
    "SMP_TLV_TYPES",
    "TRANSITIONS",
    "SMPInput",
    "SMPOutcome",
    "SMPState",
    "SMPStep",
    "smp_secret",
]

SMP_SECRET_VERSION: Final = 1
"""The version byte that starts the hashed secret (spec "Secret information")."""

EXPONENT_BYTES: Final = 192
"""Random exponents are 1536-bit numbers (libotr ``sm.c``: ``SM_MOD_LEN_BYTES``)."""

SECRET_BITS: Final = 256
"""The compared secret is a SHA-256 digest read as a big-endian integer."""

EXPONENTIATIONS_PER_SIDE: Final = 29
"""Modular exponentiations one side performs in a complete run, either role.

Initiator: 4 (message 1) + 20 (message 2 in, 3 out) + 5 (message 4 in).
Responder: 4 (message 1 in) + 12 (message 2 out) + 13 (message 3 in, 4 out).
Of the 29, 16 have secret exponents and 13 are verifications.
"""

_P: Final = gmpy2.mpz(MODULUS)
_G: Final = gmpy2.mpz(_GENERATOR)
_HASH_BITS: Final = 256
_MSG1_LEN: Final = 6
_MSG2_LEN: Final = 11
_MSG3_LEN: Final = 8
_MSG4_LEN: Final = 3


def smp_secret(
    initiator_fingerprint: bytes, responder_fingerprint: bytes, ssid: bytes, secret: bytes
) -> int:
    """The integer compared by SMP (spec "Secret information").

    SHA-256 of the version byte 0x01, the fingerprint (20 bytes) of the side
    that *started* this SMP run, the other side's fingerprint, the 8-byte secure
    session id and the user's secret, read as a big-endian integer.  The
    initiator passes its own fingerprint first, the responder the peer's.
    """
    if len(initiator_fingerprint) != 20 or len(responder_fingerprint) != 20:
        raise LocalProtocolError("fingerprints are 20 bytes")
    if len(ssid) != 8:
        raise LocalProtocolError("the secure session id is 8 bytes")
    digest = sha256(
        bytes((SMP_SECRET_VERSION,)) + initiator_fingerprint + responder_fingerprint + ssid + secret
    )
    return int.from_bytes(digest, "big")


class SMPState(enum.Enum):
    """Where this side is.  ``AWAIT_ANSWER`` refines the spec's EXPECT1.

    libotr stays in ``OTRL_SMP_EXPECT1`` after verifying message 1 until the
    user answers; the extra state makes "a request is waiting for the user's
    secret" explicit.  It accepts exactly what libotr accepts there: a new
    message 1 (which replaces the pending request), an abort, or the answer.
    """

    EXPECT1 = "expect1"
    AWAIT_ANSWER = "await_answer"
    EXPECT2 = "expect2"
    EXPECT3 = "expect3"
    EXPECT4 = "expect4"


class SMPInput(enum.Enum):
    """What can happen to the state machine: a received TLV or a user action."""

    MSG1 = "msg1"  # TLV type 2
    MSG1Q = "msg1q"  # TLV type 7
    MSG2 = "msg2"  # TLV type 3
    MSG3 = "msg3"  # TLV type 4
    MSG4 = "msg4"  # TLV type 5
    PEER_ABORT = "peer_abort"  # TLV type 6
    START = "start"  # SMP.start
    RESPOND = "respond"  # SMP.respond
    ABORT = "abort"  # SMP.abort


_S = SMPState
_I = SMPInput

TRANSITIONS: Final[Mapping[tuple[SMPState, SMPInput], SMPState]] = MappingProxyType(
    {
        # Received messages, in order.
        (_S.EXPECT1, _I.MSG1): _S.AWAIT_ANSWER,
        (_S.EXPECT1, _I.MSG1Q): _S.AWAIT_ANSWER,
        (_S.AWAIT_ANSWER, _I.MSG1): _S.AWAIT_ANSWER,
        (_S.AWAIT_ANSWER, _I.MSG1Q): _S.AWAIT_ANSWER,
        (_S.EXPECT2, _I.MSG2): _S.EXPECT4,
        (_S.EXPECT3, _I.MSG3): _S.EXPECT1,
        (_S.EXPECT4, _I.MSG4): _S.EXPECT1,
        # A received abort is accepted everywhere.
        (_S.EXPECT1, _I.PEER_ABORT): _S.EXPECT1,
        (_S.AWAIT_ANSWER, _I.PEER_ABORT): _S.EXPECT1,
        (_S.EXPECT2, _I.PEER_ABORT): _S.EXPECT1,
        (_S.EXPECT3, _I.PEER_ABORT): _S.EXPECT1,
        (_S.EXPECT4, _I.PEER_ABORT): _S.EXPECT1,
        # The user may start at any time (an abort goes first if a run is underway).
        (_S.EXPECT1, _I.START): _S.EXPECT2,
        (_S.AWAIT_ANSWER, _I.START): _S.EXPECT2,
        (_S.EXPECT2, _I.START): _S.EXPECT2,
        (_S.EXPECT3, _I.START): _S.EXPECT2,
        (_S.EXPECT4, _I.START): _S.EXPECT2,
        # The user answers only a pending request.
        (_S.AWAIT_ANSWER, _I.RESPOND): _S.EXPECT3,
        # The user may abort at any time.
        (_S.EXPECT1, _I.ABORT): _S.EXPECT1,
        (_S.AWAIT_ANSWER, _I.ABORT): _S.EXPECT1,
        (_S.EXPECT2, _I.ABORT): _S.EXPECT1,
        (_S.EXPECT3, _I.ABORT): _S.EXPECT1,
        (_S.EXPECT4, _I.ABORT): _S.EXPECT1,
    }
)
"""The SMP state machine.  A received TLV whose (state, input) pair is absent is
out of order: outcome ``ERROR``, state EXPECT1, an abort TLV to send.  A received
TLV that is in the table but fails a check: outcome ``CHEATED``, same reset.
``respond`` outside the table raises :class:`LocalProtocolError`."""

_TLV_INPUTS: Final[Mapping[int, SMPInput]] = MappingProxyType(
    {
        TLVType.SMP1: _I.MSG1,
        TLVType.SMP1Q: _I.MSG1Q,
        TLVType.SMP2: _I.MSG2,
        TLVType.SMP3: _I.MSG3,
        TLVType.SMP4: _I.MSG4,
        TLVType.SMP_ABORT: _I.PEER_ABORT,
    }
)

SMP_TLV_TYPES: Final[frozenset[int]] = frozenset(_TLV_INPUTS)
"""The TLV types :meth:`SMP.receive` accepts (2-7)."""


class SMPOutcome(enum.Enum):
    """What a received TLV did (libotr's ``OtrlSMPEvent`` in brackets)."""

    REQUESTED = "requested"
    """The peer started SMP; ask the user and call :meth:`SMP.respond`
    [``ASK_FOR_SECRET``, or ``ASK_FOR_ANSWER`` when there is a question]."""
    IN_PROGRESS = "in_progress"
    """Message 2 verified, message 3 is in the reply [``IN_PROGRESS``]."""
    SUCCEEDED = "succeeded"
    """The run ended and the secrets are equal [``SUCCESS``]."""
    FAILED = "failed"
    """The run ended and the secrets differ [``FAILURE``]."""
    ABORTED = "aborted"
    """The peer sent an abort; back to EXPECT1, nothing to send [``ABORT``]."""
    CHEATED = "cheated"
    """An expected message failed a check (malformed, out of range, a proof
    that does not verify); back to EXPECT1, send the abort [``CHEATED``]."""
    ERROR = "error"
    """An unexpected message (out of order); back to EXPECT1, send the abort
    [``ERROR``]."""


@dataclass(frozen=True, slots=True)
class SMPStep:
    """The result of :meth:`SMP.receive`.

    ``reply``: TLVs to send, each in its own encrypted data message, in order.
    ``question``: with ``REQUESTED``, the peer's question (``None`` if it asked
    none); bytes that are not UTF-8 are shown as U+FFFD.
    ``trust``: what to do with the peer's active fingerprint, as libotr's
    ``set_smp_trust`` does: ``True`` mark it SMP-verified, ``False`` clear its
    trust, ``None`` leave it alone.  It is set when an expected message 3 or 4
    arrives (success, failure or cheating), except that the responder to a
    question never changes trust (the question was the other side's test).
    ``reason``: with ``CHEATED`` or ``ERROR``, what was wrong (no secrets).
    """

    outcome: SMPOutcome
    reply: tuple[TLV, ...] = ()
    question: str | None = field(default=None, repr=False)
    trust: bool | None = None
    reason: str | None = None

    @property
    def needs_secret(self) -> bool:
        """The user must now supply the secret: call :meth:`SMP.respond`."""
        return self.outcome is SMPOutcome.REQUESTED

    @property
    def finished(self) -> bool:
        """The run is over on this side (the state is EXPECT1)."""
        return self.outcome not in (SMPOutcome.REQUESTED, SMPOutcome.IN_PROGRESS)


# Per-state data.  Every field is kept out of repr: the exponents and the
# secret obviously, the derived group values because they are products of
# secrets that no eavesdropper sees, the question because it is private text.


@dataclass(frozen=True, slots=True)
class _Idle:
    pass


@dataclass(frozen=True, slots=True)
class _AwaitAnswer:
    g2a: int = field(repr=False)
    g3a: int = field(repr=False)
    question: str | None = field(repr=False)


@dataclass(frozen=True, slots=True)
class _Expect2:
    secret: int = field(repr=False)
    a2: int = field(repr=False)
    a3: int = field(repr=False)


@dataclass(frozen=True, slots=True)
class _Expect3:
    g3a: int = field(repr=False)
    g2: int = field(repr=False)
    g3: int = field(repr=False)
    b3: int = field(repr=False)
    pb: int = field(repr=False)
    qb: int = field(repr=False)
    received_question: bool


@dataclass(frozen=True, slots=True)
class _Expect4:
    g3b: int = field(repr=False)
    pab: int = field(repr=False)
    qab: int = field(repr=False)
    a3: int = field(repr=False)


_Context = _Idle | _AwaitAnswer | _Expect2 | _Expect3 | _Expect4

_CONTEXT_OF_STATE: Final[Mapping[SMPState, type[object]]] = MappingProxyType(
    {
        _S.EXPECT1: _Idle,
        _S.AWAIT_ANSWER: _AwaitAnswer,
        _S.EXPECT2: _Expect2,
        _S.EXPECT3: _Expect3,
        _S.EXPECT4: _Expect4,
    }
)

_IDLE: Final = _Idle()


def _hash(version: int, first: int, second: int | None = None) -> int:
    """The SMP hash (spec "SMP Hash function"): SHA-256 of a version byte and one
    or two MPIs, read as an integer."""
    data = bytes((version,)) + encode_mpi(first)
    if second is not None:
        data += encode_mpi(second)
    return int.from_bytes(sha256(data), "big")


def _encode(kind: TLVType, values: tuple[int, ...], prefix: bytes = b"") -> TLV:
    """An SMP TLV: optional question prefix, INT count, then minimal MPIs."""
    body = encode_int(len(values)) + b"".join(encode_mpi(v) for v in values)
    return TLV(int(kind), prefix + body)


def _decode(payload: bytes, count: int, what: str) -> tuple[int, ...]:
    """Exactly ``count`` MPIs after an INT that says ``count``; nothing after."""
    reader = Reader(payload, what)
    found = reader.int32("MPI count")
    if found != count:
        raise RemoteProtocolError(f"{what}: {found} MPIs, expected {count}")
    values = tuple(reader.mpi(f"MPI {i + 1}") for i in range(count))
    reader.end()
    return values


def _check_hash_value(value: int, what: str) -> None:
    # A hash is 256 bits: anything longer can never verify.  Rejecting it up
    # front keeps a peer from making us exponentiate by an 8000-bit number.
    if value.bit_length() > _HASH_BITS:
        raise RemoteProtocolError(f"{what} does not verify")


def _check_secret(secret: int) -> int:
    if isinstance(secret, bool) or not isinstance(secret, int):
        raise LocalProtocolError("the SMP secret must be an int (see smp_secret)")
    if not 0 <= secret < 1 << SECRET_BITS:
        raise LocalProtocolError("the SMP secret must be a 256-bit value (see smp_secret)")
    return secret


def _abort_tlv() -> TLV:
    return TLV(int(TLVType.SMP_ABORT))


class SMP:
    """The SMP state of one conversation (one peer, one instance).

    Call :meth:`reset` whenever the conversation leaves MSGSTATE_ENCRYPTED (the
    spec: SMP "must abandon its state").  Not thread-safe.
    """

    __slots__ = ("_ctx", "_exps", "_random", "_state")

    def __init__(self, random_bytes: RandomSource) -> None:
        self._random = random_bytes
        self._state = SMPState.EXPECT1
        self._ctx: _Context = _IDLE
        self._exps = 0

    def __repr__(self) -> str:
        return f"SMP(state={self._state.name})"

    # -- what the caller may look at ------------------------------------------

    @property
    def state(self) -> SMPState:
        return self._state

    @property
    def in_progress(self) -> bool:
        """A run is underway (including a request waiting for our answer)."""
        return self._state is not SMPState.EXPECT1

    @property
    def initiator(self) -> bool | None:
        """``True`` if we started the current run, ``False`` if the peer did,
        ``None`` when no run is underway."""
        if self._state in (SMPState.EXPECT2, SMPState.EXPECT4):
            return True
        if self._state in (SMPState.AWAIT_ANSWER, SMPState.EXPECT3):
            return False
        return None

    @property
    def question(self) -> str | None:
        """The question of the request waiting for our answer, if it had one."""
        ctx = self._ctx
        return ctx.question if isinstance(ctx, _AwaitAnswer) else None

    @property
    def received_question(self) -> bool:
        """The current run was started by the peer with a question (type 7)."""
        ctx = self._ctx
        if isinstance(ctx, _AwaitAnswer):
            return ctx.question is not None
        if isinstance(ctx, _Expect3):
            return ctx.received_question
        return False

    @property
    def exponentiations(self) -> int:
        """Modular exponentiations performed so far (for benchmarks)."""
        return self._exps

    # -- user actions -----------------------------------------------------------

    def start(self, secret: int, question: str | None = None) -> tuple[TLV, ...]:
        """Start a run as the initiator.

        ``secret`` is ``smp_secret(our_fp, their_fp, ssid, answer)``.  Returns
        message 1 (type 7 with the question, type 2 without); if a run was
        underway, an abort comes first and the two must go in separate data
        messages, in order (libotr handles the TLVs of one message in a fixed
        order with the abort last, which would cancel the new run).
        """
        _check_secret(secret)
        prefix = b""
        if question is not None:
            try:
                raw = question.encode("utf-8")
            except UnicodeEncodeError:
                raise LocalProtocolError("the SMP question is not valid Unicode") from None
            if b"\x00" in raw:
                raise LocalProtocolError("an SMP question cannot contain NUL")
            prefix = raw + b"\x00"
            # message 1 is at most 4 + 6 * (4 + 192) bytes
            if len(prefix) + 4 + _MSG1_LEN * (4 + EXPONENT_BYTES) > 0xFFFF:
                raise LocalProtocolError("the SMP question is too long")
        next_state = TRANSITIONS[(self._state, SMPInput.START)]
        a2 = self._random_exponent()
        a3 = self._random_exponent()
        g2a = self._pow_secret(_G, a2)
        c2, d2 = self._prove_log(1, a2)
        g3a = self._pow_secret(_G, a3)
        c3, d3 = self._prove_log(2, a3)
        kind = TLVType.SMP1 if question is None else TLVType.SMP1Q
        msg1 = _encode(kind, (g2a, c2, d2, g3a, c3, d3), prefix)
        out = (msg1,) if self._state is SMPState.EXPECT1 else (_abort_tlv(), msg1)
        self._commit(next_state, _Expect2(secret=secret, a2=a2, a3=a3))
        return out

    def respond(self, secret: int) -> TLV:
        """Answer the pending request (state ``AWAIT_ANSWER``) with message 2.

        ``secret`` is ``smp_secret(their_fp, our_fp, ssid, answer)``: the peer
        started this run, so its fingerprint comes first.  Raises
        :class:`LocalProtocolError` when no request is pending.
        """
        _check_secret(secret)
        ctx = self._ctx
        next_state = TRANSITIONS.get((self._state, SMPInput.RESPOND))
        if next_state is None or not isinstance(ctx, _AwaitAnswer):
            raise LocalProtocolError("no SMP request is waiting for an answer")
        b2 = self._random_exponent()
        b3 = self._random_exponent()
        g2b = self._pow_secret(_G, b2)
        c2, d2 = self._prove_log(3, b2)
        g3b = self._pow_secret(_G, b3)
        c3, d3 = self._prove_log(4, b3)
        g2 = self._pow_secret(ctx.g2a, b2)
        g3 = self._pow_secret(ctx.g3a, b3)
        r4 = self._random_exponent()
        pb = self._pow_secret(g3, r4)
        qb = self._pow_secret(_G, r4) * self._pow_secret(g2, secret) % MODULUS
        cp, d5, d6 = self._prove_coords(5, g2, g3, r4, secret)
        msg2 = _encode(TLVType.SMP2, (g2b, c2, d2, g3b, c3, d3, pb, qb, cp, d5, d6))
        self._commit(
            next_state,
            _Expect3(
                g3a=ctx.g3a,
                g2=g2,
                g3=g3,
                b3=b3,
                pb=pb,
                qb=qb,
                received_question=ctx.question is not None,
            ),
        )
        return msg2

    def abort(self) -> TLV:
        """Abort whatever is underway; send the returned abort TLV (always)."""
        self._commit(TRANSITIONS[(self._state, SMPInput.ABORT)], _IDLE)
        return _abort_tlv()

    def reset(self) -> None:
        """Forget any run without telling the peer (the session left
        MSGSTATE_ENCRYPTED, or a new AKE replaced the keys)."""
        self._commit(SMPState.EXPECT1, _IDLE)

    # -- received TLVs ----------------------------------------------------------

    def receive(self, tlv: TLV) -> SMPStep:
        """Handle one received SMP TLV (a type in :data:`SMP_TLV_TYPES`).

        Never raises for anything the peer can send: every problem becomes an
        outcome.  Raises :class:`LocalProtocolError` only for a TLV type that
        is not SMP's.  The state changes only after every check passed; a
        failure goes to EXPECT1 with an abort TLV in ``reply``.
        """
        kind = _TLV_INPUTS.get(tlv.type)
        if kind is None:
            raise LocalProtocolError(f"TLV type {tlv.type} is not an SMP TLV")
        state, ctx = self._state, self._ctx
        next_state = TRANSITIONS.get((state, kind))
        # libotr only looks at a type 7 TLV that has at least one byte.
        if next_state is None or (kind is SMPInput.MSG1Q and not tlv.value):
            self._commit(SMPState.EXPECT1, _IDLE)
            return SMPStep(
                SMPOutcome.ERROR,
                reply=(_abort_tlv(),),
                reason=f"unexpected SMP {kind.value} in state {state.name}",
            )
        try:
            if kind is SMPInput.PEER_ABORT:
                new_ctx: _Context = _IDLE
                step = SMPStep(SMPOutcome.ABORTED)
            elif kind is SMPInput.MSG1:
                new_ctx, step = self._on_msg1(tlv.value, None)
            elif kind is SMPInput.MSG1Q:
                new_ctx, step = self._on_msg1q(tlv.value)
            elif kind is SMPInput.MSG2 and isinstance(ctx, _Expect2):
                new_ctx, step = self._on_msg2(tlv.value, ctx)
            elif kind is SMPInput.MSG3 and isinstance(ctx, _Expect3):
                new_ctx, step = self._on_msg3(tlv.value, ctx)
            elif kind is SMPInput.MSG4 and isinstance(ctx, _Expect4):
                new_ctx, step = self._on_msg4(tlv.value, ctx)
            else:  # pragma: no cover - the table and the contexts agree
                raise AssertionError("SMP state and context disagree")
        except RemoteProtocolError as exc:
            self._commit(SMPState.EXPECT1, _IDLE)
            trust: bool | None = None
            if kind is SMPInput.MSG4 or (
                kind is SMPInput.MSG3 and isinstance(ctx, _Expect3) and not ctx.received_question
            ):
                trust = False
            return SMPStep(SMPOutcome.CHEATED, reply=(_abort_tlv(),), trust=trust, reason=str(exc))
        self._commit(next_state, new_ctx)
        return step

    def _on_msg1q(self, payload: bytes) -> tuple[_Context, SMPStep]:
        nul = payload.find(b"\x00")
        if nul < 0:
            raise RemoteProtocolError("SMP message 1Q: the question has no NUL terminator")
        question = payload[:nul].decode("utf-8", errors="replace")
        return self._on_msg1(payload[nul + 1 :], question)

    def _on_msg1(self, payload: bytes, question: str | None) -> tuple[_Context, SMPStep]:
        what = "SMP message 1"
        g2a, c2, d2, g3a, c3, d3 = _decode(payload, _MSG1_LEN, what)
        check_element(g2a, f"{what}: g2a")
        check_exponent(d2, f"{what}: D2")
        check_element(g3a, f"{what}: g3a")
        check_exponent(d3, f"{what}: D3")
        self._check_log(1, c2, d2, g2a, f"{what}: proof for g2a")
        self._check_log(2, c3, d3, g3a, f"{what}: proof for g3a")
        return (
            _AwaitAnswer(g2a=g2a, g3a=g3a, question=question),
            SMPStep(SMPOutcome.REQUESTED, question=question),
        )

    def _on_msg2(self, payload: bytes, ctx: _Expect2) -> tuple[_Context, SMPStep]:
        what = "SMP message 2"
        g2b, c2, d2, g3b, c3, d3, pb, qb, cp, d5, d6 = _decode(payload, _MSG2_LEN, what)
        check_element(g2b, f"{what}: g2b")
        check_element(g3b, f"{what}: g3b")
        check_element(pb, f"{what}: Pb")
        check_element(qb, f"{what}: Qb")
        check_exponent(d2, f"{what}: D2")
        check_exponent(d3, f"{what}: D3")
        check_exponent(d5, f"{what}: D5")
        check_exponent(d6, f"{what}: D6")
        self._check_log(3, c2, d2, g2b, f"{what}: proof for g2b")
        self._check_log(4, c3, d3, g3b, f"{what}: proof for g3b")
        g2 = self._pow_secret(g2b, ctx.a2)
        g3 = self._pow_secret(g3b, ctx.a3)
        self._check_coords(5, cp, d5, d6, pb, qb, g2, g3, f"{what}: proof for Pb, Qb")
        # Every check passed: build message 3.
        r4 = self._random_exponent()
        pa = self._pow_secret(g3, r4)
        qa = self._pow_secret(_G, r4) * self._pow_secret(g2, ctx.secret) % MODULUS
        cp3, d5_3, d6_3 = self._prove_coords(6, g2, g3, r4, ctx.secret)
        pab = pa * int(gmpy2.invert(pb, _P)) % MODULUS
        qab = qa * int(gmpy2.invert(qb, _P)) % MODULUS
        ra = self._pow_secret(qab, ctx.a3)
        cr, d7 = self._prove_equal_logs(7, qab, ctx.a3)
        msg3 = _encode(TLVType.SMP3, (pa, qa, cp3, d5_3, d6_3, ra, cr, d7))
        return (
            _Expect4(g3b=g3b, pab=pab, qab=qab, a3=ctx.a3),
            SMPStep(SMPOutcome.IN_PROGRESS, reply=(msg3,)),
        )

    def _on_msg3(self, payload: bytes, ctx: _Expect3) -> tuple[_Context, SMPStep]:
        what = "SMP message 3"
        pa, qa, cp, d5, d6, ra, cr, d7 = _decode(payload, _MSG3_LEN, what)
        check_element(pa, f"{what}: Pa")
        check_element(qa, f"{what}: Qa")
        check_element(ra, f"{what}: Ra")
        check_exponent(d5, f"{what}: D5")
        check_exponent(d6, f"{what}: D6")
        check_exponent(d7, f"{what}: D7")
        self._check_coords(6, cp, d5, d6, pa, qa, ctx.g2, ctx.g3, f"{what}: proof for Pa, Qa")
        pab = pa * int(gmpy2.invert(ctx.pb, _P)) % MODULUS
        qab = qa * int(gmpy2.invert(ctx.qb, _P)) % MODULUS
        self._check_equal_logs(7, cr, d7, ra, ctx.g3a, qab, f"{what}: proof for Ra")
        # Every check passed: build message 4 and compare.
        rb = self._pow_secret(qab, ctx.b3)
        cr4, d7_4 = self._prove_equal_logs(8, qab, ctx.b3)
        msg4 = _encode(TLVType.SMP4, (rb, cr4, d7_4))
        rab = self._pow_secret(ra, ctx.b3)
        success = rab == pab
        outcome = SMPOutcome.SUCCEEDED if success else SMPOutcome.FAILED
        trust = None if ctx.received_question else success
        return _IDLE, SMPStep(outcome, reply=(msg4,), trust=trust)

    def _on_msg4(self, payload: bytes, ctx: _Expect4) -> tuple[_Context, SMPStep]:
        what = "SMP message 4"
        rb, cr, d7 = _decode(payload, _MSG4_LEN, what)
        check_element(rb, f"{what}: Rb")
        check_exponent(d7, f"{what}: D7")
        self._check_equal_logs(8, cr, d7, rb, ctx.g3b, ctx.qab, f"{what}: proof for Rb")
        rab = self._pow_secret(rb, ctx.a3)
        success = rab == ctx.pab
        outcome = SMPOutcome.SUCCEEDED if success else SMPOutcome.FAILED
        return _IDLE, SMPStep(outcome, trust=success)

    # -- the only place state changes ---------------------------------------

    def _commit(self, state: SMPState, ctx: _Context) -> None:
        if type(ctx) is not _CONTEXT_OF_STATE[state]:  # pragma: no cover - invariant
            raise AssertionError("SMP state and context disagree")
        self._state = state
        self._ctx = ctx

    # -- arithmetic ---------------------------------------------------------------

    def _random_exponent(self) -> int:
        raw = self._random(EXPONENT_BYTES)
        if len(raw) != EXPONENT_BYTES:
            raise LocalProtocolError("the random source returned the wrong number of bytes")
        return int.from_bytes(raw, "big")

    def _pow(self, base: int, exponent: int) -> int:
        """base^exponent mod p for a public exponent."""
        self._exps += 1
        return int(gmpy2.powmod(base, exponent, _P))

    def _pow_secret(self, base: int, exponent: int) -> int:
        """base^exponent mod p for a secret exponent, in constant time."""
        self._exps += 1
        if exponent == 0:  # powmod_sec needs a positive exponent
            return 1
        return int(gmpy2.powmod_sec(base, exponent, _P))

    def _prove_log(self, version: int, exponent: int) -> tuple[int, int]:
        """c = H(version, g^r), D = r - exponent*c mod q."""
        r = self._random_exponent()
        c = _hash(version, self._pow_secret(_G, r))
        return c, (r - exponent * c) % ORDER

    def _check_log(self, version: int, c: int, d: int, element: int, what: str) -> None:
        """c == H(version, g^D element^c)."""
        _check_hash_value(c, what)
        value = self._pow(_G, d) * self._pow(element, c) % MODULUS
        if _hash(version, value) != c:
            raise RemoteProtocolError(f"{what} does not verify")

    def _prove_coords(
        self, version: int, g2: int, g3: int, r: int, secret: int
    ) -> tuple[int, int, int]:
        """c = H(version, g3^r5, g^r5 g2^r6), D5 = r5 - r*c, D6 = r6 - secret*c (mod q)."""
        r5 = self._random_exponent()
        r6 = self._random_exponent()
        first = self._pow_secret(g3, r5)
        second = self._pow_secret(_G, r5) * self._pow_secret(g2, r6) % MODULUS
        c = _hash(version, first, second)
        return c, (r5 - r * c) % ORDER, (r6 - secret * c) % ORDER

    def _check_coords(
        self,
        version: int,
        c: int,
        d5: int,
        d6: int,
        p_value: int,
        q_value: int,
        g2: int,
        g3: int,
        what: str,
    ) -> None:
        """c == H(version, g3^D5 P^c, g^D5 g2^D6 Q^c)."""
        _check_hash_value(c, what)
        first = self._pow(g3, d5) * self._pow(p_value, c) % MODULUS
        second = self._pow(_G, d5) * self._pow(g2, d6) % MODULUS * self._pow(q_value, c) % MODULUS
        if _hash(version, first, second) != c:
            raise RemoteProtocolError(f"{what} does not verify")

    def _prove_equal_logs(self, version: int, qab: int, exponent: int) -> tuple[int, int]:
        """c = H(version, g^r7, qab^r7), D7 = r7 - exponent*c mod q."""
        r7 = self._random_exponent()
        c = _hash(version, self._pow_secret(_G, r7), self._pow_secret(qab, r7))
        return c, (r7 - exponent * c) % ORDER

    def _check_equal_logs(
        self, version: int, c: int, d: int, r_value: int, g3o: int, qab: int, what: str
    ) -> None:
        """c == H(version, g^D g3o^c, qab^D R^c)."""
        _check_hash_value(c, what)
        first = self._pow(_G, d) * self._pow(g3o, c) % MODULUS
        second = self._pow(qab, d) * self._pow(r_value, c) % MODULUS
        if _hash(version, first, second) != c:
            raise RemoteProtocolError(f"{what} does not verify")
