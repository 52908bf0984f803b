"""Padding (TLV 0) hides message lengths; it is off by default and invisible to
the receiver."""

from __future__ import annotations

import random

from offrecord import events as ev
from offrecord.account import Account
from offrecord.crypto.dsa import generate_private_key
from offrecord.wire.envelope import classify
from offrecord.wire.messages import DataMessage, decode_message

_RNG = random.Random(11)
_KEYS = [generate_private_key(_RNG.randbytes) for _ in range(2)]


def _pair(padding: int) -> tuple[Account, Account]:
    a = Account("a", "irc", _KEYS[0], random_bytes=_RNG.randbytes, padding=padding)
    b = Account("b", "irc", _KEYS[1], random_bytes=_RNG.randbytes)
    a.conversation("b").start()
    _pump(a, b)
    return a, b


def _pump(a: Account, b: Account) -> list[ev.Event]:
    got: list[ev.Event] = []
    for _ in range(10):
        moved = False
        for src, dst, name in ((a, b, "a"), (b, a, "b")):
            for _peer, text in src.data_to_send():
                moved = True
                events = dst.receive(name, text)
                if dst is b:
                    got += events
        if not moved:
            break
    return got


def test_padded_messages_have_block_sized_ciphertexts() -> None:
    for padding in (0, 64, 256):
        a, b = _pair(padding)
        sizes = set()
        for text in ("x", "hello there", "y" * 50):
            a.conversation("b").send(text)
            (peer_text,) = [t for _p, t in a.data_to_send()]
            msg = decode_message(classify(peer_text).payload)
            assert isinstance(msg, DataMessage)
            sizes.add(len(msg.encrypted))
            shown = [e for e in b.receive("a", peer_text) if isinstance(e, ev.MessageReceived)]
            assert [e.text for e in shown] == [text]
            assert all(t.type == 0 for t in shown[0].tlvs)
        if padding:
            assert sizes == {padding}
        else:
            assert len(sizes) == 3
