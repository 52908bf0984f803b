"""Two offrecord engines over a faulty network, for every pair of policy presets."""

from __future__ import annotations

import itertools
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from offrecord.policy import Policy
from tests.faults.network import DELIVER, DROP, Schedule, Side, truncate
from tests.faults.parties import PRESETS, Clock, OffrecordParty, Party
from tests.faults.scenarios import (
    COYIM_ERROR_FLOOD,
    SCENARIOS,
    SIMULTANEOUS_COMMITS,
    Scenario,
    schedules,
    scripts,
)
from tests.faults.simulation import Script, Simulation, Start, Type, Wait

ALICE, BOB = "alice@example.org", "bob@example.org"
PAIRS = list(itertools.product(PRESETS, PRESETS))
# Generated runs per policy pair; raise it for a long search (docs/faults.md).
EXAMPLES = int(os.environ.get("OFFRECORD_FAULT_EXAMPLES", "20"))


def simulate(
    policy_a: str,
    policy_b: str,
    schedule: Schedule,
    *,
    seed: int = 0,
    max_message_size: int = 0,
    label: str = "",
) -> Simulation:
    clock = Clock()
    parties: dict[Side, Party] = {
        "A": OffrecordParty(ALICE, BOB, Policy.preset(policy_a), seed=seed, clock=clock,
                            max_message_size=max_message_size),
        "B": OffrecordParty(BOB, ALICE, Policy.preset(policy_b), seed=seed, clock=clock,
                            max_message_size=max_message_size),
    }  # fmt: skip
    return Simulation(parties, schedule, clock, label=label)


def test_presets_are_every_preset_of_the_policy_module() -> None:
    named = {Policy.preset(name) for name in PRESETS}
    assert named == {Policy.NEVER, Policy.MANUAL, Policy.OPPORTUNISTIC, Policy.ALWAYS}
    assert Policy.DEFAULT in named
    with pytest.raises(ValueError):
        Policy.preset("sometimes")


@pytest.mark.parametrize(("policy_a", "policy_b"), PAIRS)
@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
def test_named_scenario(scenario: Scenario, policy_a: str, policy_b: str) -> None:
    sim = simulate(policy_a, policy_b, scenario.schedule,
                   max_message_size=scenario.max_message_size, label=scenario.name)  # fmt: skip
    sim.run(scenario.script)
    sim.check()


@pytest.mark.parametrize(("policy_a", "policy_b"), PAIRS)
@settings(max_examples=EXAMPLES, suppress_health_check=[HealthCheck.too_slow])
@given(
    schedule=schedules,
    script=scripts,
    seed=st.integers(0, 2**32 - 1),
    fragment=st.sampled_from([0, 0, 160]),
)
def test_generated_faults(
    policy_a: str, policy_b: str, schedule: Schedule, script: Script, seed: int, fragment: int
) -> None:
    sim = simulate(policy_a, policy_b, schedule, seed=seed, max_message_size=fragment,
                   label=f"generated (seed {seed})")  # fmt: skip
    sim.run(script)
    sim.check()


def error_messages(sim: Simulation, side: Side) -> int:
    return sum(p.data.startswith("?OTR Error:") for p in sim.net.sent_by(side))


def test_coyim_error_flood_converges_with_bounded_traffic() -> None:
    """CoyIM issue #301: REQUIRE_ENCRYPTION + ERROR_START_AKE on both ends,
    messages typed before the AKE, duplicated and reordered in flight."""
    sim = simulate("always", "always", COYIM_ERROR_FLOOD.schedule, label=COYIM_ERROR_FLOOD.name)
    sim.run(COYIM_ERROR_FLOOD.script)
    sim.check()
    assert Policy.preset("always") & Policy.ERROR_START_AKE
    assert len(sim.retries) <= 1
    # No error ping-pong: OTR errors stay within one burst of the reply limiter.
    assert error_messages(sim, "A") <= 5 and error_messages(sim, "B") <= 5
    # Every held message went out encrypted once the session was up: they all
    # arrive, each exactly once, and nothing else does.
    pairs: list[tuple[Side, Side]] = [("A", "B"), ("B", "A")]
    for side, receiver in pairs:
        typed = sorted(t.text for t in sim.typed if t.side == side)
        assert sorted(s.text for s in sim.shown[receiver] if s.encrypted) == typed


@pytest.mark.parametrize("policy", ["manual", "opportunistic", "always"])
def test_simultaneous_dh_commits_under_faults(policy: str) -> None:
    """Both users start at once (potr deadlocked on the crossing D-H Commits),
    with the commits duplicated and reordered."""
    sim = simulate(policy, policy, SIMULTANEOUS_COMMITS.schedule, label=SIMULTANEOUS_COMMITS.name)
    sim.run(SIMULTANEOUS_COMMITS.script)
    sim.check()
    commits = [p for p in sim.net.sent if p.data.startswith("?OTR:AAMC")]
    assert {p.src for p in commits} == {"A", "B"}
    assert len(sim.retries) <= 1


@pytest.mark.parametrize("policy", ["manual", "opportunistic", "always"])
def test_retry_after_a_lost_reveal_signature(policy: str) -> None:
    """Found by the fault tests.  B starts; A's Reveal Signature is lost, so A
    waits for the Signature and B for the Reveal Signature.  B's user retries:
    A answers the query with a new D-H Commit, B resends its D-H Key (the
    spec's retransmission), and A must answer with the Reveal Signature of its
    new commit, as libotr does, not resend the lost one, which B can no longer
    check: that repeated on every retry and never converged."""
    schedule = (DELIVER, DELIVER, DELIVER, DROP)  # query, commit, D-H Key, lost Reveal Sig
    sim = simulate(policy, policy, schedule, label="lost reveal signature, B retries")
    sim.run_script((Start("B"), Wait(5)))
    assert not sim.parties["A"].view().encrypted and not sim.parties["B"].view().encrypted
    sim.net.calm()
    sim.start("B")
    sim.settle()
    assert sim.is_converged(), sim.describe("B's retry did not converge")


# A's second message loses the end of its whitespace tag in flight, so B sees a
# v2-only offer right after a v2+v3 one; then the AKE's last v2 message is lost.
V2_OFFER_SCHEDULE = (DELIVER, truncate(0.93), *(DELIVER,) * 5, DROP)


@pytest.mark.parametrize("seed", range(6))
def test_a_v2_commit_is_not_continued_by_a_v3_instance(seed: int) -> None:
    """Found by the fault tests.  B answers the two offers with a v3 and then a
    v2 D-H Commit from its master session; A's v3 D-H Key (for the first) then
    reached B's v3 instance, which continued the master's exchange, by then a
    v2 one, and refused every v3 D-H Key after that: no AKE B started could
    complete, and B's retries never converged."""
    sim = simulate("opportunistic", "opportunistic", V2_OFFER_SCHEDULE, seed=seed,
                   label="v2-only offer after a v2+v3 one")  # fmt: skip
    sim.run((Type("A"), Type("A"), Wait(6)))
    sim.check()
    offers = [p.data[:10] for p in sim.net.sent_by("B") if p.data.startswith("?OTR:AA")]
    assert "?OTR:AAMC" in {o[:9] for o in offers} and "?OTR:AAIC" in {o[:9] for o in offers}
