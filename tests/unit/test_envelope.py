"""Unit tests for offrecord.wire.envelope: query messages, whitespace tags, error
messages and the ``?OTR:`` framing, plus how an Account reacts to each offer."""

from __future__ import annotations

import random

import pytest

from offrecord import events as ev
from offrecord.account import Account
from offrecord.crypto.dsa import DSAPrivateKey, generate_private_key
from offrecord.errors import RemoteProtocolError
from offrecord.policy import Policy
from offrecord.wire.envelope import (
    MAX_ENCODED_LEN,
    WHITESPACE_BASE,
    WHITESPACE_VERSION,
    Kind,
    classify,
    error_message,
    frame,
    query_message,
    tag_plaintext,
)
from offrecord.wire.messages import DHCommit, decode_message

TAG_V1 = WHITESPACE_VERSION["1"]
TAG_V2 = WHITESPACE_VERSION["2"]
TAG_V3 = WHITESPACE_VERSION["3"]


# --- query messages ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "versions", "offered"),
    [
        ("?OTR?", {"1"}, set()),
        ("?OTRv2?", {"2"}, {2}),
        ("?OTRv3?", {"3"}, {3}),
        ("?OTRv23?", {"2", "3"}, {2, 3}),
        ("?OTRv32?", {"2", "3"}, {2, 3}),
        ("?OTR?v2?", {"1", "2"}, {2}),
        ("?OTR?v23?", {"1", "2", "3"}, {2, 3}),
        ("?OTRv24x?", {"2", "4", "x"}, {2}),
        ("?OTR?v24x?", {"1", "2", "4", "x"}, {2}),
        ("?OTR?v?", {"1"}, set()),
        ("?OTRv?", set(), set()),
        ("?OTRv4?", {"4"}, set()),
        # No closing '?': the versions run to the end of the text, as in libotr.
        ("?OTRv3", {"3"}, {3}),
        ("?OTRv", set(), set()),
    ],
)
def test_query_versions(text: str, versions: set[str], offered: set[int]) -> None:
    incoming = classify(text)
    assert incoming.kind is Kind.QUERY
    assert incoming.versions == frozenset(versions)
    assert incoming.offered() == frozenset(offered)


@pytest.mark.parametrize(
    "text",
    [
        "Let's talk privately ?OTRv23? ok?",
        "<b>alice</b> wants OTR: ?OTRv23?\nSee https://otr.cypherpunks.ca/",
        "?OTRv23?",
    ],
)
def test_query_is_found_anywhere_in_the_message(text: str) -> None:
    incoming = classify(text)
    assert incoming.kind is Kind.QUERY
    assert incoming.offered() == {2, 3}


def test_query_versions_stop_at_the_first_question_mark() -> None:
    assert classify("?OTRv2? and later 3?").versions == {"2"}


@pytest.mark.parametrize(
    ("versions", "head"),
    [({2, 3}, "?OTRv23?"), ({2}, "?OTRv2?"), ({3}, "?OTRv3?"), ({3, 2}, "?OTRv23?")],
)
def test_query_message_round_trips(versions: set[int], head: str) -> None:
    text = query_message(frozenset(versions), "alice@example.org")
    assert text.startswith(head + "\n")
    assert "alice@example.org has requested an Off-the-Record private conversation" in text
    incoming = classify(text)
    assert incoming.kind is Kind.QUERY
    assert incoming.offered() == frozenset(versions)


# --- whitespace tags -----------------------------------------------------------


def test_whitespace_tag_constants_match_the_spec() -> None:
    assert WHITESPACE_BASE == (
        "\x20\x09\x20\x20\x09\x09\x09\x09" "\x20\x09\x20\x09\x20\x09\x20\x20"
    )  # fmt: skip
    assert TAG_V1 == "\x20\x09\x20\x09\x20\x20\x09\x20"
    assert TAG_V2 == "\x20\x20\x09\x09\x20\x20\x09\x20"
    assert TAG_V3 == "\x20\x20\x09\x09\x20\x20\x09\x09"


@pytest.mark.parametrize(
    ("tags", "versions", "offered"),
    [
        (TAG_V2, {"2"}, {2}),
        (TAG_V3, {"3"}, {3}),
        (TAG_V2 + TAG_V3, {"2", "3"}, {2, 3}),
        (TAG_V3 + TAG_V2, {"2", "3"}, {2, 3}),
        (TAG_V1, {"1"}, set()),
        (TAG_V1 + TAG_V2, {"1", "2"}, {2}),
        (TAG_V1 + TAG_V2 + TAG_V3, {"1", "2", "3"}, {2, 3}),
    ],
    ids=["v2", "v3", "v23", "v32", "v1", "v12", "v123"],
)
@pytest.mark.parametrize(
    ("before", "after"),
    [("Hello", ""), ("", "Hello"), ("Hel", "lo"), ("", "")],
    ids=["end", "start", "middle", "alone"],
)
def test_whitespace_tag_is_recognised_anywhere_and_removed(
    tags: str, versions: set[str], offered: set[int], before: str, after: str
) -> None:
    incoming = classify(before + WHITESPACE_BASE + tags + after)
    assert incoming.kind is Kind.TAGGED_PLAINTEXT
    assert incoming.versions == frozenset(versions)
    assert incoming.offered() == frozenset(offered)
    assert incoming.text == before + after


def test_whitespace_without_the_full_base_is_plain_text() -> None:
    text = "Hello" + WHITESPACE_BASE[:8] + TAG_V3
    incoming = classify(text)
    assert incoming.kind is Kind.PLAINTEXT
    assert incoming.text == text
    assert incoming.versions == frozenset()


def test_unknown_whitespace_after_the_tag_stays_in_the_text() -> None:
    unknown = "\x09" * 8
    incoming = classify("a" + WHITESPACE_BASE + TAG_V3 + unknown + "b")
    assert incoming.versions == {"3"}
    assert incoming.text == "a" + unknown + "b"


@pytest.mark.parametrize("versions", [{2}, {3}, {2, 3}])
def test_tag_plaintext_round_trips(versions: set[int]) -> None:
    tagged = tag_plaintext("see you at 5", frozenset(versions))
    assert tagged.startswith("see you at 5" + WHITESPACE_BASE)
    assert len(tagged) == len("see you at 5") + 16 + 8 * len(versions)
    incoming = classify(tagged)
    assert incoming.kind is Kind.TAGGED_PLAINTEXT
    assert incoming.text == "see you at 5"
    assert incoming.offered() == frozenset(versions)


def test_plain_text_is_plain() -> None:
    incoming = classify("just text, with ?OT and OTR? but no marker")
    assert incoming.kind is Kind.PLAINTEXT
    assert incoming.text == "just text, with ?OT and OTR? but no marker"


# --- error messages ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "description"),
    [
        ("?OTR Error: You sent something odd", "You sent something odd"),
        ("?OTR Error:no space", "no space"),
        ("prefix ?OTR Error: in the middle  ", "in the middle"),
        ("?OTR Error:", ""),
    ],
)
def test_error_messages(text: str, description: str) -> None:
    incoming = classify(text)
    assert incoming.kind is Kind.ERROR
    assert incoming.text == description


def test_error_message_builder() -> None:
    text = error_message("The encrypted message you sent could not be read.")
    assert text == "?OTR Error: The encrypted message you sent could not be read."
    assert classify(text).text == "The encrypted message you sent could not be read."


# --- ?OTR: framing -------------------------------------------------------------


@pytest.mark.parametrize("binary", [b"\x00", b"\x00\x03\x02", bytes(range(256))])
def test_frame_round_trips(binary: bytes) -> None:
    text = frame(binary)
    assert text.startswith("?OTR:")
    assert text.endswith(".")
    incoming = classify(text)
    assert incoming.kind is Kind.ENCODED
    assert incoming.payload == binary


def test_frame_is_standard_base64() -> None:
    assert frame(b"\x00\x03\x02") == "?OTR:AAMC."
    assert frame(b"\xfb\xff") == "?OTR:+/8=."


def test_encoded_message_may_have_text_around_it() -> None:
    incoming = classify("look: ?OTR:AAMC. (that was OTR)")
    assert incoming.kind is Kind.ENCODED
    assert incoming.payload == b"\x00\x03\x02"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("?OTR:AAMC", "no terminating"),
        ("?OTR:", "no terminating"),
        ("?OTR:.", "empty"),
        ("?OTR:===.", "base64"),
        ("?OTR:AAM.", "base64"),
        ("?OTR:A.", "base64"),
        ("?OTR:AA*C.", "base64"),
        ("?OTR:AAMCé=.", "base64"),
        ("?OTR:" + "A" * (MAX_ENCODED_LEN + 4) + ".", "too long"),
    ],
)
def test_broken_framing_raises_remote_protocol_error(text: str, why: str) -> None:
    with pytest.raises(RemoteProtocolError, match=why):
        classify(text)


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("?OTR,1,2,abc,", Kind.FRAGMENT),
        ("?OTR|00000100|00000200,00001,00002,abc,", Kind.FRAGMENT),
        ("?OTR", Kind.UNKNOWN_OTR),
        ("?OTRx", Kind.UNKNOWN_OTR),
        ("?OTR!", Kind.UNKNOWN_OTR),
        ("?OTR Error", Kind.UNKNOWN_OTR),
    ],
)
def test_other_otr_prefixes(text: str, kind: Kind) -> None:
    assert classify(text).kind is kind


# --- how an Account answers offers -----------------------------------------------


@pytest.fixture(scope="module")
def key() -> DSAPrivateKey:
    return generate_private_key(random.Random(0xE1).randbytes)


def bob(key: DSAPrivateKey, policy: Policy = Policy.DEFAULT) -> Account:
    return Account(
        "bob", "test", key, policy=policy, instance_tag=0xB0B0,
        random_bytes=random.Random(0xB0B).randbytes,
    )  # fmt: skip


def commits_sent(account: Account) -> list[DHCommit]:
    """Decode what the account wants to send; only D-H Commits are expected."""
    out: list[DHCommit] = []
    for peer, text in account.data_to_send():
        assert peer == "alice"
        incoming = classify(text)
        assert incoming.kind is Kind.ENCODED, text
        msg = decode_message(incoming.payload)
        assert isinstance(msg, DHCommit)
        out.append(msg)
    return out


@pytest.mark.parametrize(
    ("query", "version"),
    [
        ("?OTRv2?", 2),
        ("?OTRv3?", 3),
        ("?OTRv23?", 3),
        ("?OTR?v23?", 3),
        ("?OTR?v2?", 2),
        ("?OTRv24x?", 2),
        ("?OTRv4x3?", 3),
        ("Alice wants to talk: ?OTRv23? here", 3),
    ],
)
def test_query_starts_the_ake_with_the_best_common_version(
    key: DSAPrivateKey, query: str, version: int
) -> None:
    account = bob(key)
    events = account.receive("alice", query)
    assert events == []
    (commit,) = commits_sent(account)
    assert commit.version == version
    assert commit.receiver_tag == 0
    assert commit.sender_tag == (0xB0B0 if version == 3 else 0)


@pytest.mark.parametrize("query", ["?OTR?", "?OTR?v?", "?OTRv4?", "?OTR?v4x?"])
def test_unsupported_offer_is_an_event_and_never_a_session(key: DSAPrivateKey, query: str) -> None:
    account = bob(key)
    events = account.receive("alice", query)
    assert len(events) == 1
    assert isinstance(events[0], ev.UnsupportedVersion)
    assert events[0].offered == classify(query).versions
    assert account.data_to_send() == []
    assert not account.conversation("alice").master.ake_in_progress


def test_empty_offer_does_nothing(key: DSAPrivateKey) -> None:
    account = bob(key)
    assert account.receive("alice", "?OTRv?") == []
    assert account.data_to_send() == []


def test_v1_only_offer_is_unsupported_even_if_policy_allows_v1(key: DSAPrivateKey) -> None:
    account = bob(key, Policy.DEFAULT | Policy.ALLOW_V1)
    events = account.receive("alice", "?OTR?")
    assert [type(e) for e in events] == [ev.UnsupportedVersion]
    assert account.data_to_send() == []


@pytest.mark.parametrize(
    ("policy", "query", "version"),
    [
        (Policy.ALLOW_V2, "?OTRv23?", 2),
        (Policy.ALLOW_V3, "?OTRv23?", 3),
        (Policy.ALLOW_V2 | Policy.ALLOW_V3, "?OTRv2?", 2),
    ],
)
def test_policy_limits_the_version(
    key: DSAPrivateKey, policy: Policy, query: str, version: int
) -> None:
    account = bob(key, policy)
    account.receive("alice", query)
    (commit,) = commits_sent(account)
    assert commit.version == version


def test_offer_outside_the_policy_is_unsupported(key: DSAPrivateKey) -> None:
    account = bob(key, Policy.ALLOW_V3)
    events = account.receive("alice", "?OTRv2?")
    assert [type(e) for e in events] == [ev.UnsupportedVersion]
    assert account.data_to_send() == []


@pytest.mark.parametrize(
    ("tags", "version"),
    [
        (TAG_V2, 2),
        (TAG_V3, 3),
        (TAG_V2 + TAG_V3, 3),
        (TAG_V1 + TAG_V2 + TAG_V3, 3),
        (TAG_V1 + TAG_V2, 2),
    ],
    ids=["v2", "v3", "v23", "v123", "v12"],
)
def test_whitespace_tag_shows_the_text_and_starts_the_ake(
    key: DSAPrivateKey, tags: str, version: int
) -> None:
    account = bob(key)  # DEFAULT includes WHITESPACE_START_AKE
    events = account.receive("alice", "Hi " + WHITESPACE_BASE + tags + "Bob")
    assert len(events) == 1
    assert isinstance(events[0], ev.MessageReceived)
    assert events[0].text == "Hi Bob"
    assert not events[0].encrypted
    assert not events[0].unencrypted_warning
    (commit,) = commits_sent(account)
    assert commit.version == version


def test_v1_only_whitespace_tag_shows_the_text_and_starts_nothing(key: DSAPrivateKey) -> None:
    account = bob(key)
    events = account.receive("alice", "Hi" + WHITESPACE_BASE + TAG_V1)
    assert len(events) == 1
    assert isinstance(events[0], ev.MessageReceived)
    assert events[0].text == "Hi"
    assert account.data_to_send() == []


def test_whitespace_tag_without_whitespace_start_ake_only_shows_the_text(
    key: DSAPrivateKey,
) -> None:
    account = bob(key, Policy.MANUAL)
    events = account.receive("alice", "Hi" + WHITESPACE_BASE + TAG_V3)
    assert len(events) == 1
    assert isinstance(events[0], ev.MessageReceived)
    assert events[0].text == "Hi"
    assert account.data_to_send() == []


def test_error_message_at_the_account(key: DSAPrivateKey) -> None:
    account = bob(key, Policy.MANUAL)
    events = account.receive("alice", "?OTR Error: something broke")
    assert events == [ev.ErrorReceived("something broke")]
    assert account.data_to_send() == []


@pytest.mark.parametrize("text", ["?OTR:===.", "?OTR:", "?OTR", "?OTR:AAEC."])
def test_broken_otr_messages_are_discarded_at_the_account(key: DSAPrivateKey, text: str) -> None:
    account = bob(key)
    events = account.receive("alice", text)
    assert len(events) == 1
    assert isinstance(events[0], ev.MessageDiscarded)
    assert account.data_to_send() == []
