"""A deterministic OTR v3 transcript: query, the whole AKE, data messages both
ways (with a burst and non-ASCII text) and the end of the conversation.

``transcript_v3.json`` next to this file is the output of
:func:`generate_transcript`.  The tests regenerate it and compare byte for
byte, replay the stored wire messages into fresh accounts built from the stored
seeds, and check the structure of every stored message.  A replay
(:func:`replay`) repeats each side's own actions too, at the step of the
script where they happened: the randomness an account draws depends on what
it sends (its next key pair is made by the first message that announces it),
so only an account that acts as it did stays in step with the transcript.
To update the file after an intended change of the wire output::

    .venv/bin/python -m tests.vectors.test_transcript
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from offrecord import events as ev
from offrecord.account import Account
from offrecord.crypto.dsa import generate_private_key
from offrecord.policy import Policy
from offrecord.wire.envelope import Kind, classify
from offrecord.wire.messages import DataMessage, MessageType, decode_message

PATH = Path(__file__).with_name("transcript_v3.json")
SEED = 0x07E3_2024
NAMES = ("alice", "bob")
TAGS = {"alice": 0x1A11CE01, "bob": 0x0B0B0B02}
# (who, action, text): "start" sends a query, "send" types a message, "end" ends.
SCRIPT: list[tuple[str, str, str]] = [
    ("alice", "start", ""),
    ("alice", "send", "Hello Bob, this is off the record."),
    ("bob", "send", "Hi Alice! The keys rotate with every reply."),
    ("alice", "send", "A burst, one"),
    ("alice", "send", "A burst, two: ünïcödé ✓ 🔐"),
    ("bob", "send", "Got both."),
    ("alice", "send", "Bye for now."),
    ("alice", "end", ""),
]
PROVENANCE = (
    "Produced by generate_transcript() in tests/vectors/test_transcript.py "
    "(regenerate: .venv/bin/python -m tests.vectors.test_transcript). Long-term DSA keys "
    "come from generate_private_key(random.Random(f'{seed}/{name}/dsa').randbytes), all "
    "other randomness of each account from random.Random(f'{seed}/{name}/session').randbytes; "
    "no clock, policy OPPORTUNISTIC, fixed instance tags. This is offrecord talking to "
    "itself: that libotr 4.1.1 accepts the same code path (query, AKE, data both ways, "
    "end) is covered by tests/interop/test_core_libotr.py."
)


def make_accounts(seed: int) -> dict[str, Account]:
    accounts = {}
    for name in NAMES:
        key = generate_private_key(random.Random(f"{seed}/{name}/dsa").randbytes)
        accounts[name] = Account(
            name, "vectors", key, policy=Policy.OPPORTUNISTIC, instance_tag=TAGS[name],
            random_bytes=random.Random(f"{seed}/{name}/session").randbytes,
        )  # fmt: skip
    return accounts


def describe_wire(text: str) -> str:
    incoming = classify(text)
    if incoming.kind is not Kind.ENCODED:
        return str(incoming.kind.value)
    msg = decode_message(incoming.payload)
    label = f"v{msg.version} {MessageType(msg.type).name}"
    if isinstance(msg, DataMessage):
        counter = int.from_bytes(msg.counter, "big")
        label += f" keys {msg.sender_keyid}->{msg.recipient_keyid} ctr {counter}"
        if msg.old_mac_keys:
            label += f" reveals {len(msg.old_mac_keys) // 20}"
    return label


def describe_event(event: ev.Event) -> str:
    if isinstance(event, ev.MessageReceived):
        return f"{'encrypted' if event.encrypted else 'plain'}: {event.text}"
    if isinstance(event, ev.SessionSecured):
        return (
            f"secured v{event.version} ssid {event.ssid.hex()} bold-first {event.ssid_bold_first}"
        )
    if isinstance(event, ev.NewFingerprint):
        return f"new fingerprint {event.fingerprint.hex()}"
    return type(event).__name__


def other(name: str) -> str:
    return "bob" if name == "alice" else "alice"


def act(accounts: dict[str, Account], who: str, action: str, text: str) -> None:
    """One step of the script: what the user ``who`` does."""
    conv = accounts[who].conversation(other(who))
    if action == "start":
        conv.start()
    elif action == "send":
        assert conv.send(text) == []
    else:
        conv.end()


def generate_transcript(seed: int = SEED) -> dict[str, Any]:
    accounts = make_accounts(seed)
    messages: list[dict[str, Any]] = []

    def pump(step: int) -> None:
        for _ in range(20):
            moved = False
            for name in NAMES:
                for _peer, text in accounts[name].data_to_send():
                    moved = True
                    got = accounts[other(name)].receive(name, text)
                    messages.append({
                        "step": step,
                        "from": name,
                        "wire": text,
                        "kind": describe_wire(text),
                        "receiver_sees": [describe_event(e) for e in got],
                    })  # fmt: skip
            if not moved:
                return
        raise AssertionError("the transcript never went quiet")

    for step, (who, action, text) in enumerate(SCRIPT):
        act(accounts, who, action, text)
        pump(step)

    return {
        "provenance": PROVENANCE,
        "seed": seed,
        "script": [{"who": who, "action": action, "text": text} for who, action, text in SCRIPT],
        "parties": {
            name: {
                "instance_tag": f"0x{TAGS[name]:08x}",
                "fingerprint": accounts[name].fingerprint.hex(),
            }
            for name in NAMES
        },
        "messages": messages,
    }


def serialise(transcript: dict[str, Any]) -> str:
    return json.dumps(transcript, indent=1, ensure_ascii=False) + "\n"


def stored() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(PATH.read_text(encoding="utf-8"))
    return data


def replay(data: dict[str, Any]) -> Iterator[tuple[dict[str, Any], Account]]:
    """Replay a transcript: yields each stored message with the account that
    received it, in the state it had just before; the caller delivers it.

    Fresh accounts from the stored seed act out the script, step by step.  At
    each step, every message the transcript holds from that step is checked
    against what its sender sent (byte for byte) and then handed over; each
    side's own outgoing messages are taken as it sends them, so a checkpoint
    holds nothing unsent.
    """
    accounts = make_accounts(data["seed"])
    sent: dict[str, list[str]] = {name: [] for name in NAMES}

    def collect(name: str) -> None:
        sent[name] += [text for _peer, text in accounts[name].data_to_send()]

    for step, entry in enumerate(data["script"]):
        act(accounts, entry["who"], entry["action"], entry["text"])
        for message in [m for m in data["messages"] if m["step"] == step]:
            sender, receiver = message["from"], other(message["from"])
            collect(sender)
            collect(receiver)
            assert sent[sender], f"step {step}: {sender} sent nothing, the transcript more"
            assert sent[sender].pop(0) == message["wire"], f"step {step}: {sender} sent otherwise"
            yield message, accounts[receiver]
    for name in NAMES:
        collect(name)
        assert sent[name] == [], f"{name} sent more than the transcript holds"


# --- tests ------------------------------------------------------------------------------


def test_regenerated_transcript_equals_the_stored_one_byte_for_byte() -> None:
    assert serialise(generate_transcript()) == PATH.read_text(encoding="utf-8")


def test_stored_messages_replay_into_fresh_accounts() -> None:
    data = stored()
    accounts = make_accounts(data["seed"])
    for name in NAMES:
        assert accounts[name].fingerprint.hex() == data["parties"][name]["fingerprint"]
    delivered = 0
    for message, receiver in replay(data):
        got = receiver.receive(message["from"], message["wire"])
        assert [describe_event(e) for e in got] == message["receiver_sees"]
        delivered += 1
    assert delivered == len(data["messages"])


def test_replay_notices_a_message_the_sender_did_not_send() -> None:
    data = stored()
    data["messages"][6]["wire"] = data["messages"][7]["wire"]
    with pytest.raises(AssertionError, match="sent otherwise"):
        for message, receiver in replay(data):
            receiver.receive(message["from"], message["wire"])


def test_replay_shows_every_typed_message_encrypted() -> None:
    data = stored()
    typed = {(s["who"], s["text"]) for s in data["script"] if s["action"] == "send"}
    shown = {
        (m["from"], line.removeprefix("encrypted: "))
        for m in data["messages"]
        for line in m["receiver_sees"]
        if line.startswith("encrypted: ")
    }
    assert shown == typed
    for m in data["messages"]:
        assert not any(line.startswith("plain: ") for line in m["receiver_sees"])
        for _, text in typed:
            assert text not in m["wire"]


def test_stored_messages_have_the_expected_structure() -> None:
    messages = stored()["messages"]
    kinds = [(m["from"], m["kind"]) for m in messages]
    assert kinds[:5] == [
        ("alice", "query"),
        ("bob", "v3 DH_COMMIT"),
        ("alice", "v3 DH_KEY"),
        ("bob", "v3 REVEAL_SIGNATURE"),
        ("alice", "v3 SIGNATURE"),
    ]
    assert [k for k in kinds[5:]] == [
        ("alice", "v3 DATA keys 1->1 ctr 1"),
        ("bob", "v3 DATA keys 1->2 ctr 1"),
        ("alice", "v3 DATA keys 2->2 ctr 1"),
        ("alice", "v3 DATA keys 2->2 ctr 2"),
        ("bob", "v3 DATA keys 2->3 ctr 1 reveals 1"),
        ("alice", "v3 DATA keys 3->3 ctr 1 reveals 1"),
        ("alice", "v3 DATA keys 3->3 ctr 2"),  # the disconnect
    ]
    for m in messages[1:]:
        msg = decode_message(classify(m["wire"]).payload)
        sender, receiver = m["from"], other(m["from"])
        assert msg.sender_tag == TAGS[sender]
        assert msg.receiver_tag == (0 if msg.type == MessageType.DH_COMMIT else TAGS[receiver])
    assert messages[-1]["receiver_sees"] == ["SessionFinished"]
    secured = [line for m in messages for line in m["receiver_sees"] if line.startswith("secured")]
    assert len(secured) == 2
    ssids = {line.split()[3] for line in secured}
    assert len(ssids) == 1


def test_a_different_seed_gives_a_different_transcript() -> None:
    assert generate_transcript(SEED + 1)["messages"][1]["wire"] != stored()["messages"][1]["wire"]


if __name__ == "__main__":
    PATH.write_text(serialise(generate_transcript()), encoding="utf-8")
    print(f"wrote {PATH}")
