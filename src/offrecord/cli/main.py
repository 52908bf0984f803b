"""The ``offrecord`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from offrecord.cli.chat import register_chat_commands
from offrecord.cli.demo import add_demo_options
from offrecord.cli.keys import register_commands

__all__ = ["main"]


def _cmd_demo(args: argparse.Namespace) -> int:
    from offrecord.cli.demo import demo_command

    return demo_command(args, args.parser)


def _cmd_peer(args: argparse.Namespace) -> int:
    from offrecord.cli.peer import run_peer

    return run_peer(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="offrecord",
        description="Off-the-Record Messaging (OTR v3, v2-compatible), compatible with libotr.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="two parties talk privately: in-process, or through an IRC or XMPP server",
        description="Alice and Bob talk privately and each step shows what the network "
        "sees. See docs/demo.md.",
    )
    add_demo_options(demo)
    demo.set_defaults(func=_cmd_demo, parser=demo)

    peer = sub.add_parser("peer", help="the stdio conformance peer (PEER-PROTOCOL.md)")
    peer.add_argument("--account", required=True)
    peer.add_argument("--peer", required=True)
    peer.add_argument("--protocol", default="irc")
    peer.add_argument("--keyfile", default=None, help="libotr otr.private_key file")
    peer.add_argument("--policy", default="v2,v3")
    peer.add_argument("--max-fragment", type=int, default=0)
    peer.add_argument("--instance-tag", default=None, help="hex (0x...) or decimal, >= 0x100")
    peer.set_defaults(func=_cmd_peer)

    register_commands(sub)
    register_chat_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
