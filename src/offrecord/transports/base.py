"""What the chat client needs from a network: the contract every transport keeps.

A transport carries text between the local user and buddies on one chat network.
It knows nothing about OTR: it delivers whatever text arrives and sends whatever
text it is given, one network message per call.  The engine decides what that
text is; the transport only says how long one network message may be, so the
engine can fragment to the network's real limit.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "ChatTransport",
    "Delivered",
    "Disconnected",
    "Notice",
    "TransportError",
    "TransportEvent",
    "until_disconnected",
]


class TransportError(Exception):
    """The network could not be reached, refused us, or went away."""


@dataclass(frozen=True, slots=True)
class Delivered:
    """A message from a buddy.  ``sender`` is already normalised (see
    :meth:`ChatTransport.normalize`), so it can key a conversation."""

    sender: str
    text: str


@dataclass(frozen=True, slots=True)
class Disconnected:
    """The connection ended; ``reason`` is for the user, never secret."""

    reason: str


@dataclass(frozen=True, slots=True)
class Notice:
    """Something the network says that is not a buddy's chat message: a
    server reply about a buddy ("no such nick"), an IRC NOTICE.  The client
    shows it to the user and never feeds it to OTR.  ``sender`` is the
    normalised buddy it concerns, or ``None`` for the network itself.
    Transports that have nothing of the kind never produce it."""

    sender: str | None
    text: str


TransportEvent = Delivered | Notice | Disconnected


class ChatTransport(Protocol):
    """An asyncio chat connection (IRC, XMPP, or an in-process relay for tests).

    ``protocol`` and ``account_name`` are what the key, fingerprint and
    instance-tag files record for this account, as Pidgin writes them
    (``prpl-irc`` / ``prpl-jabber``).

    How the chat client (:class:`offrecord.chat.ChatClient`) uses it: it
    builds the transport (inside the running event loop), reads
    ``account_name``/``protocol`` to load the key, awaits :meth:`connect`,
    then consumes :meth:`events` in one task while calling :meth:`send` from
    others; before sending it sets OTR's fragment size from
    :meth:`max_message_size`.  Messages of one call to :meth:`send` and of
    consecutive calls must reach the buddy in order (OTR fragments).  At the
    end it awaits :meth:`close`, which must first deliver what was sent.
    """

    @property
    def protocol(self) -> str: ...

    @property
    def account_name(self) -> str: ...

    def normalize(self, buddy: str) -> str:
        """The canonical form of a buddy's address (IRC nicks are
        case-insensitive, XMPP conversations are keyed by bare JID)."""
        ...

    def max_message_size(self, buddy: str) -> int:
        """The most characters one message to ``buddy`` may carry, so that
        what the buddy receives is never cut (0: no limit)."""
        ...

    async def connect(self) -> None:
        """Connect and log in; raises :class:`TransportError` on failure."""
        ...

    async def send(self, buddy: str, text: str, *, otr: bool) -> None:
        """Send one message.  ``otr`` is true for OTR protocol traffic, which a
        transport may mark as not to be stored or copied (XMPP hints).

        It may return once the message is queued (IRC paces its lines);
        raises :class:`TransportError` when not connected."""
        ...

    def events(self) -> AsyncIterator[TransportEvent]:
        """Incoming messages in arrival order, ending after :class:`Disconnected`
        (also after :meth:`close`).  Called once."""
        ...

    async def close(self) -> None:
        """Deliver what was queued, leave the network politely and end
        :meth:`events`; safe to call twice."""
        ...


async def until_disconnected(
    queue: asyncio.Queue[TransportEvent],
) -> AsyncIterator[TransportEvent]:
    """A transport's events from its queue, ending after Disconnected."""
    while True:
        event = await queue.get()
        yield event
        if isinstance(event, Disconnected):
            return
