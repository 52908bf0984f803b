"""Malformed, forged and misaddressed input fed to ``Account.receive`` in every
message state.

Each case must only produce typed events (no exception escapes), leave the
sessions as they were (message state, session id, key ids; checked by
behaviour too: a message encrypted before the bad input still decrypts after
it, and the conversation keeps working), and make the victim send nothing but
OTR messages (never plaintext)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial

import pytest

from offrecord import events as ev
from offrecord.account import Account, Conversation
from offrecord.ake import derive_ake_keys
from offrecord.crypto import dh
from offrecord.crypto.dsa import DSAPrivateKey, generate_private_key
from offrecord.crypto.primitives import aes_ctr, hmac_sha256_160, sha256
from offrecord.policy import Policy
from offrecord.session import MessageState
from offrecord.wire.codec import Reader, encode_data, encode_mpi
from offrecord.wire.envelope import Kind, classify, frame
from offrecord.wire.messages import (
    DataMessage,
    DHCommit,
    DHKey,
    EncodedMessage,
    RevealSignature,
    Signature,
    decode_message,
    encode_message,
)

P = dh.MODULUS
ZERO_CTR = b"\x00" * 8
KEYS: dict[str, DSAPrivateKey] = {
    "alice": generate_private_key(random.Random(0xBAD1).randbytes),
    "bob": generate_private_key(random.Random(0xBAD2).randbytes),
}
ALICE, BOB = 0x00A1A1A1, 0x00B0B0B0
TAGS = {"alice": ALICE, "bob": BOB}
# Bob is the victim, with the most reactive policy; Alice does not react to
# Bob's error replies, so nothing refreshes the keys behind the test's back.
POLICIES = {"alice": Policy.MANUAL, "bob": Policy.DEFAULT}


def other(name: str) -> str:
    return "bob" if name == "alice" else "alice"


@dataclass
class Net:
    seed: int = 0
    alice_policy: Policy = POLICIES["alice"]
    accounts: dict[str, Account] = field(init=False)

    def __post_init__(self) -> None:
        policies = {**POLICIES, "alice": self.alice_policy}
        self.accounts = {
            n: Account(n, "test", KEYS[n], policy=policies[n], instance_tag=TAGS[n],
                       random_bytes=random.Random(f"{n}/{self.seed}").randbytes)
            for n in ("alice", "bob")
        }  # fmt: skip

    def conv(self, name: str) -> Conversation:
        return self.accounts[name].conversation(other(name))

    def out(self, name: str) -> list[str]:
        return [t for _, t in self.accounts[name].data_to_send()]

    def deliver(self, to: str, texts: list[str]) -> list[ev.Event]:
        got: list[ev.Event] = []
        for text in texts:
            got += self.accounts[to].receive(other(to), text)
        return got

    def pump(self) -> list[ev.Event]:
        """Deliver both ways until quiet; returns Bob's events."""
        bob_events: list[ev.Event] = []
        for _ in range(30):
            a, b = self.out("alice"), self.out("bob")
            if not a and not b:
                return bob_events
            bob_events += self.deliver("bob", a)
            self.deliver("alice", b)
        raise AssertionError("never quiet")

    def state(self, name: str) -> MessageState:
        return self.conv(name).state


# --- valid messages to break ------------------------------------------------------------


def reference_messages(version: int) -> dict[str, bytes]:
    """One valid message of each type from Alice to Bob, from a separate run."""
    allowed = Policy.ALLOW_V2 if version == 2 else Policy.MANUAL
    refs: dict[str, bytes] = {}
    for starter in ("bob", "alice"):  # Alice commits and reveals, then answers
        net = Net(seed=100 + version, alice_policy=allowed)
        net.conv(starter).start()
        for _ in range(6):
            for text in net.out("alice"):
                msg = decoded(text)
                if msg is not None:
                    assert msg.version == version
                    refs.setdefault(type(msg).__name__, encode_message(msg))
                net.deliver("bob", [text])
            net.deliver("alice", net.out("bob"))
    net.conv("alice").send("reference data")
    refs["DataMessage"] = classify(net.out("alice")[0]).payload
    assert set(refs) == {"DHCommit", "DHKey", "RevealSignature", "Signature", "DataMessage"}
    return refs


def decoded(text: str) -> EncodedMessage | None:
    incoming = classify(text)
    return decode_message(incoming.payload) if incoming.kind is Kind.ENCODED else None


REF = {2: reference_messages(2), 3: reference_messages(3)}


def ref(name: str, version: int = 3) -> EncodedMessage:
    return decode_message(REF[version][name])


def set_u32(raw: bytes, offset: int, value: int) -> bytes:
    return raw[:offset] + value.to_bytes(4, "big") + raw[offset + 4 :]


def with_mpi(msg: EncodedMessage, value: int) -> str:
    """Re-encode a D-H Key or data message with a raw group element value."""
    if isinstance(msg, DHKey):
        return frame(encode_message(replace(msg, gy=value)))
    assert isinstance(msg, DataMessage)
    return frame(encode_message(replace(msg, next_dh=value)))


# --- the cases ---------------------------------------------------------------------------


@dataclass
class Inputs:
    bad: list[str]
    # Genuine messages that must still work once the bad ones were ignored.
    followups: list[str] = field(default_factory=list)
    # False when Alice already holds new keys (she finished an AKE Bob has not),
    # so a message she encrypts now cannot serve as the "sent before" probe.
    probe: bool = True
    # When set: each bad input yields one MessageDiscarded and nothing is sent back.
    discarded_silently: bool = False


Case = Callable[[Net], Inputs]
CASES: dict[str, Case] = {}


def silently(case: Case) -> Case:
    def wrapped(net: Net) -> Inputs:
        return replace(case(net), discarded_silently=True)

    return wrapped


def fixed(*texts: str) -> Case:
    return lambda net: Inputs(list(texts))


def from_live_data(forge: Callable[[DataMessage], str]) -> Case:
    return lambda net: Inputs([forge(live_data(net))])


# All of these are discarded without a reply, except those that are not broken
# at the envelope level: nothing, an empty error, a query offering nothing, and
# fragments that wait for the rest.
_LOUD = {"empty", "error-empty", "?OTRv", "fragment-garbage", "fragment-v2-garbage"}
for _name, _text in {
    "?OTR": "?OTR",
    "?OTRv": "?OTRv",
    "?OTR:": "?OTR:",
    "?OTR|": "?OTR|",
    "?OTR,": "?OTR,",
    "?OTR:===.": "?OTR:===.",
    "?OTR:.": "?OTR:.",
    "base64-no-dot": "?OTR:AAMK",
    "base64-bad-padding": "?OTR:AAM.",
    "base64-bad-chars": "?OTR:AA*K.",
    "base64-non-ascii": "?OTR:AAMKé.",
    "base64-whitespace": "?OTR:AA MK.",
    "header-only": "?OTR:AAMK.",
    "version-1": "?OTR:AAEK.",
    "version-4": "?OTR:AAQKAKGhoQCwsLAAAAABAg==.",
    "version-0xffff": "?OTR://8K.",
    "fragment-garbage": "?OTR|00a1a1a1|00b0b0b0,1,2,xx,",
    "fragment-v2-garbage": "?OTR,00001,00002,?OTR:AA,",
    "fragment-zero-of-zero": "?OTR,00000,00000,,",
    "fragment-in-fragment": "?OTR,00001,00001,?OTR,00001,00001,x,,",
    "fragment-bad-tags": "?OTR|zzzz|0,00001,00001,?OTR:AAMK.,",
    "error-empty": "?OTR Error:",
    "empty": "",
    "nul-and-controls": "\x00\x01\x02?OTR\x00:",
    "huge-base64": "?OTR:" + "A" * (1 << 20) + "AAAA.",
}.items():
    CASES[_name] = fixed(_text) if _name in _LOUD else silently(fixed(_text))


def truncations() -> None:
    for version in (2, 3):
        header = 11 if version == 3 else 3
        for name, raw in REF[version].items():
            cuts = {1, 2, header - 1, header, header + 2, len(raw) // 2, len(raw) - 1}
            if version == 2:
                cuts = {header, len(raw) - 1}
            for cut in sorted(cuts):
                CASES[f"truncated-v{version}-{name}-{cut}"] = silently(fixed(frame(raw[:cut])))


def wrong_lengths() -> None:
    # The first length field after the v3 header (for a data message: after
    # flags and the two key ids, the length of the next D-H key).
    for name, raw in REF[3].items():
        offset = 11 + (9 if name == "DataMessage" else 0)
        real = int.from_bytes(raw[offset : offset + 4], "big")
        for label, value in {"0": 0, "minus1": real - 1, "plus1": real + 1,
                             "huge": 0x7FFFFFFF, "max": 0xFFFFFFFF}.items():  # fmt: skip
            CASES[f"length-{name}-{label}"] = silently(fixed(frame(set_u32(raw, offset, value))))


def group_elements() -> None:
    for value, label in ((0, "0"), (1, "1"), (P - 1, "p-1"), (P, "p")):
        CASES[f"dhkey-gy-{label}"] = silently(fixed(with_mpi(ref("DHKey"), value)))
        CASES[f"data-next-dh-{label}"] = silently(from_live_data(partial(with_mpi, value=value)))
        CASES[f"reveal-gx-{label}"] = fixed(*committed_bad_gx(value))


def committed_bad_gx(gx: int) -> tuple[str, str]:
    """A D-H Commit to an invalid g^x, then the Reveal Signature that opens it."""
    r = b"\x17" * 16
    gx_mpi = encode_mpi(gx)
    commit = DHCommit(3, ALICE, BOB, aes_ctr(r, b"\x00" * 8, gx_mpi), sha256(gx_mpi))
    real = ref("RevealSignature")
    assert isinstance(real, RevealSignature)
    reveal = replace(real, revealed_key=r)
    return frame(encode_message(commit)), frame(encode_message(reveal))


def live_data(net: Net, text: str = "live") -> DataMessage:
    """A fresh data message from Alice when she can encrypt; else the reference one."""
    if net.state("alice") is MessageState.ENCRYPTED:
        net.conv("alice").send(text)
        (wire,) = net.out("alice")
        msg = decoded(wire)
    else:
        msg = ref("DataMessage")
    assert isinstance(msg, DataMessage)
    return msg


def data_forgeries() -> None:
    def flip_mac(m: DataMessage) -> DataMessage:
        return replace(m, mac=m.mac[:-1] + bytes([m.mac[-1] ^ 1]))

    def flip_ciphertext(m: DataMessage) -> DataMessage:
        return replace(m, encrypted=bytes([m.encrypted[0] ^ 0x80]) + m.encrypted[1:])

    forgeries: dict[str, Callable[[DataMessage], DataMessage]] = {
        "bad-mac": flip_mac,
        "flipped-ciphertext": flip_ciphertext,
        "unknown-sender-keyid": lambda m: replace(m, sender_keyid=m.sender_keyid + 5),
        "unknown-recipient-keyid": lambda m: replace(m, recipient_keyid=m.recipient_keyid + 5),
        "keyids-max": lambda m: replace(m, sender_keyid=0xFFFFFFFF, recipient_keyid=0xFFFFFFFF),
        "counter-zero": lambda m: replace(m, counter=b"\x00" * 8),
        "counter-max": lambda m: replace(m, counter=b"\xff" * 8),
        "as-version-2": lambda m: replace(m, version=2),
        "ignore-unreadable-bad-mac": lambda m: flip_mac(replace(m, flags=1)),
    }
    for label, forge in forgeries.items():
        CASES[f"data-{label}"] = from_live_data(partial(framed, forge))
    CASES["data-replayed"] = replayed


def replayed(net: Net) -> Inputs:
    wire = frame(encode_message(live_data(net, "once")))
    events = net.deliver("bob", [wire])
    if net.state("bob") is MessageState.ENCRYPTED:
        assert [(e.text, e.encrypted) for e in events if isinstance(e, ev.MessageReceived)] == [
            ("once", True)
        ]
    net.out("bob")
    return Inputs([wire, wire])


def ake_forgeries() -> None:
    CASES["reveal-bad-mac"] = lambda net: bad_ake_message(net, "reveal", "mac")
    CASES["reveal-bad-ciphertext"] = lambda net: bad_ake_message(net, "reveal", "ciphertext")
    CASES["reveal-bad-signature"] = lambda net: bad_ake_message(net, "reveal", "signature")
    CASES["signature-bad-mac"] = lambda net: bad_ake_message(net, "signature", "mac")
    CASES["signature-bad-signature"] = lambda net: bad_ake_message(net, "signature", "signature")
    CASES["signature-bad-ciphertext"] = lambda net: bad_ake_message(net, "signature", "ciphertext")
    CASES["unsolicited-dhkey"] = lambda net: Inputs([frame(REF[3]["DHKey"])])
    CASES["unsolicited-reveal"] = lambda net: Inputs([frame(REF[3]["RevealSignature"])])
    CASES["unsolicited-signature"] = lambda net: Inputs([frame(REF[3]["Signature"])])
    CASES["stale-commit"] = lambda net: Inputs([frame(REF[3]["DHCommit"])])


def bad_ake_message(net: Net, which: str, flaw: str) -> Inputs:
    """Run a real AKE up to Bob's last step, then corrupt the message he awaits.
    For "reveal" Alice commits (Bob asked); for "signature" Bob commits."""
    starter = "bob" if which == "reveal" else "alice"
    net.conv(starter).start()
    target = RevealSignature if which == "reveal" else Signature
    for _ in range(4):
        for text in net.out("alice"):
            msg = decoded(text)
            if isinstance(msg, target):
                bad: EncodedMessage
                if flaw == "mac":
                    bad = replace(msg, mac=msg.mac[:-1] + bytes([msg.mac[-1] ^ 1]))
                elif flaw == "ciphertext":  # the MAC no longer matches
                    enc = msg.encrypted_signature
                    bad = replace(msg, encrypted_signature=enc[:-1] + bytes([enc[-1] ^ 1]))
                else:
                    bad = with_bad_signature(net, msg)
                return Inputs([frame(encode_message(bad))], [text], probe=which == "reveal")
            net.deliver("bob", [text])
        net.deliver("alice", net.out("bob"))
    raise AssertionError(f"no {which} message appeared")


def with_bad_signature(net: Net, msg: RevealSignature | Signature) -> EncodedMessage:
    """The same message with one bit of the DSA signature flipped, re-encrypted
    and re-MACed with the keys Bob derives: only the signature check can fail."""
    ake = net.conv("bob").instances[ALICE].ake
    if isinstance(msg, RevealSignature):
        gx = Reader(aes_ctr(msg.revealed_key, ZERO_CTR, ake._p.their_encrypted_gx)).mpi()
        assert ake._p.our_dh is not None
        keys = derive_ake_keys(dh.shared_secret(ake._p.our_dh, gx))
        c, m2 = keys.c, keys.m2
    else:
        assert ake._p.keys is not None
        c, m2 = ake._p.keys.c_prime, ake._p.keys.m2_prime
    x = bytearray(aes_ctr(c, ZERO_CTR, msg.encrypted_signature))
    x[-1] ^= 1
    enc = aes_ctr(c, ZERO_CTR, bytes(x))
    return replace(msg, encrypted_signature=enc, mac=hmac_sha256_160(m2, encode_data(enc)))


def framed(forge: Callable[[DataMessage], EncodedMessage], msg: DataMessage) -> str:
    return frame(encode_message(forge(msg)))


def retagged(msg: EncodedMessage, sender: int, receiver: int) -> str:
    return frame(encode_message(replace(msg, sender_tag=sender, receiver_tag=receiver)))


def instance_tags() -> None:
    combos = {
        "sender-0": (0, BOB),
        "sender-0xff": (0xFF, BOB),
        "sender-0x100": (0x100, BOB),
        "sender-max": (0xFFFFFFFF, BOB),
        "receiver-0": (ALICE, 0),
        "receiver-0xff": (ALICE, 0xFF),
        "receiver-0x100": (ALICE, 0x100),
        "receiver-other": (ALICE, BOB + 1),
        "receiver-max": (ALICE, 0xFFFFFFFF),
    }
    for label, (sender, receiver) in combos.items():
        # A new, valid sender instance is routed (and may be answered); an invalid
        # sender tag or a receiver tag that is not Bob's is dropped without a word.
        wrap = silently if sender < 0x100 or receiver != BOB else (lambda case: case)
        CASES[f"tags-dhkey-{label}"] = wrap(fixed(retagged(ref("DHKey"), sender, receiver)))
        CASES[f"tags-signature-{label}"] = wrap(fixed(retagged(ref("Signature"), sender, receiver)))
        CASES[f"tags-data-{label}"] = wrap(
            from_live_data(partial(retagged, sender=sender, receiver=receiver))
        )


truncations()
wrong_lengths()
group_elements()
data_forgeries()
ake_forgeries()
instance_tags()


# --- the checks -------------------------------------------------------------------------------


def victim_in(state: MessageState) -> Net:
    net = Net()
    if state is not MessageState.PLAINTEXT:
        net.conv("alice").start()
        net.pump()
    if state is MessageState.FINISHED:
        net.conv("alice").end()
        net.pump()
    assert net.state("bob") is state
    return net


def snapshot(conv: Conversation) -> dict[int, tuple[object, ...]]:
    out: dict[int, tuple[object, ...]] = {}
    for tag, session in [(0, conv.master), *conv.instances.items()]:
        keys = session._keys
        ids = (keys.our_keyid, keys.their_keyid) if keys is not None else None
        out[tag] = (session.msgstate, session.version, session.ssid, ids)
    return out


def still_works(net: Net) -> None:
    net.pump()
    if net.state("bob") is not MessageState.ENCRYPTED or net.state("alice") is not (
        MessageState.ENCRYPTED
    ):
        net.conv("bob").end()
        net.conv("alice").end()
        net.conv("alice").start()
        net.pump()
    for sender, receiver in (("alice", "bob"), ("bob", "alice")):
        net.conv(sender).send(f"real message from {sender}")
        got = net.deliver(receiver, net.out(sender))
        texts = [(e.text, e.encrypted) for e in got if isinstance(e, ev.MessageReceived)]
        assert texts == [(f"real message from {sender}", True)]


STATES = list(MessageState)


@pytest.mark.parametrize("state", STATES, ids=[s.name for s in STATES])
@pytest.mark.parametrize("case", list(CASES))
def test_bad_input(case: str, state: MessageState) -> None:
    net = victim_in(state)
    inputs = CASES[case](net)
    pending = None
    if inputs.probe and state is MessageState.ENCRYPTED:
        net.conv("alice").send("sent before the bad input")
        (pending,) = net.out("alice")
    conv = net.conv("bob")
    before_state, before = conv.state, snapshot(conv)

    events = net.deliver("bob", inputs.bad)

    assert all(isinstance(e, ev.Event) for e in events)
    for e in events:
        assert not isinstance(e, ev.SessionSecured | ev.SessionFinished | ev.SMPRequested)
        if isinstance(e, ev.MessageReceived):
            assert not e.encrypted, "a forged message was accepted"
    assert conv.state is before_state
    after = snapshot(conv)
    for tag, was in before.items():
        assert after[tag] == was
    for tag in after.keys() - before.keys():
        assert after[tag][0] is MessageState.PLAINTEXT and after[tag][3] is None
    replies = net.out("bob")
    for text in replies:
        assert text.startswith("?OTR"), f"victim sent non-OTR text {text[:40]!r}"
    if inputs.discarded_silently:
        assert [type(e) for e in events] == [ev.MessageDiscarded] * len(inputs.bad)
        assert replies == []

    if pending is not None:
        got = net.deliver("bob", [pending])
        assert [e.text for e in got if isinstance(e, ev.MessageReceived)] == [
            "sent before the bad input"
        ]
    net.deliver("bob", inputs.followups)
    still_works(net)


def test_case_table_is_large_and_named() -> None:
    assert len(CASES) > 100
    assert {"?OTR", "?OTRv", "?OTR:", "?OTR|", "?OTR,", "?OTR:===."} <= set(CASES)
