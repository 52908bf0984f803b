"""Fuzz properties for offrecord.wire.fragment.

Contract: whatever arrives from the network, the parser and the reassembler
either succeed or raise RemoteProtocolError, and the reassembler never holds
more than its limits allow.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fuzz.targets import add_fragment_checked, check_reassembler_bounds
from offrecord.errors import RemoteProtocolError
from offrecord.wire.fragment import (
    Fragment,
    FragmentLimits,
    Reassembler,
    is_fragment,
    parse_fragment,
)

SMALL = FragmentLimits(max_message_size=64, max_pieces=8, max_pending=3, timeout=5.0)

# Near-valid fragments: each field is usually plausible and sometimes not, so
# the search reaches every check rather than stopping at the marker.
decimal = st.one_of(
    st.integers(0, 70_000).map(str),
    st.integers(0, 8).map(lambda z: "0" * z + "1"),
    st.sampled_from(["", "-1", "+1", " 1", "4294967297", "1x", "\u0661", "9" * 5000]),
)
hexadecimal = st.one_of(
    st.integers(0, 0x1FFFFFFFF).map(lambda v: f"{v:x}"),
    st.integers(0, 0xFFFFFFFF).map(lambda v: f"{v:08X}"),
    st.sampled_from(["", "0x100", " 100", "-1", "zz", "0" * 40 + "100"]),
)
piece = st.one_of(
    st.text(alphabet="ABCab+/=.:?OTR|,", max_size=30),
    st.text(max_size=30),
    st.sampled_from(["", "?OTR|100|0", "a\x00b", "?OTR:AAMD"]),
)
tail = st.one_of(st.just(","), st.text(max_size=20), st.sampled_from(["", ",?OTR,1,1,x,"]))


@st.composite
def near_fragments(draw: st.DrawFn) -> str:
    head = draw(
        st.one_of(
            st.just("?OTR,"),
            st.builds(lambda s, r: f"?OTR|{s}|{r},", hexadecimal, hexadecimal),
        )
    )
    prefix = draw(st.one_of(st.just(""), st.text(max_size=10)))
    return f"{prefix}{head}{draw(decimal)},{draw(decimal)},{draw(piece)}{draw(tail)}"


network_text = st.one_of(st.text(), near_fragments())
network_input = st.one_of(network_text, st.binary(), network_text.map(str.encode))


@given(network_input)
def test_parser_raises_only_remote_protocol_error(data: str | bytes) -> None:
    classified = is_fragment(data)
    try:
        fragment = parse_fragment(data)
    except RemoteProtocolError:
        return
    assert classified
    assert isinstance(fragment, Fragment)
    assert 0 < fragment.k <= fragment.n <= 0xFFFF
    assert fragment.piece and "," not in fragment.piece
    assert parse_fragment(fragment.encode()) == fragment


@given(
    st.lists(
        st.tuples(
            network_input,
            st.floats(min_value=-1e3, max_value=1e3, allow_nan=False),
            st.booleans(),
        ),
        max_size=40,
    ),
    st.sampled_from([SMALL, FragmentLimits()]),
)
def test_reassembler_raises_only_remote_protocol_error_and_stays_bounded(
    steps: list[tuple[str | bytes, float, bool]], limits: FragmentLimits
) -> None:
    r = Reassembler(limits)
    for data, now, as_unfragmented in steps:
        if as_unfragmented:
            r.note_unfragmented(data)
            check_reassembler_bounds(r, limits)
        else:
            add_fragment_checked(r, data, now, limits)
        r.expire(now)
