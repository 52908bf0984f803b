"""The benchmarks must keep working: ``benchmarks/run.py --smoke`` (tiny counts,
one round) builds the libotr program, runs every workload on both sides and
writes a complete JSON report."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / "benchmarks" / "run.py"
EXIT_NO_LIBOTR = 3  # run.py: the libotr benchmark cannot be built
WORKLOADS = ("keygen", "ake", "sessions", "pingpong", "oneway", "smp", "fragment", "memory")
COUNTED = ("keygen", "ake", "sessions", "pingpong", "oneway", "smp", "fragment")


@pytest.mark.interop
def test_smoke_run_reports_every_workload(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(RUN), "--smoke", "--quiet", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    elapsed = time.monotonic() - started
    if done.returncode == EXIT_NO_LIBOTR:
        pytest.skip(f"the libotr benchmark cannot be built: {done.stderr.strip()}")
    assert done.returncode == 0, done.stdout + done.stderr
    assert elapsed < 60, f"the smoke run took {elapsed:.0f} s"

    report = json.loads(out.read_text())
    assert report["machine"]["libotr"].startswith("4.1")
    summary = report["summary"]
    assert set(summary) == set(WORKLOADS)
    for key in WORKLOADS:
        entry = summary[key]
        for field in ("offrecord_median", "libotr_median", "ratio_median"):
            assert entry[field] > 0, (key, field, entry[field])
        assert isinstance(entry["met"], bool)
    assert len(report["rounds"]) == 1
    for key in WORKLOADS:
        assert report["rounds"][0][key]["ratio"] > 0

    counts = report["counts"]
    for key in COUNTED:
        assert set(counts[key]) == {"offrecord", "libotr"}
    # An AKE signs and verifies once per side, in both implementations.
    assert counts["ake"]["offrecord"]["sign"] == counts["ake"]["libotr"]["sign"] == 2
    assert counts["ake"]["offrecord"]["verify"] == counts["ake"]["libotr"]["verify"] == 2
    assert counts["ake"]["offrecord"]["group_exp"] > 0
    assert counts["ake"]["libotr"]["powm"] > 0
    assert counts["smp"]["offrecord"]["group_exp"] > 0
    assert counts["keygen"]["libotr"]["genkey"] == 1
    # The table went to stdout.
    assert "ratio" in done.stdout and "AKE" in done.stdout


@pytest.mark.interop
def test_only_runs_the_workloads_asked_for(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, str(RUN), "--smoke", "--quiet", "--only", "oneway,memory",
         "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(out.read_text())
    # libotr's memory figure comes out of its sessions run, which therefore runs too.
    assert set(report["summary"]) == {"oneway", "memory", "sessions"}
    assert set(report["counts"]) == {"oneway", "sessions"}
    assert "message, one way" in done.stdout and "AKE, query" not in done.stdout


def test_only_refuses_unknown_workloads() -> None:
    done = subprocess.run(
        [sys.executable, str(RUN), "--smoke", "--only", "oneway,warp"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "unknown workload(s): warp" in done.stderr


@pytest.mark.parametrize("workload", ["oneway", "fragment"])
def test_repeat_workload_reports_a_time_per_operation(workload: str) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "repeat_workload.py"), workload,
         "--seconds", "0.3", "--cprofile"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    first = done.stdout.splitlines()[0]
    assert first.startswith(f"{workload}: ") and "per operation" in first
    assert "function calls" in done.stdout  # cProfile's table follows
