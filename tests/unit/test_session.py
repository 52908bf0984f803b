"""Unit tests for sessions as the Account drives them (spec "The protocol state
machine"): message states, every received-message and user action, the policy
presets, ending, refreshing, session ids, the extra key and heartbeats."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import pytest

from offrecord import events as ev
from offrecord.account import Account, Conversation
from offrecord.crypto.dsa import DSAPrivateKey, generate_private_key
from offrecord.errors import LocalProtocolError
from offrecord.policy import Policy
from offrecord.session import HEARTBEAT_INTERVAL, MessageState
from offrecord.wire.envelope import WHITESPACE_BASE, Kind, classify, tag_plaintext
from offrecord.wire.messages import (
    FLAG_IGNORE_UNREADABLE,
    DataMessage,
    DHCommit,
    EncodedMessage,
    decode_message,
)

KEYS: dict[str, DSAPrivateKey] = {
    "alice": generate_private_key(random.Random(0x5A).randbytes),
    "bob": generate_private_key(random.Random(0x5B).randbytes),
}
TAGS = {"alice": 0x0A11CE00, "bob": 0x0B0B0000}
PRESETS = ["never", "manual", "opportunistic", "always"]
E = TypeVar("E", bound=ev.Event)


def other(name: str) -> str:
    return "bob" if name == "alice" else "alice"


@dataclass
class Net:
    """Alice and Bob, and the network between them."""

    alice_policy: Policy = Policy.DEFAULT
    bob_policy: Policy = Policy.DEFAULT
    clock: Callable[[], float] | None = None
    seed: int = 0
    accounts: dict[str, Account] = field(init=False)
    events: dict[str, list[ev.Event]] = field(init=False)
    wire: list[tuple[str, str]] = field(init=False)  # (sender, text), everything ever sent

    def __post_init__(self) -> None:
        policies = {"alice": self.alice_policy, "bob": self.bob_policy}
        self.accounts = {
            name: Account(
                name, "test", KEYS[name], policy=policies[name], instance_tag=TAGS[name],
                random_bytes=random.Random(f"{name}-{self.seed}").randbytes, clock=self.clock,
            )
            for name in ("alice", "bob")
        }  # fmt: skip
        self.events = {"alice": [], "bob": []}
        self.wire = []

    def conv(self, name: str) -> Conversation:
        return self.accounts[name].conversation(other(name))

    def outgoing(self, name: str) -> list[str]:
        """Take what ``name`` wants to send, without delivering it."""
        texts = [text for _, text in self.accounts[name].data_to_send()]
        self.wire += [(name, t) for t in texts]
        return texts

    def deliver(self, to: str, text: str) -> list[ev.Event]:
        got = self.accounts[to].receive(other(to), text)
        self.events[to] += got
        return got

    def pump(self) -> None:
        """Deliver everything, both ways, until nobody has anything to send."""
        for _ in range(30):
            moved = False
            for name in ("alice", "bob"):
                for text in self.outgoing(name):
                    moved = True
                    self.deliver(other(name), text)
            if not moved:
                return
        raise AssertionError("the two sides never went quiet")

    def secure(self, starter: str = "alice") -> None:
        self.conv(starter).start()
        self.pump()
        assert self.state("alice") is MessageState.ENCRYPTED
        assert self.state("bob") is MessageState.ENCRYPTED

    def state(self, name: str) -> MessageState:
        return self.conv(name).state

    def take(self, name: str) -> list[ev.Event]:
        got, self.events[name] = self.events[name], []
        return got

    def say(self, name: str, text: str) -> list[ev.Event]:
        """``name`` types ``text``; deliver everything; return what the other side saw."""
        self.take(other(name))
        assert self.conv(name).send(text) == []
        self.pump()
        return self.take(other(name))


def of(events: list[ev.Event], kind: type[E]) -> list[E]:
    return [e for e in events if isinstance(e, kind)]


def received(events: list[ev.Event]) -> list[tuple[str, bool, bool]]:
    return [(e.text, e.encrypted, e.unencrypted_warning) for e in of(events, ev.MessageReceived)]


def decoded(text: str) -> EncodedMessage | None:
    incoming = classify(text)
    return decode_message(incoming.payload) if incoming.kind is Kind.ENCODED else None


def sent_commits(net: Net, name: str) -> list[DHCommit]:
    return [m for t in net.outgoing(name) if isinstance(m := decoded(t), DHCommit)]


def finished_for_alice(net: Net) -> None:
    """Encrypted, then Bob ends: Alice is left in FINISHED."""
    net.secure()
    net.conv("bob").end()
    net.pump()
    assert net.state("alice") is MessageState.FINISHED


STATES: dict[MessageState, Callable[[Net], None]] = {
    MessageState.PLAINTEXT: lambda net: None,
    MessageState.ENCRYPTED: lambda net: net.secure(),
    MessageState.FINISHED: finished_for_alice,
}


def in_state(state: MessageState, alice_policy: Policy = Policy.DEFAULT) -> Net:
    # Bob is MANUAL so that he never reacts to Alice's plaintext on his own.
    net = Net(alice_policy, Policy.MANUAL)
    STATES[state](net)
    assert net.state("alice") is state
    net.take("alice")
    return net


# --- received plaintext, with and without the whitespace tag ---------------------------


@pytest.mark.parametrize("state", list(MessageState))
@pytest.mark.parametrize("tagged", [False, True])
def test_plaintext_is_shown_with_a_warning_unless_plaintext_state(
    state: MessageState, tagged: bool
) -> None:
    net = in_state(state, Policy.MANUAL)
    text = tag_plaintext("hi alice", frozenset({2, 3})) if tagged else "hi alice"
    events = net.deliver("alice", text)
    warn = state is not MessageState.PLAINTEXT
    assert received(events) == [("hi alice", False, warn)]
    assert net.state("alice") is state
    assert net.outgoing("alice") == []  # MANUAL: no AKE on a tag


@pytest.mark.parametrize("tagged", [False, True])
def test_plaintext_warns_when_encryption_is_required(tagged: bool) -> None:
    net = Net(Policy.ALWAYS, Policy.MANUAL)
    text = tag_plaintext("psst", frozenset({3})) if tagged else "psst"
    assert received(net.deliver("alice", text)) == [("psst", False, True)]


# Only outside ENCRYPTED: there the spec says "in any event" but libotr 4.1.1
# does not restart the AKE on a tag, and the two disagree.
@pytest.mark.parametrize("state", [MessageState.PLAINTEXT, MessageState.FINISHED])
def test_whitespace_tag_starts_the_ake_when_the_policy_says_so(state: MessageState) -> None:
    net = in_state(state, Policy.OPPORTUNISTIC)
    net.deliver("alice", tag_plaintext("hello", frozenset({2, 3})))
    commits = sent_commits(net, "alice")
    assert [c.version for c in commits] == [3]


@pytest.mark.parametrize(("offer", "version"), [({2}, 2), ({3}, 3), ({2, 3}, 3)])
def test_whitespace_start_picks_the_best_offered_version(offer: set[int], version: int) -> None:
    net = Net(Policy.OPPORTUNISTIC, Policy.MANUAL)
    net.deliver("alice", tag_plaintext("hello", frozenset(offer)))
    assert [c.version for c in sent_commits(net, "alice")] == [version]


# --- queries and errors ----------------------------------------------------------------


@pytest.mark.parametrize("state", list(MessageState))
def test_query_starts_an_ake_in_every_state_and_ends_encrypted(state: MessageState) -> None:
    net = in_state(state)
    if state is MessageState.FINISHED:
        net.conv("bob").end()  # Bob already ended; he is back to plaintext
    net.conv("bob").start()
    net.pump()
    assert net.state("alice") is MessageState.ENCRYPTED
    assert net.state("bob") is MessageState.ENCRYPTED
    secured = of(net.take("alice"), ev.SessionSecured)
    assert len(secured) == 1
    assert secured[0].refreshed == (state is MessageState.ENCRYPTED)
    assert received(net.say("alice", "after the query")) == [("after the query", True, False)]


@pytest.mark.parametrize(
    ("policy", "replies_with_query"),
    [(Policy.MANUAL, False), (Policy.MANUAL | Policy.ERROR_START_AKE, True)],
)
@pytest.mark.parametrize("state", list(MessageState))
def test_error_message_is_shown_and_may_restart(
    state: MessageState, policy: Policy, replies_with_query: bool
) -> None:
    net = in_state(state, policy)
    events = net.deliver("alice", "?OTR Error: Something went wrong")
    assert events == [ev.ErrorReceived("Something went wrong")]
    assert net.state("alice") is state
    out = net.outgoing("alice")
    if replies_with_query:
        assert len(out) == 1 and classify(out[0]).kind is Kind.QUERY
    else:
        assert out == []


# --- received data messages in each state --------------------------------------------


def test_data_message_in_plaintext_is_unreadable_and_answered_with_an_error() -> None:
    net = Net(Policy.MANUAL, Policy.MANUAL)
    net.secure()
    net.conv("alice").send("one")
    data = net.outgoing("alice")
    # Bob forgets everything (ends), then the data message arrives.
    net.conv("bob").end()
    net.outgoing("bob")
    events = net.deliver("bob", data[0])
    assert [type(e) for e in events] == [ev.UnreadableMessage]
    (reply,) = net.outgoing("bob")
    assert classify(reply).kind is Kind.ERROR
    assert net.state("bob") is MessageState.PLAINTEXT


def test_data_message_in_finished_is_unreadable() -> None:
    net = in_state(MessageState.FINISHED)
    # A stray data message from Bob, made before he ended.
    net2 = Net(Policy.MANUAL, Policy.MANUAL, seed=1)
    net2.secure()
    net2.conv("bob").send("late")
    (late,) = net2.outgoing("bob")
    events = net.deliver("alice", late)
    assert [type(e) for e in events] == [ev.UnreadableMessage]
    assert net.state("alice") is MessageState.FINISHED
    assert [classify(t).kind for t in net.outgoing("alice")] == [Kind.ERROR]


# --- user sends, per message state ---------------------------------------------------------


@pytest.mark.parametrize("state", list(MessageState))
def test_user_message_per_state(state: MessageState) -> None:
    net = in_state(state, Policy.MANUAL)
    events = net.conv("alice").send("top secret")
    out = net.outgoing("alice")
    if state is MessageState.PLAINTEXT:
        assert events == [] and out == ["top secret"]
    elif state is MessageState.ENCRYPTED:
        assert events == [] and len(out) == 1
        assert isinstance(decoded(out[0]), DataMessage)
        assert "top secret" not in out[0]
    else:
        assert [type(e) for e in events] == [ev.MessageNotSent]
        assert out == []


def test_finished_refuses_to_send_until_ended() -> None:
    net = in_state(MessageState.FINISHED, Policy.MANUAL)
    for _ in range(3):
        assert [type(e) for e in net.conv("alice").send("are you there?")] == [ev.MessageNotSent]
    assert net.outgoing("alice") == []
    assert [type(e) for e in net.conv("alice").end()] == [ev.SessionEnded]
    assert net.outgoing("alice") == []  # ending from FINISHED sends nothing
    assert net.state("alice") is MessageState.PLAINTEXT
    net.conv("alice").send("now in plaintext, knowingly")
    assert net.outgoing("alice") == ["now in plaintext, knowingly"]


# --- policies ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PresetBehaviour:
    user_message: str  # "plain", "tagged" or "held"
    tag_starts_ake: bool
    error_sends_query: bool
    query_starts_ake: bool
    plaintext_warns: bool


PRESET_BEHAVIOUR = {
    "never": PresetBehaviour("plain", False, False, False, False),
    "manual": PresetBehaviour("plain", False, False, True, False),
    "opportunistic": PresetBehaviour("tagged", True, True, True, False),
    "always": PresetBehaviour("held", True, True, True, True),
}


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_user_message(preset: str) -> None:
    net = Net(Policy.preset(preset), Policy.MANUAL)
    events = net.conv("alice").send("hello bob")
    out = net.outgoing("alice")
    expected = PRESET_BEHAVIOUR[preset].user_message
    if expected == "plain":
        assert events == [] and out == ["hello bob"]
    elif expected == "tagged":
        assert events == [] and out == [tag_plaintext("hello bob", frozenset({2, 3}))]
    else:
        assert events == [ev.MessageHeld(1)]
        assert len(out) == 1 and classify(out[0]).kind is Kind.QUERY
        assert "hello bob" not in out[0]


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_reactions(preset: str) -> None:
    expected = PRESET_BEHAVIOUR[preset]

    net = Net(Policy.preset(preset), Policy.MANUAL)
    net.deliver("alice", tag_plaintext("tagged", frozenset({3})))
    assert bool(sent_commits(net, "alice")) == expected.tag_starts_ake

    net = Net(Policy.preset(preset), Policy.MANUAL)
    net.deliver("alice", "?OTR Error: oops")
    sent = [classify(t).kind for t in net.outgoing("alice")]
    assert sent == ([Kind.QUERY] if expected.error_sends_query else [])

    net = Net(Policy.preset(preset), Policy.MANUAL)
    net.deliver("alice", "?OTRv23?")
    assert bool(sent_commits(net, "alice")) == expected.query_starts_ake

    net = Net(Policy.preset(preset), Policy.MANUAL)
    assert received(net.deliver("alice", "plain words")) == [
        ("plain words", False, expected.plaintext_warns)
    ]


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_start(preset: str) -> None:
    net = Net(Policy.preset(preset), Policy.MANUAL)
    if preset == "never":
        with pytest.raises(LocalProtocolError):
            net.conv("alice").start()
        return
    net.conv("alice").start()
    (query,) = net.outgoing("alice")
    assert query.startswith("?OTRv23?")


@pytest.mark.parametrize("alice", [p for p in PRESETS if p != "never"])
@pytest.mark.parametrize("bob", [p for p in PRESETS if p != "never"])
def test_every_pair_of_otr_presets_can_talk_privately(alice: str, bob: str) -> None:
    net = Net(Policy.preset(alice), Policy.preset(bob))
    net.secure()
    assert received(net.say("alice", "private")) == [("private", True, False)]
    assert received(net.say("bob", "indeed")) == [("indeed", True, False)]


@pytest.mark.parametrize(
    "text",
    [
        "?OTRv23?\nBob has requested an Off-the-Record private conversation.",
        "?OTR:AAMC.",
        "?OTR Error: this is shown as is",
        tag_plaintext("tagged", frozenset({2, 3})),
    ],
    ids=["query", "encoded", "error", "tagged"],
)
def test_never_shows_every_message_verbatim(text: str) -> None:
    net = Net(Policy.NEVER, Policy.MANUAL)
    assert received(net.deliver("alice", text)) == [(text, False, False)]


# --- REQUIRE_ENCRYPTION ------------------------------------------------------------------------


def test_required_encryption_holds_messages_and_sends_them_encrypted_after_the_ake() -> None:
    net = Net(Policy.ALWAYS, Policy.MANUAL)
    assert net.conv("alice").send("first secret") == [ev.MessageHeld(1)]
    assert net.conv("alice").send("second secret") == [ev.MessageHeld(2)]
    net.pump()
    assert net.state("alice") is MessageState.ENCRYPTED
    assert of(net.take("alice"), ev.MessageResent) == [ev.MessageResent(2, TAGS["bob"])]
    assert received(net.take("bob")) == [
        ("first secret", True, False),
        ("second secret", True, False),
    ]
    for sender, text in net.wire:
        assert "secret" not in text, f"{sender} sent user text in the clear"
    assert received(net.say("alice", "third")) == [("third", True, False)]


def test_required_encryption_never_sends_plaintext_even_if_the_peer_refuses() -> None:
    net = Net(Policy.ALWAYS, Policy.NEVER)
    for n in range(3):
        assert net.conv("alice").send(f"secret {n}") == [ev.MessageHeld(n + 1)]
    net.pump()
    assert net.state("alice") is MessageState.PLAINTEXT
    assert all("secret" not in text for _, text in net.wire)


def test_ending_drops_held_messages() -> None:
    net = Net(Policy.ALWAYS, Policy.MANUAL)
    net.conv("alice").send("do not send me later")
    net.outgoing("alice")  # the query is lost
    net.conv("alice").end()
    net.conv("alice").start()
    net.pump()
    assert net.state("alice") is MessageState.ENCRYPTED
    assert received(net.take("bob")) == []
    assert of(net.take("alice"), ev.MessageResent) == []


# --- SEND_WHITESPACE_TAG ----------------------------------------------------------------------


def test_whitespace_tag_is_sent_until_a_plaintext_reply_arrives() -> None:
    net = Net(Policy.ALLOW_V2 | Policy.ALLOW_V3 | Policy.SEND_WHITESPACE_TAG, Policy.MANUAL)
    assert net.say("alice", "one") == [ev.MessageReceived("one", False)]
    assert net.say("alice", "two") == [ev.MessageReceived("two", False)]
    tagged = [t for s, t in net.wire if s == "alice"]
    assert all(WHITESPACE_BASE in t for t in tagged) and len(tagged) == 2
    net.say("bob", "plain reply")
    net.say("alice", "three")
    assert net.wire[-1] == ("alice", "three")


def test_whitespace_tag_offer_is_not_withdrawn_by_a_tagged_reply() -> None:
    net = Net(Policy.ALLOW_V2 | Policy.ALLOW_V3 | Policy.SEND_WHITESPACE_TAG,
              Policy.ALLOW_V2 | Policy.ALLOW_V3 | Policy.SEND_WHITESPACE_TAG)  # fmt: skip
    net.say("alice", "one")
    net.say("bob", "tagged reply")
    net.say("alice", "two")
    assert WHITESPACE_BASE in net.wire[-1][1]


# --- ending ---------------------------------------------------------------------------------


@pytest.mark.parametrize("ender", ["alice", "bob"])
def test_end_sends_disconnect_and_leaves_the_peer_finished(ender: str) -> None:
    peer = other(ender)
    net = Net(Policy.MANUAL, Policy.MANUAL)
    net.secure()
    net.take(peer)
    assert net.conv(ender).end() == [ev.SessionEnded(TAGS[peer])]
    assert net.state(ender) is MessageState.PLAINTEXT
    (disconnect,) = net.outgoing(ender)
    msg = decoded(disconnect)
    assert isinstance(msg, DataMessage)
    assert msg.flags & FLAG_IGNORE_UNREADABLE
    assert net.deliver(peer, disconnect) == [ev.SessionFinished(TAGS[ender])]
    assert net.state(peer) is MessageState.FINISHED
    assert net.outgoing(peer) == []
    # The ender's next message goes out in plaintext, on purpose.
    net.conv(ender).send("bye")
    assert net.outgoing(ender) == ["bye"]


def test_end_in_plaintext_does_nothing() -> None:
    net = Net()
    assert net.conv("alice").end() == []
    assert net.outgoing("alice") == []


def test_conversation_can_be_restarted_after_finishing() -> None:
    net = in_state(MessageState.FINISHED, Policy.MANUAL)
    net.conv("alice").start()
    net.pump()
    assert net.state("alice") is MessageState.ENCRYPTED
    assert received(net.say("bob", "welcome back")) == [("welcome back", True, False)]


# --- refresh, session ids, the extra symmetric key ------------------------------------------


@pytest.mark.parametrize("refresher", ["alice", "bob"])
def test_session_refresh_keeps_the_conversation_usable(refresher: str) -> None:
    net = Net()
    net.secure()
    first = {n: of(net.take(n), ev.SessionSecured)[0] for n in ("alice", "bob")}
    assert not first["alice"].refreshed and not first["bob"].refreshed
    net.say("alice", "before")
    net.conv(refresher).start()
    net.pump()
    second = {n: of(net.take(n), ev.SessionSecured) for n in ("alice", "bob")}
    for name in ("alice", "bob"):
        assert len(second[name]) == 1
        assert second[name][0].refreshed
        assert second[name][0].ssid != first[name].ssid
        assert of(net.events[name], ev.NewFingerprint) == []
    assert second["alice"][0].ssid == second["bob"][0].ssid
    assert received(net.say("alice", "after")) == [("after", True, False)]
    assert received(net.say("bob", "after too")) == [("after too", True, False)]


def test_ssid_is_equal_and_bold_halves_are_opposite() -> None:
    net = Net()
    net.secure()
    a = of(net.events["alice"], ev.SessionSecured)[0]
    b = of(net.events["bob"], ev.SessionSecured)[0]
    assert a.ssid == b.ssid and len(a.ssid) == 8
    assert a.ssid_bold_first != b.ssid_bold_first
    # Bob answered Alice's query with the D-H Commit, so Bob sent the Reveal Signature.
    assert b.ssid_bold_first
    assert a.fingerprint == KEYS["bob"].fingerprint()
    assert b.fingerprint == KEYS["alice"].fingerprint()
    assert not a.trusted and not b.trusted
    assert of(net.events["alice"], ev.NewFingerprint) == [ev.NewFingerprint(a.fingerprint)]


def test_extra_symmetric_key_is_equal_on_both_sides() -> None:
    net = Net()
    net.secure()
    net.take("bob")
    session = net.conv("alice").best_session()
    key = session.extra_symmetric_key(0x1234, b"file-transfer")
    assert len(key) == 32
    net.pump()
    events = net.take("bob")
    assert of(events, ev.MessageReceived) == []
    (extra,) = of(events, ev.ExtraSymmetricKey)
    assert (extra.key, extra.use, extra.data) == (key, 0x1234, b"file-transfer")
    # A later key (new DH pair) is different.
    net.say("bob", "rotate")
    net.say("alice", "rotate")
    assert net.conv("alice").best_session().extra_symmetric_key(1) != key


# --- heartbeats ---------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def data_messages_from(net: Net, name: str, start: int) -> list[DataMessage]:
    return [
        m for s, t in net.wire[start:] if s == name and isinstance(m := decoded(t), DataMessage)
    ]


def test_heartbeat_after_a_long_silence() -> None:
    clock = Clock()
    net = Net(Policy.MANUAL, Policy.MANUAL, clock=clock)
    net.secure()

    clock.now += 10
    mark = len(net.wire)
    net.say("alice", "soon after")
    assert len(data_messages_from(net, "bob", mark)) == 0  # Bob spoke 10 s ago

    clock.now += HEARTBEAT_INTERVAL + 1
    mark = len(net.wire)
    net.take("alice")
    net.say("alice", "a minute later")
    (heartbeat,) = data_messages_from(net, "bob", mark)
    assert heartbeat.flags & FLAG_IGNORE_UNREADABLE
    assert net.take("alice") == []  # nothing shown for a heartbeat
    assert len(data_messages_from(net, "alice", mark)) == 1  # no heartbeat back

    clock.now += 5
    mark = len(net.wire)
    net.say("alice", "and again")
    assert data_messages_from(net, "bob", mark) == []


def test_a_heartbeat_is_not_answered_with_a_heartbeat() -> None:
    clock = Clock()
    net = Net(Policy.MANUAL, Policy.MANUAL, clock=clock)
    net.secure()
    clock.now += 100
    net.conv("bob").send("hello?")  # Bob speaks at t+100 ...
    (late,) = net.outgoing("bob")
    clock.now += 100  # ... and it reaches Alice at t+200
    net.deliver("alice", late)
    (heartbeat,) = [m for t in net.outgoing("alice") if isinstance(m := decoded(t), DataMessage)]
    assert heartbeat.flags & FLAG_IGNORE_UNREADABLE
    # Bob last spoke 100 s ago, but this is a heartbeat: he must not answer it.
    assert net.deliver("bob", net.wire[-1][1]) == []
    assert net.outgoing("bob") == []


def test_no_heartbeat_without_a_clock() -> None:
    net = Net(Policy.MANUAL, Policy.MANUAL)
    net.secure()
    mark = len(net.wire)
    for n in range(3):
        net.say("alice", f"m{n}")
    assert data_messages_from(net, "bob", mark) == []


# --- versions -----------------------------------------------------------------------------------


@pytest.mark.parametrize("v2_side", ["alice", "bob"])
def test_v2_only_policy_on_one_side_gives_a_v2_session(v2_side: str) -> None:
    policies = {"alice": Policy.OPPORTUNISTIC, "bob": Policy.OPPORTUNISTIC}
    policies[v2_side] = Policy.ALLOW_V2 | Policy.ERROR_START_AKE
    net = Net(policies["alice"], policies["bob"])
    net.secure()
    for name in ("alice", "bob"):
        (secured,) = of(net.events[name], ev.SessionSecured)
        assert secured.version == 2
    encoded = [m for _, t in net.wire if (m := decoded(t)) is not None]
    assert encoded and all(m.version == 2 for m in encoded)
    assert received(net.say("alice", "v2 works")) == [("v2 works", True, False)]
    assert received(net.say("bob", "both ways")) == [("both ways", True, False)]


def test_v3_session_uses_instance_tags() -> None:
    net = Net()
    net.secure()
    (secured,) = of(net.events["alice"], ev.SessionSecured)
    assert secured.version == 3
    assert secured.instance == TAGS["bob"]
    net.say("alice", "tagged")
    msg = decoded(net.wire[-1][1])
    assert msg is not None
    assert (msg.sender_tag, msg.receiver_tag) == (TAGS["alice"], TAGS["bob"])


# --- recovering from a stale AKE in an instance session --------------------------------------


def test_stale_commit_does_not_block_an_ake_started_by_the_other_side() -> None:
    # An earlier Alice (same instance tag) sent a D-H Commit; Bob's D-H Key got lost.
    earlier = Net(seed=7)
    earlier.conv("bob").start()
    (query,) = earlier.outgoing("bob")
    earlier.deliver("alice", query)
    (stale_commit,) = earlier.outgoing("alice")

    net = Net()
    net.deliver("bob", stale_commit)
    net.outgoing("bob")  # lost
    # Now Alice asks for OTR: Bob's master commits, Alice answers with a D-H Key.
    net.conv("alice").start()
    net.pump()
    assert net.state("alice") is MessageState.ENCRYPTED
    assert net.state("bob") is MessageState.ENCRYPTED


def test_refresh_never_resends_a_commit_from_an_earlier_ake() -> None:
    for seed in range(6):
        net = Net(seed=seed)
        net.secure("alice")  # Bob's master sends the D-H Commit
        before = {t for s, t in net.wire if s == "bob" and isinstance(decoded(t), DHCommit)}
        assert len(before) == 1
        net.conv("bob").start()  # Alice commits this time
        net.pump()
        assert net.state("bob") is MessageState.ENCRYPTED
        later = [t for s, t in net.wire if s == "bob" and isinstance(decoded(t), DHCommit)]
        assert len(later) == 1, f"seed {seed}: Bob re-sent his first D-H Commit"
