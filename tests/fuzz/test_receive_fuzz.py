"""Mutation fuzzing of ``Account.receive`` with the messages of the stored v3
transcript (tests/vectors/transcript_v3.json).

For each stored wire message the receiving account is checkpointed in the state
it had just before that message arrived.  A fuzz example takes a checkpoint,
mutates the message (bytes of the decoded payload, or characters of the
framed text), and feeds it in.  Contract: only events come out, never an
exception; and when every event says the input was rejected, the receiver is
unchanged: the genuine message then does exactly what it did in the transcript.
"""

from __future__ import annotations

import base64
import copy

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from offrecord import events as ev
from offrecord.account import Account
from offrecord.wire.envelope import frame
from tests.vectors.test_transcript import describe_event, replay, stored

REJECTIONS = (ev.MessageDiscarded, ev.UnreadableMessage)


def checkpoints() -> list[tuple[Account, str, str, list[str]]]:
    """(receiver before the message, sender, wire text, what the receiver saw)."""
    out = []
    for m, receiver in replay(stored()):
        sender = m["from"]
        out.append((copy.deepcopy(receiver), sender, m["wire"], m["receiver_sees"]))
        receiver.receive(sender, m["wire"])
    return out


CHECKPOINTS = checkpoints()
ENCODED = [i for i, (_, _, wire, _) in enumerate(CHECKPOINTS) if wire.startswith("?OTR:")]
FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def feed(index: int, mutated: str) -> None:
    account, sender, wire, expected = CHECKPOINTS[index]
    account = copy.deepcopy(account)
    events = account.receive(sender, mutated)
    assert all(isinstance(e, ev.Event) for e in events)
    for text in (t for _, t in account.data_to_send()):
        assert text.startswith("?OTR"), "a mutated input made the receiver send plain text"
    if events and all(isinstance(e, REJECTIONS) for e in events):
        again = account.receive(sender, wire)
        assert [describe_event(e) for e in again] == expected


# (operation, position, byte): flip a bit, overwrite, insert, delete, or truncate.
edits = st.lists(
    st.tuples(
        st.sampled_from(["flip", "set", "insert", "delete", "truncate"]),
        st.integers(0, 1 << 16),
        st.integers(0, 255),
    ),
    min_size=1,
    max_size=4,
)


def apply(data: bytes, ops: list[tuple[str, int, int]]) -> bytes:
    buf = bytearray(data)
    for op, position, value in ops:
        at = position % (len(buf) + 1)
        if op == "insert":
            buf[at:at] = bytes([value])
        elif op == "truncate":
            del buf[at:]
        elif not buf:
            continue
        else:
            at %= len(buf)
            if op == "flip":
                buf[at] ^= 1 << (value % 8)
            elif op == "set":
                buf[at] = value
            else:
                del buf[at]
    return bytes(buf)


@FUZZ
@given(st.sampled_from(ENCODED), edits)
def test_mutated_payloads(index: int, ops: list[tuple[str, int, int]]) -> None:
    wire = CHECKPOINTS[index][2]
    payload = base64.b64decode(wire[len("?OTR:") : wire.index(".")])
    feed(index, frame(apply(payload, ops)))


@FUZZ
@given(st.sampled_from(ENCODED), st.integers(0, 7), st.data())
def test_mutated_header_and_early_fields(index: int, which: int, data: st.DataObject) -> None:
    """Most checks sit near the front: aim edits at the first 32 bytes."""
    wire = CHECKPOINTS[index][2]
    payload = bytearray(base64.b64decode(wire[len("?OTR:") : wire.index(".")]))
    at = data.draw(st.integers(0, min(31, len(payload) - 1)))
    payload[at] = data.draw(st.integers(0, 255))
    feed(index, frame(bytes(payload)))


@FUZZ
@given(
    st.integers(0, len(CHECKPOINTS) - 1),
    st.lists(st.tuples(st.integers(0, 1 << 16), st.characters()), min_size=1, max_size=3),
)
def test_mutated_text(index: int, edits: list[tuple[int, str]]) -> None:
    text = list(CHECKPOINTS[index][2])
    for position, char in edits:
        text[position % len(text)] = char
    feed(index, "".join(text))


def test_the_checkpoints_reproduce_the_transcript() -> None:
    """The oracle of the fuzz tests: unmutated, every message does what it did."""
    for index in range(len(CHECKPOINTS)):
        account, sender, wire, expected = CHECKPOINTS[index]
        got = copy.deepcopy(account).receive(sender, wire)
        assert [describe_event(e) for e in got] == expected
    assert len(ENCODED) == len(CHECKPOINTS) - 1
