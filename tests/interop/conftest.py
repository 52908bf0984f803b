"""Fixtures of the libotr interop tests: the libotr peer binary, and routers
with offrecord on one side and libotr on the other, in both orientations."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.interop.build import build_libotr_peer
from tests.interop.offrecord_peer import InProcessPeer
from tests.interop.router import PeerLike, Router, Side, SubprocessPeer, other, peer_args

NAMES: dict[Side, str] = {"A": "alice@example.org", "B": "bob@example.org"}
ORIENTATIONS = ["offrecord-A", "libotr-A"]

PeerFactory = Callable[..., PeerLike]


@pytest.fixture(scope="module")
def libotr_exe() -> Path:
    try:
        return build_libotr_peer()
    except RuntimeError as exc:  # libotr5-dev missing: scripts/test.sh installs it
        pytest.skip(str(exc))


@pytest.fixture(params=ORIENTATIONS)
def make_router(
    request: pytest.FixtureRequest, libotr_exe: Path
) -> Iterator[Callable[..., Router]]:
    """Build a router with offrecord on one side and libotr on the other.

    Options for each side are passed as ``a={...}``, ``b={...}``.
    """
    offrecord_side: Side = "A" if request.param == "offrecord-A" else "B"
    routers: list[Router] = []

    def build(*, a: dict[str, object] | None = None, b: dict[str, object] | None = None,
              **router_options: object) -> Router:  # fmt: skip
        options = {"A": dict(a or {}), "B": dict(b or {})}
        peers: dict[Side, PeerLike] = {}
        for side in ("A", "B"):
            me, them = NAMES[side], NAMES[other(side)]
            if side == offrecord_side:
                peers[side] = InProcessPeer(me, them, **options[side])  # type: ignore[arg-type]
            else:
                peers[side] = SubprocessPeer(
                    [libotr_exe, *peer_args(me, them, **options[side])],  # type: ignore[arg-type]
                    name=f"libotr:{me}",
                )
        router = Router(peers["A"], peers["B"], **router_options)  # type: ignore[arg-type]
        router.offrecord_side = offrecord_side  # type: ignore[attr-defined]
        routers.append(router)
        return router

    yield build
    for router in routers:
        router.close()
