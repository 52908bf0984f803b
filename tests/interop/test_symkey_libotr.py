"""The extra symmetric key (TLV 8): both ends derive the same 32-byte key as
libotr's otrl_message_symkey, whichever side announces it.

Uses the peers' ``x-symkey`` extension command, which reports keys as
``log`` events."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from tests.interop.router import Router, Side, other

pytestmark = pytest.mark.interop

_SENT = re.compile(r"symkey sent use=(\d+) key=([0-9A-F]{64})$")
_RECEIVED = re.compile(r"symkey received use=(\d+) data=([0-9A-F]*) key=([0-9A-F]{64})$")


@pytest.mark.parametrize("announcer", ["A", "B"])
def test_both_ends_derive_the_same_extra_symmetric_key(
    make_router: Callable[..., Router], announcer: Side
) -> None:
    router = make_router()
    router.start("A")
    router.wait_encrypted(version=3)
    keys = []
    for round_ in range(3):  # across key rotations
        exchange = router.command(announcer, {"op": "x-symkey", "use": 7 + round_,
                                              "data": "file.txt"})  # fmt: skip
        sent = [m for e in exchange.events(announcer, "log") if (m := _SENT.match(e["text"]))]
        got = [m for e in exchange.events(other(announcer), "log")
               if (m := _RECEIVED.match(e["text"]))]  # fmt: skip
        assert len(sent) == 1 and len(got) == 1, exchange.log
        assert sent[0].group(1) == got[0].group(1) == str(7 + round_)
        assert bytes.fromhex(got[0].group(2)) == b"file.txt"
        assert sent[0].group(2) == got[0].group(3)
        keys.append(sent[0].group(2))
        router.expect_message("A", f"rotate keys {round_}")
        router.expect_message("B", f"rotate keys back {round_}")
    assert len(set(keys)) == 3  # a new key pair, a new key
