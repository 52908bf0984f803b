"""``offrecord chat xmpp``: the chat client on an XMPP account (``docs/chat.md``)."""

from __future__ import annotations

import argparse
import getpass
import sys

from offrecord.chat.app import add_chat_options, run_chat
from offrecord.cli.demo import parse_host_port

__all__ = ["register_xmpp_command"]


def _size(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value != 0 and value < 500:
        raise argparse.ArgumentTypeError("the size must be 0 (no limit) or at least 500")
    return value


def _password(args: argparse.Namespace, parser: argparse.ArgumentParser) -> str:
    if args.password_file is not None:
        try:
            with open(args.password_file, encoding="utf-8") as handle:
                return handle.readline().rstrip("\r\n")
        except OSError as exc:
            parser.error(f"cannot read {args.password_file}: {exc.strerror}")
    if args.script is not None or not sys.stdin.isatty():
        parser.error("--password-file FILE is needed when the password cannot be asked for")
    return getpass.getpass(f"Password for {args.jid}: ")


def _cmd_chat_xmpp(args: argparse.Namespace) -> int:
    from offrecord.transports.xmpp import DEFAULT_MAX_MESSAGE_SIZE, XMPPTransport

    parser: argparse.ArgumentParser = args.parser
    server = None
    if args.server is not None:
        try:
            server = parse_host_port(args.server, 5222)
        except ValueError as exc:
            parser.error(str(exc))
    size = DEFAULT_MAX_MESSAGE_SIZE if args.max_message_size is None else args.max_message_size
    try:  # check the JID and the CA file before anything else
        XMPPTransport(args.jid, "", server=server, ca_file=args.ca_file, max_message_size=size)
    except ValueError as exc:
        parser.error(str(exc))
    password = _password(args, parser)

    def make() -> XMPPTransport:
        return XMPPTransport(
            args.jid, password, server=server, ca_file=args.ca_file, max_message_size=size
        )

    return run_chat(make, args)


def register_xmpp_command(networks: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``offrecord chat xmpp`` next to the other networks."""
    xmpp = networks.add_parser(
        "xmpp",
        help="over an XMPP (Jabber) account",
        description="Log in to an XMPP account and chat privately with other JIDs. The "
        "connection always uses STARTTLS with the server's certificate verified. "
        "See docs/chat.md.",
    )
    xmpp.add_argument("--jid", required=True, help="your JID (user@domain[/resource])")
    xmpp.add_argument(
        "--password-file",
        metavar="FILE",
        default=None,
        help="the password: first line of FILE (asked for when omitted on a terminal)",
    )
    xmpp.add_argument(
        "--server",
        metavar="HOST[:PORT]",
        default=None,
        help="connect here instead of the server found through DNS for the JID's domain "
        "(the certificate must still name that domain)",
    )
    xmpp.add_argument(
        "--ca-file",
        metavar="PEM",
        default=None,
        help="also trust the CA certificates in PEM (a private server)",
    )
    xmpp.add_argument(
        "--max-message-size",
        metavar="CHARS",
        type=_size,
        default=None,
        help="the longest message sent before OTR fragments it (default 32768; 0: never)",
    )
    add_chat_options(xmpp)
    xmpp.set_defaults(func=_cmd_chat_xmpp, parser=xmpp)
