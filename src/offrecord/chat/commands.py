"""What a line typed by the user (or read from a script) means.

Pure: :func:`parse_input` turns one line into one command object, or raises
:class:`CommandSyntaxError` with a message fit for the user.  A line that does
not start with ``/`` is a message to the current buddy; ``//text`` sends
``/text`` literally.
"""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass, field
from typing import Final

__all__ = [
    "COMMAND_HELP",
    "POLICY_NAMES",
    "Buddies",
    "CommandSyntaxError",
    "Help",
    "Input",
    "Me",
    "OtrEnd",
    "OtrFingerprint",
    "OtrPolicy",
    "OtrSmp",
    "OtrSmpAbort",
    "OtrSmpRespond",
    "OtrStart",
    "OtrStatus",
    "OtrTrust",
    "Query",
    "Quit",
    "Say",
    "Sleep",
    "Wait",
    "parse_input",
]

POLICY_NAMES: Final = ("never", "manual", "opportunistic", "always")
DEFAULT_WAIT_TIMEOUT: Final = 60.0


class CommandSyntaxError(ValueError):
    """The line is not a valid command; the message says why and how."""


@dataclass(frozen=True, slots=True)
class Say:
    """A message to the current buddy (or to ``buddy``)."""

    text: str = field(repr=False)
    buddy: str | None = None


@dataclass(frozen=True, slots=True)
class Me:
    """An action (``/me waves``), sent as ``/me waves`` text."""

    text: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class Query:
    """Talk to ``buddy`` from now on (opens a conversation)."""

    buddy: str


@dataclass(frozen=True, slots=True)
class OtrStart:
    pass


@dataclass(frozen=True, slots=True)
class OtrEnd:
    pass


@dataclass(frozen=True, slots=True)
class OtrStatus:
    pass


@dataclass(frozen=True, slots=True)
class OtrFingerprint:
    pass


@dataclass(frozen=True, slots=True)
class OtrTrust:
    """Mark the buddy's current fingerprint verified (``trusted``) or not."""

    trusted: bool


@dataclass(frozen=True, slots=True)
class OtrSmp:
    """Start SMP with ``secret``, optionally asking ``question``."""

    secret: str = field(repr=False)
    question: str | None = None


@dataclass(frozen=True, slots=True)
class OtrSmpRespond:
    secret: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class OtrSmpAbort:
    pass


@dataclass(frozen=True, slots=True)
class OtrPolicy:
    """Show the policy (``name`` None) or set one of :data:`POLICY_NAMES`."""

    name: str | None


@dataclass(frozen=True, slots=True)
class Buddies:
    """List every conversation and its state."""


@dataclass(frozen=True, slots=True)
class Quit:
    pass


@dataclass(frozen=True, slots=True)
class Help:
    pass


@dataclass(frozen=True, slots=True)
class Wait:
    """Script mode: wait until an output line starting with ``pattern`` appears."""

    pattern: str
    timeout: float = DEFAULT_WAIT_TIMEOUT


@dataclass(frozen=True, slots=True)
class Sleep:
    seconds: float


Input = (
    Say
    | Me
    | Query
    | Buddies
    | OtrStart
    | OtrEnd
    | OtrStatus
    | OtrFingerprint
    | OtrTrust
    | OtrSmp
    | OtrSmpRespond
    | OtrSmpAbort
    | OtrPolicy
    | Quit
    | Help
    | Wait
    | Sleep
)

COMMAND_HELP: Final = (
    ("/query NICK", "talk to NICK (messages go to the current buddy)"),
    ("/msg NICK TEXT", "send TEXT to NICK without switching"),
    ("/me TEXT", "an action"),
    ("/buddies", "every conversation and its state"),
    ("/otr start", "start (or refresh) a private conversation"),
    ("/otr end", "end the private conversation"),
    ("/otr status", "the conversation's state, fingerprint, trust and policy"),
    ("/otr fingerprint", "your fingerprint and the buddy's"),
    ("/otr trust", "mark the buddy's fingerprint as verified (after checking it)"),
    ("/otr distrust", "mark the buddy's fingerprint as not verified"),
    (
        "/otr smp [QUESTION] SECRET",
        "verify the buddy with a shared secret; quote a "
        'QUESTION or SECRET with spaces: /otr smp "first pet?" rex (in the terminal UI, '
        "/otr smp alone asks for both, the secret masked)",
    ),
    ("/otr smp-respond SECRET", "answer the buddy's SMP request (the rest of the line)"),
    ("/otr smp-abort", "abort SMP"),
    ("/otr policy [never|manual|opportunistic|always]", "show or set the OTR policy"),
    ("/wait PATTERN [TIMEOUT]", "script mode: wait for an event line starting with PATTERN"),
    ("/sleep SECONDS", "script mode: pause"),
    ("/help", "this list"),
    ("/quit", "leave"),
)


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise CommandSyntaxError(f"{what} must be a number of seconds, not {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise CommandSyntaxError(f"{what} must be a non-negative number of seconds")
    return value


def _is_number(text: str) -> bool:
    try:
        value = float(text)
    except ValueError:
        return False
    return math.isfinite(value) and value >= 0


def _single_word(args: str, usage: str) -> str:
    words = args.split()
    if len(words) != 1:
        raise CommandSyntaxError(f"usage: {usage}")
    return words[0]


def _parse_smp(args: str) -> OtrSmp:
    usage = "usage: /otr smp [QUESTION] SECRET"
    if not args.strip():
        raise CommandSyntaxError(usage)
    try:
        words = shlex.split(args)
    except ValueError:
        # Unbalanced quotes: the whole thing is the secret.
        words = [args.strip()]
    if not words or not words[-1]:
        raise CommandSyntaxError(usage + " (the secret must not be empty)")
    if len(words) == 1:
        return OtrSmp(words[0])
    question = " ".join(words[:-1]).strip()
    return OtrSmp(words[-1], question or None)


def _parse_otr(args: str) -> Input:
    sub, _, rest = args.strip().partition(" ")
    sub = sub.lower()
    simple: dict[str, Input] = {
        "start": OtrStart(),
        "init": OtrStart(),
        "end": OtrEnd(),
        "finish": OtrEnd(),
        "status": OtrStatus(),
        "info": OtrStatus(),
        "fingerprint": OtrFingerprint(),
        "fp": OtrFingerprint(),
        "trust": OtrTrust(True),
        "distrust": OtrTrust(False),
        "smp-abort": OtrSmpAbort(),
    }
    if sub in simple:
        if rest.strip():
            raise CommandSyntaxError(f"/otr {sub} takes no arguments")
        return simple[sub]
    if sub == "smp":
        return _parse_smp(rest)
    if sub in ("smp-respond", "smpr", "smp-answer"):
        secret = rest.strip()
        if not secret:
            raise CommandSyntaxError("usage: /otr smp-respond SECRET")
        return OtrSmpRespond(secret)
    if sub == "policy":
        name = rest.strip().lower()
        if not name:
            return OtrPolicy(None)
        if name not in POLICY_NAMES:
            raise CommandSyntaxError(f"usage: /otr policy {'|'.join(POLICY_NAMES)}")
        return OtrPolicy(name)
    if not sub:
        raise CommandSyntaxError(
            "usage: /otr start|end|status|fingerprint|trust|distrust|"
            "smp|smp-respond|smp-abort|policy"
        )
    raise CommandSyntaxError(f"unknown /otr command {sub!r}; /help lists them")


def _parse_wait(args: str) -> Wait:
    words = args.split()
    if not words:
        raise CommandSyntaxError("usage: /wait PATTERN [TIMEOUT]")
    timeout = DEFAULT_WAIT_TIMEOUT
    if len(words) > 1 and _is_number(words[-1]):
        timeout = _number(words.pop(), "the timeout")
    return Wait(" ".join(words), timeout)


def parse_input(line: str) -> Input | None:
    """The command a line stands for; ``None`` for an empty line."""
    line = line.rstrip("\r\n")
    if not line.strip():
        return None
    if not line.startswith("/"):
        return Say(line)
    if line.startswith("//"):
        return Say(line[1:])
    name, _, args = line[1:].partition(" ")
    name = name.lower()
    if name == "otr":
        return _parse_otr(args)
    if name in ("query", "q"):
        return Query(_single_word(args, "/query NICK"))
    if name == "msg":
        buddy, _, text = args.strip().partition(" ")
        if not buddy or not text.strip():
            raise CommandSyntaxError("usage: /msg NICK TEXT")
        return Say(text, buddy)
    if name == "me":
        if not args.strip():
            raise CommandSyntaxError("usage: /me TEXT")
        return Me(args)
    if name in ("buddies", "list", "who"):
        if args.strip():
            raise CommandSyntaxError(f"/{name} takes no arguments")
        return Buddies()
    if name in ("quit", "exit"):
        return Quit()
    if name == "help":
        return Help()
    if name == "wait":
        return _parse_wait(args)
    if name == "sleep":
        return Sleep(_number(_single_word(args, "/sleep SECONDS"), "/sleep"))
    raise CommandSyntaxError(f"unknown command /{name}; /help lists the commands")
