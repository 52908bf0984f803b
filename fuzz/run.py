"""Run the fuzz targets.

    python -m fuzz.run list
    python -m fuzz.run fuzz TARGET [libFuzzer options and corpus directories...]
    python -m fuzz.run replay TARGET FILE_OR_DIRECTORY...

``fuzz`` runs one target under Atheris (libFuzzer), with coverage
instrumentation of the offrecord package; every libFuzzer option works
(``-max_total_time``, ``-runs``, ``-timeout``, ``-rss_limit_mb``, ``-dict``,
``-merge=1``, ``-artifact_prefix`` ...).  ``replay`` runs files through a
target's contract without Atheris and reports the first failure with a
traceback.  scripts/fuzz.sh wraps both for long runs; see docs/fuzzing.md.
"""

from __future__ import annotations

import importlib
import sys
import time
import traceback
from pathlib import Path

CORPUS = Path(__file__).with_name("corpus")
DICTIONARY = Path(__file__).with_name("otr.dict")
# Modules the core imports lazily, inside functions: imported up front so that
# they are instrumented too.
INSTRUMENT_TOO = ("offrecord.storage.trust",)


def _targets() -> dict[str, object]:
    from fuzz.targets import TARGETS

    return dict(TARGETS)


def _files(paths: list[str]) -> list[Path]:
    out: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            out.extend(sorted(p for p in path.iterdir() if p.is_file()))
        else:
            out.append(path)
    return out


def replay(name: str, paths: list[str]) -> int:
    from fuzz.targets import TARGETS

    fn = TARGETS[name]
    files = _files(paths)
    slowest = 0.0
    for path in files:
        data = path.read_bytes()
        started = time.perf_counter()
        try:
            fn(data)
        except Exception:
            traceback.print_exc()
            print(f"\n{name}: contract broken by {path}\n  input: {data!r}", file=sys.stderr)
            return 1
        slowest = max(slowest, time.perf_counter() - started)
    print(f"{name}: {len(files)} inputs kept the contract (slowest {slowest * 1000:.1f} ms)")
    return 0


def fuzz(name: str, libfuzzer_args: list[str]) -> int:
    import atheris

    # Coverage instrumentation of offrecord and of the targets: it applies to
    # modules first imported inside this block, so nothing may import
    # offrecord before it.
    with atheris.instrument_imports(include=["offrecord", "fuzz"]):
        from fuzz.targets import TARGETS

        for module in INSTRUMENT_TOO:
            importlib.import_module(module)
        if name not in TARGETS:
            print(f"unknown target {name!r}; see `python -m fuzz.run list`", file=sys.stderr)
            return 2
        fn = TARGETS[name]
        # Build cached state (keys, checkpoints) before libFuzzer starts timing.
        fn(b"")
    atheris.Setup([f"fuzz-{name}", *libfuzzer_args], fn)
    atheris.Fuzz()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    command, rest = args[0], args[1:]
    if command == "list":
        for name in _targets():
            print(name)
        return 0
    if command == "fuzz" and rest:
        return fuzz(rest[0], rest[1:])
    if command == "replay" and rest:
        if rest[0] not in _targets():
            print(f"unknown target {rest[0]!r}; see `python -m fuzz.run list`", file=sys.stderr)
            return 2
        return replay(rest[0], rest[1:] or [str(CORPUS / rest[0])])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
