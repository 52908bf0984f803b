"""XMPP stanzas: hints only on OTR traffic, what counts as a buddy's message,
and bare/full JID handling, without a server."""

from __future__ import annotations

from xml.etree import ElementTree as ET

import pytest
from hypothesis import given
from hypothesis import strategies as st
from slixmpp import JID, Message, Presence

from offrecord.transports.base import Delivered, Notice
from offrecord.transports.xmpp import (
    DEFAULT_MAX_MESSAGE_SIZE,
    XMPPTransport,
    build_message,
    read_message,
)

OWN = JID("alice@example.org/laptop")
HINTS = "urn:xmpp:hints"


def _children(message: Message) -> set[str]:
    return {child.tag for child in message.xml}


def _parse(xml: str) -> Message:
    return Message(xml=ET.fromstring(xml))  # type: ignore[no-untyped-call]


def test_otr_messages_carry_every_hint() -> None:
    message = build_message(JID("bob@example.org/phone"), "?OTR:AAMD.", otr=True)
    tags = _children(message)
    assert f"{{{HINTS}}}no-store" in tags
    assert f"{{{HINTS}}}no-copy" in tags
    assert "{urn:xmpp:carbons:2}private" in tags
    eme = message.xml.find("{urn:xmpp:eme:0}encryption")
    assert eme is not None
    assert eme.get("namespace") == "urn:xmpp:otr:0"
    assert message["type"] == "chat"
    assert message["body"] == "?OTR:AAMD."
    assert str(message["to"]) == "bob@example.org/phone"


def test_plaintext_messages_carry_no_hint() -> None:
    message = build_message(JID("bob@example.org"), "hello", otr=False)
    assert _children(message) == {"{jabber:client}body"}


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1))
def test_body_round_trips_through_xml(text: str) -> None:
    message = build_message(JID("bob@example.org"), text, otr=False)
    message["from"] = "bob@example.org/phone"
    received = _parse(ET.tostring(message.xml, encoding="unicode"))
    assert read_message(received, OWN) == Delivered("bob@example.org", text)


def test_chat_and_normal_messages_are_delivered_by_bare_jid() -> None:
    for kind in ("chat", "normal"):
        stanza = _parse(
            f"<message xmlns='jabber:client' type='{kind}' from='Bob@Example.ORG/phone' "
            "to='alice@example.org/laptop'><body>hi</body></message>"
        )
        assert read_message(stanza, OWN) == Delivered("bob@example.org", "hi")


@pytest.mark.parametrize(
    "xml",
    [
        # group chat and headlines are not conversations
        "<message xmlns='jabber:client' type='groupchat' from='room@muc.example.org/bob'>"
        "<body>hi</body></message>",
        "<message xmlns='jabber:client' type='headline' from='news.example.org'>"
        "<body>hi</body></message>",
        # our own echo, from another of our resources
        "<message xmlns='jabber:client' type='chat' from='alice@example.org/phone'>"
        "<body>hi</body></message>",
        # a carbon copy of what our other client received or sent
        "<message xmlns='jabber:client' type='chat' from='alice@example.org'>"
        "<received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>"
        "<message xmlns='jabber:client' type='chat' from='bob@example.org/x'>"
        "<body>hi</body></message></forwarded></received></message>",
        "<message xmlns='jabber:client' type='chat' from='mallory@example.org'>"
        "<sent xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>"
        "<message xmlns='jabber:client' type='chat' to='bob@example.org/x'>"
        "<body>hi</body></message></forwarded></sent></message>",
        # chat states and other bodiless messages
        "<message xmlns='jabber:client' type='chat' from='bob@example.org/x'>"
        "<composing xmlns='http://jabber.org/protocol/chatstates'/></message>",
        # no sender at all
        "<message xmlns='jabber:client' type='chat'><body>hi</body></message>",
    ],
)
def test_not_a_buddy_message(xml: str) -> None:
    assert read_message(_parse(xml), OWN) is None


def test_errors_become_notices_about_the_buddy() -> None:
    stanza = _parse(
        "<message xmlns='jabber:client' type='error' from='bob@example.org/gone'>"
        "<body>?OTR:AAMD.</body><error type='cancel'>"
        "<service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
        "<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>User offline</text>"
        "</error></message>"
    )
    event = read_message(stanza, OWN)
    assert isinstance(event, Notice)
    assert event.sender == "bob@example.org"
    assert "service unavailable" in event.text
    assert "User offline" in event.text
    # the bounced body (maybe our plaintext) is never shown back
    assert "?OTR" not in event.text


def test_error_without_sender_concerns_the_server() -> None:
    stanza = _parse(
        "<message xmlns='jabber:client' type='error'><error type='cancel'>"
        "<not-allowed xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>"
    )
    event = read_message(stanza, OWN)
    assert event == Notice(None, "message to example.org not delivered: not allowed")


def test_identity_follows_pidgin() -> None:
    assert XMPPTransport("alice@example.org", "pw").account_name == "alice@example.org/"
    with_resource = XMPPTransport("Alice@Example.org/Laptop", "pw")
    assert with_resource.account_name == "alice@example.org/Laptop"
    assert with_resource.protocol == "prpl-jabber"


def test_normalize_keys_conversations_by_bare_jid() -> None:
    transport = XMPPTransport("alice@example.org", "pw")
    assert transport.normalize("Bob@Example.ORG/Phone") == "bob@example.org"
    assert transport.normalize(" bob@example.org ") == "bob@example.org"
    assert transport.normalize("bob@example.org/") == "bob@example.org"
    assert transport.normalize(transport.account_name) == "alice@example.org"
    assert transport.normalize("bob@example.org") == transport.normalize("BOB@example.org/x")


def test_recipient_is_bare_until_the_buddy_writes() -> None:
    transport = XMPPTransport("alice@example.org", "pw")
    assert str(transport.recipient("Bob@example.org/any")) == "bob@example.org"


@pytest.mark.parametrize("jid", ["example.org", "@example.org", "alice@", "a@b@c", ""])
def test_bad_account_jids_are_refused(jid: str) -> None:
    with pytest.raises(ValueError):
        XMPPTransport(jid, "pw")


def test_message_size_is_configurable() -> None:
    assert XMPPTransport("a@example.org", "pw").max_message_size("b@x") == (
        DEFAULT_MAX_MESSAGE_SIZE
    )
    assert XMPPTransport("a@example.org", "pw", max_message_size=4000).max_message_size("b") == (
        4000
    )
    with pytest.raises(ValueError):
        XMPPTransport("a@example.org", "pw", max_message_size=-1)


def test_missing_ca_file_is_an_error() -> None:
    with pytest.raises(ValueError, match="CA file"):
        XMPPTransport("a@example.org", "pw", ca_file="/nonexistent/ca.pem")


def test_stanzas_never_reach_the_logs(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    stream_log = logging.getLogger("slixmpp.xmlstream.xmlstream")
    with caplog.at_level(logging.DEBUG):
        stream_log.debug("SEND: %s", "<auth mechanism='PLAIN'>AGFsaWNlAHNlY3JldA==</auth>")
        stream_log.debug("RECV: %s", "<message><body>plaintext secret</body></message>")
        stream_log.debug("connection_made")
    assert "secret" not in caplog.text
    assert "AGFsaWNl" not in caplog.text
    assert "connection_made" in caplog.text


def test_a_bounce_with_its_body_is_one_notice() -> None:
    """slixmpp fires both "message" and "message_error" for an error stanza
    that carries the original body; the transport reports it once, and an
    error from the buddy's resource makes it write to the bare JID again."""
    transport = XMPPTransport("alice@example.org", "pw")
    chat = _parse(
        "<message xmlns='jabber:client' type='chat' from='bob@example.org/phone'>"
        "<body>?OTR:AAMD.</body></message>"
    )
    transport._on_message(chat)
    assert str(transport.recipient("bob@example.org")) == "bob@example.org/phone"
    bounce = _parse(
        "<message xmlns='jabber:client' type='error' from='bob@example.org/phone'>"
        "<body>?OTR:AAMD.</body><error type='cancel'>"
        "<service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>"
    )
    transport._on_message(bounce)
    transport._on_message_error(bounce)
    queued = []
    while not transport._queue.empty():
        queued.append(transport._queue.get_nowait())
    assert queued[0] == Delivered("bob@example.org", "?OTR:AAMD.")
    assert len(queued) == 2 and isinstance(queued[1], Notice)
    assert str(transport.recipient("bob@example.org")) == "bob@example.org"


def _unavailable(sender: str) -> Presence:
    xml = f"<presence xmlns='jabber:client' type='unavailable' from='{sender}'/>"
    return Presence(xml=ET.fromstring(xml))


def test_unavailable_resource_is_forgotten() -> None:
    transport = XMPPTransport("alice@example.org", "pw")
    transport._on_message(
        _parse(
            "<message xmlns='jabber:client' type='chat' from='bob@example.org/phone'>"
            "<body>hi</body></message>"
        )
    )
    other = _unavailable("bob@example.org/laptop")
    transport._on_unavailable(other)
    assert str(transport.recipient("bob@example.org")) == "bob@example.org/phone"
    gone = _unavailable("bob@example.org/phone")
    transport._on_unavailable(gone)
    assert str(transport.recipient("bob@example.org")) == "bob@example.org"
