"""OTR fragmentation (spec "Fragmentation"): splitting, parsing and reassembly.

Two wire formats, as libotr 4.1.1 writes them (``otrl_proto_fragment_create``)::

    v3: ?OTR|<sender %08x>|<receiver %08x>,<k %05u>,<n %05u>,<piece>,
    v2: ?OTR,<k %05u>,<n %05u>,<piece>,

Sending (:func:`fragment_message`) produces exactly the fragments libotr
produces for the same maximum message size.  Parsing (:func:`parse_fragment`)
is never more permissive than libotr, and stricter where libotr's ``sscanf``
parsing is accidental (signs, blanks, ``0x`` prefixes, numbers that wrap).
Reassembly (:class:`Reassembler`) follows ``otrl_proto_fragment_accumulate``
(k == 1 starts a message, the next k with the same n extends it, anything else
abandons it, k == n completes it) and adds the bounds libotr lacks: total size,
piece count, concurrent reassemblies and an idle timeout
(:class:`FragmentLimits`).

Every parsing path raises only :class:`~offrecord.errors.RemoteProtocolError`;
local misuse (bad arguments) raises :class:`ValueError`.  Nothing here reads a
clock: the time is passed in as ``now`` (seconds, any monotonic origin).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from offrecord.errors import RemoteProtocolError

__all__ = [
    "MAX_PIECES",
    "MIN_INSTANCE_TAG",
    "Fragment",
    "FragmentFields",
    "FragmentLimits",
    "Reassembler",
    "canonical_fields",
    "fragment_message",
    "is_fragment",
    "min_max_size",
    "parse_fragment",
]

# k and n are unsigned shorts on the wire.
MAX_PIECES = 0xFFFF
# Instance tags below this are reserved; a v3 sender must have a real one.
MIN_INSTANCE_TAG = 0x100
_MAX_TAG = 0xFFFFFFFF

_MARKER = "?OTR"
_ENCODED_PREFIX = "?OTR:"
# A fragment marker inside a piece would let a fragment smuggle a fragment
# (libotr's accumulator searches the whole text for "?OTR|" before "?OTR,").
_NESTED_MARKERS = ("?OTR|", "?OTR,")

# libotr sizes a fragment's header as 37 (v3) or 19 (v2) characters: the 36 or
# 18 characters of fixed text around the piece plus one for C's terminating
# NUL.  Using the same figures makes our fragments identical to libotr's for
# the same maximum size (each is then at most max_size - 1 characters).
_RESERVED = {3: 37, 2: 19}

# k and n as fragments write them, for the counts most messages need (254 kB):
# formatting a number costs more than the rest of a fragment's handling.
_PADDED = tuple(f"{k:05d}" for k in range(4097))


def _padded(k: int) -> str:
    return _PADDED[k] if k < len(_PADDED) else f"{k:05d}"


_DIGITS = frozenset("0123456789")
_HEXDIGITS = frozenset("0123456789abcdefABCDEF")


def _piece_problem(piece: str) -> str | None:
    if not piece:
        return "fragment piece is empty"
    if "," in piece:
        return "fragment piece contains ','"
    if "\x00" in piece:
        # libotr sees a C string: a NUL ends the piece before its comma.
        return "fragment piece contains NUL"
    if "?OTR|" in piece or "?OTR," in piece:  # _NESTED_MARKERS
        return "fragment inside a fragment"
    return None


def _fields_problem(version: int, sender_tag: int, receiver_tag: int, k: int, n: int) -> str | None:
    if version not in (2, 3):
        return f"fragment version must be 2 or 3, not {version}"
    if not (0 <= sender_tag <= _MAX_TAG and 0 <= receiver_tag <= _MAX_TAG):
        return "instance tag out of range"
    if version == 2 and (sender_tag or receiver_tag):
        return "v2 fragments carry no instance tags"
    if not 0 < n <= MAX_PIECES:
        return f"fragment count n={n} outside 1..{MAX_PIECES}"
    if not 0 < k <= n:
        return f"fragment number k={k} outside 1..n={n}"
    return None


@dataclass(frozen=True, slots=True)
class Fragment:
    """One parsed fragment: piece ``k`` of ``n``.

    ``sender_tag`` and ``receiver_tag`` are the v3 instance tags (0 for v2).
    Routing is the caller's job: see :meth:`addressed_to` and
    :attr:`sender_tag_valid`.
    """

    version: int
    sender_tag: int
    receiver_tag: int
    k: int
    n: int
    piece: str = field(repr=False)

    def __post_init__(self) -> None:
        problem = _fields_problem(
            self.version, self.sender_tag, self.receiver_tag, self.k, self.n
        ) or _piece_problem(self.piece)
        if problem is not None:
            raise ValueError(problem)

    def addressed_to(self, our_tag: int) -> bool:
        """Whether an instance with tag ``our_tag`` should accept this fragment.

        As libotr: v2 fragments and v3 fragments with receiver tag 0 are for
        everyone; any other receiver tag must be ours.
        """
        return self.version == 2 or self.receiver_tag in (0, our_tag)

    @property
    def sender_tag_valid(self) -> bool:
        """False for a v3 fragment whose sender tag is reserved (< 0x100);
        libotr reports such a message as malformed."""
        return self.version == 2 or self.sender_tag >= MIN_INSTANCE_TAG

    def encode(self) -> str:
        """The wire form, zero-padded exactly as libotr 4.1.1 writes it."""
        if self.version == 3:
            return (
                f"?OTR|{self.sender_tag:08x}|{self.receiver_tag:08x},"
                f"{self.k:05d},{self.n:05d},{self.piece},"
            )
        return f"?OTR,{self.k:05d},{self.n:05d},{self.piece},"


def min_max_size(version: int) -> int:
    """The smallest ``max_size`` that leaves room for a one-character piece."""
    if version not in _RESERVED:
        raise ValueError(f"OTR fragment version must be 2 or 3, not {version}")
    return _RESERVED[version] + 1


def fragment_message(
    message: str,
    max_size: int,
    *,
    version: int,
    sender_tag: int = 0,
    receiver_tag: int = 0,
) -> list[str]:
    """Split an encoded message into fragments of at most ``max_size`` characters.

    Only encoded messages (``?OTR:...``) are split: anything else, and any
    message of at most ``max_size`` characters, comes back unchanged as the one
    element.  (libotr also splits plaintext, whose commas then break the
    receiver's parsing; we do not.)  The output equals libotr 4.1.1's for the
    same ``max_size``.  The instance tags are used for v3 and ignored for v2.

    Raises ValueError if ``max_size`` is below :func:`min_max_size`, if the
    message would need more than 65535 fragments, or for a bad tag.
    """
    minimum = min_max_size(version)
    if max_size < minimum:
        raise ValueError(
            f"max_size {max_size} leaves no room for a v{version} fragment piece; "
            f"the minimum is {minimum}"
        )
    if version == 3:
        if not MIN_INSTANCE_TAG <= sender_tag <= _MAX_TAG:
            raise ValueError("a v3 sender instance tag must be in 0x100..0xffffffff")
        if receiver_tag != 0 and not MIN_INSTANCE_TAG <= receiver_tag <= _MAX_TAG:
            raise ValueError("a v3 receiver instance tag must be 0 or in 0x100..0xffffffff")
    else:
        sender_tag = receiver_tag = 0
    if len(message) <= max_size or not message.startswith(_ENCODED_PREFIX):
        return [message]
    # Past its prefix an encoded message has no '?': the search for the
    # markers runs only when there is one.
    if "," in message or (
        message.find("?", 1) >= 0 and ("?OTR|" in message or "?OTR," in message)
    ):
        raise ValueError("an encoded message cannot contain ',' or a fragment marker")
    if "\x00" in message:
        raise ValueError("an encoded message cannot contain NUL")
    step = max_size - _RESERVED[version]
    count = -(-len(message) // step)
    if count > MAX_PIECES:
        raise ValueError(
            f"message needs {count} fragments at max_size {max_size}; at most {MAX_PIECES}"
        )
    # Every piece is a non-empty part of a message checked above, so each is a
    # valid Fragment; formatting them directly gives Fragment.encode()'s text.
    head = f"?OTR|{sender_tag:08x}|{receiver_tag:08x}," if version == 3 else "?OTR,"
    tail = f",{count:05d},"
    numbers = _PADDED if count < len(_PADDED) else [_padded(k) for k in range(count + 1)]
    return [
        f"{head}{numbers[k]}{tail}{message[(k - 1) * step : k * step]},"
        for k in range(1, count + 1)
    ]


def _decode(text: str | bytes) -> str:
    if isinstance(text, str):
        return text
    try:
        return text.decode("utf-8")
    except UnicodeDecodeError:
        raise RemoteProtocolError("message is not valid UTF-8") from None


def _marker_at(text: str | bytes) -> tuple[int, str | None]:
    """Where the first ``?OTR`` is and the character after it (libotr looks at
    the first occurrence only)."""
    if isinstance(text, bytes):
        at = text.find(b"?OTR")
        nxt = text[at + 4 : at + 5].decode("latin-1") if at >= 0 else ""
    else:
        at = text.find(_MARKER)
        nxt = text[at + 4 : at + 5] if at >= 0 else ""
    return at, (nxt or None)


def is_fragment(text: str | bytes) -> bool:
    """Whether a network message is a fragment (its first ``?OTR`` is followed
    by ``|`` or ``,``).  Never raises; says nothing about well-formedness."""
    at, nxt = _marker_at(text)
    return at >= 0 and nxt in ("|", ",")


def _take(text: str, start: int, sep: str, what: str) -> tuple[str, int]:
    end = text.find(sep, start)
    if end < 0:
        raise RemoteProtocolError(f"fragment {what} is not followed by {sep!r}")
    return text[start:end], end + 1


def _number(raw: str, digits: frozenset[str], base: int, width: int, what: str) -> int:
    # Leading zeros are allowed in any number; stripping them first keeps int()
    # away from arbitrarily long strings.
    if not raw or not digits.issuperset(raw):
        kind = "hexadecimal" if base == 16 else "decimal"
        raise RemoteProtocolError(f"fragment {what} is not a {kind} number")
    significant = raw.lstrip("0")
    if len(significant) > width:
        raise RemoteProtocolError(f"fragment {what} is out of range")
    return int(significant or "0", base)


# A fragment exactly as libotr and offrecord write them (see Fragment.encode).
_CANONICAL_V3 = re.compile(
    r"\?OTR\|([0-9a-fA-F]{8})\|([0-9a-fA-F]{8}),([0-9]{5}),([0-9]{5}),([^,]+),"
)
_CANONICAL_V2 = re.compile(r"\?OTR,([0-9]{5}),([0-9]{5}),([^,]+),")


FragmentFields = tuple[int, int, int, int, int, str]


def canonical_fields(message: str) -> FragmentFields | None:
    """(version, sender tag, receiver tag, k, n, piece) of ``message`` if it is
    written exactly as fragments are sent (nothing around it, fixed-width
    numbers) and valid; else None, and :func:`parse_fragment` takes the
    general way.  The tuple saves building a :class:`Fragment` per piece on
    the receiving hot path; it passes every check the class makes."""
    if (match := _CANONICAL_V3.fullmatch(message)) is not None:
        sender, receiver, k_text, n_text, piece = match.groups()
        version, sender_tag, receiver_tag = 3, int(sender, 16), int(receiver, 16)
    elif (match := _CANONICAL_V2.fullmatch(message)) is not None:
        k_text, n_text, piece = match.groups()
        version, sender_tag, receiver_tag = 2, 0, 0
    else:
        return None
    k, n = int(k_text), int(n_text)
    # The pattern already bounds the tags and keeps commas out of a non-empty
    # piece; these are the rest of Fragment's checks.
    if not 0 < k <= n <= MAX_PIECES or "\x00" in piece or "?OTR|" in piece or "?OTR," in piece:
        return None
    return version, sender_tag, receiver_tag, k, n, piece


def _parse_canonical(message: str) -> Fragment | None:
    fields = canonical_fields(message)
    return None if fields is None else Fragment(*fields)


def parse_fragment(text: str | bytes) -> Fragment:
    """Parse a network message that :func:`is_fragment` accepts.

    Text before the first ``?OTR`` and after the piece's terminating comma is
    ignored, as libotr ignores it, unless it holds another fragment marker.
    Instance tags are hexadecimal (either case, 1 to 8 significant digits), k
    and n decimal (1 to 5 significant digits), both with any number of leading
    zeros; 0 < k <= n <= 65535; the piece is non-empty, ends at the first
    comma, which must be present, and contains no NUL and no fragment marker.
    Raises RemoteProtocolError otherwise.
    """
    message = _decode(text)
    canonical = _parse_canonical(message)
    return canonical if canonical is not None else _parse_general(message)


def _parse_general(message: str) -> Fragment:
    at, nxt = _marker_at(message)
    if at < 0 or nxt not in ("|", ","):
        raise RemoteProtocolError("not an OTR fragment")
    pos = at + len(_MARKER) + 1
    sender = receiver = 0
    version = 2
    if nxt == "|":
        version = 3
        raw, pos = _take(message, pos, "|", "sender instance tag")
        sender = _number(raw, _HEXDIGITS, 16, 8, "sender instance tag")
        raw, pos = _take(message, pos, ",", "receiver instance tag")
        receiver = _number(raw, _HEXDIGITS, 16, 8, "receiver instance tag")
    raw, pos = _take(message, pos, ",", "number k")
    k = _number(raw, _DIGITS, 10, 5, "number k")
    raw, pos = _take(message, pos, ",", "count n")
    n = _number(raw, _DIGITS, 10, 5, "count n")
    piece, pos = _take(message, pos, ",", "piece")
    problem = _fields_problem(version, sender, receiver, k, n) or _piece_problem(piece)
    if problem is not None:
        raise RemoteProtocolError(problem)
    # libotr would pick a later "?OTR|" out of the trailing text instead.
    if any(marker in message[pos:] for marker in _NESTED_MARKERS):
        raise RemoteProtocolError("a second fragment follows the fragment")
    return Fragment(version, sender, receiver, k, n, piece)


@dataclass(frozen=True, slots=True)
class FragmentLimits:
    """Bounds on what one peer's fragments may make us hold.

    Worst-case memory per peer is about ``max_pending * max_message_size``
    characters.

    * ``max_message_size`` — characters in one reassembled message.  256 KiB is
      far above any chat message's encoded size, yet small enough that a
      hostile peer cannot make us buffer gigabytes (CVE-2016-2851 was libotr
      overflowing on a 4 GB reassembly).
    * ``max_pieces`` — the largest n accepted.  The protocol allows 65535;
      4096 still carries a full-size message on any transport whose limit is
      at least 101 characters (IRC's is about 400), while capping per-piece
      bookkeeping for floods of one-character pieces.
    * ``max_pending`` — concurrent incomplete reassemblies (one per v3 sender
      instance, plus one for v2).  A peer rarely has more than a few clients
      online; when full, the least recently extended one is dropped.
    * ``timeout`` — seconds without a new piece after which an incomplete
      reassembly is dropped.  Measured from the last piece, not the first,
      because rate-limited transports deliver long messages slowly.
    """

    max_message_size: int = 256 * 1024
    max_pieces: int = 4096
    max_pending: int = 4
    timeout: float = 120.0

    def __post_init__(self) -> None:
        if self.max_message_size < 1:
            raise ValueError("max_message_size must be positive")
        if not 1 <= self.max_pieces <= MAX_PIECES:
            raise ValueError(f"max_pieces must be in 1..{MAX_PIECES}")
        if self.max_pending < 1:
            raise ValueError("max_pending must be positive")
        if not (math.isfinite(self.timeout) and self.timeout > 0):
            raise ValueError("timeout must be a positive number of seconds")


@dataclass(slots=True)
class _Pending:
    n: int
    k: int
    pieces: list[str]
    size: int
    last_seen: float
    # For a message whose pieces come in the form fragments are sent in: the
    # header around k ("?OTR|sender|receiver," and ",nnnnn,"), and the whole
    # header the next piece has ("" when unknown).
    head: str = ""
    tail: str = ""
    expect: str = ""

    def expect_next(self) -> None:
        if self.head:
            self.expect = f"{self.head}{_PADDED[self.k + 1]}{self.tail}"


_INFINITY = math.inf


def _check_now(now: float) -> None:
    if not math.isfinite(now):
        raise ValueError("now must be a finite number of seconds")


class Reassembler:
    """Reassembles one peer's fragments, within :class:`FragmentLimits`.

    One pending message per v3 sender instance tag and one for v2, as libotr
    keeps one per connection context.  The caller routes first: fragments
    addressed to another instance (:meth:`Fragment.addressed_to`) should not
    be added.
    """

    __slots__ = ("_earliest_seen", "_last", "_limits", "_pending")

    def __init__(self, limits: FragmentLimits | None = None) -> None:
        self._limits = limits if limits is not None else FragmentLimits()
        # Keyed by v3 sender tag, or None for v2; insertion order is recency.
        self._pending: dict[int | None, _Pending] = {}
        # No later than the last_seen of any pending reassembly.
        self._earliest_seen = 0.0
        # The reassembly extended last, with its key (checked against
        # _pending before use, so it never outlives its entry).
        self._last: tuple[int | None, _Pending] | None = None

    @property
    def limits(self) -> FragmentLimits:
        return self._limits

    @property
    def pending(self) -> int:
        """Number of incomplete reassemblies held."""
        return len(self._pending)

    @property
    def buffered(self) -> int:
        """Characters held across all incomplete reassemblies."""
        return sum(p.size for p in self._pending.values())

    def clear(self) -> None:
        self._pending.clear()

    def expire(self, now: float) -> int:
        """Drop reassemblies idle for longer than the timeout; return how many."""
        _check_now(now)
        timeout = self._limits.timeout
        stale = [key for key, p in self._pending.items() if now - p.last_seen > timeout]
        for key in stale:
            del self._pending[key]
        self._earliest_seen = min((p.last_seen for p in self._pending.values()), default=now)
        return len(stale)

    def note_unfragmented(self, text: str | bytes) -> None:
        """Record that a message that is not a fragment arrived.

        As libotr does, an OTR message (one containing ``?OTR``) abandons the
        pending v2 reassembly; plain text and v3 reassemblies are unaffected.
        """
        at, _ = _marker_at(text)
        if at >= 0 and not is_fragment(text):
            self._pending.pop(None, None)

    def add(self, fragment: Fragment | str | bytes, now: float) -> str | None:
        """Add one fragment; return the reassembled message once complete.

        Returns None while incomplete, and when the fragment does not continue
        the pending message (which is then abandoned, as in libotr).  Raises
        RemoteProtocolError for a malformed fragment (state unchanged, as libotr
        ignores those), a v3 sender tag below 0x100, or a fragment that breaks a
        limit (that sender's pending message is then dropped).  Expired
        reassemblies are dropped first.
        """
        if isinstance(fragment, str):
            complete = self.add_next(fragment, now)
            if complete is not None:
                return complete or None
        if self._pending:
            self.expire(now)  # checks now too
        else:
            _check_now(now)
        header = ""
        if isinstance(fragment, Fragment):
            frag = fragment
        elif isinstance(fragment, str) and (fields := canonical_fields(fragment)) is not None:
            # In sent form: parsed once, its header kept for the next piece.
            frag = Fragment(*fields)
            header = fragment[: -len(frag.piece) - 1]
        else:
            frag = parse_fragment(fragment)
        if not frag.sender_tag_valid:
            raise RemoteProtocolError("fragment has a reserved sender instance tag")
        key = frag.sender_tag if frag.version == 3 else None
        return self.add_piece(key, frag.k, frag.n, frag.piece, now, header=header)

    def add_next(self, text: str, now: float) -> str | None:
        """Add ``text`` if, written the way fragments are sent, it is the next
        piece of the reassembly extended last: its header is that message's
        header with k one higher, and its piece is valid.

        Returns the reassembled message once complete, ``""`` while it is
        not, and None, with nothing changed, for any other text, or when a
        limit or the timeout could apply: :meth:`add` (or the caller's own
        parsing and :meth:`add_piece`) then takes it the general way.  The
        outcome is always the one :meth:`add` would give (a property test
        checks it); this is the receiving hot path, with no number parsed.
        """
        last = self._last
        if last is None:
            return None
        key, current = last
        expect = current.expect
        if (
            not expect
            or not text.startswith(expect)
            or text[-1] != ","
            or not now > -_INFINITY  # NaN too; +inf fails the timeout test
            or now - self._earliest_seen > self._limits.timeout
            or self._pending.get(key) is not current
        ):
            return None
        piece = text[len(expect) : -1]
        if not piece or "," in piece or "\x00" in piece or ("?" in piece and _piece_problem(piece)):
            return None
        size = current.size + len(piece)
        if size > self._limits.max_message_size:
            return None
        current.pieces.append(piece)
        current.size = size
        k = current.k = current.k + 1
        if k == current.n:
            del self._pending[key]
            return self._complete(current.pieces)
        if now < self._earliest_seen:
            self._earliest_seen = now
        current.last_seen = now
        current.expect = f"{current.head}{_PADDED[k + 1]}{current.tail}"
        if len(self._pending) > 1:  # keep the order of recency that eviction uses
            del self._pending[key]
            self._pending[key] = current
        return ""

    def add_piece(
        self, key: int | None, k: int, n: int, piece: str, now: float, *, header: str = ""
    ) -> str | None:
        """:meth:`add` for a fragment already parsed and checked (its sender
        tag for v3, None for v2): what the account's receiving path uses.
        ``header`` is the fragment's text before its piece when it is in the
        form fragments are sent in (see :func:`canonical_fields`), else ""."""
        if not -_INFINITY < now < _INFINITY:  # also refuses NaN
            raise ValueError("now must be a finite number of seconds")
        pending = self._pending
        limits = self._limits
        # _earliest_seen is at most every pending last_seen: only when even it
        # is stale can anything have expired.
        if pending and now - self._earliest_seen > limits.timeout:
            self.expire(now)
        current = pending.pop(key, None)

        if k == 1:
            # A first piece always starts over, whatever was pending.
            if n > limits.max_pieces:
                raise RemoteProtocolError(
                    f"fragmented message of {n} pieces exceeds the limit of {limits.max_pieces}"
                )
            self._check_size(len(piece))
            if n == 1:
                return self._complete([piece])
            while len(pending) >= limits.max_pending:
                del pending[next(iter(pending))]
            if not pending or now < self._earliest_seen:
                self._earliest_seen = now
            # A sent-form header ends "kkkkk,nnnnn,": k is the 5 digits
            # before the last 7 characters.  (Longer messages take the
            # general way for every piece.)
            if header and n < len(_PADDED):
                started = _Pending(n, 1, [piece], len(piece), now, header[:-12], header[-7:])
            else:
                started = _Pending(n, 1, [piece], len(piece), now)
            started.expect_next()
            pending[key] = started
            self._last = key, started
            return None

        if current is None or n != current.n or k != current.k + 1:
            return None  # out of sequence: the pending message (if any) is gone

        size = current.size + len(piece)
        if size > limits.max_message_size:
            self._check_size(size)
        current.pieces.append(piece)
        current.size = size
        current.k = k
        if k == n:
            return self._complete(current.pieces)
        if now < self._earliest_seen:
            self._earliest_seen = now
        current.last_seen = now
        current.expect_next()
        pending[key] = current
        self._last = key, current
        return None

    def _check_size(self, size: int) -> None:
        if size > self._limits.max_message_size:
            raise RemoteProtocolError(
                f"fragmented message exceeds {self._limits.max_message_size} characters"
            )

    @staticmethod
    def _complete(pieces: list[str]) -> str:
        message = "".join(pieces)
        # A marker split across pieces would still make a fragment of the
        # result.  (An encoded message has one '?', at the start: the search
        # for the markers runs only past a second one.)
        if message.startswith(_NESTED_MARKERS) or (
            message.find("?", 1) >= 0 and ("?OTR|" in message or "?OTR," in message)
        ):
            raise RemoteProtocolError("fragment inside a fragment")
        return message
