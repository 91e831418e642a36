#!/usr/bin/env python3
"""Counts the aten calls of one timed meta-iteration of a `torch_fomaml.py` form.

Runs `torch_fomaml.py --workload WORKLOAD --forms FORM` under PyTorch's profiler (CPU
activities) with 1 and then 3 timed iterations and prints the difference per iteration, per
aten op: on a GPU nearly every compute op among them is one kernel launch, which is what a
CUDA graph of the form replays. Usage:

    python3 benches/torch_opcount.py WORKLOAD.json [FORM]    # FORM: graph (default), batched
"""

import collections
import sys
from pathlib import Path

from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch_fomaml  # noqa: E402


def count(workload: str, form: str, iters: int) -> collections.Counter:
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        torch_fomaml.main(
            ["--workload", workload, "--forms", form, "--warmup", "0", "--iters", str(iters),
             "--repeats", "1", "--budget-s", "600"]
        )
    return collections.Counter(e.name for e in prof.events() if e.name.startswith("aten::"))


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    workload, form = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "graph"
    one, three = count(workload, form, 1), count(workload, form, 3)
    per_iter = {k: (three[k] - one[k]) / 2 for k in three if three[k] != one[k]}
    print(f"aten calls per iteration ({form}, all nesting levels): {sum(per_iter.values()):.0f}")
    for name, n in sorted(per_iter.items(), key=lambda x: -x[1]):
        print(f"{n:10.0f}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
