"""The fuzz targets: one plain function per parser or entry point, taking bytes.

Contract, for every target: the code under test returns a result (events for
the protocol entry points) or raises :class:`RemoteProtocolError` for network
input / :class:`StorageError` for file input — nothing else, ever.  Each
target also checks what it can about the result (round trips, structural
bounds such as the reassembler's pending size).  A target returns normally
when everything held; any exception escaping it is a finding.

Inputs that stand for text are decoded from UTF-8 with ``surrogateescape``, so
every byte string is a possible input.  Targets that take several messages
split their input on ``\\x1e`` (see :mod:`fuzz.conversation`).
"""

from __future__ import annotations

import atexit
import base64
import binascii
import copy
import functools
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from fuzz.conversation import PEER, RECEIVER, SEPARATOR, PrefixCache, receiver_key, run_ops
from offrecord import events as ev
from offrecord.errors import RemoteProtocolError, StorageError
from offrecord.smp import SMP_TLV_TYPES
from offrecord.storage import potr, sexp
from offrecord.storage.libotr import (
    format_fingerprints,
    format_instance_tags,
    format_private_keys,
    parse_fingerprints,
    parse_instance_tags,
    parse_private_keys,
)
from offrecord.storage.memory import MemoryStore
from offrecord.wire.codec import encode_short
from offrecord.wire.envelope import MAX_ENCODED_LEN, Incoming, Kind, classify, frame
from offrecord.wire.fragment import (
    Fragment,
    FragmentLimits,
    Reassembler,
    is_fragment,
    parse_fragment,
)
from offrecord.wire.messages import (
    DataMessage,
    EncodedMessage,
    MessageType,
    decode_message,
    encode_message,
    peek_header,
)
from offrecord.wire.tlv import TLV, decode_tlvs, encode_tlvs, split_plaintext

__all__ = [
    "TARGETS",
    "Target",
    "add_fragment_checked",
    "check_reassembler_bounds",
    "join_records",
    "split_records",
]

Target = Callable[[bytes], None]
TARGETS: dict[str, Target] = {}


def target(name: str) -> Callable[[Target], Target]:
    def register(fn: Target) -> Target:
        TARGETS[name] = fn
        return fn

    return register


def text(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def split_records(data: bytes) -> list[bytes]:
    """Binary records: a 2-byte big-endian length, then that many bytes (the
    last record takes what is left when the length runs past the end)."""
    out = []
    while data:
        length = int.from_bytes(data[:2], "big")
        out.append(data[2 : 2 + length])
        data = data[2 + length :]
    return out


def join_records(records: list[bytes]) -> bytes:
    return b"".join(len(r).to_bytes(2, "big") + r for r in records)


# -- network parsers ---------------------------------------------------------


@target("envelope_classify")
def envelope_classify(data: bytes) -> None:
    """Message classification (wire/envelope.py) of any text."""
    message = text(data)
    try:
        incoming = classify(message)
    except RemoteProtocolError:
        assert "?OTR:" in message
        return
    assert isinstance(incoming, Incoming)
    if incoming.kind is Kind.ENCODED:
        assert "?OTR:" in message
        assert len(incoming.payload) <= MAX_ENCODED_LEN * 3 // 4
        assert classify(frame(incoming.payload)).payload == incoming.payload
    elif incoming.kind is Kind.FRAGMENT:
        assert is_fragment(message)
    elif incoming.kind in (Kind.PLAINTEXT, Kind.TAGGED_PLAINTEXT):
        assert "?OTR" not in message
    assert incoming.offered() <= {2, 3}


@target("envelope_base64")
def envelope_base64(data: bytes) -> None:
    """The ``?OTR:...`` framing, checked against the standard library's strict
    base64 decoder on the same body (whitespace is skipped, as libotr does)."""
    body = text(data)
    end = body.find(".")
    try:
        payload = classify("?OTR:" + body).payload
    except RemoteProtocolError:
        payload = None
    if end < 0:
        assert payload is None
        return
    compact = "".join(body[:end].split())
    try:
        expected: bytes | None = base64.b64decode(compact.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        expected = None
    if not compact or len(compact) > MAX_ENCODED_LEN:
        expected = None
    if expected is not None and payload is None:
        raise AssertionError("valid base64 was refused")
    if payload is not None:
        # Our decoder is strict: what it accepts, the reference decodes the same.
        assert payload == expected


def _check_message(raw: bytes) -> EncodedMessage | None:
    try:
        header = peek_header(raw)
    except RemoteProtocolError:
        header = None
    try:
        msg = decode_message(raw)
    except RemoteProtocolError:
        return None
    assert header == (msg.version, int(msg.type), msg.sender_tag, msg.receiver_tag)
    encoded = encode_message(msg)
    assert decode_message(encoded) == msg
    # Only MPIs may differ (leading zero bytes are accepted, never written).
    assert len(encoded) <= len(raw)
    if isinstance(msg, DataMessage):
        assert encoded.startswith(msg.authenticated_part())
    return msg


@target("message")
def message(data: bytes) -> None:
    """Any encoded message's binary form (decode_message)."""
    _check_message(data)


def _typed_message(kind: MessageType) -> Target:
    def fuzz_one_type(data: bytes) -> None:
        # First byte: bit 0 picks v3 (then 8 bytes of instance tags) or v2.
        if not data:
            return
        if data[0] & 1:
            header = encode_short(3) + bytes((kind,)) + data[1:9]
            body = data[9:]
        else:
            header, body = encode_short(2) + bytes((kind,)), data[1:]
        msg = _check_message(header + body)
        if msg is not None:
            assert msg.type == kind

    fuzz_one_type.__doc__ = f"The body of a {kind.name} message, v2 or v3 header."
    return fuzz_one_type


for _kind in MessageType:
    TARGETS[f"message_{_kind.name.lower()}"] = _typed_message(_kind)


@target("tlv")
def tlv(data: bytes) -> None:
    """TLV records, alone and after a decrypted message's NUL."""
    try:
        records = decode_tlvs(data)
    except RemoteProtocolError:
        records = None
    if records is not None:
        assert encode_tlvs(records) == data
        assert all(isinstance(r, TLV) for r in records)
    try:
        body, split = split_plaintext(data)
    except RemoteProtocolError:
        return
    assert b"\x00" not in body
    if len(body) < len(data):
        assert encode_tlvs(split) == data[len(body) + 1 :]


# -- SMP ----------------------------------------------------------------------

_SMP_TYPES = sorted(SMP_TLV_TYPES)


@functools.cache
def _smp_states() -> list[object]:
    from tests.fuzz.test_smp_fuzz import prepared

    snaps, _ = prepared()
    return [snaps[state] for state in sorted(snaps, key=lambda s: s.name)]


def _smp_tlv_of(record: bytes) -> TLV:
    kind = _SMP_TYPES[record[0] % len(_SMP_TYPES)] if record else _SMP_TYPES[0]
    return TLV(kind, record[1 : 1 + 0xFFFF])


@target("smp_tlv")
def smp_tlv(data: bytes) -> None:
    """One SMP TLV (first byte: type) received in each state of a real run
    (second byte: state); SMP.receive must turn any problem into an outcome."""
    from offrecord.smp import SMP
    from tests.fuzz.test_smp_fuzz import check

    states = _smp_states()
    if len(data) < 2:
        return
    smp = copy.deepcopy(states[data[1] % len(states)])
    assert isinstance(smp, SMP)
    tlv_in = _smp_tlv_of(data[:1] + data[2:])
    before = smp.state
    check(before, tlv_in, smp.receive(tlv_in), smp)


@target("smp_sequence")
def smp_sequence(data: bytes) -> None:
    """A run of SMP TLVs (length-prefixed records: type byte + payload) from a state of a real
    run (first byte); with bit 7 of the first byte set, a fresh SMP must
    then still succeed in both roles."""
    from offrecord.smp import SMP
    from tests.fuzz.test_smp_fuzz import check, fresh_run_succeeds

    states = _smp_states()
    if not data:
        return
    smp = copy.deepcopy(states[data[0] % len(states)])
    assert isinstance(smp, SMP)
    for record in split_records(data[1:])[:16]:
        tlv_in = _smp_tlv_of(record)
        before = smp.state
        check(before, tlv_in, smp.receive(tlv_in), smp)
    if data[0] & 0x80:
        # Two whole SMP runs cost far more than the rest: only on request.
        fresh_run_succeeds(smp)


# -- fragments -----------------------------------------------------------------


@target("fragment_parse")
def fragment_parse(data: bytes) -> None:
    """One fragment, as bytes and as text (v2 ``?OTR,`` and v3 ``?OTR|``)."""
    for candidate in (data, text(data)):
        classified = is_fragment(candidate)
        try:
            fragment = parse_fragment(candidate)
        except RemoteProtocolError:
            continue
        assert classified
        assert isinstance(fragment, Fragment)
        assert 0 < fragment.k <= fragment.n <= 0xFFFF
        assert fragment.piece and "," not in fragment.piece
        assert parse_fragment(fragment.encode()) == fragment


def check_reassembler_bounds(reassembler: Reassembler, limits: FragmentLimits) -> None:
    """A reassembler never holds more than its limits allow."""
    assert reassembler.pending <= limits.max_pending
    assert reassembler.buffered <= limits.max_pending * limits.max_message_size


def add_fragment_checked(
    reassembler: Reassembler, fragment: str | bytes, now: float, limits: FragmentLimits
) -> None:
    """Add one piece of network input: a message comes out whole and within the
    size limit, or the input is refused with RemoteProtocolError; either way
    the reassembler stays bounded.  Shared with the Hypothesis fuzz tests."""
    try:
        result = reassembler.add(fragment, now)
    except RemoteProtocolError:
        pass
    else:
        if result is not None:
            assert len(result) <= limits.max_message_size
            assert not is_fragment(result)
    check_reassembler_bounds(reassembler, limits)


_SMALL_LIMITS = FragmentLimits(max_message_size=512, max_pieces=64, max_pending=3, timeout=5.0)


class _GeneralReassembler(Reassembler):
    """Takes every fragment the general way (no next-piece path)."""

    def add_next(self, text: str, now: float) -> str | None:
        return None


def _answer(reassembler: Reassembler, fragment: str, now: float) -> tuple[str, str | None]:
    try:
        return "added", reassembler.add(fragment, now)
    except RemoteProtocolError as exc:
        return "refused", str(exc)


@target("fragment_reassembly")
def fragment_reassembly(data: bytes) -> None:
    """Many fragments into one reassembler (first byte: limits; records: a
    time step byte, then the fragment); it stays within its limits, and one
    without the next-piece path answers every fragment alike."""
    if not data:
        return
    limits = _SMALL_LIMITS if data[0] & 1 else FragmentLimits()
    reassembler = Reassembler(limits)
    general = _GeneralReassembler(limits)
    now = 0.0
    for record in data[1:].split(SEPARATOR):
        if not record:
            continue
        now += record[0] / 16
        fragment = text(record[1:])
        if not is_fragment(fragment):
            reassembler.note_unfragmented(fragment)
            general.note_unfragmented(fragment)
            continue
        outcome, result = _answer(reassembler, fragment, now)
        assert (outcome, result) == _answer(general, fragment, now)
        if outcome == "added" and result is not None:
            assert len(result) <= limits.max_message_size
            assert not is_fragment(result)
        check_reassembler_bounds(reassembler, limits)
        assert (reassembler.pending, reassembler.buffered) == (general.pending, general.buffered)


# -- whole conversations ----------------------------------------------------------


_PREFIXES = PrefixCache()


@target("account")
def account(data: bytes) -> None:
    """``Account.receive`` as a whole: a scripted conversation against a
    deterministic receiver (fuzz/conversation.py); only events come out."""
    receiver_key()
    for _op, events in run_ops(data, _PREFIXES):
        assert all(isinstance(e, ev.Event) for e in events)


@functools.cache
def _checkpoints() -> list[int]:
    from tests.fuzz.test_receive_fuzz import ENCODED

    return list(ENCODED)


@target("session")
def session(data: bytes) -> None:
    """One binary encoded message delivered in each state of the stored v3
    transcript (first byte: which state).  Only events come out; nothing
    in plain text goes out; and when every event says the message was
    rejected, the state is unchanged (the genuine message still works)."""
    from tests.fuzz.test_receive_fuzz import feed

    points = _checkpoints()
    if not data:
        return
    feed(points[data[0] % len(points)], frame(data[1:]))


@functools.cache
def _ake_signature_setup() -> tuple[bytes, bytes, bytes, int, int]:
    """Fixed AKE keys (m1, c, m2) and D-H public values for ``ake_signature``."""
    from offrecord.crypto.dh import MODULUS

    m1, c, m2 = bytes(range(32)), bytes(range(100, 116)), bytes(range(50, 82))
    return m1, c, m2, MODULUS // 3, MODULUS // 5


@target("ake_signature")
def ake_signature(data: bytes) -> None:
    """The signed part of Reveal Signature and Signature (PUBKEY, key id,
    signature), as a peer that knows the AKE keys can send anything there:
    the input is the plaintext, encrypted and MACed here with fixed keys."""
    from offrecord.ake import _ZERO_CTR, AKE
    from offrecord.crypto.dsa import DSAPublicKey
    from offrecord.crypto.primitives import aes_ctr, hmac_sha256_160
    from offrecord.wire.codec import encode_data

    m1, c, m2, theirs, ours = _ake_signature_setup()
    encrypted = aes_ctr(c, _ZERO_CTR, data)
    mac = hmac_sha256_160(m2, encode_data(encrypted))
    try:
        key, fingerprint, keyid = AKE._verify_signed_part(encrypted, mac, m1, c, m2, theirs, ours)
    except RemoteProtocolError:
        return
    assert isinstance(key, DSAPublicKey)
    assert fingerprint == key.fingerprint() and keyid > 0


@functools.cache
def _encrypted_pair() -> object:
    from fuzz.seeds import Scenario

    scenario = Scenario(0, seed="plaintext")
    scenario.alice_does(lambda a: a.conversation(RECEIVER).start())
    scenario.bob.record = True
    assert scenario.bob.account.conversation(PEER).state.value == "encrypted"
    return scenario


@target("peer_plaintext")
def peer_plaintext(data: bytes) -> None:
    """What an authenticated peer can put inside data messages: any plaintext
    (text, NUL, TLVs, SMP TLVs with any payload) and flags, encrypted with
    the real session keys (length-prefixed records: flags byte, then the
    plaintext).  Only
    events come out, and the text shown is the text that was sent."""
    from fuzz.seeds import Scenario

    template = _encrypted_pair()
    if not data:
        return
    scenario = copy.deepcopy(template)
    assert isinstance(scenario, Scenario)
    for record in split_records(data)[:16]:
        flags, plaintext = record[:1] or b"\x00", record[1:]
        alice = scenario.alice.conversation(RECEIVER).best_session()
        keys = alice._keys
        if keys is None:  # bob ended the conversation
            return
        msg, _ = keys.encrypt(
            plaintext, flags=flags[0], sender_tag=alice._owner.instance_tag,
            receiver_tag=alice.their_instance,
        )  # fmt: skip
        was_encrypted = scenario.bob.account.conversation(PEER).state.value == "encrypted"
        events = scenario.bob.apply(b"<" + frame(encode_message(msg)).encode("ascii"))
        shown = [e for e in events if isinstance(e, ev.MessageReceived)]
        body = plaintext.partition(b"\x00")[0]
        if was_encrypted and body:
            assert len(shown) == 1, "a message sent with the session keys was not shown"
        for event in shown:
            assert event.encrypted
            assert event.text == body.decode("utf-8", "replace")
        # Keep alice's keys in step with bob's replies (new D-H keys, SMP).
        for text in scenario.bob.take_sent():
            scenario.alice.receive(RECEIVER, text)
        scenario.alice.data_to_send()


# -- files ----------------------------------------------------------------------


def _storage(parse: Callable[[bytes], object], data: bytes, path: str) -> object | None:
    try:
        return parse(data)
    except StorageError as exc:
        assert exc.path == path, f"StorageError names {exc.path!r}, not {path!r}"
        return None


@target("sexp")
def sexp_parse(data: bytes) -> None:
    """The S-expression parser (libgcrypt's advanced and canonical forms)."""
    tree = _storage(lambda d: sexp.parse(d, path="f"), data, "f")
    if tree is not None:
        assert isinstance(tree, sexp.SList)
        assert sexp.parse(sexp.dumps(tree)) == tree
        assert sexp.parse(sexp.dumps_canonical(tree)) == tree


@target("private_keys")
def private_keys(data: bytes) -> None:
    """The ``otr.private_key`` reader."""
    entries = _storage(lambda d: parse_private_keys(d, path="k"), data, "k")
    if entries is not None:
        assert isinstance(entries, tuple)
        assert parse_private_keys(format_private_keys(entries)) == entries


@target("fingerprints")
def fingerprints(data: bytes) -> None:
    """The ``otr.fingerprints`` reader."""
    records = _storage(lambda d: parse_fingerprints(d, path="f"), data, "f")
    if records is not None:
        assert isinstance(records, tuple)
        assert all(len(r.fingerprint) == 20 for r in records)
        assert parse_fingerprints(format_fingerprints(records)) == records


@target("instance_tags")
def instance_tags(data: bytes) -> None:
    """The ``otr.instance_tags`` reader."""
    records = _storage(lambda d: parse_instance_tags(d, path="t"), data, "t")
    if records is not None:
        assert isinstance(records, tuple)
        assert parse_instance_tags(format_instance_tags(records)) == records


@target("potr_key3")
def potr_key3(data: bytes) -> None:
    """A potr ``.key3`` private key."""
    _storage(lambda d: potr.parse_key3(d, path="k3"), data, "k3")


@target("potr_fpr")
def potr_fpr(data: bytes) -> None:
    """A potr ``.fpr`` fingerprint file."""
    records = _storage(lambda d: potr.parse_fpr(d, path="fpr"), data, "fpr")
    if records is not None:
        assert isinstance(records, tuple)
        assert all(len(r.fingerprint) == 20 for r in records)


@functools.cache
def _scratch() -> Path:
    directory = Path(tempfile.mkdtemp(prefix="offrecord-fuzz-"))
    atexit.register(shutil.rmtree, directory, True)
    return directory


@target("potr_import")
def potr_import(data: bytes) -> None:
    """``import_potr_account`` from a ``.key3`` and a ``.fpr`` file (the input
    split at the first record separator) into an empty store."""
    key3, _, fpr = data.partition(SEPARATOR)
    directory = _scratch()
    (directory / "me.key3").write_bytes(key3)
    (directory / "me.fpr").write_bytes(fpr)
    store = MemoryStore()
    try:
        result = potr.import_potr_account(store, directory, "me", protocol="xmpp")
    except StorageError as exc:
        assert exc.path is not None and exc.path.startswith(str(directory))
        assert store.list_key_accounts() == ()
        return
    assert result.key_imported == (store.get_private_key("me", "xmpp") is not None)
    assert result.fingerprints_added == len(store.list_fingerprints("me", "xmpp"))
