"""Two parties, a faulty network, a scripted pair of users, and the
properties every run must keep (see docs/faults.md).

A run has three phases:

1. *Faulty*: the users' script runs (typing, ``/otr start``, waiting) while
   the network applies the fault schedule.
2. *Quiet*: the network stops faulting and everything in flight arrives.
3. *Retry*: the user model.  While the two ends are not encrypted with the
   same session id, one user whose end is not encrypted types ``/otr start``
   and waits for the network to go quiet, at most :data:`MAX_RETRIES` times;
   a libotr user types ``/otr end`` before the last ``/otr start``.
   Then each user sends one probe message, which must arrive encrypted.

:meth:`Simulation.problems` lists every broken property; an empty list is a
pass.  :meth:`Simulation.describe` renders the run for a failure message.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from offrecord.policy import Policy
from offrecord.wire.fragment import is_fragment, parse_fragment
from tests.faults.network import FaultyNetwork, Schedule, Side, other
from tests.faults.parties import LIBOTR_RESENT_PREFIX, Clock, Party, Reaction, Shown

# Simulated seconds per network step (the offrecord clock; libotr keeps its own).
STEP_SECONDS = 0.5
# Seconds a user waits before retrying /otr start.
USER_PAUSE = 5.0
# How often a user retries /otr start after the network quiets down.
MAX_RETRIES = 3
# A network that is still busy after this many steps without user action is
# two engines answering each other: a flood.
SETTLE_STEPS = 200

# The bound on automatic traffic: the logical messages (a fragmented message
# counts once) one party may send, per user action of either party, plus per
# extra copy the network made, plus a constant.  An AKE is 2-3 messages per
# side; a typed message can cost a data message, an OTR error, a query and an
# AKE; a duplicated AKE message can be answered again.
PER_USER_ACTION = 3
PER_EXTRA_COPY = 2
CONSTANT = 6


@dataclass(frozen=True)
class Type:
    side: Side


@dataclass(frozen=True)
class Start:
    side: Side


@dataclass(frozen=True)
class End:
    side: Side


@dataclass(frozen=True)
class Restart:
    """The user's client restarts (with a new instance tag if ``new_instance``)."""

    side: Side
    new_instance: bool = False


@dataclass(frozen=True)
class Wait:
    steps: int


Action = Type | Start | End | Restart | Wait
Script = tuple[Action, ...]


A: Side = "A"
B: Side = "B"
SIDES: tuple[Side, Side] = (A, B)


class Flood(AssertionError):
    """The parties kept the network busy on their own."""


@dataclass
class Typed:
    side: Side
    text: str = field(repr=False)
    state_before: str  # the sender's message state when the user typed
    refused: bool


def allows_otr(policy: Policy) -> bool:
    return bool(policy.allowed_versions())


class Simulation:
    def __init__(
        self,
        parties: dict[Side, Party],
        schedule: Schedule,
        clock: Clock,
        *,
        label: str = "",
    ) -> None:
        self.parties = parties
        self.net = FaultyNetwork(schedule)
        self.clock = clock
        self.label = label
        self.typed: list[Typed] = []
        self.shown: dict[Side, list[Shown]] = {"A": [], "B": []}
        self.notes: dict[Side, list[str]] = {"A": [], "B": []}
        self.user_actions = 0
        self.retries: list[Side] = []
        self.converged: bool | None = None
        self.probes_delivered: bool | None = None
        self.trace: list[str] = []

    # -- driving --------------------------------------------------------------

    def _absorb(self, side: Side, reaction: Reaction) -> None:
        for data in reaction.wire:
            self.net.put(side, data)
            fault = self.net.fault_for(len(self.net.sent) - 1)
            self.trace.append(
                f"  {side} sends #{len(self.net.sent) - 1} {fault!r}: {_clip(data)}"
            )
        for shown in reaction.shown:
            self.shown[side].append(shown)
            lock = "encrypted" if shown.encrypted else "plaintext"
            self.trace.append(f"  {side} shows ({lock}) {shown.text!r}")
        for note in reaction.notes:
            self.notes[side].append(note)
            self.trace.append(f"  {side}: {note}")

    def type(self, side: Side, text: str | None = None) -> str:
        if text is None:
            text = f"hello {side.lower()}#{len(self.typed)} from the fault tests"
        self.user_actions += 1
        before = self.parties[side].view().state
        self.trace.append(f"step {self.net.step}: {side} ({before}) types {text!r}")
        reaction = self.parties[side].type(text)
        self.typed.append(Typed(side, text, before, reaction.refused))
        self._absorb(side, reaction)
        return text

    def start(self, side: Side) -> None:
        self.user_actions += 1
        self.trace.append(f"step {self.net.step}: {side} types /otr start")
        self._absorb(side, self.parties[side].start())

    def end(self, side: Side) -> None:
        self.user_actions += 1
        self.trace.append(f"step {self.net.step}: {side} types /otr end")
        self._absorb(side, self.parties[side].end())

    def restart(self, side: Side, *, new_instance: bool) -> None:
        self.user_actions += 1
        fresh = " with a new instance tag" if new_instance else ""
        self.trace.append(f"step {self.net.step}: {side}'s client restarts{fresh}")
        self.parties[side].restart(new_instance=new_instance)
        if all(allows_otr(self.parties[s].policy) for s in SIDES):
            self.parties[other(side)].peer_restarted(new_instance=new_instance)

    def step(self) -> None:
        self.clock.advance(STEP_SECONDS)
        for side in SIDES:
            self._absorb(side, self.parties[side].tick(self.clock.now))
        for packet, data in self.net.advance():
            cut = "" if data == packet.data else f" (truncated to {len(data)})"
            self.trace.append(f"step {self.net.step}: {packet.dst} receives #{packet.seq}{cut}")
            self._absorb(packet.dst, self.parties[packet.dst].receive(data))

    def settle(self) -> None:
        for _ in range(SETTLE_STEPS):
            if self.net.idle:
                return
            self.step()
        if not self.net.idle:
            raise Flood(self.describe(f"still busy after {SETTLE_STEPS} steps"))

    def run_script(self, script: Script) -> None:
        for action in script:
            if isinstance(action, Type):
                self.type(action.side)
            elif isinstance(action, Start):
                self.start(action.side)
            elif isinstance(action, End):
                self.end(action.side)
            elif isinstance(action, Restart):
                self.restart(action.side, new_instance=action.new_instance)
            else:
                for _ in range(action.steps):
                    self.step()

    def pause(self) -> None:
        """The user looks away for a moment: time passes, nothing is sent."""
        self.clock.advance(USER_PAUSE)
        for side in SIDES:
            self._absorb(side, self.parties[side].tick(self.clock.now))

    def is_converged(self) -> bool:
        a, b = self.parties["A"].view(), self.parties["B"].view()
        return a.encrypted and b.encrypted and a.ssid == b.ssid

    def _retrier(self, attempt: int) -> Side:
        plain = [s for s in SIDES if not self.parties[s].view().encrypted]
        if attempt == MAX_RETRIES - 1:
            for side in plain:
                if self.parties[side].impl == "libotr":
                    return side
        if len(plain) == 1:
            return plain[0]
        return "A" if attempt % 2 == 0 else "B"

    def quiet_and_retry(self) -> None:
        """Phases 2 and 3: stop the faults, let the users retry, send probes."""
        self.net.calm()
        self.trace.append(f"step {self.net.step}: the network is calm from now on")
        self.settle()
        if not (allows_otr(self.parties["A"].policy) and allows_otr(self.parties["B"].policy)):
            self.converged = False
            return
        for attempt in range(MAX_RETRIES + 1):
            if self.is_converged():
                break
            if attempt == MAX_RETRIES:
                break
            side = self._retrier(attempt)
            self.retries.append(side)
            self.pause()
            if attempt == MAX_RETRIES - 1 and self.parties[side].impl == "libotr":
                # libotr can be left unable to answer a D-H Commit: after a
                # malformed D-H Key during a refresh, an instance keeps a
                # copy of the master's commit without the message to resend
                # (docs/faults.md).  Ending first clears every exchange.
                self.end(side)
            self.start(side)
            self.settle()
        self.converged = self.is_converged()
        if self.converged:
            probes = {side: self.type(side, f"probe from {side} after the faults")
                      for side in SIDES}  # fmt: skip
            self.settle()
            self.probes_delivered = all(
                Shown(text, True) in self.shown[other(side)] for side, text in probes.items()
            )

    def run(self, script: Script) -> None:
        self.run_script(script)
        self.quiet_and_retry()

    # -- properties -------------------------------------------------------------

    def logical_sent(self, side: Side) -> int:
        """Messages ``side`` sent, counting a fragmented message once."""
        count = 0
        for packet in self.net.sent_by(side):
            if not is_fragment(packet.data) or parse_fragment(packet.data).k == 1:
                count += 1
        return count

    def traffic_bound(self) -> int:
        return (
            PER_USER_ACTION * self.user_actions
            + PER_EXTRA_COPY * self.net.extra_copies
            + CONSTANT
        )

    def _wire_text(self, side: Side) -> list[str]:
        """Everything ``side`` put on the network, plus its fragment pieces
        joined (so a text split over fragments is found too)."""
        packets = [p.data for p in self.net.sent_by(side)]
        pieces = "".join(p for p in packets if is_fragment(p))
        return [*packets, pieces]

    def problems(self) -> list[str]:
        out: list[str] = []
        policies = {s: self.parties[s].policy for s in SIDES}

        # Nothing typed under REQUIRE_ENCRYPTION, or while the conversation
        # was private (encrypted, or finished by the peer), goes out in
        # plaintext, whole or in fragments; held or refused text is reported.
        wire = {s: self._wire_text(s) for s in SIDES}
        for typed in self.typed:
            required = bool(policies[typed.side] & Policy.REQUIRE_ENCRYPTION)
            private = typed.state_before != "plaintext"
            if not (required or private):
                continue
            if any(typed.text in data for data in wire[typed.side]):
                why = "REQUIRE_ENCRYPTION" if required else f"an {typed.state_before} session"
                out.append(f"{typed.text!r} typed by {typed.side} under {why} left in plaintext")
            if typed.state_before != "encrypted" and not typed.refused:
                out.append(f"{typed.text!r} held or refused without telling {typed.side}")

        # Every shown message was sent exactly so by the other side; an
        # encrypted one is shown at most once (duplicates and replays rejected).
        for side in SIDES:
            sender = other(side)
            typed_by = {t.text for t in self.typed if t.side == sender}
            sent_by = [p.data for p in self.net.sent_by(sender)]
            resent_ok = self.parties[sender].impl == "libotr"
            counts = Counter(s.text for s in self.shown[side] if s.encrypted)
            for text, n in counts.items():
                original = text
                if resent_ok and text.startswith(LIBOTR_RESENT_PREFIX):
                    original = text[len(LIBOTR_RESENT_PREFIX) :]
                if original not in typed_by:
                    out.append(f"{side} showed encrypted {text!r}, which {sender} never typed")
                if n > 1:
                    out.append(f"{side} showed encrypted {text!r} {n} times")
            for shown in self.shown[side]:
                # A whitespace tag cut short in flight is shown, as in libotr.
                body = shown.text.rstrip(" \t")
                if not shown.encrypted and not any(body in data for data in sent_by):
                    out.append(f"{side} showed plaintext {shown.text!r} that {sender} never sent")

        # Sessions converge when both policies allow OTR, and never otherwise.
        if allows_otr(policies["A"]) and allows_otr(policies["B"]):
            if not self.converged:
                out.append(f"no common encrypted session after {MAX_RETRIES} retries")
            elif not self.probes_delivered:
                out.append("converged, but a probe message did not arrive encrypted")
        elif any(self.parties[s].view().encrypted for s in SIDES):
            out.append("encrypted although one policy forbids OTR")

        # Automatic replies stay bounded.
        bound = self.traffic_bound()
        for side in SIDES:
            sent = self.logical_sent(side)
            if sent > bound:
                out.append(f"{side} sent {sent} messages, more than the bound {bound}")
        return out

    def check(self) -> None:
        problems = self.problems()
        if problems:
            raise AssertionError(self.describe("; ".join(problems)))

    def describe(self, reason: str, *, last: int = 80) -> str:
        policies = ", ".join(
            f"{s}={self.parties[s].impl}:{self.parties[s].policy!r}" for s in SIDES
        )
        lines = [
            f"{self.label}: {reason}",
            f"parties: {policies}",
            f"schedule: {self.net.schedule!r}",
            f"retries by: {self.retries}; user actions: {self.user_actions}; "
            f"sent A={self.logical_sent(A)} B={self.logical_sent(B)}; "
            f"extra copies: {self.net.extra_copies}",
            f"transcript (last {last} lines):",
            *self.trace[-last:],
        ]
        return "\n".join(lines)


def _clip(text: str, limit: int = 60) -> str:
    text = text.replace("\n", "\\n")
    return text if len(text) <= limit else text[:limit] + f"...({len(text)})"
