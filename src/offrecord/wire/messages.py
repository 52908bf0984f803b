"""The five encoded OTR messages (spec "Encoded messages"), for versions 2 and 3.

Version 3 messages carry sender and receiver instance tags after the type
byte; version 2 messages do not.  Decoding checks every structural constraint
and range that does not need session state (lengths, key ids > 0, group
elements in [2, p-2]); the session checks the rest.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum

from offrecord.crypto.dh import MODULUS_MINUS_2, check_element
from offrecord.errors import RemoteProtocolError
from offrecord.wire.codec import (
    MAX_DATA_LEN,
    MAX_MPI_LEN,
    Reader,
    encode_byte,
    encode_data,
    encode_int,
    encode_mpi,
    encode_short,
)

__all__ = [
    "FLAG_IGNORE_UNREADABLE",
    "SUPPORTED_VERSIONS",
    "DHCommit",
    "DHKey",
    "DataMessage",
    "EncodedMessage",
    "MessageType",
    "RevealSignature",
    "Signature",
    "data_authenticated_part",
    "data_header",
    "decode_message",
    "encode_message",
    "peek_header",
]

SUPPORTED_VERSIONS = (2, 3)
FLAG_IGNORE_UNREADABLE = 0x01


class MessageType(IntEnum):
    DH_COMMIT = 0x02
    DATA = 0x03
    DH_KEY = 0x0A
    REVEAL_SIGNATURE = 0x11
    SIGNATURE = 0x12


@dataclass(frozen=True, slots=True)
class _Header:
    version: int
    sender_tag: int
    receiver_tag: int


@dataclass(frozen=True, slots=True)
class DHCommit(_Header):
    encrypted_gx: bytes
    hashed_gx: bytes

    type = MessageType.DH_COMMIT


@dataclass(frozen=True, slots=True)
class DHKey(_Header):
    gy: int

    type = MessageType.DH_KEY


@dataclass(frozen=True, slots=True)
class RevealSignature(_Header):
    revealed_key: bytes = field(repr=False)
    encrypted_signature: bytes
    mac: bytes

    type = MessageType.REVEAL_SIGNATURE


@dataclass(frozen=True, slots=True)
class Signature(_Header):
    encrypted_signature: bytes
    mac: bytes

    type = MessageType.SIGNATURE


# Not frozen, unlike the AKE messages: one is decoded for every message
# received, and a frozen dataclass costs five times as much to build.  Nothing
# changes a decoded message; ``dataclasses.replace`` makes changed copies.
@dataclass(slots=True)
class DataMessage:
    version: int
    sender_tag: int
    receiver_tag: int
    flags: int
    sender_keyid: int
    recipient_keyid: int
    next_dh: int
    counter: bytes
    encrypted: bytes = field(repr=False)
    mac: bytes
    old_mac_keys: bytes = field(repr=False)
    # The bytes the MAC covers as they arrived, set by decode_message (libotr
    # also MACs the received bytes).  The constructor, and so replace(), leave
    # it empty: a message built or changed here is MACed as its fields encode.
    received_authenticated: bytes = field(default=b"", init=False, repr=False, compare=False)

    type = MessageType.DATA

    @property
    def ignore_unreadable(self) -> bool:
        return bool(self.flags & FLAG_IGNORE_UNREADABLE)

    def authenticated_part(self) -> bytes:
        """The bytes the data-message MAC covers: version through encrypted message."""
        if self.received_authenticated:
            return self.received_authenticated
        return data_authenticated_part(
            self.version, self.sender_tag, self.receiver_tag, self.flags,
            self.sender_keyid, self.recipient_keyid, encode_mpi(self.next_dh), self.counter,
            self.encrypted,
        )  # fmt: skip


# The fixed-size start of a data message: version, type, (v3: sender and
# receiver instance tags,) flags, sender keyid, recipient keyid.
_DATA_HEAD_V3 = struct.Struct(">HBIIBII")
_DATA_HEAD_V2 = struct.Struct(">HBBII")
_LENGTH = struct.Struct(">I")
# For the quick decoder: the head with the next DH key's length, then the
# counter with the encrypted message's length, then the MAC with the old MAC
# keys' length.
_QUICK_V3 = struct.Struct(">HBIIBIII")
_QUICK_V2 = struct.Struct(">HBBIII")
_COUNTER_AND_LENGTH = struct.Struct(">8sI")
_MAC_AND_LENGTH = struct.Struct(">20sI")


def data_header(
    version: int, sender_tag: int, receiver_tag: int, flags: int, sender_keyid: int,
    recipient_keyid: int,
) -> bytes:  # fmt: skip
    """The fixed-size start of a data message, up to the next DH key."""
    if version == 3:
        return _DATA_HEAD_V3.pack(
            3, MessageType.DATA, sender_tag, receiver_tag, flags, sender_keyid, recipient_keyid
        )
    return _DATA_HEAD_V2.pack(version, MessageType.DATA, flags, sender_keyid, recipient_keyid)


def data_authenticated_part(
    version: int,
    sender_tag: int,
    receiver_tag: int,
    flags: int,
    sender_keyid: int,
    recipient_keyid: int,
    next_dh_mpi: bytes,
    counter: bytes,
    encrypted: bytes,
) -> bytes:
    """:meth:`DataMessage.authenticated_part` from the fields; ``next_dh_mpi``
    is the next DH key already encoded as an MPI."""
    head = data_header(version, sender_tag, receiver_tag, flags, sender_keyid, recipient_keyid)
    return b"".join((head, next_dh_mpi, counter, _LENGTH.pack(len(encrypted)), encrypted))


EncodedMessage = DHCommit | DHKey | RevealSignature | Signature | DataMessage


def _encode_header(msg: _Header, kind: MessageType) -> bytes:
    out = encode_short(msg.version) + encode_byte(kind)
    if msg.version == 3:
        out += encode_int(msg.sender_tag) + encode_int(msg.receiver_tag)
    return out


def encode_message(msg: EncodedMessage) -> bytes:
    """The binary form of an encoded message (before base64 framing)."""
    if msg.version not in SUPPORTED_VERSIONS:
        raise ValueError(f"cannot encode OTR version {msg.version}")
    if isinstance(msg, DataMessage):
        return msg.authenticated_part() + msg.mac + encode_data(msg.old_mac_keys)
    head = _encode_header(msg, msg.type)
    if isinstance(msg, DHCommit):
        return head + encode_data(msg.encrypted_gx) + encode_data(msg.hashed_gx)
    if isinstance(msg, DHKey):
        return head + encode_mpi(msg.gy)
    if isinstance(msg, RevealSignature):
        return head + encode_data(msg.revealed_key) + encode_data(msg.encrypted_signature) + msg.mac
    return head + encode_data(msg.encrypted_signature) + msg.mac


def peek_header(raw: bytes) -> tuple[int, int, int, int]:
    """(version, type, sender tag, receiver tag) without decoding the body.

    Tags are 0 for version 2.  Raises RemoteProtocolError if even the header is
    malformed or the version unsupported.
    """
    reader = Reader(raw, "OTR message")
    version = reader.short("protocol version")
    if version not in SUPPORTED_VERSIONS:
        raise RemoteProtocolError(f"unsupported protocol version {version}")
    kind = reader.byte("message type")
    sender = receiver = 0
    if version == 3:
        sender = reader.int32("sender instance tag")
        receiver = reader.int32("receiver instance tag")
    return version, kind, sender, receiver


def _keyid(reader: Reader, what: str) -> int:
    value = reader.int32(what)
    if value == 0:
        raise RemoteProtocolError(f"data message: {what} is 0")
    return value


def _decode_data_quickly(raw: bytes) -> DataMessage | None:
    """A well-formed data message, decoded without :class:`Reader`; None for
    anything else (not a data message, or malformed in any way), which the
    general decoder then handles and explains.  Checks everything the general
    decoder checks; a property test keeps the two in agreement."""
    size = len(raw)
    if raw.startswith(b"\x00\x03\x03"):  # version 3, type DATA
        if size < _QUICK_V3.size:
            return None
        _, _, sender, receiver, flags, sender_keyid, recipient_keyid, mpi_len = (
            _QUICK_V3.unpack_from(raw)
        )
        version, pos = 3, _QUICK_V3.size
    elif raw.startswith(b"\x00\x02\x03"):
        if size < _QUICK_V2.size:
            return None
        _, _, flags, sender_keyid, recipient_keyid, mpi_len = _QUICK_V2.unpack_from(raw)
        version, pos, sender, receiver = 2, _QUICK_V2.size, 0, 0
    else:
        return None
    if sender_keyid == 0 or recipient_keyid == 0 or mpi_len > MAX_MPI_LEN:
        return None
    end = pos + mpi_len
    next_dh = int.from_bytes(raw[pos:end], "big")
    if not 2 <= next_dh <= MODULUS_MINUS_2 or size < end + 12:
        return None
    counter, encrypted_len = _COUNTER_AND_LENGTH.unpack_from(raw, end)
    pos = end + 12
    authenticated_end = pos + encrypted_len
    if encrypted_len > MAX_DATA_LEN or size < authenticated_end + 24:
        return None
    mac, old_len = _MAC_AND_LENGTH.unpack_from(raw, authenticated_end)
    if old_len > MAX_DATA_LEN or size != authenticated_end + 24 + old_len:
        return None
    msg = DataMessage(
        version, sender, receiver, flags, sender_keyid, recipient_keyid, next_dh, counter,
        raw[pos:authenticated_end], mac, raw[authenticated_end + 24 :],
    )  # fmt: skip
    msg.received_authenticated = raw[:authenticated_end]
    return msg


def decode_message(raw: bytes) -> EncodedMessage:
    """Decode the binary form of an encoded message; RemoteProtocolError if malformed."""
    # Data messages are most of the traffic: a well-formed one takes the quick path.
    quick = _decode_data_quickly(raw)
    if quick is not None:
        return quick
    return _decode_message(raw)


def _decode_message(raw: bytes) -> EncodedMessage:
    version, kind, sender, receiver = peek_header(raw)
    reader = Reader(raw, "OTR message")
    reader.raw(11 if version == 3 else 3, "header")
    msg: EncodedMessage
    if kind == MessageType.DH_COMMIT:
        encrypted_gx = reader.data("encrypted g^x", max_len=1024)
        hashed_gx = reader.data("hashed g^x", max_len=64)
        if len(hashed_gx) != 32:
            raise RemoteProtocolError("D-H Commit: hashed g^x is not 32 bytes")
        msg = DHCommit(version, sender, receiver, encrypted_gx, hashed_gx)
    elif kind == MessageType.DH_KEY:
        gy = check_element(reader.mpi("g^y"), "D-H Key: g^y")
        msg = DHKey(version, sender, receiver, gy)
    elif kind == MessageType.REVEAL_SIGNATURE:
        revealed = reader.data("revealed key", max_len=64)
        if len(revealed) != 16:
            raise RemoteProtocolError("Reveal Signature: revealed key is not 16 bytes")
        encrypted = reader.data("encrypted signature", max_len=4096)
        mac = reader.mac("signature MAC")
        msg = RevealSignature(version, sender, receiver, revealed, encrypted, mac)
    elif kind == MessageType.SIGNATURE:
        encrypted = reader.data("encrypted signature", max_len=4096)
        mac = reader.mac("signature MAC")
        msg = Signature(version, sender, receiver, encrypted, mac)
    elif kind == MessageType.DATA:
        flags = reader.byte("flags")
        sender_keyid = _keyid(reader, "sender keyid")
        recipient_keyid = _keyid(reader, "recipient keyid")
        next_dh = check_element(reader.mpi("next DH key"), "data message: next DH key")
        counter = reader.ctr("counter")
        encrypted = reader.data("encrypted message")
        authenticated = reader.consumed()
        mac = reader.mac("authenticator")
        old_keys = reader.data("old MAC keys")
        msg = DataMessage(
            version, sender, receiver, flags, sender_keyid, recipient_keyid,
            next_dh, counter, encrypted, mac, old_keys,
        )  # fmt: skip
        msg.received_authenticated = authenticated
    else:
        raise RemoteProtocolError(f"unknown OTR message type 0x{kind:02x}")
    reader.end()
    return msg
