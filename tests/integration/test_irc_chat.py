"""Two ``offrecord chat irc --script`` clients through a real ngircd: AKE,
messages (one long enough to fragment), SMP with a question, the end of the
session — and what the server saw: only OTR traffic once encrypted, never a
secret, never a line over IRC's 512 bytes."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from tests.integration.ngircd import ChatProcess, Ngircd, RecordingProxy

LONG_TEXT = " ".join(f"L{i:04d}-été" for i in range(150))  # ~1650 bytes of UTF-8
SECRET = "Lisbon-2019-tram-28"
QUESTION = "Where did we first meet?"
CLEAR = "hello in the clear"


def chat_argv(port: int, nick: str, store: Path, script: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "offrecord.cli.main", "chat", "irc",
        "--server", f"127.0.0.1:{port}", "--nick", nick,
        "--store", str(store), "--script", str(script), "--pace", "0.25", *extra,
    ]  # fmt: skip


def privmsg_text(raw: bytes) -> tuple[str, str] | None:
    """(target, text) of a PRIVMSG line as the client or server wrote it."""
    match = re.match(rb"^(?::\S+ )?PRIVMSG (\S+) :(.*?)\r?\n?$", raw)
    if match is None:
        return None
    return match.group(1).decode(), match.group(2).decode("utf-8", errors="replace")


def test_two_clients_talk_privately_through_ngircd(ngircd: Ngircd, tmp_path: Path) -> None:
    alice_script = tmp_path / "alice.txt"
    alice_script.write_text(
        "\n".join(
            [
                "/query bob",
                CLEAR,
                # ngircd strips trailing whitespace, so the whitespace tag of
                # the opportunistic policy never arrives: ask explicitly.
                "/otr start",
                "/wait secured bob 30",
                "/wait state bob encrypted-unverified 5",
                LONG_TEXT,
                "/wait recv bob encrypted got it 30",
                f'/otr smp "{QUESTION}" {SECRET}',
                "/wait smp-result bob 30",
                "/otr status",
                "/wait recv bob encrypted bye now 30",
                "/otr end",
                "",
            ]
        ),
        encoding="utf-8",
    )
    bob_script = tmp_path / "bob.txt"
    bob_script.write_text(
        "\n".join(
            [
                "/query alice",
                f"/wait recv alice plaintext {CLEAR} 30",
                "/wait secured alice 30",
                "/wait recv alice encrypted L0000 30",
                "got it",
                "/wait smp-asked alice 30",
                f"/otr smp-respond {SECRET}",
                "/wait smp-result alice 30",
                "bye now",
                "/wait state alice finished 30",
                "",
            ]
        ),
        encoding="utf-8",
    )
    alice_proxy = RecordingProxy(ngircd.port)
    bob_proxy = RecordingProxy(ngircd.port)
    bob = ChatProcess(chat_argv(bob_proxy.port, "bob", tmp_path / "bob", bob_script))
    alice: ChatProcess | None = None
    try:
        bob.wait_line("ready ")
        alice = ChatProcess(chat_argv(alice_proxy.port, "alice", tmp_path / "alice", alice_script))
        assert alice.finish() == 0, alice.describe("alice failed") + bob.describe("bob:")
        assert bob.finish() == 0, bob.describe("bob failed") + alice.describe("alice:")
    finally:
        bob.kill()
        if alice is not None:
            alice.kill()
        alice_proxy.close()
        bob_proxy.close()

    # What the users saw.
    assert "generating a DSA-1024 key" in alice.stderr  # first use: progress shown
    assert f"recv alice plaintext {CLEAR}" in bob.lines
    assert f"recv alice encrypted {LONG_TEXT}" in bob.lines
    assert "recv bob encrypted got it" in alice.lines
    assert f"smp-asked alice {QUESTION}" in bob.lines
    assert "smp-result bob success verified" in alice.lines
    assert "smp-result alice success unverified" in bob.lines
    assert "state bob encrypted-verified" in alice.lines
    assert any(
        line.startswith("status bob state=encrypted-verified version=3") for line in alice.lines
    )
    assert "state alice finished" in bob.lines
    assert alice.lines[-1] == "state bob plaintext"

    # What the network saw from each client.
    alice_sent = [
        m for m in map(privmsg_text, alice_proxy.recorded(upstream=True)) if m is not None
    ]
    bob_sent = [m for m in map(privmsg_text, bob_proxy.recorded(upstream=True)) if m is not None]
    assert alice_sent and bob_sent
    assert {target for target, _ in alice_sent} == {"bob"}
    assert {target for target, _ in bob_sent} == {"alice"}
    # Alice's first message is the plaintext she typed (opportunistic: with
    # the whitespace tag); everything after it is OTR.
    assert alice_sent[0][1].startswith(CLEAR + " \t  \t\t\t\t \t \t \t  ")
    assert all(text.startswith("?OTR") for _, text in alice_sent[1:]), alice_sent
    assert all(text.startswith("?OTR") for _, text in bob_sent), bob_sent
    # The long message went as several fragments.
    fragments = [text for _, text in alice_sent if text.startswith("?OTR|")]
    counts = {int(text.split(",")[2]) for text in fragments}
    assert max(counts) >= 3, counts

    everything = b"".join(
        b"".join(proxy.recorded(upstream=direction))
        for proxy in (alice_proxy, bob_proxy)
        for direction in (True, False)
    )
    for secret in (SECRET, "L0000", "got it", "bye now", QUESTION):
        assert secret.encode() not in everything

    # Every line the server relayed to bob fits IRC's 512 bytes, and the
    # fragment budget used nearly all of it (our real user@host was learned).
    relayed = [raw for raw in bob_proxy.recorded(upstream=False) if b" PRIVMSG bob :" in raw]
    assert relayed
    assert max(len(raw) for raw in relayed) <= 512
    assert max(len(raw) for raw in relayed) >= 500
