"""Regression tests for bugs found in otr4j (the Java OTR library used by
Jitsi and others): off-by-one range checks on SMP values, crashes on
truncated OTR prefixes, and exceptions escaping its base64 decoder."""

from __future__ import annotations

import binascii
import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from offrecord import events as ev
from offrecord.crypto import dh
from offrecord.errors import RemoteProtocolError
from offrecord.session import MessageState
from offrecord.smp import SMP, SMPOutcome
from offrecord.wire.codec import encode_byte, encode_int, encode_mpi, encode_short
from offrecord.wire.envelope import classify
from offrecord.wire.messages import MessageType, decode_message
from offrecord.wire.tlv import TLV, TLVType
from tests.regression.pair import ALICE_TAG, BOB_TAG, Pair

P, Q = dh.MODULUS, dh.ORDER

# --- SMP range checks: group elements in [2, p-2], exponents in [1, q-1] ---------------

_ELEMENTS = {"0": 0, "1": 1, "2": 2, "p-2": P - 2, "p-1": P - 1, "p": P, "p+1": P + 1}
_ELEMENT_OK = {"2", "p-2"}
_EXPONENTS = {"0": 0, "1": 1, "q-1": Q - 1, "q": Q, "q+1": Q + 1, "p-1": P - 1}
_EXPONENT_OK = {"1", "q-1"}
_VALID_ELEMENT = 4
_VALID_EXPONENT = 5
_C = 3  # a hash value: in range, wrong


def _msg1(g2a: int, d2: int, g3a: int = _VALID_ELEMENT, d3: int = _VALID_EXPONENT) -> TLV:
    values = (g2a, _C, d2, g3a, _C, d3)
    return TLV(TLVType.SMP1, encode_int(6) + b"".join(encode_mpi(v) for v in values))


def _reason(tlv: TLV) -> str:
    step = SMP(lambda n: bytes(n)).receive(tlv)
    assert step.outcome is SMPOutcome.CHEATED
    assert step.reason is not None
    assert step.reply == (TLV(TLVType.SMP_ABORT),)
    return step.reason


@pytest.mark.parametrize("name", list(_ELEMENTS))
def test_otr4j_smp_group_element_bounds(name: str) -> None:
    """otr4j's ``SM.checkGroupElem`` accepted only the open interval (2, p-2),
    refusing 2 and p-2, which libotr's ``check_group_elem`` (sm.c) accepts
    (later fixed in otr4j together with boundary tests in SMTest).  offrecord
    takes exactly [2, p-2], as libotr: an accepted value gets as far as the
    proof check (which these forged proofs then fail), a refused one does
    not."""
    value = _ELEMENTS[name]
    for where, tlv in (("g2a", _msg1(value, _VALID_EXPONENT)),
                       ("g3a", _msg1(_VALID_ELEMENT, _VALID_EXPONENT, g3a=value))):  # fmt: skip
        reason = _reason(tlv)
        if name in _ELEMENT_OK:
            assert reason.endswith("does not verify"), (where, reason)
        else:
            assert reason == f"SMP message 1: {where} is out of range"
    if name in _ELEMENT_OK:
        assert dh.check_element(value) == value
    else:
        with pytest.raises(RemoteProtocolError):
            dh.check_element(value)


@pytest.mark.parametrize("name", list(_EXPONENTS))
def test_otr4j_smp_exponent_bounds(name: str) -> None:
    """otr4j's ``SM.checkExpon`` accepted (1, q]: it refused 1 and accepted
    q, where libotr's ``check_expon`` takes [1, q-1].  offrecord takes
    exactly [1, q-1]."""
    value = _EXPONENTS[name]
    for where, tlv in (("D2", _msg1(_VALID_ELEMENT, value)),
                       ("D3", _msg1(_VALID_ELEMENT, _VALID_EXPONENT, d3=value))):  # fmt: skip
        reason = _reason(tlv)
        if name in _EXPONENT_OK:
            assert reason.endswith("does not verify"), (where, reason)
        else:
            assert reason == f"SMP message 1: {where} is out of range"


@pytest.mark.parametrize("name", list(_ELEMENTS))
def test_otr4j_dh_public_value_bounds(name: str) -> None:
    """The same bounds on the AKE's g^y and a data message's next key: a
    D-H Key message with an out-of-range g^y is discarded before any
    exponentiation."""
    value = _ELEMENTS[name]
    raw = (encode_short(3) + encode_byte(MessageType.DH_KEY) + encode_int(ALICE_TAG)
           + encode_int(BOB_TAG) + encode_mpi(value))  # fmt: skip
    if name in _ELEMENT_OK:
        assert decode_message(raw).gy == value  # type: ignore[union-attr]
    else:
        with pytest.raises(RemoteProtocolError, match="out of range"):
            decode_message(raw)


@pytest.mark.parametrize("name", sorted(set(_ELEMENTS) - _ELEMENT_OK))
def test_otr4j_out_of_range_smp_value_in_a_conversation(name: str) -> None:
    """End to end: Alice sends message 1 with g2a out of range; Bob reports
    an SMPError, aborts, and the conversation and SMP work afterwards."""
    pair = Pair(seed=f"otr4j-range/{name}").secure()
    pair.session("alice").send_data("", (_msg1(_ELEMENTS[name], _VALID_EXPONENT),))
    events = pair.deliver("bob", pair.out("alice"))
    assert events == [ev.SMPError("SMP message 1: g2a is out of range")]
    pair.pump()
    pair.session("alice").smp_start("x")
    pair.pump()
    pair.session("bob").smp_respond("x")
    assert ev.SMPResult(True, verified=True) in pair.pump()["alice"]


# --- truncated OTR prefixes -------------------------------------------------------------

_TRUNCATED = [
    "?OTR",
    "?OTRv",
    "?OTR:",
    "?OTR|",
    "?OTR,",
    "?OTR?",
    "?OTRv?",
    "?OTRv\x00",
    "?OTR Error",
    "?OTR Error:",
    "?OTR:A",
    "?OTR:.",
    "?OTR|0",
    f"?OTR|{ALICE_TAG:08x}",
    f"?OTR|{ALICE_TAG:08x}|",
    f"?OTR|{ALICE_TAG:08x}|{BOB_TAG:08x}",
    f"?OTR|{ALICE_TAG:08x}|{BOB_TAG:08x},",
    f"?OTR|{ALICE_TAG:08x}|{BOB_TAG:08x},00001",
    f"?OTR|{ALICE_TAG:08x}|{BOB_TAG:08x},00001,00001",
    f"?OTR|{ALICE_TAG:08x}|{BOB_TAG:08x},00001,00001,",
    "?OTR,1",
    "?OTR,1,",
    "?OTR,1,1",
    "?OTR,1,1,",
    "hello ?OTR",
    "hello ?OTR:",
    "?OT",
    "?",
    "",
]


@pytest.mark.parametrize("text", _TRUNCATED)
@pytest.mark.parametrize("state", [MessageState.PLAINTEXT, MessageState.ENCRYPTED])
def test_otr4j_truncated_otr_prefixes(text: str, state: MessageState) -> None:
    """otr4j's ``SerializationUtils.toMessage`` indexed past the end of
    messages cut short after ``?OTR``, ``?OTRv``, ``?OTR:``, ``?OTR|`` or
    ``?OTR,`` and threw (StringIndexOutOfBoundsException) into the client.
    offrecord returns events, changes no OTR state and sends nothing but
    what the protocol says (no plaintext, no AKE while encrypted)."""
    pair = Pair(seed="truncated")
    if state is MessageState.ENCRYPTED:
        pair.secure()
    before = pair.snapshot("bob")
    events = pair.feed("bob", text)
    assert all(isinstance(e, ev.Event) for e in events)
    assert pair.snapshot("bob") == before
    for sent in pair.out("bob"):
        assert sent.startswith("?OTR")  # a D-H Commit answering a bare query, at most
        assert state is MessageState.PLAINTEXT
    if state is MessageState.ENCRYPTED:
        pair.assert_usable()


# --- base64 decoder exceptions ------------------------------------------------------------

_BINASCII_TRAPS = [
    "?OTR:AA=.",  # incorrect padding
    "?OTR:AAM=C.",  # data after padding (strict mode)
    "?OTR:=AAM.",  # leading padding
    "?OTR:AAMCA.",  # a lone sixth bit group
    "?OTR:AAMC\u00e9.",  # not ASCII
    "?OTR:AAMC\udc80.",  # a lone surrogate (cannot be encoded at all)
    "?OTR:AA\x00MC.",
    "?OTR:AAMC\x7f.",
]


@pytest.mark.parametrize("text", _BINASCII_TRAPS)
def test_otr4j_base64_errors_never_escape(text: str) -> None:
    """otr4j let its base64 decoder's exceptions escape the message parser
    into the client.  Python's binascii raises binascii.Error,
    ValueError or UnicodeEncodeError on these; classify turns every one into
    RemoteProtocolError and Account.receive into an event."""
    with pytest.raises(RemoteProtocolError):
        classify(text)
    body = text[len("?OTR:") : -1]
    with pytest.raises((binascii.Error, ValueError)):
        binascii.a2b_base64(body.encode("ascii"), strict_mode=True)
    pair = Pair(seed="base64").secure()
    events = pair.feed("bob", text)
    assert events and all(isinstance(e, ev.MessageDiscarded) for e in events)
    assert pair.out("bob") == []
    pair.assert_usable()


_B64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=. \n\t-_\x00é?:"


@given(body=st.text(alphabet=_B64_ALPHABET, max_size=60))
def test_otr4j_base64_any_body_gives_a_typed_result(body: str) -> None:
    """Property: whatever follows ``?OTR:``, classify returns or raises
    RemoteProtocolError, and an encoded result decodes to a message or
    RemoteProtocolError, never anything else."""
    try:
        incoming = classify("?OTR:" + body)
    except RemoteProtocolError:
        return
    with contextlib.suppress(RemoteProtocolError):
        decode_message(incoming.payload)
