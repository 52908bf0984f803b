"""Instance tags at and around the edges of their range (spec "Instance
Tags": 0 means "no instance", 1 to 0xFF are reserved, real tags are 0x100
to 0xFFFFFFFF).

Implementations that kept tags in signed 32-bit integers (otr4j, otr.js)
mishandled tags of 0x80000000 and above, and some accepted reserved tags as
senders.  These tests pin down where offrecord accepts each edge value, as
libotr 4.1.1 does (``message.c`` drops v3 messages whose sender tag is below
``OTRL_MIN_VALID_INSTAG`` and those addressed to another instance), and run
a session with the libotr peer at the extreme tags, fragmented so that the
tags also travel in fragment headers.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from offrecord import events as ev
from offrecord.account import Account
from offrecord.errors import LocalProtocolError, StorageError
from offrecord.policy import Policy
from offrecord.session import MessageState
from offrecord.storage import LibotrStore
from offrecord.wire.envelope import classify
from offrecord.wire.fragment import Fragment, fragment_message, parse_fragment
from offrecord.wire.messages import DHCommit, DHKey, decode_message
from tests.interop import libotr_ctypes
from tests.interop.offrecord_peer import InProcessPeer
from tests.interop.router import Router, SubprocessPeer, peer_args
from tests.regression.pair import ALICE_TAG, BOB_TAG, Pair, wire

EDGES = {"0": 0, "0xFF": 0xFF, "0x100": 0x100, "0x11111112": 0x11111112, "0xFFFFFFFF": 0xFFFFFFFF}
VALID = {"0x100", "0x11111112", "0xFFFFFFFF"}


@pytest.mark.parametrize("name", [*EDGES, "2^32"])
def test_instance_tag_of_our_own(name: str) -> None:
    """An account's own tag must be a real one: 0 and reserved tags are
    refused; 0x100 up to 0xFFFFFFFF work end to end, and appear in fragment
    headers as eight hex digits."""
    tag = EDGES.get(name, 1 << 32)
    pair = Pair(seed=f"own-tag/{name}", max_message_size=200)
    if name not in VALID:
        with pytest.raises(LocalProtocolError):
            replace_tag(pair, tag)
        return
    replace_tag(pair, tag)
    pair.secure()
    assert pair.session("bob").their_instance == tag
    pair.conv("alice").send("x" * 300)
    pieces = pair.out("alice")
    assert len(pieces) > 1
    assert all(p.startswith(f"?OTR|{tag:08x}|{BOB_TAG:08x},") for p in pieces)
    shown = pair.deliver("bob", pieces)
    assert [e.text for e in shown if isinstance(e, ev.MessageReceived)] == ["x" * 300]
    pair.assert_usable()


def replace_tag(pair: Pair, tag: int) -> None:
    """Give Alice a new account with instance tag ``tag``."""
    old = pair.alice
    pair.accounts["alice"] = Account(
        "alice", "prpl-test", old.private_key, policy=old.policy, instance_tag=tag,
        max_message_size=old.max_message_size, random_bytes=old.random_bytes,
    )  # fmt: skip


@pytest.mark.parametrize("name", list(EDGES))
def test_instance_tag_of_a_sender(name: str) -> None:
    """A D-H Commit whose sender tag is 0 or reserved is dropped before any
    session exists (libotr: "malformed"); every real tag, including
    0xFFFFFFFF, opens a session for that instance and is answered there."""
    tag = EDGES[name]
    pair = Pair(seed=f"sender-tag/{name}")
    pair.conv("alice").master.start_ake(3)
    (text,) = pair.out("alice")
    commit = decode_message(classify(text).payload)
    assert isinstance(commit, DHCommit)
    events = pair.feed("bob", wire(replace(commit, sender_tag=tag)))
    conv = pair.conv("bob")
    if name in VALID:
        assert events == []
        assert list(conv.instances) == [tag]
        (reply,) = pair.out("bob")
        answer = decode_message(classify(reply).payload)
        assert isinstance(answer, DHKey)
        assert (answer.sender_tag, answer.receiver_tag) == (BOB_TAG, tag)
    else:
        assert [type(e) for e in events] == [ev.MessageDiscarded]
        assert conv.instances == {}
        assert pair.out("bob") == []


@pytest.mark.parametrize("name", list(EDGES))
def test_instance_tag_of_a_receiver(name: str) -> None:
    """A D-H Commit may be addressed to 0 (we do not know the peer's
    instance yet) or to us; any other receiver tag, reserved or real, means
    another instance of ours and the message is dropped silently."""
    tag = EDGES[name]
    pair = Pair(seed=f"receiver-tag/{name}")
    pair.conv("alice").master.start_ake(3)
    (text,) = pair.out("alice")
    commit = decode_message(classify(text).payload)
    assert isinstance(commit, DHCommit)
    events = pair.feed("bob", wire(replace(commit, receiver_tag=tag)))
    if tag == 0:
        assert events == [] and len(pair.out("bob")) == 1
    else:
        assert [type(e) for e in events] == [ev.MessageDiscarded]
        assert pair.out("bob") == []
    # and to Bob's own tag it is accepted
    pair.conv("bob").master.ake.reset()
    for session in pair.conv("bob").instances.values():
        session.ake.reset()
    assert pair.feed("bob", wire(replace(commit, receiver_tag=BOB_TAG))) == []
    assert len(pair.out("bob")) == 1


@pytest.mark.parametrize("sender", list(EDGES))
@pytest.mark.parametrize("receiver", ["0", "ours", "0xFFFFFFFF"])
def test_instance_tags_in_fragments(sender: str, receiver: str) -> None:
    """Fragment headers carry the same tags: a fragment from tag 0 or a
    reserved tag is dropped, one for another instance is dropped, and one
    addressed to 0 or to us is reassembled."""
    receiver_tag = {"0": 0, "ours": BOB_TAG, "0xFFFFFFFF": 0xFFFFFFFF}[receiver]
    pair = Pair(seed="fragment-tags").secure()
    text = Fragment(3, EDGES[sender], receiver_tag, 1, 1, "?OTR:AAMC.").encode()
    assert parse_fragment(text).sender_tag == EDGES[sender]
    events = pair.feed("bob", text)
    assert all(isinstance(e, ev.MessageDiscarded) for e in events)
    reason = " ".join(e.reason for e in events if isinstance(e, ev.MessageDiscarded))
    if receiver == "0xFFFFFFFF":
        assert reason == "fragment for another instance"
    elif sender not in VALID:
        assert reason == "fragment with an invalid sender instance tag"
    else:  # reassembled: the (too short) message inside is what is refused
        assert "fragment" not in reason
    assert pair.out("bob") == []


def test_a_later_fragment_for_another_instance_is_not_taken_as_the_next_piece() -> None:
    """After a first piece addressed to us, a second piece with another
    receiver tag (otherwise the next piece) is dropped as meant for another
    instance, and the message still completes with the real second piece;
    the same header in capitals is the same fragment and continues it."""
    pair = Pair(seed="fragment-next-piece").secure()
    pair.conv("alice").send("a message long enough to need three fragments " * 4)
    pieces = fragment_message(pair.out("alice")[0], 120, version=3, sender_tag=ALICE_TAG,
                              receiver_tag=BOB_TAG)  # fmt: skip
    assert len(pieces) >= 3
    assert pair.feed("bob", pieces[0]) == []
    other = pieces[1].replace(f"|{BOB_TAG:08x},", "|ffffffff,", 1)
    events = pair.feed("bob", other)
    assert [e.reason for e in events if isinstance(e, ev.MessageDiscarded)] == [
        "fragment for another instance"
    ]
    capitals = pieces[1][:36].upper() + pieces[1][36:]  # the header only
    assert capitals != pieces[1]
    assert pair.feed("bob", capitals) == []
    events = []
    for piece in pieces[2:]:
        events += pair.feed("bob", piece)
    received = [e for e in events if isinstance(e, ev.MessageReceived)]
    assert [e.text for e in received] == ["a message long enough to need three fragments " * 4]


@pytest.mark.interop
@pytest.mark.parametrize(
    ("ours", "theirs"),
    [(0x100, 0xFFFFFFFF), (0xFFFFFFFF, 0x100), (0x11111112, 0x80000000)],
    ids=["min-max", "max-min", "mid-signbit"],
)
def test_instance_tag_edges_with_libotr(libotr_exe: Path, ours: int, theirs: int) -> None:
    """offrecord and libotr with tags at the ends of the range (and one with
    the sign bit set), fragmenting at 150 characters so every encoded
    message carries both tags in its fragment headers: AKE, messages both
    ways and SMP work, and each side reports the other's tag."""
    offrecord = InProcessPeer("alice@example.org", "bob@example.org", instance_tag=ours,
                              max_fragment=150, seed=1)  # fmt: skip
    libotr = SubprocessPeer(
        [libotr_exe, *peer_args("bob@example.org", "alice@example.org",
                                instance_tag=theirs, max_fragment=150)],
        name="libotr:bob",
    )  # fmt: skip
    with Router(offrecord, libotr) as router:
        router.start("B")
        router.wait_encrypted(version=3)
        for i in range(3):
            router.expect_message("A", f"from offrecord {i} " + "y" * 200)
            router.expect_message("B", f"from libotr {i} " + "z" * 200)
        fragments = [p.data for p in router.network if p.data.startswith("?OTR|")]
        assert any(f.startswith(f"?OTR|{ours:08x}|{theirs:08x},") for f in fragments)
        assert any(f.startswith(f"?OTR|{theirs:08x}|{ours:08x},") for f in fragments)
        router.smp("A", "edge", question="tags?")
        router.smp_respond("B", "edge")
        assert router.status("A").trusted
    session = offrecord.account.conversation("bob@example.org").best_session()
    assert session.their_instance == theirs
    assert session.msgstate is MessageState.ENCRYPTED


def test_policy_presets_share_the_tag_rules() -> None:
    """Tag routing does not depend on the policy preset."""
    for policy in (Policy.MANUAL, Policy.OPPORTUNISTIC, Policy.ALWAYS):
        pair = Pair(seed="tag-presets", policy=policy)
        pair.conv("alice").master.start_ake(3)
        (text,) = pair.out("alice")
        commit = decode_message(classify(text).payload)
        assert isinstance(commit, DHCommit)
        events = pair.feed("bob", wire(replace(commit, sender_tag=0xFF)))
        assert [type(e) for e in events] == [ev.MessageDiscarded]
        assert pair.out("bob") == []


@pytest.mark.interop
@pytest.mark.parametrize("name", list(EDGES))
def test_instance_tag_edges_in_the_instance_tags_file(tmp_path: Path, name: str) -> None:
    """``otr.instance_tags`` lines with each edge tag, read by libotr
    (``otrl_instag_read``) and by :class:`LibotrStore`: both take the real
    tags; libotr silently skips 0 and the reserved tags, offrecord refuses
    the file (StorageError naming file and line) rather than make a new tag
    behind the user's back.  Writing a real tag gives a file libotr reads."""
    lib = libotr_ctypes.load()
    if lib is None:
        pytest.skip("libotr.so.5 cannot be loaded")
    tag = EDGES[name]
    path = tmp_path / "otr.instance_tags"
    path.write_text(f"alice@example.org\tprpl-jabber\t{tag:08x}\n")
    with lib.userstate() as us:
        us.instag_read(path)
        from_libotr = us.instag_find(b"alice@example.org", b"prpl-jabber")
    store = LibotrStore(tmp_path)
    if name in VALID:
        assert from_libotr == tag
        assert store.get_instance_tag("alice@example.org", "prpl-jabber") == tag
        written = tmp_path / "written"
        LibotrStore(written).save_instance_tag("bob@example.org", "prpl-irc", tag)
        with lib.userstate() as us:
            us.instag_read(written / "otr.instance_tags")
            assert us.instag_find(b"bob@example.org", b"prpl-irc") == tag
    else:
        assert from_libotr is None
        with pytest.raises(StorageError, match=r"otr\.instance_tags:1: .*below the minimum"):
            store.get_instance_tag("alice@example.org", "prpl-jabber")
        with pytest.raises(LocalProtocolError):
            LibotrStore(tmp_path / "other").save_instance_tag("a", "b", tag)
