"""``offrecord peer``: the conformance peer of ``shared/interop/PEER-PROTOCOL.md``.

JSON Lines on stdin (commands) and stdout (events).  :class:`PeerDriver` holds
the protocol logic and is usable in-process; :func:`run` is the stdio loop.
Nothing on stdin, however malformed, stops the peer: bad input becomes an
``error`` event.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterable
from typing import IO, Any

from offrecord import events as ev
from offrecord.account import Account
from offrecord.crypto.dsa import DSAPrivateKey, fingerprint_hex
from offrecord.errors import OTRError
from offrecord.policy import Policy
from offrecord.session import MessageState

__all__ = ["POLICY_TOKENS", "PeerDriver", "parse_policy", "run"]

POLICY_TOKENS: dict[str, Policy] = {
    "v2": Policy.ALLOW_V2,
    "v3": Policy.ALLOW_V3,
    "whitespace": Policy.SEND_WHITESPACE_TAG,
    "whitespace-start": Policy.WHITESPACE_START_AKE,
    "error-start": Policy.ERROR_START_AKE,
    "require": Policy.REQUIRE_ENCRYPTION,
}

Event = dict[str, Any]


def parse_policy(text: str) -> Policy:
    policy = Policy.NEVER
    for token in filter(None, (t.strip() for t in text.split(","))):
        if token not in POLICY_TOKENS:
            raise ValueError(f"unknown policy token {token!r}")
        policy |= POLICY_TOKENS[token]
    return policy


def _describe(event: ev.Event) -> str | None:
    """Text of an ``error`` event for informational engine events."""
    if isinstance(event, ev.ErrorReceived):
        return f"received OTR error: {event.text}"
    if isinstance(event, ev.UnreadableMessage):
        return f"unreadable encrypted message: {event.reason}"
    if isinstance(event, ev.MessageDiscarded):
        return f"message ignored: {event.reason}"
    if isinstance(event, ev.MessageNotSent):
        return f"message not sent: {event.reason}"
    if isinstance(event, ev.UnsupportedVersion):
        return f"peer offers only unsupported OTR versions: {''.join(sorted(event.offered))}"
    if isinstance(event, ev.SMPError):
        return f"SMP error: {event.reason}"
    return None


class PeerDriver:
    """One account talking to one peer, driven by PEER-PROTOCOL commands."""

    def __init__(
        self,
        account: Account,
        peer: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.account = account
        self.peer = peer
        self._conv = account.conversation(peer)
        self._clock = clock
        self._last_state = self._conv.state

    def ready(self) -> Event:
        return {
            "ev": "ready",
            "impl": "offrecord",
            "versions": sorted(self.account.policy.allowed_versions()),
            "our_fingerprint": fingerprint_hex(self.account.fingerprint),
        }

    # -- one command ---------------------------------------------------------

    def handle(self, command: Any) -> list[Event]:
        """Carry out one command; the events it caused, ending with ``done``."""
        ident = command.get("id") if isinstance(command, dict) else None
        out: list[Event] = []
        try:
            out.extend(self._dispatch(command))
        except OTRError as exc:
            out.append({"ev": "error", "text": str(exc)})
        except (ValueError, TypeError, KeyError) as exc:
            out.append({"ev": "error", "text": f"bad command: {exc}"})
        out.extend(self._state_change())
        out.extend(self._wire())
        out.append({"ev": "done", "id": ident})
        return out

    def _dispatch(self, command: Any) -> list[Event]:
        if not isinstance(command, dict):
            raise ValueError("a command is a JSON object")
        op = command.get("op")
        conv = self._conv
        if op == "send":
            return self._translate(conv.send(_text(command, "text")))
        if op == "recv":
            return self._translate(self.account.receive(self.peer, _text(command, "data")))
        if op == "start":
            conv.start()
            return []
        if op == "end":
            return self._translate(conv.end())
        if op == "smp":
            question = command.get("question")
            if question is not None and not isinstance(question, str):
                raise ValueError("question must be a string")
            conv.best_session().smp_start(_text(command, "secret"), question)
            return []
        if op == "smp_respond":
            conv.best_session().smp_respond(_text(command, "secret"))
            return []
        if op == "smp_abort":
            conv.best_session().smp_abort()
            return []
        if op == "x-symkey":
            # Extension (not in PEER-PROTOCOL v1): announce use of the extra
            # symmetric key and report it, so tests can compare both ends.
            use = command.get("use")
            if not isinstance(use, int) or not 0 <= use <= 0xFFFFFFFF:
                raise ValueError("'use' must be an integer in [0, 2^32)")
            data = _text(command, "data").encode("utf-8")
            key = conv.best_session().extra_symmetric_key(use, data, now=self._clock())
            return [{"ev": "log", "text": f"symkey sent use={use} key={key.hex().upper()}"}]
        if op == "status":
            return [self.status()]
        if op == "quit":
            return []
        raise ValueError(f"unknown op {op!r}")

    def status(self) -> Event:
        session = self._conv.best_session()
        their = session.their_fingerprint
        trusted = bool(their and self.account.trust.trust(self.peer, their))
        return {
            "ev": "status",
            "state": session.msgstate.value,
            "version": session.version,
            "our_fingerprint": fingerprint_hex(self.account.fingerprint),
            "their_fingerprint": fingerprint_hex(their) if their else None,
            "trusted": trusted,
            "ssid": session.ssid.hex().upper() if session.ssid is not None else None,
        }

    def _translate(self, events: Iterable[ev.Event]) -> list[Event]:
        out: list[Event] = []
        for event in events:
            if isinstance(event, ev.MessageReceived):
                out.append({"ev": "message", "text": event.text, "encrypted": event.encrypted})
            elif isinstance(event, ev.SessionSecured):
                out.append({"ev": "state", "state": "encrypted"})
                self._last_state = MessageState.ENCRYPTED
            elif isinstance(event, ev.SMPRequested):
                out.append({"ev": "smp", "state": "asked", "question": event.question})
            elif isinstance(event, ev.SMPResult):
                out.append({"ev": "smp", "result": "success" if event.success else "failure"})
            elif isinstance(event, ev.SMPAborted):
                out.append({"ev": "smp", "result": "aborted"})
            elif isinstance(event, ev.SMPError):
                out.append({"ev": "error", "text": _describe(event)})
                out.append({"ev": "smp", "result": "error"})
            elif (text := _describe(event)) is not None:
                out.append({"ev": "error", "text": text})
            elif isinstance(event, ev.ExtraSymmetricKey):
                text = (
                    f"symkey received use={event.use} data={event.data.hex().upper()} "
                    f"key={event.key.hex().upper()}"
                )
                out.append({"ev": "log", "text": text})
            elif isinstance(event, ev.MessageHeld):
                out.append({"ev": "log", "text": f"{event.count} message(s) held until encrypted"})
        return out

    def _state_change(self) -> list[Event]:
        state = self._conv.state
        if state is self._last_state:
            return []
        self._last_state = state
        return [{"ev": "state", "state": state.value}]

    def _wire(self) -> list[Event]:
        return [{"ev": "wire", "data": text} for _peer, text in self.account.data_to_send()]


def _text(command: dict[str, Any], name: str) -> str:
    value = command.get(name)
    if not isinstance(value, str):
        raise ValueError(f"{name!r} must be a string")
    return value


def run(driver: PeerDriver, stdin: IO[str], stdout: IO[str]) -> int:
    """The stdio loop: one command per line until ``quit`` or end of input."""

    def emit(event: Event) -> None:
        stdout.write(json.dumps(event, ensure_ascii=False) + "\n")
        stdout.flush()

    emit(driver.ready())
    for line in stdin:
        if not line.strip():
            continue
        try:
            command = json.loads(line)
        except ValueError as exc:
            emit({"ev": "error", "text": f"bad JSON: {exc}"})
            emit({"ev": "done", "id": None})
            continue
        for event in driver.handle(command):
            emit(event)
        if isinstance(command, dict) and command.get("op") == "quit":
            break
    return 0


def make_account(
    account: str,
    protocol: str,
    key: DSAPrivateKey,
    policy: Policy,
    max_fragment: int,
    instance_tag: int | None,
) -> Account:
    return Account(
        account,
        protocol,
        key,
        policy=policy,
        instance_tag=instance_tag,
        clock=time.monotonic,
        max_message_size=max_fragment,
    )


def main_streams() -> tuple[IO[str], IO[str]]:
    # Line-buffered UTF-8 regardless of the locale.
    sys.stdin.reconfigure(encoding="utf-8", errors="replace")  # type: ignore[union-attr]
    sys.stdout.reconfigure(encoding="utf-8", line_buffering=True)  # type: ignore[union-attr]
    return sys.stdin, sys.stdout
