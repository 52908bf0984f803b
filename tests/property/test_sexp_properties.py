"""Property tests: S-expression and libotr file round trips."""

from __future__ import annotations

import base64

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from offrecord.errors import StorageError
from offrecord.storage import sexp
from offrecord.storage.base import FingerprintRecord, InstanceTagRecord
from offrecord.storage.libotr import (
    format_fingerprints,
    format_instance_tags,
    parse_fingerprints,
    parse_instance_tags,
)
from offrecord.storage.sexp import Atom, Node, SList

atom_data = st.one_of(
    st.binary(max_size=40),
    st.text(alphabet="abcxyz019-./_:*+=", max_size=12).map(str.encode),  # token-like
    st.text(max_size=12).map(lambda s: s.encode("utf-8")),
)

trees: st.SearchStrategy[SList] = st.recursive(
    st.lists(atom_data.map(Atom), max_size=4).map(lambda items: SList(tuple(items))),
    lambda children: st.lists(st.one_of(atom_data.map(Atom), children), max_size=5).map(
        lambda items: SList(tuple(items))
    ),
    max_leaves=25,
)


@given(trees)
def test_advanced_round_trip(tree: SList) -> None:
    text = sexp.dumps(tree)
    assert sexp.parse(text) == tree
    assert sexp.dumps(sexp.parse(text)) == text


@given(trees)
def test_canonical_round_trip(tree: SList) -> None:
    assert sexp.parse(sexp.dumps_canonical(tree)) == tree


@given(st.binary(max_size=300))
def test_any_atom_round_trips(data: bytes) -> None:
    assert sexp.parse(b"(" + sexp.encode_atom(data) + b")").items == (Atom(data),)


# ---------------------------------------------------------------------------
# Every written form of an atom reads back as that atom

TOKEN_CHARS = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-./_:*+=\x00"
)

_ESCAPES = {
    0x08: [b"\\b", b"\\010", b"\\x08"],
    0x09: [b"\\t"],
    0x0B: [b"\\v"],
    0x0A: [b"\\n"],
    0x0C: [b"\\f"],
    0x0D: [b"\\r"],
    0x22: [b'\\"'],
    0x27: [b"\\'", b"'"],
    0x5C: [b"\\\\"],
}


@st.composite
def quoted(draw: st.DrawFn, data: bytes) -> bytes:
    out = bytearray(b'"')
    for byte in data:
        choices = [*_ESCAPES.get(byte, []), b"\\x%02x" % byte, b"\\x%02X" % byte, b"\\%03o" % byte]
        # A raw CR or LF could merge with a preceding line continuation
        # ("\\\r" + "\n" reads as one "\\\r\n" continuation, as in libgcrypt).
        if byte not in (0x22, 0x5C, 0x0A, 0x0D):
            choices.append(bytes([byte]))
        out += draw(st.sampled_from(choices))
        if draw(st.integers(0, 9)) == 0:
            out += draw(st.sampled_from([b"\\\n", b"\\\r", b"\\\r\n", b"\\\n\r"]))
    return bytes(out + b'"')


@st.composite
def hexed(draw: st.DrawFn, data: bytes) -> bytes:
    out = bytearray(b"#")
    for digit in data.hex():
        out += draw(st.sampled_from([digit.upper(), digit.lower()])).encode()
        out += draw(st.sampled_from([b"", b"", b"", b" ", b"\n", b"\t\r"]))
    return bytes(out + b"#")


@st.composite
def written_atom(draw: st.DrawFn, data: bytes) -> bytes:
    forms = [quoted(data), hexed(data), st.just(b"|" + base64.b64encode(data) + b"|")]
    if data:
        forms.append(st.just(b"%d:" % len(data) + data))
    if data and data[0] not in b"0123456789" and all(b in TOKEN_CHARS for b in data):
        forms.append(st.just(data))
    text = draw(st.one_of(forms))
    if text[:1] in (b'"', b"#", b"|") and draw(st.booleans()):
        text = b"%d" % draw(st.integers(1, 999)) + text  # an ignored length prefix
    return text


@st.composite
def written_tree(draw: st.DrawFn, depth: int = 0) -> tuple[bytes, SList]:
    items: list[Node] = []
    parts: list[bytes] = []
    for _ in range(draw(st.integers(0, 4))):
        if depth < 4 and draw(st.integers(0, 3)) == 0:
            text, child = draw(written_tree(depth + 1))
            items.append(child)
            parts.append(text)
        else:
            data = draw(atom_data)
            text = draw(written_atom(data))
            if draw(st.integers(0, 7)) == 0:
                text = b"[" + text + b"]"
            items.append(Atom(data))
            parts.append(text)
    # whitespace is only needed between two atoms that would run together
    out = bytearray(b"(")
    for part in parts:
        out += draw(st.sampled_from([b" ", b"\n", b"\t ", b"\r\n", b"\v\f"]))
        out += part
    out += draw(st.sampled_from([b"", b" ", b"\n"])) + b")"
    return bytes(out), SList(tuple(items))


@given(written_tree())
def test_every_written_form_parses(case: tuple[bytes, SList]) -> None:
    text, expected = case
    assert sexp.parse(text) == expected


# ---------------------------------------------------------------------------
# Arbitrary input: a result or StorageError, and a result always re-serialises


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_arbitrary_bytes(data: bytes) -> None:
    try:
        tree = sexp.parse(data)
    except StorageError as exc:
        assert exc.line is not None and exc.line >= 1
        return
    assert sexp.parse(sexp.dumps(tree)) == tree


# ---------------------------------------------------------------------------
# libotr's line files

names = st.text(
    alphabet=st.characters(exclude_characters="\t\n\r\x00", exclude_categories=["Cs"]),
    min_size=1,
    max_size=20,
)
trusts = st.one_of(
    st.sampled_from(["", "verified", "smp"]),
    st.text(
        alphabet=st.characters(exclude_characters="\n\r\x00", exclude_categories=["Cs"]),
        max_size=20,
    ),
)
fingerprint_records = st.builds(
    FingerprintRecord, names, names, names, st.binary(min_size=20, max_size=20), trusts
)


@given(st.lists(fingerprint_records, max_size=8))
def test_fingerprint_file_round_trip(records: list[FingerprintRecord]) -> None:
    keys = [(r.username, r.account, r.protocol, r.fingerprint) for r in records]
    assume(len(set(keys)) == len(keys))
    data = format_fingerprints(records)
    assert parse_fingerprints(data) == tuple(records)
    assert format_fingerprints(parse_fingerprints(data)) == data


@given(
    st.lists(st.builds(InstanceTagRecord, names, names, st.integers(0x100, 0xFFFFFFFF)), max_size=8)
)
def test_instance_tag_file_round_trip(records: list[InstanceTagRecord]) -> None:
    data = format_instance_tags(records)
    assert parse_instance_tags(data) == tuple(records)
    assert format_instance_tags(parse_instance_tags(data)) == data
