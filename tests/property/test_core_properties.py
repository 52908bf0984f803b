"""Property tests for the core: codec and message round trips, the envelope,
any text surviving encryption both ways, and Account.receive never raising."""

from __future__ import annotations

import base64
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from offrecord import events as ev
from offrecord.account import Account
from offrecord.crypto.dh import MODULUS
from offrecord.crypto.dsa import generate_private_key
from offrecord.errors import LocalProtocolError, RemoteProtocolError
from offrecord.session import MessageState
from offrecord.wire.codec import Reader, encode_data, encode_int, encode_mpi, encode_short
from offrecord.wire.envelope import (
    Kind,
    classify,
    error_message,
    frame,
    query_message,
    tag_plaintext,
)
from offrecord.wire.messages import (
    DataMessage,
    DHCommit,
    DHKey,
    EncodedMessage,
    RevealSignature,
    Signature,
    decode_message,
    encode_message,
)
from offrecord.wire.tlv import TLV, decode_tlvs, encode_tlvs, split_plaintext

SLOW = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- codec -------------------------------------------------------------------------------


@given(st.integers(0, (1 << (8 * 1024)) - 1))
def test_mpi_round_trip_is_minimal(value: int) -> None:
    encoded = encode_mpi(value)
    assert len(encoded) == 4 + (value.bit_length() + 7) // 8
    reader = Reader(encoded)
    assert reader.mpi() == value
    reader.end()


@given(st.binary(max_size=2000), st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF))
def test_fields_round_trip_in_sequence(data: bytes, short: int, integer: int) -> None:
    reader = Reader(encode_data(data) + encode_short(short) + encode_int(integer))
    assert (reader.data(), reader.short(), reader.int32()) == (data, short, integer)
    reader.end()


@given(st.binary(max_size=200), st.integers(0, 199))
def test_truncated_data_never_reads_past_the_end(data: bytes, cut: int) -> None:
    encoded = encode_data(data)[: min(cut, 3 + len(data))]
    try:
        Reader(encoded).data()
    except RemoteProtocolError:
        return
    raise AssertionError("a truncated DATA field was read")


tlvs = st.lists(st.builds(TLV, st.integers(0, 0xFFFF), st.binary(max_size=300)), max_size=10)


@given(tlvs)
def test_tlv_round_trip(records: list[TLV]) -> None:
    assert decode_tlvs(encode_tlvs(records)) == tuple(records)


@given(st.binary().filter(lambda b: b"\x00" not in b), tlvs)
def test_plaintext_and_tlvs_split_apart(text: bytes, records: list[TLV]) -> None:
    assert split_plaintext(text + b"\x00" + encode_tlvs(records)) == (text, tuple(records))


# --- encoded messages -------------------------------------------------------------------

element = st.integers(2, MODULUS - 2)
tag = st.integers(0, 0xFFFFFFFF)


@st.composite
def messages(draw: st.DrawFn) -> EncodedMessage:
    version = draw(st.sampled_from([2, 3]))
    head = (version, draw(tag), draw(tag)) if version == 3 else (version, 0, 0)
    kind = draw(st.sampled_from(["commit", "dhkey", "reveal", "sig", "data"]))
    if kind == "commit":
        return DHCommit(
            *head, draw(st.binary(max_size=1024)), draw(st.binary(min_size=32, max_size=32))
        )
    if kind == "dhkey":
        return DHKey(*head, draw(element))
    mac = draw(st.binary(min_size=20, max_size=20))
    if kind == "reveal":
        return RevealSignature(*head, draw(st.binary(min_size=16, max_size=16)),
                               draw(st.binary(max_size=4096)), mac)  # fmt: skip
    if kind == "sig":
        return Signature(*head, draw(st.binary(max_size=4096)), mac)
    keyid = st.integers(1, 0xFFFFFFFF)
    return DataMessage(
        *head, draw(st.integers(0, 255)), draw(keyid), draw(keyid), draw(element),
        draw(st.binary(min_size=8, max_size=8)), draw(st.binary(max_size=2000)), mac,
        draw(st.binary(max_size=200)),
    )  # fmt: skip


@given(messages())
def test_message_round_trip_through_the_wire(msg: EncodedMessage) -> None:
    text = frame(encode_message(msg))
    incoming = classify(text)
    assert incoming.kind is Kind.ENCODED
    assert decode_message(incoming.payload) == msg


@given(messages(), st.data())
def test_any_truncation_of_a_message_is_rejected(msg: EncodedMessage, data: st.DataObject) -> None:
    raw = encode_message(msg)
    cut = data.draw(st.integers(0, len(raw) - 1))
    try:
        decode_message(raw[:cut])
    except RemoteProtocolError:
        return
    raise AssertionError(f"a message cut to {cut} of {len(raw)} bytes was accepted")


# --- the envelope -------------------------------------------------------------------------

# Text that cannot contain an OTR marker or a whitespace tag by accident.
human = st.text(st.characters(blacklist_characters="?\t "), max_size=50)
versions = st.sets(st.sampled_from([2, 3]), min_size=1)


@given(human, human, versions)
def test_whitespace_tag_round_trip(before: str, after: str, offer: set[int]) -> None:
    tagged = tag_plaintext(before, frozenset(offer)) + after
    incoming = classify(tagged)
    assert incoming.kind is Kind.TAGGED_PLAINTEXT
    assert incoming.text == before + after
    assert incoming.offered() == offer


@given(human, versions)
def test_query_round_trip(name: str, offer: set[int]) -> None:
    incoming = classify(query_message(frozenset(offer), name))
    assert incoming.kind is Kind.QUERY
    assert incoming.offered() == offer


@given(st.text(max_size=100))
def test_error_round_trip(description: str) -> None:
    incoming = classify(error_message(description))
    assert incoming.kind is Kind.ERROR
    assert incoming.text == description.strip()


@given(human)
def test_text_without_markers_is_plain(text: str) -> None:
    incoming = classify(text)
    assert incoming.kind is Kind.PLAINTEXT
    assert incoming.text == text


# --- whole accounts ---------------------------------------------------------------------------

KEYS = {n: generate_private_key(random.Random(f"prop-{n}").randbytes) for n in ("alice", "bob")}


def pair(state: MessageState = MessageState.ENCRYPTED) -> dict[str, Account]:
    """Alice and Bob, with Bob's conversation in ``state``."""
    accounts = {
        n: Account(n, "prop", KEYS[n], instance_tag=0x1000 + i,
                   random_bytes=random.Random(f"prop-{n}-rng").randbytes)
        for i, n in enumerate(("alice", "bob"))
    }  # fmt: skip
    if state is not MessageState.PLAINTEXT:
        accounts["alice"].conversation("bob").start()
        pump(accounts)
    if state is MessageState.FINISHED:
        accounts["alice"].conversation("bob").end()
        pump(accounts)
    assert accounts["bob"].conversation("alice").state is state
    return accounts


def pump(accounts: dict[str, Account]) -> dict[str, list[ev.Event]]:
    seen: dict[str, list[ev.Event]] = {"alice": [], "bob": []}
    for _ in range(20):
        moved = False
        for name, peer in (("alice", "bob"), ("bob", "alice")):
            for _, text in accounts[name].data_to_send():
                moved = True
                seen[peer] += accounts[peer].receive(name, text)
        if not moved:
            return seen
    raise AssertionError("never quiet")


ENCRYPTED = pair()


@SLOW
@given(st.text(min_size=1).filter(lambda t: "\x00" not in t), st.sampled_from(["alice", "bob"]))
def test_any_text_survives_encryption_both_ways(text: str, sender: str) -> None:
    peer = "bob" if sender == "alice" else "alice"
    assert ENCRYPTED[sender].conversation(peer).send(text) == []
    seen = pump(ENCRYPTED)[peer]
    received = [e for e in seen if isinstance(e, ev.MessageReceived)]
    assert [(e.text, e.encrypted) for e in received] == [(text, True)]


@given(st.text(min_size=1).map(lambda t: t[: len(t) // 2] + "\x00" + t[len(t) // 2 :]))
def test_text_with_nul_is_refused_locally(text: str) -> None:
    try:
        ENCRYPTED["alice"].conversation("bob").send(text)
    except LocalProtocolError:
        assert ENCRYPTED["alice"].data_to_send() == []
        return
    raise AssertionError("a message with NUL was sent")


# Strings that look like OTR to some depth.
otr_like = st.one_of(
    st.text(),
    st.builds(
        str.__add__,
        st.sampled_from(["?OTR", "?OTR:", "?OTRv", "?OTR?", "?OTR Error:", "?OTR|", "?OTR,"]),
        st.text(),
    ),
    st.binary(max_size=300).map(lambda b: "?OTR:" + base64.b64encode(b).decode() + "."),
    st.binary(max_size=300).map(
        lambda b: "?OTR:" + base64.b64encode(b"\x00\x03" + b).decode() + "."
    ),
)


@SLOW
@given(otr_like, st.sampled_from(list(MessageState)))
def test_receive_never_raises(text: str, state: MessageState) -> None:
    accounts = pair(state)
    events = accounts["bob"].receive("alice", text)
    assert all(isinstance(e, ev.Event) for e in events)
    assert accounts["bob"].conversation("alice").state is state
