"""One account logged in twice (two offrecord instances, same name, different
instance tags) talking to one libotr buddy.  Like an IM server, the network
delivers the buddy's messages to both instances."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.interop.offrecord_peer import InProcessPeer
from tests.interop.router import Event, SubprocessPeer, peer_args

pytestmark = pytest.mark.interop

ALICE, BOB = "alice@example.org", "bob@example.org"


class ThreeWay:
    """libotr's wire goes to both alice instances; theirs goes to libotr."""

    def __init__(self, libotr: SubprocessPeer, first: InProcessPeer, second: InProcessPeer):
        self.peers: dict[str, InProcessPeer | SubprocessPeer] = {
            "bob": libotr, "alice1": first, "alice2": second}  # fmt: skip
        self.shown: dict[str, list[Event]] = {name: [] for name in self.peers}
        self.seen: list[str] = []

    def run(self, name: str, cmd: dict[str, object]) -> None:
        queue: list[tuple[str, str]] = []

        def do(who: str, command: dict[str, object]) -> None:
            for event in self.peers[who].command(command):
                if event["ev"] == "wire":
                    self.seen.append(event["data"])
                    queue.append((who, event["data"]))
                elif event["ev"] in ("message", "state", "error"):
                    self.shown[who].append(event)

        do(name, cmd)
        for _ in range(200):
            if not queue:
                return
            src, data = queue.pop(0)
            targets = ["alice1", "alice2"] if src == "bob" else ["bob"]
            for target in targets:
                do(target, {"op": "recv", "data": data})
        raise AssertionError("traffic did not settle")

    def status(self, name: str) -> Event:
        return self.peers[name].command({"op": "status"})[0]

    def messages(self, name: str) -> list[str]:
        return [e["text"] for e in self.shown[name] if e["ev"] == "message" and e["encrypted"]]


def test_account_logged_in_twice_talks_to_libotr(libotr_exe: Path) -> None:
    libotr = SubprocessPeer([libotr_exe, *peer_args(BOB, ALICE)], name="libotr:bob")
    first = InProcessPeer(ALICE, BOB, instance_tag=0x11111112, seed=1)
    second = InProcessPeer(ALICE, BOB, instance_tag=0x22222222, seed=2, key=first.key)
    net = ThreeWay(libotr, first, second)
    try:
        net.run("alice1", {"op": "start"})
        assert net.status("alice1")["state"] == "encrypted"
        assert net.status("alice2")["state"] == "encrypted"
        assert net.status("bob")["state"] == "encrypted"
        # Each instance reaches the buddy, in its own session.
        net.run("alice1", {"op": "send", "text": "from the laptop"})
        net.run("alice2", {"op": "send", "text": "from the phone"})
        assert net.messages("bob") == ["from the laptop", "from the phone"]
        assert net.status("alice1")["ssid"] != net.status("alice2")["ssid"]
        # The buddy's reply is addressed to one instance: exactly one shows it,
        # the other discards it as meant for another instance.
        net.run("bob", {"op": "send", "text": "hello, which one are you?"})
        shown = net.messages("alice1") + net.messages("alice2")
        assert shown == ["hello, which one are you?"]
    finally:
        libotr.close()
