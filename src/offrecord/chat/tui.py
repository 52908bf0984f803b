"""The terminal UI: a line-oriented screen in the manner of irssi, on
prompt_toolkit (``docs/chat.md`` says why).

Events are printed above the input line, each message tagged with the state
of its conversation; the prompt names the current buddy and the state in
colour.  When a buddy asks to verify us with SMP, the prompt turns into a
masked question for the secret (an empty answer aborts).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Final

from prompt_toolkit import PromptSession, print_formatted_text
from prompt_toolkit.application.current import get_app_or_none
from prompt_toolkit.filters import Condition
from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.history import InMemoryHistory
from prompt_toolkit.styles import Style

from offrecord.chat import commands as cmd
from offrecord.chat.client import ChatClient
from offrecord.chat.render import (
    ChatState,
    Fragments,
    Line,
    display_line,
    escape_text,
    prompt_fragments,
)
from offrecord.chat.script import EXIT_DISCONNECTED, EXIT_OK, any_of

__all__ = ["STYLE", "ChatScreen"]

STYLE: Final = Style.from_dict(
    {
        "time": "#888888",
        "state.plaintext": "bold #ffffff bg:#aa0000",
        "state.unverified": "bold #000000 bg:#d7af00",
        "state.verified": "bold #000000 bg:#00af00",
        "state.finished": "bold #ffffff bg:#8700af",
        "alert": "bold #ff5f5f",
        "notice": "#87afff",
        "info": "#aaaaaa",
        "nick.them": "bold #5fafff",
        "nick.me": "bold #d0d0d0",
        "prompt.buddy": "bold",
        "prompt.secret": "bold #000000 bg:#d7af00",
    }
)

HISTORY_LIMIT: Final = 2000


class _DiscreetHistory(InMemoryHistory):
    """Input history (up arrow) that never keeps secrets: nothing typed at a
    masked prompt, no ``/otr smp`` line."""

    def __init__(self, secret_now: Callable[[], bool]) -> None:
        super().__init__()
        self._secret_now = secret_now

    def append_string(self, string: str) -> None:
        if self._secret_now() or string.lstrip().lower().startswith("/otr smp"):
            return
        super().append_string(string)


class _OwnSmp:
    """Starting SMP from the UI: the question (optional), then the secret, masked."""

    def __init__(self, buddy: str) -> None:
        self.buddy = buddy
        self.question: str | None = None
        self.asked_question = False


class ChatScreen:
    """Shows the client's events and reads the user's lines."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self.client: ChatClient | None = None
        # What was shown, most recent last (kept for tests and redraws).
        self.history: list[Fragments] = []
        # The buddy whose SMP question the prompt is asking, if any.
        self.asking: str | None = None
        # Our own SMP being set up (``/otr smp`` without arguments), if any.
        self.starting_smp: _OwnSmp | None = None
        self.session: PromptSession[str] | None = None

    # -- output ---------------------------------------------------------------

    def show(self, line: Line) -> None:
        stamp = time.strftime("%H:%M", time.localtime(self._clock()))
        fragments: Fragments = [("class:time", f"{stamp} "), *display_line(line)]
        self.history.append(fragments)
        del self.history[:-HISTORY_LIMIT]
        if line.kind == "smp-asked" and line.buddy is not None:
            self.asking = line.buddy
        elif line.kind in ("smp-aborted", "smp-error", "state", "smp-result") and (
            line.buddy == self.asking
        ):
            client = self.client
            if client is None or self.asking not in client.smp_pending:
                self.asking = None
        print_formatted_text(FormattedText(fragments), style=STYLE)
        app = get_app_or_none()
        if app is not None and app.is_running:
            app.invalidate()  # the prompt shows the state: redraw it

    # -- the prompt ------------------------------------------------------------

    @property
    def masked(self) -> bool:
        """Whether the input is a secret (shown as stars, never kept)."""
        own = self.starting_smp
        return self.asking is not None or (own is not None and own.asked_question)

    def prompt(self) -> Fragments:
        client = self.client
        own = self.starting_smp
        if own is not None:
            if not own.asked_question:
                return [
                    ("class:prompt.secret", f"SMP with {own.buddy}"),
                    ("", " — question to ask (optional, Enter for none) > "),
                ]
            return [
                ("class:prompt.secret", f"SMP with {own.buddy}"),
                ("", " — the shared secret (empty cancels) > "),
            ]
        if self.asking is not None:
            question = client.smp_pending.get(self.asking) if client is not None else None
            asked = f" asks: {escape_text(question)}" if question else " asks for the shared secret"
            return [
                ("class:prompt.secret", f"SMP: {self.asking}{asked}"),
                ("", " — secret (empty aborts) > "),
            ]
        if client is None:
            return [("", "> ")]
        current = client.current
        state = client.state_of(current) if current is not None else None
        return prompt_fragments(current, state)

    def _prompt(self) -> FormattedText:
        return FormattedText(self.prompt())

    # -- the loop ----------------------------------------------------------------

    async def run(self, client: ChatClient, network: asyncio.Future[None]) -> int:
        """Read lines until ``/quit``, end of input, or the network goes away."""
        self.client = client
        self.session = PromptSession(
            message=self._prompt,
            is_password=Condition(lambda: self.masked),
            history=_DiscreetHistory(lambda: self.masked),
            style=STYLE,
        )
        self.show(Line("info", None, (), "type /help for the commands"))
        while True:
            reading = asyncio.ensure_future(self.session.prompt_async())
            await asyncio.wait(any_of(reading, network), return_when=asyncio.FIRST_COMPLETED)
            if not reading.done():
                app = self.session.app
                if app.is_running:
                    app.exit(result="")
                reading.cancel()
                return EXIT_DISCONNECTED
            try:
                text = reading.result()
            except EOFError:  # Ctrl-D
                return EXIT_OK
            except KeyboardInterrupt:  # Ctrl-C clears the line
                continue
            if not await self.submit(text):
                return EXIT_OK

    async def submit(self, text: str) -> bool:
        """Act on one line; ``False`` to leave."""
        client = self.client
        assert client is not None
        if self.asking is not None:
            buddy, self.asking = self.asking, None
            client.current = buddy
            if buddy not in client.smp_pending:
                return True  # it was aborted meanwhile
            if text:
                await client.handle(cmd.OtrSmpRespond(text))
            else:
                await client.handle(cmd.OtrSmpAbort())
            return True
        own = self.starting_smp
        if own is not None:
            if not own.asked_question:
                own.question, own.asked_question = text.strip() or None, True
                return True
            self.starting_smp = None
            if not text:
                self.show(Line("info", own.buddy, (), "SMP not started"))
                return True
            client.current = own.buddy
            await client.handle(cmd.OtrSmp(text, own.question))
            return True
        if text.strip().lower() == "/otr smp":
            current = client.current
            if current is None:
                self.show(Line("error", None, (), "no buddy: /query NICK first"))
            elif client.state_of(current) not in (ChatState.UNVERIFIED, ChatState.VERIFIED):
                self.show(
                    Line("error", current, (), "SMP needs a private conversation: /otr start")
                )
            else:
                self.starting_smp = _OwnSmp(current)
            return True
        try:
            command = cmd.parse_input(text)
        except cmd.CommandSyntaxError as exc:
            self.show(Line("error", None, (), str(exc)))
            return True
        if command is None:
            return True
        if isinstance(command, cmd.Quit):
            return False
        if isinstance(command, cmd.Wait | cmd.Sleep):
            self.show(Line("error", None, (), "/wait and /sleep are for scripts"))
            return True
        await client.handle(command)
        return True
