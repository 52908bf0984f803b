"""XMPP transport: one account on an XMPP server, through slixmpp.

The connection always uses STARTTLS with the server's certificate verified
against the JID's domain (the system's trust store, or ``ca_file`` for a
private CA); a server that offers no TLS is refused, never used in the clear.

Conversations are keyed by bare JID (``bob@example.org``).  Like Pidgin, a
message goes to the full JID the buddy last wrote from (so a session stays
with one of the buddy's clients), and to the bare JID while none is known or
after that client went away or bounced a message.

OTR traffic carries hints that it is not to be stored or copied: XEP-0334
``<no-store/>`` and ``<no-copy/>``, XEP-0280 ``<private/>`` (no carbon copies to
the user's other clients, which could not decrypt them anyway) and an XEP-0380
element naming OTR, so that a client without OTR can say why it cannot show
the message.  Plaintext messages carry none of these.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from slixmpp import JID, ClientXMPP, Message, Presence
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.jid import InvalidJID

from offrecord.transports.base import (
    Delivered,
    Disconnected,
    Notice,
    TransportError,
    TransportEvent,
    until_disconnected,
)

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "XMPPTransport",
    "build_message",
    "read_message",
]

# XMPP has no per-message limit of its own, but servers cap a whole stanza:
# ejabberd's shipped configuration at 64 KiB, Prosody at 256 KiB (c2s) and
# 512 KiB (s2s).  Half of the smallest common cap leaves room for the stanza
# around the body (addresses, id, hints) and keeps single stanzas small enough
# for mobile clients, while a long OTR message still fits in one stanza.
DEFAULT_MAX_MESSAGE_SIZE = 32 * 1024

HINTS_NS = "urn:xmpp:hints"
CARBONS_NS = "urn:xmpp:carbons:2"
EME_NS = "urn:xmpp:eme:0"
OTR_EME_NAMESPACE = "urn:xmpp:otr:0"
CONNECT_TIMEOUT = 30.0


class _NoStanzaLog(logging.Filter):
    """slixmpp logs every stanza it sends or receives at debug level: message
    bodies (a plaintext chat) and the login exchange.  Those records never
    reach a log, whatever level an application sets."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and record.msg.startswith(("SEND:", "RECV:")))


logging.getLogger("slixmpp.xmlstream.xmlstream").addFilter(_NoStanzaLog())
# slixmpp logs its errors (a refused certificate, a failed login) itself; this
# transport reports them as TransportError, so without logging configured by
# the application they are not printed a second time on stderr.
logging.getLogger("slixmpp").addHandler(logging.NullHandler())


def otr_hints() -> list[ET.Element]:
    """The elements that mark a message as OTR traffic not to be kept."""
    return [
        ET.Element(f"{{{HINTS_NS}}}no-store"),
        ET.Element(f"{{{HINTS_NS}}}no-copy"),
        ET.Element(f"{{{CARBONS_NS}}}private"),
        ET.Element(f"{{{EME_NS}}}encryption", {"namespace": OTR_EME_NAMESPACE, "name": "OTR"}),
    ]


def build_message(to: JID, text: str, *, otr: bool) -> Message:
    """A ``chat`` message stanza to ``to`` with ``text`` as its body, hinted
    as not to be stored or copied when it is OTR traffic."""
    message = Message()  # type: ignore[no-untyped-call]
    message["to"] = to
    message["type"] = "chat"
    message["body"] = text
    if otr:
        for element in otr_hints():
            message.xml.append(element)
    return message


def _is_carbon(message: Message) -> bool:
    return any(
        message.xml.find(f"{{{CARBONS_NS}}}{name}") is not None for name in ("sent", "received")
    )


def read_message(message: Message, own: JID) -> Delivered | Notice | None:
    """What a received message stanza means for the client: a buddy's message,
    a notice (an error the server or the buddy's server returned), or
    nothing (our own echoes and carbons, group chat, headlines, empty bodies
    such as chat-state notifications)."""
    sender = message["from"]
    kind = message["type"]
    if kind == "error":
        error = message["error"]
        condition = error["condition"] or "undefined-condition"
        detail = error["text"]
        who = sender.bare or own.domain
        text = f"message to {who} not delivered: {condition.replace('-', ' ')}"
        if detail:
            text += f" ({detail})"
        return Notice(sender.bare or None, text)
    if kind not in ("chat", "normal"):
        return None
    if _is_carbon(message) or not sender.bare or sender.bare == own.bare:
        return None
    body = message["body"]
    if not body:
        return None
    return Delivered(sender.bare, body)


def _certificate_problem(error: object) -> str:
    reason = getattr(error, "verify_message", None) or str(error)
    return f"the server's certificate was refused ({reason}); a private CA needs --ca-file"


def _disconnect_reason(reason: object) -> str:
    if isinstance(reason, ssl.SSLCertVerificationError):
        return _certificate_problem(reason)
    return f"disconnected ({reason or 'no reason given'})"


class _Client(ClientXMPP):
    """slixmpp's client, with the TLS rules of this transport."""

    def __init__(self, jid: str, password: str, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(jid, password, loop=loop)
        # STARTTLS on the client port only; never a plaintext stream.
        self.enable_direct_tls = False
        self.enable_starttls = True
        self.enable_plaintext = False
        # A client that has nothing to say still answers pings, so the
        # server keeps it; the whitespace keepalive does the same.
        self.whitespace_keepalive = True

    def stream_encrypted(self) -> bool:
        transport = self.transport
        return transport is not None and transport.get_extra_info("ssl_object") is not None


class XMPPTransport:
    """One XMPP account, a :class:`~offrecord.transports.base.ChatTransport`.

    ``jid`` may name a resource (``alice@example.org/laptop``); without one the
    server assigns it.  ``server`` overrides the host and port otherwise found
    through DNS SRV records of the JID's domain (the certificate is still
    checked against that domain).  ``ca_file`` adds a PEM file of trusted CA
    certificates to the system's.
    """

    def __init__(
        self,
        jid: str,
        password: str,
        *,
        server: tuple[str, int] | None = None,
        ca_file: str | Path | None = None,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        connect_timeout: float = CONNECT_TIMEOUT,
    ) -> None:
        try:
            parsed = JID(jid)
        except InvalidJID as exc:
            raise ValueError(f"not a valid JID: {jid!r}") from exc
        if not parsed.user or not parsed.domain:
            raise ValueError(f"a JID needs a user and a domain (user@domain): {jid!r}")
        if max_message_size < 0:
            raise ValueError("max_message_size must be >= 0")
        if ca_file is not None and not Path(ca_file).is_file():
            raise ValueError(f"CA file not found: {ca_file}")
        self._jid = parsed
        self._password = password
        self._server = server
        self._ca_file = Path(ca_file) if ca_file is not None else None
        self._max_message_size = max_message_size
        self._connect_timeout = connect_timeout
        self._client: _Client | None = None
        self._queue: asyncio.Queue[TransportEvent] = asyncio.Queue()
        self._last_resource: dict[str, JID] = {}
        self._online = False
        self._ended = False

    # -- identity -----------------------------------------------------------

    @property
    def protocol(self) -> str:
        return "prpl-jabber"

    @property
    def account_name(self) -> str:
        """``user@domain/resource`` as configured, the way Pidgin names an
        XMPP account in its OTR files: ``alice@example.org/`` when the server
        picks the resource."""
        return f"{self._jid.bare}/{self._jid.resource}"

    @property
    def jid(self) -> str:
        """The full JID the server bound (the configured one before connecting)."""
        if self._client is not None and self._online:
            return str(self._client.boundjid)
        return str(self._jid)

    def normalize(self, buddy: str) -> str:
        # The resource never matters (and may be empty, as in account names).
        address = buddy.strip().split("/", 1)[0]
        try:
            bare: str = JID(address).bare
        except InvalidJID:
            return address.lower()
        return bare

    def max_message_size(self, buddy: str) -> int:
        return self._max_message_size

    # -- connection ---------------------------------------------------------

    async def connect(self) -> None:
        if self._client is not None:
            raise TransportError("already connected")
        loop = asyncio.get_running_loop()
        client = _Client(str(self._jid), self._password, loop)
        if self._ca_file is not None:
            client.ca_certs = self._ca_file
        self._client = client
        outcome: asyncio.Future[str | None] = loop.create_future()

        def settle(result: str | None) -> None:
            if not outcome.done():
                outcome.set_result(result)

        def on_session_start(_: Any) -> None:
            if not client.stream_encrypted():
                settle("the server did not encrypt the connection (no STARTTLS)")
                return
            settle(None)

        client.add_event_handler("session_start", on_session_start)
        client.add_event_handler("message", self._on_message)
        client.add_event_handler("message_error", self._on_message_error)
        client.add_event_handler("presence_unavailable", self._on_unavailable)
        # slixmpp reports "no_auth" right after "failed_all_auth" when it did not
        # even try a mechanism; that more precise reason must win.
        client.add_event_handler(
            "failed_all_auth",
            lambda _: loop.call_soon(settle, "login failed (wrong JID or password?)"),
        )

        def on_no_auth(_: Any) -> None:
            if client.stream_encrypted():
                settle("the server offers no login method that is safe to use")
            else:
                settle("the server offers no encryption (STARTTLS); refusing to log in")

        client.add_event_handler("no_auth", on_no_auth)
        client.add_event_handler("ssl_invalid_chain", lambda err: settle(_certificate_problem(err)))
        client.add_event_handler("connection_failed", lambda err: settle(f"cannot connect: {err}"))
        client.add_event_handler(
            "stream_error", lambda err: settle(f"the server closed the stream: {err['condition']}")
        )
        client.add_event_handler("disconnected", lambda reason: settle(_disconnect_reason(reason)))
        host, port = self._server if self._server is not None else (None, None)
        client.connect(host, port)
        try:
            failure = await asyncio.wait_for(asyncio.shield(outcome), self._connect_timeout)
        except TimeoutError:
            failure = f"no answer from the server within {self._connect_timeout:g} s"
        if failure is not None:
            client.cancel_connection_attempt()
            client.abort()
            self._client = None
            raise TransportError(f"{self._jid.bare}: {failure}")
        self._online = True
        client.add_event_handler("disconnected", self._on_disconnected)
        client.add_event_handler("stream_error", self._on_stream_error)
        # Available presence, so the server routes messages sent to our bare
        # JID to us.  The server handles our stanzas in order, so once it has
        # answered the roster request that follows, the presence is in effect
        # and a buddy who writes to us right after we return is not bounced.
        client.send_presence()
        with contextlib.suppress(IqError, IqTimeout, TimeoutError):
            await asyncio.wait_for(client.get_roster(), self._connect_timeout)

    def _push(self, event: TransportEvent) -> None:
        if not self._ended:
            self._queue.put_nowait(event)
            if isinstance(event, Disconnected):
                self._ended = True

    def _on_message(self, message: Message) -> None:
        # A bounce that carries the original body matches both of slixmpp's
        # message handlers; it is reported once, as an error.
        if message["type"] != "error":
            self._read(message)

    def _on_message_error(self, message: Message) -> None:
        self._read(message)

    def _read(self, message: Message) -> None:
        own = self._client.boundjid if self._client is not None else self._jid
        try:
            event = read_message(message, own)
        except Exception:  # a malformed stanza must not end the connection
            return
        sender = message["from"]
        if isinstance(event, Delivered) and sender.resource:
            self._last_resource[event.sender] = sender
        elif isinstance(event, Notice) and event.sender is not None:
            # The resource we wrote to is gone: write to the bare JID again.
            self._last_resource.pop(event.sender, None)
        if event is not None:
            self._push(event)

    def _on_unavailable(self, presence: Presence) -> None:
        sender = presence["from"]
        if self._last_resource.get(sender.bare) == sender:
            del self._last_resource[sender.bare]

    def _on_stream_error(self, error: Any) -> None:
        self._push(Disconnected(f"the server closed the stream: {error['condition']}"))

    def _on_disconnected(self, reason: Any) -> None:
        self._online = False
        text = str(reason) if reason else "connection closed"
        self._push(Disconnected(text))

    # -- messages -----------------------------------------------------------

    def recipient(self, buddy: str) -> JID:
        """Where a message to ``buddy`` goes: the full JID the buddy last wrote
        from, else the bare JID."""
        bare = self.normalize(buddy)
        known = self._last_resource.get(bare)
        if known is not None:
            return known
        try:
            return JID(bare)
        except InvalidJID as exc:
            raise TransportError(f"not a valid JID: {buddy!r}") from exc

    async def send(self, buddy: str, text: str, *, otr: bool) -> None:
        client = self._client
        if client is None or not self._online:
            raise TransportError("not connected")
        to = self.recipient(buddy)
        if not to.user:
            raise TransportError(f"not a valid buddy address: {buddy!r}")
        message = build_message(to, text, otr=otr)
        message["from"] = client.boundjid
        client.send(message)
        # Give the send queue a turn, so a burst of fragments leaves in order
        # without growing an unbounded backlog.
        await asyncio.sleep(0)

    def events(self) -> AsyncIterator[TransportEvent]:
        return until_disconnected(self._queue)

    async def close(self) -> None:
        client = self._client
        if client is None:
            self._push(Disconnected("closed"))
            return
        self._client = None
        if self._online:
            self._online = False
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.disconnect(wait=2.0, reason="closed"), 5.0)
        client.abort()
        self._push(Disconnected("closed"))
