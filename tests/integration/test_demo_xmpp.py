"""``offrecord demo --xmpp``: the whole story through a real Prosody, run as
a user would run it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.integration.prosody import Prosody, prosody_server

__all__ = ["prosody_server"]


def test_demo_over_prosody(prosody_server: Prosody, tmp_path: Path) -> None:
    files = {}
    for user, password in prosody_server.passwords.items():
        files[user] = tmp_path / f"{user}.password"
        files[user].write_text(password + "\n")
    host, port = prosody_server.address
    result = subprocess.run(
        [
            sys.executable, "-m", "offrecord.cli.main", "demo",
            "--xmpp", f"{host}:{port}",
            "--alice", prosody_server.jid("alice"),
            "--bob", prosody_server.jid("bob"),
            "--alice-password-file", str(files["alice"]),
            "--bob-password-file", str(files["bob"]),
            "--ca-file", str(prosody_server.ca_file),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert (
        "alice is 'alice@offrecord.test' (prpl-jabber: account 'alice@offrecord.test/'), "
        "bob is 'bob@offrecord.test'"
    ) in out
    assert result.stderr == ""
    assert out.count("private conversation started (OTR v3)") == 2
    assert "sees (encrypted): Hi Bob, this is private." in out
    assert out.count("SMP finished: the answers match") == 2
    assert "its MAC verifies with the published key" in out
    assert "alice ended the private conversation" in out
    # XMPP's limit is large: nothing needed fragmenting
    assert "[fragment" not in out

    # What the server received: the query, then only OTR protocol messages.
    bodies = [body for _, body in prosody_server.received_bodies()]
    assert bodies[0].startswith("?OTRv23?")
    assert len(bodies) >= 10
    assert all(body.startswith("?OTR:") for body in bodies[1:])
    assert not any("private." in body or "blue" in body for body in bodies)


def test_demo_with_a_wrong_password_says_why(prosody_server: Prosody, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.password"
    wrong.write_text("not-the-password\n")
    right = tmp_path / "bob.password"
    right.write_text(prosody_server.passwords["bob"] + "\n")
    host, port = prosody_server.address
    result = subprocess.run(
        [
            sys.executable, "-m", "offrecord.cli.main", "demo",
            "--xmpp", f"{host}:{port}",
            "--alice", prosody_server.jid("alice"), "--bob", prosody_server.jid("bob"),
            "--alice-password-file", str(wrong), "--bob-password-file", str(right),
            "--ca-file", str(prosody_server.ca_file),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert "cannot connect: alice@offrecord.test: login failed" in result.stdout
    # the reason is said once, without slixmpp's own log lines on stderr
    assert result.stderr == ""
