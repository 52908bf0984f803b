#!/usr/bin/env bash
# Long fuzzing runs of offrecord's parsers and entry points under Atheris.
#
#   scripts/fuzz.sh [--time SECONDS] [--jobs N] [--out DIR] [TARGET...]
#   scripts/fuzz.sh --merge [--out DIR] [TARGET...]
#   scripts/fuzz.sh --minimize [TARGET...]
#   scripts/fuzz.sh --list
#
# Fuzzing (the default) runs each TARGET (all of them when none is named) for
# SECONDS (default 3600), starting from the repository corpus fuzz/corpus/<target>
# and saving new inputs to DIR/<target>/corpus and crash, timeout and
# out-of-memory reproducers to DIR/<target>/crashes/.  DIR defaults to
# $OFFRECORD_FUZZ_DIR, else ~/.cache/offrecord-fuzz: never inside the repository.
# --merge adds to fuzz/corpus/<target> the inputs of DIR/<target>/corpus that
# reach new coverage; --minimize shrinks fuzz/corpus/<target> to a smallest set
# with the same coverage (the generated seed-* files are always kept).
# A reproducer replays with: .venv/bin/python -m fuzz.run replay TARGET FILE
# See docs/fuzzing.md.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=3600
jobs=1
mode=fuzz
out="${OFFRECORD_FUZZ_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/offrecord-fuzz}"
targets=()
while [ $# -gt 0 ]; do
    case "$1" in
        --time) seconds="$2"; shift 2 ;;
        --jobs) jobs="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        --merge) mode=merge; shift ;;
        --minimize) mode=minimize; shift ;;
        --list) mode=list; shift ;;
        -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
        *) targets+=("$1"); shift ;;
    esac
done

python=.venv/bin/python
[ -x "$python" ] || { echo "fuzz.sh: run scripts/bootstrap.sh first" >&2; exit 1; }
"$python" -c 'import atheris' 2>/dev/null || {
    echo "fuzz.sh: atheris is not installed (it has wheels for Linux x86_64, Python 3.11-3.13)" >&2
    exit 1; }
if [ "$mode" = list ]; then exec "$python" -m fuzz.run list; fi
[ "${#targets[@]}" -gt 0 ] || mapfile -t targets < <("$python" -m fuzz.run list)

# Bounds for every input: a slow input or a memory hog is a finding too.
limits=(-timeout=20 -rss_limit_mb=2048 -max_len=65536)

fuzz_one() {
    local target="$1" dir="$out/$1"
    mkdir -p "$dir/corpus" "$dir/crashes"
    echo "== $target: fuzzing for ${seconds}s (log: $dir/log)"
    local status=0
    "$python" -m fuzz.run fuzz "$target" "$dir/corpus" "fuzz/corpus/$target" \
        -dict=fuzz/otr.dict "${limits[@]}" -max_total_time="$seconds" \
        -artifact_prefix="$dir/crashes/" -print_final_stats=1 >"$dir/log" 2>&1 || status=$?
    local execs rate
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$dir/log" | tail -1)
    echo "== $target: ${execs:-?} executions, ${rate:-?}/s, exit status $status," \
        "$(find "$dir/corpus" -type f | wc -l) corpus entries in $dir/corpus"
    if [ "$status" -ne 0 ]; then
        grep -E '^(==[0-9]+== ERROR|=== Uncaught|Traceback|[A-Za-z]*Error)' "$dir/log" | head -5 || true
        for f in "$dir"/crashes/*; do
            [ -e "$f" ] && echo "   reproducer: $python -m fuzz.run replay $target $f"
        done
    fi
    return "$status"
}

merge_one() {
    local target="$1" dir="$out/$1"
    [ -d "$dir/corpus" ] || { echo "== $target: nothing in $dir/corpus"; return 0; }
    local before
    before=$(find "fuzz/corpus/$target" -type f | wc -l)
    "$python" -m fuzz.run fuzz "$target" -merge=1 "${limits[@]}" \
        "fuzz/corpus/$target" "$dir/corpus" >"$dir/merge.log" 2>&1
    echo "== $target: $before -> $(find "fuzz/corpus/$target" -type f | wc -l) corpus entries"
}

minimize_one() {
    local target="$1" tmp
    tmp=$(mktemp -d)
    "$python" -m fuzz.run fuzz "$target" -merge=1 "${limits[@]}" \
        "$tmp" "fuzz/corpus/$target" >"$tmp.log" 2>&1 || { cat "$tmp.log" >&2; return 1; }
    find "fuzz/corpus/$target" -type f ! -name 'seed-*' -delete
    for f in "$tmp"/*; do
        [ -e "fuzz/corpus/$target/seed-$(basename "$f")" ] || cp -n "$f" "fuzz/corpus/$target/"
    done
    # libFuzzer names inputs by content hash: drop copies of seeds.
    for seed in "fuzz/corpus/$target"/seed-*; do
        rm -f "fuzz/corpus/$target/$(sha1sum "$seed" | cut -d' ' -f1)"
    done
    rm -rf "$tmp" "$tmp.log"
    echo "== $target: $(find "fuzz/corpus/$target" -type f | wc -l) corpus entries"
}

failed=0
if [ "$mode" = fuzz ]; then
    running=0
    for target in "${targets[@]}"; do
        fuzz_one "$target" &
        running=$((running + 1))
        if [ "$running" -ge "$jobs" ]; then
            wait -n || failed=1
            running=$((running - 1))
        fi
    done
    while [ "$running" -gt 0 ]; do
        wait -n || failed=1
        running=$((running - 1))
    done
else
    for target in "${targets[@]}"; do
        "${mode}_one" "$target" || failed=1
    done
fi
exit "$failed"
