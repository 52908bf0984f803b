"""The fuzz targets of fuzz/targets.py under test: the repository corpus,
Hypothesis, and a bounded Atheris run of every target.

* Every corpus entry (fuzz/corpus/<target>/) is replayed in-process through its
  target's contract, each within a time limit.
* Hypothesis feeds each target random bytes and mutated corpus entries.
* Each target runs under Atheris (libFuzzer, with coverage of offrecord) in a
  subprocess for a few seconds with per-input time and RSS limits, two at a
  time; a failure prints the reproducer and the command that replays it.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import re
import resource
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz.targets import TARGETS

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "fuzz" / "corpus"
DICTIONARY = ROOT / "fuzz" / "otr.dict"
NAMES = sorted(TARGETS)
# Per input, in-process: far above the slowest corpus entry (a whole
# conversation with SMP, about 0.2 s), far below anything like a hang.
INPUT_SECONDS = 10.0
# How much the whole corpus of one target may raise the process's peak RSS.
PEAK_GROWTH_MB = 256
# The bounded Atheris run of each target.
FUZZ_SECONDS = int(os.environ.get("OFFRECORD_FUZZ_SECONDS", "4"))
RSS_LIMIT_MB = 1024


def corpus(name: str) -> list[Path]:
    return sorted(p for p in (CORPUS / name).iterdir() if p.is_file())


def show(data: bytes, limit: int = 600) -> str:
    return repr(data[:limit]) + (f"... ({len(data)} bytes)" if len(data) > limit else "")


def test_every_target_has_a_corpus() -> None:
    assert set(NAMES) == {p.name for p in CORPUS.iterdir() if p.is_dir()}
    for name in NAMES:
        assert corpus(name), f"fuzz/corpus/{name} is empty"


@pytest.mark.parametrize("name", NAMES)
def test_corpus_keeps_the_contract(name: str) -> None:
    fn = TARGETS[name]
    fn(b"")  # build cached state outside the timing
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for path in corpus(name):
        data = path.read_bytes()
        started = time.perf_counter()
        try:
            fn(data)
        except Exception as exc:
            pytest.fail(
                f"{name}: {type(exc).__name__}: {exc}\n  reproducer: {path}\n"
                f"  replay: .venv/bin/python -m fuzz.run replay {name} {path}"
            )
        elapsed = time.perf_counter() - started
        assert elapsed < INPUT_SECONDS, f"{name}: {path} took {elapsed:.1f} s"
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 1024
    assert grown_mb < PEAK_GROWTH_MB, f"{name}: the corpus raised peak memory by {grown_mb:.0f} MB"


@st.composite
def near_corpus(draw: st.DrawFn, name: str) -> bytes:
    """A corpus entry with a few bytes overwritten, inserted or cut."""
    data = bytearray(draw(st.sampled_from(corpus(name))).read_bytes())
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        how = draw(st.sampled_from(["set", "insert", "cut"]))
        if how == "set" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif how == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        else:
            del data[at : at + draw(st.integers(1, 64))]
    return bytes(data)


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_hypothesis_keeps_the_contract(name: str, data: st.DataObject) -> None:
    TARGETS[name](data.draw(st.binary(max_size=512) | near_corpus(name)))


# -- Atheris ----------------------------------------------------------------------


def atheris_expected() -> bool:
    """Where pyproject's marker installs atheris (it has wheels there)."""
    return sys.platform == "linux" and platform.machine() == "x86_64" and sys.version_info < (3, 14)


@dataclass(frozen=True)
class Run:
    returncode: int
    log: str
    artifacts: tuple[Path, ...]


def run_atheris(name: str, work: Path) -> Run:
    out = work / name
    (out / "corpus").mkdir(parents=True)
    command = [
        sys.executable, "-m", "fuzz.run", "fuzz", name, str(out / "corpus"), str(CORPUS / name),
        f"-dict={DICTIONARY}", f"-max_total_time={FUZZ_SECONDS}", "-runs=10000000",
        "-timeout=20", f"-rss_limit_mb={RSS_LIMIT_MB}", "-max_len=65536",
        f"-artifact_prefix={out}/", "-print_final_stats=1",
    ]  # fmt: skip
    if os.environ.get("CI"):
        # Reproducible in CI (like the Hypothesis profile there); random locally.
        command.append(f"-seed={zlib.crc32(name.encode()) or 1}")
    proc = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=FUZZ_SECONDS + 120,
        check=False,
    )  # fmt: skip
    artifacts = tuple(
        p
        for p in out.iterdir()
        if p.is_file() and p.name.startswith(("crash-", "timeout-", "oom-"))
    )
    return Run(proc.returncode, proc.stdout + proc.stderr, artifacts)


@pytest.fixture(scope="module")
def atheris_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Run]]:
    if importlib.util.find_spec("atheris") is None:
        if atheris_expected():
            pytest.fail("atheris is not installed: run scripts/bootstrap.sh")
        pytest.skip("atheris has no wheel for this platform (see pyproject.toml)")
    work = tmp_path_factory.mktemp("atheris")
    # Two at a time: the suite's budget assumes two cores.
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = dict(zip(NAMES, pool.map(lambda n: run_atheris(n, work), NAMES), strict=True))
    yield runs


def stat(log: str, key: str) -> int:
    found = re.findall(rf"^stat::{key}:\s*(\d+)", log, re.MULTILINE)
    return int(found[-1]) if found else -1


@pytest.mark.parametrize("name", NAMES)
def test_atheris_run(name: str, atheris_runs: dict[str, Run]) -> None:
    run = atheris_runs[name]
    if run.returncode != 0 or run.artifacts:
        # From the Python traceback on, if there is one.
        at = run.log.find("=== Uncaught Python exception")
        at = at if at >= 0 else max(0, len(run.log) - 4000)
        details = [f"{name}: Atheris exited with {run.returncode}", run.log[at:][-6000:]]
        for artifact in run.artifacts:
            details.append(f"reproducer {artifact}: {show(artifact.read_bytes())}")
            details.append(f"replay: .venv/bin/python -m fuzz.run replay {name} {artifact}")
        pytest.fail("\n".join(details))
    assert stat(run.log, "number_of_executed_units") > 0, run.log[-2000:]
    # Coverage instrumentation of offrecord works: libFuzzer sees edges.
    coverage = [int(c) for c in re.findall(r"\bcov: (\d+)", run.log)]
    assert coverage and max(coverage) >= 10, run.log[-2000:]


# What each whole-conversation seed makes the receiver report, in order.  The
# seeds replay a real peer's messages against a deterministic receiver; when a
# change of the core alters what the receiver sends (its keys, its randomness),
# the recorded messages stop matching and the seeds silently get shallow.
# Regenerate them with: .venv/bin/python -m fuzz.seeds
SEED_EVENTS = {
    "seed-transcript": ["SessionSecured", *["MessageReceived"] * 4, "SessionFinished"],
    "seed-smp": ["SessionSecured", "MessageReceived", "SMPRequested", "SMPResult", "SMPResult",
                 "ExtraSymmetricKey", "MessageReceived", "SessionFinished"],
    "seed-always": ["MessageHeld", "SessionSecured", "MessageResent", "MessageReceived"],
    "seed-refresh": ["SessionSecured", "SessionSecured", "MessageReceived", "SessionEnded",
                     "ErrorReceived", "SessionSecured"],
    "seed-whitespace": ["MessageReceived", "SessionSecured", "MessageReceived"],
    "seed-many-pieces": ["SessionSecured", "MessageReceived"],
}  # fmt: skip
SEED_EVENTS["seed-v2"] = SEED_EVENTS["seed-fragments-smp"] = SEED_EVENTS["seed-smp"]


@pytest.mark.parametrize("seed", sorted(SEED_EVENTS))
def test_conversation_seeds_still_reach_their_depth(seed: str) -> None:
    from fuzz.conversation import run_ops

    data = (CORPUS / "account" / seed).read_bytes()
    seen = iter([type(e).__name__ for _op, events in run_ops(data) for e in events])
    missing = [name for name in SEED_EVENTS[seed] if name not in seen]
    assert not missing, (
        f"{seed} no longer reaches {missing}: regenerate with .venv/bin/python -m fuzz.seeds"
    )
