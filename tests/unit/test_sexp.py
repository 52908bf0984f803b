"""Unit tests for offrecord.storage.sexp (libgcrypt S-expressions)."""

from __future__ import annotations

import pytest

from offrecord.errors import StorageError
from offrecord.storage import sexp
from offrecord.storage.sexp import Atom, SList, dumps, dumps_canonical, encode_atom, parse


def atoms(node: SList) -> list[bytes]:
    return [item.data for item in node.items if isinstance(item, Atom)]


# ---------------------------------------------------------------------------
# Atom forms


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (b"(abc)", b"abc"),
        (b"(private-key)", b"private-key"),
        (b"(a.b/c_d:e*f+g=h)", b"a.b/c_d:e*f+g=h"),
        (b"(-1)", b"-1"),
        (b"(x9)", b"x9"),
        (b'("hello world")', b"hello world"),
        (b'("")', b""),
        (b"(#414243#)", b"ABC"),
        (b"(#61 62\n63#)", b"abc"),
        (b"(#aBcD#)", b"\xab\xcd"),
        (b"(##)", b""),
        (b"(|YWJj|)", b"abc"),
        (b"(|YWI=|)", b"ab"),
        (b"(|YWI|)", b"ab"),
        (b"(||)", b""),
        (b"(3:abc)", b"abc"),
        (b"(3:a c)", b"a c"),
        (b"(3:()))", b"())"),
        (b"(10:0123456789)", b"0123456789"),
        (b'(5"abc")', b"abc"),  # libgcrypt ignores a length before other forms
        (b"(2#414243#)", b"ABC"),
        (b"(9|YWJj|)", b"abc"),
    ],
)
def test_atom_forms(text: bytes, value: bytes) -> None:
    assert atoms(parse(text)) == [value]


@pytest.mark.parametrize(
    ("escape", "value"),
    [
        (rb"\b", b"\b"),
        (rb"\t", b"\t"),
        (rb"\v", b"\v"),
        (rb"\n", b"\n"),
        (rb"\f", b"\f"),
        (rb"\r", b"\r"),
        (rb"\"", b'"'),
        (rb"\'", b"'"),
        (rb"\\", b"\\"),
        (rb"\x41", b"A"),
        (rb"\xfF", b"\xff"),
        (rb"\x00", b"\x00"),
        (rb"\101", b"A"),
        (rb"\000", b"\x00"),
        (rb"\377", b"\xff"),
        (rb"\777", b"\xff"),  # libgcrypt keeps the low 8 bits
        (b"\\\n", b""),  # line continuations
        (b"\\\r", b""),
        (b"\\\r\n", b""),
        (b"\\\n\r", b""),
    ],
)
def test_quoted_string_escapes(escape: bytes, value: bytes) -> None:
    assert atoms(parse(b'("<' + escape + b'>")')) == [b"<" + value + b">"]


def test_quoted_string_keeps_raw_bytes() -> None:
    raw = bytes(b for b in range(256) if b not in b'"\\')
    assert atoms(parse(b'("' + raw + b'")')) == [raw]


def test_continuation_only_swallows_one_line_break() -> None:
    assert atoms(parse(b'("a\\\n\nb")')) == [b"a\nb"]
    assert atoms(parse(b'("a\\\r\n\rb")')) == [b"a\rb"]


def test_display_hints_are_dropped_like_libgcrypt() -> None:
    node = parse(b"(a [text/plain]b [x y]c)")
    assert atoms(node) == [b"a", b"text/plain", b"b", b"x", b"y", b"c"]


def test_nul_is_a_token_character_like_libgcrypt() -> None:
    assert atoms(parse(b"(a\x00b c)")) == [b"a\x00b", b"c"]


def test_atoms_end_where_the_next_form_begins() -> None:
    node = parse(b'(abc"def"#41#|Qg==|3:xyzghi(j)k)')
    assert node.items == (
        Atom(b"abc"),
        Atom(b"def"),
        Atom(b"A"),
        Atom(b"B"),
        Atom(b"xyz"),
        Atom(b"ghi"),
        SList((Atom(b"j"),)),
        Atom(b"k"),
    )


def test_nesting_and_whitespace() -> None:
    node = parse(b" \t\n(a (b (c d) ()) \v\f\r e)\n\n")
    assert node == SList.of(b"a", SList.of(b"b", SList.of(b"c", b"d"), SList(())), b"e")
    assert parse(b"()") == SList(())


def test_lines_are_recorded() -> None:
    node = parse(b"(a\n (b\n  c)\n d)")
    assert node.line == 1
    inner = node[1]
    assert isinstance(inner, SList)
    assert inner.line == 2
    assert inner[1].line == 3
    assert node[2].line == 4


def test_line_of_multiline_atom_is_its_start() -> None:
    node = parse(b'(a\n"x\ny"\nz)')
    assert [item.line for item in node.items] == [1, 2, 4]


# ---------------------------------------------------------------------------
# Errors


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        (b"", 1, "empty"),
        (b"   \n", 1, "empty"),
        (b"abc", 1, "expected '('"),
        (b"(a", 1, "not closed"),
        (b"(a\n(b\n", 3, "2 list(s) not closed, the innermost opened on line 2"),
        (b"(a))", 1, "unmatched ')'"),
        (b")", 1, "unmatched ')'"),
        (b"(a)(b)", 1, "after the end"),
        (b"(a)\nb", 2, "after the end"),
        (b'(a "bc)', 1, "quoted string opened on line 1 is not closed"),
        (b'(a "bc\\', 1, "not closed"),
        (b'(a "\\q")', 1, "unknown escape"),
        (b'(a "\\x4")', 1, "bad \\x escape"),
        (b'(a "\\x4g")', 1, "bad \\x escape"),
        (b'(a "\\18")', 1, "bad octal escape"),
        (b'(a "\\1")', 1, "bad octal escape"),
        (b"(a #414#)", 1, "odd number"),
        (b"(a #41G2#)", 1, "bad character in hex"),
        (b"(a\n#4142)", 2, "hex string opened on line 2 is not closed"),
        (b"(a |YW Jj|)", 1, "bad character in base64"),
        (b"(a |Y|)", 1, "malformed base64"),
        (b"(a |Y=WJ|)", 1, "malformed base64"),
        (b"(a |YWJj)", 1, "base64 string opened on line 1 is not closed"),
        (b"(a 0:)", 1, "may not start with 0"),
        (b"(a 03:abc)", 1, "may not start with 0"),
        (b"(a 5:abc)", 1, "runs past the end"),
        (b"(a 12)", 1, "must be followed by"),
        (b"(a 12", 1, "end of data after a length prefix"),
        (b"(a 99999999999:x)", 1, "length prefix too long"),
        (b"(a {b})", 1, "reserved punctuation"),
        (b"(a &b)", 1, "reserved punctuation"),
        (b"(a \\b)", 1, "reserved punctuation"),
        (b"(a %b)", 1, "unexpected byte 0x25"),
        (b"(a \xffb)", 1, "unexpected byte 0xff"),
        (b"(a [b (c)])", 1, "'(' inside a display hint"),
        (b"(a [b)", 1, "')' inside a display hint"),
        (b"(a [[b]])", 1, "nested display hint"),
        (b"(a b])", 1, "']' without '['"),
        (b"[a](b)", 1, "display hint outside a list"),
    ],
)
def test_errors_name_the_line(text: bytes, line: int, fragment: str) -> None:
    with pytest.raises(StorageError) as info:
        parse(text, path="keys.sexp")
    assert info.value.path == "keys.sexp"
    assert info.value.line == line
    assert fragment in str(info.value)
    assert str(info.value).startswith(f"keys.sexp:{line}: ")


def test_depth_is_bounded() -> None:
    assert parse(b"(" * 64 + b")" * 64)
    with pytest.raises(StorageError, match="nested deeper than 64"):
        parse(b"(" * 65 + b")" * 65)
    with pytest.raises(StorageError, match="nested deeper than 3"):
        parse(b"((((a))))", max_depth=3)


def test_size_is_bounded() -> None:
    with pytest.raises(StorageError, match="larger than 10 bytes"):
        parse(b"(" + b"a" * 20 + b")", max_size=10)


def test_atom_length_is_bounded_like_libgcrypt() -> None:
    ok = b"a" * sexp.MAX_ATOM_LENGTH
    assert atoms(parse(b"(" + ok + b")")) == [ok]
    too_long = b"a" * (sexp.MAX_ATOM_LENGTH + 1)
    for text in (
        b"(" + too_long + b")",
        b'("' + too_long + b'")',
        b"(%d:" % len(too_long) + too_long + b")",
        b"(#" + too_long.hex().encode() + b"#)",
    ):
        with pytest.raises(StorageError, match="longer than 65535"):
            parse(text)
    with pytest.raises(ValueError, match="65535"):
        encode_atom(too_long)
    with pytest.raises(ValueError, match="65535"):
        dumps_canonical(SList.of(too_long))


def test_error_messages_do_not_quote_data() -> None:
    secret = b"#00112233445566778899AABBCCDDEEFF0011223G#"
    with pytest.raises(StorageError) as info:
        parse(b"(x " + secret + b")")
    assert "0011" not in str(info.value)


def test_parse_rejects_str() -> None:
    with pytest.raises(TypeError):
        parse("(a)")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# Writing


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (b"", b'""'),
        (b"abc", b"abc"),
        (b"prpl-jabber", b"prpl-jabber"),
        (b"a.b/c_d:e*f+g=h", b"a.b/c_d:e*f+g=h"),
        (b"-", b"-"),
        (b"1abc", b'"1abc"'),  # a token cannot start with a digit
        (b"alice@example.org", b'"alice@example.org"'),
        (b"a b", b'"a b"'),
        (b"q\"b\\s'", b'"q\\"b\\\\s\\\'"'),
        (b"a\b\t\v\n\f\rz", b'"a\\b\\t\\v\\n\\f\\rz"'),
        (b"a\x00 b", b'"a\\x00 b"'),  # NUL does not make it binary ...
        (b"a\x00b", b"a\x00b"),  # ... and even counts as a token character
        (b"caf\xc3\xa9", b'"caf\xc3\xa9"'),  # bytes above 0xa0 are printable
        (b"\xc5\x9bx", b"#C59B78#"),  # top bit of the first byte: binary
        (b"x\xc5\x9b", b"#78C59B#"),  # 0x7f-0xa0: binary
        (b"a\x7f", b"#617F#"),
        (b"a\x01", b"#6101#"),
        (b"\x00abc", b"#00616263#"),  # leading zero: binary
        (b"\x7f", b"#7F#"),
    ],
)
def test_encode_atom_chooses_like_libgcrypt(value: bytes, encoded: bytes) -> None:
    assert encode_atom(value) == encoded
    assert atoms(parse(b"(" + encoded + b")")) == [value]


def test_dumps_layout_matches_gcry_sexp_sprint() -> None:
    key = SList.of(
        "private-key",
        SList.of("dsa", SList.of("p", b"\x00\x81"), SList.of("x", b"\x12")),
    )
    assert dumps(key) == (b"(private-key \n (dsa \n  (p #0081#)\n  (x #12#)\n  )\n )\n")
    assert dumps(SList.of("name", "alice@example.org")) == b'(name "alice@example.org")\n'
    assert dumps(SList(())) == b"()\n"
    assert dumps(SList.of("a", SList(()))) == b"(a \n ()\n )\n"
    assert dumps(SList.of(SList.of("a"), "b", SList.of("c"), SList.of("d"))) == (
        b"(\n (a)\n b \n (c)\n (d)\n )\n"
    )


def test_dumps_canonical() -> None:
    node = SList.of("a", b"", SList.of(b"\x00\xff", "bc"), SList(()))
    assert dumps_canonical(node) == b'(1:a""(2:\x00\xff2:bc)())'
    assert parse(dumps_canonical(node)) == node


def test_writers_reject_non_lists() -> None:
    with pytest.raises(TypeError):
        dumps(Atom(b"a"))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        dumps_canonical(Atom(b"a"))  # type: ignore[arg-type]


def test_writers_handle_deep_nesting_without_recursion() -> None:
    node = SList(())
    for _ in range(5000):
        node = SList((node,))
    assert dumps_canonical(node) == b"(" * 5001 + b")" * 5001
    assert dumps(node).count(b"(") == 5001


# ---------------------------------------------------------------------------
# The tree


def test_find_token_is_document_order_and_includes_self() -> None:
    node = parse(b"(top (a (name first)) (name second) (b (c (name third))))")
    found = sexp.find_token(node, b"name")
    assert found is not None
    assert atoms(found) == [b"name", b"first"]
    assert sexp.find_token(node, b"top") is node
    assert sexp.find_token(node, b"missing") is None
    assert sexp.find_token(node, b"first") is None  # atoms in second place do not count


def test_equality_ignores_lines() -> None:
    assert parse(b"(a\n b)") == parse(b"(a b)")
    assert Atom(b"x", 3) == Atom(b"x", 9)


def test_slist_helpers() -> None:
    node = SList.of("a", b"b", Atom(b"c"), SList.of("d"))
    assert len(node) == 4
    assert node.head == b"a"
    assert [type(item).__name__ for item in node] == ["Atom", "Atom", "Atom", "SList"]
    assert SList((SList(()),)).head is None
    assert SList(()).head is None


def test_repr_hides_everything_but_short_tokens() -> None:
    assert repr(Atom(b"dsa")) == "Atom(b'dsa')"
    secret = bytes(range(1, 21))
    assert repr(Atom(secret)) == "Atom(<20 bytes>)"
    assert repr(Atom(b"alice@example.org")) == "Atom(<17 bytes>)"
    node = parse(b"(x #" + secret.hex().encode() + b"#)")
    assert secret.hex() not in repr(node).lower()
    assert "20 bytes" in repr(node)
