"""Fuzz properties for the storage readers.

Contract: whatever a file contains, every reader returns a result or raises
StorageError (with the file named) — nothing else; what it returns can be
written back and read again unchanged; and a store never writes over a file
it could not read.
"""

from __future__ import annotations

import random
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from offrecord.crypto.dsa import generate_private_key
from offrecord.errors import StorageError
from offrecord.storage import potr, sexp
from offrecord.storage.base import FingerprintRecord, InstanceTagRecord
from offrecord.storage.libotr import (
    INSTANCE_TAGS_HEADER,
    LibotrStore,
    PrivateKeyEntry,
    format_fingerprints,
    format_instance_tags,
    format_private_keys,
    parse_fingerprints,
    parse_instance_tags,
    parse_private_keys,
)

KEY = generate_private_key(random.Random(99).randbytes)
FP = bytes(range(20))

SEEDS: dict[str, bytes] = {
    "keys": format_private_keys(
        [
            PrivateKeyEntry("alice@example.org", "prpl-jabber", KEY),
            PrivateKeyEntry("bob", "prpl-irc", KEY),
        ]
    ),
    "fingerprints": format_fingerprints(
        [
            FingerprintRecord("bob", "alice", "prpl-jabber", FP, "verified"),
            FingerprintRecord("carol", "alice", "prpl-jabber", FP[::-1], ""),
        ]
    ),
    "tags": format_instance_tags([InstanceTagRecord("alice", "prpl-jabber", 0x12345678)]),
    "key3": b"\x00\x00"
    + b"".join(
        len(raw).to_bytes(4, "big") + raw
        for raw in (
            v.to_bytes((v.bit_length() + 7) // 8, "big")
            for v in (KEY.p, KEY.q, KEY.g, KEY.y, KEY.x)
        )
    ),
    "fpr": b"bob\talice\txmpp\t" + FP.hex().encode() + b"\tsmp\n",
}


@st.composite
def mutated(draw: st.DrawFn, seed: bytes) -> bytes:
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.integers(0, 4))
        position = draw(st.integers(0, len(data)))
        if kind == 0 and data:  # flip a byte
            index = min(position, len(data) - 1)
            data[index] = draw(st.integers(0, 255))
        elif kind == 1:  # truncate
            del data[position:]
        elif kind == 2:  # insert
            data[position:position] = draw(
                st.one_of(
                    st.binary(max_size=8),
                    st.sampled_from([b"(", b")", b"\t", b"\n", b'"', b"#", b"|", b"\x00"]),
                )
            )
        elif kind == 3:  # delete a span
            del data[position : position + draw(st.integers(1, 16))]
        else:  # duplicate a span
            data[position:position] = data[position : position + draw(st.integers(1, 64))]
    return bytes(data)


def inputs(seed: bytes) -> st.SearchStrategy[bytes]:
    return st.one_of(st.binary(max_size=300), mutated(seed))


def check(parse: Callable[[bytes], Any], data: bytes, path: str) -> Any:
    try:
        return parse(data)
    except StorageError as exc:
        assert exc.path == path
        return None


@settings(max_examples=400)
@given(inputs(SEEDS["keys"]))
def test_sexp_parser(data: bytes) -> None:
    tree = check(lambda d: sexp.parse(d, path="f"), data, "f")
    if tree is not None:
        assert sexp.parse(sexp.dumps(tree)) == tree
        assert sexp.parse(sexp.dumps_canonical(tree)) == tree


@settings(max_examples=300, deadline=None)
@given(inputs(SEEDS["keys"]))
def test_private_key_reader(data: bytes) -> None:
    entries = check(lambda d: parse_private_keys(d, path="k"), data, "k")
    if entries is not None:
        assert parse_private_keys(format_private_keys(entries)) == entries


@settings(max_examples=400)
@given(inputs(SEEDS["fingerprints"]))
def test_fingerprint_reader(data: bytes) -> None:
    records = check(lambda d: parse_fingerprints(d, path="f"), data, "f")
    if records is not None:
        assert parse_fingerprints(format_fingerprints(records)) == records


@settings(max_examples=400)
@given(
    st.one_of(inputs(SEEDS["tags"]), st.binary(max_size=64).map(lambda b: INSTANCE_TAGS_HEADER + b))
)
def test_instance_tag_reader(data: bytes) -> None:
    records = check(lambda d: parse_instance_tags(d, path="t"), data, "t")
    if records is not None:
        assert parse_instance_tags(format_instance_tags(records)) == records


@settings(max_examples=300, deadline=None)
@given(inputs(SEEDS["key3"]))
def test_key3_reader(data: bytes) -> None:
    check(lambda d: potr.parse_key3(d, path="k3"), data, "k3")


@settings(max_examples=300)
@given(inputs(SEEDS["fpr"]))
def test_fpr_reader(data: bytes) -> None:
    check(lambda d: potr.parse_fpr(d, path="fpr"), data, "fpr")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(["otr.private_key", "otr.fingerprints", "otr.instance_tags"]),
    st.data(),
)
def test_store_never_overwrites_what_it_cannot_read(name: str, draw: st.DataObject) -> None:
    seed = {
        "otr.private_key": "keys",
        "otr.fingerprints": "fingerprints",
        "otr.instance_tags": "tags",
    }[name]
    data = draw.draw(inputs(SEEDS[seed]))
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / name
        path.write_bytes(data)
        store = LibotrStore(directory)
        write: Callable[[], object] = {
            "otr.private_key": lambda: store.save_private_key("new", "proto", KEY),
            "otr.fingerprints": lambda: store.add_fingerprint("new", "proto", "peer", FP[::-1]),
            "otr.instance_tags": lambda: store.save_instance_tag("new", "proto", 0x100),
        }[name]
        try:
            write()
        except StorageError as exc:
            assert exc.path == str(path)
            assert path.read_bytes() == data
        else:
            parsers: dict[str, Callable[[bytes], Any]] = {
                "otr.private_key": parse_private_keys,
                "otr.fingerprints": parse_fingerprints,
                "otr.instance_tags": parse_instance_tags,
            }
            assert parsers[name](path.read_bytes())
