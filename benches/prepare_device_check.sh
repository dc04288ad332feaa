#!/usr/bin/env bash
# Run HERE (the GPU-less build machine) before benches/device_check.sh runs on a lent GPU machine:
#   1. builds the `cuda` feature's test, bench and sft-eval executables (recipe: ../shared/gpu/README.md;
#      the CUDA 13.0 toolchain comes from PyPI through ../shared/gpu/setup_cuda_toolchain.sh if
#      ~/.cache/cuda-toolchain has none) in a target folder of their own, ../target-cuda unless
#      CARGO_TARGET_DIR says otherwise, so the CPU build in target/ is left alone;
#   2. strips them, compresses them (xz: ~70 MiB each stripped, ~10 MiB compressed; the
#      embedded CUDA kernels are most of it), and puts them with a copy of
#      ../shared/gpu/device_env.sh into
#      .device-carry/ (ignored through .git/info/exclude: `/.device-carry/`), within the device
#      tool's 64 MiB limit on what travels (working tree + carried folders);
#   3. prints the device tool's `run` call.
# Builds run under `nice -n 19` with CUDAFORGE_THREADS=1 (2 cores, shared with benchmarks).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
GPU_DIR=${GPU_DIR:-$ROOT/../shared/gpu}
CARRY=.device-carry
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$(cd .. && pwd)/target-cuda}
export CUDAFORGE_THREADS=${CUDAFORGE_THREADS:-1}
TOOLCHAIN=${TOOLCHAIN_DIR:-$HOME/.cache/cuda-toolchain}/cuda/env.sh

grep -qx '/.device-carry/' .git/info/exclude 2>/dev/null || echo '/.device-carry/' >>.git/info/exclude

if [ ! -f "$TOOLCHAIN" ]; then
  nice -n 19 cargo fetch
  nice -n 19 bash "$GPU_DIR/setup_cuda_toolchain.sh"
fi
# shellcheck disable=SC1090
source "$TOOLCHAIN"

# the executable of one cargo target, from cargo's JSON messages (a build that is up to date
# still reports it)
executable() { # KIND NAME < cargo --message-format=json
  python3 -c '
import json, sys
kind, name = sys.argv[1:]
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    t = m.get("target") or {}
    if m.get("reason") == "compiler-artifact" and m.get("executable") and t.get("name") == name and kind in t.get("kind", []):
        print(m["executable"])
' "$1" "$2" | tail -1
}

t0=$SECONDS
tests=$(nice -n 19 cargo test --release --features cuda --no-run --message-format=json | executable test integration)
t1=$SECONDS
bench=$(nice -n 19 cargo bench --bench main --features cuda --no-run --message-format=json | executable bench main)
t2=$SECONDS
cli=$(nice -n 19 cargo build --release --features cuda --bin sft-eval --message-format=json | executable bin sft-eval)
t3=$SECONDS
[ -x "$tests" ] || { echo "no integration test executable found" >&2; exit 1; }
[ -x "$bench" ] || { echo "no bench executable found" >&2; exit 1; }
[ -x "$cli" ] || { echo "no sft-eval executable found" >&2; exit 1; }
echo "built in $((t1 - t0))s (tests) + $((t2 - t1))s (bench) + $((t3 - t2))s (sft-eval): $tests, $bench, $cli"

mkdir -p "$CARRY"
rm -f "$CARRY"/integration* "$CARRY"/bench-main* "$CARRY"/sft-eval* "$CARRY"/device_env.sh "$CARRY"/BUILD_INFO
cp "$GPU_DIR/device_env.sh" "$CARRY/device_env.sh"
for pair in "integration:$tests" "bench-main:$bench" "sft-eval:$cli"; do
  name=${pair%%:*} exe=${pair#*:}
  # symbols stay (panic backtraces keep their names); the line tables go
  strip --strip-debug -o "$CARRY/$name" "$exe"
  nice -n 19 xz -6 -T1 -f "$CARRY/$name"
done
{
  echo "built $(date -u +%FT%TZ) from $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . 2>/dev/null || echo ' + uncommitted changes')"
  echo "CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-?} (sm_90a: H100/H200 only), $(nvcc --version | grep -o 'release [0-9.]*')"
} >"$CARRY/BUILD_INFO"

echo
echo "unstripped: $(du -h "$tests" | cut -f1) tests, $(du -h "$bench" | cut -f1) bench"
ls -l "$CARRY"
carry=$(du -sb "$CARRY" | cut -f1)
tree=$(git ls-files -co --exclude-standard -z | du -cb --files0-from=- | tail -1 | cut -f1)
echo "carry $((carry / 1024 / 1024)) MiB + working tree $((tree / 1024 / 1024)) MiB = $(((carry + tree) / 1024 / 1024)) MiB of the 64 MiB limit"
if ((carry + tree > 64 * 1024 * 1024)); then
  echo "over the device tool's 64 MiB limit" >&2
  exit 1
fi
cat <<'EOF'

Device tool call (one call, about 6 minutes of GPU time plus the machine's start; the log comes
back as device_check.log under the reply's files_at):
  run(command="bash benches/device_check.sh", carry=[".device-carry"], timeout_s=540)
Then give_back unless you rerun at once.
EOF
