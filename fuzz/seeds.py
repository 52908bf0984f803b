"""Writes the seed corpus (fuzz/corpus/<target>/seed-*) from real conversations.

    python -m fuzz.seeds          # rewrite every seed-* file

Everything is deterministic, so regenerating gives the same files.  Entries
that a fuzzing run added (named by libFuzzer after their SHA-1) are left alone.
The conversations are offrecord talking to the deterministic receiver of
:mod:`fuzz.conversation`: the stored v3 transcript (checked byte for byte
against tests/vectors/transcript_v3.json), SMP with and without a question,
v2, fragments (many pieces), REQUIRE_ENCRYPTION with held messages,
whitespace-tag starts, refreshes, error messages, heartbeats and the end.
"""

from __future__ import annotations

import functools
import random
import sys
from collections.abc import Callable
from pathlib import Path

from fuzz.conversation import CONFIGS, PEER, RECEIVER, SEPARATOR, Receiver, encode_ops
from fuzz.targets import _ake_signature_setup, join_records
from offrecord import events as ev
from offrecord.account import Account
from offrecord.crypto.dsa import generate_private_key
from offrecord.policy import Policy
from offrecord.smp import SMP_TLV_TYPES, SMPState
from offrecord.storage.base import FingerprintRecord, InstanceTagRecord
from offrecord.storage.libotr import (
    PrivateKeyEntry,
    format_fingerprints,
    format_instance_tags,
    format_private_keys,
)
from offrecord.wire.envelope import Kind, classify, error_message, tag_plaintext
from offrecord.wire.fragment import fragment_message, is_fragment
from offrecord.wire.messages import decode_message
from offrecord.wire.tlv import TLV, TLVType, encode_tlvs

CORPUS = Path(__file__).with_name("corpus")
Op = bytes


def _wire(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


class Scenario:
    """alice (a plain offrecord Account) talking to the fuzz receiver (bob);
    records bob's operations as the account target reads them."""

    def __init__(
        self,
        config_index: int,
        *,
        alice: Account | None = None,
        policy: Policy = Policy.OPPORTUNISTIC,
        max_message_size: int = 0,
        seed: str = "alice",
    ) -> None:
        self.config_index = config_index
        self.bob = Receiver(CONFIGS[config_index], record=True)
        if alice is None:
            key = generate_private_key(random.Random(f"fuzz/{seed}/dsa").randbytes)
            alice = Account(
                PEER, "fuzz", key, policy=policy, instance_tag=0x1A11CE01,
                random_bytes=random.Random(f"fuzz/{seed}/session").randbytes,
                max_message_size=max_message_size,
            )  # fmt: skip
        self.alice = alice
        self.ops: list[Op] = []
        self.alice_answer: str | None = None
        self.alice_wire: list[str] = []
        self.bob_wire: list[str] = []
        self.alice_events: list[ev.Event] = []

    def bob_does(self, op: Op) -> None:
        self.ops.append(op)
        self.bob.apply(op)
        self.pump()

    def alice_does(self, action: Callable[[Account], object]) -> None:
        action(self.alice)
        self.pump()

    def pump(self) -> None:
        for _ in range(50):
            moved = False
            for _peer, text in self.alice.data_to_send():
                moved = True
                self.alice_wire.append(text)
                op = b"<" + _wire(text)
                self.ops.append(op)
                self.bob.apply(op)
            for text in self.bob.take_sent():
                moved = True
                self.bob_wire.append(text)
                got = self.alice.receive(RECEIVER, text)
                self.alice_events.extend(got)
                if self.alice_answer is not None and any(
                    isinstance(e, ev.SMPRequested) for e in got
                ):
                    self.alice.conversation(RECEIVER).best_session().smp_respond(self.alice_answer)
            if not moved:
                return
        raise AssertionError("the conversation never went quiet")

    def data(self) -> bytes:
        return encode_ops(self.config_index, self.ops)


def scenario_transcript() -> Scenario:
    """The stored v3 transcript, alice's messages byte for byte."""
    from tests.vectors.test_transcript import SCRIPT, SEED, make_accounts, stored

    s = Scenario(0, alice=make_accounts(SEED)["alice"])
    for who, action, text in SCRIPT:
        if who == "bob":
            assert action == "send"
            s.bob_does(b"s" + _wire(text))
        elif action == "start":
            s.alice_does(lambda a: a.conversation(RECEIVER).start())
        elif action == "send":
            s.alice_does(functools.partial(_alice_sends, text=text))
        else:
            s.alice_does(lambda a: a.conversation(RECEIVER).end())
    expected = [m["wire"] for m in stored()["messages"] if m["from"] == "alice"]
    assert s.alice_wire == expected, "the receiver no longer reproduces the stored transcript"
    return s


def _alice_sends(alice: Account, text: str) -> None:
    alice.conversation(RECEIVER).send(text)


def _secure(s: Scenario) -> None:
    s.alice_does(lambda a: a.conversation(RECEIVER).start())


def scenario_smp(config_index: int = 0, **alice: object) -> Scenario:
    s = Scenario(config_index, **alice)  # type: ignore[arg-type]
    _secure(s)
    s.alice_does(lambda a: a.conversation(RECEIVER).send("hello, bob"))
    s.bob_does(b"s" + _wire("hello, alice ✓"))
    # alice asks with a question; bob answers right.
    s.alice_does(
        lambda a: a.conversation(RECEIVER).best_session().smp_start("blue", "favourite colour?")
    )
    s.bob_does(b"ablue")
    # bob asks without a question; alice answers wrong.
    s.alice_answer = "green"
    s.bob_does(b"mblue")
    s.alice_answer = None
    # bob starts again and aborts; alice sends an extra symmetric key use.
    s.bob_does(b"mred\x00again?")
    s.bob_does(b"x")
    s.alice_does(lambda a: a.conversation(RECEIVER).best_session().extra_symmetric_key(7, b"f"))
    s.alice_does(lambda a: a.conversation(RECEIVER).send("bye"))
    s.alice_does(lambda a: a.conversation(RECEIVER).end())
    return s


def scenario_refresh_and_errors() -> Scenario:
    s = Scenario(0, seed="refresh")
    _secure(s)
    s.alice_does(lambda a: a.conversation(RECEIVER).send("before refresh"))
    _secure(s)  # a query while encrypted refreshes the keys
    s.bob_does(b"q")
    s.alice_does(lambda a: a.conversation(RECEIVER).send("after refresh"))
    s.bob_does(b"t61")
    s.alice_does(lambda a: a.conversation(RECEIVER).send("after a minute"))
    s.bob_does(b"e")
    s.alice_does(lambda a: a.conversation(RECEIVER).send("to a finished session"))
    # An error message starts an AKE under ERROR_START_AKE.
    s.ops.append(b"<" + _wire(error_message("something went wrong")))
    s.bob.apply(s.ops[-1])
    s.pump()
    s.bob_does(b"t120")
    return s


def scenario_whitespace() -> Scenario:
    s = Scenario(0, seed="tag")
    s.alice_does(lambda a: a.conversation(RECEIVER).send("plain hello with a tag"))
    s.bob_does(b"s" + _wire("answered after the tag"))
    s.alice_does(lambda a: a.conversation(RECEIVER).send("encrypted now?"))
    return s


def scenario_always() -> Scenario:
    s = Scenario(2, seed="always")
    s.bob_does(b"sheld one")
    s.bob_does(b"sheld two")
    _secure(s)
    s.alice_does(lambda a: a.conversation(RECEIVER).send("got them"))
    return s


def scenario_v2() -> Scenario:
    return scenario_smp(3, seed="v2", max_message_size=150)


def scenario_many_pieces() -> Scenario:
    s = Scenario(5, seed="pieces", max_message_size=60)
    _secure(s)
    s.alice_does(lambda a: a.conversation(RECEIVER).send("many pieces " * 40))
    return s


def write(target: str, name: str, data: bytes) -> None:
    directory = CORPUS / target
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"seed-{name}").write_bytes(data)


def encoded_payloads(wires: list[str]) -> list[bytes]:
    out = []
    for text in wires:
        if is_fragment(text):
            continue
        incoming = classify(text)
        if incoming.kind is Kind.ENCODED:
            out.append(incoming.payload)
    return out


def main() -> int:
    scenarios = {
        "transcript": scenario_transcript(),
        "smp": scenario_smp(seed="smp"),
        "refresh": scenario_refresh_and_errors(),
        "whitespace": scenario_whitespace(),
        "always": scenario_always(),
        "v2": scenario_v2(),
        "fragments-smp": scenario_smp(4, seed="fragments", max_message_size=200),
        "many-pieces": scenario_many_pieces(),
    }
    for old in CORPUS.glob("*/seed-*"):
        old.unlink()
    for name, s in scenarios.items():
        write("account", name, s.data())

    wires: list[str] = []
    for s in scenarios.values():
        wires.extend(s.alice_wire)
        wires.extend(s.bob_wire)
    wires = list(dict.fromkeys(wires))
    fragments = [w for w in wires if is_fragment(w)]
    payloads = list(dict.fromkeys(encoded_payloads(wires)))

    # Classification and framing.
    classify_seeds = [
        "?OTRv23?\nalice has requested an Off-the-Record private conversation.",
        "?OTR?v2?", "?OTRv3?", "?OTR?", "?OTR Error: bad", "?OTR:AAMD.",
        tag_plaintext("hello", frozenset({2, 3})), "plain text", "?OTR|", "?OTR,",
    ]  # fmt: skip
    classify_seeds += [w for w in wires if len(w) < 2000][:40]
    for i, w in enumerate(classify_seeds):
        write("envelope_classify", f"{i:03d}", _wire(w))
    for i, w in enumerate(w for w in wires if w.startswith("?OTR:")):
        body = w[len("?OTR:") :]
        if i % 3 == 1:  # wrapped, as some transports do
            body = "\n".join(body[j : j + 64] for j in range(0, len(body), 64))
        write("envelope_base64", f"{i:03d}", _wire(body))

    # Encoded messages.
    by_type: dict[tuple[int, int], list[bytes]] = {}
    for raw in payloads:
        msg = decode_message(raw)
        by_type.setdefault((msg.version, int(msg.type)), []).append(raw)
    for i, raw in enumerate(payloads):
        write("message", f"{i:03d}", raw)
    for (version, kind), raws in sorted(by_type.items()):
        from offrecord.wire.messages import MessageType

        target = f"message_{MessageType(kind).name.lower()}"
        for i, raw in enumerate(raws[:6]):
            lead = b"\x01" + raw[3:] if version == 3 else b"\x00" + raw[3:]
            write(target, f"v{version}-{i:02d}", lead)

    # TLVs and SMP.
    from tests.fuzz.test_smp_fuzz import prepared

    snaps, smp_payloads = prepared()
    tlv_seeds = [
        encode_tlvs([TLV(TLVType.PADDING, bytes(7)), TLV(TLVType.DISCONNECTED)]),
        b"hello\x00" + encode_tlvs([TLV(TLVType.EXTRA_SYMMETRIC_KEY, b"\x00\x00\x00\x01ab")]),
        encode_tlvs([TLV(0)] * 50),
    ] + [encode_tlvs([TLV(t, p)]) for t, p in sorted(smp_payloads.items())]
    for i, blob in enumerate(tlv_seeds):
        write("tlv", f"{i:03d}", blob)
    smp_types = sorted(int(t) for t in SMP_TLV_TYPES)
    states = sorted(SMPState, key=lambda s: s.name)
    assert len(snaps) == len(states)
    for t, payload in sorted(smp_payloads.items()):
        for si, state in enumerate(states):
            write("smp_tlv", f"t{t}-{state.name}", bytes((smp_types.index(t), si)) + payload)
    order = [7, 3, 4, 5]
    sequence = [bytes((smp_types.index(t),)) + smp_payloads[t] for t in order]
    for si, state in enumerate(states):
        write("smp_sequence", f"{state.name}", bytes((si,)) + join_records(sequence))
        write("smp_sequence", f"{state.name}-fresh", bytes((si | 0x80,)) + join_records(sequence))

    # Fragments.
    for i, f in enumerate(fragments[:60]):
        write("fragment_parse", f"{i:03d}", _wire(f))
    long = "?OTR:" + "A" * 1000 + "."
    pieces_v3 = fragment_message(long, 40, version=3, sender_tag=0x100, receiver_tag=0)
    pieces_v2 = fragment_message(long, 30, version=2)
    for name, pieces in (("v3-many", pieces_v3), ("v2-many", pieces_v2)):
        records = [b"\x01" + _wire(p) for p in pieces]
        write("fragment_reassembly", name, b"\x00" + SEPARATOR.join(records))
        write("fragment_reassembly", name + "-small", b"\x01" + SEPARATOR.join(records[:20]))
    real = [b"\x01" + _wire(f) for f in fragments[:40]]
    write("fragment_reassembly", "conversation", b"\x00" + SEPARATOR.join(real))

    # One message in each state of the stored transcript.
    from tests.fuzz.test_receive_fuzz import CHECKPOINTS, ENCODED

    for i, index in enumerate(ENCODED):
        wire = CHECKPOINTS[index][2]
        write("session", f"{i:02d}", bytes((i,)) + classify(wire).payload)

    # What an authenticated peer can send: the AKE's signed part, and data
    # message plaintexts with TLVs.
    from offrecord.crypto.primitives import hmac_sha256
    from offrecord.wire.codec import encode_int, encode_mpi

    m1, _c, _m2, theirs, ours = _ake_signature_setup()
    signer = generate_private_key(random.Random("fuzz/signer").randbytes)
    pub, keyid = signer.public.encode(), encode_int(1)
    signed = signer.sign(hmac_sha256(m1, encode_mpi(theirs) + encode_mpi(ours) + pub + keyid))
    write("ake_signature", "valid", pub + keyid + signed)
    write("ake_signature", "keyid-0", pub + encode_int(0) + signed)
    plain = [
        b"\x00hello",
        b"\x00hi\x00" + encode_tlvs([TLV(TLVType.PADDING, bytes(9))]),
        b"\x01\x00" + encode_tlvs([TLV(TLVType.SMP1Q, smp_payloads[7])]),
        b"\x01\x00" + encode_tlvs([TLV(TLVType.SMP1, smp_payloads[2])]),
        b"\x01\x00" + encode_tlvs([TLV(TLVType.SMP_ABORT)]),
        b"\x01\x00" + encode_tlvs([TLV(TLVType.EXTRA_SYMMETRIC_KEY, b"\x00\x00\x00\x02x")]),
        b"\x00\xff\xfe text\x00" + encode_tlvs([TLV(0xFFFF, b"unknown")]),
        b"\x01\x00" + encode_tlvs([TLV(TLVType.DISCONNECTED)]),
        b"\x00after the end",
    ]
    write("peer_plaintext", "tlvs", join_records(plain))
    write("peer_plaintext", "smp-then-text", join_records([plain[2], plain[0], plain[4]]))
    write("peer_plaintext", "many-empty-tlvs", b"\x01\x00" + encode_tlvs([TLV(0)] * 2000))

    # Files.
    from tests.fuzz.test_storage_fuzz import SEEDS

    write("sexp", "private-key", SEEDS["keys"])
    write("sexp", "canonical", b'(3:abc(1:x4:\x00\x01\x02\x03)#6869#|YWJj|"q\\n")')
    write("private_keys", "two-accounts", SEEDS["keys"])
    write("fingerprints", "two", SEEDS["fingerprints"])
    write("instance_tags", "one", SEEDS["tags"])
    write("potr_key3", "key", SEEDS["key3"])
    write("potr_fpr", "one", SEEDS["fpr"])
    write("potr_import", "key-and-fpr", SEEDS["key3"] + SEPARATOR + b"me\tme\txmpp\t" +
          bytes(range(20)).hex().encode() + b"\tverified\n")  # fmt: skip
    key = generate_private_key(random.Random("fuzz/files").randbytes)
    write(
        "private_keys",
        "libotr-format",
        format_private_keys([PrivateKeyEntry("me@example.org", "prpl-jabber", key)]),
    )
    write(
        "fingerprints",
        "libotr-format",
        format_fingerprints(
            [FingerprintRecord("you", "me", "prpl-irc", bytes(range(1, 21)), "smp")]
        ),
    )
    write(
        "instance_tags",
        "libotr-format",
        format_instance_tags([InstanceTagRecord("me", "prpl-irc", 0xFFFFFFFF)]),
    )
    count = sum(1 for _ in CORPUS.glob("*/seed-*"))
    print(f"wrote {count} seed files under {CORPUS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
