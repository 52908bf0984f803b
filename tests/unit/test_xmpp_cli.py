"""``offrecord chat xmpp`` options, checked before anything connects."""

from __future__ import annotations

from pathlib import Path

import pytest

from offrecord.cli.main import build_parser, main


def _error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def test_a_password_is_needed_in_script_mode(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = tmp_path / "script.txt"
    script.write_text("/quit\n")
    err = _error(["chat", "xmpp", "--jid", "alice@example.org", "--script", str(script)], capsys)
    assert "--password-file" in err


@pytest.mark.parametrize(
    ("options", "complaint"),
    [
        (["--jid", "not a jid"], "JID"),
        (["--jid", "example.org"], "user and a domain"),
        (["--jid", "a@example.org", "--ca-file", "/nonexistent.pem"], "CA file"),
        (["--jid", "a@example.org", "--server", "host:99999"], "port"),
        (["--jid", "a@example.org", "--max-message-size", "100"], "at least 500"),
        (["--jid", "a@example.org", "--password-file", "/nonexistent"], "cannot read"),
    ],
)
def test_bad_options_are_refused(
    options: list[str], complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert complaint in _error(["chat", "xmpp", *options], capsys)


def test_the_options_reach_the_command(tmp_path: Path) -> None:
    args = build_parser().parse_args(
        [
            "chat", "xmpp", "--jid", "alice@example.org/laptop",
            "--password-file", str(tmp_path / "pw"), "--server", "[::1]:5223",
            "--max-message-size", "0", "--peer", "bob@example.org",
        ]
    )  # fmt: skip
    assert args.jid == "alice@example.org/laptop"
    assert args.server == "[::1]:5223"
    assert args.max_message_size == 0
    assert args.peer == "bob@example.org"
