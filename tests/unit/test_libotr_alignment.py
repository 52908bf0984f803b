"""Behaviours aligned with libotr 4.1.1 where the spec leaves room."""

from __future__ import annotations

import random

from offrecord import events as ev
from offrecord.account import Account
from offrecord.crypto.dsa import generate_private_key
from offrecord.policy import Policy
from offrecord.session import MessageState
from offrecord.wire.envelope import Kind, classify, frame, tag_plaintext
from offrecord.wire.messages import DataMessage, encode_message

_RNG = random.Random(21)
_KEYS = [generate_private_key(_RNG.randbytes) for _ in range(2)]


def _secured() -> tuple[Account, Account]:
    a = Account("a", "irc", _KEYS[0], random_bytes=_RNG.randbytes, policy=Policy.OPPORTUNISTIC)
    b = Account("b", "irc", _KEYS[1], random_bytes=_RNG.randbytes, policy=Policy.OPPORTUNISTIC)
    a.conversation("b").start()
    for _ in range(6):
        for src, dst, name in ((a, b, "a"), (b, a, "b")):
            for _peer, text in src.data_to_send():
                dst.receive(name, text)
    assert a.conversation("b").state is MessageState.ENCRYPTED
    return a, b


def test_whitespace_tag_does_not_restart_an_encrypted_session() -> None:
    a, _b = _secured()
    events = a.receive("b", tag_plaintext("tagged plaintext", frozenset({2, 3})))
    assert [e.text for e in events if isinstance(e, ev.MessageReceived)] == ["tagged plaintext"]
    assert a.data_to_send() == []  # no new D-H Commit


def test_wrapped_base64_is_decoded_like_libotr() -> None:
    msg = DataMessage(3, 0x100, 0x100, 0, 1, 1, 5, b"\x00" * 7 + b"\x01", b"", b"\x00" * 20, b"")
    wire = frame(encode_message(msg))
    body = wire[5:-1]
    wrapped = "?OTR:" + "\n".join(body[i : i + 20] for i in range(0, len(body), 20)) + " ."
    assert classify(wrapped).kind is Kind.ENCODED
    assert classify(wrapped).payload == classify(wire).payload


def test_data_from_unknown_instances_uses_no_session_slot() -> None:
    a, _b = _secured()
    before = len(a.conversation("b").instances)
    for tag in range(0x1000, 0x1040):
        msg = DataMessage(3, tag, a.instance_tag, 0, 1, 1, 5, b"\x00" * 7 + b"\x01", b"x",
                          b"\x00" * 20, b"")  # fmt: skip
        events = a.receive("b", frame(encode_message(msg)))
        assert all(isinstance(e, ev.MessageDiscarded) for e in events)
    assert len(a.conversation("b").instances) == before
    assert a.data_to_send() == []
