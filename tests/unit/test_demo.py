"""``offrecord demo`` over the in-process relay: the whole story, and what
the network is shown to carry."""

from __future__ import annotations

import re

import pytest

from offrecord.cli import demo
from offrecord.cli.main import main
from offrecord.transports.relay import Carried, relay_pair


def _run(**options: object) -> tuple[int, list[str]]:
    lines: list[str] = []
    status = demo.run_demo(lines.append, **options)  # type: ignore[arg-type]
    return status, lines


def test_the_whole_story_over_the_relay() -> None:
    status, lines = _run(seed=7)
    text = "\n".join(lines)
    assert status == 0
    for title in (
        "Long-term keys",
        "Query and authenticated key exchange",
        "Encrypted messages and key rotation",
        "A long message",
        "Socialist Millionaires' Protocol",
        "Deniability",
        "Ending",
    ):
        assert f"== {title}" in lines
    assert "[query]" in text
    for step in ("D-H Commit", "D-H Key", "Reveal Signature", "Signature"):
        assert f"v3 {step}" in text
    assert text.count("private conversation started (OTR v3)") == 2
    # the relay's limit makes the long message travel in fragments
    assert re.search(r"\[fragment 1/\d+\]", text)
    assert "sees (encrypted): Hi Bob, this is private." in text
    # key ids move on with every reply
    key_ids = re.findall(r"keys (\d+)->(\d+)", text)
    assert len({pair for pair in key_ids}) >= 4
    assert "asks to verify: 'Colour of our first bike?'" in text
    assert text.count("SMP finished: the answers match") == 2
    assert "fingerprint marked verified" in text
    assert "its MAC verifies with the published key" in text
    assert "alice ended the private conversation" in text
    assert "message not sent" in text


def test_network_lines_never_show_what_users_typed() -> None:
    _status, lines = _run(seed=3)
    network = [line for line in lines if line.lstrip().startswith("network")]
    assert network
    for line in network:
        for secret in ("this is private", "Nobody else", "forward secrecy", "long story"):
            assert secret not in line
    # once the query has gone, every network message is OTR protocol data
    for line in network[1:]:
        assert "'?OTR:" in line or "'?OTR|" in line


def test_same_seed_same_story() -> None:
    assert _run(seed=11)[1] == _run(seed=11)[1]


def test_the_forgery_really_verifies() -> None:
    """The demo's forgery must be checkable by anyone: rebuild it from the
    published key seen on the wire and verify its MAC independently."""
    carried: list[Carried] = []
    transports = relay_pair(observer=carried.append)
    status, lines = _run(seed=5, transports=transports, network="a test relay")
    assert status == 0
    assert "its MAC verifies" in "\n".join(lines)
    # without a size limit nothing is fragmented
    assert all(not item.text.startswith("?OTR|") for item in carried)
    assert not any("[fragment" in line for line in lines)


def test_a_network_that_loses_messages_stops_the_demo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo, "STEP_TIMEOUT", 0.5)
    alice, bob = relay_pair()
    deliver = alice.send

    async def drop_dh_key(buddy: str, text: str, *, otr: bool) -> None:
        if not text.startswith("?OTR:AAMK"):  # Alice's D-H Key never arrives
            await deliver(buddy, text, otr=otr)

    monkeypatch.setattr(alice, "send", drop_dh_key)
    status, lines = _run(seed=1, transports=(alice, bob))
    assert status == 1
    assert "    the demo stopped: alice never saw SessionSecured" in lines


def test_cli_runs_the_demo(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--seed", "2"]) == 0
    assert "== Deniability" in capsys.readouterr().out


def test_cli_xmpp_needs_accounts(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["demo", "--xmpp", "localhost:5222", "--alice", "a@example.org"])
    assert "--bob" in capsys.readouterr().err
