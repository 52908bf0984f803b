"""``offrecord chat NETWORK``: the chat client on a network (``docs/chat.md``).

Each network is one subcommand that builds its transport from its own
options and hands it to :func:`offrecord.chat.run_chat`; the options all
networks share come from :func:`offrecord.chat.add_chat_options`.  Adding a
network is a parser and a factory::

    net = networks.add_parser("xmpp", help=..., description=...)
    net.add_argument("--jid", required=True)
    add_chat_options(net)
    net.set_defaults(func=lambda args: run_chat(lambda: XMPPTransport(...), args))
"""

from __future__ import annotations

import argparse

from offrecord.chat.app import add_chat_options, run_chat
from offrecord.cli.chat_xmpp import register_xmpp_command
from offrecord.cli.demo import parse_host_port

__all__ = ["parse_server", "register_chat_commands"]


def parse_server(text: str, *, tls: bool) -> tuple[str, int]:
    """``HOST``, ``HOST:PORT`` or ``[IPv6]:PORT`` -> (host, port); the port
    defaults to 6697 with TLS, else 6667."""
    from offrecord.transports.irc import DEFAULT_PORT, DEFAULT_TLS_PORT

    return parse_host_port(text, DEFAULT_TLS_PORT if tls else DEFAULT_PORT)


def _pace(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 <= value <= 60:
        raise argparse.ArgumentTypeError("the pace must be between 0 and 60 seconds")
    return value


def _cmd_chat_irc(args: argparse.Namespace) -> int:
    from offrecord.transports.irc import IRCTransport

    try:
        host, port = parse_server(args.server, tls=args.tls)
    except ValueError as exc:
        args.parser.error(str(exc))
    password = None
    if args.password_file:
        try:
            with open(args.password_file, encoding="utf-8") as handle:
                password = handle.readline().strip()
        except OSError as exc:
            args.parser.error(f"cannot read {args.password_file}: {exc.strerror}")
    try:
        IRCTransport(host, port, nick=args.nick)  # check the nick before anything else
    except ValueError as exc:
        args.parser.error(str(exc))

    def make() -> IRCTransport:
        return IRCTransport(
            host, port, nick=args.nick, tls=args.tls, password=password, interval=args.pace
        )

    return run_chat(make, args)


def register_chat_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``offrecord chat`` and its networks to the ``offrecord`` parser."""
    chat = sub.add_parser(
        "chat",
        help="chat privately over IRC or XMPP (terminal UI or script mode)",
        description="Chat with OTR over a chat network, with the keys and trust of the store. "
        "A key is generated on first use. See docs/chat.md.",
    )
    networks = chat.add_subparsers(dest="network", required=True, metavar="NETWORK")
    irc = networks.add_parser(
        "irc",
        help="over an IRC server",
        description="Connect to an IRC server as NICK and chat privately with other nicks "
        "(private messages; channels are not used).",
    )
    irc.add_argument(
        "--server",
        required=True,
        metavar="HOST[:PORT]",
        help="the IRC server (port 6667, or 6697 with --tls)",
    )
    irc.add_argument(
        "--tls", action="store_true", help="connect with TLS (the certificate is verified)"
    )
    irc.add_argument("--nick", required=True, help="your nick (and account name)")
    irc.add_argument(
        "--password-file",
        metavar="FILE",
        default=None,
        help="the server password (PASS), first line of FILE",
    )
    irc.add_argument(
        "--pace",
        metavar="SECONDS",
        type=_pace,
        default=1.0,
        help="after a burst of 5 lines, send one line every SECONDS (default 1.0), so "
        "the server's flood protection never disconnects you",
    )
    add_chat_options(irc)
    irc.set_defaults(func=_cmd_chat_irc, parser=irc)
    register_xmpp_command(networks)
