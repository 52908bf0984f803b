"""An in-process chat network: transports that deliver to each other.

It keeps the :class:`~offrecord.transports.base.ChatTransport` contract like a
real network, so the demo and the chat client's tests run the same code they
run over IRC or XMPP, with nothing installed.  Like a real network it has a
message size limit (so OTR fragmentation happens), refuses oversized messages
instead of cutting them, tells the sender when nobody has the address it
wrote to, and lets an observer see every message it carries.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from offrecord.transports.base import (
    Delivered,
    Disconnected,
    Notice,
    TransportError,
    TransportEvent,
    until_disconnected,
)

__all__ = ["RELAY_PROTOCOL", "Carried", "RelayNetwork", "RelayTransport", "relay_pair"]

RELAY_PROTOCOL = "offrecord-relay"


@dataclass(frozen=True, slots=True)
class Carried:
    """One message as the network saw it."""

    sender: str
    recipient: str
    text: str
    otr: bool


class RelayNetwork:
    """The network: a registry of connected transports by address.

    ``max_message_size`` is what every transport reports (0: no limit);
    ``observer`` is called with each message the network carries.
    """

    def __init__(
        self,
        *,
        max_message_size: int = 0,
        observer: Callable[[Carried], None] | None = None,
    ) -> None:
        if max_message_size < 0:
            raise ValueError("max_message_size must be >= 0")
        self.max_message_size = max_message_size
        self.observer = observer
        self.carried: list[Carried] = []
        self._online: dict[str, RelayTransport] = {}

    def transport(self, name: str) -> RelayTransport:
        """A new transport for the address ``name`` (not yet connected)."""
        return RelayTransport(self, name)

    def _attach(self, transport: RelayTransport) -> None:
        address = transport.account_name
        if address in self._online:
            raise TransportError(f"the address {address!r} is already in use")
        self._online[address] = transport

    def _detach(self, transport: RelayTransport) -> None:
        if self._online.get(transport.account_name) is transport:
            del self._online[transport.account_name]

    def _carry(self, sender: RelayTransport, recipient: str, text: str, otr: bool) -> None:
        if self.max_message_size and len(text) > self.max_message_size:
            raise TransportError(
                f"message of {len(text)} characters is over the network's limit "
                f"of {self.max_message_size}"
            )
        carried = Carried(sender.account_name, recipient, text, otr)
        self.carried.append(carried)
        if self.observer is not None:
            self.observer(carried)
        target = self._online.get(recipient)
        if target is None:
            sender._push(Notice(recipient, f"{recipient}: no such user is connected"))
        else:
            target._push(Delivered(sender.account_name, text))


class RelayTransport:
    """One address on a :class:`RelayNetwork`."""

    def __init__(self, network: RelayNetwork, name: str) -> None:
        if not name.strip():
            raise ValueError("a relay address must not be empty")
        self._network = network
        self._name = self.normalize(name)
        self._queue: asyncio.Queue[TransportEvent] = asyncio.Queue()
        self._connected = False
        self._ended = False

    @property
    def protocol(self) -> str:
        return RELAY_PROTOCOL

    @property
    def account_name(self) -> str:
        return self._name

    def normalize(self, buddy: str) -> str:
        return buddy.strip().lower()

    def max_message_size(self, buddy: str) -> int:
        return self._network.max_message_size

    async def connect(self) -> None:
        if self._ended:
            raise TransportError("this connection was closed")
        if not self._connected:
            self._network._attach(self)
            self._connected = True

    async def send(self, buddy: str, text: str, *, otr: bool) -> None:
        if not self._connected:
            raise TransportError("not connected")
        self._network._carry(self, self.normalize(buddy), text, otr)
        # Let the receiving side run, as a network would.
        await asyncio.sleep(0)

    def _push(self, event: TransportEvent) -> None:
        if not self._ended:
            self._queue.put_nowait(event)
            if isinstance(event, Disconnected):
                self._ended = True

    def events(self) -> AsyncIterator[TransportEvent]:
        return until_disconnected(self._queue)

    async def close(self) -> None:
        if self._connected:
            self._network._detach(self)
            self._connected = False
        self._push(Disconnected("closed"))


def relay_pair(
    first: str = "alice",
    second: str = "bob",
    *,
    max_message_size: int = 0,
    observer: Callable[[Carried], None] | None = None,
) -> tuple[RelayTransport, RelayTransport]:
    """Two transports on a fresh network."""
    network = RelayNetwork(max_message_size=max_message_size, observer=observer)
    return network.transport(first), network.transport(second)
