"""``offrecord demo --irc``: the whole story through a real ngircd, run as a
user would run it, with every line between the demo and the server recorded."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.integration.ngircd import Ngircd, RecordingProxy


def test_demo_over_ngircd(ngircd: Ngircd) -> None:
    proxy = RecordingProxy(ngircd.port)
    try:
        result = subprocess.run(
            [
                sys.executable, "-m", "offrecord.cli.main", "demo",
                "--irc", f"127.0.0.1:{proxy.port}", "--pace", "0.1",
            ],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )  # fmt: skip
    finally:
        proxy.close()
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    match = re.search(
        r"alice is '(alice\d{3})' \(prpl-irc: account '[^']+'\), bob is '(bob\d{3})'", out
    )
    assert match, out
    assert out.count("private conversation started (OTR v3)") == 2
    assert "sees (encrypted): Hi Bob, this is private." in out
    assert out.count("SMP finished: the answers match") == 2
    assert "its MAC verifies with the published key" in out
    assert "alice ended the private conversation" in out
    # IRC lines are short: the AKE and the long message travel in fragments
    assert "[fragment 1/" in out

    texts = []
    for raw in proxy.recorded(upstream=True):
        privmsg = re.match(rb"^PRIVMSG (\S+) :(.*?)\r?\n?$", raw)
        if privmsg is not None:
            texts.append(privmsg.group(2).decode())
    assert texts[0].startswith("?OTRv23?")
    assert len(texts) > 10
    assert all(text.startswith("?OTR") for text in texts[1:]), texts
    everything = b"".join(proxy.recorded(upstream=True) + proxy.recorded(upstream=False))
    for secret in (b"this is private", b"Nobody else", b"blue", b"first bike"):
        assert secret not in everything
