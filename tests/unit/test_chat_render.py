"""What the user sees: script lines, screen lines and the prompt."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from offrecord.chat.render import (
    STATE_LABELS,
    STATE_STYLES,
    ChatState,
    Line,
    display_line,
    escape_text,
    prompt_fragments,
    script_line,
)


def plain(fragments: list[tuple[str, str]]) -> str:
    return "".join(text for _, text in fragments)


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("plain text", "plain text"),
        ("two\nlines", "two\\nlines"),
        ("cr\rtab\t", "cr\\rtab\\t"),
        ("back\\slash", "back\\\\slash"),
        ("bell\x07esc\x1b[31m", "bell\\x07esc\\x1b[31m"),
        ("été ✓", "été ✓"),
        ("\u200b\u2028", "\\u200b\\u2028"),
        ("nul\0", "nul\\x00"),
    ],
)
def test_escape_text(text: str, escaped: str) -> None:
    assert escape_text(text) == escaped


@given(st.text())
def test_escaped_text_is_one_printable_line(text: str) -> None:
    escaped = escape_text(text)
    assert "\n" not in escaped and "\r" not in escaped
    assert all(ch.isprintable() for ch in escaped)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (Line("ready", None, ("alice@irc", "AB" * 20)), f"ready - alice@irc {'AB' * 20}"),
        (Line("state", "bob", ("encrypted-verified",)), "state bob encrypted-verified"),
        (Line("recv", "bob", ("encrypted",), "hi\nthere"), "recv bob encrypted hi\\nthere"),
        (Line("smp-asked", "bob", (), None), "smp-asked bob"),
        (Line("smp-asked", "bob", (), ""), "smp-asked bob "),
        (Line("error", None, (), "oops"), "error - oops"),
    ],
)
def test_script_line(line: Line, expected: str) -> None:
    assert script_line(line) == expected


@pytest.mark.parametrize("state", list(ChatState))
def test_every_received_message_names_the_state(state: ChatState) -> None:
    shown = display_line(Line("recv", "bob", ("encrypted",), "hello", state))
    assert STATE_LABELS[state] in plain(shown)
    assert (STATE_STYLES[state], f"[{STATE_LABELS[state]}]") in shown
    assert plain(shown).endswith("<bob> hello")


@pytest.mark.parametrize("state", list(ChatState))
def test_every_sent_message_names_the_state(state: ChatState) -> None:
    shown = plain(display_line(Line("sent", "bob", ("encrypted",), "hello", state)))
    assert STATE_LABELS[state] in shown
    assert shown.endswith("hello")


def test_plaintext_in_a_private_session_is_flagged() -> None:
    shown = display_line(Line("recv", "bob", ("unencrypted",), "psst", ChatState.UNVERIFIED))
    assert "UNENCRYPTED" in plain(shown)
    assert shown[0][0] == "class:alert"


def test_held_messages_are_shown_as_held() -> None:
    shown = plain(display_line(Line("held", "bob", ("2",), "later", ChatState.PLAINTEXT)))
    assert "held until encrypted" in shown and "2 waiting" in shown and "later" in shown


def test_a_buddy_cannot_inject_terminal_controls() -> None:
    shown = plain(display_line(Line("recv", "bob", ("plaintext",), "\x1b[2Jgone\r", None)))
    assert "\x1b" not in shown and "\r" not in shown


@pytest.mark.parametrize("state", list(ChatState))
def test_state_changes_are_shown_with_their_label(state: ChatState) -> None:
    shown = display_line(Line("state", "bob", (state.value,), None, state))
    assert (STATE_STYLES[state], STATE_LABELS[state]) in shown


def test_smp_request_explains_what_to_do() -> None:
    shown = plain(display_line(Line("smp-asked", "bob", (), "our song?", ChatState.UNVERIFIED)))
    assert "our song?" in shown and "shared secret" in shown


@pytest.mark.parametrize(
    ("kind", "label"),
    [
        ("otr-error", "OTR error from"),
        ("unreadable", "unreadable message from"),
        ("not-sent", "NOT sent to"),
        ("smp-error", "SMP error with"),
        ("disconnected", "disconnected"),
    ],
)
def test_problems_are_alerts(kind: str, label: str) -> None:
    shown = display_line(Line(kind, "bob", (), "why"))
    assert shown[0][0] == "class:alert"
    assert label in plain(shown) and "why" in plain(shown)


def test_other_lines_show_their_words() -> None:
    shown = plain(display_line(Line("resent", "bob", ("2",), None)))
    assert shown == "-- resent bob: 2"
    assert plain(display_line(Line("notice", None, (), "hi"))) == "-server- hi"
    assert plain(display_line(Line("info", None, (), "x"))) == "-- info x"


FINGERPRINT = "0123456789ABCDEF0123456789ABCDEF01234567"
GROUPED = "01234567 89ABCDEF 01234567 89ABCDEF 01234567"


@pytest.mark.parametrize(
    ("line", "sentence", "style"),
    [
        (Line("ready", None, ("a@h", FINGERPRINT)),
         f"connected as a@h; your fingerprint is {GROUPED}", "class:info"),
        (Line("query", "bob", ("plaintext",), None, ChatState.PLAINTEXT),
         "talking to bob (NOT PRIVATE)", "class:info"),
        (Line("secured", "bob", ("v3", FINGERPRINT, "unverified", "00ff")),
         f"private conversation with bob, OTR v3; their fingerprint {GROUPED} is NOT verified "
         "yet; session id 00ff", "class:info"),
        (Line("secured", "bob", ("v2", FINGERPRINT, "verified", "00ff", "refreshed")),
         "(keys refreshed), OTR v2", "class:info"),
        (Line("secured", "bob", ("v3", FINGERPRINT, "verified", "00ff")), "is VERIFIED",
         "class:info"),
        (Line("new-fingerprint", "bob", (FINGERPRINT,), "x"), f"never seen for them: {GROUPED}",
         "class:alert"),
        (Line("finished", "bob", (), "x"), "what you type is NOT sent", "class:alert"),
        (Line("ended", "bob"), "you ended the private conversation with bob", "class:info"),
        (Line("buddy", "bob", ("encrypted-verified", "current"), None, ChatState.VERIFIED),
         "bob: private, verified  <- current", "class:info"),
        (Line("smp-result", "bob", ("success", "verified")),
         "their fingerprint is now verified", "class:info"),
        (Line("smp-result", "bob", ("success", "unverified")), "the secrets match",
         "class:info"),
        (Line("smp-result", "bob", ("failure", "unverified")), "SMP with bob FAILED",
         "class:alert"),
        (Line("smp-started", "bob", (), "pet?"), "shared secret asking: pet?", "class:info"),
        (Line("smp-started", "bob", (), None), "verify with a shared secret", "class:info"),
        (Line("smp-aborted", "bob", (), "by you"), "SMP with bob aborted: by you",
         "class:alert"),
    ],
)  # fmt: skip
def test_events_in_sentences(line: Line, sentence: str, style: str) -> None:
    shown = display_line(line)
    assert sentence in plain(shown)
    assert shown[0][0] == style


def test_prompt_without_a_buddy() -> None:
    assert "/query" in plain(prompt_fragments(None, None))


@pytest.mark.parametrize("state", list(ChatState))
def test_prompt_shows_buddy_and_state(state: ChatState) -> None:
    fragments = prompt_fragments("bob", state)
    assert fragments[0] == ("class:prompt.buddy", "bob")
    assert (STATE_STYLES[state], f"[{STATE_LABELS[state]}]") in fragments


def test_states_are_told_apart() -> None:
    assert len(set(STATE_LABELS.values())) == len(ChatState)
    assert len(set(STATE_STYLES.values())) == len(ChatState)
    assert [s.value for s in ChatState] == [
        "plaintext",
        "encrypted-unverified",
        "encrypted-verified",
        "finished",
    ]
