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

from fuzz.conversation import SEPARATOR, PrefixCache, receiver_key, run_ops
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

__all__ = ["TARGETS", "Target"]

Target = Callable[[bytes], None]
TARGETS: dict[str, Target] = {}


def target(name: str) -> Callable[[Target], Target]:
    def register(fn: Target) -> Target:
        TARGETS[name] = fn
        return fn

    return register


def text(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


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
    """A run of SMP TLVs (records: type byte + payload) from a state of a real
    run (first byte); afterwards a fresh SMP must still succeed."""
    from offrecord.smp import SMP
    from tests.fuzz.test_smp_fuzz import check, fresh_run_succeeds

    states = _smp_states()
    if not data:
        return
    smp = copy.deepcopy(states[data[0] % len(states)])
    assert isinstance(smp, SMP)
    for record in data[1:].split(SEPARATOR)[:16]:
        tlv_in = _smp_tlv_of(record)
        before = smp.state
        check(before, tlv_in, smp.receive(tlv_in), smp)
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


_SMALL_LIMITS = FragmentLimits(max_message_size=512, max_pieces=64, max_pending=3, timeout=5.0)


@target("fragment_reassembly")
def fragment_reassembly(data: bytes) -> None:
    """Many fragments into one reassembler (first byte: limits; records: a
    time step byte, then the fragment); it stays within its limits."""
    if not data:
        return
    limits = _SMALL_LIMITS if data[0] & 1 else FragmentLimits()
    reassembler = Reassembler(limits)
    now = 0.0
    for record in data[1:].split(SEPARATOR):
        if not record:
            continue
        now += record[0] / 16
        fragment = text(record[1:])
        if not is_fragment(fragment):
            reassembler.note_unfragmented(fragment)
            continue
        try:
            result = reassembler.add(fragment, now)
        except RemoteProtocolError:
            pass
        else:
            if result is not None:
                assert len(result) <= limits.max_message_size
                assert not is_fragment(result)
        assert reassembler.pending <= limits.max_pending
        assert reassembler.buffered <= limits.max_pending * limits.max_message_size


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
