"""offrecord's side of the benchmark: the workloads, run in this process.

Every workload has an untimed setup and a measured section framed by
``meter.begin()`` / ``meter.end(ops)``.  The same functions serve the timed
passes (:class:`Timer`) and the counting pass (:class:`Counter`), so the counts
describe exactly what was timed.  ``libotr_bench.c`` frames the same sections
the same way.

Two accounts talk through the ``peer-<i>`` conversations: each account
believes it talks to ``peer-<i>``, and the relay hands what one side sends to
``peer-<i>`` to the other side as coming from ``peer-<i>``.  That gives any
number of sessions between two accounts with one long-term key each, which is
how the libotr program sets up its two userstates too.
"""

from __future__ import annotations

import gc
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import gmpy2

from offrecord import events as ev
from offrecord.account import Account
from offrecord.crypto import dh
from offrecord.crypto.dsa import DSAPrivateKey, DSAPublicKey, generate_private_key
from offrecord.crypto.primitives import system_random
from offrecord.policy import Policy

__all__ = [
    "WORKLOADS",
    "Counter",
    "Meter",
    "Params",
    "Timer",
    "counting",
    "memory_per_session",
]

PROTOCOL = "bench"
SECRET = "the colour of the first bike"
# Message workloads are timed in batches of this many messages.
MESSAGE_BATCH = 100


@dataclass(frozen=True, slots=True)
class Params:
    """How much work one round does (the C program gets the same numbers)."""

    keygen_reps: int = 20
    ake_reps: int = 20
    sessions: int = 1000
    pingpong_messages: int = 1000
    oneway_messages: int = 1000
    message_bytes: int = 100
    smp_reps: int = 5
    fragment_reps: int = 20
    fragment_bytes: int = 10 * 1024
    fragment_size: int = 200


class Meter(Protocol):
    def begin(self) -> None: ...
    def end(self, ops: int) -> None: ...


class Timer:
    """Records the time per operation of each measured section.

    The time is this process's CPU time, as libotr_bench.c measures its own:
    on a shared machine the wall clock would also count the time other
    processes ran while a long section was preempted (the libotr side's
    sections are short enough to escape that, ours are not).
    """

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._start = 0.0

    def begin(self) -> None:
        gc.collect()
        self._start = time.process_time()

    def end(self, ops: int) -> None:
        elapsed = time.process_time() - self._start
        self.samples.append(elapsed / ops)


# -- counting ------------------------------------------------------------------


@dataclass(slots=True)
class Tally:
    """Modular exponentiations (by modulus), DSA signatures and verifications."""

    group_exp: int = 0  # in the 1536-bit DH group: DH and SMP
    dsa_exp: int = 0  # modulo a DSA p or q: inside signing, verifying, key generation
    sign: int = 0
    verify: int = 0

    def minus(self, other: Tally) -> Tally:
        return Tally(
            self.group_exp - other.group_exp,
            self.dsa_exp - other.dsa_exp,
            self.sign - other.sign,
            self.verify - other.verify,
        )


_TALLY = Tally()


@contextmanager
def counting() -> Iterator[Tally]:
    """Count exponentiations, signatures and verifications while inside.

    Wraps ``gmpy2.powmod`` / ``gmpy2.powmod_sec`` (offrecord calls them as
    module attributes) and the DSA ``sign`` / ``verify`` methods; everything is
    restored on exit.  Used only in the counting pass, never while timing.
    """
    global _TALLY
    tally = _TALLY = Tally()
    originals: list[tuple[Any, str, Any]] = []

    def patch(owner: Any, name: str, make: Callable[[Any], Any]) -> None:
        original = getattr(owner, name)
        originals.append((owner, name, original))
        setattr(owner, name, make(original))

    def exp_counter(original: Any) -> Any:
        def counted(base: Any, exponent: Any, modulus: Any) -> Any:
            if modulus == dh.MODULUS:
                tally.group_exp += 1
            else:
                tally.dsa_exp += 1
            return original(base, exponent, modulus)

        return counted

    def sign_counter(original: Any) -> Any:
        def counted(self: DSAPrivateKey, message: bytes) -> bytes:
            tally.sign += 1
            return bytes(original(self, message))

        return counted

    def verify_counter(original: Any) -> Any:
        def counted(self: DSAPublicKey, message: bytes, signature: bytes) -> bool:
            tally.verify += 1
            return bool(original(self, message, signature))

        return counted

    patch(gmpy2, "powmod", exp_counter)
    patch(gmpy2, "powmod_sec", exp_counter)
    patch(DSAPrivateKey, "sign", sign_counter)
    patch(DSAPublicKey, "verify", verify_counter)
    try:
        yield tally
    finally:
        for owner, name, original in reversed(originals):
            setattr(owner, name, original)


class Counter:
    """A meter that adds up the tally of the measured sections and their operations."""

    def __init__(self, tally: Tally) -> None:
        self._tally = tally
        self._before = Tally()
        self._total = Tally()
        self._ops = 0

    @staticmethod
    def _copy(t: Tally) -> Tally:
        return Tally(t.group_exp, t.dsa_exp, t.sign, t.verify)

    def begin(self) -> None:
        self._before = self._copy(self._tally)

    def end(self, ops: int) -> None:
        delta = self._tally.minus(self._before)
        total = self._total
        self._total = Tally(
            total.group_exp + delta.group_exp,
            total.dsa_exp + delta.dsa_exp,
            total.sign + delta.sign,
            total.verify + delta.verify,
        )
        self._ops += ops

    def per_op(self) -> dict[str, float]:
        ops = self._ops or 1
        t = self._total
        return {
            "group_exp": t.group_exp / ops,
            "dsa_exp": t.dsa_exp / ops,
            "sign": t.sign / ops,
            "verify": t.verify / ops,
        }


# -- two accounts and a relay -------------------------------------------------

Keys = tuple[DSAPrivateKey, DSAPrivateKey]


@dataclass
class Pair:
    alice: Account
    bob: Account

    @classmethod
    def new(cls, keys: Keys, *, max_message_size: int = 0) -> Pair:
        policy = Policy.OPPORTUNISTIC
        alice = Account(
            "alice", PROTOCOL, keys[0], policy=policy, max_message_size=max_message_size
        )
        bob = Account("bob", PROTOCOL, keys[1], policy=policy)
        return cls(alice, bob)

    def deliver(self, sender: Account, receiver: Account) -> list[ev.Event]:
        """Hand everything ``sender`` wants sent to ``receiver``; its events."""
        out: list[ev.Event] = []
        for peer, text in sender.data_to_send():
            out += receiver.receive(peer, text)
        return out

    def pump(self) -> list[ev.Event]:
        """Deliver both ways until neither side has anything left to send."""
        out: list[ev.Event] = []
        moved = True
        while moved:
            moved = False
            for sender, receiver in ((self.alice, self.bob), (self.bob, self.alice)):
                for peer, text in sender.data_to_send():
                    moved = True
                    out += receiver.receive(peer, text)
        return out

    def secure(self, peer: str) -> None:
        """Run the AKE on ``peer-…`` (untimed setup for the message workloads)."""
        self.alice.conversation(peer).start()
        self.pump()
        self.check_encrypted([peer])

    def check_encrypted(self, peers: list[str]) -> None:
        for account in (self.alice, self.bob):
            for peer in peers:
                if not account.conversation(peer).best_session().is_encrypted:
                    raise RuntimeError(f"{account.name}: {peer} is not encrypted")


def _text(size: int, seed: int) -> str:
    letters = "abcdefghijklmnopqrstuvwxyz0123456789 "
    return "".join(letters[(seed + 7 * i) % len(letters)] for i in range(size))


# -- the workloads ------------------------------------------------------------
#
# Each workload is a generator that yields after every measured chunk, so the
# driver can alternate chunks with libotr's (a slow spell of the machine then
# hits both).  The chunks are the same as libotr_bench.c's "step"s.

Workload = Callable[[Params, Keys, Meter], Iterator[None]]


def keygen(p: Params, keys: Keys, meter: Meter) -> Iterator[None]:
    """One DSA-1024 key per chunk."""
    for _ in range(p.keygen_reps):
        meter.begin()
        generate_private_key(system_random)
        meter.end(1)
        yield


def ake(p: Params, keys: Keys, meter: Meter) -> Iterator[None]:
    """From Alice's query to both sides encrypted, a fresh peer per chunk."""
    pair = Pair.new(keys)
    for i in range(p.ake_reps):
        peer = f"peer-{i}"
        meter.begin()
        pair.alice.conversation(peer).start()
        pair.pump()
        meter.end(1)
        pair.check_encrypted([peer])
        yield


def establish(pair: Pair, count: int) -> list[str]:
    """``count`` AKEs at once: every query first, then deliver until quiet."""
    peers = [f"peer-{i}" for i in range(count)]
    for peer in peers:
        pair.alice.conversation(peer).start()
    pair.pump()
    return peers


def sessions(p: Params, keys: Keys, meter: Meter) -> Iterator[None]:
    """Throughput: ``p.sessions`` AKEs in flight together, in one chunk."""
    pair = Pair.new(keys)
    meter.begin()
    peers = establish(pair, p.sessions)
    meter.end(p.sessions)
    pair.check_encrypted(peers)
    yield


def _exchange(
    p: Params, keys: Keys, meter: Meter, count: int, *, alternate: bool
) -> Iterator[None]:
    """``count`` messages of ``p.message_bytes``, MESSAGE_BATCH per chunk."""
    pair = Pair.new(keys)
    peer = "peer-0"
    pair.secure(peer)
    texts = [_text(p.message_bytes, i) for i in range(count)]
    a = pair.alice.conversation(peer)
    b = pair.bob.conversation(peer)
    received = 0
    for start in range(0, count, MESSAGE_BATCH):
        stop = min(start + MESSAGE_BATCH, count)
        meter.begin()
        for i in range(start, stop):
            if alternate and i % 2:
                b.send(texts[i])
                got = pair.deliver(pair.bob, pair.alice)
            else:
                a.send(texts[i])
                got = pair.deliver(pair.alice, pair.bob)
            for event in got:  # what the C program counts as it receives
                if type(event) is ev.MessageReceived and event.encrypted:
                    received += 1
        meter.end(stop - start)
        yield
    if received != count:
        raise RuntimeError(f"{received} of {count} messages arrived")


def pingpong(p: Params, keys: Keys, meter: Meter) -> Iterator[None]:
    """100-byte messages alternating direction: a key rotation every message."""
    return _exchange(p, keys, meter, p.pingpong_messages, alternate=True)


def oneway(p: Params, keys: Keys, meter: Meter) -> Iterator[None]:
    """100-byte messages, Alice to Bob only."""
    return _exchange(p, keys, meter, p.oneway_messages, alternate=False)


def smp(p: Params, keys: Keys, meter: Meter) -> Iterator[None]:
    """A full successful SMP on an established session, both sides told."""
    pair = Pair.new(keys)
    peer = "peer-0"
    pair.secure(peer)
    alice = pair.alice.conversation(peer).best_session()
    bob = pair.bob.conversation(peer).best_session()
    for _ in range(p.smp_reps):
        meter.begin()
        alice.smp_start(SECRET)
        asked = pair.deliver(pair.alice, pair.bob)
        if not any(isinstance(e, ev.SMPRequested) for e in asked):
            raise RuntimeError("Bob was not asked for the secret")
        bob.smp_respond(SECRET)
        results = [e for e in pair.pump() if isinstance(e, ev.SMPResult)]
        meter.end(1)
        if len(results) != 2 or not all(r.success for r in results):
            raise RuntimeError(f"SMP did not succeed on both sides: {results}")
        yield


def fragment(p: Params, keys: Keys, meter: Meter) -> Iterator[None]:
    """A 10 KB message, fragmented at 200 characters, reassembled and decrypted."""
    pair = Pair.new(keys, max_message_size=p.fragment_size)
    peer = "peer-0"
    pair.secure(peer)
    text = _text(p.fragment_bytes, 1)
    a = pair.alice.conversation(peer)
    for _ in range(p.fragment_reps):
        meter.begin()
        a.send(text)
        got = pair.deliver(pair.alice, pair.bob)
        meter.end(1)
        texts = [e.text for e in got if isinstance(e, ev.MessageReceived) and e.encrypted]
        if texts != [text]:
            raise RuntimeError("the fragmented message did not arrive whole")
        yield


WORKLOADS: dict[str, Workload] = {
    "keygen": keygen,
    "ake": ake,
    "sessions": sessions,
    "pingpong": pingpong,
    "oneway": oneway,
    "smp": smp,
    "fragment": fragment,
}


# -- memory -------------------------------------------------------------------


def memory_per_session(count: int, keys: Keys) -> float:
    """Bytes held per established session, both ends together.

    ``count`` sessions are established between two fresh accounts; the growth
    of tracemalloc's traced memory from before the first query to after the
    last message (everything collected, nothing left in flight) is divided by
    ``count``.
    """
    gc.collect()
    tracemalloc.start()
    try:
        pair = Pair.new(keys)
        gc.collect()
        before, _ = tracemalloc.get_traced_memory()
        peers = establish(pair, count)
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    pair.check_encrypted(peers)
    return (after - before) / count
