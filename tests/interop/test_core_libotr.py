"""The v3/v2 core against real libotr 4.1.1, both ways round.

Each scenario runs twice: offrecord as side A with libotr as B, and libotr as
A with offrecord as B.  The libotr side is ``tests/interop/libotr_peer.c``
built against the system's libotr; offrecord runs in-process through the same
peer protocol (``test_peer_command.py`` covers the real ``offrecord peer``).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.interop.router import Router, Side, other

pytestmark = pytest.mark.interop


def _assert_same_session(router: Router, version: int) -> None:
    a, b = router.status("A"), router.status("B")
    assert a.state == b.state == "encrypted"
    assert a.version == b.version == version
    assert a.ssid is not None and a.ssid == b.ssid
    assert a.their_fingerprint == b.our_fingerprint
    assert b.their_fingerprint == a.our_fingerprint


@pytest.mark.parametrize("starter", ["A", "B"])
def test_ake_by_query(make_router: Callable[..., Router], starter: Side) -> None:
    router = make_router()
    router.start(starter)
    router.wait_encrypted(version=3)
    _assert_same_session(router, 3)
    router.expect_message("A", "hello from A")
    router.expect_message("B", "hello from B")


@pytest.mark.parametrize("tagger", ["A", "B"])
def test_ake_by_whitespace_tag(make_router: Callable[..., Router], tagger: Side) -> None:
    tagging = {"policy": "v2,v3,whitespace"}
    starting = {"policy": "v2,v3,whitespace-start"}
    router = make_router(**({"a": tagging, "b": starting} if tagger == "A" else
                            {"a": starting, "b": tagging}))  # fmt: skip
    shown = router.send(tagger, "hi there")
    assert [m.text for m in shown] == ["hi there"]  # the tag is stripped
    assert not shown[0].encrypted
    router.wait_encrypted(version=3)
    _assert_same_session(router, 3)
    router.expect_message(tagger, "now private")


@pytest.mark.parametrize("v2_side", ["A", "B"])
def test_v2_only_peer(make_router: Callable[..., Router], v2_side: Side) -> None:
    router = make_router(**({"a": {"policy": "v2"}} if v2_side == "A" else {"b": {"policy": "v2"}}))
    router.start(other(v2_side))
    router.wait_encrypted(version=2)
    _assert_same_session(router, 2)
    for i in range(10):
        router.expect_message("A", f"v2 message {i} from A")
        router.expect_message("B", f"v2 message {i} from B")


def test_many_messages_rotation_unicode_and_large(make_router: Callable[..., Router]) -> None:
    router = make_router()
    router.start("A")
    router.wait_encrypted(version=3)
    texts = ["plain ascii", "ünïcödé ✓ 😀 中文 עברית", "x" * 5000, "émoji 🎉" * 300]
    count = 0
    # Ping-pong: a key rotation with every reply.
    for i in range(110):
        router.expect_message("A", f"{texts[i % 4]} #{i}")
        router.expect_message("B", f"reply {texts[(i + 1) % 4]} #{i}")
        count += 2
    # Bursts one way: many messages under the same keys.
    for i in range(30):
        router.expect_message("A", f"burst from A {i}")
        count += 1
    for i in range(30):
        router.expect_message("B", f"burst from B {i} — {texts[1]}")
        count += 1
    assert count >= 200
    _assert_same_session(router, 3)


@pytest.mark.parametrize("refresher", ["A", "B"])
def test_session_refresh(make_router: Callable[..., Router], refresher: Side) -> None:
    router = make_router()
    router.start("A")
    router.wait_encrypted(version=3)
    first = router.status("A").ssid
    router.expect_message("A", "before refresh")
    router.expect_message("B", "before refresh, reply")
    exchange = router.start(refresher)
    assert "encrypted" in exchange.states("A") and "encrypted" in exchange.states("B")
    _assert_same_session(router, 3)
    assert router.status("A").ssid != first
    for i in range(5):
        router.expect_message("A", f"after refresh {i}")
        router.expect_message("B", f"after refresh, reply {i}")


@pytest.mark.parametrize("ender", ["A", "B"])
def test_end_from_either_side(make_router: Callable[..., Router], ender: Side) -> None:
    router = make_router()
    router.start("A")
    router.wait_encrypted(version=3)
    router.expect_message(ender, "last private words")
    exchange = router.end(ender)
    assert router.status(ender).state == "plaintext"
    assert router.status(other(ender)).state == "finished"
    assert "finished" in exchange.states(other(ender))
    # The finished side refuses to send: nothing typed reaches the network.
    secret = "this must never travel in plaintext"
    before = len(router.network)
    shown = router.send(other(ender), secret)
    assert shown == []
    assert all(secret not in packet.data for packet in router.network[before:])
    assert router.last.errors(other(ender)), "the user must be told the message was not sent"
    # Ending on the finished side returns it to plaintext; a new AKE works.
    router.end(other(ender))
    assert router.status(other(ender)).state == "plaintext"
    router.start(other(ender))
    router.wait_encrypted(version=3)
    router.expect_message(ender, "private again")


def test_simultaneous_start(make_router: Callable[..., Router]) -> None:
    router = make_router(auto_deliver=False)
    router.command("A", {"op": "start"})
    router.command("B", {"op": "start"})
    router.flush()
    router.auto_deliver = True
    router.wait_encrypted(version=3)
    _assert_same_session(router, 3)
    router.expect_message("A", "after a simultaneous start")
    router.expect_message("B", "both ways")


def test_simultaneous_dh_commits(make_router: Callable[..., Router]) -> None:
    """Both sides answer crossing queries with D-H Commits; the higher hash wins."""
    router = make_router(auto_deliver=False)
    router.command("A", {"op": "start"})
    router.command("B", {"op": "start"})
    # Deliver both queries before any answer, so both D-H Commits cross.
    router.deliver_one()
    router.deliver_one()
    router.flush()
    router.auto_deliver = True
    router.wait_encrypted(version=3)
    _assert_same_session(router, 3)
    router.expect_message("B", "commits crossed")


@pytest.mark.parametrize("version", [2, 3])
@pytest.mark.parametrize("size", [100, 150, 200, 400])
def test_fragmented_both_ways(make_router: Callable[..., Router], size: int, version: int) -> None:
    options = {"max_fragment": size, "policy": f"v{version}"}
    router = make_router(a=options, b=options)
    router.start("A")
    router.wait_encrypted(version=version)
    router.expect_message("A", "fragmented " + "ä" * 600)
    router.expect_message("B", "fragmented reply " + "ö" * 600)
    router.expect_message("A", "x" * 5000)
    fragments = [p.data for p in router.network if p.data.startswith(("?OTR|", "?OTR,"))]
    assert fragments, "messages this long must have been fragmented"
    assert all(len(f) <= size for f in fragments)
    unfragmented = [p.data for p in router.network if p.data.startswith("?OTR:")]
    assert all(len(u) <= size for u in unfragmented)
    marker = "?OTR|" if version == 3 else "?OTR,"
    assert all(f.startswith(marker) for f in fragments)


@pytest.mark.parametrize(
    "garbage",
    ["?OTR:===.", "?OTR:AAMD.", "?OTR:not base64!.", "?OTR|12345678|9abcdef0,00001,00002,abc",
     "?OTR,1,3,?OTR:AAM,", "?OTR", "?OTRv", "?OTR:", "?OTR|", "?OTR,"],
)  # fmt: skip
def test_garbage_leaves_both_working(make_router: Callable[..., Router], garbage: str) -> None:
    router = make_router()
    router.start("A")
    router.wait_encrypted(version=3)
    for side in ("A", "B"):
        router.inject(side, garbage)
        assert router.status(side).state == "encrypted"
    router.expect_message("A", "still fine")
    router.expect_message("B", "still fine too")
