"""Regression tests for remotely triggerable bugs found in libotr.

Each test cites the bug and checks that the same input leaves offrecord with
typed events only, bounded memory, unchanged state and a working
conversation.  Where libotr 4.1.1 itself is a useful reference, its own
functions are called through ctypes (:mod:`tests.regression.libotr_oracle`).
"""

from __future__ import annotations

import pytest

from offrecord import events as ev
from offrecord.errors import RemoteProtocolError
from offrecord.policy import Policy
from offrecord.session import MessageState
from offrecord.wire.codec import encode_byte, encode_data, encode_int, encode_mpi, encode_short
from offrecord.wire.envelope import MAX_ENCODED_LEN, frame
from offrecord.wire.fragment import FragmentLimits, Reassembler, fragment_message, parse_fragment
from offrecord.wire.messages import DataMessage, MessageType, decode_message
from offrecord.wire.tlv import TLV, TLVType
from tests.regression.libotr_oracle import FragmentResult, available, oracle
from tests.regression.pair import ALICE_TAG, BOB_TAG, Pair, peak_memory

_LIBOTR_MISSING = available()
needs_libotr = pytest.mark.skipif(_LIBOTR_MISSING is not None, reason=f"libotr: {_LIBOTR_MISSING}")

_MIB = 1 << 20
_HEAD = f"?OTR|{ALICE_TAG:08x}|{BOB_TAG:08x},"


def _only_discarded(events: list[ev.Event]) -> None:
    assert events and all(isinstance(e, ev.MessageDiscarded) for e in events), events


def _quiet_after_bad_input(pair: Pair, before: dict[int, tuple[object, ...]]) -> None:
    assert pair.snapshot("bob") == before
    assert pair.out("bob") == []  # nothing goes out, least of all plaintext


# --- CVE-2016-2851 -------------------------------------------------------------------


def test_cve_2016_2851_accumulated_fragments_are_capped() -> None:
    """CVE-2016-2851 (libotr < 4.1.1, reported by X41 D-Sec): the length of a
    message being reassembled from fragments was kept in an ``int`` in
    proto.c; a peer sending about 4 GB of fragments overflowed it and the
    next piece was written past the heap buffer (remote code execution on
    64-bit builds).

    offrecord caps a reassembly at ``FragmentLimits.max_message_size``
    (256 KiB): the piece that crosses the cap drops the reassembly, memory
    stays near the cap, and the next real message still arrives.
    """
    pair = Pair(seed="cve-2016-2851").secure()
    cap = FragmentLimits().max_message_size
    piece = "A" * 60_000
    reassembler_peaks: list[int] = []
    with peak_memory() as memory:
        for k in range(1, 11):
            events = pair.feed("bob", f"{_HEAD}{k:05d},00010,{piece},")
            reassembler_peaks.append(pair.bob._reassemblers["alice"].buffered)
            if k * len(piece) <= cap:
                assert events == []
            elif k == cap // len(piece) + 1:
                _only_discarded(events)  # the piece that crosses the cap
            else:
                # the reassembly is gone: later pieces continue nothing
                assert events == []
    assert max(reassembler_peaks) <= cap
    assert reassembler_peaks[-1] == 0
    assert memory.peak < 4 * _MIB
    pair.assert_usable()


def test_cve_2016_2851_many_senders_cannot_multiply_the_cap() -> None:
    """CVE-2016-2851 again, spread over instance tags: every v3 sender tag gets
    its own reassembly, so a peer could try to hold a capped message per tag.
    At most ``max_pending`` reassemblies are kept per peer."""
    pair = Pair(seed="cve-2016-2851-tags").secure()
    limits = FragmentLimits()
    piece = "A" * (limits.max_message_size - 10)
    with peak_memory() as memory:
        for tag in range(0x1000, 0x1000 + 64):
            assert pair.feed("bob", f"?OTR|{tag:08x}|{BOB_TAG:08x},00001,00002,{piece},") == []
    reassembler = pair.bob._reassemblers["alice"]
    assert reassembler.pending == limits.max_pending
    assert reassembler.buffered <= limits.max_pending * limits.max_message_size
    assert memory.peak < (limits.max_pending + 4) * limits.max_message_size + _MIB
    pair.assert_usable()


@pytest.mark.parametrize(
    ("k", "n"),
    [
        ("1", "65536"),  # one past an unsigned short: libotr's %hu wraps it to 0
        ("1", "65537"),  # wraps to 1: libotr takes it as a complete message
        ("65537", "65537"),
        ("1", "4294967297"),  # 2^32 + 1
        ("4294967295", "4294967295"),
        ("1", "1" + "0" * 30),
        ("1", "9" * 5000),  # a number whose parsing alone could be costly
    ],
)
def test_cve_2016_2851_fragment_numbers_near_the_integer_limits(k: str, n: str) -> None:
    """CVE-2016-2851 family: fragment numbers that do not fit their C types.
    libotr 4.1.1 reads k and n with ``%hu``, which silently wraps; offrecord
    refuses any k or n above 65535 before converting it."""
    pair = Pair(seed="fragment-numbers").secure()
    before = pair.snapshot("bob")
    text = f"{_HEAD}{k},{n},piece,"
    with pytest.raises(RemoteProtocolError):
        parse_fragment(text)
    _only_discarded(pair.feed("bob", text))
    _quiet_after_bad_input(pair, before)
    pair.assert_usable()


def _data_prefix(flags: int = 0) -> bytes:
    return (encode_short(3) + encode_byte(MessageType.DATA) + encode_int(ALICE_TAG)
            + encode_int(BOB_TAG) + encode_byte(flags) + encode_int(1) + encode_int(1))  # fmt: skip


def _commit_prefix() -> bytes:
    return encode_short(3) + encode_byte(MessageType.DH_COMMIT) + encode_int(ALICE_TAG) + \
        encode_int(BOB_TAG)  # fmt: skip


_VALID_Y = encode_mpi(2**1535 + 12345)
_HUGE_LENGTHS = [0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFC, 0x80000000, 0x7FFFFFFF, 0x01000001]


def _length_field_cases() -> dict[str, bytes]:
    cases: dict[str, bytes] = {}
    for size in _HUGE_LENGTHS:
        field = encode_int(size) + b"\x01\x02\x03"
        cases[f"D-H Commit encrypted g^x {size:#x}"] = _commit_prefix() + field
        cases[f"D-H Commit hashed g^x {size:#x}"] = _commit_prefix() + encode_data(b"x" * 4) + field
        cases[f"D-H Key g^y {size:#x}"] = (
            encode_short(3) + encode_byte(MessageType.DH_KEY) + encode_int(ALICE_TAG)
            + encode_int(BOB_TAG) + field
        )  # fmt: skip
        cases[f"Reveal Signature key {size:#x}"] = (
            encode_short(3) + encode_byte(MessageType.REVEAL_SIGNATURE) + encode_int(ALICE_TAG)
            + encode_int(BOB_TAG) + field
        )  # fmt: skip
        cases[f"data next DH {size:#x}"] = _data_prefix() + field
        cases[f"data encrypted message {size:#x}"] = _data_prefix() + _VALID_Y + bytes(8) + field
        cases[f"data old MAC keys {size:#x}"] = (
            _data_prefix() + _VALID_Y + bytes(8) + encode_data(b"ct") + bytes(20) + field
        )
    return cases


_LENGTH_CASES = _length_field_cases()


@pytest.mark.parametrize("case", list(_LENGTH_CASES))
def test_cve_2016_2851_length_fields_near_2_32(case: str) -> None:
    """CVE-2016-2851 family: a DATA or MPI length near 2^32 that a C parser
    could add to a pointer or a size and wrap.  offrecord checks every length
    against what is left and a per-field ceiling before taking any bytes."""
    raw = _LENGTH_CASES[case]
    with pytest.raises(RemoteProtocolError):
        decode_message(raw)
    pair = Pair(seed="length-fields").secure()
    before = pair.snapshot("bob")
    with peak_memory() as memory:
        _only_discarded(pair.feed("bob", frame(raw)))
    assert memory.peak < _MIB
    _quiet_after_bad_input(pair, before)
    pair.assert_usable()


def test_cve_2016_2851_oversized_encoded_message_is_refused_before_decoding() -> None:
    """CVE-2016-2851's unfragmented form: one enormous ``?OTR:`` message.
    Anything above ``MAX_ENCODED_LEN`` base64 characters is refused without
    decoding it (no second copy of its size is made)."""
    pair = Pair(seed="huge-message").secure()
    before = pair.snapshot("bob")
    text = "?OTR:" + "A" * (MAX_ENCODED_LEN + 4) + "."
    with peak_memory() as memory:
        _only_discarded(pair.feed("bob", text))
    assert memory.peak < len(text) + _MIB
    _quiet_after_bad_input(pair, before)
    pair.assert_usable()


def test_cve_2016_2851_tlv_length_past_the_end() -> None:
    """CVE-2016-2851 family inside the encryption: a TLV whose length field
    (0xFFFF) runs past the decrypted payload.  The text before the TLVs is
    still shown, the TLVs are dropped with a typed event, keys move on."""
    pair = Pair(seed="tlv-length").secure()
    session = pair.session("alice")
    payload = b"visible\x00" + encode_short(TLVType.SMP1) + encode_short(0xFFFF) + b"abc"
    keys = session._keys
    assert keys is not None
    msg, _ = keys.encrypt(payload, flags=0, sender_tag=ALICE_TAG, receiver_tag=BOB_TAG)
    session._queue_encoded(msg, None)
    events = pair.deliver("bob", pair.out("alice"))
    assert [e.text for e in events if isinstance(e, ev.MessageReceived)] == ["visible"]
    assert any(isinstance(e, ev.MessageDiscarded) for e in events)
    assert pair.session("bob").smp.in_progress is False
    pair.assert_usable()


# --- CVE-2012-3461 -------------------------------------------------------------------

_DEGENERATE_BASE64 = [
    "?OTR:===.",
    "?OTR:=.",
    "?OTR:==.",
    "?OTR:====.",
    "?OTR:.",
    "?OTR: .",
    "?OTR:A.",
    "?OTR:AA.",
    "?OTR:AAA.",
    "?OTR:AAAAA.",
    "?OTR:A===.",
    "?OTR:AA=A.",
    "?OTR:AAAA====.",
    "?OTR:AAMC=AAA.",
    "?OTR:" + "=" * 10_000 + ".",
    "?OTR:AAMC",  # no terminating '.'
    "?OTR:AA\x00MC.",
    "?OTR:AAMC\u00ff\u00ff.",
    "?OTR:AAMC\U0001f600.",
    "?OTR:AA-_.",  # URL-safe alphabet
    "?OTR:AAMC%%%%.",
]


@pytest.mark.parametrize("text", _DEGENERATE_BASE64, ids=range(len(_DEGENERATE_BASE64)))
@pytest.mark.parametrize("state", [MessageState.PLAINTEXT, MessageState.ENCRYPTED])
def test_cve_2012_3461_degenerate_base64(text: str, state: MessageState) -> None:
    """CVE-2012-3461 (libotr < 3.2.1): heap overflows in the base64 decoding
    behind ``otrl_base64_otr_decode``, whose output size did not account for
    degenerate input such as ``?OTR:===.``.  offrecord's decoder (binascii,
    strict) either decodes exactly or raises; the message is discarded with a
    typed event and nothing changes."""
    pair = Pair(seed="cve-2012-3461")
    if state is MessageState.ENCRYPTED:
        pair.secure()
    before = pair.snapshot("bob")
    _only_discarded(pair.feed("bob", text))
    _quiet_after_bad_input(pair, before)
    if state is MessageState.ENCRYPTED:
        pair.assert_usable()
    else:
        pair.secure().assert_usable()


@pytest.mark.parametrize("text", _DEGENERATE_BASE64, ids=range(len(_DEGENERATE_BASE64)))
@pytest.mark.interop
@needs_libotr
def test_cve_2012_3461_libotr_gets_nothing_usable_either(text: str) -> None:
    """What fixed libotr (4.1.1) makes of the same inputs: a refusal, or bytes
    that are no OTR message, so both implementations drop them."""
    decoded = oracle().base64_otr_decode(text.encode("utf-8"))
    if decoded is not None:
        with pytest.raises(RemoteProtocolError):
            decode_message(decoded)


# --- libotr 4.1.1's stricter fragment parsing ------------------------------------------


# (fragment, accepted by libotr 4.1.1's otrl_proto_fragment_accumulate)
_FRAGMENTS: dict[str, tuple[str, bool]] = {
    "non-hex sender tag": ("?OTR|0000010g|00000000,00001,00001,piece,", False),
    "non-hex receiver tag": (f"?OTR|{ALICE_TAG:08x}|zz,00001,00001,piece,", False),
    "empty sender tag": ("?OTR||00000000,00001,00001,piece,", False),
    "0x-prefixed tag": ("?OTR|0x100|0,1,1,piece,", True),
    "tag above 32 bits": ("?OTR|1ffffffff|00000000,1,1,piece,", True),
    "k = 0": (_HEAD + "00000,00001,piece,", False),
    "n = 0": (_HEAD + "00001,00000,piece,", False),
    "k > n": (_HEAD + "00002,00001,piece,", False),
    "n = 65536": (_HEAD + "00001,65536,piece,", False),
    "n = 65537 (wraps to 1)": (_HEAD + "00001,65537,piece,", True),
    "negative k": (_HEAD + "-1,00001,piece,", False),
    "k with a plus sign": (_HEAD + "+1,1,piece,", True),
    "k with a leading blank": (_HEAD + " 1,1,piece,", True),
    "k in hexadecimal": (_HEAD + "0x1,1,piece,", False),
    "empty piece": (_HEAD + "00001,00001,,", False),
    "missing trailing comma": (_HEAD + "00001,00001,piece", False),
    "fragment inside a fragment": (_HEAD + f"00001,00001,?OTR|{ALICE_TAG:08x}|00000000,", True),
    "fragment after a fragment": (_HEAD + "00001,00001,x," + _HEAD + "00001,00001,y,", True),
    "v2 k = 0": ("?OTR,0,1,piece,", False),
    "v2 empty piece": ("?OTR,1,1,,", False),
    "v2 missing trailing comma": ("?OTR,1,1,piece", False),
    "v2 fragment after a fragment": ("?OTR,1,1,x,?OTR,1,1,y,", True),
}


@pytest.mark.parametrize("case", list(_FRAGMENTS))
def test_libotr_4_1_1_strict_fragment_parsing(case: str) -> None:
    """libotr 4.1.1 ("Be stricter about parsing v3 fragments", commit 03e3cad,
    libotr issue #76, and the CVE-2016-2851 fix) stopped accepting malformed
    fragment headers.  offrecord refuses every one of these, including those
    libotr's ``sscanf`` still lets through (wrapped numbers, signs, blanks,
    ``0x``, tags above 32 bits, a fragment marker in a piece): a typed event,
    no state change, nothing sent, the conversation still works."""
    text, _ = _FRAGMENTS[case]
    with pytest.raises(RemoteProtocolError):
        parse_fragment(text)
    pair = Pair(seed="fragments").secure()
    before = pair.snapshot("bob")
    events = pair.feed("bob", text)
    _only_discarded(events)
    _quiet_after_bad_input(pair, before)
    assert pair.bob._reassemblers.get("alice", Reassembler()).pending == 0
    pair.assert_usable()


@pytest.mark.parametrize("case", list(_FRAGMENTS))
@pytest.mark.interop
@needs_libotr
def test_libotr_4_1_1_fragment_parsing_reference(case: str) -> None:
    """The table above states what libotr 4.1.1 does with each fragment; this
    checks it against libotr itself, so offrecord is never the more permissive."""
    text, libotr_accepts = _FRAGMENTS[case]
    ((result, _),) = oracle().accumulate([text.encode()])
    assert (result is FragmentResult.COMPLETE) is libotr_accepts


@pytest.mark.interop
@needs_libotr
def test_libotr_reassembles_what_offrecord_fragments() -> None:
    """Well-formed fragments are reassembled alike by both."""
    message = frame(b"\x00\x03\x03" + bytes(range(256)) * 3)
    pieces = fragment_message(message, 120, version=3, sender_tag=ALICE_TAG, receiver_tag=BOB_TAG)
    results = oracle().accumulate([p.encode() for p in pieces])
    assert results[-1] == (FragmentResult.COMPLETE, message.encode())
    reassembler = Reassembler()
    assert [reassembler.add(p, 0.0) for p in pieces][-1] == message


def test_fragment_marker_split_across_pieces() -> None:
    """A fragment marker assembled from two pieces ("?OT" + "R|...") would
    smuggle a fragment through the reassembler; it is refused."""
    pair = Pair(seed="split-marker").secure()
    before = pair.snapshot("bob")
    assert pair.feed("bob", _HEAD + "00001,00002,?OT,") == []
    _only_discarded(pair.feed("bob", _HEAD + f"00002,00002,R|{ALICE_TAG:08x}|00000000,"))
    _quiet_after_bad_input(pair, before)
    pair.assert_usable()


# --- SMP messages out of order or with wrong MPI counts (libotr 4.1.0) ------------------


def _smp_body(count_field: int, values: list[int]) -> bytes:
    return encode_int(count_field) + b"".join(encode_mpi(v) for v in values)


_G = 2**1535 + 1  # a group element in range (the proofs will not verify)
_SMP_BAD: dict[str, TLV] = {
    "message 2 first": TLV(TLVType.SMP2, _smp_body(11, [_G] * 11)),
    "message 3 first": TLV(TLVType.SMP3, _smp_body(8, [_G] * 8)),
    "message 4 first": TLV(TLVType.SMP4, _smp_body(3, [_G] * 3)),
    "message 1 with no MPIs": TLV(TLVType.SMP1, _smp_body(0, [])),
    "message 1 with 5 MPIs": TLV(TLVType.SMP1, _smp_body(5, [_G] * 5)),
    "message 1 with 7 MPIs": TLV(TLVType.SMP1, _smp_body(7, [_G] * 7)),
    "message 1 claiming 2^32-1 MPIs": TLV(TLVType.SMP1, _smp_body(0xFFFFFFFF, [_G] * 6)),
    "message 1 count says 6, 5 present": TLV(TLVType.SMP1, _smp_body(6, [_G] * 5)),
    "message 1 with trailing bytes": TLV(TLVType.SMP1, _smp_body(6, [_G] * 6) + b"\x00"),
    "message 1 truncated count": TLV(TLVType.SMP1, b"\x00\x00"),
    "message 1 empty": TLV(TLVType.SMP1, b""),
    "message 1Q empty": TLV(TLVType.SMP1Q, b""),
    "message 1Q without NUL": TLV(TLVType.SMP1Q, b"question?" + _smp_body(6, [_G] * 6)),
    "message 1Q, question only": TLV(TLVType.SMP1Q, b"question?\x00"),
    "message 1 MPI length 2^32-1": TLV(TLVType.SMP1, encode_int(6) + encode_int(0xFFFFFFFF)),
}


def _send_tlvs(pair: Pair, sender: str, tlvs: tuple[TLV, ...]) -> None:
    pair.session(sender).send_data("", tlvs)


@pytest.mark.parametrize("case", list(_SMP_BAD))
def test_libotr_smp_out_of_order_or_wrong_counts(case: str) -> None:
    """libotr 4.1.0: an SMP message that failed (out of order, malformed) made
    ``otrl_message_receiving`` free an uninitialised pointer when the reply
    could not be built (fixed in 4.1.1, commit 70d1df0, libotr issue #72;
    reported by Nicolas Guigo and Ben Hawkes).  offrecord answers with an
    SMPError event and an abort, leaves the session as it was, and a later
    SMP run succeeds."""
    pair = Pair(seed="smp-bad").secure()
    before = pair.snapshot("bob", keys=False)
    _send_tlvs(pair, "alice", (_SMP_BAD[case],))
    events = pair.deliver("bob", pair.out("alice"))
    assert [type(e) for e in events] == [ev.SMPError], events
    assert pair.session("bob").smp.in_progress is False
    assert pair.snapshot("bob", keys=False) == before
    # the abort reaches Alice, who had nothing running
    alice_saw = pair.deliver("alice", pair.out("bob"))
    assert all(isinstance(e, ev.SMPAborted | ev.SMPError) for e in alice_saw), alice_saw
    _full_smp_succeeds(pair)
    pair.assert_usable()


def _full_smp_succeeds(pair: Pair) -> None:
    pair.session("alice").smp_start("shared secret", "what do we share?")
    seen = pair.pump()
    assert [e for e in seen["bob"] if isinstance(e, ev.SMPRequested)] == [
        ev.SMPRequested("what do we share?")
    ]
    pair.session("bob").smp_respond("shared secret")
    seen = pair.pump()
    assert ev.SMPResult(True, verified=True) in seen["alice"]
    assert ev.SMPResult(True, verified=False) in seen["bob"]


def test_smp_wrong_count_for_the_expected_message() -> None:
    """Bob started SMP and waits for message 2; Alice answers with a message 2
    of the wrong size.  Bob reports cheating, aborts, and both recover."""
    pair = Pair(seed="smp-expected").secure()
    pair.session("bob").smp_start("secret")
    pair.out("bob")  # message 1 never reaches Alice
    _send_tlvs(pair, "alice", (TLV(TLVType.SMP2, _smp_body(10, [_G] * 10)),))
    events = pair.deliver("bob", pair.out("alice"))
    assert [type(e) for e in events] == [ev.SMPError]
    assert pair.session("bob").smp.in_progress is False
    pair.pump()
    _full_smp_succeeds(pair)


def test_policy_does_not_matter_for_parsing() -> None:
    """The same fragments are refused under every preset (parsing comes first)."""
    for policy in (Policy.MANUAL, Policy.OPPORTUNISTIC, Policy.ALWAYS):
        pair = Pair(seed="presets", policy=policy)
        for text, _ in _FRAGMENTS.values():
            events = pair.feed("bob", text)
            _only_discarded(events)
            assert pair.out("bob") == []


def test_data_message_type_is_checked() -> None:
    """Sanity check of the hand-built prefixes above: completing one gives a
    message offrecord decodes (so each case fails for its length field alone)."""
    raw = _data_prefix() + _VALID_Y + bytes(8) + encode_data(b"ct") + bytes(20) + encode_data(b"")
    assert isinstance(decode_message(raw), DataMessage)
