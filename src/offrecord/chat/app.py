"""Running the chat client: the store, the key (generated on first use), the
network connection, and the terminal UI or script mode.

A network front end needs only a transport factory::

    def _cmd_chat_irc(args):
        return run_chat(lambda: IRCTransport(host, port, nick=args.nick), args)

``args`` carries the options :func:`add_chat_options` adds (``--store``,
``--peer``, ``--script``, ``--policy``).  The factory is called inside the
event loop, so transports may create loop-bound objects.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Final, TextIO

from offrecord.account import Account
from offrecord.chat import commands as cmd
from offrecord.chat.client import ChatClient
from offrecord.chat.render import Line
from offrecord.chat.script import (
    EXIT_DISCONNECTED,
    ScriptOutput,
    lines_from_stream,
    run_script,
)
from offrecord.cli.keys import (
    default_store_directory,
    generate_with_progress,
    resolve_store_directory,
)
from offrecord.crypto.dsa import DSAPrivateKey, format_fingerprint
from offrecord.errors import OTRError
from offrecord.policy import Policy
from offrecord.storage.libotr import LibotrStore
from offrecord.storage.trust import StoreTrustBook
from offrecord.transports.base import ChatTransport, TransportError

__all__ = [
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "add_chat_options",
    "load_account",
    "run_chat",
    "run_chat_async",
]

EXIT_FAILURE: Final = 1
EXIT_INTERRUPTED: Final = 130

TransportFactory = Callable[[], ChatTransport]


def add_chat_options(parser: argparse.ArgumentParser) -> None:
    """The options every ``offrecord chat NETWORK`` command shares."""
    parser.add_argument(
        "--store",
        metavar="DIR",
        default=None,
        help=f"the key and fingerprint store (default: $OFFRECORD_STORE, else "
        f"{default_store_directory()})",
    )
    parser.add_argument(
        "--peer", metavar="BUDDY", default=None, help="the buddy to talk to first (as /query BUDDY)"
    )
    parser.add_argument(
        "--script",
        metavar="FILE",
        default=None,
        help="script mode: read commands and messages from FILE ('-': stdin) and print "
        "events as lines (also when stdin is not a terminal)",
    )
    parser.add_argument(
        "--policy",
        choices=cmd.POLICY_NAMES,
        default="opportunistic",
        help="the OTR policy (default: opportunistic; change it later with /otr policy)",
    )


def _write_line(stream: TextIO) -> Callable[[str], None]:
    def write(text: str) -> None:
        encoding = getattr(stream, "encoding", None) or "utf-8"
        try:
            safe = text.encode(encoding, "backslashreplace").decode(encoding)
        except LookupError:
            safe = text
        stream.write(safe + "\n")
        stream.flush()

    return write


async def _private_key(
    store: LibotrStore, name: str, protocol: str, progress: TextIO
) -> DSAPrivateKey:
    loop = asyncio.get_running_loop()
    key = await loop.run_in_executor(None, store.get_private_key, name, protocol)
    if key is not None:
        return key
    new_key = await generate_with_progress(f"{name} ({protocol})", progress)

    def save() -> DSAPrivateKey:
        current = store.get_private_key(name, protocol)
        if current is not None:  # another process was quicker
            return current
        store.save_private_key(name, protocol, new_key)
        return new_key

    key = await loop.run_in_executor(None, save)
    progress.write(f"offrecord: your fingerprint is {format_fingerprint(key.fingerprint())}\n")
    progress.flush()
    return key


async def load_account(
    transport: ChatTransport,
    store_option: str | None,
    policy: Policy,
    progress: TextIO,
    on_store_error: Callable[[OTRError], None] | None = None,
) -> Account:
    """The transport's account from the store, with a key generated (with
    progress on ``progress``) the first time."""
    directory = resolve_store_directory(store_option)
    if directory.exists() and not directory.is_dir():
        raise OTRError(f"{directory}: the store is not a directory")
    store = LibotrStore(directory)
    name, protocol = transport.account_name, transport.protocol
    await _private_key(store, name, protocol, progress)
    account = Account.from_store(store, name, protocol, clock=time.monotonic, policy=policy)
    account.trust = StoreTrustBook(store, name, protocol, on_error=on_store_error)
    return account


def _script_source(
    args: argparse.Namespace, stdin: TextIO
) -> Iterable[str] | AsyncIterator[str] | None:
    script = getattr(args, "script", None)
    if script == "-" or (script is None and not stdin.isatty()):
        return lines_from_stream(stdin)
    if script is None:
        return None
    with open(Path(script), encoding="utf-8", errors="surrogateescape") as handle:
        return handle.read().splitlines()


async def run_chat_async(
    make_transport: TransportFactory,
    args: argparse.Namespace,
    *,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """:func:`run_chat` inside a running loop (and with other streams, for tests)."""
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    say = _write_line(stderr)
    try:
        source = _script_source(args, stdin)
    except OSError as exc:
        say(f"offrecord chat: cannot read the script: {exc.strerror or exc}")
        return EXIT_FAILURE
    transport = make_transport()
    if source is not None:
        output: Callable[[Line], None] = ScriptOutput(_write_line(stdout))
    else:
        from offrecord.chat.tui import ChatScreen

        screen = ChatScreen()
        output = screen.show
    client_holder: list[ChatClient] = []

    def store_error(exc: OTRError) -> None:
        output(Line("error", None, (), f"the store failed: {exc}"))

    try:
        account = await load_account(
            transport,
            getattr(args, "store", None),
            Policy.preset(args.policy),
            stderr,
            store_error,
        )
    except OTRError as exc:
        say(f"offrecord chat: {exc}")
        return EXIT_FAILURE
    client = ChatClient(account, transport, output)
    client_holder.append(client)
    try:
        await transport.connect()
    except TransportError as exc:
        say(f"offrecord chat: {exc}")
        with contextlib.suppress(Exception):
            await transport.close()
        return EXIT_FAILURE
    output(Line("ready", None, (transport.account_name, account.fingerprint.hex().upper())))
    network = asyncio.ensure_future(client.receive_loop())
    ticker = asyncio.ensure_future(client.tick_loop())
    try:
        if getattr(args, "peer", None):
            await client.handle(cmd.Query(args.peer))
        if source is not None:
            assert isinstance(output, ScriptOutput)
            status = await run_script(client, output, source, network=network)
        else:
            status = await screen.run(client, network)
    finally:
        ticker.cancel()
        with contextlib.suppress(Exception):
            await client.quit()
        network.cancel()
        for task in (ticker, network):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    if client.disconnected is not None and status == 0:
        status = EXIT_DISCONNECTED
    return status


def run_chat(make_transport: TransportFactory, args: argparse.Namespace) -> int:
    """Run ``offrecord chat`` over the transport ``make_transport`` builds;
    returns the exit status."""
    try:
        return asyncio.run(run_chat_async(make_transport, args))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
