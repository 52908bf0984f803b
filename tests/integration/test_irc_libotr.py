"""Interop through a real IRC server: ``offrecord chat irc --script`` talks to
libotr 4.1.1 (the C peer of ``tests/interop``), which reaches ngircd through
a small bridge: IRC private messages become the peer's ``recv`` commands and
its ``wire`` events become private messages.  AKE, messages both ways (long
ones fragmented by each side to the IRC budget), SMP with a question, end."""

from __future__ import annotations

import contextlib
import queue
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from offrecord.transports.irc import parse_line, relay_budget
from tests.integration.ngircd import ChatProcess, Ngircd, RecordingProxy
from tests.interop.build import build_libotr_peer
from tests.interop.router import SubprocessPeer, peer_args

pytestmark = pytest.mark.interop

ALICE_LONG = "offrecord to libotr, long enough to be fragmented: " + "abcdefghij" * 120
LIBOTR_LONG = "libotr to offrecord, just as long: " + "0123456789" * 120
SECRET = "correct horse battery staple"


class IRCBridge:
    """The libotr peer as an IRC user: ``nick`` on the server, talking to ``buddy``."""

    def __init__(self, port: int, nick: str, buddy: str, libotr: Path, workdir: Path) -> None:
        self.nick = nick
        self.buddy = buddy
        self.incoming: queue.Queue[str] = queue.Queue()
        self.events: list[dict[str, Any]] = []
        self._sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self._file = self._sock.makefile("rb")
        self._write(f"NICK {nick}")
        self._write(f"USER {nick} 0 * :libotr bridge")
        user_host = self._await_welcome()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        budget = relay_budget(nick, *user_host, buddy)
        self.peer = SubprocessPeer(
            [libotr, *peer_args(f"{nick}@127.0.0.1", buddy, protocol="prpl-irc",
                                keyfile=workdir / "libotr.key", max_fragment=budget)],
            name="libotr",
        )  # fmt: skip

    def _write(self, line: str) -> None:
        self._sock.sendall(line.encode("utf-8") + b"\r\n")

    def _await_welcome(self) -> tuple[str, str]:
        while True:
            raw = self._file.readline()
            if not raw:
                raise AssertionError("the server closed the bridge's connection")
            msg = parse_line(raw.decode("utf-8", errors="replace"))
            if msg is None:
                continue
            if msg.command == "PING":
                self._write(f"PONG :{msg.params[-1]}")
            elif msg.command == "001":
                mask = msg.params[-1].split()[-1]
                user, _, host = mask.split("!", 1)[1].partition("@")
                return user, host

    def _read(self) -> None:
        try:
            for raw in iter(self._file.readline, b""):
                msg = parse_line(raw.decode("utf-8", errors="replace"))
                if msg is None:
                    continue
                if msg.command == "PING":
                    self._write(f"PONG :{msg.params[-1]}")
                elif msg.command == "PRIVMSG" and msg.nick == self.buddy and len(msg.params) == 2:
                    self.incoming.put(msg.params[1])
        except OSError:
            pass

    def _handle(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            if event["ev"] == "wire":
                self._write(f"PRIVMSG {self.buddy} :{event['data']}")
                time.sleep(0.05)  # gentle pacing; ngircd throttles bursts anyway
            else:
                self.events.append(event)

    def command(self, cmd: dict[str, Any]) -> None:
        self._handle(self.peer.command(cmd))

    def run_until(self, done: Callable[[], bool], timeout: float = 30.0) -> None:
        """Carry messages from IRC into the peer until ``done()``."""
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise AssertionError(f"libotr side never got there; events: {self.events}")
            try:
                text = self.incoming.get(timeout=0.05)
            except queue.Empty:
                continue
            self.command({"op": "recv", "data": text})

    def has(self, **fields: Any) -> bool:
        return any(all(e.get(k) == v for k, v in fields.items()) for e in self.events)

    def close(self) -> None:
        self.peer.close()
        with contextlib.suppress(OSError):
            self._write("QUIT :bye")
        self._sock.close()


def test_offrecord_chat_and_libotr_through_ngircd(ngircd: Ngircd, tmp_path: Path) -> None:
    try:
        libotr = build_libotr_peer()
    except RuntimeError as exc:
        pytest.skip(str(exc))
    script = tmp_path / "alice.txt"
    script.write_text(
        "\n".join(
            [
                "/query lib",
                "/otr start",
                "/wait secured lib 30",
                "hello libotr",
                "/wait recv lib encrypted hello offrecord 30",
                ALICE_LONG,
                f"/wait recv lib encrypted {LIBOTR_LONG} 60",
                f'/otr smp "what is the passphrase?" "{SECRET}"',
                "/wait smp-result lib 60",
                "/wait recv lib encrypted bye now 30",
                "/otr end",
                "",
            ]
        ),
        encoding="utf-8",
    )
    proxy = RecordingProxy(ngircd.port)
    bridge = IRCBridge(ngircd.port, "lib", "alice", libotr, tmp_path)
    alice = ChatProcess([
        sys.executable, "-m", "offrecord.cli.main", "chat", "irc",
        "--server", f"127.0.0.1:{proxy.port}", "--nick", "alice",
        "--store", str(tmp_path / "alice"), "--script", str(script), "--pace", "0.2",
    ])  # fmt: skip
    try:
        bridge.run_until(lambda: bridge.has(ev="state", state="encrypted"))
        bridge.run_until(lambda: bridge.has(ev="message", text="hello libotr", encrypted=True))
        bridge.command({"op": "send", "text": "hello offrecord"})
        bridge.run_until(lambda: bridge.has(ev="message", text=ALICE_LONG, encrypted=True))
        bridge.command({"op": "send", "text": LIBOTR_LONG})
        bridge.run_until(lambda: bridge.has(ev="smp", state="asked"))
        asked = next(e for e in bridge.events if e.get("state") == "asked")
        assert asked["question"] == "what is the passphrase?"
        bridge.command({"op": "smp_respond", "secret": SECRET})
        bridge.run_until(lambda: bridge.has(ev="smp", result="success"))
        bridge.command({"op": "send", "text": "bye now"})
        bridge.run_until(lambda: bridge.has(ev="state", state="finished"))
        assert alice.finish() == 0, alice.describe("alice failed")
    finally:
        alice.kill()
        bridge.close()
        proxy.close()

    assert "smp-result lib success verified" in alice.lines
    assert "state lib encrypted-verified" in alice.lines
    assert f"recv lib encrypted {LIBOTR_LONG}" in alice.lines
    # Both sides fragmented their long message, and every relayed line fit.
    sent = [raw for raw in proxy.recorded(upstream=True) if raw.startswith(b"PRIVMSG lib :")]
    received = [raw for raw in proxy.recorded(upstream=False) if b" PRIVMSG alice :" in raw]
    assert sum(raw.startswith(b"PRIVMSG lib :?OTR|") for raw in sent) >= 3
    assert sum(b" PRIVMSG alice :?OTR|" in raw for raw in received) >= 3
    assert max(len(raw) for raw in received) <= 512
    # After the query, offrecord put nothing but OTR messages on the wire.
    assert all(raw.startswith(b"PRIVMSG lib :?OTR") for raw in sent)
    everything = b"".join(proxy.recorded(upstream=True) + proxy.recorded(upstream=False))
    for secret in (b"hello", b"abcdefghij", b"0123456789", SECRET.encode(), b"bye now"):
        assert secret not in everything
