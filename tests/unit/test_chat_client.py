"""The chat client through an in-memory network: AKE, messages, fragments,
SMP, trust, policies, held messages, flagged plaintext, several buddies, and
the script runner."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

import pytest

from offrecord.account import Account
from offrecord.chat import commands as cmd
from offrecord.chat.client import ChatClient, policy_name
from offrecord.chat.render import ChatState, Line, script_line
from offrecord.chat.script import (
    EXIT_COMMAND_FAILED,
    EXIT_DISCONNECTED,
    EXIT_OK,
    EXIT_WAIT_TIMEOUT,
    ScriptOutput,
    run_script,
)
from offrecord.crypto.dsa import DSAPrivateKey, generate_private_key
from offrecord.crypto.primitives import system_random
from offrecord.policy import Policy
from offrecord.transports.base import (
    Delivered,
    Disconnected,
    Notice,
    TransportError,
    TransportEvent,
)

# -- an in-memory network ------------------------------------------------------


class Network:
    """Carries messages between :class:`FakeTransport` instances by name."""

    def __init__(self) -> None:
        self.members: dict[str, FakeTransport] = {}
        # Every message as the network saw it: (sender, recipient, text, otr).
        self.log: list[tuple[str, str, str, bool]] = []


class FakeTransport:
    """A :class:`~offrecord.transports.base.ChatTransport` on a :class:`Network`."""

    def __init__(self, network: Network, name: str, *, max_size: int = 0) -> None:
        self.network = network
        self.name = name
        self.max_size = max_size
        self.queue: asyncio.Queue[TransportEvent] = asyncio.Queue()
        self.closed = False
        network.members[name] = self

    @property
    def protocol(self) -> str:
        return "prpl-fake"

    @property
    def account_name(self) -> str:
        return f"{self.name}@fake"

    def normalize(self, buddy: str) -> str:
        return buddy.lower()

    def max_message_size(self, buddy: str) -> int:
        return self.max_size

    async def connect(self) -> None:
        pass

    async def send(self, buddy: str, text: str, *, otr: bool) -> None:
        if self.closed:
            raise TransportError("closed")
        if self.max_size:
            assert len(text) <= self.max_size or not text.startswith("?OTR"), text
        self.network.log.append((self.name, buddy, text, otr))
        peer = self.network.members.get(buddy)
        if peer is None:
            self.queue.put_nowait(Notice(buddy, "No such nick"))
        else:
            peer.queue.put_nowait(Delivered(self.name, text))

    def inject(self, sender: str, text: str) -> None:
        """A message from ``sender`` that did not go through a client."""
        self.queue.put_nowait(Delivered(sender, text))

    async def events(self) -> AsyncIterator[TransportEvent]:
        while True:
            event = await self.queue.get()
            yield event
            if isinstance(event, Disconnected):
                return

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.queue.put_nowait(Disconnected("closed"))


_KEYS: dict[str, DSAPrivateKey] = {}


def key_for(name: str) -> DSAPrivateKey:
    if name not in _KEYS:
        _KEYS[name] = generate_private_key(system_random)
    return _KEYS[name]


class Party:
    """A client on the network, with everything it showed."""

    def __init__(self, network: Network, name: str, *, policy: Policy = Policy.MANUAL,
                 max_size: int = 0) -> None:  # fmt: skip
        self.transport = FakeTransport(network, name, max_size=max_size)
        self.account = Account(
            self.transport.account_name,
            self.transport.protocol,
            key_for(name),
            policy=policy,
            clock=time.monotonic,
        )
        self.lines: list[Line] = []
        self.client = ChatClient(self.account, self.transport, self.lines.append,
                                 tick_interval=0.05)  # fmt: skip
        self.task = asyncio.ensure_future(self.client.receive_loop())
        self.ticker = asyncio.ensure_future(self.client.tick_loop())

    @property
    def script(self) -> list[str]:
        return [script_line(line) for line in self.lines]

    def has(self, prefix: str) -> bool:
        return any(text.startswith(prefix) for text in self.script)

    async def do(self, line: str) -> bool:
        command = cmd.parse_input(line)
        assert command is not None
        return await self.client.handle(command)

    async def stop(self) -> None:
        self.ticker.cancel()
        await self.client.quit()
        await asyncio.wait_for(self.task, 5)


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.005)


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 60))


async def secured_pair(
    *, alice_policy: Policy = Policy.MANUAL, bob_policy: Policy = Policy.MANUAL,
    max_size: int = 0,
) -> tuple[Network, Party, Party]:  # fmt: skip
    network = Network()
    alice = Party(network, "alice", policy=alice_policy, max_size=max_size)
    bob = Party(network, "bob", policy=bob_policy, max_size=max_size)
    assert await alice.do("/query bob")
    assert await bob.do("/query alice")
    assert await alice.do("/otr start")
    await until(lambda: alice.has("secured bob") and bob.has("secured alice"))
    return network, alice, bob


def with_pair(body: Callable[[Network, Party, Party], Awaitable[None]], **options: Any) -> None:
    async def test() -> None:
        network, alice, bob = await secured_pair(**options)
        try:
            await body(network, alice, bob)
        finally:
            await alice.stop()
            await bob.stop()

    run(test)


# -- AKE and messages ------------------------------------------------------------


def test_ake_then_encrypted_messages_both_ways() -> None:
    async def body(network: Network, alice: Party, bob: Party) -> None:
        assert "state bob encrypted-unverified" in alice.script
        assert "state alice encrypted-unverified" in bob.script
        assert alice.client.state_of("bob") is ChatState.UNVERIFIED
        assert await alice.do("hello bob")
        assert await bob.do("hello alice")
        await until(lambda: bob.has("recv alice encrypted hello bob"))
        await until(lambda: alice.has("recv bob encrypted hello alice"))
        assert "sent bob encrypted hello bob" in alice.script
        texts = [text for _, _, text, _ in network.log]
        assert not any("hello" in text for text in texts)
        # OTR traffic is flagged for the transport (XMPP no-store hints).
        assert all(otr == text.startswith("?OTR") for _, _, text, otr in network.log)
        secured = next(line for line in alice.lines if line.kind == "secured")
        assert secured.words[0] == "v3"
        assert secured.words[1] == bob.account.fingerprint.hex().upper()
        assert secured.words[2] == "unverified"

    with_pair(body)


def test_fragments_follow_the_network_limit() -> None:
    long_text = "fragment me " * 300

    async def body(network: Network, alice: Party, bob: Party) -> None:
        assert await alice.do(long_text)
        await until(lambda: bob.has("recv alice encrypted fragment me"))
        received = next(line for line in bob.lines if line.kind == "recv")
        assert received.text == long_text.rstrip("\r\n")
        sent = [text for sender, _, text, _ in network.log if sender == "alice"]
        assert max(len(text) for text in sent) <= 300
        assert sum(text.startswith("?OTR|") for text in sent) >= 10
        assert alice.account.max_message_size == 300

    with_pair(body, max_size=300)


def test_smp_with_a_question_verifies_the_asker_only() -> None:
    async def body(network: Network, alice: Party, bob: Party) -> None:
        assert await alice.do('/otr smp "our first city?" lisbon')
        await until(lambda: bob.has("smp-asked alice our first city?"))
        assert "alice" in bob.client.smp_pending
        assert await bob.do("/otr smp-respond lisbon")
        await until(lambda: alice.has("smp-result bob success verified"))
        await until(lambda: bob.has("smp-result alice success unverified"))
        assert "state bob encrypted-verified" in alice.script
        assert alice.client.state_of("bob") is ChatState.VERIFIED
        assert bob.client.state_of("alice") is ChatState.UNVERIFIED
        assert not any("lisbon" in text for _, _, text, _ in network.log)
        assert not any("lisbon" in script_line(line) for line in alice.lines + bob.lines)

    with_pair(body)


def test_smp_with_different_secrets_fails() -> None:
    async def body(network: Network, alice: Party, bob: Party) -> None:
        assert await alice.do("/otr smp right")
        await until(lambda: bob.has("smp-asked alice"))
        assert await bob.do("/otr smp-respond wrong")
        await until(lambda: alice.has("smp-result bob failure unverified"))
        await until(lambda: bob.has("smp-result alice failure"))
        assert alice.client.state_of("bob") is ChatState.UNVERIFIED

    with_pair(body)


def test_smp_abort_and_answer_without_a_request() -> None:
    async def body(network: Network, alice: Party, bob: Party) -> None:
        assert not await bob.do("/otr smp-respond nothing-asked")
        assert bob.has("error alice the buddy has not asked")
        assert await alice.do("/otr smp secret")
        await until(lambda: bob.has("smp-asked alice"))
        assert await bob.do("/otr smp-abort")
        await until(lambda: alice.has("smp-aborted bob"))
        assert "alice" not in bob.client.smp_pending

    with_pair(body)


def test_trust_and_distrust_change_the_state() -> None:
    async def body(network: Network, alice: Party, bob: Party) -> None:
        assert await alice.do("/otr trust")
        fingerprint = bob.account.fingerprint.hex().upper()
        assert f"trust bob {fingerprint} verified" in alice.script
        assert alice.client.state_of("bob") is ChatState.VERIFIED
        assert alice.script[-1] == "state bob encrypted-verified"
        assert await alice.do("/otr distrust")
        assert alice.client.state_of("bob") is ChatState.UNVERIFIED
        assert alice.script[-1] == "state bob encrypted-unverified"

    with_pair(body)


def test_status_and_fingerprints() -> None:
    async def body(network: Network, alice: Party, bob: Party) -> None:
        assert await alice.do("/otr status")
        status = alice.script[-1]
        assert status.startswith("status bob state=encrypted-unverified version=3 ")
        assert f"fingerprint={bob.account.fingerprint.hex().upper()}" in status
        assert "policy=manual" in status
        assert await alice.do("/otr fingerprint")
        assert f"fingerprint - ours {alice.account.fingerprint.hex().upper()}" in alice.script
        theirs = f"fingerprint bob theirs {bob.account.fingerprint.hex().upper()} unverified"
        assert theirs in alice.script

    with_pair(body)


def test_end_leaves_the_buddy_finished_and_messages_are_refused() -> None:
    async def body(network: Network, alice: Party, bob: Party) -> None:
        assert await alice.do("/otr end")
        assert "state bob plaintext" in alice.script
        await until(lambda: bob.has("state alice finished"))
        sent_before = len(network.log)
        assert not await bob.do("this must not leak")
        assert bob.has("not-sent alice")
        assert len(network.log) == sent_before
        assert await bob.do("/otr end")
        assert bob.script[-1] == "state alice plaintext"

    with_pair(body)


def test_plaintext_during_a_private_session_is_flagged() -> None:
    async def body(network: Network, alice: Party, bob: Party) -> None:
        alice.transport.inject("bob", "sneaky plaintext")
        await until(lambda: alice.has("recv bob unencrypted sneaky plaintext"))
        line = next(line for line in alice.lines if line.kind == "recv")
        assert line.state is ChatState.UNVERIFIED

    with_pair(body)


def test_quit_ends_private_conversations() -> None:
    async def test() -> None:
        _network, alice, bob = await secured_pair()
        await alice.stop()
        await until(lambda: bob.has("state alice finished"))
        await bob.stop()
        assert alice.transport.closed

    run(test)


# -- policies ----------------------------------------------------------------------


def test_policy_always_holds_messages_until_encrypted() -> None:
    async def test() -> None:
        network = Network()
        alice = Party(network, "alice", policy=Policy.ALWAYS)
        bob = Party(network, "bob", policy=Policy.MANUAL)
        assert await alice.do("/query bob")
        assert await alice.do("wait for it")
        assert "held bob 1 wait for it" in alice.script
        await until(lambda: bob.has("recv alice encrypted wait for it"))
        assert alice.has("resent bob 1")
        assert not any("wait for it" in text for _, _, text, _ in network.log)
        await alice.stop()
        await bob.stop()

    run(test)


def test_policy_never_sends_plaintext_and_refuses_otr_start() -> None:
    async def test() -> None:
        network = Network()
        alice = Party(network, "alice", policy=Policy.MANUAL)
        bob = Party(network, "bob", policy=Policy.MANUAL)
        assert await alice.do("/otr policy never")
        assert alice.script[-1] == "policy - never"
        assert await alice.do("/query bob")
        assert not await alice.do("/otr start")
        assert alice.has("error bob the policy is 'never'")
        assert await alice.do("plain words")
        await until(lambda: bob.has("recv alice plaintext plain words"))
        assert "sent bob plaintext plain words" in alice.script
        # OTR off: a query is shown as the text it is, and nothing answers it.
        assert await bob.do("/query alice")
        assert await bob.do("/otr start")
        await until(lambda: alice.has("recv bob plaintext ?OTRv23?"))
        assert not any(sender == "alice" and text.startswith("?OTR")
                       for sender, _, text, _ in network.log)  # fmt: skip
        assert await alice.do("/otr policy")
        assert alice.script[-1] == "policy - never"
        await alice.stop()
        await bob.stop()

    run(test)


def test_opportunistic_policies_start_otr_by_themselves() -> None:
    async def test() -> None:
        network = Network()
        alice = Party(network, "alice", policy=Policy.OPPORTUNISTIC)
        bob = Party(network, "bob", policy=Policy.OPPORTUNISTIC)
        assert await alice.do("/query bob")
        assert await alice.do("hi, do you speak OTR?")
        await until(lambda: alice.has("secured bob") and bob.has("secured alice"))
        assert bob.has("recv alice plaintext hi, do you speak OTR?")
        await alice.stop()
        await bob.stop()

    run(test)


def test_policy_names() -> None:
    for name in ("never", "manual", "opportunistic", "always"):
        assert policy_name(Policy.preset(name)) == name
    assert policy_name(Policy.ALLOW_V3) == "allow_v3"


# -- several buddies, errors ---------------------------------------------------------


def test_several_buddies_each_have_their_own_conversation() -> None:
    async def test() -> None:
        network = Network()
        alice = Party(network, "alice")
        bob = Party(network, "bob")
        carol = Party(network, "carol")
        assert await alice.do("/query bob")
        assert await alice.do("/otr start")
        assert await alice.do("/msg Carol plain hello")
        await until(lambda: alice.has("secured bob"))
        await until(lambda: carol.has("recv alice plaintext plain hello"))
        assert alice.client.state_of("bob") is ChatState.UNVERIFIED
        assert alice.client.state_of("carol") is ChatState.PLAINTEXT
        assert await carol.do("/query alice")
        assert await carol.do("/otr start")
        await until(lambda: alice.has("secured carol"))
        assert await alice.do("/msg carol to carol")
        assert await alice.do("to bob")
        await until(lambda: carol.has("recv alice encrypted to carol"))
        await until(lambda: bob.has("recv alice encrypted to bob"))
        assert not carol.has("recv alice encrypted to bob")
        assert list(alice.client.buddies) == ["bob", "carol"]
        for party in (alice, bob, carol):
            await party.stop()

    run(test)


def test_commands_need_a_buddy() -> None:
    async def test() -> None:
        alice = Party(Network(), "alice")
        for line in ("hello", "/otr start", "/otr status", "/me waves"):
            assert not await alice.do(line)
            assert alice.script[-1] == "error - no buddy: /query NICK first"
        assert await alice.do("/help")
        assert alice.has("help - /query NICK")
        await alice.stop()

    run(test)


def test_commands_that_need_a_private_conversation() -> None:
    async def test() -> None:
        alice = Party(Network(), "alice")
        assert await alice.do("/query bob")
        assert not await alice.do("/otr smp secret")
        assert not await alice.do("/otr trust")
        assert await alice.do("/otr end")
        assert alice.script[-1] == "info bob no private conversation to end"
        assert await alice.do("/otr fingerprint")
        assert alice.script[-1].startswith("fingerprint bob theirs - ")
        await alice.stop()

    run(test)


def test_network_notices_are_shown() -> None:
    async def test() -> None:
        alice = Party(Network(), "alice")
        assert await alice.do("/msg nobody hello")
        await until(lambda: alice.has("notice nobody No such nick"))
        await alice.stop()

    run(test)


def test_the_network_limit_is_the_smallest_for_any_buddy() -> None:
    async def test() -> None:
        network = Network()
        alice = Party(network, "alice", max_size=0)
        sizes = {"bob": 400, "carol": 250}
        alice.transport.max_message_size = lambda buddy: sizes.get(buddy, 0)  # type: ignore[method-assign]
        await alice.do("/query bob")
        await alice.client.flush()
        assert alice.account.max_message_size == 400
        await alice.do("/query carol")
        await alice.client.flush()
        assert alice.account.max_message_size == 250
        sizes["carol"] = 5  # never below what OTR fragments need
        await alice.client.flush()
        assert alice.account.max_message_size > 5
        await alice.stop()

    run(test)


def test_disconnect_is_reported() -> None:
    async def test() -> None:
        alice = Party(Network(), "alice")
        alice.transport.queue.put_nowait(Disconnected("server went away"))
        await asyncio.wait_for(alice.task, 5)
        assert alice.client.disconnected == "server went away"
        assert alice.script[-1] == "disconnected - server went away"
        alice.ticker.cancel()

    run(test)


# -- the script runner -----------------------------------------------------------------


def scripted(lines: list[str], *, peer_lines: list[str] | None = None) -> tuple[int, list[str]]:
    """Run ``lines`` as alice's script against bob (who runs ``peer_lines``)."""

    async def test() -> tuple[int, list[str]]:
        network = Network()
        printed: list[str] = []
        output = ScriptOutput(printed.append)
        transport = FakeTransport(network, "alice")
        account = Account("alice@fake", "prpl-fake", key_for("alice"), policy=Policy.MANUAL,
                          clock=time.monotonic)  # fmt: skip
        client = ChatClient(account, transport, output, tick_interval=0.05)
        bob = Party(network, "bob")
        for line in peer_lines or []:
            await bob.do(line)
        task = asyncio.ensure_future(client.receive_loop())
        status = await run_script(client, output, lines, network=task)
        await client.quit()
        await bob.stop()
        return status, printed

    return asyncio.run(asyncio.wait_for(test(), 60))


def test_script_waits_for_events_and_exits_zero() -> None:
    status, printed = scripted(
        ["/query bob", "/otr start", "/wait secured bob 10", "secret plans", "/sleep 0.01"]
    )
    assert status == EXIT_OK
    assert "sent bob encrypted secret plans" in printed


def test_script_wait_matches_lines_printed_before_it() -> None:
    status, _printed = scripted(
        ["/query bob", "/otr start", "/sleep 0.3", "/wait state bob encrypted 5",
         "/wait query bob 1"],
    )  # fmt: skip
    assert status == EXIT_OK


def test_script_wait_consumes_each_line_once() -> None:
    status, printed = scripted(["/query bob", "/wait query bob 1", "/wait query bob 0.2"])
    assert status == EXIT_WAIT_TIMEOUT
    assert printed[-1] == "timeout - query bob"


def test_script_errors_make_the_exit_status_nonzero() -> None:
    status, printed = scripted(["/nonsense", "/query bob", "still runs"])
    assert status == EXIT_COMMAND_FAILED
    assert printed[0].startswith("error - unknown command /nonsense")
    assert "sent bob plaintext still runs" in printed


def test_script_quit_stops_early() -> None:
    status, printed = scripted(["/query bob", "/quit", "never sent"])
    assert status == EXIT_OK
    assert not any("never sent" in line for line in printed)


def test_script_ends_when_the_network_goes_away() -> None:
    async def test() -> int:
        network = Network()
        output = ScriptOutput(lambda _: None)
        transport = FakeTransport(network, "alice")
        account = Account("alice@fake", "prpl-fake", key_for("alice"), clock=time.monotonic)
        client = ChatClient(account, transport, output)
        task = asyncio.ensure_future(client.receive_loop())

        async def lines() -> AsyncIterator[str]:
            yield "/query bob"
            await transport.close()
            yield "/wait never 30"

        return await run_script(client, output, lines(), network=task)

    assert asyncio.run(asyncio.wait_for(test(), 20)) == EXIT_DISCONNECTED


@pytest.mark.parametrize("pattern", ["recv", "recv bob", "recv bob encrypted hel"])
def test_wait_patterns_are_prefixes(pattern: str) -> None:
    async def test() -> bool:
        output = ScriptOutput(lambda _: None)
        output.emit("recv bob encrypted hello")
        never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        return await output.wait(pattern, 0.1, never)

    assert asyncio.run(test())


def test_buddies_lists_every_conversation_with_its_state() -> None:
    async def body(network: Network, alice: Party, bob: Party) -> None:
        assert await alice.do("/msg carol hi")
        assert await alice.do("/buddies")
        assert alice.script[-2:] == [
            "buddy bob encrypted-unverified current",
            "buddy carol plaintext",
        ]

    with_pair(body)


def test_buddies_before_any_conversation() -> None:
    async def test() -> None:
        alice = Party(Network(), "alice")
        assert await alice.do("/buddies")
        assert alice.script[-1] == "info - no conversations yet: /query NICK"
        await alice.stop()

    run(test)


def test_nothing_secret_reaches_the_logs(caplog: pytest.LogCaptureFixture) -> None:
    """With every logger at DEBUG, a whole conversation (AKE, messages, SMP with
    a question, end) leaves no message text, secret or question in any record."""
    caplog.set_level(logging.DEBUG)

    async def body(network: Network, alice: Party, bob: Party) -> None:
        assert await alice.do("confidential-plan")
        await until(lambda: bob.has("recv alice encrypted confidential-plan"))
        assert await alice.do('/otr smp "secret-question?" secret-answer')
        await until(lambda: bob.has("smp-asked alice"))
        assert await bob.do("/otr smp-respond secret-answer")
        await until(lambda: alice.has("smp-result bob"))
        assert await alice.do("/otr end")

    with_pair(body)
    logged = "\n".join(f"{r.getMessage()} {r.args!r}" for r in caplog.records)
    for secret in ("confidential-plan", "secret-question", "secret-answer"):
        assert secret not in logged
