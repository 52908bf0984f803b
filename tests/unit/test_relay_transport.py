"""The in-process relay keeps the transport contract like a real network."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from offrecord.transports.base import Delivered, Disconnected, Notice, TransportError
from offrecord.transports.relay import Carried, RelayNetwork, relay_pair


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 10))


def test_messages_arrive_in_order_and_are_observed() -> None:
    async def scenario() -> None:
        seen: list[Carried] = []
        alice, bob = relay_pair(observer=seen.append)
        await alice.connect()
        await bob.connect()
        for n in range(5):
            await alice.send("BOB", f"message {n}", otr=n % 2 == 1)
        events = bob.events()
        for n in range(5):
            assert await anext(events) == Delivered("alice", f"message {n}")
        assert [c.otr for c in seen] == [False, True, False, True, False]
        assert {c.recipient for c in seen} == {"bob"}

    run(scenario)


def test_limit_is_reported_and_enforced() -> None:
    async def scenario() -> None:
        alice, bob = relay_pair(max_message_size=10)
        assert alice.max_message_size("bob") == 10
        await alice.connect()
        await bob.connect()
        await alice.send("bob", "x" * 10, otr=False)
        with pytest.raises(TransportError, match="limit"):
            await alice.send("bob", "x" * 11, otr=False)

    run(scenario)


def test_writing_to_nobody_is_a_notice() -> None:
    async def scenario() -> None:
        alice, _bob = relay_pair()
        await alice.connect()
        await alice.send("bob", "hello?", otr=False)
        event = await anext(alice.events())
        assert isinstance(event, Notice)
        assert event.sender == "bob"

    run(scenario)


def test_close_ends_the_events_and_sending() -> None:
    async def scenario() -> None:
        alice, bob = relay_pair()
        await alice.connect()
        await bob.connect()
        events = alice.events()
        await alice.close()
        await alice.close()
        assert await anext(events) == Disconnected("closed")
        with pytest.raises(StopAsyncIteration):
            await anext(events)
        with pytest.raises(TransportError):
            await alice.send("bob", "late", otr=False)
        with pytest.raises(TransportError):
            await alice.connect()

    run(scenario)


def test_an_address_is_used_once() -> None:
    async def scenario() -> None:
        network = RelayNetwork()
        await network.transport("alice").connect()
        with pytest.raises(TransportError, match="in use"):
            await network.transport("Alice").connect()

    run(scenario)
