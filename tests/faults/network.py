"""A simulated, deterministic, faulty network between two parties.

The faults are data: a :data:`Schedule` is a tuple of :class:`Fault`, one per
message put on the network, in sending order (the n-th message sent by
either party gets ``schedule[n]``).  Messages beyond the end of the schedule,
and every message after :meth:`FaultyNetwork.calm`, are delivered intact and
on time.  A failing test therefore prints everything needed to replay it: the
schedule (or the seed it was drawn from), the user script and the policies.

Time is counted in *steps*: a message sent during step ``t`` is delivered at
step ``t + 1 + delay``; messages due at the same step arrive in sending order.
A longer delay on one message than on a later one reorders them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Literal

Side = Literal["A", "B"]


def other(side: Side) -> Side:
    return "B" if side == "A" else "A"


@dataclass(frozen=True)
class Copy:
    """One copy of a message that reaches the receiver.

    ``delay``: extra steps in flight.  ``keep``: for a truncated copy, the
    fraction of the characters that survive (at least one); None = intact.
    """

    delay: int = 0
    keep: float | None = None

    def apply(self, data: str) -> str:
        if self.keep is None:
            return data
        return data[: max(1, int(len(data) * self.keep))]

    def __repr__(self) -> str:
        parts = []
        if self.delay:
            parts.append(f"delay={self.delay}")
        if self.keep is not None:
            parts.append(f"keep={self.keep:.3g}")
        return f"Copy({', '.join(parts)})"


@dataclass(frozen=True)
class Fault:
    """What happens to one message: the copies that arrive (none = dropped,
    two = duplicated, ...), each with its own delay and truncation."""

    copies: tuple[Copy, ...]

    @property
    def is_clean(self) -> bool:
        return self.copies == (Copy(),)

    def __repr__(self) -> str:
        if self.is_clean:
            return "DELIVER"
        if not self.copies:
            return "DROP"
        return f"Fault({', '.join(map(repr, self.copies))})"


DELIVER = Fault((Copy(),))
DROP = Fault(())


def delay(steps: int) -> Fault:
    return Fault((Copy(delay=steps),))


def duplicate(first: int = 0, second: int = 0) -> Fault:
    return Fault((Copy(delay=first), Copy(delay=second)))


def truncate(keep: float, steps: int = 0) -> Fault:
    return Fault((Copy(delay=steps, keep=keep),))


Schedule = tuple[Fault, ...]


def random_schedule(
    seed: int,
    length: int,
    *,
    p_drop: float = 0.1,
    p_duplicate: float = 0.1,
    p_delay: float = 0.2,
    p_truncate: float = 0.05,
    max_delay: int = 4,
) -> Schedule:
    """A schedule drawn from ``random.Random(seed)``: each message is
    independently dropped, duplicated, delayed or truncated with the given
    probabilities (a duplicate's copies get their own delays)."""
    rng = random.Random(seed)
    out: list[Fault] = []
    for _ in range(length):
        r = rng.random()
        if r < p_drop:
            out.append(DROP)
        elif r < p_drop + p_duplicate:
            out.append(duplicate(rng.randint(0, max_delay), rng.randint(0, max_delay)))
        elif r < p_drop + p_duplicate + p_delay:
            out.append(delay(rng.randint(1, max_delay)))
        elif r < p_drop + p_duplicate + p_delay + p_truncate:
            out.append(truncate(rng.random()))
        else:
            out.append(DELIVER)
    return tuple(out)


@dataclass(frozen=True)
class Packet:
    """One message as its sender put it on the network (before any fault)."""

    seq: int
    src: Side
    data: str = field(repr=False)
    step: int

    @property
    def dst(self) -> Side:
        return other(self.src)


@dataclass(order=True)
class _InFlight:
    due: int
    order: int
    src: Side = field(compare=False)
    data: str = field(compare=False, repr=False)
    seq: int = field(compare=False)


class FaultyNetwork:
    """Carries messages between ``A`` and ``B`` with the faults of a schedule.

    ``sent`` records every message as sent (what the sender emitted: this is
    where plaintext leaks are looked for); ``delivered`` every copy handed to
    a receiver, as received.
    """

    def __init__(self, schedule: Schedule = ()) -> None:
        self.schedule = schedule
        self.faulty = True
        self.step = 0
        self.sent: list[Packet] = []
        self.delivered: list[tuple[Packet, str]] = []
        self.extra_copies = 0  # copies beyond one per message (duplicates)
        self._flight: list[_InFlight] = []
        self._order = 0

    def calm(self) -> None:
        """From now on every message is delivered intact, at the next step."""
        self.faulty = False

    def fault_for(self, seq: int) -> Fault:
        if self.faulty and seq < len(self.schedule):
            return self.schedule[seq]
        return DELIVER

    def put(self, src: Side, data: str) -> None:
        packet = Packet(len(self.sent), src, data, self.step)
        self.sent.append(packet)
        fault = self.fault_for(packet.seq)
        self.extra_copies += max(0, len(fault.copies) - 1)
        for copy in fault.copies:
            self._order += 1
            due = self.step + 1 + copy.delay
            self._flight.append(_InFlight(due, self._order, src, copy.apply(data), packet.seq))

    def advance(self) -> list[tuple[Packet, str]]:
        """Move to the next step; the copies due now, in delivery order."""
        self.step += 1
        due = sorted(f for f in self._flight if f.due <= self.step)
        self._flight = [f for f in self._flight if f.due > self.step]
        out = [(self.sent[f.seq], f.data) for f in due]
        self.delivered.extend(out)
        return out

    @property
    def idle(self) -> bool:
        return not self._flight

    def sent_by(self, side: Side) -> list[Packet]:
        return [p for p in self.sent if p.src == side]
