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
