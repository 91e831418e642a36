#!/usr/bin/env bash
# One command for a GPU machine. It takes a recmaml release binary (and the torch_fixtures test
# binary) built elsewhere, so it needs no crate registry or network there, and runs in one go:
#   ceilings     the card's measured FP32 matrix-product rate and copy bandwidth (PyTorch), for
#                the benchmark's floor (skipped without PyTorch);
#   gpu-vs-cpu   `recmaml gpu-check`: the CUDA backend against the CPU engine on random tasks
#                (V 40/1519/10000, H 32/64/128, N 1/32/64, K up to 20, prefixes 1..50), outputs
#                poisoned, same inputs -> same bytes; two meta-steps compared by each tensor's
#                update and Adam's moments, the second with the clip scaling; pretraining by
#                each tensor's change over 2 epochs (--update-tol, --pretrain-tol);
#   fixtures     the PyTorch fixtures (tests/fixtures/torch) on the GPU: the torch_fixtures test
#                binary's CUDA tests with RECMAML_REQUIRE_CUDA=1;
#   memcheck, racecheck   compute-sanitizer over `gpu-check --small`;
#   bench        `recmaml bench --backend cuda` on the reference configuration (CUDA events,
#                median of 1000 iterations after 20 warm-up); variants with w_hh in global memory
#                and with the task kernel's phase counters (RECMAML_CUDA_PROFILE=1);
#   train        a full training run of configs/recency_maml.toml (3000 iterations, validation
#                every 100) on the CUDA backend, wall time (data/synth must be there);
#   pretrain     `recmaml pretrain` of the same configuration on the CUDA backend, wall time;
#   compare      with --compare: benches/compare.sh --backend cuda (PyTorch CUDA, same batches),
#                the N sweep; with --compile instead the reference configuration alone, the
#                batched PyTorch form also timed with torch.compile and as a CUDA graph;
#   ncu          with --ncu: Nsight Compute over one launch of the training task kernel (built
#                with -lineinfo): its sections and per-source-line counters, in ncu.tgz;
#   variants     with --variant NAME=DIR[,VAR=VALUE...] (repeatable): gpu-vs-cpu, bench and
#                the sanitizers again with the kernels read from DIR (RECMAML_KERNEL_DIR) and
#                the environment variables given (e.g. RECMAML_CUDA_CLUSTER=4 where the binary
#                and kernels support it), so one run checks and times several versions of the
#                kernels with one binary; benches/prepare_variants.sh makes the folders.
#                Each variant's bench is also run with the phase counters (RECMAML_CUDA_PROFILE=1),
#                and with --variant-train each variant also runs the training step (wall time).
# then prints one table. Exit status 0 only when every check passed.
#
# Usage: benches/gpu_check.sh [--bin PATH] [--fixtures-bin PATH] [--out DIR] [--compare]
#                             [--compile] [--ncu] [--variant NAME=DIR[,VAR=VAL...] ...]
#                             [--variant-train]
#                             [--skip STEP,...]
#   --bin           recmaml release binary (default target/release/recmaml)
#   --fixtures-bin  the torch_fixtures test binary (cargo test --release --no-run prints it)
#   --out           folder for logs and JSON (default: a fresh temporary folder)
#   --skip          steps to leave out, e.g. train,pretrain,racecheck (a quick tuning run)
# NVRTC must match the driver (the PTX is compiled at run time): the toolkit's lib64 is put on
# LD_LIBRARY_PATH; set NVRTC_LIB_DIR to add another folder.
set -u
BIN=target/release/recmaml
FIXT=""
OUTDIR=""
COMPARE=0
COMPILE=0
NCU=0
VARIANTS=()
VTRAIN=0
SKIP=,
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) BIN=$2; shift 2 ;;
    --fixtures-bin) FIXT=$2; shift 2 ;;
    --out) OUTDIR=$2; shift 2 ;;
    --compare) COMPARE=1; shift ;;
    --compile) COMPARE=1; COMPILE=1; shift ;;
    --ncu) NCU=1; shift ;;
    --variant) VARIANTS+=("$2"); shift 2 ;;
    --variant-train) VTRAIN=1; shift ;;
    --skip) SKIP=",$2,"; shift 2 ;;
    -h|--help) sed -n '2,43p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu_check.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -x "$BIN" ] || { echo "gpu_check.sh: no executable recmaml at $BIN (--bin)" >&2; exit 2; }
OUTDIR=${OUTDIR:-$(mktemp -d)}
mkdir -p "$OUTDIR"
LOG="$OUTDIR/log.txt"
: >"$LOG"
for d in "${NVRTC_LIB_DIR:-}" /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
  [ -n "$d" ] && [ -d "$d" ] && export LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
done
SAN=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null || true)
PY=${RECMAML_PYTHON:-python3}
declare -a NAMES RESULTS
# step NAME SECONDS COMMAND...: runs COMMAND with a time limit, its output into the log.
step() {
  local name=$1 limit=$2; shift 2
  case $SKIP in *",$name,"*) NAMES+=("$name"); RESULTS+=("SKIPPED (--skip)"); return 3 ;; esac
  local t0=$(date +%s.%N)
  echo "== $name: $*" | tee -a "$LOG"
  timeout "$limit" "$@" >"$OUTDIR/step.out" 2>&1
  local rc=$?
  local dt=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
  cat "$OUTDIR/step.out" >>"$LOG"
  tail -n 40 "$OUTDIR/step.out"
  NAMES+=("$name")
  case $rc in
    0) RESULTS+=("pass (${dt} s)") ;;
    124) RESULTS+=("FAIL: over ${limit} s") ;;
    *) RESULTS+=("FAIL: exit $rc (${dt} s)") ;;
  esac
  echo "-- $name: exit $rc after $dt s" | tee -a "$LOG"
  return $rc
}
note() { NAMES+=("$1"); RESULTS+=("$2"); }
# train_step NAME SUFFIX [VAR=VALUE...]: a full training run of configs/recency_maml.toml on the
# CUDA backend with the environment given; its wall time as a row, its results.json kept as
# train-results$SUFFIX.json.
train_step() {
  local name=$1 suffix=$2
  shift 2
  local t0 run="$OUTDIR/train-run$suffix"
  t0=$(date +%s.%N)
  if step "$name" 60 env "$@" "$BIN" train --config configs/recency_maml.toml \
      --set run.backend=cuda --out "$run" --force; then
    local wall
    wall=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
    note "$name wall" "$(printf '%.2f s' "$wall") (bar: under 10 s)"
    cp "$run/results.json" "$OUTDIR/train-results$suffix.json" 2>/dev/null
  fi
  rm -rf "$run"
}

{
  date -u '+%Y-%m-%d %H:%M:%S UTC'
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv
  lscpu | sed -n 's/^Model name: *//p' | head -1
  echo "recmaml: $("$BIN" --version)"
  echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
  ls /usr/local/cuda/lib64/libnvrtc* 2>/dev/null
} 2>&1 | tee -a "$LOG"

PEAK=()
if "$PY" -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null; then
  step ceilings 120 "$PY" - "$OUTDIR/ceilings.json" <<'EOF'
import json, sys, torch
torch.backends.cuda.matmul.allow_tf32 = False
n = 8192
a, b = torch.randn(n, n, device="cuda"), torch.randn(n, n, device="cuda")
def timed(f, reps):
    for _ in range(3):
        f()
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    s.record()
    for _ in range(reps):
        f()
    e.record()
    e.synchronize()
    return s.elapsed_time(e) / reps / 1e3
t = timed(lambda: a @ b, 10)
gflops = 2 * n**3 / t / 1e9
x = torch.randn(2**28, device="cuda")
y = torch.empty_like(x)
t = timed(lambda: y.copy_(x), 20)
gbps = 2 * x.numel() * 4 / t / 1e9
out = {"fp32_matmul_gflops": gflops, "copy_gbps": gbps, "torch": torch.__version__,
       "device": torch.cuda.get_device_name()}
print(json.dumps(out))
json.dump(out, open(sys.argv[1], "w"))
EOF
  if [ -f "$OUTDIR/ceilings.json" ]; then
    read -r GF GB < <("$PY" -c "import json,sys; d=json.load(open(sys.argv[1])); print(d['fp32_matmul_gflops'], d['copy_gbps'])" "$OUTDIR/ceilings.json")
    PEAK=(--peak-gflops "$GF" --peak-gbps "$GB")
  fi
else
  note ceilings "SKIPPED: no PyTorch with CUDA ($PY)"
fi

step gpu-vs-cpu 150 env RECMAML_LOG=debug "$BIN" gpu-check
case ${RESULTS[-1]} in  # on a failure, the same checks with w_hh in global memory
  FAIL*) step gpu-vs-cpu-gmem-whh 150 env RECMAML_CUDA_SMEM_WHH=0 "$BIN" gpu-check ;;
esac
if [ -n "$FIXT" ]; then
  step fixtures 120 env RECMAML_REQUIRE_CUDA=1 "$FIXT" cuda --test-threads 1
else
  note fixtures "SKIPPED: no --fixtures-bin"
fi
step bench 120 "$BIN" bench --backend cuda --warmup 20 --iters 200 --repeats 5 \
  ${PEAK[@]+"${PEAK[@]}"} --json "$OUTDIR/bench.json"
# Variants (not pass/fail): w_hh in global memory instead of shared; the kernel's phase counters.
step bench-gmem-whh 120 env RECMAML_CUDA_SMEM_WHH=0 "$BIN" bench --backend cuda --warmup 20 \
  --iters 200 --repeats 5 ${PEAK[@]+"${PEAK[@]}"} --json "$OUTDIR/bench-gmem-whh.json"
step bench-profile 120 env RECMAML_CUDA_PROFILE=1 "$BIN" bench --backend cuda --warmup 20 \
  --iters 200 --repeats 1 --json "$OUTDIR/bench-profile.json"
for v in ${VARIANTS[@]+"${VARIANTS[@]}"}; do
  vname=${v%%=*} vrest=${v#*=}
  vdir=${vrest%%,*}
  venv=()
  [ "$vrest" != "$vdir" ] && IFS=, read -r -a venv <<<"${vrest#*,}"
  if [ -f "$vdir/common.cuh" ]; then
    step "$vname gpu-vs-cpu" 150 env RECMAML_KERNEL_DIR="$vdir" ${venv[@]+"${venv[@]}"} \
      RECMAML_LOG=debug "$BIN" gpu-check
    step "$vname bench" 120 env RECMAML_KERNEL_DIR="$vdir" ${venv[@]+"${venv[@]}"} "$BIN" bench \
      --backend cuda --warmup 20 --iters 200 --repeats 5 ${PEAK[@]+"${PEAK[@]}"} \
      --json "$OUTDIR/bench-variant-$vname.json"
    step "$vname bench-profile" 120 env RECMAML_KERNEL_DIR="$vdir" ${venv[@]+"${venv[@]}"} \
      RECMAML_CUDA_PROFILE=1 "$BIN" bench --backend cuda --warmup 20 --iters 200 --repeats 1 \
      --json "$OUTDIR/bench-profile-variant-$vname.json"
    if [ "$VTRAIN" = 1 ] && [ -f data/synth/episodes/episodes_train_K5_Q10.parquet ]; then
      train_step "$vname train" "-$vname" RECMAML_KERNEL_DIR="$vdir" ${venv[@]+"${venv[@]}"}
    fi
    if [ -n "$SAN" ]; then
      for tool in memcheck racecheck; do
        step "$vname $tool" 180 env RECMAML_KERNEL_DIR="$vdir" ${venv[@]+"${venv[@]}"} "$SAN" \
          --tool "$tool" --error-exitcode 1 "$BIN" gpu-check --small
      done
    fi
  else
    note "$vname" "FAIL: --variant $v: no $vdir/common.cuh"
  fi
done
if [ -f data/synth/episodes/episodes_train_K5_Q10.parquet ]; then
  train_step train ""
  T0=$(date +%s.%N)
  if step pretrain 150 "$BIN" pretrain --config configs/recency_maml.toml --set run.backend=cuda \
      --out "$OUTDIR/pretrain-run"; then
    WALL=$(awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
    note "pretrain wall" "$(printf '%.2f s' "$WALL") (10 epochs on the GPU, evaluation on the CPU)"
    cp "$OUTDIR/pretrain-run/pretrain.json" "$OUTDIR/pretrain.json" 2>/dev/null
  fi
  rm -rf "$OUTDIR/pretrain-run"
else
  note train "SKIPPED: no data/synth (recmaml prepare --synthetic)"
fi
if [ -n "$SAN" ]; then
  step memcheck 180 "$SAN" --tool memcheck --error-exitcode 1 "$BIN" gpu-check --small
  step racecheck 180 "$SAN" --tool racecheck --error-exitcode 1 "$BIN" gpu-check --small
else
  note memcheck "SKIPPED: no compute-sanitizer"
  note racecheck "SKIPPED: no compute-sanitizer"
fi
if [ "$NCU" = 1 ]; then
  NCU_BIN=$(command -v ncu || ls /usr/local/cuda/bin/ncu 2>/dev/null || true)
  if [ -n "$NCU_BIN" ]; then
    mkdir -p "$OUTDIR/ncu"
    step ncu 240 env RECMAML_CUDA_LINEINFO=1 "$NCU_BIN" --clock-control none --set full \
      --import-source no -k regex:task_backward -s 3 -c 1 -f -o "$OUTDIR/ncu/task_backward" \
      "$BIN" bench --backend cuda --warmup 2 --iters 3 --repeats 1
    "$NCU_BIN" -i "$OUTDIR/ncu/task_backward.ncu-rep" --page details >"$OUTDIR/ncu/details.txt" 2>&1
    # The PTX names the kernel files without a folder, which ncu took to be in the profiled
    # program's working folder (here): copies sit there while ncu reads them.
    copied=()
    for f in kernels/*.cu kernels/*.cuh; do
      [ -e "$(basename "$f")" ] || { cp "$f" . && copied+=("$(basename "$f")"); }
    done
    "$NCU_BIN" -i "$OUTDIR/ncu/task_backward.ncu-rep" --page source --csv --print-source cuda \
      >"$OUTDIR/ncu/source-cuda.csv" 2>&1
    rm -f ${copied[@]+"${copied[@]}"}
    "$NCU_BIN" -i "$OUTDIR/ncu/task_backward.ncu-rep" --page source --csv --print-source sass \
      >"$OUTDIR/ncu/source-sass.csv" 2>&1
    grep -A 60 "Warp State Statistics\|GPU Speed Of Light" "$OUTDIR/ncu/details.txt" | head -120
    tar czf "$OUTDIR/ncu.tgz" -C "$OUTDIR" ncu && rm -rf "$OUTDIR/ncu"
  else
    note ncu "SKIPPED: no ncu"
  fi
fi
if [ "$COMPARE" = 1 ]; then
  FACTORS=N; EXTRA=()
  [ "$COMPILE" = 1 ] && { FACTORS=none; EXTRA=(--compile --graph); }
  step compare 300 benches/compare.sh --backend cuda --recmaml "$BIN" --python "$PY" \
    --out "$OUTDIR/compare" --factors "$FACTORS" ${EXTRA[@]+"${EXTRA[@]}"} --budget-s 4 \
    --torch-threads 1 --iters 100 --repeats 3 --warmup 10
  # One file (without the recorded workloads) instead of a folder of them.
  [ -d "$OUTDIR/compare" ] && tar czf "$OUTDIR/compare.tgz" -C "$OUTDIR" --exclude workloads compare &&
    rm -rf "$OUTDIR/compare"
fi
rm -f "$OUTDIR/step.out"

echo
{
  printf '%-20s %s\n' step result
  for i in "${!NAMES[@]}"; do printf '%-20s %s\n' "${NAMES[$i]}" "${RESULTS[$i]}"; done
  for f in "$OUTDIR"/bench*.json; do
    [ -f "$f" ] && "$PY" -c "
import json,sys
r=json.load(open(sys.argv[1]))
print(f\"{sys.argv[1].split('/')[-1]:<22} host {r['iters_per_sec']:.1f} it/s, device {r['device_iters_per_sec'] or 0:.1f} it/s, {r['gflop_per_iter']:.4f} GFLOP/it, floor fraction {r['fraction_of_floor'] or 0:.4f}\")" "$f"
  done
} | tee -a "$LOG"
status=0
for r in "${RESULTS[@]}"; do case $r in FAIL*) status=1 ;; esac; done
echo "logs: $OUTDIR (exit $status)"
exit $status
