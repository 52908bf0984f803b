"""``offrecord peer``: start-up (options, key file) around :mod:`offrecord.transports.peer`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from offrecord.crypto.dsa import DSAPrivateKey, generate_private_key
from offrecord.crypto.primitives import system_random
from offrecord.errors import OTRError
from offrecord.storage.libotr import LibotrStore
from offrecord.transports.peer import PeerDriver, main_streams, make_account, parse_policy, run

__all__ = ["run_peer"]


def _instance_tag(text: str | None) -> int | None:
    if text is None:
        return None
    value = int(text, 16) if text.lower().startswith("0x") else int(text)
    if not 0x100 <= value <= 0xFFFFFFFF:
        raise ValueError("instance tag must be in [0x100, 0xFFFFFFFF]")
    return value


def _load_key(path: str | None, account: str, protocol: str) -> DSAPrivateKey:
    if path is None:
        return generate_private_key(system_random)
    # The key file is libotr's otr.private_key format (any file name).
    file = Path(path)
    store = LibotrStore(file.parent, private_key_file=file.name)
    key = store.get_private_key(account, protocol)
    if key is None:
        key = generate_private_key(system_random)
        store.save_private_key(account, protocol, key)
    return key


def run_peer(args: argparse.Namespace) -> int:
    try:
        policy = parse_policy(args.policy)
        tag = _instance_tag(args.instance_tag)
        if args.max_fragment < 0:
            raise ValueError("--max-fragment must be >= 0")
        key = _load_key(args.keyfile, args.account, args.protocol)
    except (ValueError, OTRError) as exc:
        print(f"offrecord peer: {exc}", file=sys.stderr)
        return 2
    account = make_account(args.account, args.protocol, key, policy, args.max_fragment, tag)
    stdin, stdout = main_streams()
    return run(PeerDriver(account, args.peer), stdin, stdout)
