"""The chat client: one OTR account on one network, one conversation per buddy.

:class:`ChatClient` joins an :class:`~offrecord.account.Account` and a
:class:`~offrecord.transports.base.ChatTransport`.  It feeds what the network
delivers to the account, sends what the account wants sent (fragmented to
what the network carries for that buddy), runs the account's timers with a
real clock, carries out the user's commands and reports everything as
:class:`~offrecord.chat.render.Line` events to ``output`` — the terminal UI
and the script runner are two ways of showing them.

Nothing here writes logs: message text, secrets and keys never leave
through anything but ``output`` (and the network, encrypted as the state
says).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Final

from offrecord import events as ev
from offrecord.account import Account, Conversation
from offrecord.chat import commands as cmd
from offrecord.chat.render import ChatState, Line
from offrecord.crypto.dsa import fingerprint_hex
from offrecord.errors import OTRError
from offrecord.policy import Policy
from offrecord.session import MessageState, Session
from offrecord.storage.base import TRUST_NONE, TRUST_VERIFIED
from offrecord.transports.base import (
    ChatTransport,
    Delivered,
    Disconnected,
    Notice,
    TransportError,
)
from offrecord.wire.fragment import min_max_size

__all__ = ["TICK_INTERVAL", "ChatClient", "policy_name"]

TICK_INTERVAL: Final = 1.0
# Events after which a client with no current buddy talks to the sender.
_STARTS_TALK = (ev.MessageReceived, ev.SessionSecured, ev.SMPRequested)
OTR_PREFIX: Final = "?OTR"


def policy_name(policy: Policy) -> str:
    """The preset a policy equals, or its flags."""
    for name in cmd.POLICY_NAMES:
        if policy == Policy.preset(name):
            return name
    return str(policy.name or int(policy)).lower().replace("|", ",")


class ChatClient:
    """See the module documentation.  ``output`` receives every event."""

    def __init__(
        self,
        account: Account,
        transport: ChatTransport,
        output: Callable[[Line], None],
        *,
        clock: Callable[[], float] = time.monotonic,
        tick_interval: float = TICK_INTERVAL,
    ) -> None:
        self.account = account
        self.transport = transport
        self._output = output
        self._clock = clock
        self._tick_interval = tick_interval
        self.current: str | None = None
        # Every buddy with a conversation, in the order they appeared.
        self.buddies: dict[str, None] = {}
        self._states: dict[str, ChatState] = {}
        # Buddies whose SMP request waits for our secret.
        self.smp_pending: dict[str, str | None] = {}
        self._send_lock = asyncio.Lock()
        self.disconnected: str | None = None
        self.quitting = False

    # -- state ------------------------------------------------------------------

    def buddy(self, name: str) -> str:
        return self.transport.normalize(name)

    def conversation(self, buddy: str) -> Conversation:
        self.buddies.setdefault(buddy, None)
        return self.account.conversation(buddy)

    def state_of(self, buddy: str) -> ChatState:
        """The state the user must see for ``buddy``."""
        if buddy not in self.buddies:
            return ChatState.PLAINTEXT
        session = self.conversation(buddy).best_session()
        if session.msgstate is MessageState.FINISHED:
            return ChatState.FINISHED
        if session.msgstate is MessageState.PLAINTEXT:
            return ChatState.PLAINTEXT
        return ChatState.VERIFIED if self._trusted(buddy, session) else ChatState.UNVERIFIED

    def _trusted(self, buddy: str, session: Session) -> bool:
        fingerprint = session.their_fingerprint
        if fingerprint is None:
            return False
        try:
            return bool(self.account.trust.trust(buddy, fingerprint))
        except OTRError:
            return False  # a store we cannot read trusts nobody

    def _emit(self, line: Line) -> None:
        self._output(line)

    def _note(self, kind: str, buddy: str | None, *words: str, text: str | None = None) -> None:
        state = self.state_of(buddy) if buddy is not None else None
        self._emit(Line(kind, buddy, tuple(words), text, state))

    def _check_state(self, buddy: str) -> None:
        now = self.state_of(buddy)
        before = self._states.get(buddy, ChatState.PLAINTEXT)
        self._states[buddy] = now
        if now is not before:
            self._emit(Line("state", buddy, (now.value,), None, now))
        if now is not ChatState.UNVERIFIED and now is not ChatState.VERIFIED:
            self.smp_pending.pop(buddy, None)

    # -- the network --------------------------------------------------------------

    async def flush(self) -> None:
        """Send everything the account has queued, sized for the network."""
        async with self._send_lock:
            self._size_for_network()
            for peer, text in self.account.data_to_send():
                try:
                    await self.transport.send(peer, text, otr=text.startswith(OTR_PREFIX))
                except TransportError as exc:
                    self._note("error", peer, text=f"could not send: {exc}")

    def _size_for_network(self) -> None:
        """One size fits the whole account's queue: the smallest of what the
        network carries to each buddy with a conversation."""
        sizes = [self.transport.max_message_size(peer) for peer in self.buddies]
        limits = [size for size in sizes if size > 0]
        if not limits:
            self.account.max_message_size = 0
            return
        self.account.max_message_size = max(min(limits), min_max_size(3))

    async def receive_loop(self) -> None:
        """Handle the transport's events until it disconnects."""
        async for event in self.transport.events():
            if isinstance(event, Delivered):
                await self.on_delivered(event.sender, event.text)
            elif isinstance(event, Notice):
                self._note("notice", event.sender, text=event.text)
            elif isinstance(event, Disconnected):
                if not self.quitting:
                    self.disconnected = event.reason
                    self._note("disconnected", None, text=event.reason)
                return

    async def on_delivered(self, sender: str, text: str) -> None:
        buddy = self.buddy(sender)
        self.buddies.setdefault(buddy, None)
        try:
            events = self.account.receive(buddy, text)
        except OTRError as exc:  # the store failed while recording a fingerprint
            self._note("error", buddy, text=str(exc))
            events = []
        except Exception as exc:  # never let one message stop the conversation
            self._note(
                "error", buddy, text=f"a message could not be handled ({type(exc).__name__})"
            )
            events = []
        self._report(buddy, events)
        if self.current is None and any(isinstance(e, _STARTS_TALK) for e in events):
            # Nobody chosen yet: answering whoever spoke first is what one expects.
            self.current = buddy
            self._note("query", buddy, self.state_of(buddy).value)
        await self.flush()

    async def tick_loop(self) -> None:
        """Run the account's timers (fragment and AKE expiry) with a real clock."""
        while True:
            await asyncio.sleep(self._tick_interval)
            self.account.tick(self._clock())
            await self.flush()

    # -- engine events -------------------------------------------------------------

    def _report(self, buddy: str, events: list[ev.Event]) -> None:
        for event in events:
            self._report_one(buddy, event)
            self._check_state(buddy)
        self._check_state(buddy)

    def _report_one(self, buddy: str, event: ev.Event) -> None:
        if isinstance(event, ev.MessageReceived):
            if event.encrypted:
                how = "encrypted"
            elif event.unencrypted_warning:
                how = "unencrypted"
            else:
                how = "plaintext"
            if event.text:
                self._note("recv", buddy, how, text=event.text)
        elif isinstance(event, ev.SessionSecured):
            self._check_state(buddy)
            words = [
                f"v{event.version}",
                fingerprint_hex(event.fingerprint),
                "verified" if event.trusted else "unverified",
                event.ssid.hex(),
            ]
            if event.refreshed:
                words.append("refreshed")
            self._note("secured", buddy, *words)
        elif isinstance(event, ev.NewFingerprint):
            self._note(
                "new-fingerprint",
                buddy,
                fingerprint_hex(event.fingerprint),
                text="a fingerprint never seen for this buddy; verify it "
                "(/otr smp or compare it by another channel, then /otr trust)",
            )
        elif isinstance(event, ev.SessionFinished):
            self._note(
                "finished",
                buddy,
                text="the buddy ended the private conversation; messages are not sent "
                "until you /otr end or /otr start",
            )
        elif isinstance(event, ev.SessionEnded):
            self._note("ended", buddy)
        elif isinstance(event, ev.ErrorReceived):
            self._note("otr-error", buddy, text=event.text)
        elif isinstance(event, ev.UnreadableMessage):
            self._note("unreadable", buddy, text=event.reason)
        elif isinstance(event, ev.MessageDiscarded):
            self._note("ignored", buddy, text=event.reason)
        elif isinstance(event, ev.UnsupportedVersion):
            versions = ",".join(sorted(event.offered))
            self._note(
                "unsupported",
                buddy,
                versions or "-",
                text="the buddy offers only OTR versions offrecord does not speak",
            )
        elif isinstance(event, ev.MessageNotSent):
            self._note("not-sent", buddy, text=event.reason)
        elif isinstance(event, ev.MessageHeld):
            self._note("held", buddy, str(event.count))
        elif isinstance(event, ev.MessageResent):
            self._note("resent", buddy, str(event.count))
        elif isinstance(event, ev.SMPRequested):
            self.smp_pending[buddy] = event.question
            self._note("smp-asked", buddy, text=event.question)
        elif isinstance(event, ev.SMPResult):
            self.smp_pending.pop(buddy, None)
            self._check_state(buddy)
            self._note(
                "smp-result",
                buddy,
                "success" if event.success else "failure",
                "verified" if event.verified else "unverified",
            )
        elif isinstance(event, ev.SMPAborted):
            self.smp_pending.pop(buddy, None)
            self._note("smp-aborted", buddy)
        elif isinstance(event, ev.SMPError):
            self.smp_pending.pop(buddy, None)
            self._note("smp-error", buddy, text=event.reason)
        elif isinstance(event, ev.ExtraSymmetricKey):
            self._note("info", buddy, text="the buddy announced use of the extra symmetric key")

    # -- user commands ----------------------------------------------------------------

    def _need_buddy(self) -> str | None:
        if self.current is None:
            self._note("error", None, text="no buddy: /query NICK first")
        return self.current

    async def handle(self, command: cmd.Input) -> bool:
        """Carry out one command; ``False`` when it failed (the reason was shown).

        :class:`~offrecord.chat.commands.Wait` and
        :class:`~offrecord.chat.commands.Sleep` belong to the script runner
        and :class:`~offrecord.chat.commands.Quit` to whoever runs the client.
        """
        try:
            ok = self._handle(command)
        except OTRError as exc:
            self._note("error", self.current, text=str(exc))
            ok = False
        await self.flush()
        return ok

    def _handle(self, command: cmd.Input) -> bool:
        if isinstance(command, cmd.Say):
            target = self.buddy(command.buddy) if command.buddy else self._need_buddy()
            return target is not None and self.say(target, command.text)
        if isinstance(command, cmd.Me):
            buddy = self._need_buddy()
            return buddy is not None and self.say(buddy, f"/me {command.text}")
        if isinstance(command, cmd.Query):
            buddy = self.buddy(command.buddy)
            if not buddy or any(ch in buddy for ch in " \r\n\0"):
                self._note("error", None, text=f"not a buddy name: {command.buddy!r}")
                return False
            self.current = buddy
            self.conversation(buddy)
            self._states.setdefault(buddy, self.state_of(buddy))
            self._note("query", buddy, self.state_of(buddy).value)
            return True
        if isinstance(command, cmd.Buddies):
            if not self.buddies:
                self._note("info", None, text="no conversations yet: /query NICK")
            for buddy in self.buddies:
                current = ("current",) if buddy == self.current else ()
                self._note("buddy", buddy, self.state_of(buddy).value, *current)
            return True
        if isinstance(command, cmd.Help):
            for usage, description in cmd.COMMAND_HELP:
                self._note("help", None, text=f"{usage}: {description}")
            return True
        if isinstance(command, cmd.OtrPolicy):
            if command.name is not None:
                self.account.policy = Policy.preset(command.name)
            self._note("policy", None, policy_name(self.account.policy))
            return True
        if isinstance(command, cmd.OtrFingerprint):
            self._note("fingerprint", None, "ours", fingerprint_hex(self.account.fingerprint))
            if self.current is None:
                return True
        buddy = self._need_buddy()
        if buddy is None:
            return False
        return self._otr_command(buddy, command)

    def _otr_command(self, buddy: str, command: cmd.Input) -> bool:
        conv = self.conversation(buddy)
        session = conv.best_session()
        if isinstance(command, cmd.OtrStart):
            if not self.account.policy.allowed_versions():
                self._note("error", buddy, text="the policy is 'never': /otr policy manual first")
                return False
            conv.start()
            self._note("info", buddy, text="asked the buddy to start a private conversation")
            return True
        if isinstance(command, cmd.OtrEnd):
            self.smp_pending.pop(buddy, None)
            events = conv.end()
            self._report(buddy, events)
            if not events:
                self._note("info", buddy, text="no private conversation to end")
            return True
        if isinstance(command, cmd.OtrStatus):
            self._status(buddy, session)
            return True
        if isinstance(command, cmd.OtrFingerprint):
            theirs = session.their_fingerprint
            if theirs is None:
                self._note("fingerprint", buddy, "theirs", "-", text="no private conversation yet")
            else:
                self._note(
                    "fingerprint",
                    buddy,
                    "theirs",
                    fingerprint_hex(theirs),
                    "verified" if self._trusted(buddy, session) else "unverified",
                )
            return True
        if isinstance(command, cmd.OtrTrust):
            fingerprint = session.their_fingerprint
            if fingerprint is None or session.msgstate is MessageState.PLAINTEXT:
                self._note("error", buddy, text="no private conversation: nothing to trust yet")
                return False
            self.account.trust.set_trust(
                buddy, fingerprint, TRUST_VERIFIED if command.trusted else TRUST_NONE
            )
            self._note(
                "trust",
                buddy,
                fingerprint_hex(fingerprint),
                "verified" if command.trusted else "unverified",
            )
            self._check_state(buddy)
            return True
        if isinstance(command, cmd.OtrSmp):
            if session.msgstate is not MessageState.ENCRYPTED:
                self._note("error", buddy, text="SMP needs a private conversation: /otr start")
                return False
            session.smp_start(command.secret, command.question, now=self._clock())
            self._note("smp-started", buddy, text=command.question)
            return True
        if isinstance(command, cmd.OtrSmpRespond):
            if buddy not in self.smp_pending:
                self._note("error", buddy, text="the buddy has not asked to verify you")
                return False
            del self.smp_pending[buddy]
            session.smp_respond(command.secret, now=self._clock())
            self._note("smp-answered", buddy)
            return True
        if isinstance(command, cmd.OtrSmpAbort):
            self.smp_pending.pop(buddy, None)
            session.smp_abort(now=self._clock())
            self._note("smp-aborted", buddy, text="aborted by you")
            return True
        self._note("error", buddy, text="this command is for scripts")
        return False

    def _status(self, buddy: str, session: Session) -> None:
        theirs = session.their_fingerprint
        words = [
            f"state={self.state_of(buddy).value}",
            f"version={session.version or '-'}",
            f"fingerprint={fingerprint_hex(theirs) if theirs else '-'}",
            f"ssid={session.ssid.hex() if session.ssid else '-'}",
            f"policy={policy_name(self.account.policy)}",
            f"smp={'asked' if buddy in self.smp_pending else '-'}",
        ]
        self._note("status", buddy, *words)

    def say(self, buddy: str, text: str) -> bool:
        """Send what the user typed to ``buddy``, as the state and policy say."""
        conv = self.conversation(buddy)
        self._states.setdefault(buddy, self.state_of(buddy))
        before = self.state_of(buddy)
        events = conv.send(text)
        refused = any(isinstance(e, ev.MessageNotSent) for e in events)
        held = any(isinstance(e, ev.MessageHeld) for e in events)
        if not refused and not held:
            how = (
                "encrypted" if before in (ChatState.UNVERIFIED, ChatState.VERIFIED) else "plaintext"
            )
            self._note("sent", buddy, how, text=text)
        elif held:
            for event in events:
                if isinstance(event, ev.MessageHeld):
                    self._note("held", buddy, str(event.count), text=text)
            events = [e for e in events if not isinstance(e, ev.MessageHeld)]
        self._report(buddy, events)
        return not refused

    async def quit(self) -> None:
        """End every private conversation (the buddies are told), then leave."""
        self.quitting = True
        for buddy in list(self.buddies):
            if self.state_of(buddy) is not ChatState.PLAINTEXT:
                with contextlib.suppress(OTRError):
                    self._report(buddy, self.conversation(buddy).end())
        with contextlib.suppress(Exception):
            await self.flush()
        await self.transport.close()
