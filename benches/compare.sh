#!/usr/bin/env bash
# recmaml against PyTorch on the same machine, the same tasks and the same meta-batches.
#
#   benches/compare.sh [--backend cpu|cuda] [--recmaml PATH] [--python PATH] [--out DIR]
#                      [--factors N|all|none|N,K,...] [--threads T] [--torch-threads LIST]
#                      [--budget-s S] [--compile] [--graph]
#                      [--iters I --repeats R --warmup W (recmaml)]
#
# 1. checks both PyTorch formulations against tests/fixtures/torch (stops on a mismatch);
# 2. `recmaml bench --sweep --sweep-factors F --write-workload DIR/workloads`: times recmaml on
#    the reference configuration and the sweep (default: N only; --factors none: the reference
#    configuration alone), recording every task and
#    meta-batch it ran;
# 3. `torch_fomaml.py --workload DIR/workloads`: times the per-task loop and the batched form on
#    exactly those meta-batches (the first ones of each schedule when --budget-s cuts the count),
#    once per thread count in --torch-threads; each form's best thread count is compared
#    (--compile adds the batched form with torch.compile, --graph the batched form at fixed
#    shapes replayed as one CUDA graph per meta-iteration: `batched+static`, eager, on a CPU);
# 4. prints recmaml's it/s over each PyTorch form's per configuration, writes DIR/summary.md,
#    DIR/summary.json and DIR/its_vs_n.{png,svg} (meta-iterations/s against N, both sides).
#
# Defaults: --backend cpu, --recmaml target/release/recmaml (or $CARGO_TARGET_DIR/release/...),
# --python $RECMAML_PYTHON or python3, --out target/compare-<backend>-<UTC time>, --factors N,
# --threads (recmaml's rayon threads) = nproc, --torch-threads 1,nproc, --budget-s 30 (timed
# seconds per PyTorch form, thread count and configuration).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
backend=cpu
recmaml="${CARGO_TARGET_DIR:-$root/target}/release/recmaml"
python="${RECMAML_PYTHON:-python3}"
out=""
factors=N
threads="$(nproc)"
torch_threads="1,$(nproc)"
budget=30
compile=()
forms=loop,batched
rust_extra=()

usage() { sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
    case "$1" in
        --backend) backend="$2"; shift 2 ;;
        --recmaml) recmaml="$2"; shift 2 ;;
        --python) python="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        --factors) factors="$2"; shift 2 ;;
        --threads) threads="$2"; shift 2 ;;
        --torch-threads) torch_threads="$2"; shift 2 ;;
        --budget-s) budget="$2"; shift 2 ;;
        --compile) compile=(--compile); shift ;;
        --graph) forms=loop,batched,graph; shift ;;
        --iters|--repeats|--warmup) rust_extra+=("$1" "$2"); shift 2 ;;
        -h|--help) usage 0 ;;
        *) echo "compare.sh: unknown argument $1" >&2; usage 2 ;;
    esac
done
case "$backend" in cpu|cuda) ;; *) echo "compare.sh: --backend must be cpu or cuda" >&2; exit 2 ;; esac
[ "$factors" = all ] && factors=N,K,V,H,cap
sweep=(--sweep --sweep-factors "$factors")
[ "$factors" = none ] && sweep=()
[ -x "$recmaml" ] || { echo "compare.sh: no recmaml binary at $recmaml (cargo build --release, or --recmaml PATH)" >&2; exit 2; }
"$python" -c 'import torch, numpy, pyarrow, safetensors, matplotlib' 2>/dev/null ||
    { echo "compare.sh: $python cannot import torch, numpy, pyarrow, safetensors and matplotlib (--python PATH)" >&2; exit 2; }
out="${out:-$root/target/compare-$backend-$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$out"
torch_py=("$python" "$here/torch_fomaml.py" --device "$backend")

{
    echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "cpu: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores"
    [ "$backend" = cuda ] && echo "gpu: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null || echo unknown)"
    echo "recmaml: $("$recmaml" --version) ($(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?'))"
    echo "torch: $("$python" -c 'import torch; print(torch.__version__)'), python $("$python" -c 'import platform; print(platform.python_version())'), threads $torch_threads (best kept)"
    echo "recmaml threads: $threads"
    echo "load before: $(uptime)"
} | tee "$out/machine.txt"

echo "== 1. PyTorch formulations against the fixtures"
"${torch_py[@]}" --check-fixtures "$root/tests/fixtures/torch" --forms "$forms" >"$out/fixtures.txt" ||
    { tail -n 30 "$out/fixtures.txt"; exit 1; }
tail -n 1 "$out/fixtures.txt"

echo "== 2. recmaml bench --backend $backend ${sweep[*]:-}"
RAYON_NUM_THREADS="$threads" "$recmaml" bench --backend "$backend" ${sweep[@]+"${sweep[@]}"} \
    ${rust_extra[@]+"${rust_extra[@]}"} --write-workload "$out/workloads" --json "$out/recmaml.json" |
    tee "$out/recmaml.txt"

echo "== 3. PyTorch on the same meta-batches (warm-up 2, median of 3)"
"${torch_py[@]}" --workload "$out/workloads" --threads "$torch_threads" --forms "$forms" ${compile[@]+"${compile[@]}"} \
    --warmup 2 --repeats 3 --budget-s "$budget" --json "$out/torch.json" | tee "$out/torch.txt"
echo "load after: $(uptime)" | tee -a "$out/machine.txt"

echo "== 4. ratios"
"$python" - "$out" <<'EOF'
import json, sys
from pathlib import Path
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

out = Path(sys.argv[1])
rust_rows = json.loads((out / "recmaml.json").read_text())
if isinstance(rust_rows, dict):  # without --sweep: the reference configuration alone
    rust_rows = [rust_rows]
rust = {r["label"]: r for r in rust_rows}
torch = json.loads((out / "torch.json").read_text())
forms = sorted({r["form"] for r in torch["results"]}, key=lambda f: (f != "loop", f))
tr = {}  # each form's best thread count per configuration
for r in torch["results"]:
    key = (r["label"], r["form"])
    if key not in tr or r["iters_per_sec"] > tr[key]["iters_per_sec"]:
        tr[key] = r
head = ["config", "N", "K", "V", "H", "recmaml it/s"] + [f"{f} it/s" for f in forms] + [f"x {f}" for f in forms]
rows, summary = [], []
for label, r in rust.items():
    its = [tr[(label, f)]["iters_per_sec"] if (label, f) in tr else None for f in forms]
    thr = [tr[(label, f)]["threads"] if (label, f) in tr else None for f in forms]
    ratios = [r["iters_per_sec"] / x if x else None for x in its]
    rows.append([label, r["n"], r["k"], r["v"], r["h"], f"{r['iters_per_sec']:.2f}"]
                + [f"{x:.3f} ({t} thr)" if x else "-" for x, t in zip(its, thr)] + [f"{x:.1f}" if x else "-" for x in ratios])
    summary.append({"label": label, "n": r["n"], "k": r["k"], "v": r["v"], "h": r["h"],
                    "recmaml_its": r["iters_per_sec"], "recmaml_gflops": r["gflops_achieved"],
                    **{f"{f}_its": x for f, x in zip(forms, its)},
                    **{f"{f}_threads": x for f, x in zip(forms, thr)},
                    **{f"ratio_vs_{f}": x for f, x in zip(forms, ratios)}})
md = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
md += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
print("\n".join(md))
(out / "summary.md").write_text("\n".join(md) + "\n")
(out / "summary.json").write_text(json.dumps({"torch_versions": torch["versions"], "rows": summary}, indent=1))

nrows = sorted((s for s in summary if s["label"] == "reference" or s["label"].startswith("N")), key=lambda s: s["n"])
if len(nrows) > 1:
    fig, ax = plt.subplots(figsize=(6, 4))
    ns = [s["n"] for s in nrows]
    ax.plot(ns, [s["recmaml_its"] for s in nrows], "o-", label=f"recmaml ({rust['reference']['backend']})")
    for f in forms:
        pts = [(s["n"], s[f"{f}_its"]) for s in nrows if s[f"{f}_its"]]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "s--", label=f"PyTorch {f}")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("tasks per meta-batch N")
    ax.set_ylabel("meta-iterations / s")
    ax.set_title("recency-weighted FOMAML, V 1519 E 64 H 64 K 5 Q 10 S 5")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    for ext in ("png", "svg"):
        fig.savefig(out / f"its_vs_n.{ext}", dpi=120)
    print(f"plot: {out / 'its_vs_n.png'}")
EOF
echo "results in $out"
