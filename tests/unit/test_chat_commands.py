"""Parsing what the user types: every command, its aliases and its errors."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from offrecord.chat import commands as cmd
from offrecord.chat.commands import CommandSyntaxError, parse_input


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("hello", cmd.Say("hello")),
        ("  spaced  ", cmd.Say("  spaced  ")),
        ("//otr start", cmd.Say("/otr start")),
        ("hello\r\n", cmd.Say("hello")),
        ("/msg bob hi there", cmd.Say("hi there", "bob")),
        ("/me waves", cmd.Me("waves")),
        ("/query Bob", cmd.Query("Bob")),
        ("/q bob", cmd.Query("bob")),
        ("/QUERY bob", cmd.Query("bob")),
        ("/otr start", cmd.OtrStart()),
        ("/otr init", cmd.OtrStart()),
        ("/otr END", cmd.OtrEnd()),
        ("/otr finish", cmd.OtrEnd()),
        ("/otr status", cmd.OtrStatus()),
        ("/otr info", cmd.OtrStatus()),
        ("/otr fingerprint", cmd.OtrFingerprint()),
        ("/otr fp", cmd.OtrFingerprint()),
        ("/otr trust", cmd.OtrTrust(True)),
        ("/otr distrust", cmd.OtrTrust(False)),
        ("/otr smp secret", cmd.OtrSmp("secret")),
        ("/otr smp what is it? secret", cmd.OtrSmp("secret", "what is it?")),
        ('/otr smp "first pet?" "rex the dog"', cmd.OtrSmp("rex the dog", "first pet?")),
        ("/otr smp 'unbalanced", cmd.OtrSmp("'unbalanced")),
        ("/otr smp-respond two words", cmd.OtrSmpRespond("two words")),
        ("/otr smpr x", cmd.OtrSmpRespond("x")),
        ("/otr smp-abort", cmd.OtrSmpAbort()),
        ("/otr policy", cmd.OtrPolicy(None)),
        ("/otr policy ALWAYS", cmd.OtrPolicy("always")),
        ("/otr policy never", cmd.OtrPolicy("never")),
        ("/otr policy manual", cmd.OtrPolicy("manual")),
        ("/otr policy opportunistic", cmd.OtrPolicy("opportunistic")),
        ("/quit", cmd.Quit()),
        ("/buddies", cmd.Buddies()),
        ("/list", cmd.Buddies()),
        ("/exit", cmd.Quit()),
        ("/help", cmd.Help()),
        ("/wait secured bob", cmd.Wait("secured bob")),
        ("/wait secured bob 5", cmd.Wait("secured bob", 5.0)),
        ("/wait recv bob encrypted 42 7.5", cmd.Wait("recv bob encrypted 42", 7.5)),
        ("/wait 5", cmd.Wait("5")),
        ("/sleep 0.5", cmd.Sleep(0.5)),
    ],
)
def test_parse(line: str, expected: cmd.Input) -> None:
    assert parse_input(line) == expected


@pytest.mark.parametrize("line", ["", "   ", "\n", "\r\n"])
def test_empty_lines_are_nothing(line: str) -> None:
    assert parse_input(line) is None


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("/frobnicate", "unknown command /frobnicate"),
        ("/query", "usage: /query NICK"),
        ("/query a b", "usage: /query NICK"),
        ("/msg bob", "usage: /msg NICK TEXT"),
        ("/msg", "usage: /msg NICK TEXT"),
        ("/me", "usage: /me TEXT"),
        ("/otr", "usage: /otr start|end"),
        ("/otr dance", "unknown /otr command 'dance'"),
        ("/otr start now", "/otr start takes no arguments"),
        ("/otr smp", "usage: /otr smp [QUESTION] SECRET"),
        ('/otr smp ""', "the secret must not be empty"),
        ("/otr smp-respond", "usage: /otr smp-respond SECRET"),
        ("/otr policy sometimes", "usage: /otr policy never|manual|opportunistic|always"),
        ("/wait", "usage: /wait PATTERN [TIMEOUT]"),
        ("/sleep", "usage: /sleep SECONDS"),
        ("/buddies now", "/buddies takes no arguments"),
        ("/sleep soon", "must be a number of seconds"),
        ("/sleep -1", "non-negative"),
        ("/sleep inf", "non-negative"),
        ("/sleep nan", "non-negative"),
    ],
)
def test_errors_say_what_is_wrong(line: str, message: str) -> None:
    with pytest.raises(CommandSyntaxError, match=None) as info:
        parse_input(line)
    assert message in str(info.value)


def test_secrets_are_not_in_reprs() -> None:
    assert "hunter2" not in repr(parse_input("/otr smp q hunter2"))
    assert "hunter2" not in repr(parse_input("/otr smp-respond hunter2"))
    assert "hunter2" not in repr(parse_input("hunter2"))


def test_help_lists_every_command_of_the_issue() -> None:
    usages = " ".join(usage for usage, _ in cmd.COMMAND_HELP)
    for command in ("/query", "/otr start", "/otr end", "/otr status", "/otr fingerprint",
                    "/otr trust", "/otr distrust", "/otr smp", "/otr smp-respond",
                    "/otr policy", "/quit", "/help", "/wait", "/sleep"):  # fmt: skip
        assert command in usages


@given(st.text(min_size=1).filter(lambda t: t.strip() and not t.startswith("/")))
def test_any_other_line_is_a_message(text: str) -> None:
    parsed = parse_input(text)
    assert isinstance(parsed, cmd.Say)
    assert parsed.text == text.rstrip("\r\n")
    assert parsed.buddy is None


@given(st.text())
def test_parsing_never_fails_unexpectedly(text: str) -> None:
    with contextlib.suppress(CommandSyntaxError):
        parse_input(text)
