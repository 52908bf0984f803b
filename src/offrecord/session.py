"""One OTR session: one peer instance, its message state, AKE and data keys
(spec "The protocol state machine").

A :class:`Session` is driven by its :class:`~offrecord.account.Conversation`,
which routes incoming messages by instance tag and owns what is shared between
instances (the whitespace-tag offer, held messages).  Sessions queue their
outgoing wire messages as :class:`Outgoing` records; the account fragments and
hands them out through ``data_to_send()``.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import NamedTuple, Protocol

from offrecord import events as ev
from offrecord.ake import AKE, AKEComplete, AuthState
from offrecord.crypto.dsa import DSAPrivateKey, DSAPublicKey
from offrecord.crypto.primitives import RandomSource
from offrecord.errors import LocalProtocolError, OTRError, RemoteProtocolError
from offrecord.keys import DataKeys, Decrypted
from offrecord.policy import Policy
from offrecord.smp import SMP, SMP_TLV_TYPES, SMPOutcome, smp_secret
from offrecord.wire.codec import Reader
from offrecord.wire.envelope import error_message, frame
from offrecord.wire.messages import (
    FLAG_IGNORE_UNREADABLE,
    DataMessage,
    EncodedMessage,
    encode_message,
)
from offrecord.wire.tlv import TLV, TLVType, decode_tlvs, encode_tlvs

__all__ = [
    "AKE_TIMEOUT",
    "HEARTBEAT_INTERVAL",
    "MessageState",
    "Outgoing",
    "Session",
    "SessionOwner",
]

# libotr sends a heartbeat when it has not sent anything for this long after
# receiving a data message (message.c, HEARTBEAT_INTERVAL).
HEARTBEAT_INTERVAL = 60.0
# An AKE that has not progressed for this long is abandoned by tick(now), so a
# lost message never leaves a half-finished exchange behind forever.
AKE_TIMEOUT = 60.0

ERROR_UNREADABLE = "The encrypted message you sent could not be read."
ERROR_NOT_PRIVATE = "The encrypted message you sent arrived outside a private conversation."


def _utf8(text: str, what: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates
        raise LocalProtocolError(f"{what} is not valid Unicode") from None


def message_bytes(text: str) -> bytes:
    """The UTF-8 of a message to encrypt; LocalProtocolError if it cannot be one."""
    try:
        payload = text.encode()
    except UnicodeEncodeError:  # lone surrogates
        raise LocalProtocolError("the message is not valid Unicode") from None
    # Tested as the byte value: ``b"\x00" in`` first tries to read its operand
    # as an integer and formats a TypeError for every message.
    if 0 in payload:
        raise LocalProtocolError("a message cannot contain NUL characters")
    return payload


class MessageState(Enum):
    PLAINTEXT = "plaintext"
    ENCRYPTED = "encrypted"
    FINISHED = "finished"


# A named tuple's generated __new__ is Python code; the hot paths build the
# tuple directly with this instead (same object, a third of the time).
_new_tuple = tuple.__new__


class Outgoing(NamedTuple):
    """One network message before fragmentation.  ``version`` is 0 for
    unencoded messages (query, error, plaintext), which are never fragmented.

    A named tuple: one is made per message sent, and a tuple costs a fraction
    of a frozen dataclass."""

    text: str
    version: int = 0
    sender_tag: int = 0
    receiver_tag: int = 0

    def __repr__(self) -> str:
        # The text may be the user's plaintext: never in a repr.
        return (
            f"Outgoing({len(self.text)} characters, version={self.version}, "
            f"sender_tag={self.sender_tag}, receiver_tag={self.receiver_tag})"
        )


class SessionOwner(Protocol):
    """What a session needs from its account.

    The instance tag and the padding are read once, when the session is made.
    """

    @property
    def name(self) -> str: ...
    @property
    def policy(self) -> Policy: ...
    @property
    def private_key(self) -> DSAPrivateKey: ...
    @property
    def instance_tag(self) -> int: ...
    @property
    def random_bytes(self) -> RandomSource: ...
    @property
    def padding(self) -> int:
        """Pad user messages to a multiple of this many bytes with TLV 0 (0 = off)."""
        ...

    def fingerprint_seen(self, peer: str, fingerprint: bytes) -> tuple[bool, bool]:
        """Record a fingerprint the peer authenticated with: (is new, is trusted)."""
        ...

    def set_trust(self, peer: str, fingerprint: bytes, trust: str) -> None:
        """Set a fingerprint's trust ("" = not verified; libotr writes "smp" after SMP)."""
        ...


class Session:
    """The OTR state of one conversation with one instance of a peer."""

    def __init__(
        self,
        owner: SessionOwner,
        peer: str,
        their_instance: int = 0,
        outbox: list[Outgoing] | None = None,
    ) -> None:
        self._owner = owner
        # Fixed for the account's lifetime, and read for every message sent.
        self._instance_tag = owner.instance_tag
        self._padding = owner.padding
        self.peer = peer
        self.their_instance = their_instance
        self.msgstate = MessageState.PLAINTEXT
        self.ake = AKE(owner.private_key, owner.random_bytes, owner.instance_tag)
        self.version: int | None = None
        self.their_public_key: DSAPublicKey | None = None
        self.their_fingerprint: bytes | None = None
        self.ssid: bytes | None = None
        self.ssid_bold_first = False
        self._keys: DataKeys | None = None
        self.smp = SMP(owner.random_bytes)
        # Set by the conversation: whether an automatic reply may go out now.
        self.may_auto_reply: Callable[[], bool] = lambda: True
        # Where this session's wire messages are queued; the conversation
        # shares one among its sessions, so they leave in the order made.
        self._out: list[Outgoing] = [] if outbox is None else outbox
        self.last_sent: float | None = None
        self.last_received: float | None = None
        self._ake_progress: float | None = None

    def __repr__(self) -> str:
        return (
            f"Session(peer={self.peer!r}, instance=0x{self.their_instance:08x}, "
            f"state={self.msgstate.value}, auth={self.ake.state.name})"
        )

    # -- what the application sees -----------------------------------------

    @property
    def is_encrypted(self) -> bool:
        return self.msgstate is MessageState.ENCRYPTED

    # -- output helpers ------------------------------------------------------

    def _queue_encoded(self, msg: EncodedMessage, now: float | None) -> None:
        self._queue_binary(encode_message(msg), msg.version, msg.sender_tag, msg.receiver_tag, now)

    def _queue_binary(
        self, binary: bytes, version: int, sender_tag: int, receiver_tag: int, now: float | None
    ) -> None:
        self._out.append(_new_tuple(Outgoing, (frame(binary), version, sender_tag, receiver_tag)))
        if now is not None:
            self.last_sent = now

    def queue_plain(self, text: str, now: float | None = None) -> None:
        self._out.append(Outgoing(text))
        if now is not None:
            self.last_sent = now

    def queue_error(self, description: str) -> None:
        self._out.append(Outgoing(error_message(description)))

    # -- AKE -----------------------------------------------------------------

    def start_ake(self, version: int, now: float | None = None) -> None:
        """Send a D-H Commit (on a query, a whitespace tag, or a refresh)."""
        commit = self.ake.start(version, self.their_instance if version == 3 else 0)
        self._ake_progress = now
        self._queue_encoded(commit, now)

    def receive_encoded(self, msg: EncodedMessage, now: float | None) -> list[ev.Event]:
        if isinstance(msg, DataMessage):
            return self.receive_data(msg, now)
        if now is not None:
            self.last_received = now
        step = self.ake.receive(msg)
        if step.reply is not None or step.complete is not None:
            self._ake_progress = now
        out: list[ev.Event] = []
        if step.reply is not None:
            self._queue_encoded(step.reply, now)
        if step.discarded is not None:
            out.append(ev.MessageDiscarded(step.discarded))
        if step.complete is not None:
            out.extend(self._go_encrypted(step.complete))
        return out

    def _go_encrypted(self, done: AKEComplete) -> list[ev.Event]:
        fingerprint = done.their_fingerprint
        # Ask the trust book first: if it fails (a storage error), no state has
        # changed yet, and the fingerprint is treated as new and untrusted.
        try:
            new, trusted = self._owner.fingerprint_seen(self.peer, fingerprint)
        except OTRError:
            new, trusted = True, False
        refreshed = self.msgstate is MessageState.ENCRYPTED
        if self._keys is not None:
            self._keys.forget_all()
        self._keys = DataKeys(done, self._owner.random_bytes)
        self.smp.reset()  # an SMP run is bound to the old session id
        self.msgstate = MessageState.ENCRYPTED
        self.version = done.version
        if done.version == 3:
            self.their_instance = done.their_instance
        self.their_public_key = done.their_public_key
        self.their_fingerprint = fingerprint
        self.ssid = done.ssid
        self.ssid_bold_first = done.sent_reveal_signature
        out: list[ev.Event] = []
        if new:
            out.append(ev.NewFingerprint(fingerprint))
        out.append(
            ev.SessionSecured(
                fingerprint=fingerprint,
                trusted=trusted,
                instance=self.their_instance,
                version=done.version,
                ssid=done.ssid,
                ssid_bold_first=done.sent_reveal_signature,
                refreshed=refreshed,
            )
        )
        return out

    # -- data messages -------------------------------------------------------

    def send_data(
        self,
        text: str,
        tlvs: tuple[TLV, ...] = (),
        *,
        flags: int = 0,
        now: float | None = None,
    ) -> bytes:
        """Encrypt and queue a data message; returns the pair's extra symmetric key."""
        keys = self._keys
        if keys is None or self.msgstate is not MessageState.ENCRYPTED:
            raise LocalProtocolError("the conversation is not encrypted")
        try:  # message_bytes(), inline: this runs for every message sent
            payload = text.encode()
        except UnicodeEncodeError:
            raise LocalProtocolError("the message is not valid Unicode") from None
        if 0 in payload:  # a NUL byte (see message_bytes)
            raise LocalProtocolError("a message cannot contain NUL characters")
        block = self._padding
        if block and text:
            # TLV 0 (padding) rounds the length up so an observer learns only
            # the block count; its 4-byte header is counted in.
            used = len(payload) + 1 + len(encode_tlvs(tlvs)) + 4
            tlvs = (*tlvs, TLV(TLVType.PADDING, bytes(-used % block)))
        if tlvs:
            payload += b"\x00" + encode_tlvs(tlvs)
        version = keys.version
        if version == 3:
            sender_tag, receiver_tag = self._instance_tag, self.their_instance
        else:
            sender_tag = receiver_tag = 0
        encoded, extra_key = keys.seal(
            payload, flags=flags, sender_tag=sender_tag, receiver_tag=receiver_tag
        )
        self._out.append(_new_tuple(Outgoing, (frame(encoded), version, sender_tag, receiver_tag)))
        if now is not None:
            self.last_sent = now
        return extra_key

    def _unreadable(self, msg: DataMessage, reason: str, reply: str) -> list[ev.Event]:
        if msg.ignore_unreadable:
            return []
        if self.may_auto_reply():
            self.queue_error(reply)
        return [ev.UnreadableMessage(reason)]

    def receive_data(self, msg: DataMessage, now: float | None) -> list[ev.Event]:
        """A data message for this session: verified, decrypted, its TLVs handled."""
        if now is not None:
            self.last_received = now
        if self.msgstate is not MessageState.ENCRYPTED or self._keys is None:
            return self._unreadable(
                msg, "encrypted message outside a private conversation", ERROR_NOT_PRIVATE
            )
        if msg.version != self._keys.version:
            return self._unreadable(
                msg, "data message of another protocol version", ERROR_UNREADABLE
            )
        try:
            decrypted = self._keys.decrypt(msg)
        except RemoteProtocolError as exc:
            return self._unreadable(msg, str(exc), ERROR_UNREADABLE)
        body, _, tail = decrypted.plaintext.partition(b"\x00")
        out: list[ev.Event] = []
        try:
            tlvs = decode_tlvs(tail) if tail else ()
        except RemoteProtocolError as exc:
            tlvs = ()
            out.append(ev.MessageDiscarded(f"TLV records ignored: {exc}"))
        text = body.decode("utf-8", errors="replace")
        if text:
            out.append(ev.MessageReceived(text, True, False, self.their_instance, tlvs))
        for tlv in tlvs:
            out.extend(self._handle_tlv(tlv, decrypted))
        # Only a message with text earns a heartbeat (as in libotr): answering
        # heartbeats with heartbeats would keep two idle clients talking.
        if (
            text
            and self.msgstate is MessageState.ENCRYPTED
            and now is not None
            and (self.last_sent is None or now - self.last_sent >= HEARTBEAT_INTERVAL)
        ):
            self.send_data("", flags=FLAG_IGNORE_UNREADABLE, now=now)
        return out

    def _handle_tlv(self, tlv: TLV, decrypted: Decrypted) -> list[ev.Event]:
        if tlv.type == TLVType.DISCONNECTED:
            self._finish()
            return [ev.SessionFinished(self.their_instance)]
        if tlv.type in SMP_TLV_TYPES:
            if self.msgstate is not MessageState.ENCRYPTED:
                # An earlier TLV of the same message ended the conversation:
                # there are no keys left to answer with (libotr 4.1.0 freed an
                # uninitialised pointer here).
                return [ev.MessageDiscarded("SMP message after the conversation ended")]
            return self._handle_smp(tlv)
        if tlv.type == TLVType.EXTRA_SYMMETRIC_KEY:
            if len(tlv.value) < 4:
                return [ev.MessageDiscarded("extra symmetric key TLV without a use code")]
            use = Reader(tlv.value).int32()
            return [ev.ExtraSymmetricKey(decrypted.extra_key, use, tlv.value[4:])]
        return []  # padding and unknown types are ignored, as the spec says

    def _finish(self) -> None:
        self.smp.reset()
        if self._keys is not None:
            self._keys.forget_all()
        self._keys = None
        self.msgstate = MessageState.FINISHED

    # -- user actions --------------------------------------------------------

    def end(self, now: float | None = None) -> list[ev.Event]:
        """End the private conversation (spec "User requests to end")."""
        self.ake.reset()
        self.smp.reset()
        if self.msgstate is MessageState.ENCRYPTED:
            self.send_data("", (TLV(TLVType.DISCONNECTED),), flags=FLAG_IGNORE_UNREADABLE, now=now)
            if self._keys is not None:
                self._keys.forget_all()
            self._keys = None
        if self.msgstate is MessageState.PLAINTEXT:
            return []
        self.msgstate = MessageState.PLAINTEXT
        return [ev.SessionEnded(self.their_instance)]

    def tick(self, now: float) -> None:
        """Abandon an AKE that has made no progress for AKE_TIMEOUT seconds."""
        if self.ake.state is AuthState.NONE:
            return
        if self._ake_progress is None:
            self._ake_progress = now
        elif now - self._ake_progress >= AKE_TIMEOUT:
            self.ake.reset()
            self._ake_progress = None

    @property
    def ake_in_progress(self) -> bool:
        return self.ake.state is not AuthState.NONE

    def extra_symmetric_key(self, use: int, data: bytes = b"", now: float | None = None) -> bytes:
        """Announce use of the extra symmetric key (TLV 8) and return the key."""
        value = use.to_bytes(4, "big") + data
        return self.send_data(
            "", (TLV(TLVType.EXTRA_SYMMETRIC_KEY, value),), flags=FLAG_IGNORE_UNREADABLE, now=now
        )

    # -- the Socialist Millionaires' Protocol ----------------------------------

    def _send_smp(self, tlvs: tuple[TLV, ...], now: float | None = None) -> None:
        # Each SMP TLV travels alone in an empty, IGNORE_UNREADABLE data message,
        # as libotr sends them.
        for tlv in tlvs:
            self.send_data("", (tlv,), flags=FLAG_IGNORE_UNREADABLE, now=now)

    def _smp_fingerprints(self) -> tuple[bytes, bytes, bytes]:
        if self.msgstate is not MessageState.ENCRYPTED or self.ssid is None:
            raise LocalProtocolError("SMP needs an encrypted conversation")
        their = self.their_fingerprint
        assert their is not None
        return self._owner.private_key.fingerprint(), their, self.ssid

    def smp_start(self, secret: str, question: str | None = None, now: float | None = None) -> None:
        """Ask the peer to prove they know the same secret (optionally with a question)."""
        ours, theirs, ssid = self._smp_fingerprints()
        value = smp_secret(ours, theirs, ssid, _utf8(secret, "the SMP secret"))
        self._send_smp(self.smp.start(value, question), now)

    def smp_respond(self, secret: str, now: float | None = None) -> None:
        """Answer the peer's SMP request with our secret."""
        ours, theirs, ssid = self._smp_fingerprints()
        value = smp_secret(theirs, ours, ssid, _utf8(secret, "the SMP secret"))
        self._send_smp((self.smp.respond(value),), now)

    def smp_abort(self, now: float | None = None) -> None:
        """Abort an SMP run; the peer is told when the conversation is encrypted."""
        tlv = self.smp.abort()
        if self.msgstate is MessageState.ENCRYPTED:
            self._send_smp((tlv,), now)

    def _handle_smp(self, tlv: TLV) -> list[ev.Event]:
        step = self.smp.receive(tlv)
        self._send_smp(step.reply)
        fingerprint = self.their_fingerprint
        notes: list[ev.Event] = []
        if step.trust is not None and fingerprint is not None:
            try:
                self._owner.set_trust(self.peer, fingerprint, "smp" if step.trust else "")
            except OTRError as exc:  # the SMP result stands; only saving it failed
                notes.append(ev.MessageDiscarded(f"trust could not be saved: {exc}"))
        outcome = step.outcome
        if outcome is SMPOutcome.REQUESTED:
            return [ev.SMPRequested(step.question), *notes]
        if outcome in (SMPOutcome.SUCCEEDED, SMPOutcome.FAILED):
            verified = step.trust is True and not notes
            return [ev.SMPResult(outcome is SMPOutcome.SUCCEEDED, verified=verified), *notes]
        if outcome is SMPOutcome.ABORTED:
            return [ev.SMPAborted(), *notes]
        if outcome in (SMPOutcome.CHEATED, SMPOutcome.ERROR):
            return [ev.SMPError(step.reason or outcome.value), *notes]
        return notes
