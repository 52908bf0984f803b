"""offrecord and libotr 4.1.1, side by side, on the same workloads.

    .venv/bin/python benchmarks/run.py            # 5 rounds, table + JSON
    .venv/bin/python benchmarks/run.py --smoke    # tiny counts, one round (CI)

Builds ``libotr_bench.c`` with gcc into ``benchmarks/_build/``, then runs each
workload in this process for offrecord and in the C program for libotr, for
several rounds.  The two sides take turns chunk by chunk (one key, one AKE,
100 messages, one SMP...), who goes first alternating, both pinned to the same
core, so that a slow spell of the machine hits both.  Each round gives each
side the median of its samples, and a ratio offrecord/libotr.  Prints a table
of the medians over the rounds, and the modular exponentiations, signatures
and verifications per operation (from a separate counting pass for
offrecord); writes everything, round by round, as JSON
(``benchmarks/_build/results.json`` unless ``--json`` says otherwise).

Exit status: 0 on success, 3 if the libotr benchmark cannot be built (libotr
or gcc missing), 1 on any other failure.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, TextIO

import cryptography
import gmpy2
import offrecord_bench as ob
import pybase64

from offrecord.crypto.dsa import generate_private_key
from offrecord.crypto.primitives import system_random

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "libotr_bench.c"
BUILD_DIR = HERE / "_build"
CFLAGS = ("-std=gnu11", "-Wall", "-Wextra", "-O2")
LIBS = ("-lotr", "-lgcrypt", "-ldl")
EXIT_NO_LIBOTR = 3

FULL = ob.Params()
SMOKE = ob.Params(
    keygen_reps=1,
    ake_reps=2,
    sessions=5,
    pingpong_messages=10,
    oneway_messages=10,
    smp_reps=1,
    fragment_reps=2,
)


# -- what is reported ------------------------------------------------------------


@dataclass(frozen=True)
class Metric:
    """One line of the table.  Values are in ``unit``; ``scale`` converts the
    raw figure (seconds per operation, or bytes) into it."""

    key: str
    title: str
    unit: str
    scale: float
    target: float
    # "ratio<=": ratio offrecord/libotr at most target; "rate>=": ratio of the
    # rates (1 / seconds per operation) at least target; "abs<=": offrecord's
    # own value at most target.
    kind: Literal["ratio<=", "rate>=", "abs<="]

    def value(self, raw: float) -> float:
        if self.kind == "rate>=":
            return 1.0 / raw
        return raw * self.scale

    def ratio(self, offrecord: float, libotr: float) -> float:
        return offrecord / libotr

    def met(self, offrecord: float, ratio: float) -> bool:
        if self.kind == "ratio<=":
            return ratio <= self.target
        if self.kind == "rate>=":
            return ratio >= self.target
        return offrecord <= self.target

    def target_text(self) -> str:
        if self.kind == "abs<=":
            return f"<= {self.target:g} {self.unit}"
        if self.kind == "rate>=":
            return f">= {self.target:g}x"
        return f"<= {self.target:g}"


METRICS = (
    Metric("keygen", "DSA-1024 key generation", "ms", 1e3, 1.0, "ratio<="),
    Metric("ake", "AKE, query to both encrypted", "ms", 1e3, 0.35, "ratio<="),
    Metric("sessions", "AKEs per second (many sessions)", "AKE/s", 1.0, 3.0, "rate>="),
    Metric("pingpong", "message, alternating direction", "us", 1e6, 0.4, "ratio<="),
    Metric("oneway", "message, one way", "us", 1e6, 8.0, "ratio<="),
    Metric("smp", "SMP, full and successful", "ms", 1e3, 0.5, "ratio<="),
    Metric("fragment", "10 KB fragmented at 200, reassembled", "ms", 1e3, 2.0, "ratio<="),
    Metric("memory", "memory per session, both ends", "kB", 1e-3, 20.0, "abs<="),
)

ALL_METRICS = frozenset(m.key for m in METRICS)


# -- the libotr program ------------------------------------------------------------


class BuildError(RuntimeError):
    pass


def build_libotr_bench() -> Path:
    """Compile libotr_bench.c (once per source and flags); the executable."""
    cc = shutil.which(os.environ.get("CC", "gcc"))
    if cc is None:
        raise BuildError("no C compiler: install gcc (apt-get install gcc)")
    source = SOURCE.read_bytes()
    digest = hashlib.sha256(source + "\0".join((cc, *CFLAGS, *LIBS)).encode()).hexdigest()
    target = BUILD_DIR / f"libotr_bench-{digest[:16]}"
    if target.exists():
        return target
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".libotr_bench-", dir=BUILD_DIR)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        cmd = [cc, *CFLAGS, "-o", str(tmp), str(SOURCE), *LIBS]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        output = (done.stderr + done.stdout).strip()
        if done.returncode != 0:
            raise BuildError(
                f"building the libotr benchmark failed ({' '.join(cmd)}):\n{output}\n"
                "libotr 4.1.1's development files are needed: "
                "apt-get install libotr5-dev (brings libgcrypt20-dev)"
            )
        if output:
            print(output, file=sys.stderr)  # warnings: the source must compile clean
        tmp.chmod(0o755)
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
    for old in BUILD_DIR.glob("libotr_bench-*"):
        if old != target:
            old.unlink(missing_ok=True)
    return target


class LibotrBench:
    """The running C program: one command line in, one JSON line out."""

    def __init__(self, exe: Path) -> None:
        self._proc = subprocess.Popen(
            [str(exe)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.ready = self._read()

    def _read(self) -> dict[str, Any]:
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            code = self._proc.wait()
            raise RuntimeError(f"libotr_bench stopped (exit status {code})")
        result: dict[str, Any] = json.loads(line)
        return result

    def run(self, command: str) -> dict[str, Any]:
        assert self._proc.stdin is not None
        self._proc.stdin.write(command + "\n")
        self._proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self._proc.stdin is not None and not self._proc.stdin.closed:
            self._proc.stdin.write("quit\n")
            self._proc.stdin.close()
        self._proc.wait(timeout=30)


def libotr_start(key: str, p: ob.Params) -> str:
    args = {
        "keygen": f"{p.keygen_reps}",
        "ake": f"{p.ake_reps}",
        "sessions": f"{p.sessions}",
        "pingpong": f"{p.pingpong_messages} {p.message_bytes}",
        "oneway": f"{p.oneway_messages} {p.message_bytes}",
        "smp": f"{p.smp_reps}",
        "fragment": f"{p.fragment_reps} {p.fragment_bytes} {p.fragment_size}",
    }[key]
    return f"start {key} {args}"


# -- rounds --------------------------------------------------------------------------


@dataclass
class Round:
    offrecord: dict[str, float]  # raw: seconds per operation, or bytes per session
    libotr: dict[str, float]
    libotr_counts: dict[str, dict[str, float]]
    libotr_rss_per_session: float


# Workloads whose chunks are so short (libotr: well under a millisecond) that
# switching processes between chunks would time cold caches: each side runs
# all of its chunks back to back instead.
UNSPLIT = frozenset({"oneway", "fragment"})


def interleaved(
    key: str, p: ob.Params, keys: ob.Keys, libotr: LibotrBench, flip: bool
) -> tuple[float, float, dict[str, Any]]:
    """Run one workload on both sides, alternating their measured chunks (who
    goes first flips every chunk, and every round).  Returns the medians of
    the samples and libotr's "finish" reply."""
    timer = ob.Timer()
    steps = ob.WORKLOADS[key](p, keys, timer)
    chunks = int(libotr.run(libotr_start(key, p))["chunks"])
    samples: list[float] = []

    def offrecord_steps(n: int) -> None:
        for _ in range(n):
            if next(steps, StopIteration) is StopIteration:
                raise RuntimeError(f"{key}: offrecord has fewer chunks than libotr")

    def libotr_steps(n: int) -> None:
        samples.extend(float(x) for x in libotr.run(f"step {n}")["samples"])

    group = chunks if key in UNSPLIT else 1
    for turn in range(0, chunks, group):
        n = min(group, chunks - turn)
        if (turn // group + flip) % 2:
            libotr_steps(n)
            offrecord_steps(n)
        else:
            offrecord_steps(n)
            libotr_steps(n)
    for _ in steps:  # runs the workload's final checks
        raise RuntimeError(f"{key}: offrecord has more chunks than libotr")
    finish = libotr.run("finish")
    return statistics.median(timer.samples), statistics.median(samples), finish


def run_round(
    index: int,
    p: ob.Params,
    keys: ob.Keys,
    libotr: LibotrBench,
    log: Callable[[str], None],
    only: frozenset[str] = ALL_METRICS,
) -> Round:
    result = Round({}, {}, {}, 0.0)
    # libotr's memory figure comes out of its sessions run.
    for key in [k for k in ob.WORKLOADS if k in only or (k == "sessions" and "memory" in only)]:
        off, lib, finish = interleaved(key, p, keys, libotr, flip=index % 2 == 1)
        result.offrecord[key] = off
        result.libotr[key] = lib
        counts = dict(finish["counts"])
        ops = counts.pop("ops")
        result.libotr_counts[key] = {name: n / ops for name, n in counts.items()}
        if key == "sessions":
            # libotr's memory: heap growth (mallinfo2) over its sessions run,
            # taken outside the timing.
            result.libotr["memory"] = float(finish["heap_per_session"])
            result.libotr_rss_per_session = float(finish["rss_per_session"])
        log(f"  {key:<9} offrecord {off:.6g}  libotr {lib:.6g}")
    if "memory" not in only:
        return result
    # offrecord's memory needs a pass of its own, under tracemalloc.
    result.offrecord["memory"] = ob.memory_per_session(p.sessions, keys)
    log(
        f"  memory    offrecord {result.offrecord['memory']:.6g}  "
        f"libotr {result.libotr['memory']:.6g}"
    )
    return result


def count_offrecord(
    p: ob.Params, keys: ob.Keys, workloads: list[str]
) -> dict[str, dict[str, float]]:
    """The counting pass: each workload once, with the counters in place."""
    out: dict[str, dict[str, float]] = {}
    for key in workloads:
        workload = ob.WORKLOADS[key]
        with ob.counting() as tally:
            counter = ob.Counter(tally)
            for _ in workload(p, keys, counter):
                pass
        out[key] = counter.per_op()
    return out


# -- summary, table, JSON -----------------------------------------------------------------


def summarize(rounds: list[Round]) -> dict[str, dict[str, Any]]:
    summary: dict[str, dict[str, Any]] = {}
    for m in METRICS:
        if m.key not in rounds[0].offrecord:
            continue
        off = [m.value(r.offrecord[m.key]) for r in rounds]
        lib = [m.value(r.libotr[m.key]) for r in rounds]
        ratios = [m.ratio(o, c) for o, c in zip(off, lib, strict=True)]
        off_median = statistics.median(off)
        ratio_median = statistics.median(ratios)
        summary[m.key] = {
            "title": m.title,
            "unit": m.unit,
            "offrecord": off,
            "libotr": lib,
            "ratio": ratios,
            "offrecord_median": off_median,
            "libotr_median": statistics.median(lib),
            "ratio_median": ratio_median,
            "target": m.target_text(),
            "met": m.met(off_median, ratio_median),
        }
    return summary


def machine(libotr_ready: dict[str, Any], load_at_start: tuple[float, ...]) -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "nproc": os.cpu_count(),
        "pinned_to": sorted(os.sched_getaffinity(0)),
        "system": f"{platform.system()} {platform.release()} {platform.machine()}",
        "python": platform.python_version(),
        "gmpy2": gmpy2.version(),
        "gmp": gmpy2.mp_version(),
        "cryptography": cryptography.__version__,
        "pybase64": pybase64.get_version(),
        "libotr": libotr_ready.get("libotr"),
        "libgcrypt": libotr_ready.get("libgcrypt"),
        # Other processes on the machine disturb the figures: note how busy it was.
        "load_average_at_start": load_at_start,
        "load_average_at_end": os.getloadavg(),
    }


def _fmt(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def print_table(
    summary: dict[str, dict[str, Any]],
    counts: dict[str, dict[str, dict[str, float]]],
    out: TextIO,
) -> None:
    head = (
        f"{'workload':<38} {'unit':>5} {'offrecord':>10} {'libotr':>10} "
        f"{'ratio':>7} {'target':>11}  met  ratio per round"
    )
    print(head, file=out)
    print("-" * len(head), file=out)
    for m in METRICS:
        if m.key not in summary:
            continue
        s = summary[m.key]
        rounds = " ".join(f"{r:.3g}" for r in s["ratio"])
        print(
            f"{m.title:<38} {m.unit:>5} {_fmt(s['offrecord_median']):>10} "
            f"{_fmt(s['libotr_median']):>10} {s['ratio_median']:>7.3g} {s['target']:>11}  "
            f"{'yes' if s['met'] else 'NO ':<3}  {rounds}",
            file=out,
        )
    print(
        "\nratio = offrecord / libotr (medians over rounds); for AKEs per second the"
        " ratio of the rates.\n",
        file=out,
    )
    print("Per operation (both sides together):", file=out)
    head = (
        f"{'workload':<10} | {'offrecord: exp':>14} {'(in DSA)':>8} {'sign':>5} {'verify':>6}"
        f" | {'libotr: powm':>12} {'sign':>5} {'verify':>6} {'genkey':>6}"
    )
    print(head, file=out)
    print("-" * len(head), file=out)
    for key in counts:
        o, c = counts[key]["offrecord"], counts[key]["libotr"]
        print(
            f"{key:<10} | {o['group_exp']:>14.3g} {o['dsa_exp']:>8.3g} {o['sign']:>5.3g}"
            f" {o['verify']:>6.3g} | {c['powm']:>12.3g} {c['sign']:>5.3g} {c['verify']:>6.3g}"
            f" {c['genkey']:>6.3g}",
            file=out,
        )
    print(
        "\nexp: modular exponentiations in the 1536-bit DH group (DH and SMP); (in DSA):"
        " those modulo a DSA p or q,\ninside signing, verification and key generation."
        " libotr's powm counts gcry_mpi_powm calls made by\nlibotr (the DH group);"
        " libgcrypt's DSA works inside gcry_pk_sign/verify/genkey and is counted there.",
        file=out,
    )


# -- main --------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds (default 5)")
    parser.add_argument("--smoke", action="store_true", help="tiny counts, one round (CI)")
    parser.add_argument(
        "--json",
        type=Path,
        default=BUILD_DIR / "results.json",
        help="where to write the JSON (default: benchmarks/_build/results.json)",
    )
    parser.add_argument(
        "--cpu",
        type=int,
        default=None,
        help="pin both processes to this CPU (default: the last one allowed; -1: do not pin)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.add_argument(
        "--only",
        metavar="WORKLOAD[,...]",
        help=f"run only these ({', '.join(m.key for m in METRICS)}); default: all",
    )
    args = parser.parse_args(argv)
    only = ALL_METRICS
    if args.only:
        only = frozenset(args.only.split(","))
        if unknown := only - ALL_METRICS:
            parser.error(f"unknown workload(s): {', '.join(sorted(unknown))}")
    params = SMOKE if args.smoke else FULL
    rounds = 1 if args.smoke else args.rounds
    if rounds < 1:
        parser.error("--rounds must be at least 1")

    def log(text: str) -> None:
        if not args.quiet:
            print(text, file=sys.stderr, flush=True)

    try:
        exe = build_libotr_bench()
    except BuildError as exc:
        print(f"run.py: {exc}", file=sys.stderr)
        return EXIT_NO_LIBOTR

    cpu = args.cpu if args.cpu is not None else max(os.sched_getaffinity(0))
    if cpu >= 0:
        # Both processes on one core: they take turns, never run together.
        os.sched_setaffinity(0, {cpu})

    started = time.time()
    load_at_start = os.getloadavg()
    keys: ob.Keys = (generate_private_key(system_random), generate_private_key(system_random))
    libotr = LibotrBench(exe)
    try:
        if not args.smoke:
            log("warm-up")
            run_round(0, SMOKE, keys, libotr, lambda _text: None, only)
        results: list[Round] = []
        for index in range(rounds):
            log(f"round {index + 1}/{rounds}")
            results.append(run_round(index, params, keys, libotr, log, only))
        ready = libotr.ready
    finally:
        libotr.close()
    log("counting pass")
    workloads = [key for key in ob.WORKLOADS if key in results[0].offrecord]
    offrecord_counts = count_offrecord(params, keys, workloads)

    summary = summarize(results)
    counts = {
        key: {"offrecord": offrecord_counts[key], "libotr": results[0].libotr_counts[key]}
        for key in workloads
    }
    report = {
        "machine": machine(ready, load_at_start),
        "params": asdict(params),
        "rounds": [
            {
                m.key: {
                    "offrecord": summary[m.key]["offrecord"][i],
                    "libotr": summary[m.key]["libotr"][i],
                    "ratio": summary[m.key]["ratio"][i],
                }
                for m in METRICS
                if m.key in summary
            }
            | {"libotr_rss_per_session_kB": r.libotr_rss_per_session / 1e3}
            for i, r in enumerate(results)
        ],
        "summary": summary,
        "counts": counts,
        "seconds": round(time.time() - started, 1),
    }
    # The JSON first: it has every round, and a closed stdout cannot lose it.
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print_table(summary, counts, sys.stdout)
    print(f"\nJSON: {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
