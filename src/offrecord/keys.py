"""Data-message key management (spec "Key Management", "Computing AES keys,
MAC keys", "Revealing MAC keys").

We keep our two newest DH key pairs and their two newest public keys.  Our
newest key pair is made when it is first needed, by the next message we send
(which announces its public key): going encrypted, or a rotation on receipt,
costs no exponentiation until we speak.  The session keys of a (our key,
their key) pair are derived lazily too, the first time that pair is used: a
conversation that only ever uses two of the four pairs pays for two modular
exponentiations, not four.

Receiving follows verify-then-commit: the MAC and the counter are checked
before anything (counters, rotation, revealed MAC keys) changes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import NamedTuple

from offrecord.ake import AKEComplete
from offrecord.crypto import dh
from offrecord.crypto.primitives import (
    AESCounterMode,
    HMACSHA1Key,
    RandomSource,
    macs_equal,
    sha1,
    sha256,
)
from offrecord.errors import LocalProtocolError, RemoteProtocolError
from offrecord.wire.codec import encode_data, encode_mpi
from offrecord.wire.messages import DataMessage, data_header, decode_message

__all__ = ["DataKeys", "Decrypted", "PairKeys"]

_MAX_COUNTER = (1 << 64) - 1
_NOTHING_REVEALED = encode_data(b"")
_LENGTH = struct.Struct(">I")


@dataclass(slots=True)
class PairKeys:
    """The session keys of one (our key id, their key id) pair, and its counters.

    The cipher and MAC contexts, and the extra symmetric key, are set up on
    first use and then serve every message of the pair.
    """

    secbytes: bytes = field(repr=False)
    send_aes: bytes = field(repr=False)
    send_mac: bytes = field(repr=False)
    recv_aes: bytes = field(repr=False)
    recv_mac: bytes = field(repr=False)
    send_counter: int = 0
    recv_counter: int = 0
    recv_mac_used: bool = False
    _sending: tuple[AESCounterMode, HMACSHA1Key] | None = field(default=None, repr=False)
    _receiving: tuple[AESCounterMode, HMACSHA1Key] | None = field(default=None, repr=False)
    _extra_key: bytes | None = field(default=None, repr=False)

    @classmethod
    def derive(cls, ours: dh.DHKeyPair, their_public: int) -> PairKeys:
        secbytes = encode_mpi(dh.shared_secret(ours, their_public))
        if ours.public > their_public:  # we are the "high" end
            send_byte, recv_byte = b"\x01", b"\x02"
        else:
            send_byte, recv_byte = b"\x02", b"\x01"
        send_aes = sha1(send_byte + secbytes)[:16]
        recv_aes = sha1(recv_byte + secbytes)[:16]
        return cls(secbytes, send_aes, sha1(send_aes), recv_aes, sha1(recv_aes))

    def extra_symmetric_key(self) -> bytes:
        """h2(0xFF) over this pair's secbytes (spec "Extra symmetric key")."""
        if self._extra_key is None:
            self._extra_key = sha256(b"\xff" + self.secbytes)
        return self._extra_key

    def sending(self) -> tuple[AESCounterMode, HMACSHA1Key]:
        """The cipher and MAC for messages we send with this pair."""
        if self._sending is None:
            self._sending = AESCounterMode(self.send_aes), HMACSHA1Key(self.send_mac)
        return self._sending

    def receiving(self) -> tuple[AESCounterMode, HMACSHA1Key]:
        """The cipher and MAC for messages we receive with this pair."""
        if self._receiving is None:
            self._receiving = AESCounterMode(self.recv_aes), HMACSHA1Key(self.recv_mac)
        return self._receiving


# The named tuple built without its Python-level __new__ (once per message).
_new_tuple = tuple.__new__


class Decrypted(NamedTuple):
    """A verified data message's plaintext, and the pair of keys it came with."""

    plaintext: bytes
    pair: PairKeys

    def __repr__(self) -> str:
        return f"Decrypted({len(self.plaintext)} bytes)"

    @property
    def extra_key(self) -> bytes:
        """The extra symmetric key of the message's pair (derived when asked for)."""
        return self.pair.extra_symmetric_key()


_Sender = tuple[PairKeys, AESCounterMode, HMACSHA1Key, bytes]


class DataKeys:
    """Key state of one encrypted session."""

    def __init__(self, ake: AKEComplete, random_bytes: RandomSource) -> None:
        self._random = random_bytes
        self.version = ake.version
        # _our[our_keyid - 1] is the previous pair; _our[our_keyid], the newest,
        # is made by _newest() when first needed.  Until then the peer cannot
        # know its public key, so a message for it is for an unknown key.
        self.our_keyid = ake.our_keyid + 1
        self._our: dict[int, dh.DHKeyPair] = {ake.our_keyid: ake.our_dh}
        self._announced: tuple[int, bytes] | None = None  # (key id, its public key's MPI)
        self.their_keyid = ake.their_keyid
        self._their: dict[int, int] = {ake.their_keyid: ake.their_dh}
        self._pairs: dict[tuple[int, int], PairKeys] = {}
        self._to_reveal = bytearray()
        # For messages sent with the current pair, by (flags, sender tag,
        # receiver tag): the pair, its cipher and MAC, and what every message
        # starts with up to its counter (header and our next public key).
        # Valid until either side's key id moves.
        self._senders: dict[tuple[int, int, int], _Sender] = {}

    def __repr__(self) -> str:
        return f"DataKeys(our_keyid={self.our_keyid}, their_keyid={self.their_keyid})"

    def _newest(self) -> dh.DHKeyPair:
        """Our newest key pair (key id our_keyid), made on first use."""
        pair = self._our.get(self.our_keyid)
        if pair is None:
            pair = dh.generate_keypair(self._random(dh.DH_EXPONENT_BITS // 8))
            self._our[self.our_keyid] = pair
        return pair

    def _pair(self, our_id: int, their_id: int) -> PairKeys:
        keys = self._pairs.get((our_id, their_id))
        if keys is None:
            keys = PairKeys.derive(self._our[our_id], self._their[their_id])
            self._pairs[(our_id, their_id)] = keys
        return keys

    def _newest_public_mpi(self) -> bytes:
        """Our newest public key as an MPI: every message we send carries it."""
        if self._announced is None or self._announced[0] != self.our_keyid:
            self._announced = self.our_keyid, encode_mpi(self._newest().public)
        return self._announced[1]

    @property
    def derived_pairs(self) -> int:
        """How many pairs have had their keys derived (for tests and benchmarks)."""
        return len(self._pairs)

    # -- sending ------------------------------------------------------------

    def encrypt(
        self, plaintext: bytes, *, flags: int, sender_tag: int, receiver_tag: int
    ) -> tuple[DataMessage, bytes]:
        """As :meth:`seal`, with the message decoded (for tests and tools)."""
        encoded, extra_key = self.seal(
            plaintext, flags=flags, sender_tag=sender_tag, receiver_tag=receiver_tag
        )
        msg = decode_message(encoded)
        assert isinstance(msg, DataMessage)
        return msg, extra_key

    def seal(
        self, plaintext: bytes, *, flags: int, sender_tag: int, receiver_tag: int
    ) -> tuple[bytes, bytes]:
        """The binary form of a data message for ``plaintext``, and the pair's
        extra symmetric key."""
        sender = self._senders.get((flags, sender_tag, receiver_tag))
        if sender is None:
            sender = self._sender(flags, sender_tag, receiver_tag)
        keys, cipher, mac, head = sender
        count = keys.send_counter + 1
        if count > _MAX_COUNTER:
            raise LocalProtocolError("counter exhausted for this key pair")
        keys.send_counter = count
        counter = count.to_bytes(8, "big")
        encrypted = cipher.crypt(counter, plaintext)
        authenticated = b"".join((head, counter, _LENGTH.pack(len(encrypted)), encrypted))
        if self._to_reveal:
            revealed, self._to_reveal = encode_data(bytes(self._to_reveal)), bytearray()
        else:  # most messages reveal nothing: an empty DATA field
            revealed = _NOTHING_REVEALED
        encoded = b"".join((authenticated, mac.digest(authenticated), revealed))
        return encoded, keys.extra_symmetric_key()

    def _sender(self, flags: int, sender_tag: int, receiver_tag: int) -> _Sender:
        """What seal() needs for the current pair, made once per pair and header."""
        our_id, their_id = self.our_keyid - 1, self.their_keyid
        keys = self._pair(our_id, their_id)
        cipher, mac = keys.sending()
        head = data_header(self.version, sender_tag, receiver_tag, flags, our_id, their_id)
        sender = keys, cipher, mac, head + self._newest_public_mpi()
        self._senders[(flags, sender_tag, receiver_tag)] = sender
        return sender

    # -- receiving ----------------------------------------------------------

    def decrypt(self, msg: DataMessage) -> Decrypted:
        """Verify and decrypt; RemoteProtocolError leaves every key and counter as it was."""
        our_id, their_id = msg.recipient_keyid, msg.sender_keyid
        # A pair is known only while both of its keys are.
        keys = self._pairs.get((our_id, their_id))
        if keys is None:
            if our_id not in self._our:
                raise RemoteProtocolError("data message for an unknown key of ours")
            if their_id not in self._their:
                raise RemoteProtocolError("data message from an unknown key of theirs")
            keys = self._pair(our_id, their_id)
        cipher, mac = keys._receiving or keys.receiving()
        authenticated = msg.received_authenticated or msg.authenticated_part()
        if not macs_equal(mac.digest(authenticated), msg.mac):
            raise RemoteProtocolError("data message MAC does not verify")
        counter = int.from_bytes(msg.counter, "big")
        if counter <= keys.recv_counter:
            raise RemoteProtocolError("data message counter did not increase (replay?)")
        plaintext = cipher.crypt(msg.counter, msg.encrypted)
        # Verified: commit.
        keys.recv_counter = counter
        keys.recv_mac_used = True
        if our_id == self.our_keyid:
            self._rotate_ours()
        if their_id == self.their_keyid:
            self._rotate_theirs(msg.next_dh)
        return _new_tuple(Decrypted, (plaintext, keys))

    def _forget_pairs(self, *, our_id: int | None = None, their_id: int | None = None) -> None:
        for key in [k for k in self._pairs if k[0] == our_id or k[1] == their_id]:
            keys = self._pairs.pop(key)
            if keys.recv_mac_used:
                self._to_reveal += keys.recv_mac

    def _rotate_ours(self) -> None:
        self._senders.clear()
        old = self.our_keyid - 1
        self._forget_pairs(our_id=old)
        del self._our[old]
        self.our_keyid += 1  # the new newest pair is made when we next send

    def _rotate_theirs(self, next_dh: int) -> None:
        self._senders.clear()
        old = self.their_keyid - 1
        if old in self._their:
            self._forget_pairs(their_id=old)
            del self._their[old]
        self.their_keyid += 1
        self._their[self.their_keyid] = next_dh

    def forget_all(self) -> bytes:
        """End of session: drop every key; returns MAC keys that were owed a reveal."""
        for key in list(self._pairs):
            keys = self._pairs.pop(key)
            if keys.recv_mac_used:
                self._to_reveal += keys.recv_mac
        self._our.clear()
        self._their.clear()
        self._senders.clear()
        revealed, self._to_reveal = bytes(self._to_reveal), bytearray()
        return revealed
