"""Two ``offrecord chat xmpp --script`` clients through a real Prosody: AKE,
messages (one long enough to fragment), SMP with a question, the end of the
session — and what the server received: after the first plaintext message,
only OTR protocol messages, carrying the no-store hints, never a secret."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from tests.integration.ngircd import ChatProcess
from tests.integration.prosody import Prosody, prosody_server

__all__ = ["prosody_server"]

# A small fragment size so that the long message must be fragmented (XMPP's
# default limit is far larger than any chat message).
FRAGMENT_SIZE = 1000
LONG_TEXT = " ".join(f"X{i:04d}-žluť" for i in range(300))  # ~3300 characters
SECRET = "Lisbon-2019-tram-28"
QUESTION = "Where did we first meet?"
CLEAR = "hello in the clear"
ALICE = "alice@offrecord.test"
BOB = "bob@offrecord.test"


def chat_argv(
    server: Prosody, user: str, password_file: Path, store: Path, script: Path
) -> list[str]:
    host, port = server.address
    return [
        sys.executable, "-m", "offrecord.cli.main", "chat", "xmpp",
        "--jid", server.jid(user), "--password-file", str(password_file),
        "--server", f"{host}:{port}", "--ca-file", str(server.ca_file),
        "--max-message-size", str(FRAGMENT_SIZE),
        "--store", str(store), "--script", str(script),
    ]  # fmt: skip


def test_two_clients_talk_privately_through_prosody(
    prosody_server: Prosody, tmp_path: Path
) -> None:
    passwords = {}
    for user, password in prosody_server.passwords.items():
        passwords[user] = tmp_path / f"{user}.password"
        passwords[user].write_text(password + "\n", encoding="utf-8")
    alice_script = tmp_path / "alice.txt"
    alice_script.write_text(
        "\n".join(
            [
                f"/query {BOB}",
                CLEAR,
                "/otr start",
                f"/wait secured {BOB} 30",
                LONG_TEXT,
                f"/wait recv {BOB} encrypted got it 30",
                f'/otr smp "{QUESTION}" {SECRET}',
                f"/wait smp-result {BOB} 30",
                "/otr status",
                f"/wait recv {BOB} encrypted bye now 30",
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
                f"/query {ALICE}",
                f"/wait recv {ALICE} plaintext {CLEAR} 30",
                f"/wait secured {ALICE} 30",
                f"/wait recv {ALICE} encrypted X0000 30",
                "got it",
                f"/wait smp-asked {ALICE} 30",
                f"/otr smp-respond {SECRET}",
                f"/wait smp-result {ALICE} 30",
                "bye now",
                f"/wait state {ALICE} finished 30",
                "",
            ]
        ),
        encoding="utf-8",
    )
    bob = ChatProcess(
        chat_argv(prosody_server, "bob", passwords["bob"], tmp_path / "bob", bob_script)
    )
    alice: ChatProcess | None = None
    try:
        bob.wait_line("ready ")
        alice = ChatProcess(
            chat_argv(prosody_server, "alice", passwords["alice"], tmp_path / "alice", alice_script)
        )
        assert alice.finish() == 0, alice.describe("alice failed") + bob.describe("bob:")
        assert bob.finish() == 0, bob.describe("bob failed") + alice.describe("alice:")
    finally:
        bob.kill()
        if alice is not None:
            alice.kill()

    # What the users saw.
    assert f"recv {ALICE} plaintext {CLEAR}" in bob.lines
    assert f"recv {ALICE} encrypted {LONG_TEXT}" in bob.lines
    assert f"recv {BOB} encrypted got it" in alice.lines
    assert f"smp-asked {ALICE} {QUESTION}" in bob.lines
    assert f"smp-result {BOB} success verified" in alice.lines
    assert f"state {ALICE} finished" in bob.lines
    # Keys are filed under the account as Pidgin names it.
    assert (tmp_path / "alice" / "otr.private_key").read_text().count(f"{ALICE}/") == 1

    # What the server received, from its own log of every stanza.
    received = prosody_server.received_bodies()
    from_alice = [body for sender, body in received if sender.startswith(ALICE)]
    from_bob = [body for sender, body in received if sender.startswith(BOB)]
    assert len(from_alice) > 5 and len(from_bob) > 5
    assert from_alice[0].startswith(CLEAR)  # the opportunistic whitespace tag follows
    assert all(body.startswith("?OTR") for body in from_alice[1:]), from_alice
    assert all(body.startswith("?OTR") for body in from_bob), from_bob
    fragments = [body for body in from_alice if body.startswith("?OTR|")]
    assert max(int(body.split(",")[2]) for body in fragments) >= 3
    assert max(len(body) for body in from_alice + from_bob) <= FRAGMENT_SIZE
    log = prosody_server.log_file.read_text(encoding="utf-8")
    for secret in (SECRET, "X0000", "got it", "bye now", QUESTION):
        assert secret not in log
    # Every OTR message carried the hints; the plaintext one did not.
    stanzas = re.findall(r"RECV: (<message\b.*?</message>)", log, re.DOTALL)
    with_body = [s for s in stanzas if "<body>" in s]
    assert len(with_body) == len(received)
    for stanza in with_body:
        hinted = "<no-store xmlns='urn:xmpp:hints'/>" in stanza
        assert hinted == ("?OTR" in stanza.split("<body>")[1][:5]), stanza
