"""What the user sees: the conversation states, and every event of the chat
client as a script line or as a line on screen.  Pure functions of their
arguments.

An event is a :class:`Line`: a kind (the first word of its script line), the
buddy it concerns, fixed words, and free text last.  :func:`script_line`
gives the stable, greppable form of ``docs/chat.md``; :func:`display_line`
the coloured form of the terminal UI, which names the state of the
conversation on every message.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Final

__all__ = [
    "STATE_LABELS",
    "STATE_STYLES",
    "ChatState",
    "Fragments",
    "Line",
    "display_line",
    "escape_text",
    "prompt_fragments",
    "script_line",
]

# prompt_toolkit's formatted text: (style, text) pairs.
Fragments = list[tuple[str, str]]


class ChatState(enum.Enum):
    """What a conversation is, as the user must understand it."""

    PLAINTEXT = "plaintext"
    UNVERIFIED = "encrypted-unverified"
    VERIFIED = "encrypted-verified"
    FINISHED = "finished"


STATE_LABELS: Final = {
    ChatState.PLAINTEXT: "NOT PRIVATE",
    ChatState.UNVERIFIED: "private, UNVERIFIED",
    ChatState.VERIFIED: "private, verified",
    ChatState.FINISHED: "FINISHED: buddy left, /otr end or /otr start",
}

STATE_STYLES: Final = {
    ChatState.PLAINTEXT: "class:state.plaintext",
    ChatState.UNVERIFIED: "class:state.unverified",
    ChatState.VERIFIED: "class:state.verified",
    ChatState.FINISHED: "class:state.finished",
}

NO_BUDDY: Final = "-"


@dataclass(frozen=True, slots=True)
class Line:
    """One event for the user.

    ``words`` never contain spaces; ``text`` (message text, a reason, a
    question) comes last and may contain anything (it is escaped in script
    lines).  ``state`` is the buddy's conversation state when it happened.
    """

    kind: str
    buddy: str | None = None
    words: tuple[str, ...] = ()
    text: str | None = field(default=None, repr=False)
    state: ChatState | None = None


def escape_text(text: str) -> str:
    """``text`` on one line: backslash, CR, LF, tab and other control
    characters as ``\\\\``, ``\\r``, ``\\n``, ``\\t``, ``\\xNN``/``\\uNNNN``."""
    out: list[str] = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ch.isprintable() or ch == " ":
            out.append(ch)
        else:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
    return "".join(out)


def script_line(line: Line) -> str:
    """``KIND BUDDY WORD... [TEXT]`` (``-`` for no buddy), one line."""
    parts = [line.kind, line.buddy if line.buddy is not None else NO_BUDDY, *line.words]
    if line.text is not None:
        parts.append(escape_text(line.text))
    return " ".join(parts)


def _screen(text: str) -> str:
    """Text safe for the terminal: control characters escaped, so a buddy
    cannot move the cursor or recolour what is shown."""
    return "\n".join(escape_text(part) for part in text.split("\n"))


def _tag(state: ChatState | None) -> Fragments:
    if state is None:
        return []
    return [(STATE_STYLES[state], f"[{STATE_LABELS[state]}]"), ("", " ")]


def group_fingerprint(hex_digits: str) -> str:
    """40 hex digits in five groups of eight, as Pidgin and irssi show them."""
    return " ".join(hex_digits[i : i + 8] for i in range(0, len(hex_digits), 8))


def _word(line: Line, index: int) -> str:
    return line.words[index] if len(line.words) > index else ""


def _words_text(line: Line) -> tuple[str, str] | None:
    """Sentences for the events that deserve more than their words."""
    who, kind = line.buddy or "", line.kind
    text = _screen(line.text) if line.text else ""
    if kind == "ready":
        return (
            "class:info",
            f"-- connected as {_word(line, 0)}; your fingerprint is "
            f"{group_fingerprint(_word(line, 1))}",
        )
    if kind == "query":
        state = line.state or ChatState.PLAINTEXT
        return ("class:info", f"-- talking to {who} ({STATE_LABELS[state]})")
    if kind == "secured":
        refreshed = " (keys refreshed)" if "refreshed" in line.words else ""
        verified = "VERIFIED" if _word(line, 2) == "verified" else "NOT verified yet"
        return (
            "class:info",
            f"-- private conversation with {who}{refreshed}, OTR "
            f"{_word(line, 0)}; their fingerprint {group_fingerprint(_word(line, 1))} is "
            f"{verified}; session id {_word(line, 3)}",
        )
    if kind == "new-fingerprint":
        return (
            "class:alert",
            f"!! {who} uses a fingerprint never seen for them: "
            f"{group_fingerprint(_word(line, 0))} — check it with /otr smp, or compare it "
            "by another channel and /otr trust",
        )
    if kind == "finished":
        return (
            "class:alert",
            f"!! {who} ended the private conversation; what you type is "
            "NOT sent until you /otr end (plaintext) or /otr start",
        )
    if kind == "buddy":
        state = line.state or ChatState.PLAINTEXT
        mark = "  <- current" if "current" in line.words else ""
        return ("class:info", f"-- {who}: {STATE_LABELS[state]}{mark}")
    if kind == "ended":
        return ("class:info", f"-- you ended the private conversation with {who}")
    if kind == "smp-result":
        if _word(line, 0) == "success":
            outcome = (
                "they know the secret; their fingerprint is now verified"
                if _word(line, 1) == "verified"
                else "the secrets match"
            )
            return ("class:info", f"-- SMP with {who} succeeded: {outcome}")
        return (
            "class:alert",
            f"!! SMP with {who} FAILED: the secrets differ (or someone "
            "is in the middle); the fingerprint is not verified",
        )
    if kind == "smp-started":
        asked = f" asking: {text}" if text else ""
        return ("class:info", f"-- asked {who} to verify with a shared secret{asked}")
    if kind == "smp-aborted":
        return ("class:alert", f"!! SMP with {who} aborted{': ' + text if text else ''}")
    return None


def display_line(line: Line) -> Fragments:
    """The line for the terminal UI (without the time)."""
    who = line.buddy or ""
    text = _screen(line.text) if line.text is not None else ""
    kind = line.kind
    if kind == "recv":
        how = line.words[0] if line.words else "plaintext"
        if how == "unencrypted":
            return [
                ("class:alert", "[UNENCRYPTED — sent in the clear during a private session]"),
                ("", " "),
                ("class:nick.them", f"<{who}>"),
                ("", f" {text}"),
            ]
        return [*_tag(line.state), ("class:nick.them", f"<{who}>"), ("", f" {text}")]
    if kind == "sent":
        return [*_tag(line.state), ("class:nick.me", f"> {who}:"), ("", f" {text}")]
    if kind == "held":
        count = line.words[0] if line.words else "1"
        return [
            ("class:state.unverified", f"[held until encrypted ({count} waiting)]"),
            ("", f" {text}" if text else ""),
        ]
    words = _words_text(line)
    if words is not None:
        style, sentence = words
        return [(style, sentence)]
    if kind == "state":
        state = line.state
        if state is None:
            return [("class:info", f"-- {who}: {text}")]
        return [
            ("class:info", f"-- {who}: the conversation is now "),
            (STATE_STYLES[state], STATE_LABELS[state]),
        ]
    if kind == "smp-asked":
        question = f" They ask: {text}" if text else " (no question)"
        return [
            (
                "class:alert",
                f"-- {who} wants to verify you with a shared secret.{question} "
                "Type the answer at the prompt (empty aborts).",
            )
        ]
    if kind in (
        "otr-error",
        "unreadable",
        "not-sent",
        "smp-error",
        "error",
        "timeout",
        "disconnected",
    ):
        label = {
            "otr-error": "OTR error from",
            "unreadable": "unreadable message from",
            "not-sent": "NOT sent to",
            "smp-error": "SMP error with",
        }.get(kind, kind)
        subject = f" {who}" if who else ""
        return [("class:alert", f"!! {label}{subject}: {text}")]
    if kind == "notice":
        return [("class:notice", f"-{who or 'server'}- {text}")]
    detail = " ".join(line.words)
    body = " ".join(part for part in (detail, text) if part)
    subject = f"{who}: " if who else ""
    return [("class:info", f"-- {kind} {subject}{body}".rstrip())]


def prompt_fragments(buddy: str | None, state: ChatState | None) -> Fragments:
    """The input prompt: who messages go to and what the conversation is."""
    if buddy is None:
        return [("class:info", "[no buddy: /query NICK]"), ("", " > ")]
    chosen = state or ChatState.PLAINTEXT
    return [
        ("class:prompt.buddy", buddy),
        ("", " "),
        (STATE_STYLES[chosen], f"[{STATE_LABELS[chosen]}]"),
        ("", " > "),
    ]
