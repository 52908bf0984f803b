"""libgcrypt S-expressions: a parser and the two writers libotr's files need.

libotr keeps its private keys as an S-expression that it reads with
``gcry_sexp_new`` and writes with ``gcry_sexp_sprint(GCRYSEXP_FMT_ADVANCED)``.
This module reproduces both sides as libgcrypt 1.10 implements them, so that a
file libotr wrote can be read and written back byte for byte.

Reading (:func:`parse`) accepts every atom form libgcrypt's scanner accepts:

* tokens — ``[A-Za-z0-9-./_:*+=]``, not starting with a digit;
* quoted strings ``"..."`` with the escapes ``\\b \\t \\v \\n \\f \\r \\" \\' \\\\``,
  ``\\xHH``, three-digit octal ``\\ooo`` and backslash-newline continuations
  (``\\`` followed by CR, LF, CRLF or LFCR produces nothing); raw bytes,
  newlines included, stand for themselves;
* hexadecimal ``#..#`` (either case, whitespace allowed between digits, an
  even number of digits);
* base64 ``|..|``;
* length-prefixed verbatim data ``3:abc``; a length may also prefix a quoted,
  hex or base64 atom, where libgcrypt ignores it (so do we);
* display hints ``[..]``, which libgcrypt does not represent: the brackets
  are dropped and the atoms inside become ordinary list elements.

Two libgcrypt quirks are kept on purpose because they decide how some data is
written, and therefore whether a rewrite is byte-identical: the byte ``0x00``
counts as a token character (both when scanning and when choosing an
encoding), and a string containing ``0x00`` (but no other control character
outside the escapable ones) is written as a quoted string with ``\\x00``.

Stricter than libgcrypt, which accepts a sequence of expressions: the input
must be exactly one list, optionally surrounded by whitespace.  Nesting
depth, input size and atom size (libgcrypt stores atom lengths in 16 bits)
are bounded.  Every failure raises :class:`~offrecord.errors.StorageError`
naming the line; messages never quote atom contents, which may be secret.

Writing: :func:`dumps` is ``gcry_sexp_sprint`` in advanced mode — the choice
between token, quoted string and ``#hex#`` for each atom, the newlines and
indentation before nested lists, and the final newline.  :func:`dumps_canonical`
is the canonical (``3:abc``) form.
"""

from __future__ import annotations

import base64
import binascii
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final, Union

from offrecord.errors import StorageError

__all__ = [
    "MAX_ATOM_LENGTH",
    "MAX_DEPTH",
    "MAX_INPUT_SIZE",
    "Atom",
    "Node",
    "SList",
    "dumps",
    "dumps_canonical",
    "encode_atom",
    "find_token",
    "parse",
]

MAX_DEPTH: Final = 64
"""Deepest nesting :func:`parse` accepts (libotr's key file needs 4)."""

MAX_INPUT_SIZE: Final = 16 * 1024 * 1024
"""Largest input :func:`parse` accepts, in bytes."""

MAX_ATOM_LENGTH: Final = 0xFFFF
"""libgcrypt stores an atom's length in an unsigned 16-bit field."""

_WHITESPACE: Final = frozenset(b" \t\v\f\r\n")
_DIGITS: Final = frozenset(b"0123456789")
_ALPHA: Final = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_TOKEN_SPECIALS: Final = frozenset(b"-./_:*+=")
# libgcrypt tests membership with strchr(), which also "finds" the NUL byte.
_TOKEN_CHARS: Final = _ALPHA | _DIGITS | _TOKEN_SPECIALS | {0}
_HEX_DIGITS: Final = frozenset(b"0123456789abcdefABCDEF")
_OCTAL_DIGITS: Final = frozenset(b"01234567")
_BASE64_CHARS: Final = _ALPHA | _DIGITS | frozenset(b"+/=")
_SIMPLE_ESCAPES: Final = {
    ord("b"): 0x08,
    ord("t"): 0x09,
    ord("v"): 0x0B,
    ord("n"): 0x0A,
    ord("f"): 0x0C,
    ord("r"): 0x0D,
    ord('"'): ord('"'),
    ord("'"): ord("'"),
    ord("\\"): ord("\\"),
}
_ESCAPE_FOR: Final = {value: bytes((ord("\\"), key)) for key, value in _SIMPLE_ESCAPES.items()}
# Control bytes libgcrypt does not consider binary when choosing an encoding:
# the escapable ones and (strchr again) NUL.
_TOLERATED_CONTROLS: Final = frozenset(b"\x00\b\t\v\n\f\r")

_TOKEN_REPR_LIMIT: Final = 16


# ---------------------------------------------------------------------------
# The tree


@dataclass(frozen=True, slots=True, repr=False)
class Atom:
    """One data element.  ``line`` (1-based, 0 if built in code) is where it starts."""

    data: bytes
    line: int = field(default=0, compare=False)

    def __repr__(self) -> str:
        # Atoms may hold key material: only short tokens are shown.
        if len(self.data) <= _TOKEN_REPR_LIMIT and _encoding(self.data) == _TOKEN:
            return f"Atom({self.data!r})"
        return f"Atom(<{len(self.data)} bytes>)"


@dataclass(frozen=True, slots=True)
class SList:
    """A list of atoms and lists.  ``line`` is where its ``(`` is."""

    items: tuple[Node, ...]
    line: int = field(default=0, compare=False)

    @classmethod
    def of(cls, *items: Node | bytes | str) -> SList:
        """Build a list; ``bytes`` and ``str`` (UTF-8) items become atoms."""
        converted: list[Node] = []
        for item in items:
            if isinstance(item, str):
                converted.append(Atom(item.encode("utf-8")))
            elif isinstance(item, bytes):
                converted.append(Atom(item))
            else:
                converted.append(item)
        return cls(tuple(converted))

    @property
    def head(self) -> bytes | None:
        """The first element's data if it is an atom, else ``None``."""
        if self.items and isinstance(self.items[0], Atom):
            return self.items[0].data
        return None

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Node]:
        return iter(self.items)

    def __getitem__(self, index: int) -> Node:
        return self.items[index]


Node = Union[Atom, SList]  # noqa: UP007 - a runtime alias, usable in isinstance checks


def find_token(node: SList, token: bytes) -> SList | None:
    """``gcry_sexp_find_token``: the first list, in document order, whose first
    element is the atom ``token``.  ``node`` itself is included."""
    stack: list[SList] = [node]
    while stack:
        current = stack.pop()
        if current.head == token:
            return current
        stack.extend(item for item in reversed(current.items) if isinstance(item, SList))
    return None


# ---------------------------------------------------------------------------
# Parsing


class _Scanner:
    def __init__(self, data: bytes, path: str | None) -> None:
        self.data = data
        self.path = path
        self._newlines: list[int] | None = None

    def line_of(self, pos: int) -> int:
        if self._newlines is None:
            self._newlines = [i for i, byte in enumerate(self.data) if byte == 0x0A]
        return bisect_left(self._newlines, pos) + 1

    def error(self, message: str, pos: int) -> StorageError:
        return StorageError(message, path=self.path, line=self.line_of(pos))


def parse(
    data: bytes,
    *,
    path: str | None = None,
    max_depth: int = MAX_DEPTH,
    max_size: int = MAX_INPUT_SIZE,
) -> SList:
    """Parse one S-expression list from ``data`` (see the module docstring).

    ``path`` only names the source in error messages.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError("parse() takes bytes")
    data = bytes(data)
    scanner = _Scanner(data, path)
    if len(data) > max_size:
        raise StorageError(f"S-expression is larger than {max_size} bytes", path=path)

    n = len(data)
    i = 0
    stack: list[tuple[list[Node], int]] = []  # (items so far, position of "(")
    result: SList | None = None
    hint_at: int | None = None
    while i < n:
        c = data[i]
        if c in _WHITESPACE:
            i += 1
        elif c == 0x28:  # (
            if hint_at is not None:
                raise scanner.error("'(' inside a display hint", i)
            if result is not None:
                raise scanner.error("data after the end of the S-expression", i)
            if len(stack) >= max_depth:
                raise scanner.error(f"S-expression nested deeper than {max_depth}", i)
            stack.append(([], i))
            i += 1
        elif c == 0x29:  # )
            if hint_at is not None:
                raise scanner.error("')' inside a display hint", i)
            if not stack:
                raise scanner.error("unmatched ')'", i)
            items, start = stack.pop()
            finished = SList(tuple(items), scanner.line_of(start))
            if stack:
                stack[-1][0].append(finished)
            else:
                result = finished
            i += 1
        elif c == 0x5B:  # [
            if not stack:
                raise scanner.error("display hint outside a list", i)
            if hint_at is not None:
                raise scanner.error("nested display hint", i)
            hint_at = i
            i += 1
        elif c == 0x5D:  # ]
            if hint_at is None:
                raise scanner.error("']' without '['", i)
            hint_at = None
            i += 1
        else:
            if not stack:
                if result is not None:
                    raise scanner.error("data after the end of the S-expression", i)
                raise scanner.error("expected '(' at the start of the S-expression", i)
            atom, i = _scan_atom(scanner, i)
            stack[-1][0].append(atom)

    if stack:
        _, start = stack[-1]
        raise StorageError(
            f"unexpected end of data: {len(stack)} list(s) not closed, the innermost "
            f"opened on line {scanner.line_of(start)} (truncated file?)",
            path=path,
            line=scanner.line_of(n),
        )
    if hint_at is not None:
        raise scanner.error("display hint not closed", hint_at)
    if result is None:
        raise StorageError("no S-expression found (empty input)", path=path, line=1)
    return result


def _scan_atom(scanner: _Scanner, start: int) -> tuple[Atom, int]:
    data = scanner.data
    c = data[start]
    line = scanner.line_of(start)
    if c in _DIGITS:
        return _scan_length_prefixed(scanner, start, line)
    if c in _TOKEN_CHARS:
        end = start + 1
        while end < len(data) and data[end] in _TOKEN_CHARS:
            end += 1
        return _checked(scanner, data[start:end], start, line), end
    if c == 0x22:  # "
        return _scan_quoted(scanner, start, line)
    if c == 0x23:  # #
        return _scan_hex(scanner, start, line)
    if c == 0x7C:  # |
        return _scan_base64(scanner, start, line)
    if c in b"{&\\":
        raise scanner.error(f"reserved punctuation {chr(c)!r}", start)
    raise scanner.error(f"unexpected byte 0x{c:02x}", start)


def _checked(scanner: _Scanner, value: bytes, start: int, line: int) -> Atom:
    if len(value) > MAX_ATOM_LENGTH:
        raise scanner.error(f"atom longer than {MAX_ATOM_LENGTH} bytes", start)
    return Atom(value, line)


def _scan_length_prefixed(scanner: _Scanner, start: int, line: int) -> tuple[Atom, int]:
    data = scanner.data
    if data[start] == 0x30:
        raise scanner.error("a length prefix may not start with 0", start)
    end = start
    while end < len(data) and data[end] in _DIGITS:
        end += 1
        if end - start > 10:
            raise scanner.error("length prefix too long", start)
    if end >= len(data):
        raise scanner.error("unexpected end of data after a length prefix", start)
    marker = data[end]
    if marker == 0x3A:  # ':'
        length = int(data[start:end])
        body = end + 1
        if length > len(data) - body:
            raise scanner.error("verbatim atom runs past the end of the data", start)
        if length > MAX_ATOM_LENGTH:
            raise scanner.error(f"atom longer than {MAX_ATOM_LENGTH} bytes", start)
        return Atom(data[body : body + length], line), body + length
    # libgcrypt accepts and ignores a length before the other forms.
    if marker == 0x22:
        return _scan_quoted(scanner, end, line)
    if marker == 0x23:
        return _scan_hex(scanner, end, line)
    if marker == 0x7C:
        return _scan_base64(scanner, end, line)
    raise scanner.error("a length prefix must be followed by ':', '\"', '#' or '|'", end)


def _scan_quoted(scanner: _Scanner, start: int, line: int) -> tuple[Atom, int]:
    data = scanner.data
    n = len(data)
    out = bytearray()
    j = start + 1
    while True:
        if j >= n or (data[j] == 0x5C and j + 1 >= n):
            raise StorageError(
                f"quoted string opened on line {line} is not closed (truncated file?)",
                path=scanner.path,
                line=scanner.line_of(n),
            )
        c = data[j]
        if c == 0x22:
            j += 1
            break
        if c != 0x5C:  # not a backslash: the byte stands for itself
            out.append(c)
            j += 1
            continue
        e = data[j + 1]
        simple = _SIMPLE_ESCAPES.get(e)
        if simple is not None:
            out.append(simple)
            j += 2
        elif e in _OCTAL_DIGITS:
            digits = data[j + 1 : j + 4]
            if len(digits) != 3 or any(d not in _OCTAL_DIGITS for d in digits):
                raise scanner.error("bad octal escape in quoted string", j)
            out.append(int(digits, 8) & 0xFF)  # libgcrypt keeps the low 8 bits
            j += 4
        elif e == 0x78:  # x
            digits = data[j + 2 : j + 4]
            if len(digits) != 2 or any(d not in _HEX_DIGITS for d in digits):
                raise scanner.error("bad \\x escape in quoted string", j)
            out.append(int(digits, 16))
            j += 4
        elif e in (0x0D, 0x0A):  # line continuation: \CR, \LF, \CRLF, \LFCR
            j += 2
            if j < n and data[j] in (0x0D, 0x0A) and data[j] != e:
                j += 1
        else:
            raise scanner.error("unknown escape in quoted string", j)
    return _checked(scanner, bytes(out), start, line), j


def _scan_hex(scanner: _Scanner, start: int, line: int) -> tuple[Atom, int]:
    data = scanner.data
    end = data.find(b"#", start + 1)
    if end < 0:
        raise StorageError(
            f"hex string opened on line {line} is not closed (truncated file?)",
            path=scanner.path,
            line=scanner.line_of(len(data)),
        )
    digits = bytearray()
    for k in range(start + 1, end):
        c = data[k]
        if c in _HEX_DIGITS:
            digits.append(c)
        elif c not in _WHITESPACE:
            raise scanner.error("bad character in hex string", k)
    if len(digits) % 2:
        raise scanner.error("odd number of digits in hex string", end)
    return _checked(scanner, bytes.fromhex(digits.decode("ascii")), start, line), end + 1


def _scan_base64(scanner: _Scanner, start: int, line: int) -> tuple[Atom, int]:
    data = scanner.data
    end = data.find(b"|", start + 1)
    if end < 0:
        raise StorageError(
            f"base64 string opened on line {line} is not closed (truncated file?)",
            path=scanner.path,
            line=scanner.line_of(len(data)),
        )
    body = data[start + 1 : end]
    for k, c in enumerate(body):
        if c not in _BASE64_CHARS:
            raise scanner.error("bad character in base64 string", start + 1 + k)
    stripped = body.rstrip(b"=")
    if b"=" in stripped or len(body) - len(stripped) > 2 or len(stripped) % 4 == 1:
        raise scanner.error("malformed base64 string", start)
    try:
        value = base64.b64decode(stripped + b"=" * (-len(stripped) % 4), validate=True)
    except binascii.Error:
        raise scanner.error("malformed base64 string", start) from None
    return _checked(scanner, value, start, line), end + 1


# ---------------------------------------------------------------------------
# Writing

_BINARY: Final = 0
_STRING: Final = 1
_TOKEN: Final = 2


def _encoding(data: bytes) -> int:
    """libgcrypt's ``suitable_encoding``: hex, quoted string or bare token."""
    if not data:
        return _STRING
    first = data[0]
    if first & 0x80 or first == 0:
        return _BINARY  # looks like a negative or zero-padded number
    maybe_token = True
    for byte in data:
        if (byte < 0x20 or 0x7F <= byte <= 0xA0) and byte not in _TOLERATED_CONTROLS:
            return _BINARY
        if maybe_token and byte not in _TOKEN_CHARS:
            maybe_token = False
    if maybe_token and first not in _DIGITS:
        return _TOKEN
    return _STRING


def _quote(data: bytes) -> bytes:
    out = bytearray(b'"')
    for byte in data:
        escape = _ESCAPE_FOR.get(byte)
        if escape is not None:
            out += escape
        elif byte < 0x20 or 0x7F <= byte <= 0xA0:
            out += b"\\x%02x" % byte
        else:
            out.append(byte)
    out += b'"'
    return bytes(out)


def encode_atom(data: bytes) -> bytes:
    """One atom as ``gcry_sexp_sprint`` writes it in advanced mode."""
    if len(data) > MAX_ATOM_LENGTH:
        raise ValueError(f"libgcrypt cannot hold an atom longer than {MAX_ATOM_LENGTH} bytes")
    kind = _encoding(data)
    if kind == _TOKEN:
        return bytes(data)
    if kind == _STRING:
        return _quote(data)
    return b"#" + data.hex().upper().encode("ascii") + b"#"


_OPEN: Final = object()
_CLOSE: Final = object()


def _events(node: SList) -> Iterator[object]:
    """Flatten to open/atom/close events without recursion."""
    stack: list[Iterator[Node]] = [iter((node,))]
    while stack:
        item = next(stack[-1], None)
        if item is None:
            stack.pop()
            if stack:
                yield _CLOSE
        elif isinstance(item, SList):
            yield _OPEN
            stack.append(iter(item.items))
        else:
            yield item


def dumps(node: SList) -> bytes:
    """``gcry_sexp_sprint(GCRYSEXP_FMT_ADVANCED)``, final newline included.

    A nested list starts on a new line indented by its depth; a list that
    closes before another element continues on a new line at the outer
    depth; atoms are separated by one space, also before a nested list.
    """
    if not isinstance(node, SList):
        raise TypeError("dumps() takes an SList")
    out = bytearray()
    indent = 0
    events = _events(node)
    current = next(events, None)
    while current is not None:
        following = next(events, None)
        if current is _OPEN:
            if indent:
                out += b"\n" + b" " * indent
            out += b"("
            indent += 1
        elif current is _CLOSE:
            out += b")"
            indent -= 1
            if following is not None and following is not _OPEN:
                out += b"\n" + b" " * indent
        else:
            assert isinstance(current, Atom)
            out += encode_atom(current.data)
            if following is not _CLOSE:
                out += b" "
        current = following
    out += b"\n"
    return bytes(out)


def dumps_canonical(node: SList) -> bytes:
    """The canonical form: ``(`` / ``)`` and ``<length>:<bytes>`` atoms, nothing else."""
    if not isinstance(node, SList):
        raise TypeError("dumps_canonical() takes an SList")
    out = bytearray()
    for event in _events(node):
        if event is _OPEN:
            out += b"("
        elif event is _CLOSE:
            out += b")"
        else:
            assert isinstance(event, Atom)
            if len(event.data) > MAX_ATOM_LENGTH:
                raise ValueError(
                    f"libgcrypt cannot hold an atom longer than {MAX_ATOM_LENGTH} bytes"
                )
            if not event.data:
                out += b'""'  # a length prefix may not be 0
            else:
                out += b"%d:" % len(event.data) + event.data
    return bytes(out)
