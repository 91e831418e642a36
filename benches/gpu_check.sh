#!/usr/bin/env bash
# One command for a GPU machine: takes a recmaml release binary built elsewhere (no crate registry
# or network needed here) and runs, in one go:
#   1. GPU against CPU on random tasks (hidden subcommand `recmaml gpu-check`),
#   2. compute-sanitizer memcheck and racecheck over the small case,
#   3. `recmaml bench --backend cuda` (and the CPU for reference) on the reference configuration,
# then prints one table. Exit status 0 only when every step passed.
#
# Usage: benches/gpu_check.sh [path/to/recmaml]   (default: target/release/recmaml)
# NVRTC must match the driver (the PTX is compiled at run time): the toolkit's lib64, or the
# nvidia-cuda-nvrtc wheel's lib folder, on LD_LIBRARY_PATH; set NVRTC_LIB_DIR to add one.
set -u
BIN=${1:-target/release/recmaml}
[ -x "$BIN" ] || { echo "no executable recmaml at $BIN" >&2; exit 2; }
for d in "${NVRTC_LIB_DIR:-}" /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
  [ -n "$d" ] && [ -d "$d" ] && export LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
done
SAN=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null || true)
LOG=$(mktemp -d)
declare -a NAMES RESULTS
step() { # name, command...
  local name=$1; shift
  echo "== $name: $*" >&2
  if "$@" >"$LOG/$name.log" 2>&1; then RESULTS+=("pass"); else RESULTS+=("FAIL (see $LOG/$name.log)"); fi
  NAMES+=("$name")
  cat "$LOG/$name.log" >&2
}
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader >&2 || true
step gpu-vs-cpu "$BIN" gpu-check
if [ -n "$SAN" ]; then
  step memcheck "$SAN" --tool memcheck --error-exitcode 1 "$BIN" gpu-check --small
  step racecheck "$SAN" --tool racecheck --error-exitcode 1 "$BIN" gpu-check --small
else
  NAMES+=(memcheck racecheck); RESULTS+=("SKIPPED: no compute-sanitizer" "SKIPPED: no compute-sanitizer")
fi
step bench-cuda "$BIN" bench --backend cuda --iters 200 --repeats 5 --warmup 20 --json "$LOG/bench-cuda.json"
step bench-cpu "$BIN" bench --backend cpu --iters 5 --repeats 3 --json "$LOG/bench-cpu.json"
echo
printf '%-12s %s\n' step result
status=0
for i in "${!NAMES[@]}"; do
  printf '%-12s %s\n' "${NAMES[$i]}" "${RESULTS[$i]}"
  case ${RESULTS[$i]} in pass) ;; *) status=1 ;; esac
done
for b in cuda cpu; do
  [ -f "$LOG/bench-$b.json" ] && printf '%-12s %s\n' "it/s $b" "$(grep -o '"iters_per_sec":[^,]*' "$LOG/bench-$b.json" | cut -d: -f2)"
done
echo "logs: $LOG"
exit $status
