"""Events returned by the core: frozen, slotted dataclasses.

Every situation the application may want to show or act on is an event; the
core never calls back into the application.  Events never carry key material
except :class:`ExtraSymmetricKey`, whose key the application asked for (its
``repr`` hides it).
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from typing import TypeVar, dataclass_transform

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


_E = TypeVar("_E")


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
def _event(cls: type[_E]) -> type[_E]:
    """Make ``cls`` a frozen, slotted dataclass whose ``__init__`` writes each
    slot through the slot's own descriptor.

    Events are made for every message received.  The ``__init__`` dataclasses
    writes for a frozen class calls ``object.__setattr__`` per field, which
    looks the name up in the class each time; the descriptor's ``__set__`` is
    the same store without the lookup.  Everything else (immutability,
    ``replace()``, equality, ``repr``) is the dataclass's own.
    """
    cls = dataclass(frozen=True, slots=True)(cls)
    if hasattr(cls, "__post_init__") or any(
        f.kw_only or not f.init or f.default_factory is not MISSING
        for f in fields(cls)  # type: ignore[arg-type]
    ):
        # The __init__ written below has positional fields with plain defaults only.
        raise TypeError(f"{cls.__name__}: an event's fields take plain defaults only")
    namespace: dict[str, object] = {}
    params, body = ["self"], []
    for f in fields(cls):  # type: ignore[arg-type]
        owner = next(k for k in cls.__mro__ if f.name in vars(k))
        namespace[f"_set_{f.name}"] = vars(owner)[f.name].__set__
        if f.default is MISSING:
            params.append(f.name)
        else:
            namespace[f"_default_{f.name}"] = f.default
            params.append(f"{f.name}=_default_{f.name}")
        body.append(f"    _set_{f.name}(self, {f.name})")
    source = f"def __init__({', '.join(params)}):\n" + ("\n".join(body) or "    pass") + "\n"
    exec(source, namespace)  # noqa: S102 - source built above from the field names only
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"  # type: ignore[attr-defined]
    setattr(cls, "__init__", init)  # noqa: B010 - replacing a method, not a plain attribute
    return cls


@_event
class Event:
    """Base class of every event."""


@_event
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


@_event
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


@_event
class NewFingerprint(Event):
    """The peer authenticated with a fingerprint we had not seen for them."""

    fingerprint: bytes


@_event
class SessionFinished(Event):
    """The peer ended the private conversation; we refuse to send until the user
    ends or restarts it."""

    instance: int = 0


@_event
class SessionEnded(Event):
    """The local user ended the conversation; it is plaintext again."""

    instance: int = 0


@_event
class ErrorReceived(Event):
    """The peer sent an OTR Error message; ``text`` is its human-readable part."""

    text: str


@_event
class UnreadableMessage(Event):
    """An encrypted message could not be read (unknown keys, bad MAC, replay, not
    in a private conversation).  An error message went back unless the sender
    flagged it IGNORE_UNREADABLE."""

    reason: str


@_event
class MessageDiscarded(Event):
    """A message was ignored, as the protocol says: malformed, for another
    instance, an AKE message that did not verify, a version not allowed."""

    reason: str


@_event
class UnsupportedVersion(Event):
    """The peer offered OTR, but only in versions we do not speak (e.g. only v1)."""

    offered: frozenset[str]


@_event
class MessageNotSent(Event):
    """A message typed by the user was not sent (the conversation is finished,
    or encryption is required and unavailable).  Nothing went out in plaintext."""

    reason: str


@_event
class MessageHeld(Event):
    """Encryption is required and not yet established: the message is held and
    will be sent encrypted once the AKE completes."""

    count: int


@_event
class MessageResent(Event):
    """Held messages went out encrypted after the AKE."""

    count: int
    instance: int


@_event
class ExtraSymmetricKey(Event):
    """The peer announced use of the extra symmetric key (TLV 8)."""

    key: bytes = field(repr=False)
    use: int
    data: bytes = field(repr=False)


@_event
class SMPRequested(Event):
    """The peer started SMP; answer with ``Session.smp_respond(secret)``.

    ``question`` travelled encrypted like message text and is kept out of
    ``repr`` the same way."""

    question: str | None = field(repr=False)


@_event
class SMPResult(Event):
    """SMP finished.  ``success`` means the secrets matched.  ``verified`` tells
    whether this side marked the fingerprint trusted (only the asking side does)."""

    success: bool
    verified: bool


@_event
class SMPAborted(Event):
    """The peer aborted SMP (or a new SMP replaced the one in progress)."""


@_event
class SMPError(Event):
    """SMP failed a check (out of order, malformed, a proof did not verify); we
    aborted it and told the peer."""

    reason: str
