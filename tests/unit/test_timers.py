"""Timers driven by Account.tick(now): stalled AKEs and stale reassemblies."""

from __future__ import annotations

import random

from offrecord.account import Account
from offrecord.ake import AuthState
from offrecord.crypto.dsa import generate_private_key
from offrecord.session import AKE_TIMEOUT

_KEY = generate_private_key(random.Random(3).randbytes)


def test_a_stalled_ake_is_abandoned_after_the_timeout() -> None:
    now = [100.0]
    alice = Account("alice", "irc", _KEY, random_bytes=random.Random(1).randbytes,
                    clock=lambda: now[0])  # fmt: skip
    alice.receive("bob", "?OTRv3?")  # we answer with a D-H Commit, then nothing comes back
    master = alice.conversation("bob").master
    assert master.ake.state is AuthState.AWAITING_DHKEY
    now[0] += AKE_TIMEOUT - 1
    alice.tick()
    assert master.ake.state is AuthState.AWAITING_DHKEY
    now[0] += 2
    alice.tick()
    assert not master.ake_in_progress


def test_tick_expires_incomplete_reassemblies() -> None:
    alice = Account("alice", "irc", _KEY, random_bytes=random.Random(1).randbytes,
                    instance_tag=0x1000)  # fmt: skip
    alice.receive("bob", "?OTR|00002000|00001000,00001,00002,?OTR:AAMD,")
    reassembler = alice._reassemblers["bob"]
    assert reassembler.pending == 1
    alice.tick(now=10_000.0)
    assert reassembler.pending == 0
