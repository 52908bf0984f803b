"""offrecord and libotr 4.1.1 over a faulty network, for every pair of policy
presets, with offrecord on either side."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from offrecord.policy import Policy
from tests.faults.network import Schedule, Side
from tests.faults.parties import PRESETS, Clock, LibotrParty, OffrecordParty, Party
from tests.faults.scenarios import (
    COYIM_ERROR_FLOOD,
    SCENARIOS,
    SIMULTANEOUS_COMMITS,
    Scenario,
    schedules,
    scripts,
)
from tests.faults.simulation import SIDES, Script, Simulation
from tests.interop.build import build_libotr_peer

pytestmark = pytest.mark.interop

NAMES: dict[Side, str] = {"A": "alice@example.org", "B": "bob@example.org"}
PAIRS = list(itertools.product(PRESETS, PRESETS))
ORIENTATIONS = ["offrecord-A", "libotr-A"]
# Generated runs per orientation and policy pair (docs/faults.md).
EXAMPLES = int(os.environ.get("OFFRECORD_FAULT_EXAMPLES_LIBOTR", "3"))

Simulate = Callable[..., Simulation]


@pytest.fixture(scope="session")
def libotr_peer_exe() -> Path:
    try:
        return build_libotr_peer()
    except RuntimeError as exc:  # libotr5-dev missing: scripts/test.sh installs it
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def libotr_keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One directory of libotr key files, reused by every run (the peer makes
    each key on first use)."""
    return tmp_path_factory.mktemp("libotr-keys")


@pytest.fixture(params=ORIENTATIONS)
def simulate(
    request: pytest.FixtureRequest, libotr_peer_exe: Path, libotr_keys: Path
) -> Iterator[Simulate]:
    libotr_side: Side = "B" if request.param == "offrecord-A" else "A"
    made: list[Party] = []

    def build(
        policy_a: str,
        policy_b: str,
        schedule: Schedule,
        *,
        seed: int = 0,
        max_message_size: int = 0,
        label: str = "",
    ) -> Simulation:
        clock = Clock()
        presets: dict[Side, str] = {"A": policy_a, "B": policy_b}
        parties: dict[Side, Party] = {}
        sides: list[tuple[Side, Side]] = [("A", "B"), ("B", "A")]
        for side, peer_side in sides:
            name, peer, policy = NAMES[side], NAMES[peer_side], Policy.preset(presets[side])
            if side == libotr_side:
                parties[side] = LibotrParty(
                    libotr_peer_exe, name, peer, policy,
                    keyfile=libotr_keys / f"{name}.key", max_message_size=max_message_size,
                )  # fmt: skip
            else:
                parties[side] = OffrecordParty(
                    name, peer, policy, seed=seed, clock=clock, max_message_size=max_message_size
                )
            made.append(parties[side])
        return Simulation(parties, schedule, clock, label=f"{label} [{request.param}]")

    yield build
    for party in made:
        party.close()


@pytest.mark.parametrize(("policy_a", "policy_b"), PAIRS)
@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
def test_named_scenario(
    simulate: Simulate, scenario: Scenario, policy_a: str, policy_b: str
) -> None:
    sim = simulate(policy_a, policy_b, scenario.schedule,
                   max_message_size=scenario.max_message_size, label=scenario.name)  # fmt: skip
    sim.run(scenario.script)
    sim.check()


@pytest.mark.parametrize(("policy_a", "policy_b"), PAIRS)
@settings(
    max_examples=EXAMPLES,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    schedule=schedules,
    script=scripts,
    seed=st.integers(0, 2**32 - 1),
    fragment=st.sampled_from([0, 0, 160]),
)
def test_generated_faults(
    simulate: Simulate,
    policy_a: str,
    policy_b: str,
    schedule: Schedule,
    script: Script,
    seed: int,
    fragment: int,
) -> None:
    sim = simulate(policy_a, policy_b, schedule, seed=seed, max_message_size=fragment,
                   label=f"generated (seed {seed})")  # fmt: skip
    sim.run(script)
    sim.check()


def test_coyim_error_flood_with_libotr(simulate: Simulate) -> None:
    """CoyIM issue #301 between offrecord and libotr, both `always`."""
    sim = simulate("always", "always", COYIM_ERROR_FLOOD.schedule, label=COYIM_ERROR_FLOOD.name)
    sim.run(COYIM_ERROR_FLOOD.script)
    sim.check()
    assert len(sim.retries) <= 1
    for side in SIDES:
        errors = [p for p in sim.net.sent_by(side) if p.data.startswith("?OTR Error:")]
        assert len(errors) <= 5


@pytest.mark.parametrize("policy", ["manual", "opportunistic", "always"])
def test_simultaneous_dh_commits_with_libotr(simulate: Simulate, policy: str) -> None:
    sim = simulate(policy, policy, SIMULTANEOUS_COMMITS.schedule, label=SIMULTANEOUS_COMMITS.name)
    sim.run(SIMULTANEOUS_COMMITS.script)
    sim.check()
    commits = [p for p in sim.net.sent if p.data.startswith("?OTR:AAMC")]
    assert {p.src for p in commits} == {"A", "B"}
    assert len(sim.retries) <= 1
