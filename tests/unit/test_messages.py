"""Unit tests for offrecord.wire.messages: the five encoded messages, v2 and v3,
their exact byte layout, and every structural check of the decoder."""

from __future__ import annotations

import struct

import pytest

from offrecord.crypto.dh import MODULUS
from offrecord.errors import RemoteProtocolError
from offrecord.wire.messages import (
    FLAG_IGNORE_UNREADABLE,
    DataMessage,
    DHCommit,
    DHKey,
    EncodedMessage,
    MessageType,
    RevealSignature,
    Signature,
    decode_message,
    encode_message,
    peek_header,
)

P = MODULUS
SENDER = 0x12345678
RECEIVER = 0x9ABCDEF0
GY = pow(2, 12345, P)
NEXT_DH = pow(2, 54321, P)


def u8(v: int) -> bytes:
    return struct.pack(">B", v)


def u16(v: int) -> bytes:
    return struct.pack(">H", v)


def u32(v: int) -> bytes:
    return struct.pack(">I", v)


def mpi(v: int) -> bytes:
    raw = v.to_bytes((v.bit_length() + 7) // 8, "big")
    return u32(len(raw)) + raw


def data(b: bytes) -> bytes:
    return u32(len(b)) + b


def header(version: int, kind: int, sender: int = SENDER, receiver: int = RECEIVER) -> bytes:
    head = u16(version) + u8(kind)
    return head + (u32(sender) + u32(receiver) if version == 3 else b"")


def tags(version: int) -> tuple[int, int, int]:
    return (version, SENDER, RECEIVER) if version == 3 else (version, 0, 0)


def samples(version: int) -> list[tuple[EncodedMessage, bytes]]:
    """Each message type, with its encoding written out by hand from the spec."""
    t = tags(version)
    return [
        (
            DHCommit(*t, encrypted_gx=b"E" * 196, hashed_gx=b"H" * 32),
            header(version, 0x02) + data(b"E" * 196) + data(b"H" * 32),
        ),
        (DHKey(*t, gy=GY), header(version, 0x0A) + mpi(GY)),
        (
            RevealSignature(
                *t, revealed_key=b"r" * 16, encrypted_signature=b"S" * 480, mac=b"M" * 20
            ),
            header(version, 0x11) + data(b"r" * 16) + data(b"S" * 480) + b"M" * 20,
        ),
        (
            Signature(*t, encrypted_signature=b"s" * 480, mac=b"m" * 20),
            header(version, 0x12) + data(b"s" * 480) + b"m" * 20,
        ),
        (
            DataMessage(
                *t,
                flags=FLAG_IGNORE_UNREADABLE,
                sender_keyid=3,
                recipient_keyid=7,
                next_dh=NEXT_DH,
                counter=b"\x00" * 7 + b"\x05",
                encrypted=b"ciphertext",
                mac=b"A" * 20,
                old_mac_keys=b"K" * 40,
            ),
            header(version, 0x03)
            + u8(1)
            + u32(3)
            + u32(7)
            + mpi(NEXT_DH)
            + b"\x00" * 7
            + b"\x05"
            + data(b"ciphertext")
            + b"A" * 20
            + data(b"K" * 40),
        ),
    ]


ALL = [(v, i) for v in (2, 3) for i in range(5)]
IDS = [f"v{v}-{MessageType(samples(v)[i][0].type).name}" for v, i in ALL]


# --- round trips and layout ------------------------------------------------------


@pytest.mark.parametrize(("version", "index"), ALL, ids=IDS)
def test_encoding_matches_the_spec_layout(version: int, index: int) -> None:
    msg, expected = samples(version)[index]
    assert encode_message(msg) == expected


@pytest.mark.parametrize(("version", "index"), ALL, ids=IDS)
def test_decode_inverts_encode(version: int, index: int) -> None:
    msg, encoded = samples(version)[index]
    decoded = decode_message(encoded)
    assert decoded == msg
    assert type(decoded) is type(msg)
    assert encode_message(decoded) == encoded


@pytest.mark.parametrize(("version", "index"), ALL, ids=IDS)
def test_peek_header(version: int, index: int) -> None:
    msg, encoded = samples(version)[index]
    assert peek_header(encoded) == (version, msg.type, msg.sender_tag, msg.receiver_tag)


def test_version_2_has_no_instance_tags_and_ignores_them_on_encode() -> None:
    msg = DHKey(2, SENDER, RECEIVER, GY)
    assert encode_message(msg) == b"\x00\x02\x0a" + mpi(GY)
    assert decode_message(encode_message(msg)) == DHKey(2, 0, 0, GY)


def test_data_message_authenticated_part_stops_after_the_ciphertext() -> None:
    msg, encoded = samples(3)[4]
    assert isinstance(msg, DataMessage)
    part = msg.authenticated_part()
    assert encoded.startswith(part)
    assert encoded[len(part) :] == b"A" * 20 + data(b"K" * 40)
    assert msg.ignore_unreadable
    assert not DataMessage(3, 1, 1, 0, 1, 1, GY, b"\x00" * 8, b"", b"A" * 20, b"").ignore_unreadable


@pytest.mark.parametrize("version", [0, 1, 4, 0x0300])
def test_encoding_an_unsupported_version_is_refused(version: int) -> None:
    with pytest.raises(ValueError):
        encode_message(DHKey(version, SENDER, RECEIVER, GY))


# --- structural checks -------------------------------------------------------------


def commit_body(gx: bytes = b"E" * 196, hashed: bytes = b"H" * 32) -> bytes:
    return data(gx) + data(hashed)


def reveal_body(r: bytes = b"r" * 16, sig: bytes = b"S" * 480, mac: bytes = b"M" * 20) -> bytes:
    return data(r) + data(sig) + mac


def data_body(
    *,
    flags: bytes = b"\x00",
    sender_keyid: int = 1,
    recipient_keyid: int = 1,
    next_dh: bytes = mpi(NEXT_DH),
    ctr: bytes = b"\x00" * 7 + b"\x01",
    encrypted: bytes = data(b"x"),
    mac: bytes = b"A" * 20,
    old: bytes = data(b""),
) -> bytes:
    return flags + u32(sender_keyid) + u32(recipient_keyid) + next_dh + ctr + encrypted + mac + old


BAD_BODIES: list[tuple[str, int, bytes, str]] = [
    # (id, type, body after the header, expected error)
    ("commit-hash-31", 0x02, commit_body(hashed=b"H" * 31), "not 32 bytes"),
    ("commit-hash-33", 0x02, commit_body(hashed=b"H" * 33), "not 32 bytes"),
    ("commit-hash-huge", 0x02, commit_body(hashed=b"H" * 65), "too long"),
    ("commit-gx-huge", 0x02, commit_body(gx=b"E" * 1025), "too long"),
    ("commit-truncated", 0x02, commit_body()[:-1], "truncated"),
    ("commit-no-hash", 0x02, data(b"E" * 196), "truncated"),
    ("commit-trailing", 0x02, commit_body() + b"\x00", "trailing"),
    ("dhkey-0", 0x0A, mpi(0), "out of range"),
    ("dhkey-1", 0x0A, mpi(1), "out of range"),
    ("dhkey-p-1", 0x0A, mpi(P - 1), "out of range"),
    ("dhkey-p", 0x0A, mpi(P), "out of range"),
    ("dhkey-p+1", 0x0A, mpi(P + 1), "out of range"),
    ("dhkey-2^1600", 0x0A, mpi(1 << 1600), "out of range"),
    ("dhkey-huge-mpi", 0x0A, u32(1025) + b"\x01" * 1025, "too long"),
    ("dhkey-truncated", 0x0A, mpi(GY)[:-1], "truncated"),
    ("dhkey-empty", 0x0A, b"", "truncated"),
    ("dhkey-trailing", 0x0A, mpi(GY) + b"\x00", "trailing"),
    ("reveal-r-15", 0x11, reveal_body(r=b"r" * 15), "not 16 bytes"),
    ("reveal-r-17", 0x11, reveal_body(r=b"r" * 17), "not 16 bytes"),
    ("reveal-r-huge", 0x11, reveal_body(r=b"r" * 65), "too long"),
    ("reveal-sig-huge", 0x11, reveal_body(sig=b"S" * 4097), "too long"),
    ("reveal-mac-short", 0x11, reveal_body()[:-1], "truncated"),
    ("reveal-trailing", 0x11, reveal_body() + b"\x00", "trailing"),
    ("sig-huge", 0x12, data(b"s" * 4097) + b"m" * 20, "too long"),
    ("sig-mac-short", 0x12, data(b"s" * 480) + b"m" * 19, "truncated"),
    ("sig-length-past-end", 0x12, u32(481) + b"s" * 480, "truncated"),
    ("sig-trailing", 0x12, data(b"s" * 480) + b"m" * 21, "trailing"),
    ("data-sender-keyid-0", 0x03, data_body(sender_keyid=0), "sender keyid is 0"),
    ("data-recipient-keyid-0", 0x03, data_body(recipient_keyid=0), "recipient keyid is 0"),
    ("data-next-dh-0", 0x03, data_body(next_dh=mpi(0)), "out of range"),
    ("data-next-dh-1", 0x03, data_body(next_dh=mpi(1)), "out of range"),
    ("data-next-dh-p-1", 0x03, data_body(next_dh=mpi(P - 1)), "out of range"),
    ("data-next-dh-p", 0x03, data_body(next_dh=mpi(P)), "out of range"),
    ("data-ctr-short", 0x03, data_body()[: 1 + 8 + len(mpi(NEXT_DH)) + 7], "truncated"),
    ("data-msg-past-end", 0x03, data_body(encrypted=u32(100) + b"x"), "truncated"),
    ("data-mac-short", 0x03, data_body(mac=b"A" * 19, old=b""), "truncated"),
    ("data-no-old-keys", 0x03, data_body(old=b""), "truncated"),
    ("data-old-keys-past-end", 0x03, data_body(old=u32(20) + b"K" * 19), "truncated"),
    ("data-trailing", 0x03, data_body() + b"\x00", "trailing"),
    ("data-no-flags", 0x03, b"", "truncated"),
    ("unknown-type-0x00", 0x00, b"", "unknown OTR message type"),
    ("unknown-type-0x01", 0x01, b"", "unknown OTR message type"),
    ("unknown-type-0x13", 0x13, b"", "unknown OTR message type"),
    ("unknown-type-0xff", 0xFF, data_body(), "unknown OTR message type"),
]


@pytest.mark.parametrize("version", [2, 3])
@pytest.mark.parametrize(
    ("kind", "body", "why"), [b[1:] for b in BAD_BODIES], ids=[b[0] for b in BAD_BODIES]
)
def test_structural_checks(version: int, kind: int, body: bytes, why: str) -> None:
    with pytest.raises(RemoteProtocolError, match=why):
        decode_message(header(version, kind) + body)


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"", "truncated in protocol version"),
        (b"\x00", "truncated in protocol version"),
        (b"\x00\x03", "truncated in message type"),
        (b"\x00\x03\x0a\x00\x00\x01", "truncated in sender instance tag"),
        (b"\x00\x03\x0a" + u32(SENDER) + b"\x00\x00", "truncated in receiver instance tag"),
        (b"\x00\x01\x0a" + mpi(GY), "unsupported protocol version 1"),
        (b"\x00\x00\x0a" + mpi(GY), "unsupported protocol version 0"),
        (b"\x00\x04\x0a" + u32(1) + u32(1) + mpi(GY), "unsupported protocol version 4"),
        (b"\x03\x00\x0a" + mpi(GY), "unsupported protocol version 768"),
    ],
)
def test_header_checks(raw: bytes, why: str) -> None:
    with pytest.raises(RemoteProtocolError, match=why):
        peek_header(raw)
    with pytest.raises(RemoteProtocolError, match=why):
        decode_message(raw)


def test_v3_header_is_not_read_as_v2() -> None:
    # A v3 D-H Key whose version field says 2: the instance tags are then read
    # as the start of the MPI, which fails the length check.
    v3 = encode_message(DHKey(3, SENDER, RECEIVER, GY))
    with pytest.raises(RemoteProtocolError):
        decode_message(b"\x00\x02" + v3[2:])


@pytest.mark.parametrize("value", [2, P - 2])
def test_group_element_bounds_are_inclusive(value: int) -> None:
    assert decode_message(header(3, 0x0A) + mpi(value)) == DHKey(3, SENDER, RECEIVER, value)


def test_non_minimal_mpi_is_accepted_and_re_encoded_minimally() -> None:
    padded = u32(len(mpi(GY)) - 4 + 2) + b"\x00\x00" + mpi(GY)[4:]
    decoded = decode_message(header(3, 0x0A) + padded)
    assert decoded == DHKey(3, SENDER, RECEIVER, GY)
    assert encode_message(decoded) == header(3, 0x0A) + mpi(GY)


def test_instance_tags_are_not_checked_by_the_decoder() -> None:
    # Routing by instance tag is the account's job; the codec reports them as sent.
    raw = header(3, 0x0A, sender=0, receiver=0xFF) + mpi(GY)
    assert peek_header(raw) == (3, 0x0A, 0, 0xFF)
    assert decode_message(raw) == DHKey(3, 0, 0xFF, GY)
