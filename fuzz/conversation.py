"""A scripted receiver for whole-conversation fuzzing.

An input is one configuration byte and then records separated by ``\\x1e``
(ASCII record separator).  Each record is an operation on a fixed, fully
deterministic receiving account ("bob", the identity of the stored v3
transcript in tests/vectors): it receives a network message from "alice" or
its user does something.  Because the receiver is deterministic, the messages
a real peer sent to it in a recorded conversation stay valid when replayed,
so seeds taken from real conversations (fuzz/seeds.py) reach every depth of
the protocol: the AKE, data messages, SMP, fragments, refreshes, the end.

Operations (first byte of a record; any other first byte means "receive the
whole record"):

``<text``  receive ``text`` from alice
``s text`` the user types ``text``        ``q`` the user starts OTR
``e``      the user ends the conversation ``x`` the user aborts SMP
``m secret\\0question``  the user starts SMP (question optional)
``a secret``  the user answers an SMP request
``t seconds``  time passes (decimal, at most 9999), then ``Account.tick``
"""

from __future__ import annotations

import copy
import functools
import hashlib
import random
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field

from offrecord import events as ev
from offrecord.account import MAX_HELD, Account
from offrecord.crypto.dsa import DSAPrivateKey, generate_private_key
from offrecord.errors import LocalProtocolError
from offrecord.policy import Policy

__all__ = [
    "CONFIGS",
    "PEER",
    "RECEIVER",
    "SEPARATOR",
    "Config",
    "PrefixCache",
    "Receiver",
    "encode_ops",
    "receiver_key",
]

# The identity of tests/vectors/transcript_v3.json's "bob" (same derivation).
TRANSCRIPT_SEED = 0x07E3_2024
RECEIVER = "bob"
PEER = "alice"
RECEIVER_TAG = 0x0B0B0B02
SEPARATOR = b"\x1e"
MAX_TICK = 9999
# Bounds on what one operation may make the receiver send: held messages can
# all go out at once when the session is secured; anything else is a handful.
MAX_OUTGOING_PER_OP = MAX_HELD + 8
MAX_OUTGOING_CHARS_PER_OP = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Config:
    policy: Policy
    max_message_size: int


# Selected by the first input byte (modulo the length).
CONFIGS: tuple[Config, ...] = (
    Config(Policy.OPPORTUNISTIC, 0),
    Config(Policy.MANUAL, 0),
    Config(Policy.ALWAYS, 0),
    Config(Policy.ALLOW_V2 | Policy.WHITESPACE_START_AKE | Policy.ERROR_START_AKE, 0),
    Config(Policy.OPPORTUNISTIC, 300),
    Config(Policy.ALWAYS, 120),
    Config(Policy.NEVER, 0),
)


@functools.cache
def receiver_key() -> DSAPrivateKey:
    return generate_private_key(random.Random(f"{TRANSCRIPT_SEED}/{RECEIVER}/dsa").randbytes)


def encode_ops(config_index: int, ops: list[bytes]) -> bytes:
    """The fuzz input for a configuration and a list of operation records."""
    for op in ops:
        if SEPARATOR in op:
            raise ValueError("an operation cannot contain the record separator")
    return bytes((config_index,)) + SEPARATOR.join(ops)


def split_input(data: bytes) -> tuple[Config, list[bytes]]:
    if not data:
        return CONFIGS[0], []
    return CONFIGS[data[0] % len(CONFIGS)], data[1:].split(SEPARATOR)


def _text(raw: bytes) -> str:
    # surrogateescape: any byte string maps to a str, including the odd lone
    # surrogates a transport decoding with that handler would hand over.
    return raw.decode("utf-8", "surrogateescape")


@dataclass
class Receiver:
    """The receiving account and everything the contract checks need."""

    config: Config
    account: Account = field(init=False)
    record: bool = False
    now: float = 0.0
    typed: list[str] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.account = Account(
            RECEIVER,
            "vectors",
            receiver_key(),
            policy=self.config.policy,
            instance_tag=RECEIVER_TAG,
            random_bytes=random.Random(f"{TRANSCRIPT_SEED}/{RECEIVER}/session").randbytes,
            max_message_size=self.config.max_message_size,
        )

    def apply(self, op: bytes) -> list[ev.Event]:
        """Run one operation and check the contract; returns its events."""
        code, rest = op[:1], op[1:]
        events: list[ev.Event]
        if code in (b"s", b"q", b"e", b"m", b"a", b"x", b"t"):
            try:
                events = self._local(code, _text(rest))
            except LocalProtocolError:
                # The API's answer to a request that makes no sense now.
                events = []
        else:
            text = _text(rest if code == b"<" else op)
            events = self.account.receive(PEER, text)
        for event in events:
            assert isinstance(event, ev.Event), f"receive returned {type(event).__name__}"
        self._check_bounds()
        self._check_outgoing()
        return events

    def _local(self, code: bytes, arg: str) -> list[ev.Event]:
        conv = self.account.conversation(PEER)
        if code == b"s":
            self.typed.append(arg)
            return conv.send(arg)
        if code == b"q":
            conv.start()
            return []
        if code == b"e":
            return conv.end()
        if code == b"t":
            seconds = int(arg) if arg.isascii() and arg.isdigit() and len(arg) <= 4 else 1
            self.now += min(seconds, MAX_TICK)
            self.account.tick(self.now)
            return []
        session = conv.best_session()
        if code == b"m":
            secret, _, question = arg.partition("\x00")
            session.smp_start(secret, question or None)
        elif code == b"a":
            session.smp_respond(arg)
        else:
            session.smp_abort()
        return []

    def _check_bounds(self) -> None:
        account = self.account
        for reassembler in account._reassemblers.values():
            limits = reassembler.limits
            assert reassembler.pending <= limits.max_pending
            assert reassembler.buffered <= limits.max_pending * limits.max_message_size
        for conv in account._conversations.values():
            assert len(conv.instances) <= account.max_instances
            assert len(conv._held) <= MAX_HELD

    def _check_outgoing(self) -> None:
        out = self.account.data_to_send()
        if not self.config.max_message_size:
            assert len(out) <= MAX_OUTGOING_PER_OP, f"{len(out)} messages sent for one operation"
        assert sum(len(text) for _, text in out) <= MAX_OUTGOING_CHARS_PER_OP
        policy = self.config.policy
        for peer, text in out:
            assert peer == PEER
            if self.config.max_message_size and text.startswith("?OTR:"):
                # Encoded messages are fragmented; queries and plain text never are.
                assert len(text) <= self.config.max_message_size, "encoded message not fragmented"
            if policy & Policy.REQUIRE_ENCRYPTION and policy.allowed_versions():
                # Queries, errors and encrypted messages only: typed text never
                # leaves in the clear.
                assert text.startswith("?OTR"), "plaintext sent under REQUIRE_ENCRYPTION"
        if self.record:
            self.sent.extend(text for _, text in out)

    def take_sent(self) -> list[str]:
        out, self.sent = self.sent, []
        return out


class PrefixCache:
    """Receivers as they were after expensive prefixes of earlier inputs.

    The receiver is deterministic, so its state after the first k operations
    depends on those operations alone: an input that shares a prefix with an
    earlier one (most mutations do) resumes from a copy instead of repeating
    the AKE's and SMP's modular exponentiations.  Results are unchanged.
    """

    def __init__(self, size: int = 256, threshold: float = 0.002) -> None:
        self._entries: OrderedDict[bytes, Receiver] = OrderedDict()
        self._size = size
        self.threshold = threshold

    def get(self, key: bytes) -> Receiver | None:
        snapshot = self._entries.get(key)
        if snapshot is None:
            return None
        self._entries.move_to_end(key)
        return copy.deepcopy(snapshot)

    def put(self, key: bytes, receiver: Receiver) -> None:
        self._entries[key] = copy.deepcopy(receiver)
        if len(self._entries) > self._size:
            self._entries.popitem(last=False)


def run_ops(
    data: bytes, cache: PrefixCache | None = None
) -> Iterator[tuple[bytes, list[ev.Event]]]:
    """Feed a whole input to a fresh receiver, yielding each op and its events
    (with a cache, only those after the longest cached prefix)."""
    config, ops = split_input(data)
    keys: list[bytes] = []
    if cache is not None:
        running = hashlib.blake2b(data[:1], digest_size=20)
        for op in ops:
            running.update(len(op).to_bytes(4, "big") + op)
            keys.append(running.copy().digest())
    receiver: Receiver | None = None
    start = 0
    if cache is not None:
        for done in range(len(ops), 0, -1):
            receiver = cache.get(keys[done - 1])
            if receiver is not None:
                start = done
                break
    if receiver is None:
        receiver = Receiver(config)
    for index in range(start, len(ops)):
        began = time.perf_counter()
        events = receiver.apply(ops[index])
        if cache is not None and time.perf_counter() - began > cache.threshold:
            cache.put(keys[index], receiver)
        yield ops[index], events
