"""Fixed, named fault scenarios and the Hypothesis strategies for generated ones."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st

from tests.faults.network import (
    DELIVER,
    DROP,
    Copy,
    Fault,
    Schedule,
    Side,
    delay,
    duplicate,
    random_schedule,
    truncate,
)
from tests.faults.simulation import End, Restart, Script, Start, Type, Wait


@dataclass(frozen=True)
class Scenario:
    name: str
    why: str
    script: Script
    schedule: Schedule
    max_message_size: int = 0

    def __str__(self) -> str:
        return self.name


A: Side = "A"
B: Side = "B"

# Duplicates and reorders, the traffic pattern of CoyIM's error flood.
_DUP_REORDER: Schedule = (
    duplicate(0, 2), delay(2), duplicate(1, 0), DELIVER, delay(3), duplicate(0, 3),
    delay(1), duplicate(2, 0), DELIVER, delay(2), duplicate(0, 1), delay(3),
) * 3  # fmt: skip

COYIM_ERROR_FLOOD = Scenario(
    "coyim-error-flood",
    "CoyIM issue #301 (github.com/coyim/coyim/issues/301): two clients with "
    "REQUIRE_ENCRYPTION and ERROR_START_AKE answered each other's OTR errors "
    "forever once both typed before the AKE finished; here with duplication "
    "and reordering on top",
    (Type(A), Type(B), Type(A), Type(B), Wait(1), Type(A), Type(B), Wait(3)),
    _DUP_REORDER,
)

SIMULTANEOUS_COMMITS = Scenario(
    "simultaneous-dh-commits",
    "both users start OTR at once: the queries cross, both send D-H Commits "
    "(potr deadlocked here), and the commits are duplicated and reordered",
    (Start(A), Start(B), Wait(2), Type(A), Type(B), Wait(1), Type(A)),
    (DELIVER, DELIVER, duplicate(0, 2), duplicate(1, 0), delay(2), duplicate(0, 1),
     delay(1), DELIVER, duplicate(2, 0)),
)  # fmt: skip

SCENARIOS: tuple[Scenario, ...] = (
    COYIM_ERROR_FLOOD,
    SIMULTANEOUS_COMMITS,
    Scenario(
        "lost-signature",
        "the AKE's last message is lost: one end is encrypted, the other not",
        (Start(A), Wait(6), Type(A), Type(B)),
        (DELIVER, DELIVER, DELIVER, DELIVER, DROP),
    ),
    Scenario(
        "lost-reveal-signature",
        "the Reveal Signature is lost: the initiator waits for a Signature forever",
        (Start(A), Wait(6), Type(B), Type(A)),
        (DELIVER, DELIVER, DELIVER, DROP),
    ),
    Scenario(
        "duplicate-everything",
        "every message arrives twice, the copy one step late (replays)",
        (Start(A), Wait(8), Type(A), Type(B), Type(A), Wait(2), Type(B)),
        (duplicate(0, 1),) * 40,
    ),
    Scenario(
        "reversed-bursts",
        "bursts of messages arrive in reverse order",
        (Type(A), Type(A), Start(A), Type(B), Type(B), Wait(3), Type(A), Type(B)),
        (delay(5), delay(4), delay(3), delay(2), delay(1), DELIVER) * 5,
    ),
    Scenario(
        "truncated",
        "messages cut short in flight (a transport's length limit)",
        (Start(A), Wait(6), Type(A), Type(B), Start(B), Type(A)),
        (DELIVER, truncate(0.5), DELIVER, truncate(0.9), DELIVER, truncate(0.3),
         truncate(0.99), DELIVER, truncate(0.1)) * 2,
    ),
    Scenario(
        "blackout",
        "the network loses everything for a while",
        (Start(A), Type(A), Type(B), Wait(3), Start(B), Type(A)),
        (DROP,) * 12,
    ),
    Scenario(
        "refresh-under-faults",
        "a clean AKE, then the other user refreshes it while both type on a bad network",
        (Start(A), Wait(8), Type(A), Start(B), Type(A), Type(B), Wait(2), Type(A)),
        (DELIVER,) * 6 + random_schedule(9, 40, p_drop=0.15, p_duplicate=0.15, p_delay=0.3),
    ),
    Scenario(
        "end-under-faults",
        "one user ends the conversation while the other types; the disconnect "
        "message and the other side's data are lost or late",
        (Start(A), Wait(6), Type(A), End(B), Type(A), Type(B), Wait(2), Type(A), Start(A)),
        (DELIVER,) * 6 + (DROP, delay(2), DELIVER, duplicate(0, 2), DROP, delay(1)),
    ),
    Scenario(
        "client-restart",
        "one client restarts mid-conversation (same key and instance tag) while "
        "the other keeps typing into the lost session; traffic delayed and duplicated",
        (Start(A), Wait(6), Type(B), Restart(A), Type(B), Wait(2), Type(A), Type(B), Wait(1)),
        (DELIVER,) * 5 + (delay(2), duplicate(0, 1), DELIVER, delay(1), duplicate(1, 0)),
    ),
    Scenario(
        "client-restart-new-instance",
        "one client restarts with a new instance tag (its tag file was lost) while "
        "messages for the old instance are still in flight",
        (Start(A), Wait(6), Type(B), Type(B), Restart(A, new_instance=True), Wait(1), Type(B),
         Start(A), Type(A), Type(B)),
        (DELIVER,) * 5 + (delay(3), duplicate(0, 2), DELIVER, DROP, delay(1)),
    ),
    Scenario(
        "fragments-shuffled",
        "fragmented messages (140-character limit) dropped, duplicated and reordered",
        (Start(A), Wait(4), Type(A), Type(B), Wait(2), Start(B), Type(A), Type(B)),
        random_schedule(7, 120, p_drop=0.03, p_duplicate=0.1, p_delay=0.3),
        max_message_size=140,
    ),
    Scenario(
        "random-mix",
        "seeded mix of every fault while both type and start",
        (Type(A), Start(B), Type(A), Type(B), Wait(2), Type(B), Start(A), Type(A), Wait(1),
         Type(B)),
        random_schedule(2024, 60, p_drop=0.1, p_duplicate=0.15, p_delay=0.25, p_truncate=0.05),
    ),
)


# -- Hypothesis ---------------------------------------------------------------

_copies = st.builds(
    Copy,
    delay=st.integers(0, 6),
    keep=st.none() | st.floats(0.0, 1.0, exclude_max=True),
)

faults: st.SearchStrategy[Fault] = st.one_of(
    st.just(DELIVER),
    st.just(DROP),
    st.builds(duplicate, st.integers(0, 5), st.integers(0, 5)),
    st.builds(delay, st.integers(1, 6)),
    st.builds(truncate, st.floats(0.0, 1.0, exclude_max=True)),
    st.lists(_copies, max_size=3).map(lambda copies: Fault(tuple(copies))),
)

schedules: st.SearchStrategy[Schedule] = st.lists(faults, max_size=30).map(tuple)

_sides: st.SearchStrategy[Side] = st.sampled_from([A, B])
actions = st.one_of(
    st.builds(Type, _sides),
    st.builds(Start, _sides),
    st.builds(Wait, st.integers(1, 4)),
    st.builds(Type, _sides),
    st.builds(End, _sides),
    st.builds(Restart, _sides, st.booleans()),
)
scripts: st.SearchStrategy[Script] = st.lists(actions, min_size=1, max_size=8).map(tuple)
