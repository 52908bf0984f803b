"""The fault harness itself: the network applies exactly the scheduled
faults, and every property check catches the misbehaviour it is for."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from offrecord.policy import Policy
from tests.faults.network import (
    DELIVER,
    DROP,
    FaultyNetwork,
    Schedule,
    Side,
    delay,
    duplicate,
    random_schedule,
    truncate,
)
from tests.faults.parties import Clock, Party, Reaction, SessionView, Shown
from tests.faults.simulation import Flood, Simulation, Start, Type, Wait


def deliveries(net: FaultyNetwork, steps: int = 10) -> list[str]:
    out: list[str] = []
    for _ in range(steps):
        out.extend(data for _packet, data in net.advance())
    return out


def test_clean_network_delivers_in_order_at_the_next_step() -> None:
    net = FaultyNetwork()
    net.put("A", "one")
    net.put("B", "two")
    assert [(p.src, d) for p, d in net.advance()] == [("A", "one"), ("B", "two")]
    assert net.idle


def test_each_fault_does_what_it_says() -> None:
    net = FaultyNetwork((DROP, duplicate(0, 2), delay(3), truncate(0.5), DELIVER))
    for text in ("dropped", "twice", "late", "truncated", "on time"):
        net.put("A", text)
    assert deliveries(net) == ["twice", "trun", "on time", "twice", "late"]
    assert net.extra_copies == 1
    assert [p.data for p in net.sent] == ["dropped", "twice", "late", "truncated", "on time"]


def test_truncation_keeps_at_least_one_character() -> None:
    net = FaultyNetwork((truncate(0.0),))
    net.put("B", "abc")
    assert deliveries(net) == ["a"]


def test_calm_network_and_messages_beyond_the_schedule_are_clean() -> None:
    net = FaultyNetwork((DROP, DROP))
    net.put("A", "lost")
    net.calm()
    net.put("A", "kept")
    net.put("A", "beyond")
    assert deliveries(net) == ["kept", "beyond"]


def test_random_schedules_are_reproducible_from_their_seed() -> None:
    assert random_schedule(5, 50) == random_schedule(5, 50)
    assert random_schedule(5, 50) != random_schedule(6, 50)
    assert len(random_schedule(5, 50)) == 50


@dataclass
class FakeParty:
    """A toy engine: "encrypts" by prefixing ``E:``; flaws are switched on."""

    policy: Policy = Policy.MANUAL
    encrypted: bool = True
    leak: bool = False
    replays_shown: bool = True
    forge: bool = False
    chatty: int = 0
    echo: bool = False
    impl: str = "fake"

    def type(self, text: str) -> Reaction:
        wire = [text if self.leak else "E:" + text[::-1]]
        wire += ["noise"] * self.chatty
        return Reaction(wire=wire)

    def start(self) -> Reaction:
        return Reaction()

    def receive(self, data: str) -> Reaction:
        reaction = Reaction()
        if data.startswith("E:"):
            text = "forged" if self.forge else data[2:][::-1]
            reaction.shown.append(Shown(text, True))
        if self.echo:
            reaction.wire.append(data)
        return reaction

    def tick(self, now: float) -> Reaction:
        return Reaction()

    def end(self) -> Reaction:
        return Reaction()

    def restart(self, *, new_instance: bool) -> None:
        pass

    def peer_restarted(self, *, new_instance: bool) -> None:
        pass

    def view(self) -> SessionView:
        if self.encrypted:
            return SessionView("encrypted", "S")
        return SessionView("plaintext", None)

    def close(self) -> None:
        pass


def run(a: FakeParty, b: FakeParty, schedule: Schedule = ()) -> Simulation:
    parties: dict[Side, Party] = {"A": a, "B": b}
    sim = Simulation(parties, schedule, Clock(), label="fake")
    sim.run((Type("A"), Start("B"), Type("B"), Wait(2), Type("A")))
    return sim


def test_a_sound_pair_passes_every_check() -> None:
    sim = run(FakeParty(), FakeParty())
    assert sim.problems() == []
    assert sim.converged and sim.probes_delivered


def test_plaintext_under_require_encryption_is_caught() -> None:
    sim = run(FakeParty(Policy.ALWAYS, leak=True, encrypted=False), FakeParty(encrypted=False))
    assert any("left in plaintext" in p for p in sim.problems())


def test_text_typed_while_encrypted_sent_in_plaintext_is_caught() -> None:
    sim = run(FakeParty(leak=True), FakeParty())
    assert any("under an encrypted session left in plaintext" in p for p in sim.problems())


def test_a_replay_shown_twice_is_caught() -> None:
    sim = run(FakeParty(), FakeParty(), (duplicate(0, 1),) * 3)
    assert any("2 times" in p for p in sim.problems())


def test_a_message_nobody_typed_is_caught() -> None:
    sim = run(FakeParty(), FakeParty(forge=True))
    assert any("never typed" in p for p in sim.problems())


def test_no_convergence_is_caught() -> None:
    sim = run(FakeParty(encrypted=False), FakeParty())
    assert "no common encrypted session after 3 retries" in sim.problems()
    assert sim.retries == ["A", "A", "A"]


def test_too_much_automatic_traffic_is_caught() -> None:
    sim = run(FakeParty(chatty=20), FakeParty())
    assert any("more than the bound" in p for p in sim.problems())


def test_two_parties_answering_each_other_forever_are_a_flood() -> None:
    with pytest.raises(Flood, match="still busy"):
        run(FakeParty(echo=True), FakeParty(echo=True))
