"""offrecord as a router peer: in-process (fast) or as the ``offrecord peer`` command."""

from __future__ import annotations

import random
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from offrecord.account import Account
from offrecord.crypto.dsa import DSAPrivateKey, generate_private_key
from offrecord.transports.peer import PeerDriver, parse_policy
from tests.interop.router import Event, SubprocessPeer, peer_args, validate_event

__all__ = ["InProcessPeer", "offrecord_subprocess"]


class InProcessPeer:
    """A :class:`~tests.interop.router.PeerLike` around :class:`PeerDriver`.

    Every event is validated against the peer protocol, as the subprocess
    peer's output is.
    """

    def __init__(
        self,
        account: str,
        peer: str,
        *,
        policy: str = "v2,v3",
        max_fragment: int = 0,
        instance_tag: int | None = None,
        key: DSAPrivateKey | None = None,
        seed: int | None = None,
        clock: Any = None,
    ) -> None:
        rng = random.Random(seed)
        random_bytes = rng.randbytes
        self.key = key if key is not None else generate_private_key(random_bytes)
        self.account = Account(
            account,
            "irc",
            self.key,
            policy=parse_policy(policy),
            instance_tag=instance_tag,
            random_bytes=random_bytes,
            max_message_size=max_fragment,
            clock=clock,
        )
        self.driver = PeerDriver(self.account, peer)
        self._ready = self.driver.ready()
        self.name = f"offrecord:{account}"

    @property
    def ready(self) -> Event:
        return self._ready

    def command(self, cmd: Mapping[str, Any]) -> list[Event]:
        events = self.driver.handle(dict(cmd))
        for event in events:
            problem = validate_event(event)
            if problem is not None:
                raise AssertionError(f"{self.name} emitted an invalid event {event!r}: {problem}")
        return [e for e in events if e["ev"] != "done"]

    def close(self) -> None:
        pass


def offrecord_subprocess(account: str, peer: str, **options: Any) -> SubprocessPeer:
    """The real ``offrecord peer`` command, run with this interpreter."""
    argv = [
        sys.executable,
        "-m",
        "offrecord.cli.main",
        "peer",
        *peer_args(account, peer, **options),
    ]
    return SubprocessPeer(argv, name=f"offrecord-peer:{account}", cwd=Path(__file__).parents[2])
