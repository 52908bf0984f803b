"""Unencoded OTR messages and the ``?OTR:`` framing (spec "Unencoded messages").

:func:`classify` sorts one complete incoming network message (fragments are
reassembled before this) into query, error, encoded, whitespace-tagged or
plain text, the way libotr 4.1.1 does: it looks for ``?OTR`` anywhere in the
text, and for the whitespace tag anywhere in a message without ``?OTR``.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass, field
from enum import Enum

import pybase64

from offrecord.errors import RemoteProtocolError

__all__ = [
    "MAX_ENCODED_LEN",
    "Incoming",
    "Kind",
    "classify",
    "encoded_payload",
    "error_message",
    "frame",
    "query_message",
    "tag_plaintext",
]

OTR_MARKER = "?OTR"
ERROR_PREFIX = "?OTR Error:"
ENCODED_PREFIX = "?OTR:"
FRAGMENT_PREFIXES = ("?OTR,", "?OTR|")

WHITESPACE_BASE = "\x20\x09\x20\x20\x09\x09\x09\x09\x20\x09\x20\x09\x20\x09\x20\x20"
WHITESPACE_VERSION = {
    "1": "\x20\x09\x20\x09\x20\x20\x09\x20",
    "2": "\x20\x20\x09\x09\x20\x20\x09\x20",
    "3": "\x20\x20\x09\x09\x20\x20\x09\x09",
}
_TAG_TO_VERSION = {tag: v for v, tag in WHITESPACE_VERSION.items()}

# An encoded message longer than this (in base64 characters) is refused before
# decoding.  Data messages carry chat text; 1 MiB of it is far beyond any IM
# network's limits, and the fragment reassembler enforces its own, lower cap.
MAX_ENCODED_LEN = 1 << 20


class Kind(Enum):
    PLAINTEXT = "plaintext"
    TAGGED_PLAINTEXT = "tagged plaintext"
    QUERY = "query"
    ERROR = "error"
    ENCODED = "encoded"
    FRAGMENT = "fragment"
    UNKNOWN_OTR = "unrecognised OTR message"


@dataclass(frozen=True, slots=True)
class Incoming:
    """One classified network message.

    ``versions`` is what a query or whitespace tag offers, as the characters the
    spec uses ("1", "2", "3", and unknown future ones); ``text`` is the human part
    (the plaintext with any whitespace tag removed, or an error's description);
    ``payload`` is the base64-decoded body of an encoded message.
    """

    kind: Kind
    text: str = field(default="", repr=False)
    versions: frozenset[str] = frozenset()
    payload: bytes = field(default=b"", repr=False)

    def offered(self) -> frozenset[int]:
        """The offered versions offrecord can speak (2 and 3)."""
        return frozenset(int(v) for v in self.versions if v in ("2", "3"))


def _query_versions(text: str, start: int) -> frozenset[str]:
    """Versions of a query string found at ``start`` (just after "?OTR")."""
    versions: set[str] = set()
    pos = start
    if text[pos : pos + 1] == "?":
        versions.add("1")
        pos += 1
    if text[pos : pos + 1] == "v":
        end = text.find("?", pos + 1)
        if end < 0:
            end = len(text)
        versions.update(text[pos + 1 : end])
    return frozenset(versions)


def _strip_whitespace_tag(text: str) -> tuple[str, frozenset[str]] | None:
    at = text.find(WHITESPACE_BASE)
    if at < 0:
        return None
    pos = at + len(WHITESPACE_BASE)
    versions: set[str] = set()
    while (version := _TAG_TO_VERSION.get(text[pos : pos + 8])) is not None:
        versions.add(version)
        pos += 8
    return text[:at] + text[pos:], frozenset(versions)


def _decode_body(text: str, start: int) -> bytes:
    end = text.find(".", start)
    if end < 0:
        raise RemoteProtocolError("encoded OTR message has no terminating '.'")
    body = text[start:end]
    if body and len(body) <= MAX_ENCODED_LEN:
        # The usual case, one unbroken line.  pybase64 (SIMD; 25 times as
        # fast as binascii on a long message) accepts only canonical base64,
        # a subset of what strict binascii accepts, with the same result; for
        # anything else binascii decides.  Neither accepts whitespace, so
        # success means the body needed no cleaning.
        try:  # a str with anything but ASCII raises ValueError
            return pybase64.b64decode(body, validate=True)
        except ValueError:  # binascii.Error included
            pass
        try:
            return binascii.a2b_base64(body, strict_mode=True)
        except (binascii.Error, ValueError):
            pass
    # Some transports wrap long lines; libotr's decoder skips such characters.
    body = "".join(body.split())
    if len(body) > MAX_ENCODED_LEN:
        raise RemoteProtocolError("encoded OTR message is too long")
    if not body:
        raise RemoteProtocolError("encoded OTR message is empty")
    try:
        return binascii.a2b_base64(body.encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise RemoteProtocolError("encoded OTR message is not valid base64") from None


def encoded_payload(text: str) -> bytes:
    """The binary body of a network message that starts with ``?OTR:``
    (classify() gives the same as the payload of its ENCODED answer).

    Raises RemoteProtocolError for broken framing or base64.
    """
    if not text.startswith(ENCODED_PREFIX):
        raise ValueError("not an encoded OTR message")
    return _decode_body(text, len(ENCODED_PREFIX))


def classify(text: str) -> Incoming:
    """Classify a complete network message.

    Raises RemoteProtocolError for an ``?OTR:`` message whose framing or base64
    is broken; everything else classifies.
    """
    if text.startswith(ENCODED_PREFIX):  # most traffic: skip the search
        return Incoming(Kind.ENCODED, payload=encoded_payload(text))
    at = text.find(OTR_MARKER)
    if at >= 0:
        rest = text[at:]
        if rest.startswith(ENCODED_PREFIX):
            return Incoming(Kind.ENCODED, payload=_decode_body(text, at + len(ENCODED_PREFIX)))
        if rest.startswith(ERROR_PREFIX):
            return Incoming(Kind.ERROR, text=rest[len(ERROR_PREFIX) :].strip())
        if rest.startswith(FRAGMENT_PREFIXES):
            return Incoming(Kind.FRAGMENT, text=text)
        if rest.startswith(("?OTR?", "?OTRv")):
            return Incoming(Kind.QUERY, versions=_query_versions(text, at + len(OTR_MARKER)))
        return Incoming(Kind.UNKNOWN_OTR)
    tagged = _strip_whitespace_tag(text)
    if tagged is not None:
        return Incoming(Kind.TAGGED_PLAINTEXT, text=tagged[0], versions=tagged[1])
    return Incoming(Kind.PLAINTEXT, text=text)


def frame(binary: bytes) -> str:
    """``?OTR:`` + base64 + ``.``, the transmitted form of an encoded message."""
    return "?OTR:" + pybase64.b64encode_as_string(binary) + "."


def _version_string(versions: frozenset[int]) -> str:
    return "".join(str(v) for v in sorted(versions))


def query_message(versions: frozenset[int], account: str) -> str:
    """A query message offering ``versions``, with an explanation for humans
    whose client has no OTR."""
    return (
        f"?OTRv{_version_string(versions)}?\n"
        f"{account} has requested an Off-the-Record private conversation, "
        "but your client does not support it. "
        "See https://otr.cypherpunks.ca/ for more information."
    )


def tag_plaintext(text: str, versions: frozenset[int]) -> str:
    """Append the whitespace tag advertising ``versions``."""
    return text + WHITESPACE_BASE + "".join(WHITESPACE_VERSION[str(v)] for v in sorted(versions))


def error_message(description: str) -> str:
    return f"{ERROR_PREFIX} {description}"
