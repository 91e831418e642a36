#!/usr/bin/env bash
# Copies the kernels/ folder of git revisions into OUT/NAME, for `gpu_check.sh --variant
# NAME=OUT/NAME` (RECMAML_KERNEL_DIR): one binary then checks and times each version of the
# kernels in a single run on a GPU machine (which needs no git history or Rust toolchain).
#
# Usage: benches/prepare_variants.sh OUT NAME=REV [NAME=REV ...]
#   e.g. benches/prepare_variants.sh .dev/variants main=main active=gpu-active-cols
set -euo pipefail
[ $# -ge 2 ] || { sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
out=$1
shift
cd "$(dirname "$0")/.."
for spec in "$@"; do
  name=${spec%%=*} rev=${spec#*=}
  [ -n "$name" ] && [ "$name" != "$spec" ] || { echo "prepare_variants.sh: expected NAME=REV, got $spec" >&2; exit 2; }
  git rev-parse --verify --quiet "$rev^{commit}" >/dev/null ||
    { echo "prepare_variants.sh: no revision $rev" >&2; exit 2; }
  rm -rf "${out:?}/$name"
  mkdir -p "$out/$name"
  git archive "$rev" kernels | tar -x -C "$out/$name" --strip-components=1
  echo "$out/$name: kernels of $rev ($(git rev-parse --short "$rev"))"
done
