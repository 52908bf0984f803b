"""The Socialist Millionaires' Protocol against real libotr 4.1.1, offrecord as
initiator and as responder (the orientation fixture puts offrecord on side A
or side B; each test runs SMP started from both sides)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.interop.router import Router, Side, other

pytestmark = pytest.mark.interop


def _encrypted(make: Callable[..., Router]) -> Router:
    router = make()
    router.start("A")
    router.wait_encrypted(version=3)
    return router


@pytest.mark.parametrize("asker", ["A", "B"])
def test_smp_success_marks_only_the_asker_with_a_question(
    make_router: Callable[..., Router], asker: Side
) -> None:
    router = _encrypted(make_router)
    answerer = other(asker)
    exchange = router.smp(asker, "correct horse", question="Which horse?")
    assert exchange.smp_asked(answerer) == ["Which horse?"]
    exchange = router.smp_respond(answerer, "correct horse")
    assert exchange.smp_results(asker) == ["success"]
    assert exchange.smp_results(answerer) == ["success"]
    assert router.status(asker).trusted is True
    assert router.status(answerer).trusted is False  # libotr's convention


@pytest.mark.parametrize("asker", ["A", "B"])
def test_smp_success_without_question_marks_both(
    make_router: Callable[..., Router], asker: Side
) -> None:
    router = _encrypted(make_router)
    exchange = router.smp(asker, "shared secret")
    assert exchange.smp_asked(other(asker)) == [None]
    exchange = router.smp_respond(other(asker), "shared secret")
    assert exchange.smp_results("A") == exchange.smp_results("B") == ["success"]
    assert router.status("A").trusted and router.status("B").trusted


@pytest.mark.parametrize("asker", ["A", "B"])
def test_smp_failure(make_router: Callable[..., Router], asker: Side) -> None:
    router = _encrypted(make_router)
    router.smp(asker, "one answer", question="?")
    exchange = router.smp_respond(other(asker), "another answer")
    assert exchange.smp_results("A") == exchange.smp_results("B") == ["failure"]
    assert not router.status("A").trusted and not router.status("B").trusted
    router.expect_message("A", "conversation continues after a failed SMP")


@pytest.mark.parametrize("asker", ["A", "B"])
@pytest.mark.parametrize("aborter", ["asker", "answerer"])
def test_smp_abort_part_way_then_new_smp(
    make_router: Callable[..., Router], asker: Side, aborter: str
) -> None:
    router = _encrypted(make_router)
    answerer = other(asker)
    router.smp(asker, "secret", question="Abort me?")
    side = asker if aborter == "asker" else answerer
    exchange = router.smp_abort(side)
    assert exchange.smp_results(other(side)) == ["aborted"]
    # A new run after the aborted one succeeds.
    router.smp(asker, "again")
    exchange = router.smp_respond(answerer, "again")
    assert exchange.smp_results("A") == exchange.smp_results("B") == ["success"]


@pytest.mark.parametrize("asker", ["A", "B"])
def test_new_smp_after_one_ended_and_across_refresh(
    make_router: Callable[..., Router], asker: Side
) -> None:
    router = _encrypted(make_router)
    router.smp(asker, "first")
    router.smp_respond(other(asker), "first")
    router.smp(other(asker), "second", question="Second round?")
    exchange = router.smp_respond(asker, "second")
    assert exchange.smp_results("A") == exchange.smp_results("B") == ["success"]
    # Refresh the session: a new AKE, a new session id; SMP still works.
    router.start(asker)
    router.wait_encrypted(version=3)
    router.smp(asker, "after refresh")
    exchange = router.smp_respond(other(asker), "after refresh")
    assert exchange.smp_results("A") == exchange.smp_results("B") == ["success"]


def test_smp_while_not_encrypted_is_refused(make_router: Callable[..., Router]) -> None:
    router = make_router()
    for side in ("A", "B"):
        exchange = router.smp(side, "nope")
        assert exchange.errors(side), "SMP without encryption must be refused with an error"
        assert exchange.wires(side) == []
