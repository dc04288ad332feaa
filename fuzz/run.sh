#!/usr/bin/env bash
# Fuzz every target for SECONDS each (default 600) with AFL++, one after another, and print a
# table of executions, paths and crashes (from each run's fuzzer_stats). Targets after SECONDS
# pick a subset (default: every folder in corpus/). Run from fuzz/.
set -euo pipefail
cd "$(dirname "$0")"
SECONDS_EACH="${1:-600}"
shift || true
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
    for dir in corpus/*/; do TARGETS+=("$(basename "$dir")"); done
fi
cargo afl build --release
export AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI=1
echo "| target | seconds | executions | execs/s | corpus | crashes | hangs |"
echo "|---|---|---|---|---|---|---|"
for t in "${TARGETS[@]}"; do
    [ -d "corpus/$t" ] || { echo "no corpus/$t" >&2; exit 2; }
    rm -rf "out/$t"; mkdir -p out
    SFT_EVAL_FUZZ_TARGET="$t" timeout --preserve-status $((SECONDS_EACH + 30)) \
        cargo afl fuzz -V "$SECONDS_EACH" -t 5000 -m none -i "corpus/$t" -o "out/$t" \
        target/release/sft-eval-fuzz > "out-$t.log" 2>&1 || true
    s="out/$t/default/fuzzer_stats"
    v() { grep "^$1 " "$s" | sed 's/.*: //'; }
    echo "| $t | $SECONDS_EACH | $(v execs_done) | $(v execs_per_sec) | $(v corpus_count) | $(v saved_crashes) | $(v saved_hangs) |"
done
