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
from tests.faults.network import DELIVER, DROP, Schedule, Side
from tests.faults.parties import PRESETS, Clock, LibotrParty, OffrecordParty, Party
from tests.faults.scenarios import (
    COYIM_ERROR_FLOOD,
    SCENARIOS,
    SIMULTANEOUS_COMMITS,
    Scenario,
    schedules,
    scripts,
)
from tests.faults.simulation import SIDES, End, Restart, Script, Simulation, Start, Type, Wait
from tests.faults.test_offrecord_faults import V2_OFFER_SCHEDULE
from tests.interop.build import build_libotr_peer

pytestmark = pytest.mark.interop

NAMES: dict[Side, str] = {"A": "alice@example.org", "B": "bob@example.org"}
PAIRS = list(itertools.product(PRESETS, PRESETS))
ORIENTATIONS = ["offrecord-A", "libotr-A"]
# Generated runs per orientation and policy pair (docs/faults.md).
EXAMPLES = int(os.environ.get("OFFRECORD_FAULT_EXAMPLES_LIBOTR", "6"))

Simulate = Callable[..., Simulation]


def keep_offrecord_instance(script: Script, libotr_side: Side) -> Script:
    """The script, with offrecord's client restarting under its old instance tag.

    libotr sends to the encrypted instance of the peer that received last,
    timed by time(NULL) in whole seconds, ties going to list order.  When
    the peer restarts with a new instance tag, a message of the dead instance
    arriving in the same second as the new AKE can make libotr keep writing
    to the dead one.  Real restarts take seconds; a run here takes
    milliseconds, so only the named scenario (which waits out libotr's clock
    at a known quiet point) restarts offrecord with a new instance tag.
    """
    return tuple(
        Restart(a.side) if isinstance(a, Restart) and a.side != libotr_side else a
        for a in script
    )


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
def libotr_side(request: pytest.FixtureRequest) -> Side:
    return "B" if request.param == "offrecord-A" else "A"


@pytest.fixture
def simulate(libotr_side: Side, libotr_peer_exe: Path, libotr_keys: Path) -> Iterator[Simulate]:
    orientation = "libotr-A" if libotr_side == "A" else "offrecord-A"
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
        return Simulation(parties, schedule, clock, label=f"{label} [{orientation}]")

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
    libotr_side: Side,
    policy_a: str,
    policy_b: str,
    schedule: Schedule,
    script: Script,
    seed: int,
    fragment: int,
) -> None:
    sim = simulate(policy_a, policy_b, schedule, seed=seed, max_message_size=fragment,
                   label=f"generated (seed {seed})")  # fmt: skip
    sim.run(keep_offrecord_instance(script, libotr_side))
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


def test_data_outside_a_private_conversation(simulate: Simulate, libotr_side: Side) -> None:
    """A known difference: A ends the conversation and the disconnect message is
    lost, so B keeps sending encrypted.  offrecord answers such a message with
    an OTR error (rate-limited), which makes B, under ERROR_START_AKE, restart
    the AKE by itself; libotr stays silent, and A's user has to restart OTR."""
    schedule = (DELIVER,) * 5 + (DROP,)  # query, AKE (4 messages), then the disconnect
    sim = simulate("opportunistic", "opportunistic", schedule, label="lost disconnect")
    sim.run_script((Start("A"), Wait(6), End("A"), Wait(1), Type("B"), Wait(1)))
    after_data = [p for p in sim.net.sent_by("A") if p.seq > 6]
    if libotr_side == "A":
        assert after_data == []
    else:
        assert [p.data.startswith("?OTR Error:") for p in after_data] == [True]
    sim.quiet_and_retry()
    sim.check()
    assert sim.retries == (["A"] if libotr_side == "A" else [])


def test_retry_after_a_lost_reveal_signature(simulate: Simulate) -> None:
    """B starts, A's Reveal Signature is lost, B's user retries: A (libotr or
    offrecord) answers B's resent D-H Key with the Reveal Signature of its new
    commit, so the retry converges (test_offrecord_faults has the story)."""
    schedule = (DELIVER, DELIVER, DELIVER, DROP)
    sim = simulate("manual", "manual", schedule, label="lost reveal signature, B retries")
    sim.run_script((Start("B"), Wait(5)))
    assert not sim.parties["A"].view().encrypted and not sim.parties["B"].view().encrypted
    sim.net.calm()
    sim.start("B")
    sim.settle()
    assert sim.is_converged(), sim.describe("B's retry did not converge")


def test_refresh_started_by_the_peer(simulate: Simulate, libotr_side: Side) -> None:
    """A known difference: B asks for a refresh; A answers with a D-H Commit
    from its master session.  When B's D-H Key arrives, libotr (as A) copies
    the master's message state into the encrypted instance: A is in plaintext
    until the refresh completes (and stays so if it fails).  offrecord stays
    encrypted on the old keys meanwhile."""
    sim = simulate("manual", "manual", (), label="refresh by the peer")
    sim.run_script((Start("A"), Wait(6)))
    assert sim.is_converged()
    first = sim.parties["A"].view().ssid
    sim.start("B")
    for _ in range(3):  # query -> A, commit -> B, D-H Key -> A (A sends Reveal Signature)
        sim.step()
    during = sim.parties["A"].view().state
    assert during == ("plaintext" if libotr_side == "A" else "encrypted")
    sim.settle()
    assert sim.is_converged() and sim.parties["A"].view().ssid != first
    sim.quiet_and_retry()
    sim.check()
    assert sim.retries == []


def test_a_v2_only_offer_after_a_v2_v3_one(simulate: Simulate) -> None:
    """The scenario of test_a_v2_commit_is_not_continued_by_a_v3_instance
    (test_offrecord_faults) with libotr on either side."""
    sim = simulate("opportunistic", "opportunistic", V2_OFFER_SCHEDULE, label="v2-only offer")
    sim.run((Type("A"), Type("A"), Wait(6)))
    sim.check()
