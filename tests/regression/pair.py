"""Two offrecord accounts on a lossless in-memory network, and the checks every
regression test makes after feeding bad input to one of them: no exception
(the caller calls ``receive`` directly), no state change, and a conversation
that still works both ways afterwards."""

from __future__ import annotations

import random
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from offrecord import events as ev
from offrecord.account import Account, Conversation
from offrecord.crypto.dsa import DSAPrivateKey, generate_private_key
from offrecord.policy import Policy
from offrecord.session import MessageState, Session
from offrecord.wire.envelope import frame
from offrecord.wire.messages import DataMessage, EncodedMessage, encode_message

__all__ = [
    "ALICE_TAG",
    "BOB_TAG",
    "KEYS",
    "MemoryPeak",
    "Pair",
    "peak_memory",
    "session_snapshot",
    "wire",
]

KEYS: dict[str, DSAPrivateKey] = {
    "alice": generate_private_key(random.Random("regression/alice").randbytes),
    "bob": generate_private_key(random.Random("regression/bob").randbytes),
}
ALICE_TAG, BOB_TAG = 0x0A11CE00, 0x0B0B0B00
_TAGS = {"alice": ALICE_TAG, "bob": BOB_TAG}


def _other(name: str) -> str:
    return "bob" if name == "alice" else "alice"


def session_snapshot(session: Session, *, keys: bool = True) -> tuple[object, ...]:
    """Everything about a session that bad input must not change (without the
    key ids when the input came in a valid data message, which rotates them)."""
    data_keys = session._keys
    ids = None
    if data_keys is not None and keys:
        ids = (data_keys.our_keyid, data_keys.their_keyid, data_keys.derived_pairs)
    return (session.msgstate, session.version, session.ssid, session.their_instance, ids,
            session.ake.state, session.smp.state)  # fmt: skip


@dataclass
class Pair:
    """Alice and Bob, each an :class:`Account`, and the wire between them."""

    seed: str = "pair"
    policy: Policy = Policy.MANUAL
    max_message_size: int = 0
    accounts: dict[str, Account] = field(init=False)

    def __post_init__(self) -> None:
        self.accounts = {
            name: Account(name, "prpl-test", KEYS[name], policy=self.policy,
                          instance_tag=_TAGS[name], max_message_size=self.max_message_size,
                          random_bytes=random.Random(f"{self.seed}/{name}").randbytes)
            for name in ("alice", "bob")
        }  # fmt: skip

    @property
    def alice(self) -> Account:
        return self.accounts["alice"]

    @property
    def bob(self) -> Account:
        return self.accounts["bob"]

    def conv(self, name: str) -> Conversation:
        return self.accounts[name].conversation(_other(name))

    def session(self, name: str) -> Session:
        return self.conv(name).best_session()

    def out(self, name: str) -> list[str]:
        return [text for _, text in self.accounts[name].data_to_send()]

    def feed(self, to: str, text: str) -> list[ev.Event]:
        """Deliver one network message as if from the other side."""
        return self.accounts[to].receive(_other(to), text)

    def deliver(self, to: str, texts: list[str]) -> list[ev.Event]:
        got: list[ev.Event] = []
        for text in texts:
            got += self.feed(to, text)
        return got

    def pump(self, limit: int = 30) -> dict[str, list[ev.Event]]:
        """Deliver both ways until nobody has anything to send."""
        seen: dict[str, list[ev.Event]] = {"alice": [], "bob": []}
        for _ in range(limit):
            a, b = self.out("alice"), self.out("bob")
            if not a and not b:
                return seen
            seen["bob"] += self.deliver("bob", a)
            seen["alice"] += self.deliver("alice", b)
        raise AssertionError("the conversation never went quiet")

    def secure(self) -> Pair:
        self.conv("alice").start()
        self.pump()
        assert self.conv("alice").state is MessageState.ENCRYPTED
        assert self.conv("bob").state is MessageState.ENCRYPTED
        return self

    def snapshot(self, name: str, *, keys: bool = True) -> dict[int, tuple[object, ...]]:
        conv = self.conv(name)
        return {tag: session_snapshot(s, keys=keys)
                for tag, s in [(0, conv.master), *conv.instances.items()]}  # fmt: skip

    def data_message(self, sender: str, text: str = "x") -> DataMessage:
        """A real data message from ``sender`` (taken off the wire, not delivered)."""
        from offrecord.wire.envelope import classify
        from offrecord.wire.messages import decode_message

        self.conv(sender).send(text)
        (wire,) = self.out(sender)
        msg = decode_message(classify(wire).payload)
        assert isinstance(msg, DataMessage)
        return msg

    def assert_usable(self) -> None:
        """Both directions still carry encrypted text, shown exactly once."""
        for sender in ("alice", "bob"):
            receiver = _other(sender)
            text = f"still private, from {sender}"
            assert self.conv(sender).send(text) == []
            got = self.deliver(receiver, self.out(sender))
            shown = [(e.text, e.encrypted) for e in got if isinstance(e, ev.MessageReceived)]
            assert shown == [(text, True)], got
            self.pump()


def wire(msg: EncodedMessage) -> str:
    return frame(encode_message(msg))


class MemoryPeak:
    """The peak of Python allocations (bytes) above the level at entry."""

    def __init__(self) -> None:
        self.peak = 0


@contextmanager
def peak_memory() -> Iterator[MemoryPeak]:
    """Measure the peak of Python allocations inside the block."""
    result = MemoryPeak()
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    try:
        yield result
    finally:
        result.peak = tracemalloc.get_traced_memory()[1] - base
        tracemalloc.stop()
