"""Property tests for offrecord.wire.fragment: round trips and no wrong messages."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from offrecord.errors import RemoteProtocolError
from offrecord.wire.fragment import (
    MIN_INSTANCE_TAG,
    Fragment,
    Reassembler,
    fragment_message,
    min_max_size,
    parse_fragment,
)

BASE64 = string.ascii_letters + string.digits + "+/="


def encoded_messages(min_body: int = 0) -> st.SearchStrategy[str]:
    return st.text(alphabet=BASE64, min_size=min_body, max_size=3000).map(
        lambda body: f"?OTR:{body}."
    )


encoded = encoded_messages()
versions = st.sampled_from([2, 3])
tags = st.integers(MIN_INSTANCE_TAG, 0xFFFFFFFF)
receiver_tags = st.one_of(st.just(0), tags)


@st.composite
def split_messages(
    draw: st.DrawFn, must_split: bool = False
) -> tuple[str, int, int, int, list[str]]:
    """An encoded message, its fragmenting parameters and its fragments."""
    message = draw(encoded_messages(40) if must_split else encoded)
    version = draw(versions)
    sender = draw(tags) if version == 3 else 0
    receiver = draw(receiver_tags) if version == 3 else 0
    minimum = min_max_size(version)
    largest = len(message) - 1 if must_split else max(minimum, len(message) + 10)
    max_size = draw(st.integers(minimum, largest))
    frags = fragment_message(
        message, max_size, version=version, sender_tag=sender, receiver_tag=receiver
    )
    return message, max_size, version, sender, frags


@given(split_messages())
def test_fragments_reassemble_to_the_original(
    case: tuple[str, int, int, int, list[str]],
) -> None:
    message, max_size, version, sender, frags = case
    assert all(len(f) <= max_size for f in frags)
    if len(frags) == 1 and frags[0] == message:
        return
    r = Reassembler()
    results = [r.add(f, 0.0) for f in frags]
    assert results[:-1] == [None] * (len(frags) - 1)
    assert results[-1] == message
    assert r.pending == 0
    parsed = [parse_fragment(f) for f in frags]
    assert [(p.k, p.n) for p in parsed] == [(k, len(frags)) for k in range(1, len(frags) + 1)]
    assert all(p.version == version and p.sender_tag == sender for p in parsed)


@given(split_messages(must_split=True), st.data())
def test_shuffled_duplicated_or_missing_fragments_never_give_a_wrong_message(
    case: tuple[str, int, int, int, list[str]], data: st.DataObject
) -> None:
    message, _, _, _, frags = case
    assert len(frags) > 1
    order = data.draw(st.lists(st.integers(0, len(frags) - 1), max_size=3 * len(frags) + 3))
    r = Reassembler()
    for index in order:
        assert r.add(frags[index], 0.0) in (None, message)
    # Whatever came before, a complete in-order run still gets through.
    assert [r.add(f, 0.0) for f in frags][-1] == message


@given(st.data())
def test_interleaved_senders_each_get_their_own_message(data: st.DataObject) -> None:
    first, second = data.draw(encoded), data.draw(encoded)
    size = data.draw(st.integers(min_max_size(3), 200))
    a = fragment_message(first, size, version=3, sender_tag=0x100)
    b = fragment_message(second, size, version=3, sender_tag=0x200)
    c = fragment_message(second, size, version=2)
    streams = [(a, first), (b, second), (c, second)]
    positions = [0, 0, 0]
    r = Reassembler()
    got: list[str] = []
    while any(positions[i] < len(s[0]) for i, s in enumerate(streams)):
        choices = [i for i, s in enumerate(streams) if positions[i] < len(s[0])]
        i = data.draw(st.sampled_from(choices))
        frags, original = streams[i]
        frag = frags[positions[i]]
        positions[i] += 1
        if len(frags) == 1 and frag == original:
            continue
        result = r.add(frag, 0.0)
        assert result in (None, original)
        if result is not None:
            got.append(result)
    expected = [orig for frags, orig in streams if not (len(frags) == 1 and frags[0] == orig)]
    assert sorted(got) == sorted(expected)


fragments = st.builds(
    lambda version, sender, receiver, n, k, piece: Fragment(
        version,
        sender if version == 3 else 0,
        receiver if version == 3 else 0,
        min(k, n),
        n,
        piece,
    ),
    versions,
    st.integers(0, 0xFFFFFFFF),
    st.integers(0, 0xFFFFFFFF),
    st.integers(1, 0xFFFF),
    st.integers(1, 0xFFFF),
    st.text(
        alphabet=st.characters(blacklist_characters=",\x00", blacklist_categories=["Cs"]),
        min_size=1,
    ).filter(lambda p: "?OTR|" not in p),
)


@given(fragments)
def test_encode_then_parse_is_identity(fragment: Fragment) -> None:
    assert parse_fragment(fragment.encode()) == fragment


@given(
    fragments,
    st.integers(0, 6),
    st.integers(0, 6),
    st.booleans(),
    st.text(max_size=20).filter(lambda p: "?OTR" not in p),
)
def test_padding_and_hex_case_do_not_matter(
    fragment: Fragment, zeros_k: int, zeros_n: int, upper: bool, prefix: str
) -> None:
    k = "0" * zeros_k + str(fragment.k)
    n = "0" * zeros_n + str(fragment.n)
    if fragment.version == 3:
        tags_text = f"{fragment.sender_tag:x}|{fragment.receiver_tag:x}"
        head = "?OTR|" + (tags_text.upper() if upper else tags_text) + ","
    else:
        head = "?OTR,"
    assert parse_fragment(f"{prefix}{head}{k},{n},{fragment.piece},") == fragment


@given(fragments, st.integers(0, 0x1FFFF), st.integers(0, 0x1FFFF))
def test_only_valid_counts_parse(fragment: Fragment, k: int, n: int) -> None:
    text = f"?OTR,{k},{n},{fragment.piece},"
    if 0 < k <= n <= 0xFFFF:
        assert (parse_fragment(text).k, parse_fragment(text).n) == (k, n)
    else:
        with pytest.raises(RemoteProtocolError):
            parse_fragment(text)
