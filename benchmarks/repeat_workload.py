"""Run one of offrecord's benchmark workloads over and over, for a profiler.

    .venv/bin/python benchmarks/repeat_workload.py oneway               # time per operation
    .venv/bin/python benchmarks/repeat_workload.py fragment --cprofile  # and the top functions
    py-spy record -o profile.svg -- .venv/bin/python benchmarks/repeat_workload.py oneway

Only offrecord's side runs (no libotr): the measured sections of the workload
(see offrecord_bench.py) are repeated for ``--seconds``; the untimed setup
(keys, the AKE) happens once.  The time printed is the best batch's CPU time
per operation.
"""

from __future__ import annotations

import argparse
import cProfile
import itertools
import pstats
import sys
import time
from collections.abc import Iterator

import offrecord_bench as ob

from offrecord.crypto.dsa import generate_private_key
from offrecord.crypto.primitives import system_random


class _Batches:
    """A meter that keeps the CPU time per operation of each measured section."""

    def __init__(self) -> None:
        self.per_op: list[float] = []
        self._start = 0.0

    def begin(self) -> None:
        self._start = time.process_time()

    def end(self, ops: int) -> None:
        self.per_op.append((time.process_time() - self._start) / ops)


def _forever(name: str, params: ob.Params, keys: ob.Keys, meter: ob.Meter) -> Iterator[None]:
    """The workload's chunks, the workload restarted whenever it ends."""
    for _ in itertools.count():
        yield from ob.WORKLOADS[name](params, keys, meter)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workload", choices=sorted(ob.WORKLOADS))
    parser.add_argument("--seconds", type=float, default=10.0, help="how long (default 10)")
    parser.add_argument(
        "--cprofile", action="store_true", help="run under cProfile and print the top functions"
    )
    args = parser.parse_args(argv)
    if args.seconds <= 0:
        parser.error("--seconds must be positive")

    keys: ob.Keys = (generate_private_key(system_random), generate_private_key(system_random))
    meter = _Batches()
    # Longer runs than the benchmark's, so that setting a workload up again
    # (new accounts, an AKE, the texts) shows little in a profile.
    params = ob.Params(
        keygen_reps=10_000, ake_reps=10_000, pingpong_messages=20_000,
        oneway_messages=20_000, smp_reps=1_000, fragment_reps=10_000,
    )  # fmt: skip
    chunks = _forever(args.workload, params, keys, meter)
    profiler = cProfile.Profile() if args.cprofile else None
    deadline = time.monotonic() + args.seconds
    if profiler is not None:
        profiler.enable()
    while time.monotonic() < deadline:
        next(chunks)
    if profiler is not None:
        profiler.disable()
    best = min(meter.per_op)
    unit, scale = ("ms", 1e3) if best >= 1e-3 else ("us", 1e6)
    print(f"{args.workload}: {best * scale:.4g} {unit} per operation (best of {len(meter.per_op)})")
    if profiler is not None:
        pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(25)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
