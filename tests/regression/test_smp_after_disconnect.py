"""Regression test for libotr 4.1.0's free of an uninitialised pointer
(libotr commit 70d1df0, issue #72, reported by Nicolas Guigo and Ben Hawkes).

libotr handles the TLVs of one data message in a fixed order: the disconnect
TLV first (the context is forced to FINISHED), then the SMP TLVs.  An SMP
message whose answer had to be encrypted then failed in
``otrl_proto_create_data``, and the caller freed the never-set reply pointer.
The offrecord equivalent was an exception escaping ``Account.receive``: the
SMP reply could not be encrypted once the disconnect TLV had ended the
session.
"""

from __future__ import annotations

import pytest

from offrecord import events as ev
from offrecord.session import MessageState
from offrecord.wire.codec import encode_int, encode_mpi
from offrecord.wire.envelope import Kind, classify
from offrecord.wire.tlv import TLV, TLVType
from tests.regression.pair import ALICE_TAG, Pair

_G = 2**1535 + 1  # a group element in range (the proofs will not verify)


def _smp_body(count_field: int, values: list[int]) -> bytes:
    return encode_int(count_field) + b"".join(encode_mpi(v) for v in values)


@pytest.mark.parametrize(
    "tlvs",
    [
        (TLV(TLVType.DISCONNECTED), TLV(TLVType.SMP3, _smp_body(8, [_G] * 8))),
        (TLV(TLVType.DISCONNECTED), TLV(TLVType.SMP1, _smp_body(6, [_G] * 6))),
        (TLV(TLVType.DISCONNECTED), TLV(TLVType.SMP_ABORT)),
        (TLV(TLVType.SMP3, _smp_body(8, [_G] * 8)), TLV(TLVType.DISCONNECTED)),
    ],
    ids=["disconnect+smp3", "disconnect+smp1", "disconnect+abort", "smp3+disconnect"],
)
def test_libotr_smp_reply_impossible_after_disconnect(tlvs: tuple[TLV, ...]) -> None:
    """The trigger of the libotr 4.1.0 bug above: an SMP message whose reply
    cannot be encrypted because the same data message also carried the
    disconnect TLV.  offrecord must not raise, must end up finished, and
    sends nothing after the disconnect (an SMP abort before it goes out
    encrypted, as libotr's would)."""
    pair = Pair(seed="smp-disconnect").secure()
    pair.session("alice").send_data("", tlvs)
    events = pair.deliver("bob", pair.out("alice"))
    assert ev.SessionFinished(ALICE_TAG) in events
    assert pair.conv("bob").state is MessageState.FINISHED
    sent = pair.out("bob")
    if tlvs[0].type == TLVType.DISCONNECTED:
        assert sent == []
        if tlvs[1].type != TLVType.SMP_ABORT:
            assert any(isinstance(e, ev.MessageDiscarded) for e in events)
    else:
        assert [classify(text).kind for text in sent] == [Kind.ENCODED]
    assert pair.conv("bob").send("after the end") == [ev.MessageNotSent(
        "the peer ended the private conversation; end or restart it")]  # fmt: skip
    pair.conv("bob").end()
    pair.conv("alice").end()
    pair.secure().assert_usable()
