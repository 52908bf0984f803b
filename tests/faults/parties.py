"""The two ends of a simulated conversation, behind one small interface.

:class:`OffrecordParty` drives an in-process :class:`~offrecord.account.Account`
with an injected clock and a seeded random source, and sees every engine
event.  :class:`LibotrParty` drives real libotr 4.1.1 through the C peer of
the interop tests (``tests/interop/libotr_peer.c``, PEER-PROTOCOL over
stdio); libotr keeps its own wall clock and randomness.
"""

from __future__ import annotations

import functools
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from offrecord import events as ev
from offrecord.account import Account
from offrecord.crypto.dsa import DSAPrivateKey, generate_private_key
from offrecord.errors import LocalProtocolError
from offrecord.policy import Policy
from offrecord.session import MessageState
from offrecord.transports.peer import POLICY_TOKENS
from tests.interop.router import SubprocessPeer, peer_args

# Every preset offrecord.policy offers (Pidgin's choices, libotr's values).
PRESETS: tuple[str, ...] = ("never", "manual", "opportunistic", "always")

# libotr's clock (time(NULL)) counts whole seconds.
LIBOTR_CLOCK_RESOLUTION = 1.05

# libotr prefixes a message it retransmits after an OTR error while encrypted.
LIBOTR_RESENT_PREFIX = "[resent] "


def policy_tokens(policy: Policy) -> str:
    """The PEER-PROTOCOL ``--policy`` list for a policy."""
    return ",".join(name for name, flag in POLICY_TOKENS.items() if policy & flag)


@dataclass(frozen=True)
class Shown:
    """A message shown to the local user."""

    text: str = field(repr=False)
    encrypted: bool


@dataclass
class Reaction:
    """What one input made a party do."""

    wire: list[str] = field(default_factory=list)
    shown: list[Shown] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # The typed message was refused or held, and the user was told so.
    refused: bool = False


@dataclass(frozen=True)
class SessionView:
    state: str  # "plaintext", "encrypted" or "finished"
    ssid: str | None

    @property
    def encrypted(self) -> bool:
        return self.state == "encrypted"


class Party(Protocol):
    impl: str
    policy: Policy

    def type(self, text: str) -> Reaction: ...
    def start(self) -> Reaction: ...
    def end(self) -> Reaction: ...
    def receive(self, data: str) -> Reaction: ...
    def restart(self, *, new_instance: bool) -> None:
        """The client restarts: every session is lost; the key stays, and so
        does the instance tag unless ``new_instance`` (its file was lost)."""
        ...

    def peer_restarted(self, *, new_instance: bool) -> None:
        """The other client restarted (nothing on the network says so)."""
        ...

    def tick(self, now: float) -> Reaction: ...
    def view(self) -> SessionView: ...
    def close(self) -> None: ...


@functools.cache
def offrecord_key(name: str) -> DSAPrivateKey:
    """A fixed key per account name (generating one takes ~0.1 s)."""
    return generate_private_key(random.Random(f"faults-key:{name}").randbytes)


def instance_tag_for(name: str, generation: int = 0) -> int:
    """A fixed instance tag per account name (and generation of its tag file)."""
    return 0x100 + random.Random(f"faults-tag:{name}:{generation}").getrandbits(31)


class Clock:
    """The simulated time both offrecord parties read."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class OffrecordParty:
    impl = "offrecord"

    def __init__(
        self,
        name: str,
        peer: str,
        policy: Policy,
        *,
        seed: int,
        clock: Clock,
        max_message_size: int = 0,
    ) -> None:
        self.policy = policy
        self.name = name
        self.peer = peer
        self._seed = seed
        self._clock = clock
        self._max_message_size = max_message_size
        self._generation = 0
        self._runs = 0
        self._boot()

    def _boot(self) -> None:
        self.account = Account(
            self.name,
            "irc",
            offrecord_key(self.name),
            policy=self.policy,
            instance_tag=instance_tag_for(self.name, self._generation),
            random_bytes=random.Random(f"{self._seed}:{self.name}:{self._runs}").randbytes,
            clock=self._clock,
            max_message_size=self._max_message_size,
        )
        self.conversation = self.account.conversation(self.peer)

    def peer_restarted(self, *, new_instance: bool) -> None:
        pass

    def restart(self, *, new_instance: bool) -> None:
        self._runs += 1
        self._generation += new_instance
        self._boot()

    def _react(self, events: list[ev.Event]) -> Reaction:
        reaction = Reaction()
        for event in events:
            if isinstance(event, ev.MessageReceived):
                reaction.shown.append(Shown(event.text, event.encrypted))
            elif isinstance(event, ev.MessageHeld | ev.MessageNotSent):
                reaction.refused = True
                reaction.notes.append(type(event).__name__)
            else:
                reaction.notes.append(type(event).__name__)
        reaction.wire = [text for _peer, text in self.account.data_to_send()]
        return reaction

    def type(self, text: str) -> Reaction:
        return self._react(self.conversation.send(text))

    def start(self) -> Reaction:
        try:
            self.conversation.start()
        except LocalProtocolError as exc:  # the policy allows no OTR
            reaction = self._react([])
            reaction.notes.append(f"start refused: {exc}")
            return reaction
        return self._react([])

    def end(self) -> Reaction:
        return self._react(self.conversation.end())

    def receive(self, data: str) -> Reaction:
        return self._react(self.account.receive(self.peer, data))

    def tick(self, now: float) -> Reaction:
        self.account.tick(now)
        return self._react([])

    def view(self) -> SessionView:
        session = self.conversation.best_session()
        encrypted = session.msgstate is MessageState.ENCRYPTED
        ssid = session.ssid.hex().upper() if encrypted and session.ssid is not None else None
        return SessionView(session.msgstate.value, ssid)

    def close(self) -> None:
        pass


class LibotrParty:
    impl = "libotr"

    def __init__(
        self,
        exe: Path,
        name: str,
        peer: str,
        policy: Policy,
        *,
        keyfile: Path,
        max_message_size: int = 0,
    ) -> None:
        self.policy = policy
        self._exe = exe
        self._name = name
        self._generation = 0
        self._keyfile = keyfile
        self._max_message_size = max_message_size
        self._peer_name = peer
        self.peer = self._boot()

    def _boot(self) -> SubprocessPeer:
        args = peer_args(
            self._name, self._peer_name, keyfile=self._keyfile,
            policy=policy_tokens(self.policy), max_fragment=self._max_message_size,
            instance_tag=instance_tag_for(self._name, self._generation),
        )  # fmt: skip
        return SubprocessPeer([self._exe, *args], name=f"libotr:{self._name}")

    def peer_restarted(self, *, new_instance: bool) -> None:
        if new_instance:
            # libotr sends to the encrypted instance that received last, by
            # time(NULL): within the same second it may keep choosing the
            # dead instance.  Real restarts take longer than a second.
            time.sleep(LIBOTR_CLOCK_RESOLUTION)

    def restart(self, *, new_instance: bool) -> None:
        self.peer.close()
        self._generation += new_instance
        self.peer = self._boot()

    def _run(self, command: dict[str, str]) -> Reaction:
        reaction = Reaction()
        for event in self.peer.command(command):
            kind = event["ev"]
            if kind == "wire":
                reaction.wire.append(event["data"])
            elif kind == "message":
                reaction.shown.append(Shown(event["text"], event["encrypted"]))
            elif kind == "error":
                text = event["text"]
                if text.startswith("encryption required") or text.startswith("message not sent"):
                    reaction.refused = True
                reaction.notes.append(text)
            elif kind == "state":
                reaction.notes.append(f"state {event['state']}")
        return reaction

    def type(self, text: str) -> Reaction:
        return self._run({"op": "send", "text": text})

    def start(self) -> Reaction:
        return self._run({"op": "start"})

    def end(self) -> Reaction:
        return self._run({"op": "end"})

    def receive(self, data: str) -> Reaction:
        return self._run({"op": "recv", "data": data})

    def tick(self, now: float) -> Reaction:
        return Reaction()  # libotr runs on its own wall clock

    def view(self) -> SessionView:
        (status,) = [e for e in self.peer.command({"op": "status"}) if e["ev"] == "status"]
        state = status["state"]
        return SessionView(state, status["ssid"] if state == "encrypted" else None)

    def close(self) -> None:
        self.peer.close()
