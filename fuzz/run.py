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

import fnmatch
import importlib
import importlib.util
import shlex
import sys
import time
import traceback
from pathlib import Path

CORPUS = Path(__file__).with_name("corpus")
DICTIONARY = Path(__file__).with_name("otr.dict")
# What each target's coverage feedback comes from (first match wins): the
# parsers need only their own modules, and instrumenting less starts faster
# and runs the uninstrumented rest at full speed.
COVERAGE: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("envelope_*", ("offrecord.wire",)),
    ("message*", ("offrecord.wire", "offrecord.crypto.dh")),
    ("tlv", ("offrecord.wire",)),
    ("fragment_*", ("offrecord.wire.fragment",)),
    ("smp_*", ("offrecord.smp", "offrecord.wire", "offrecord.crypto")),
    ("ake_signature", ("offrecord.ake", "offrecord.crypto", "offrecord.wire.codec")),
    ("sexp", ("offrecord.storage.sexp",)),
    ("potr_*", ("offrecord.storage", "offrecord.crypto.dsa")),
    ("private_keys", ("offrecord.storage", "offrecord.crypto.dsa")),
    ("fingerprints", ("offrecord.storage",)),
    ("instance_tags", ("offrecord.storage",)),
    ("*", ("offrecord", "fuzz")),
)
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


def _modules(package: str) -> list[str]:
    """Every module of ``package``, found on disk without importing it."""
    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.submodule_search_locations is not None
    out = [package]
    for location in spec.submodule_search_locations:
        root = Path(location)
        for path in root.rglob("*.py"):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            if parts:
                out.append(".".join((package, *parts)))
    return out


def fuzz(name: str, libfuzzer_args: list[str]) -> int:
    import atheris

    # Coverage instrumentation of offrecord and of the targets: it applies to
    # modules first imported inside this block, so nothing may import
    # offrecord before it.
    wanted = next(mods for pattern, mods in COVERAGE if fnmatch.fnmatchcase(name, pattern))
    # Atheris includes whole top-level packages; narrower choices are made by
    # excluding the other modules by name.
    exclude = [
        module
        for module in _modules("offrecord")
        if not any(module == w or module.startswith(w + ".") for w in wanted)
    ]
    include = sorted({w.split(".")[0] for w in wanted})
    with atheris.instrument_imports(include=include, exclude=exclude):
        from fuzz.targets import TARGETS

        for module in INSTRUMENT_TOO:
            importlib.import_module(module)
        if name not in TARGETS:
            print(f"unknown target {name!r}; see `python -m fuzz.run list`", file=sys.stderr)
            return 2
        fn = TARGETS[name]
        # Build cached state (keys, checkpoints) before libFuzzer starts timing.
        fn(b"")
    # libFuzzer re-runs argv[0] through the shell for -merge=1 and -fork: make
    # it the command that runs this target again.
    command = f"{shlex.quote(sys.executable)} -m fuzz.run fuzz {shlex.quote(name)}"
    atheris.Setup([command, *libfuzzer_args], fn)
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
