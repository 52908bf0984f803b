"""Two XMPPTransports talk through a real Prosody on loopback."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from offrecord.transports.base import Delivered, Disconnected, Notice, TransportError
from offrecord.transports.xmpp import XMPPTransport
from tests.integration.prosody import MISMATCHED_DOMAIN, PLAIN_DOMAIN, Prosody, prosody_server

__all__ = ["prosody_server"]

TIMEOUT = 10.0


def _transport(server: Prosody, user: str, **options: object) -> XMPPTransport:
    return XMPPTransport(
        server.jid(user),
        server.passwords[user],
        server=server.address,
        ca_file=server.ca_file,
        **options,  # type: ignore[arg-type]
    )


async def _next(events: AsyncIterator[object]) -> object:
    return await asyncio.wait_for(anext(events), TIMEOUT)


def run(coro: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(coro(), 60))


def test_messages_both_ways_with_hints_only_on_otr(prosody_server: Prosody) -> None:
    async def scenario() -> None:
        alice = _transport(prosody_server, "alice")
        bob = _transport(prosody_server, "bob")
        await alice.connect()
        await bob.connect()
        try:
            assert alice.protocol == "prpl-jabber"
            assert alice.account_name == "alice@offrecord.test/"
            alice_events, bob_events = alice.events(), bob.events()
            await alice.send("Bob@Offrecord.Test", "hello in plaintext", otr=False)
            got = await _next(bob_events)
            assert got == Delivered("alice@offrecord.test", "hello in plaintext")
            long = "?OTR:" + "A" * 20000 + "."
            await bob.send("alice@offrecord.test", long, otr=True)
            assert await _next(alice_events) == Delivered("bob@offrecord.test", long)
            # Alice now knows Bob's resource and answers it, not the bare JID.
            assert alice.recipient("bob@offrecord.test").resource != ""
            await alice.send("bob@offrecord.test", "?OTR:AAMD.", otr=True)
            assert await _next(bob_events) == Delivered("alice@offrecord.test", "?OTR:AAMD.")
        finally:
            await alice.close()
            await bob.close()
            await alice.close()  # twice is fine

        sent = prosody_server.received_bodies()
        stanzas = prosody_server.log_file.read_text()
        assert [body for _, body in sent] == ["hello in plaintext", long, "?OTR:AAMD."]
        # The hints went over the wire with OTR messages only.
        plain_stanza = next(s for s in stanzas.split("RECV: ") if "hello in plaintext" in s)
        otr_stanza = next(s for s in stanzas.split("RECV: ") if "?OTR:AAMD." in s)
        for hint in ("no-store", "no-copy", "urn:xmpp:carbons:2", "urn:xmpp:otr:0"):
            assert hint in otr_stanza.split("</message>")[0]
            assert hint not in plain_stanza.split("</message>")[0]

    run(scenario)


def test_message_to_unknown_user_becomes_a_notice(prosody_server: Prosody) -> None:
    async def scenario() -> None:
        alice = _transport(prosody_server, "alice")
        await alice.connect()
        try:
            await alice.send("nobody@offrecord.test", "anyone there?", otr=False)
            event = await _next(alice.events())
            assert isinstance(event, Notice)
            assert event.sender == "nobody@offrecord.test"
            assert "not delivered" in event.text
        finally:
            await alice.close()

    run(scenario)


def test_wrong_password_is_a_transport_error(prosody_server: Prosody) -> None:
    async def scenario() -> None:
        alice = XMPPTransport(
            prosody_server.jid("alice"),
            "wrong",
            server=prosody_server.address,
            ca_file=prosody_server.ca_file,
        )
        with pytest.raises(TransportError, match="login failed"):
            await alice.connect()

    run(scenario)


def test_untrusted_certificate_is_refused(prosody_server: Prosody) -> None:
    """Without the test CA the self-signed chain must not be accepted."""

    async def scenario() -> None:
        alice = XMPPTransport(
            prosody_server.jid("alice"), "alice-secret", server=prosody_server.address
        )
        with pytest.raises(TransportError, match=r"certificate was refused.*--ca-file"):
            await alice.connect()

    run(scenario)


def test_certificate_for_another_domain_is_refused(prosody_server: Prosody) -> None:
    """The certificate must name the JID's domain, even one signed by a
    trusted CA."""

    async def scenario() -> None:
        alice = XMPPTransport(
            f"alice@{MISMATCHED_DOMAIN}",
            "alice-secret",
            server=prosody_server.address,
            ca_file=prosody_server.ca_file,
        )
        with pytest.raises(TransportError, match=r"certificate was refused.*mismatch\.test"):
            await alice.connect()

    run(scenario)


def test_server_without_tls_is_refused(prosody_server: Prosody) -> None:
    """A server that offers no STARTTLS never gets the password or a message."""

    async def scenario() -> None:
        alice = XMPPTransport(
            f"alice@{PLAIN_DOMAIN}",
            "alice-secret",
            server=prosody_server.address,
            ca_file=prosody_server.ca_file,
        )
        with pytest.raises(TransportError, match=r"no encryption \(STARTTLS\); refusing to log in"):
            await alice.connect()

    run(scenario)
    log = prosody_server.log_file.read_text()
    assert "<auth" not in log


def test_server_going_away_ends_the_events(prosody_server: Prosody) -> None:
    async def scenario() -> None:
        alice = _transport(prosody_server, "alice")
        await alice.connect()
        events = alice.events()
        prosody_server.stop()
        event = await _next(events)
        assert isinstance(event, Disconnected)
        with pytest.raises(StopAsyncIteration):
            await _next(events)
        with pytest.raises(TransportError):
            await alice.send("bob@offrecord.test", "late", otr=False)
        await alice.close()

    run(scenario)


def test_nothing_said_reaches_the_logs(
    prosody_server: Prosody, caplog: pytest.LogCaptureFixture
) -> None:
    """With every logger at debug level, a conversation through the server
    leaves no message text and no password in any log record."""

    async def scenario() -> None:
        alice = _transport(prosody_server, "alice")
        bob = _transport(prosody_server, "bob")
        await alice.connect()
        await bob.connect()
        try:
            await alice.send("bob@offrecord.test", "a plaintext only Bob reads", otr=False)
            assert await _next(bob.events()) == Delivered(
                "alice@offrecord.test", "a plaintext only Bob reads"
            )
        finally:
            await alice.close()
            await bob.close()

    with caplog.at_level(logging.DEBUG):
        run(scenario)
    assert any(record.name.startswith("slixmpp") for record in caplog.records)
    for secret in ("a plaintext only Bob reads", "alice-secret", "bob-secret"):
        assert secret not in caplog.text
