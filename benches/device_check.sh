#!/usr/bin/env bash
# The GPU device check, in one call ON the lent GPU machine (H100/H200, driver 580, CUDA 13.0,
# PyTorch 2.11 with transformers in its image's python3). Prepare it HERE first with
# benches/prepare_device_check.sh, which builds the `cuda` executables, puts them and a copy of
# ../shared/gpu/device_env.sh into .device-carry/ (ignored through .git/info/exclude), and
# prints the device tool's `run` call (command `bash benches/device_check.sh`, carry
# [".device-carry"]).
#
# Steps, each under its own time limit and all under BUDGET_S (default 480 s), so the call ends
# well inside its 10-minute limit; a failed step does not stop the later ones:
#   1. the CPU ↔ CUDA parity tests (tests/integration/cuda.rs) on every fixture model, and
#      `sft-eval train --device cuda` against the CPU's losses (30 steps on the organism);
#   2. the criterion benches forward, decode, train_step and train_phase on the GPU
#      (SFT_EVAL_BENCH_DEVICE=cuda, SFT_EVAL_BENCH_LARGE=1: the small and the SmolLM2-135M shapes),
#      f32;
#   3. the PyTorch side (benches/pytorch_side_by_side.py --device cuda --large --phases), f32;
#   4. and 5. the same two in bf16 (SFT_EVAL_BENCH_DTYPE=bf16, --dtype bf16);
#   with CUDA_FUSED=1 (the default), the parity tests again and the forward and train-step benches
#   in each dtype again, with the fused kernels written for CUDA switched on (SFT_EVAL_CUDA_FUSED=1:
#   RMSNorm, RoPE, SwiGLU, the head + cross-entropy by blocks; off by default in sft-eval until
#   this check has passed and measured them).
# A shorter check: PARITY=0 skips step 1, BENCH_FILTER narrows the criterion benches (a regex,
# default '^(forward|decode|train_step|train_phase)/'), TORCH_ONLY=train_step narrows the PyTorch
# side to one workload, TORCH=0 skips it.
# If the machine's python3 lacks torch or transformers, steps 3 and 5 are skipped with a note.
# Everything goes to $OUT/device_check.log (and to stdout); the exit status is 1 if any step
# failed or was skipped for lack of time.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1

CARRY=${CARRY:-.device-carry}
BUDGET_S=${BUDGET_S:-480}
WARMUP_S=${WARMUP_S:-1}
MEASURE_S=${MEASURE_S:-5}
OUT=${OUT:-/tmp/device-check-out}
PARITY=${PARITY:-1}
BENCH_FILTER=${BENCH_FILTER:-'^(forward|decode|train_step|train_phase)/'}
TORCH_ONLY=${TORCH_ONLY:-}
TORCH=${TORCH:-1}
CUDA_FUSED=${CUDA_FUSED:-1}
FUSED_BENCH_FILTER=${FUSED_BENCH_FILTER:-'^(forward|train_step)/'}
mkdir -p "$OUT"
LOG=$OUT/device_check.log
FAILED=()
left() { echo $((BUDGET_S - SECONDS)); }
# step NAME MAX_SECONDS COMMAND...: run COMMAND under min(MAX_SECONDS, what is left of the budget)
step() {
  local name=$1 max=$2 t rc s0
  shift 2
  t=$(left)
  ((t > max)) && t=$max
  if ((t < 20)); then
    echo "=== $name: SKIPPED (budget of ${BUDGET_S}s spent)"
    FAILED+=("$name (skipped: no time left)")
    return
  fi
  echo
  echo "=== $name (limit ${t}s, at ${SECONDS}s) $(date -u +%T)"
  s0=$SECONDS
  # through bash, so that COMMAND may be one of the exported functions below
  timeout -k 10 "$t" bash -c '"$@"' _ "$@"
  rc=$?
  echo "=== $name: rc=$rc after $((SECONDS - s0))s"
  ((rc == 0)) || FAILED+=("$name (rc=$rc$( ((rc == 124)) && echo ', timed out'))")
}

# `sft-eval train` on the model organism, 30 f32 steps on the CPU and on GPU 0 from the same seed;
# every step's loss within 1e-4 relative (issue 18's target for the command line)
train_cli() {
  local dev
  for dev in cpu cuda; do
    rm -rf "/tmp/sft-eval-train-$dev"
    "$BIN/sft-eval" train models/organism --data models/organism/data/convert.jsonl \
      --max-steps 30 --seed 1 -o "/tmp/sft-eval-train-$dev" --device "$dev" || return 1
  done
  python3 - <<'PY'
import json
def losses(dev):
    return [json.loads(l)["loss"] for l in open(f"/tmp/sft-eval-train-{dev}/log.jsonl") if '"loss"' in l]
cpu, cuda = losses("cpu"), losses("cuda")
assert len(cpu) == len(cuda) == 30, (len(cpu), len(cuda))
worst = max(abs(a - b) / abs(a) for a, b in zip(cpu, cuda))
print(f"30 steps: loss {cpu[0]:.6f} -> {cpu[-1]:.6f} on cpu, {cuda[0]:.6f} -> {cuda[-1]:.6f} on cuda; worst relative difference {worst:.2e}")
assert worst <= 1e-4, worst
PY
}
export -f train_cli

# the whole check runs in main, piped through tee, so that the log is complete when this returns
main() {

  echo "=== sft-eval device check, $(date -u +%FT%TZ), $(uname -m), $(nproc) cores"
  git log -1 --format='commit %h %s' 2>/dev/null || true
  git status --short 2>/dev/null | head -30 || true

  # the executables: xz-compressed by prepare_device_check.sh to fit the carry limit (or plain)
  export BIN=/tmp/sft-eval-device-bin
  mkdir -p "$BIN"
  for exe in integration bench-main sft-eval; do
    if [ -f "$CARRY/$exe" ]; then
      cp "$CARRY/$exe" "$BIN/$exe"
    elif [ -f "$CARRY/$exe.xz" ]; then
      xz -dc "$CARRY/$exe.xz" >"$BIN/$exe" 2>/dev/null ||
        python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' \
          "$CARRY/$exe.xz" "$BIN/$exe" || exit 2
    else
      echo "missing $CARRY/$exe(.xz): run benches/prepare_device_check.sh here first, and carry $CARRY"
      exit 2
    fi
    chmod +x "$BIN/$exe"
  done
  ls -l "$BIN"
  [ -f "$CARRY/BUILD_INFO" ] && cat "$CARRY/BUILD_INFO"

  # CUDA 13 user-space libraries from the machine's PyTorch wheels, and the driver's libcuda
  # shellcheck disable=SC1091
  source "$CARRY/device_env.sh"
  # the executables find tests/fixtures through it (they were built in another folder)
  export CARGO_MANIFEST_DIR=$PWD
  export CRITERION_HOME=/tmp/sft-eval-criterion
  export RUST_BACKTRACE=1
  ldd "$BIN/integration" | grep -Ei 'cuda|cublas|curand|nvrtc|not found' || true

  # 1. parity
  if ((PARITY)); then
    step "parity: CPU vs CUDA on every fixture model" 180 \
      "$BIN/integration" cuda:: --test-threads=1 --nocapture
    if ((CUDA_FUSED)); then
      step "parity with SFT_EVAL_CUDA_FUSED=1" 120 \
        env SFT_EVAL_CUDA_FUSED=1 "$BIN/integration" cuda:: --test-threads=1 --nocapture
    fi
  fi

  # 1c. the command line itself: `sft-eval train --device cuda` against the CPU's losses
  if ((PARITY)); then
    step "sft-eval train on cuda vs cpu, 30 f32 steps" 90 train_cli
    if ((CUDA_FUSED)); then
      step "sft-eval train on cuda vs cpu, SFT_EVAL_CUDA_FUSED=1" 90 env SFT_EVAL_CUDA_FUSED=1 bash -c train_cli
    fi
  fi

  HAVE_TORCH=$TORCH
  if ((HAVE_TORCH)); then
    python3 -c 'import torch, transformers; print("python3", __import__("sys").version.split()[0], "torch", torch.__version__, "transformers", transformers.__version__, "cuda", torch.cuda.is_available())' ||
      { HAVE_TORCH=0; echo "NOTE: python3 lacks torch or transformers here: the PyTorch steps are skipped"; }
  else
    echo "NOTE: TORCH=0: the PyTorch steps are skipped"
  fi

  bench() { # bench DTYPE
    SFT_EVAL_BENCH_DEVICE=cuda SFT_EVAL_BENCH_DTYPE=$1 SFT_EVAL_BENCH_LARGE=1 \
      "$BIN/bench-main" --bench "$BENCH_FILTER" \
      --warm-up-time "$WARMUP_S" --measurement-time "$MEASURE_S"
  }
  torch_side() { # torch_side DTYPE
    PYTHONUNBUFFERED=1 python3 benches/pytorch_side_by_side.py --device cuda --dtype "$1" --large \
      --phases --threads "$(nproc)" ${TORCH_ONLY:+--only "$TORCH_ONLY"}
  }
  bench_fused() { # bench_fused DTYPE
    SFT_EVAL_CUDA_FUSED=1 BENCH_FILTER=$FUSED_BENCH_FILTER bench "$1"
  }
  export -f bench bench_fused torch_side
  export WARMUP_S MEASURE_S BENCH_FILTER FUSED_BENCH_FILTER TORCH_ONLY

  for dt in f32 bf16; do
    step "candle benches on cuda, $dt" 150 bench "$dt"
    if ((CUDA_FUSED)); then
      step "candle benches on cuda, $dt, SFT_EVAL_CUDA_FUSED=1" 90 bench_fused "$dt"
    fi
    if ((HAVE_TORCH)); then
      step "pytorch side on cuda, $dt" 90 torch_side "$dt"
    fi
  done

  echo
  echo "=== summary (criterion: the three numbers are the low, the estimate and the high)"
  grep -E '^(forward|decode|train_step|train_phase)/|thrpt:|time:|tok/s| ms$|peak ' "$LOG" | grep -v '^===' || true
  nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader 2>/dev/null || true
  if ((${#FAILED[@]})); then
    printf '=== FAILED: %s\n' "${FAILED[@]}"
    exit 1
  fi
  echo "=== all steps passed in ${SECONDS}s"
}
main 2>&1 | tee "$LOG"
exit "${PIPESTATUS[0]}"
