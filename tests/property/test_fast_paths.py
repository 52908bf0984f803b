"""The fast paths of the message path agree with the general ones.

Each shortcut taken for speed (a reusable AES-CTR context, a keyed HMAC
context, the quick data-message decoder, the policy's version table, the
conversation's choice of session, the encoded-message check in classify,
direct fragment formatting, the canonical fragment parser, the reassembler's
next-piece path, base64 through pybase64) is compared here with the
straightforward way of doing the same thing.
"""

from __future__ import annotations

import binascii
import copy
import hmac
import pickle
from collections.abc import Callable
from dataclasses import replace
from typing import TypeVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from offrecord.account import Conversation
from offrecord.crypto.dh import MODULUS
from offrecord.crypto.primitives import AESCounterMode, HMACSHA1Key, aes_ctr
from offrecord.errors import RemoteProtocolError
from offrecord.policy import Policy
from offrecord.session import MessageState, Session
from offrecord.wire import envelope as envelope_module
from offrecord.wire import fragment as fragment_module
from offrecord.wire import messages as wm
from offrecord.wire.codec import MAX_MPI_LEN, encode_data, encode_int
from offrecord.wire.envelope import Kind, classify, encoded_payload, frame
from offrecord.wire.fragment import MIN_INSTANCE_TAG, Fragment, fragment_message, parse_fragment
from offrecord.wire.messages import DataMessage, decode_message, encode_message

T = TypeVar("T")
keys16 = st.binary(min_size=16, max_size=16)
tops = st.binary(min_size=8, max_size=8)


@given(keys16, st.lists(st.tuples(tops, st.binary(max_size=1200)), min_size=1, max_size=4))
def test_reusable_aes_ctr_equals_a_fresh_ctr_context(
    key: bytes, messages: list[tuple[bytes, bytes]]
) -> None:
    cipher = AESCounterMode(key)
    for top, data in messages:  # one context, many messages, short and long
        assert cipher.crypt(top, data) == aes_ctr(key, top, data)


@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, 511, 512, 513, 4096])
def test_reusable_aes_ctr_around_block_boundaries(size: int) -> None:
    key, top = bytes(range(16)), b"\xff" * 7 + b"\x01"
    data = bytes(i % 251 for i in range(size))
    assert AESCounterMode(key).crypt(top, data) == aes_ctr(key, top, data)


def test_reusable_aes_ctr_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError):
        AESCounterMode(b"short")
    with pytest.raises(ValueError):
        AESCounterMode(bytes(16)).crypt(b"1234567", b"data")


@given(st.binary(max_size=80), st.lists(st.binary(max_size=600), min_size=1, max_size=4))
def test_keyed_hmac_equals_one_shot_hmac(key: bytes, messages: list[bytes]) -> None:
    mac = HMACSHA1Key(key)
    for data in messages:
        assert mac.digest(data) == hmac.new(key, data, "sha1").digest()


@pytest.mark.parametrize("value", range(256))
def test_policy_version_table_equals_the_flag_arithmetic(value: int) -> None:
    policy = Policy(value)
    expected = {v for v, flag in ((2, Policy.ALLOW_V2), (3, Policy.ALLOW_V3)) if policy & flag}
    assert policy.allowed_versions() == frozenset(expected)


# --- the quick data-message decoder ---------------------------------------------------

element = st.integers(2, MODULUS - 2)
keyid = st.integers(1, 0xFFFFFFFF)


@st.composite
def data_messages(draw: st.DrawFn) -> DataMessage:
    version = draw(st.sampled_from([2, 3]))
    tags = (draw(st.integers(0, 0xFFFFFFFF)), draw(st.integers(0, 0xFFFFFFFF)))
    return DataMessage(
        version, *(tags if version == 3 else (0, 0)), draw(st.integers(0, 255)),
        draw(keyid), draw(keyid), draw(element), draw(st.binary(min_size=8, max_size=8)),
        draw(st.binary(max_size=600)), draw(st.binary(min_size=20, max_size=20)),
        draw(st.binary(max_size=100)),
    )  # fmt: skip


def general_decode(raw: bytes) -> wm.EncodedMessage | str:
    try:
        return wm._decode_message(raw)
    except RemoteProtocolError as exc:
        return f"error: {exc}"


def public_decode(raw: bytes) -> wm.EncodedMessage | str:
    try:
        return decode_message(raw)
    except RemoteProtocolError as exc:
        return f"error: {exc}"


@given(data_messages())
def test_quick_decoder_takes_every_well_formed_data_message(msg: DataMessage) -> None:
    raw = encode_message(msg)
    quick = wm._decode_data_quickly(raw)
    assert quick == msg == general_decode(raw)
    assert quick is not None and quick.authenticated_part() == msg.authenticated_part()


@given(data_messages(), st.binary(min_size=8, max_size=8))
def test_a_changed_message_is_macd_as_its_fields_encode(msg: DataMessage, counter: bytes) -> None:
    # replace() must not carry the received bytes over to a different message.
    received = decode_message(encode_message(msg))
    assert isinstance(received, DataMessage)
    changed = replace(received, counter=counter)
    assert changed.authenticated_part() == replace(msg, counter=counter).authenticated_part()


@st.composite
def damaged(draw: st.DrawFn) -> bytes:
    raw = bytearray(encode_message(draw(data_messages())))
    for _ in range(draw(st.integers(1, 4))):
        how = draw(st.sampled_from(["flip", "cut", "extend", "field"]))
        if how == "flip" and raw:
            at = draw(st.integers(0, len(raw) - 1))
            raw[at] = draw(st.integers(0, 255))
        elif how == "cut" and raw:
            del raw[draw(st.integers(0, len(raw) - 1)) :]
        elif how == "extend":
            raw += draw(st.binary(min_size=1, max_size=8))
        elif len(raw) >= 24:
            # Overwrite a length, key id or header field with a boundary value.
            at = draw(st.integers(0, len(raw) - 4))
            value = draw(st.sampled_from([0, 1, 2, MAX_MPI_LEN, MAX_MPI_LEN + 1, 0xFFFFFFFF]))
            raw[at : at + 4] = encode_int(value)
    return bytes(raw)


@given(damaged())
def test_quick_decoder_never_accepts_what_the_general_one_refuses(raw: bytes) -> None:
    quick = wm._decode_data_quickly(raw)
    general = general_decode(raw)
    if quick is not None:
        assert quick == general
        assert isinstance(general, DataMessage)
        # Both keep the bytes the MAC covers, exactly as they arrived.
        signed = quick.authenticated_part()
        assert signed == general.authenticated_part() == raw[: len(signed)]
        assert raw[len(signed) : len(signed) + 20] == quick.mac
    # Whichever path it takes, decode_message answers as the general decoder.
    assert public_decode(raw) == general


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00",
        b"\x00\x03",
        b"\x00\x03\x03",
        b"\x01\x03\x03" + bytes(40),
        b"\x00\x04\x03" + bytes(40),
        b"\x00\x02\x03" + bytes(40),  # key ids 0
    ],
)
def test_quick_decoder_declines_short_and_foreign_headers(raw: bytes) -> None:
    assert wm._decode_data_quickly(raw) is None
    assert isinstance(public_decode(raw), str)


def test_quick_decoder_checks_the_next_dh_key_range() -> None:
    good = DataMessage(3, 0x100, 0x101, 0, 1, 1, 5, bytes(8), b"x", bytes(20), b"")
    for bad in (0, 1, MODULUS - 1, MODULUS):
        raw = encode_message(replace(good, next_dh=2)).replace(
            encode_data(b"\x02"), encode_data(bad.to_bytes(192, "big")), 1
        )
        assert wm._decode_data_quickly(raw) is None
        assert public_decode(raw) == general_decode(raw)
        assert isinstance(general_decode(raw), str)


def test_quick_decoder_accepts_an_mpi_with_leading_zeros_as_the_general_one_does() -> None:
    good = DataMessage(2, 0, 0, 1, 7, 9, 5, bytes(8), b"abc", bytes(20), b"k" * 20)
    raw = encode_message(good).replace(encode_data(b"\x05"), encode_data(b"\x00\x00\x05"), 1)
    assert wm._decode_data_quickly(raw) == good == general_decode(raw)


# --- classify and the conversation's choice of session --------------------------------


@given(st.binary(min_size=1, max_size=300))
def test_classify_of_an_encoded_message_is_the_general_answer(body: bytes) -> None:
    text = frame(body)
    incoming = classify(text)
    assert incoming.kind is Kind.ENCODED and incoming.payload == body
    # The same message after other text goes through the general search.
    assert classify("hi " + text).payload == body


states = st.sampled_from(list(MessageState))
times = st.one_of(st.none(), st.sampled_from([0.0, 1.0, 2.0, 5.0]))


@given(st.lists(st.tuples(states, times, times), min_size=1, max_size=5))
def test_best_session_is_the_first_best_by_state_then_activity(
    specs: list[tuple[MessageState, float | None, float | None]],
) -> None:
    sessions: list[Session] = []
    for state, received, sent in specs:
        session = Session.__new__(Session)
        session.msgstate, session.last_received, session.last_sent = state, received, sent
        sessions.append(session)
    rank = {MessageState.ENCRYPTED: 2, MessageState.FINISHED: 1, MessageState.PLAINTEXT: 0}
    expected = max(
        sessions,
        key=lambda s: (rank[s.msgstate], max(s.last_received or 0.0, s.last_sent or 0.0)),
    )
    conv = Conversation.__new__(Conversation)
    conv.master = sessions[0]
    conv.instances = {0x100 + i: s for i, s in enumerate(sessions[1:])}
    assert conv.best_session() is expected


def test_cipher_and_mac_contexts_survive_copying() -> None:
    # Accounts are deep-copied (checkpoints in tests, applications' snapshots):
    # a copy gets contexts of its own that give the same output.
    def pickled(x: T) -> T:
        copied: T = pickle.loads(pickle.dumps(x))
        return copied

    cipher, mac = AESCounterMode(bytes(range(16))), HMACSHA1Key(b"k" * 20)
    for copy_of in (copy.copy, copy.deepcopy, pickled):
        cipher2, mac2 = copy_of(cipher), copy_of(mac)
        assert cipher2.crypt(bytes(8), b"data") == cipher.crypt(bytes(8), b"data")
        assert mac2.digest(b"data") == mac.digest(b"data")


# --- fragments ---------------------------------------------------------------------------

base64_text = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=", max_size=900
)
real_tag = st.integers(MIN_INSTANCE_TAG, 0xFFFFFFFF)


@given(base64_text, st.integers(38, 300), st.sampled_from([2, 3]), real_tag, real_tag)
def test_fragments_are_formatted_as_fragment_encode_writes_them(
    body: str, max_size: int, version: int, sender: int, receiver: int
) -> None:
    message = "?OTR:" + body + "."
    pieces = fragment_message(
        message, max_size, version=version, sender_tag=sender, receiver_tag=receiver
    )
    if len(message) <= max_size:
        assert pieces == [message]
        return
    step = max_size - (37 if version == 3 else 19)
    count = -(-len(message) // step)
    tags = (sender, receiver) if version == 3 else (0, 0)
    assert pieces == [
        Fragment(version, *tags, k, count, message[(k - 1) * step : k * step]).encode()
        for k in range(1, count + 1)
    ]


def test_fragmenting_refuses_a_message_with_nul() -> None:
    with pytest.raises(ValueError):
        fragment_message("?OTR:AAAA\x00" + "A" * 100 + ".", 50, version=2)


def general_parse(text: str) -> Fragment | str:
    try:
        return fragment_module._parse_general(text)
    except RemoteProtocolError as exc:
        return f"error: {exc}"


def public_parse(text: str) -> Fragment | str:
    try:
        return parse_fragment(text)
    except RemoteProtocolError as exc:
        return f"error: {exc}"


@st.composite
def fragment_texts(draw: st.DrawFn) -> str:
    version = draw(st.sampled_from([2, 3]))
    n = draw(st.integers(1, 0xFFFF))
    tags = (draw(real_tag), draw(st.integers(0, 0xFFFFFFFF))) if version == 3 else (0, 0)
    text = Fragment(
        version, *tags, draw(st.integers(1, n)), n, draw(base64_text.filter(bool))
    ).encode()
    chars = list(text)
    for _ in range(draw(st.integers(0, 3))):
        how = draw(st.sampled_from(["replace", "insert", "delete"]))
        at = draw(st.integers(0, len(chars) - 1))
        char = draw(st.sampled_from([",", "|", "0", "9", "f", "G", "\x00", "?OTR|", " ", "-"]))
        if how == "replace":
            chars[at] = char
        elif how == "insert":
            chars.insert(at, char)
        elif len(chars) > 1:
            del chars[at]
    return "".join(chars)


@given(fragment_texts())
def test_canonical_fragment_parsing_agrees_with_the_general_parser(text: str) -> None:
    canonical = fragment_module._parse_canonical(text)
    general = general_parse(text)
    if canonical is not None:
        assert canonical == general
    assert public_parse(text) == general


@given(fragment_texts())
def test_canonical_fields_are_the_fields_of_the_parsed_fragment(text: str) -> None:
    fields = fragment_module.canonical_fields(text)
    general = general_parse(text)
    if fields is not None:
        assert isinstance(general, Fragment)
        assert fields == (
            general.version, general.sender_tag, general.receiver_tag,
            general.k, general.n, general.piece,
        )  # fmt: skip


def answer(add: Callable[..., str | None], *args: object) -> str | None:
    try:
        return add(*args)
    except RemoteProtocolError as exc:
        return f"error: {exc}"


@given(
    st.lists(
        st.tuples(st.sampled_from([None, 0x100, 0x2345]), st.integers(1, 4),
                  st.integers(1, 4), st.sampled_from(["a", "bc", "?OTR", "|x"]),
                  st.floats(0, 400)),
        max_size=25,
    )
)  # fmt: skip
def test_adding_pieces_equals_adding_fragments(
    steps: list[tuple[int | None, int, int, str, float]],
) -> None:
    limits = fragment_module.FragmentLimits(max_message_size=6, max_pending=2, timeout=100.0)
    by_fragment = fragment_module.Reassembler(limits)
    by_piece = fragment_module.Reassembler(limits)
    for key, k, n, piece, now in steps:
        if k > n:
            continue
        version, tag = (2, 0) if key is None else (3, key)
        fragment = Fragment(version, tag, 0, k, n, piece)
        answers = [answer(by_fragment.add, fragment, now),
                   answer(by_piece.add_piece, key, k, n, piece, now)]  # fmt: skip
        assert answers[0] == answers[1]
        assert by_fragment.pending == by_piece.pending
        assert by_fragment.buffered == by_piece.buffered


@given(st.sampled_from([2, 3]), st.integers(1, 0xFFFF), real_tag, base64_text.filter(bool))
def test_every_fragment_we_write_takes_the_canonical_parser(
    version: int, n: int, sender: int, piece: str
) -> None:
    tags = (sender, 0) if version == 3 else (0, 0)
    fragment = Fragment(version, *tags, n, n, piece)
    assert fragment_module._parse_canonical(fragment.encode()) == fragment


def classify_answer(text: str) -> bytes | str:
    try:
        incoming = classify(text)
    except RemoteProtocolError as exc:
        return f"error: {exc}"
    assert incoming.kind is Kind.ENCODED
    return incoming.payload


def payload_answer(text: str) -> bytes | str:
    try:
        return encoded_payload(text)
    except RemoteProtocolError as exc:
        return f"error: {exc}"


@given(st.text(alphabet="AB+/=. \n\x00é,|?:OTR", max_size=60))
def test_the_conversations_encoded_path_reads_what_classify_reads(body: str) -> None:
    # Conversation.receive takes "?OTR:" messages straight to encoded_payload;
    # classify() must give the same payload, or the same error.
    text = "?OTR:" + body
    assert payload_answer(text) == classify_answer(text)


def test_encoded_payload_is_only_for_encoded_messages() -> None:
    with pytest.raises(ValueError):
        encoded_payload("?OTRv3?")


def reference_decode_body(text: str, start: int) -> bytes | str:
    """_decode_body as written before its shortcut for unbroken lines."""
    end = text.find(".", start)
    if end < 0:
        return "no end"
    body = "".join(text[start:end].split())
    if len(body) > envelope_module.MAX_ENCODED_LEN:
        return "too long"
    if not body:
        return "empty"
    try:
        return binascii.a2b_base64(body.encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return "bad base64"


ERRORS = {
    "no end": "no terminating",
    "too long": "too long",
    "empty": "empty",
    "bad base64": "not valid base64",
}


@given(st.text(alphabet="AB/+=\n\t \x0b\x1c\x1f\u2028\u3000é.", max_size=40))
def test_encoded_body_decoding_equals_the_reference(body: str) -> None:
    expected = reference_decode_body(body, 0)
    try:
        got: bytes | str = envelope_module._decode_body(body, 0)
    except RemoteProtocolError as exc:
        assert isinstance(expected, str) and ERRORS[expected] in str(exc)
        return
    assert got == expected


# --- the reassembler's next-piece path ------------------------------------------------------


def reassembly_answer(
    reassembler: fragment_module.Reassembler, text: str, now: float
) -> str | None:
    try:
        return reassembler.add(text, now)
    except RemoteProtocolError as exc:
        return f"error: {exc}"
    except ValueError as exc:
        return f"ValueError: {exc}"


@st.composite
def fragment_streams(draw: st.DrawFn) -> list[tuple[str, float]]:
    """Fragments of a few messages from up to three senders (v2 and two v3
    instances), mostly in order and in sent form, with the damage a network
    or a peer can do: lost, repeated or swapped pieces, another header
    (case, receiver, n), pieces with ',', NUL, '?' or a marker, a missing
    final comma, and times that jump past the timeout or are not finite."""
    stream: list[tuple[str, float]] = []
    now = 0.0
    for _ in range(draw(st.integers(1, 4))):
        version, tag = draw(st.sampled_from([(2, 0), (3, 0x100), (3, 0xABCDEF01)]))
        count = draw(st.integers(1, 6))
        choices = st.sampled_from(["AAAA", "b+/=", "Zz9", "?OTR:", "x"])
        pieces = [draw(choices) for _ in range(count)]
        texts = [Fragment(version, tag, 0x2222 if version == 3 else 0, k, count, piece).encode()
                 for k, piece in enumerate(pieces, 1)]  # fmt: skip
        for text in texts:
            how = draw(st.sampled_from(["keep"] * 8 + ["drop", "twice", "swap", "mangle"]))
            if how == "drop":
                continue
            if how == "mangle":
                text = draw(
                    st.sampled_from([
                        text.upper(), text.replace("00002222", "00003333"), text[:-1],
                        text.replace(f",{count:05d},", f",{count + 1:05d},"),
                        text[:-1] + ",x,", text[:-1] + "\x00,", text[:-1] + "?,",
                        text[:-1] + "?OTR|,", text[:-1] + "?OTR,", text.replace(",", ",,", 1),
                    ])
                )  # fmt: skip
            now += draw(st.sampled_from([0.0, 0.5, 1.0, 150.0, -1.0]))
            when = draw(st.sampled_from([now] * 12 + [float("nan"), float("inf"), -float("inf")]))
            stream.append((text, when))
            if how == "twice":
                stream.append((text, when))
            elif how == "swap" and len(stream) > 1:
                stream[-1], stream[-2] = stream[-2], stream[-1]
    return stream


class GeneralReassembler(fragment_module.Reassembler):
    """A reassembler that takes every fragment the general way."""

    def add_next(self, text: str, now: float) -> str | None:
        return None


@given(fragment_streams(), st.booleans())
def test_the_next_piece_path_answers_as_the_general_one(
    stream: list[tuple[str, float]], small: bool
) -> None:
    limits = fragment_module.FragmentLimits(
        max_message_size=14 if small else 1000, max_pending=2 if small else 4, timeout=100.0
    )
    fast = fragment_module.Reassembler(limits)
    general = GeneralReassembler(limits)
    for text, now in stream:
        assert reassembly_answer(fast, text, now) == reassembly_answer(general, text, now)
        assert (fast.pending, fast.buffered) == (general.pending, general.buffered)


def test_next_pieces_take_the_fast_path() -> None:
    """The fragments we send are, after the first, taken without parsing."""
    message = "?OTR:" + "QUJD" * 200 + "."
    pieces = fragment_message(message, 100, version=3, sender_tag=0x100, receiver_tag=0x200)
    reassembler = fragment_module.Reassembler()
    assert reassembler.add_next(pieces[0], 0.0) is None  # nothing pending yet
    assert reassembler.add(pieces[0], 0.0) is None
    for piece in pieces[1:-1]:
        assert reassembler.add_next(piece, 1.0) == ""
    assert reassembler.add_next(pieces[-1], 1.0) == message
    assert reassembler.pending == 0


# --- base64 through pybase64 --------------------------------------------------------------

b64_alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="


@given(st.text(alphabet=b64_alphabet + "=-_ \n.é", max_size=70))
def test_pybase64_decodes_exactly_what_strict_binascii_would(body: str) -> None:
    # Anything pybase64 refuses falls back to binascii: whatever the body,
    # the answer is the reference's.
    expected = reference_decode_body(body + ".", 0)
    try:
        got: bytes | str = envelope_module._decode_body(body + ".", 0)
    except RemoteProtocolError as exc:
        assert isinstance(expected, str) and ERRORS[expected] in str(exc)
        return
    assert got == expected


@given(st.binary(min_size=1, max_size=3000))
def test_framing_equals_binascii_base64(binary: bytes) -> None:
    text = frame(binary)
    assert text == "?OTR:" + binascii.b2a_base64(binary, newline=False).decode() + "."
    assert encoded_payload(text) == binary
