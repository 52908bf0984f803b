"""Running the chat client as the command does: the store and the key made on
first use, script input from a pipe, exit statuses, and the ``offrecord chat
irc`` command line."""

from __future__ import annotations

import argparse
import asyncio
import io
import socket
from pathlib import Path

import pytest

from offrecord.chat.app import EXIT_FAILURE, add_chat_options, run_chat_async
from offrecord.chat.script import EXIT_COMMAND_FAILED, EXIT_OK, EXIT_WAIT_TIMEOUT
from offrecord.cli.chat import parse_server
from offrecord.cli.main import build_parser, main
from offrecord.storage.libotr import LibotrStore
from offrecord.transports.base import TransportError
from tests.unit.test_chat_client import FakeTransport, Network


class PipeIn(io.StringIO):
    """A script on stdin that is not a terminal."""

    def isatty(self) -> bool:
        return False


class TerminalIn(io.StringIO):
    def isatty(self) -> bool:
        return True


def options(store: Path, *extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_chat_options(parser)
    return parser.parse_args(["--store", str(store), *extra])


def run_app(
    args: argparse.Namespace, script: str, *, network: Network | None = None,
    fail_connect: bool = False,
) -> tuple[int, str, str]:  # fmt: skip
    out, err = io.StringIO(), io.StringIO()

    def make() -> FakeTransport:
        transport = FakeTransport(network or Network(), "alice")
        if fail_connect:

            async def refuse() -> None:
                raise TransportError("cannot connect to nowhere: refused")

            transport.connect = refuse  # type: ignore[method-assign]
        return transport

    status = asyncio.run(
        asyncio.wait_for(
            run_chat_async(make, args, stdin=PipeIn(script), stdout=out, stderr=err), 30
        )
    )
    return status, out.getvalue(), err.getvalue()


def test_first_use_generates_and_saves_a_key(tmp_path: Path) -> None:
    status, out, err = run_app(options(tmp_path / "store"), "/otr fingerprint\n")
    assert status == EXIT_OK
    assert "generating a DSA-1024 key for alice@fake (prpl-fake)" in err
    key = LibotrStore(tmp_path / "store").get_private_key("alice@fake", "prpl-fake")
    assert key is not None
    fingerprint = key.fingerprint().hex().upper()
    assert out.splitlines()[0] == f"ready - alice@fake {fingerprint}"
    assert f"fingerprint - ours {fingerprint}" in out
    # The second run uses the same key and says nothing about generating one.
    status, out, err = run_app(options(tmp_path / "store"), "")
    assert status == EXIT_OK and err == ""
    assert out.splitlines()[0] == f"ready - alice@fake {fingerprint}"


def test_peer_policy_and_script_from_a_pipe(tmp_path: Path) -> None:
    status, out, _ = run_app(
        options(tmp_path, "--peer", "Bob", "--policy", "always"), "/otr policy\nheld one\n"
    )
    assert status == EXIT_OK
    lines = out.splitlines()
    assert lines[1] == "query bob plaintext"
    assert "policy - always" in lines
    assert "held bob 1 held one" in lines


def test_script_exit_statuses(tmp_path: Path) -> None:
    assert run_app(options(tmp_path), "/bogus\n")[0] == EXIT_COMMAND_FAILED
    status, out, _ = run_app(options(tmp_path), "/wait secured 0.1\n")
    assert status == EXIT_WAIT_TIMEOUT
    assert out.splitlines()[-1] == "timeout - secured"


def test_script_file(tmp_path: Path) -> None:
    script = tmp_path / "s.txt"
    script.write_text("/query carol\n/otr status\n", encoding="utf-8")
    status, out, _ = run_app(options(tmp_path, "--script", str(script)), "ignored\n")
    assert status == EXIT_OK
    assert "status carol state=plaintext" in out
    assert "ignored" not in out


def test_missing_script_and_failed_connection(tmp_path: Path) -> None:
    status, _, err = run_app(options(tmp_path, "--script", str(tmp_path / "none")), "")
    assert status == EXIT_FAILURE and "cannot read the script" in err
    status, out, err = run_app(options(tmp_path), "", fail_connect=True)
    assert status == EXIT_FAILURE
    assert "cannot connect to nowhere: refused" in err
    assert out == ""


def test_a_store_that_is_a_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    status, _, err = run_app(options(tmp_path / "file"), "")
    assert status == EXIT_FAILURE and "not a directory" in err


def test_terminal_input_without_script_would_start_the_ui() -> None:
    from offrecord.chat.app import _script_source

    args = argparse.Namespace(script=None)
    assert _script_source(args, TerminalIn("")) is None
    assert _script_source(argparse.Namespace(script="-"), TerminalIn("")) is not None


# -- the command line ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "tls", "expected"),
    [
        ("irc.example.org", False, ("irc.example.org", 6667)),
        ("irc.example.org", True, ("irc.example.org", 6697)),
        ("irc.example.org:7000", True, ("irc.example.org", 7000)),
        ("[::1]:6668", False, ("::1", 6668)),
        ("[::1]", True, ("::1", 6697)),
        ("::1", False, ("::1", 6667)),
    ],
)
def test_parse_server(text: str, tls: bool, expected: tuple[str, int]) -> None:
    assert parse_server(text, tls=tls) == expected


@pytest.mark.parametrize("text", ["", ":6667", "host:port", "host:0", "host:70000", "[::1]x"])
def test_parse_server_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_server(text, tls=False)


def test_chat_irc_options() -> None:
    args = build_parser().parse_args(
        ["chat", "irc", "--server", "h:1", "--nick", "n", "--tls", "--pace", "0.5",
         "--peer", "p", "--policy", "manual", "--script", "f", "--store", "d"]
    )  # fmt: skip
    assert (args.server, args.nick, args.tls, args.pace) == ("h:1", "n", True, 0.5)
    assert (args.peer, args.policy, args.script, args.store) == ("p", "manual", "f", "d")


@pytest.mark.parametrize(
    "argv",
    [
        ["chat", "irc", "--nick", "n"],
        ["chat", "irc", "--server", "h"],
        ["chat", "irc", "--server", "h", "--nick", "n", "--pace", "-1"],
        ["chat", "irc", "--server", "h", "--nick", "n", "--policy", "sometimes"],
        ["chat", "irc", "--server", "h:x", "--nick", "n"],
        ["chat", "irc", "--server", "h", "--nick", "#chan"],
        ["chat", "irc", "--server", "h", "--nick", "n", "--password-file", "/nonexistent/x"],
        ["chat"],
    ],
)
def test_bad_usage_exits_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert capsys.readouterr().err


def test_unreachable_server_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    script = tmp_path / "s.txt"
    script.write_text("")
    status = main(["chat", "irc", "--server", f"127.0.0.1:{port}", "--nick", "n",
                   "--store", str(tmp_path / "store"), "--script", str(script)])  # fmt: skip
    assert status == EXIT_FAILURE
    assert f"cannot connect to 127.0.0.1:{port}" in capsys.readouterr().err
