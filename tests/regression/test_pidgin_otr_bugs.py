"""Regression tests for bugs found in pidgin-otr, the reference OTR client.

offrecord is a library, not a client, but the same situations reach it: an
SMP run that ends or restarts while the user is still being asked a
question, and peer-controlled text that a careless caller would treat as a
format string.
"""

from __future__ import annotations

import logging

import pytest

from offrecord import events as ev
from offrecord.account import Account
from offrecord.errors import LocalProtocolError
from offrecord.policy import Policy
from offrecord.session import MessageState
from offrecord.smp import SMPState
from offrecord.wire.envelope import error_message, tag_plaintext
from tests.regression.pair import KEYS, Pair

# --- CVE-2015-8833: SMP aborted or restarted while a question is pending ----------------


def _asked(pair: Pair, question: str = "Where did we meet?") -> None:
    pair.session("alice").smp_start("the answer", question)
    seen = pair.pump()
    assert seen["bob"] == [ev.SMPRequested(question)]
    assert pair.session("bob").smp.state is SMPState.AWAIT_ANSWER
    assert pair.session("bob").smp.question == question


def _smp_completes(pair: Pair) -> None:
    pair.session("alice").smp_start("later", "And now?")
    assert pair.pump()["bob"] == [ev.SMPRequested("And now?")]
    pair.session("bob").smp_respond("later")
    seen = pair.pump()
    assert ev.SMPResult(True, verified=True) in seen["alice"]
    assert ev.SMPResult(True, verified=False) in seen["bob"]


def _answering_fails_cleanly(pair: Pair) -> None:
    """Answering a request that no longer exists is a local error, nothing
    goes out, and the SMP state stays idle."""
    with pytest.raises(LocalProtocolError):
        pair.session("bob").smp_respond("the answer")
    assert pair.out("bob") == []
    assert pair.session("bob").smp.state is SMPState.EXPECT1
    assert pair.session("bob").smp.question is None


def test_cve_2015_8833_asker_aborts_while_question_pending() -> None:
    """pidgin-otr CVE-2015-8833 (fixed in 4.0.2): a use after free in the SMP
    dialog code (``create_smp_dialog`` in gtk-dialog.c) when an SMP run's
    state went away while its dialog was still open.  The library's side of
    that situation: the abort clears the pending question, the late answer
    is refused with LocalProtocolError, and SMP works again."""
    pair = Pair(seed="cve-2015-8833/abort").secure()
    _asked(pair)
    pair.session("alice").smp_abort()
    assert pair.pump()["bob"] == [ev.SMPAborted()]
    _answering_fails_cleanly(pair)
    _smp_completes(pair)
    pair.assert_usable()


def test_cve_2015_8833_asker_restarts_with_another_question() -> None:
    """The asker starts again while Bob still sees the first question: the
    new request replaces it (abort, then the new message 1), and Bob's
    answer goes to the new run."""
    pair = Pair(seed="cve-2015-8833/restart").secure()
    _asked(pair, "First question?")
    pair.session("alice").smp_start("second answer", "Second question?")
    seen = pair.pump()
    assert seen["bob"] == [ev.SMPAborted(), ev.SMPRequested("Second question?")]
    assert pair.session("bob").smp.question == "Second question?"
    pair.session("bob").smp_respond("second answer")
    assert ev.SMPResult(True, verified=True) in pair.pump()["alice"]
    pair.assert_usable()


def test_cve_2015_8833_answerer_aborts_while_question_pending() -> None:
    """Bob closes the question (aborts): Alice is told, both are idle."""
    pair = Pair(seed="cve-2015-8833/bob-aborts").secure()
    _asked(pair)
    pair.session("bob").smp_abort()
    assert pair.pump()["alice"] == [ev.SMPAborted()]
    assert pair.session("alice").smp.state is SMPState.EXPECT1
    _answering_fails_cleanly(pair)
    _smp_completes(pair)


@pytest.mark.parametrize("who", ["alice", "bob"])
def test_cve_2015_8833_conversation_ends_while_question_pending(who: str) -> None:
    """The conversation ends (either side) while the question is open: the
    SMP state is dropped with the keys; a late answer is a local error."""
    pair = Pair(seed=f"cve-2015-8833/end/{who}").secure()
    _asked(pair)
    pair.conv(who).end()
    pair.pump()
    assert pair.conv("bob").state is not MessageState.ENCRYPTED
    _answering_fails_cleanly(pair)
    pair.conv("bob").end()
    pair.conv("alice").end()
    pair.secure()
    _smp_completes(pair)


def test_cve_2015_8833_refresh_while_question_pending() -> None:
    """A new AKE (refresh) while the question is open: the old run is bound
    to the old session id and is dropped; answering it is refused."""
    pair = Pair(seed="cve-2015-8833/refresh").secure()
    _asked(pair)
    old_ssid = pair.session("bob").ssid
    pair.conv("alice").start()
    pair.pump()
    assert pair.session("bob").ssid != old_ssid
    _answering_fails_cleanly(pair)
    _smp_completes(pair)


def test_cve_2015_8833_abort_then_late_message_2() -> None:
    """Alice aborted, but Bob's answer (message 2) was already on its way:
    Alice reports an out-of-order message and aborts again; both recover."""
    pair = Pair(seed="cve-2015-8833/late").secure()
    _asked(pair)
    pair.session("bob").smp_respond("the answer")
    late = pair.out("bob")
    pair.session("alice").smp_abort()
    events = pair.deliver("alice", late)
    assert [type(e) for e in events] == [ev.SMPError]
    pair.pump()
    assert pair.session("alice").smp.state is SMPState.EXPECT1
    assert pair.session("bob").smp.state is SMPState.EXPECT1
    _smp_completes(pair)


# --- CVE-2012-2369: peer text used as a format string ---------------------------------

_FORMATS = [
    "%s%n%x",
    "%n%n%n%n",
    "%p %p %p %p",
    "%1$s %2$n",
    "%%s %%n",
    "%(message)s %(levelname)s",
    "{0} {text!r} {__class__}",
    "%s" * 50,
]


@pytest.mark.parametrize("text", _FORMATS)
def test_cve_2012_2369_format_strings_in_messages(
    text: str, caplog: pytest.LogCaptureFixture
) -> None:
    """pidgin-otr CVE-2012-2369 (fixed in 3.2.1): ``log_message_cb`` in
    otr-plugin.c passed text derived from network data to a ``printf``-style
    function as the format, so ``%n`` in it wrote to memory.  offrecord never
    formats with peer text: every event carries it exactly, in plaintext,
    tagged plaintext, encrypted messages, errors and SMP questions, with
    logging on at DEBUG."""
    caplog.set_level(logging.DEBUG)
    pair = Pair(seed="cve-2012-2369", policy=Policy.OPPORTUNISTIC)
    shown = pair.feed("bob", text)
    assert shown == [ev.MessageReceived(text, False)]
    shown = pair.feed("bob", tag_plaintext(text, frozenset({3})))
    assert [e.text for e in shown if isinstance(e, ev.MessageReceived)] == [text]
    pair.pump()
    assert pair.conv("bob").state is MessageState.ENCRYPTED
    assert pair.conv("alice").send(text) == []
    assert [(e.text, e.encrypted) for e in pair.deliver("bob", pair.out("alice"))
            if isinstance(e, ev.MessageReceived)] == [(text, True)]  # fmt: skip
    assert pair.feed("bob", error_message(text))[0] == ev.ErrorReceived(text)
    pair.out("bob")
    pair.session("alice").smp_start("secret", text)
    assert pair.pump()["bob"] == [ev.SMPRequested(text)]
    pair.session("bob").smp_respond("secret")
    assert ev.SMPResult(True, verified=True) in pair.pump()["alice"]
    for record in caplog.records:
        assert text not in record.getMessage()


@pytest.mark.parametrize("name", ["%s%n%x@example.org", "%n%n", "{0}%(x)s"])
def test_cve_2012_2369_format_strings_in_account_names(name: str) -> None:
    """The account and peer names reach the query message's text and every
    routing key; they are used as data only."""
    alice = Account(name, "prpl-%n", KEYS["alice"], policy=Policy.MANUAL)
    bob = Account("%x%x%x", "prpl-%n", KEYS["bob"], policy=Policy.MANUAL)
    alice.conversation("%x%x%x").start()
    ((peer, query),) = alice.data_to_send()
    assert peer == "%x%x%x"
    assert query.startswith("?OTRv23?\n" + name + " has requested")
    bob.receive(name, query)
    for _ in range(5):
        for src, dst, src_name in ((alice, bob, name), (bob, alice, "%x%x%x")):
            for dest, text in src.data_to_send():
                assert dest in (name, "%x%x%x")
                dst.receive(src_name, text)
    assert alice.conversation("%x%x%x").state is MessageState.ENCRYPTED
    assert bob.conversation(name).state is MessageState.ENCRYPTED
    assert name in repr(bob.conversation(name))
