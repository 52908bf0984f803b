"""Events returned by the core: frozen, slotted dataclasses.

Every situation the application may want to show or act on is an event; the
core never calls back into the application.  Events never carry key material
except :class:`ExtraSymmetricKey`, whose key the application asked for (its
``repr`` hides it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from offrecord.wire.tlv import TLV

__all__ = [
    "ErrorReceived",
    "Event",
    "ExtraSymmetricKey",
    "MessageDiscarded",
    "MessageHeld",
    "MessageNotSent",
    "MessageReceived",
    "MessageResent",
    "NewFingerprint",
    "SMPAborted",
    "SMPError",
    "SMPRequested",
    "SMPResult",
    "SessionEnded",
    "SessionFinished",
    "SessionSecured",
    "UnreadableMessage",
    "UnsupportedVersion",
]


@dataclass(frozen=True, slots=True)
class Event:
    """Base class of every event."""


@dataclass(frozen=True, slots=True)
class MessageReceived(Event):
    """Show ``text`` to the user.

    ``encrypted`` is true only for text that came out of a verified data message.
    ``unencrypted_warning`` is set when plaintext arrived while the conversation
    is encrypted or finished, or while the policy requires encryption: the user
    must be told it was not private.
    """

    text: str = field(repr=False)
    encrypted: bool
    unencrypted_warning: bool = False
    instance: int = 0
    tlvs: tuple[TLV, ...] = ()


@dataclass(frozen=True, slots=True)
class SessionSecured(Event):
    """An AKE completed: the conversation with ``instance`` is now encrypted.

    ``refreshed`` is true when it already was (a new AKE replaced the keys).
    ``ssid`` is the 8-byte secure session id; ``ssid_bold_first`` says which
    half this side should show in bold (spec, "secure session id").
    """

    fingerprint: bytes
    trusted: bool
    instance: int
    version: int
    ssid: bytes
    ssid_bold_first: bool
    refreshed: bool = False


@dataclass(frozen=True, slots=True)
class NewFingerprint(Event):
    """The peer authenticated with a fingerprint we had not seen for them."""

    fingerprint: bytes


@dataclass(frozen=True, slots=True)
class SessionFinished(Event):
    """The peer ended the private conversation; we refuse to send until the user
    ends or restarts it."""

    instance: int = 0


@dataclass(frozen=True, slots=True)
class SessionEnded(Event):
    """The local user ended the conversation; it is plaintext again."""

    instance: int = 0


@dataclass(frozen=True, slots=True)
class ErrorReceived(Event):
    """The peer sent an OTR Error message; ``text`` is its human-readable part."""

    text: str


@dataclass(frozen=True, slots=True)
class UnreadableMessage(Event):
    """An encrypted message could not be read (unknown keys, bad MAC, replay, not
    in a private conversation).  An error message went back unless the sender
    flagged it IGNORE_UNREADABLE."""

    reason: str


@dataclass(frozen=True, slots=True)
class MessageDiscarded(Event):
    """A message was ignored, as the protocol says: malformed, for another
    instance, an AKE message that did not verify, a version not allowed."""

    reason: str


@dataclass(frozen=True, slots=True)
class UnsupportedVersion(Event):
    """The peer offered OTR, but only in versions we do not speak (e.g. only v1)."""

    offered: frozenset[str]


@dataclass(frozen=True, slots=True)
class MessageNotSent(Event):
    """A message typed by the user was not sent (the conversation is finished,
    or encryption is required and unavailable).  Nothing went out in plaintext."""

    reason: str


@dataclass(frozen=True, slots=True)
class MessageHeld(Event):
    """Encryption is required and not yet established: the message is held and
    will be sent encrypted once the AKE completes."""

    count: int


@dataclass(frozen=True, slots=True)
class MessageResent(Event):
    """Held messages went out encrypted after the AKE."""

    count: int
    instance: int


@dataclass(frozen=True, slots=True)
class ExtraSymmetricKey(Event):
    """The peer announced use of the extra symmetric key (TLV 8)."""

    key: bytes = field(repr=False)
    use: int
    data: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class SMPRequested(Event):
    """The peer started SMP; answer with ``Session.smp_respond(secret)``.

    ``question`` travelled encrypted like message text and is kept out of
    ``repr`` the same way."""

    question: str | None = field(repr=False)


@dataclass(frozen=True, slots=True)
class SMPResult(Event):
    """SMP finished.  ``success`` means the secrets matched.  ``verified`` tells
    whether this side marked the fingerprint trusted (only the asking side does)."""

    success: bool
    verified: bool


@dataclass(frozen=True, slots=True)
class SMPAborted(Event):
    """The peer aborted SMP (or a new SMP replaced the one in progress)."""


@dataclass(frozen=True, slots=True)
class SMPError(Event):
    """SMP failed a check (out of order, malformed, a proof did not verify); we
    aborted it and told the peer."""

    reason: str
