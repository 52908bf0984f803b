"""The terminal UI, headless: prompt_toolkit reads from a pipe and draws to a
dummy output, while the client talks to a scripted buddy over an in-memory
network."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine
from typing import Any

from prompt_toolkit.application import create_app_session
from prompt_toolkit.filters import to_filter
from prompt_toolkit.input import PipeInput, create_pipe_input
from prompt_toolkit.output import DummyOutput

from offrecord.account import Account
from offrecord.chat.client import ChatClient
from offrecord.chat.render import STATE_LABELS, ChatState
from offrecord.chat.script import EXIT_DISCONNECTED, EXIT_OK
from offrecord.chat.tui import ChatScreen
from offrecord.policy import Policy
from tests.unit.test_chat_client import FakeTransport, Network, Party, key_for, until

Fragments = list[tuple[str, str]]


def plain(fragments: Fragments) -> str:
    return "".join(text for _, text in fragments)


class Harness:
    def __init__(self, pipe: PipeInput) -> None:
        self.pipe = pipe
        self.network = Network()
        self.screen = ChatScreen()
        transport = FakeTransport(self.network, "alice")
        account = Account(transport.account_name, transport.protocol, key_for("alice"),
                          policy=Policy.MANUAL, clock=time.monotonic)  # fmt: skip
        self.client = ChatClient(account, transport, self.screen.show, tick_interval=0.05)
        self.receiving = asyncio.ensure_future(self.client.receive_loop())
        self.running = asyncio.ensure_future(self.screen.run(self.client, self.receiving))
        self.bob = Party(self.network, "bob")

    def type(self, text: str) -> None:
        self.pipe.send_text(text + "\r")

    @property
    def prompt(self) -> str:
        return plain(self.screen.prompt())

    def shown(self) -> list[str]:
        return [plain(line) for line in self.screen.history]

    def showed(self, text: str) -> bool:
        return any(text in line for line in self.shown())


def headless(test: Callable[[Harness], Coroutine[Any, Any, None]]) -> None:
    async def main() -> None:
        with create_pipe_input() as pipe, create_app_session(input=pipe, output=DummyOutput()):
            harness = Harness(pipe)
            try:
                await test(harness)
            finally:
                await harness.bob.stop()
                if not harness.running.done():
                    harness.running.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await harness.running
                await harness.client.quit()

    asyncio.run(asyncio.wait_for(main(), 60))


async def secure(h: Harness) -> None:
    await until(lambda: h.screen.session is not None)
    h.type("/query bob")
    await until(lambda: h.client.current == "bob")
    h.type("/otr start")
    await until(lambda: h.client.state_of("bob") is ChatState.UNVERIFIED)
    await until(lambda: h.bob.has("secured alice"))  # bob finishes the AKE last


def test_start_send_and_the_state_in_the_prompt() -> None:
    async def test(h: Harness) -> None:
        await until(lambda: h.screen.session is not None)
        assert "/query NICK" in h.prompt
        assert h.showed("type /help")
        h.type("/query bob")
        await until(lambda: h.client.current == "bob")
        assert h.prompt.startswith("bob [NOT PRIVATE]")
        h.type("in the clear")
        await until(lambda: h.bob.has("recv alice plaintext in the clear"))
        assert h.showed("[NOT PRIVATE] > bob: in the clear")
        h.type("/otr start")
        await until(lambda: h.prompt.startswith("bob [private, UNVERIFIED]"))
        assert h.showed("the conversation is now private, UNVERIFIED")
        fingerprint = h.bob.account.fingerprint.hex().upper()
        assert h.showed(f"their fingerprint {fingerprint[:8]} {fingerprint[8:16]}")
        assert h.showed("is NOT verified yet")
        h.type("secret stuff")
        await until(lambda: h.bob.has("recv alice encrypted secret stuff"))
        assert h.showed("[private, UNVERIFIED] > bob: secret stuff")
        await h.bob.do("/query alice")
        await h.bob.do("hi alice")
        await until(lambda: h.showed("[private, UNVERIFIED] <bob> hi alice"))
        h.type("/otr trust")
        await until(lambda: h.prompt.startswith("bob [private, verified]"))
        await h.bob.do("/otr end")
        await until(lambda: h.client.state_of("bob") is ChatState.FINISHED)
        assert STATE_LABELS[ChatState.FINISHED] in h.prompt
        assert h.showed("bob ended the private conversation")
        h.type("/quit")
        assert await asyncio.wait_for(h.running, 10) == EXIT_OK

    headless(test)


def test_smp_request_turns_the_prompt_into_a_secret_question() -> None:
    async def test(h: Harness) -> None:
        await secure(h)
        await h.bob.do("/query alice")
        await h.bob.do('/otr smp "name of our cat?" whiskers')
        await until(lambda: h.screen.asking == "bob")
        assert h.prompt.startswith("SMP: bob asks: name of our cat?")
        assert h.screen.session is not None
        assert to_filter(h.screen.session.is_password)()  # the answer is masked
        assert h.showed("wants to verify you with a shared secret")
        h.type("whiskers")
        await until(lambda: h.bob.has("smp-result alice success verified"))
        await until(lambda: h.showed("SMP with bob succeeded: the secrets match"))
        assert h.screen.asking is None
        assert not to_filter(h.screen.session.is_password)()
        assert h.prompt.startswith("bob [private, UNVERIFIED]")
        assert not h.showed("whiskers")  # the secret is never shown

    headless(test)


def test_an_empty_answer_aborts_smp() -> None:
    async def test(h: Harness) -> None:
        await secure(h)
        await h.bob.do("/query alice")
        await h.bob.do("/otr smp secret")
        await until(lambda: h.screen.asking == "bob")
        h.type("")
        await until(lambda: h.bob.has("smp-aborted alice"))
        assert h.screen.asking is None

    headless(test)


def test_bad_commands_are_explained_and_script_commands_refused() -> None:
    async def test(h: Harness) -> None:
        await until(lambda: h.screen.session is not None)
        h.type("/frob")
        await until(lambda: h.showed("unknown command /frob"))
        h.type("/wait secured")
        await until(lambda: h.showed("/wait and /sleep are for scripts"))
        h.type("/help")
        await until(lambda: h.showed("/otr smp [QUESTION] SECRET"))

    headless(test)


def test_losing_the_network_ends_the_ui() -> None:
    async def test(h: Harness) -> None:
        await until(lambda: h.screen.session is not None)
        await h.client.transport.close()
        assert await asyncio.wait_for(h.running, 10) == EXIT_DISCONNECTED

    headless(test)


def test_otr_smp_alone_asks_for_question_and_masked_secret() -> None:
    async def test(h: Harness) -> None:
        await secure(h)
        h.type("/otr smp")
        await until(lambda: h.screen.starting_smp is not None)
        assert h.prompt.startswith("SMP with bob — question")
        assert h.screen.session is not None
        assert not to_filter(h.screen.session.is_password)()
        h.type("our street?")
        await until(lambda: "shared secret" in h.prompt)
        assert to_filter(h.screen.session.is_password)()
        h.type("elm street 7")
        await until(lambda: h.bob.has("smp-asked alice our street?"))
        await h.bob.do("/query alice")
        await h.bob.do("/otr smp-respond elm street 7")
        await until(lambda: h.client.state_of("bob") is ChatState.VERIFIED)
        assert h.prompt.startswith("bob [private, verified]")
        history = list(h.screen.session.history.get_strings())
        assert "/otr smp" not in history and "elm street 7" not in history
        assert "/otr start" in history
        assert not h.showed("elm street 7")

    headless(test)


def test_secrets_typed_on_the_command_line_stay_out_of_the_history() -> None:
    async def test(h: Harness) -> None:
        await secure(h)
        h.type('/otr smp "q?" hunter2')
        await until(lambda: h.bob.has("smp-asked alice q?"))
        await h.bob.do("/query alice")
        await h.bob.do("/otr smp-respond hunter2")
        await until(lambda: h.client.state_of("bob") is ChatState.VERIFIED)
        assert h.screen.session is not None
        assert not any("hunter2" in line for line in h.screen.session.history.get_strings())

    headless(test)


def test_the_first_buddy_to_speak_becomes_the_current_one() -> None:
    async def test(h: Harness) -> None:
        await until(lambda: h.screen.session is not None)
        await h.bob.do("/query alice")
        await h.bob.do("anyone there?")
        await until(lambda: h.client.current == "bob")
        assert h.showed("talking to bob (NOT PRIVATE)")
        h.type("yes")
        await until(lambda: h.bob.has("recv alice plaintext yes"))

    headless(test)


def test_otr_smp_alone_needs_a_private_conversation() -> None:
    async def test(h: Harness) -> None:
        await until(lambda: h.screen.session is not None)
        h.type("/otr smp")
        await until(lambda: h.showed("no buddy: /query NICK first"))
        h.type("/query bob")
        await until(lambda: h.client.current == "bob")
        h.type("/otr smp")
        await until(lambda: h.showed("SMP needs a private conversation"))
        assert h.screen.starting_smp is None
        assert h.prompt.startswith("bob [NOT PRIVATE]")

    headless(test)
