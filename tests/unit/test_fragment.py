"""Unit tests for offrecord.wire.fragment: formats, strict parsing, reassembly, limits."""

from __future__ import annotations

import gc
import tracemalloc

import pytest

from offrecord.errors import RemoteProtocolError
from offrecord.wire.fragment import (
    MAX_PIECES,
    Fragment,
    FragmentLimits,
    Reassembler,
    fragment_message,
    is_fragment,
    min_max_size,
    parse_fragment,
)

ALICE = 0x1234
BOB = 0xABCDEF01
MESSAGE = "?OTR:" + "A" * 100 + "."


def v3(k: int, n: int, piece: str, sender: int = ALICE, receiver: int = 0) -> str:
    return Fragment(3, sender, receiver, k, n, piece).encode()


def v2(k: int, n: int, piece: str) -> str:
    return Fragment(2, 0, 0, k, n, piece).encode()


# --- splitting ---------------------------------------------------------------

# Produced by libotr 4.1.1's otrl_proto_fragment_create for the same inputs.
LIBOTR_V3_MMS60 = [
    "?OTR|00001234|abcdef01,00001,00005,?OTR:AAAAAAAAAAAAAAAAAA,",
    "?OTR|00001234|abcdef01,00002,00005,AAAAAAAAAAAAAAAAAAAAAAA,",
    "?OTR|00001234|abcdef01,00003,00005,AAAAAAAAAAAAAAAAAAAAAAA,",
    "?OTR|00001234|abcdef01,00004,00005,AAAAAAAAAAAAAAAAAAAAAAA,",
    "?OTR|00001234|abcdef01,00005,00005,AAAAAAAAAAAAA.,",
]
LIBOTR_V2_MMS40 = [
    "?OTR,00001,00006,?OTR:AAAAAAAAAAAAAAAA,",
    "?OTR,00002,00006,AAAAAAAAAAAAAAAAAAAAA,",
    "?OTR,00003,00006,AAAAAAAAAAAAAAAAAAAAA,",
    "?OTR,00004,00006,AAAAAAAAAAAAAAAAAAAAA,",
    "?OTR,00005,00006,AAAAAAAAAAAAAAAAAAAAA,",
    "?OTR,00006,00006,.,",
]


def test_v3_fragments_match_libotr() -> None:
    frags = fragment_message(MESSAGE, 60, version=3, sender_tag=ALICE, receiver_tag=BOB)
    assert frags == LIBOTR_V3_MMS60


def test_v2_fragments_match_libotr() -> None:
    assert fragment_message(MESSAGE, 40, version=2) == LIBOTR_V2_MMS40


def test_v2_ignores_instance_tags() -> None:
    frags = fragment_message(MESSAGE, 40, version=2, sender_tag=ALICE, receiver_tag=BOB)
    assert frags == LIBOTR_V2_MMS40


@pytest.mark.parametrize("max_size", [len(MESSAGE), len(MESSAGE) + 1, 10_000])
def test_message_within_limit_is_unchanged(max_size: int) -> None:
    assert fragment_message(MESSAGE, max_size, version=3, sender_tag=ALICE) == [MESSAGE]


@pytest.mark.parametrize("message", ["hello " * 50, "?OTRv3? " * 30, "?OTR Error: " + "x" * 200])
def test_only_encoded_messages_are_split(message: str) -> None:
    assert fragment_message(message, 40, version=2) == [message]


@pytest.mark.parametrize(("version", "minimum"), [(3, 38), (2, 20)])
def test_minimum_max_size(version: int, minimum: int) -> None:
    assert min_max_size(version) == minimum
    tag = ALICE if version == 3 else 0
    frags = fragment_message(MESSAGE, minimum, version=version, sender_tag=tag)
    assert len(frags) == len(MESSAGE)
    assert all(len(f) == minimum - 1 for f in frags)
    with pytest.raises(ValueError, match=f"minimum is {minimum}"):
        fragment_message(MESSAGE, minimum - 1, version=version, sender_tag=tag)


@pytest.mark.parametrize("max_size", [38, 39, 50, 60, 100, 105])
def test_every_fragment_fits(max_size: int) -> None:
    for f in fragment_message(MESSAGE, max_size, version=3, sender_tag=ALICE, receiver_tag=BOB):
        assert len(f) <= max_size


def test_too_many_fragments() -> None:
    big = "?OTR:" + "A" * MAX_PIECES + "."
    with pytest.raises(ValueError, match="65535"):
        fragment_message(big, min_max_size(2), version=2)
    fits = "?OTR:" + "A" * (MAX_PIECES - 6) + "."
    frags = fragment_message(fits, min_max_size(2), version=2)
    assert len(frags) == MAX_PIECES
    assert frags[-1] == "?OTR,65535,65535,.,"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"version": 1}, "version"),
        ({"version": 4}, "version"),
        ({"version": 3}, "sender"),
        ({"version": 3, "sender_tag": 0xFF}, "sender"),
        ({"version": 3, "sender_tag": 1 << 32}, "sender"),
        ({"version": 3, "sender_tag": ALICE, "receiver_tag": 0x42}, "receiver"),
        ({"version": 3, "sender_tag": ALICE, "receiver_tag": -1}, "receiver"),
    ],
)
def test_bad_arguments(kwargs: dict[str, int], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        fragment_message(MESSAGE, 60, **kwargs)


def test_encoded_message_with_comma_is_refused() -> None:
    with pytest.raises(ValueError, match=","):
        fragment_message("?OTR:AAAA,AAAA" + "A" * 100 + ".", 40, version=2)


# --- parsing -------------------------------------------------------------------


def test_parse_v3() -> None:
    f = parse_fragment("?OTR|00001234|abcdef01,00002,00005,AAAA,")
    assert f == Fragment(3, 0x1234, 0xABCDEF01, 2, 5, "AAAA")


def test_parse_v2() -> None:
    assert parse_fragment("?OTR,00006,00006,.,") == Fragment(2, 0, 0, 6, 6, ".")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("?OTR,1,2,x,", (0, 0, 1, 2)),
        ("?OTR,0000000000000001,000000000000000002,x,", (0, 0, 1, 2)),
        ("?OTR,65535,65535,x,", (0, 0, 65535, 65535)),
        ("?OTR|100|0,1,1,x,", (0x100, 0, 1, 1)),
        ("?OTR|ABCDEF01|FFFFFFFF,1,1,x,", (0xABCDEF01, 0xFFFFFFFF, 1, 1)),
        ("?OTR|aBcDeF01|00000000000000000100,1,1,x,", (0xABCDEF01, 0x100, 1, 1)),
    ],
)
def test_leading_zeros_and_hex_case(text: str, expected: tuple[int, int, int, int]) -> None:
    f = parse_fragment(text)
    assert (f.sender_tag, f.receiver_tag, f.k, f.n) == expected


def test_text_around_the_fragment_is_ignored() -> None:
    # libotr finds "?OTR" anywhere and stops reading after the piece's comma.
    f = parse_fragment("hi there ?OTR,1,2,AAAA, trailing")
    assert (f.k, f.n, f.piece) == (1, 2, "AAAA")


def test_bytes_input() -> None:
    assert parse_fragment(b"?OTR,1,2,AAAA,").piece == "AAAA"
    with pytest.raises(RemoteProtocolError, match="UTF-8"):
        parse_fragment(b"?OTR,1,2,\xff\xfe,")


@pytest.mark.parametrize(
    "text",
    [
        # k = 0, n = 0, k > n
        "?OTR,0,1,x,",
        "?OTR,1,0,x,",
        "?OTR,0,0,x,",
        "?OTR,3,2,x,",
        "?OTR|100|0,0,1,x,",
        "?OTR|100|0,2,1,x,",
        # n > 65535, including values libotr's %hu would wrap to valid ones
        "?OTR,1,65536,x,",
        "?OTR,1,65537,x,",
        "?OTR,1,99999,x,",
        "?OTR,65537,65537,x,",
        "?OTR,1,4294967295,x,",
        "?OTR,1,4294967297,x,",
        "?OTR,1," + "9" * 5000 + ",x,",
        # signs and blanks that sscanf would skip or accept
        "?OTR,+1,2,x,",
        "?OTR, 1,2,x,",
        "?OTR,1,-1,x,",
        "?OTR,1x,2,x,",
        "?OTR,,2,x,",
        "?OTR,\u0661,2,x,",
        # non-hex or out-of-range instance tags
        "?OTR|zz|0,1,1,x,",
        "?OTR|0x100|0,1,1,x,",
        "?OTR| 100|0,1,1,x,",
        "?OTR|+100|0,1,1,x,",
        "?OTR|-1|0,1,1,x,",
        "?OTR||0,1,1,x,",
        "?OTR|100|,1,1,x,",
        "?OTR|1ffffffff|0,1,1,x,",
        "?OTR|100|100000000,1,1,x,",
        "?OTR|100,1,1,x,",
        "?OTR|100|0|1,1,x,",
        # missing trailing comma, empty piece, NUL
        "?OTR,1,2,x",
        "?OTR,1,2,",
        "?OTR,1,2,,",
        "?OTR|100|0,1,1,,",
        "?OTR,1,2,a\x00b,",
        # truncated headers
        "?OTR,",
        "?OTR|",
        "?OTR,1",
        "?OTR,1,2",
        # a fragment inside a fragment
        "?OTR,1,1,?OTR|100|0,",
        "?OTR|100|0,1,1,?OTR|100|0,",
        "?OTR,1,1,AA?OTR|100|0,",
        "?OTR,1,1,x,?OTR|100|0,1,1,y,",
        "?OTR,1,1,x,?OTR,1,1,y,",
        # not fragments at all
        "?OTR:AAMD.",
        "?OTRv3?",
        "hello",
        "",
    ],
)
def test_malformed_fragments_are_rejected(text: str) -> None:
    with pytest.raises(RemoteProtocolError):
        parse_fragment(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("?OTR,1,2,x,", True),
        ("?OTR|100|0,1,2,x,", True),
        ("?OTR,", True),
        ("junk ?OTR|", True),
        ("?OTR:AAMD.", False),
        ("?OTRv23?", False),
        ("?OTR Error: x", False),
        ("?OTR", False),
        ("?OTR?OTR,1,1,x,", False),  # the first "?OTR" decides, as in libotr
        ("plain", False),
        (b"?OTR|", True),
        (b"\xff?OTR,", True),
        (b"\xff", False),
    ],
)
def test_is_fragment(text: str | bytes, expected: bool) -> None:
    assert is_fragment(text) is expected


def test_encode_parse_round_trip() -> None:
    for f in (
        Fragment(3, 0x100, 0, 1, 1, "x"),
        Fragment(3, 0xFFFFFFFF, 0xFFFFFFFF, 65535, 65535, "?OTR:AAMD"),
        Fragment(2, 0, 0, 7, 9, "abc."),
    ):
        assert parse_fragment(f.encode()) == f


@pytest.mark.parametrize(
    "args",
    [
        (1, 0, 0, 1, 1, "x"),
        (2, 0x100, 0, 1, 1, "x"),
        (3, 1 << 32, 0, 1, 1, "x"),
        (3, 0x100, 0, 0, 1, "x"),
        (3, 0x100, 0, 2, 1, "x"),
        (3, 0x100, 0, 1, 65536, "x"),
        (3, 0x100, 0, 1, 1, ""),
        (3, 0x100, 0, 1, 1, "a,b"),
        (3, 0x100, 0, 1, 1, "?OTR|1"),
    ],
)
def test_fragment_constructor_validates(args: tuple[int, int, int, int, int, str]) -> None:
    with pytest.raises(ValueError):
        Fragment(*args)


def test_routing_helpers() -> None:
    to_anyone = parse_fragment("?OTR|100|0,1,1,x,")
    to_bob = parse_fragment("?OTR|100|abcdef01,1,1,x,")
    reserved = parse_fragment("?OTR|ff|0,1,1,x,")
    old = parse_fragment("?OTR,1,1,x,")
    assert to_anyone.addressed_to(BOB) and to_anyone.addressed_to(0x999)
    assert to_bob.addressed_to(BOB) and not to_bob.addressed_to(0x999)
    assert old.addressed_to(0x999)
    assert to_anyone.sender_tag_valid and old.sender_tag_valid
    assert not reserved.sender_tag_valid


def test_repr_omits_piece() -> None:
    assert "SECRETPIECE" not in repr(parse_fragment("?OTR,1,1,SECRETPIECE,"))


# --- reassembly: libotr's accumulate semantics --------------------------------


def test_in_order_v3() -> None:
    r = Reassembler()
    assert [r.add(f, 0.0) for f in LIBOTR_V3_MMS60] == [None] * 4 + [MESSAGE]
    assert r.pending == 0 and r.buffered == 0


def test_in_order_v2_with_parsed_fragments() -> None:
    r = Reassembler()
    results = [r.add(parse_fragment(f), 0.0) for f in LIBOTR_V2_MMS40]
    assert results == [None] * 5 + [MESSAGE]


def test_single_piece_completes_at_once() -> None:
    r = Reassembler()
    assert r.add(v2(1, 1, "?OTR:AAMD."), 0.0) == "?OTR:AAMD."
    assert r.pending == 0


def test_first_piece_restarts() -> None:
    r = Reassembler()
    assert r.add(v2(1, 3, "a"), 0.0) is None
    assert r.add(v2(2, 3, "b"), 0.0) is None
    assert r.add(v2(1, 2, "X"), 0.0) is None
    assert r.add(v2(2, 2, "Y"), 0.0) == "XY"


@pytest.mark.parametrize(
    ("sequence", "intruder"),
    [
        (["a"], v2(3, 3, "c")),  # skips a piece
        (["a"], v2(2, 4, "b")),  # next k, other n
        (["a", "b"], v2(2, 3, "b")),  # a duplicate of the last piece
        (["a", "b"], v2(1 + 1, 3, "x")),  # a replay of an earlier k
    ],
)
def test_anything_out_of_sequence_abandons(sequence: list[str], intruder: str) -> None:
    r = Reassembler()
    for k, piece in enumerate(sequence, 1):
        assert r.add(v2(k, 3, piece), 0.0) is None
    assert r.add(intruder, 0.0) is None
    assert r.pending == 0
    assert r.add(v2(len(sequence) + 1, 3, "c"), 0.0) is None


def test_continuation_without_start_is_dropped() -> None:
    r = Reassembler()
    assert r.add(v2(2, 2, "b"), 0.0) is None
    assert r.pending == 0


def test_malformed_fragment_leaves_state_alone() -> None:
    # libotr ignores an unparsable fragment without touching its buffer.
    r = Reassembler()
    r.add(v2(1, 3, "a"), 0.0)
    for bad in ("?OTR,2,3,,", "?OTR,0,3,x,", "?OTR,4,3,x,", "?OTR,2,3,b"):
        with pytest.raises(RemoteProtocolError):
            r.add(bad, 0.0)
    assert r.add(v2(2, 3, "b"), 0.0) is None
    assert r.add(v2(3, 3, "c"), 0.0) == "abc"


def test_v3_senders_have_their_own_slots() -> None:
    r = Reassembler()
    assert r.add(v3(1, 2, "a1", sender=0x100), 0.0) is None
    assert r.add(v3(1, 3, "b1", sender=0x200), 0.0) is None
    assert r.add(v2(1, 2, "c1"), 0.0) is None
    assert r.pending == 3
    assert r.add(v3(2, 3, "b2", sender=0x200), 0.0) is None
    assert r.add(v3(2, 2, "a2", sender=0x100), 0.0) == "a1a2"
    assert r.add(v2(2, 2, "c2"), 0.0) == "c1c2"
    assert r.add(v3(3, 3, "b3", sender=0x200), 0.0) == "b1b2b3"
    assert r.pending == 0


def test_reserved_sender_tag_is_refused() -> None:
    r = Reassembler()
    with pytest.raises(RemoteProtocolError, match="reserved"):
        r.add("?OTR|ff|0,1,2,x,", 0.0)
    assert r.pending == 0


def test_note_unfragmented_follows_libotr() -> None:
    r = Reassembler()
    r.add(v2(1, 2, "a"), 0.0)
    r.add(v3(1, 2, "b"), 0.0)
    r.note_unfragmented("just chatting")  # no "?OTR": libotr leaves the buffer
    r.note_unfragmented(v2(1, 9, "z"))  # fragments are for add(), not this
    assert r.pending == 2
    r.note_unfragmented("?OTR:AAMD.")  # clears the v2 (master context) buffer only
    assert r.pending == 1
    assert r.add(v2(2, 2, "a"), 0.0) is None
    assert r.add(v3(2, 2, "c"), 0.0) == "bc"


def test_nested_marker_split_across_pieces() -> None:
    r = Reassembler()
    r.add(v2(1, 2, "?OT"), 0.0)
    with pytest.raises(RemoteProtocolError, match="inside"):
        r.add(v2(2, 2, "R|100|0"), 0.0)
    assert r.pending == 0


# --- reassembly: limits --------------------------------------------------------


def test_limits_validate() -> None:
    for bad in (
        {"max_message_size": 0},
        {"max_pieces": 0},
        {"max_pieces": 65536},
        {"max_pending": 0},
        {"timeout": 0.0},
        {"timeout": float("nan")},
        {"timeout": float("inf")},
    ):
        with pytest.raises(ValueError):
            FragmentLimits(**bad)
    assert FragmentLimits() == Reassembler().limits


def test_too_many_pieces() -> None:
    r = Reassembler(FragmentLimits(max_pieces=10))
    r.add(v2(1, 2, "old"), 0.0)
    assert r.add(v2(1, 10, "a"), 0.0) is None
    with pytest.raises(RemoteProtocolError, match="pieces"):
        r.add(v2(1, 11, "a"), 0.0)
    assert r.pending == 0


def test_total_size_is_bounded() -> None:
    r = Reassembler(FragmentLimits(max_message_size=10))
    assert r.add(v2(1, 3, "aaaa"), 0.0) is None
    assert r.add(v2(2, 3, "bbbb"), 0.0) is None
    with pytest.raises(RemoteProtocolError, match="exceeds"):
        r.add(v2(3, 3, "ccc"), 0.0)
    assert r.pending == 0 and r.buffered == 0
    with pytest.raises(RemoteProtocolError, match="exceeds"):
        r.add(v2(1, 1, "x" * 11), 0.0)
    assert r.add(v2(1, 1, "x" * 10), 0.0) == "x" * 10


def test_pending_reassemblies_are_bounded_least_recent_first() -> None:
    r = Reassembler(FragmentLimits(max_pending=2))
    r.add(v3(1, 3, "a1", sender=0x100), 0.0)
    r.add(v3(1, 3, "b1", sender=0x200), 1.0)
    r.add(v3(2, 3, "a2", sender=0x100), 2.0)  # 0x100 is now the most recent
    r.add(v3(1, 2, "c1", sender=0x300), 3.0)  # evicts 0x200
    assert r.pending == 2
    assert r.add(v3(2, 3, "b2", sender=0x200), 4.0) is None
    assert r.add(v3(3, 3, "a3", sender=0x100), 4.0) == "a1a2a3"
    assert r.add(v3(2, 2, "c2", sender=0x300), 4.0) == "c1c2"


def test_idle_reassemblies_expire() -> None:
    r = Reassembler(FragmentLimits(timeout=10.0))
    r.add(v2(1, 3, "a"), 100.0)
    r.add(v3(1, 3, "x"), 100.0)
    assert r.add(v2(2, 3, "b"), 109.0) is None  # activity keeps it alive
    assert r.expire(115.0) == 1  # the v3 one, idle since 100
    assert r.pending == 1
    assert r.add(v2(3, 3, "c"), 119.0) == "abc"
    r.add(v2(1, 2, "a"), 200.0)
    assert r.add(v2(2, 2, "b"), 210.5) is None  # expired on this very call
    assert r.pending == 0


def test_clock_going_backwards_is_harmless() -> None:
    r = Reassembler(FragmentLimits(timeout=10.0))
    r.add(v2(1, 2, "a"), 100.0)
    assert r.expire(50.0) == 0
    assert r.add(v2(2, 2, "b"), 50.0) == "ab"


def test_now_must_be_finite() -> None:
    r = Reassembler()
    with pytest.raises(ValueError):
        r.add(v2(1, 2, "a"), float("nan"))
    with pytest.raises(ValueError):
        r.expire(float("inf"))


def test_clear() -> None:
    r = Reassembler()
    r.add(v2(1, 2, "a"), 0.0)
    r.clear()
    assert r.pending == 0 and r.add(v2(2, 2, "b"), 0.0) is None


# --- regressions from real bugs ------------------------------------------------


@pytest.mark.parametrize("n", ["4294967295", "4294967296", "4294967297", "18446744073709551617"])
def test_cve_2016_2851_huge_count_is_refused(n: str) -> None:
    # Counts that wrap in a 16- or 32-bit integer must not turn into valid ones.
    with pytest.raises(RemoteProtocolError):
        Reassembler().add(f"?OTR,1,{n},AAAA,", 0.0)


def test_cve_2016_2851_claimed_4gb_message_holds_only_what_arrived() -> None:
    # The claim (65535 pieces of 64 KiB) allocates nothing up front, and the
    # total is capped long before any length could overflow.
    r = Reassembler(FragmentLimits(max_pieces=MAX_PIECES))
    piece = "A" * 65_536
    assert r.add(v2(1, MAX_PIECES, piece), 0.0) is None
    assert r.buffered == len(piece)
    with pytest.raises(RemoteProtocolError, match="exceeds"):
        for k in range(2, MAX_PIECES + 1):
            r.add(v2(k, MAX_PIECES, piece), 0.0)
    assert r.buffered == 0


def test_default_limits_refuse_65535_pieces() -> None:
    with pytest.raises(RemoteProtocolError, match="pieces"):
        Reassembler().add(v2(1, 65535, "A"), 0.0)


def test_one_mib_per_line_flood_keeps_memory_bounded() -> None:
    mib = 1 << 20
    limits = FragmentLimits()
    r = Reassembler(limits)
    gc.collect()
    tracemalloc.start()
    try:
        for i in range(40):
            kind = i % 4
            try:
                if kind == 0:  # a giant single piece
                    r.add("?OTR,1,2," + "A" * mib + ",", float(i))
                elif kind == 1:  # a giant line that never closes its piece
                    r.add("?OTR|100|0,1,2," + "A" * mib, float(i))
                elif kind == 2:  # many starts from many instances
                    r.add(
                        f"?OTR|{0x100 + i:x}|0,1,100," + "A" * (limits.max_message_size - 1) + ",",
                        0.0,
                    )
                else:  # plain junk
                    r.note_unfragmented("?OTR" + "," * mib)
                    r.add("x" * mib, float(i))
            except RemoteProtocolError:
                pass
            assert r.buffered <= limits.max_pending * limits.max_message_size
            assert r.pending <= limits.max_pending
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # A few transient copies of one line, plus the bounded state; 40 lines would be 40 MiB.
    assert peak < 4 * mib + limits.max_pending * limits.max_message_size * 2
