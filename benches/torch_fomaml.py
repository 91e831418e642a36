#!/usr/bin/env python3
"""The reference meta-iteration of recmaml in PyTorch, for side-by-side timing.

One meta-iteration of recency-weighted first-order MAML over GRU4Rec (PyTorch's GRU with the
reset gate, variable-length prefixes read at each sequence's own last item, embedding
padding_idx 0): for each task, `inner_steps` SGD steps on the recency-weighted support CE
(gradients not differentiated: first order), the query CE at the adapted weights, the mean
over tasks backpropagated to the meta-parameters, `clip_grad_norm_`, one `torch.optim.Adam` step.

Two formulations:

* `loop`: the seed's per-task loop (notebook 09, cell 09-09), with a correct GRU:
  `nn.GRU` on `pack_padded_sequence` through `torch.func.functional_call`.
* `batched`: every task's fast weights stacked on a leading task dimension, a hand-written GRU
  cell with `torch.baddbmm` (input projections of all time steps in one product, then one
  product per time step), sequences sorted by length inside each task so that step t only
  computes the rows still running (packed, like `pack_padded_sequence`), autograd through the
  batched graph. `--compile` additionally compiles the fused cell with `torch.compile`.
* `graph` (opt-in, `--forms ...,graph`): the batched form at fixed shapes (every prefix padded
  to the schedule's longest, all rows computed at every step under the mask), the whole
  meta-iteration captured once as a CUDA graph and replayed per meta-batch; on the CPU the
  same padded computation runs eagerly.

Modes:

* `--check-fixtures DIR`: runs both formulations on every case in DIR (tests/fixtures/torch)
  in float64 (tolerance 1e-9) and float32 (1e-4) and compares support gradient, adapted
  weights, query gradient, few-shot logits of every task, meta-loss, meta-gradient, and the
  parameters after one and two clipped Adam steps. Exits 1 on any mismatch.
* `--workload PATH`: times the meta-iterations that `recmaml bench --write-workload DIR`
  recorded (PATH is a workload.json or a folder holding one or several `*/workload.json`):
  the same episode file, the same meta-batches in the same order, warm-up excluded, median of
  repeats. Prints a table; `--json OUT` writes the results.
* `--episodes FILE`: times meta-batches drawn (seeded) from an episode file, sizes from flags.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence

NAMES = [
    "embedding.weight",
    "gru.weight_ih_l0",
    "gru.weight_hh_l0",
    "gru.bias_ih_l0",
    "gru.bias_hh_l0",
    "output.weight",
    "output.bias",
]


# ------------------------------------------------------------------------------------------------
# tasks


class Batch:
    """A meta-batch: per task, support/query prefixes and labels; the support weights."""

    def __init__(self, episodes: list[dict], weights: list[float]):
        self.episodes = episodes
        self.weights = weights

    def __len__(self) -> int:
        return len(self.episodes)


def read_episodes(path: Path) -> list[dict]:
    """Rows of an episode file (the seed's or recmaml's schema), in file order."""
    import pyarrow.parquet as pq

    cols = ["support_prefixes", "support_labels", "query_prefixes", "query_labels"]
    table = pq.read_table(path, columns=cols)
    return table.to_pylist()


def recency_weights(cfg: dict) -> list[float]:
    """The fixture's normalised recency weights (index 0 = oldest support pair)."""
    k, scheme = cfg["K"], cfg["weighting"]
    i = np.arange(k, dtype=np.float64)
    if scheme == "equal":
        raw = np.ones(k)
    elif scheme == "exponential":
        raw = np.exp(cfg["lambda"] * i / max(k - 1, 1))
    elif scheme == "linear":
        raw = i + 1
    elif scheme == "softmax":
        raw = np.exp(i / cfg["temperature"] - (i / cfg["temperature"]).max())
    else:
        raise ValueError(f"unknown weighting {scheme}")
    return list(raw / raw.sum())


def pad_sequences(seqs: list[list[int]], device) -> tuple[torch.Tensor, torch.Tensor]:
    """The seed's padding: `[B, Lmax]` ids (0 = padding) and the lengths."""
    lengths = torch.tensor([len(s) for s in seqs], dtype=torch.long)
    padded = torch.zeros(len(seqs), int(lengths.max()), dtype=torch.long)
    for i, s in enumerate(seqs):
        padded[i, : len(s)] = torch.tensor(s, dtype=torch.long)
    return padded.to(device), lengths


# ------------------------------------------------------------------------------------------------
# model


class GRU4Rec(nn.Module):
    """Embedding (padding_idx 0) -> one-layer GRU on packed sequences -> linear over items."""

    def __init__(self, v: int, e: int, h: int):
        super().__init__()
        self.embedding = nn.Embedding(v, e, padding_idx=0)
        self.gru = nn.GRU(e, h, batch_first=True)
        self.output = nn.Linear(h, v)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(
            self.embedding(x), lengths, batch_first=True, enforce_sorted=False
        )
        _, h_n = self.gru(packed)  # the state at each sequence's own last item
        return self.output(h_n[0])


def new_theta(v: int, e: int, h: int, dtype, device, seed: int) -> dict[str, torch.Tensor]:
    """Meta-parameters with PyTorch's default initialisation, as leaf tensors."""
    torch.manual_seed(seed)
    m = GRU4Rec(v, e, h).to(device=device, dtype=dtype)
    return {n: p.detach().clone().requires_grad_(True) for n, p in m.named_parameters()}


def make_adam(theta: dict, lr: float, device, capturable: bool = False) -> torch.optim.Optimizer:
    """`torch.optim.Adam` with its fastest implementation for the device (fused when offered);
    `capturable`: its step count on the device, so that a CUDA graph can replay the step."""
    params = [theta[n] for n in NAMES]
    try:
        return torch.optim.Adam(params, lr=lr, fused=True, capturable=capturable)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(params, lr=lr, foreach=True, capturable=capturable)


class Outer:
    """The outer update shared by both formulations: clip_grad_norm_ then Adam."""

    def __init__(self, theta: dict, outer_lr: float, clip: float, device, capturable: bool = False):
        self.theta = theta
        self.opt = make_adam(theta, outer_lr, device, capturable)
        self.clip = clip

    def step_tensor(self) -> torch.Tensor:
        """The clip and the Adam step without reading anything back (graph-capturable)."""
        norm = torch.nn.utils.clip_grad_norm_([self.theta[n] for n in NAMES], self.clip)
        self.opt.step()
        return norm

    def step(self) -> float:
        return float(self.step_tensor())


# ------------------------------------------------------------------------------------------------
# (a) the seed's per-task loop


class LoopForm:
    """Cell 09-09: one task at a time, `nn.GRU` on packed sequences via functional_call."""

    name = "loop"

    def __init__(self, theta, dims, inner_lr, inner_steps, outer_lr, clip, device, compile_=False):
        v, e, h = dims
        self.theta, self.device = theta, device
        self.inner_lr, self.inner_steps = inner_lr, inner_steps
        dtype = theta["embedding.weight"].dtype
        self.model = GRU4Rec(v, e, h).to(device=device, dtype=dtype)
        self.outer = Outer(theta, outer_lr, clip, device)

    def forward(self, params, x, lengths):
        return torch.func.functional_call(self.model, params, (x, lengths))

    def tensors(self, ep):
        d = self.device
        sx, sl = pad_sequences(ep["support_prefixes"], d)
        qx, ql = pad_sequences(ep["query_prefixes"], d)
        sy = torch.tensor(ep["support_labels"], dtype=torch.long, device=d)
        qy = torch.tensor(ep["query_labels"], dtype=torch.long, device=d)
        return sx, sl, sy, qx, ql, qy

    def adapt(self, ep, w, record=None):
        """The task's fast weights after the inner loop (first order: gradients not tracked)."""
        sx, sl, sy, _, _, _ = self.tensors(ep)
        params = {n: p.clone() for n, p in self.theta.items()}
        for step in range(self.inner_steps):
            logits = self.forward(params, sx, sl)
            loss = (w * F.cross_entropy(logits, sy, reduction="none")).sum()
            grads = torch.autograd.grad(loss, list(params.values()))
            if record is not None and step == 0:
                record["support_loss"] = float(loss.detach())
                record["support_grad"] = {n: g for n, g in zip(params, grads)}
            params = {n: p - self.inner_lr * g for (n, p), g in zip(params.items(), grads)}
        return params

    def query_loss(self, params, ep):
        _, _, _, qx, ql, qy = self.tensors(ep)
        logits = self.forward(params, qx, ql)
        return F.cross_entropy(logits, qy), logits

    def meta_gradient(self, batch: Batch) -> float:
        """Fills `theta[*].grad` with the meta-gradient; returns the meta-loss."""
        w = torch.tensor(batch.weights, dtype=self.theta[NAMES[0]].dtype, device=self.device)
        for p in self.theta.values():
            p.grad = None
        meta_loss = 0.0
        for ep in batch.episodes:
            params = self.adapt(ep, w)
            meta_loss = meta_loss + self.query_loss(params, ep)[0]
        meta_loss = meta_loss / len(batch)
        meta_loss.backward()
        return float(meta_loss.detach())

    def meta_step(self, batch: Batch) -> tuple[float, float]:
        loss = self.meta_gradient(batch)
        return loss, self.outer.step()

    # for the fixture check
    def task_details(self, batch: Batch):
        w = torch.tensor(batch.weights, dtype=self.theta[NAMES[0]].dtype, device=self.device)
        record = {}
        phis = [self.adapt(ep, w, record if i == 0 else None) for i, ep in enumerate(batch.episodes)]
        phi0 = {n: p.detach().requires_grad_(True) for n, p in phis[0].items()}
        q0 = self.query_loss(phi0, batch.episodes[0])[0]
        record["query_grad"] = dict(zip(phi0, torch.autograd.grad(q0, list(phi0.values()))))
        record["adapted"] = {n: p.detach() for n, p in phis[0].items()}
        record["few_shot_logits"] = [
            self.query_loss(phi, ep)[1].detach() for phi, ep in zip(phis, batch.episodes)
        ]
        return record


# ------------------------------------------------------------------------------------------------
# (b) batched over tasks


def gru_cell(xi, gh, h):
    """PyTorch's GRU cell from the input and hidden projections (gate order r, z, n)."""
    xr, xz, xn = xi.chunk(3, -1)
    hr, hz, hn = gh.chunk(3, -1)
    r = torch.sigmoid(xr + hr)
    z = torch.sigmoid(xz + hz)
    n = torch.tanh(xn + r * hn)
    return n + z * (h - n)


def masked_gru_cell(xi, gh, h, m):
    """`gru_cell` where `m` (1 = running, 0 = finished) keeps finished rows' state."""
    return torch.where(m, gru_cell(xi, gh, h), h)


class Packed:
    """One side (support or query) of a meta-batch, packed for the batched GRU.

    Rows of each task are sorted by length, longest first, so that at step t only the first
    `active[t]` rows (the most that any task still runs) are computed; rows of a task that
    finished earlier inside that block are held by a mask. `x` is `[N, B, L]` ids offset by
    `task * V` into the stacked embedding table.
    """

    def __init__(self, prefixes, labels, weights, v, device, dtype):
        n, b = len(prefixes), len(prefixes[0])
        lens = np.array([[len(p) for p in task] for task in prefixes])
        order = np.argsort(-lens, axis=1, kind="stable")
        lmax = int(lens.max())
        ids = np.zeros((n, b, lmax), dtype=np.int64)
        for i, task in enumerate(prefixes):
            for j, r in enumerate(order[i]):
                ids[i, j, : lens[i, r]] = task[r]
        ids += (np.arange(n) * v)[:, None, None]
        sl = np.take_along_axis(lens, order, 1)
        self.active = [int((sl > t).sum(1).max()) for t in range(lmax)]
        self.lmax = lmax
        self.ends = []  # (row_from, row_to, step after which those rows are all finished)
        mask = sl[:, :, None] > np.arange(lmax)[None, None, :]
        self.x = torch.from_numpy(ids).to(device)
        self.mask = torch.from_numpy(mask).to(device).unsqueeze(-1)
        lab = np.take_along_axis(np.array(labels, dtype=np.int64), order, 1)
        self.labels = torch.from_numpy(lab).to(device).reshape(-1)
        wt = np.take_along_axis(np.broadcast_to(np.array(weights), (n, b)), order, 1)
        self.weights = torch.from_numpy(np.ascontiguousarray(wt)).to(device, dtype).reshape(-1)
        self.order = order


class BatchedForm:
    """Every task's fast weights stacked on a leading task dimension; bmm-based masked GRU."""

    name = "batched"

    def __init__(self, theta, dims, inner_lr, inner_steps, outer_lr, clip, device, compile_=False):
        self.theta, self.device = theta, device
        self.v, self.e, self.h = dims
        self.inner_lr, self.inner_steps = inner_lr, inner_steps
        self.outer = Outer(theta, outer_lr, clip, device)
        if compile_:
            # Variants: the first step's h needs no gradient, a block of 1 row is specialised.
            torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
        self.cell = (
            torch.compile(masked_gru_cell, dynamic=True) if compile_ else masked_gru_cell
        )
        if compile_:
            self.name = "batched+compile"

    def pack(self, batch: Batch):
        dt = self.theta[NAMES[0]].dtype
        eps = batch.episodes
        s = Packed(
            [e["support_prefixes"] for e in eps],
            [e["support_labels"] for e in eps],
            batch.weights,
            self.v,
            self.device,
            dt,
        )
        q = Packed(
            [e["query_prefixes"] for e in eps],
            [e["query_labels"] for e in eps],
            [1.0] * len(eps[0]["query_labels"]),
            self.v,
            self.device,
            dt,
        )
        return s, q

    def forward(self, p, side: Packed):
        """Logits `[N, B, V]` (rows in `side`'s sorted order) of stacked parameters `p`."""
        n, b, lmax = side.x.shape
        emb = F.embedding(side.x, p["embedding.weight"].reshape(n * self.v, self.e))
        xi = torch.baddbmm(
            p["gru.bias_ih_l0"].unsqueeze(1),
            emb.reshape(n, b * lmax, self.e),
            p["gru.weight_ih_l0"].transpose(1, 2),
        ).reshape(n, b, lmax, 3 * self.h)
        # One view per time step: their backward is a single stack, where slicing `xi[:, :a, t]`
        # would zero-fill and accumulate a gradient of xi's full size at every step.
        xs = xi.unbind(2)
        w_hh = p["gru.weight_hh_l0"].transpose(1, 2)
        b_hh = p["gru.bias_hh_l0"].unsqueeze(1)
        h = torch.zeros(n, side.active[0], self.h, dtype=xi.dtype, device=xi.device)
        done = []  # states of rows that no task runs any more, in row order from the end
        for t in range(lmax):
            a = side.active[t]
            if a < h.shape[1]:
                done.append(h[:, a:])
                h = h[:, :a]
            gh = torch.baddbmm(b_hh, h, w_hh)
            h = self.cell(xs[t][:, :a], gh, h, side.mask[:, :a, t])
        hl = torch.cat([h] + done[::-1], dim=1) if done else h
        return torch.baddbmm(
            p["output.bias"].unsqueeze(1), hl, p["output.weight"].transpose(1, 2)
        )

    def losses(self, p, side: Packed):
        logits = self.forward(p, side)
        ce = F.cross_entropy(logits.reshape(-1, self.v), side.labels, reduction="none")
        return ce, logits

    def adapt(self, s: Packed, n: int, record=None):
        """Stacked fast weights after the inner loop; the first step's are views of θ."""
        phi = {k: t.unsqueeze(0).expand(n, *t.shape) for k, t in self.theta.items()}
        for step in range(self.inner_steps):
            ce, _ = self.losses(phi, s)
            loss = (s.weights * ce).sum()  # the sum of every task's weighted support loss
            grads = torch.autograd.grad(loss, list(phi.values()))
            if record is not None and step == 0:
                record["support_loss"] = float((s.weights * ce).detach().reshape(n, -1).sum(1)[0])
                record["support_grad"] = {k: g[0] for k, g in zip(phi, grads)}
            phi = {k: torch.add(t, g, alpha=-self.inner_lr) for (k, t), g in zip(phi.items(), grads)}
        return phi

    def meta_gradient(self, batch: Batch) -> float:
        for p in self.theta.values():
            p.grad = None
        s, q = self.pack(batch)
        phi = self.adapt(s, len(batch))
        ce, _ = self.losses(phi, q)
        meta_loss = ce.mean()  # = mean over tasks of each task's mean query CE
        meta_loss.backward()
        return float(meta_loss.detach())

    def meta_step(self, batch: Batch) -> tuple[float, float]:
        loss = self.meta_gradient(batch)
        return loss, self.outer.step()

    def task_details(self, batch: Batch):
        record = {}
        s, q = self.pack(batch)
        n = len(batch)
        phi = {k: t.detach().requires_grad_(True) for k, t in self.adapt(s, n, record).items()}
        ce, logits = self.losses(phi, q)
        per_task = ce.reshape(n, -1).mean(1)
        grads = torch.autograd.grad(per_task.sum(), list(phi.values()))
        record["query_grad"] = {k: g[0] for k, g in zip(phi, grads)}
        record["adapted"] = {k: t[0].detach() for k, t in phi.items()}
        inv = np.argsort(q.order, axis=1)
        record["few_shot_logits"] = [
            logits[i].detach()[torch.from_numpy(inv[i]).to(logits.device)] for i in range(n)
        ]
        return record


class StaticPacked(Packed):
    """`Packed` at fixed shapes: prefixes padded to `lmax` steps, and every step computes all B
    rows (finished rows are held by the mask instead of being dropped), so that one captured
    CUDA graph serves every meta-batch of the same N, K and Q."""

    def __init__(self, prefixes, labels, weights, v, device, dtype, lmax):
        super().__init__(prefixes, labels, weights, v, device, dtype)
        n, b, own = self.x.shape
        if own > lmax:
            raise ValueError(f"a prefix of {own} items is longer than the padded length {lmax}")
        # Padding ids are item 0 of the row's task, like Packed's own padding.
        x = (torch.arange(n, device=device) * v)[:, None, None].expand(n, b, lmax).clone()
        x[:, :, :own] = self.x
        mask = torch.zeros(n, b, lmax, 1, dtype=torch.bool, device=device)
        mask[:, :, :own] = self.mask
        self.x, self.mask, self.lmax, self.active = x, mask, lmax, [b] * lmax


class GraphForm(BatchedForm):
    """The batched form at fixed shapes (`StaticPacked`), the whole meta-iteration (inner loop,
    query backward, clip, Adam) captured once as a CUDA graph and replayed for each meta-batch
    after copying its ids, masks, labels and weights into the captured inputs. The batched
    form is launch-bound on a GPU; a graph launches all its kernels at once. On the CPU it runs
    the same padded computation eagerly (`batched+static`), which the fixture check covers."""

    name = "batched+graph"

    @staticmethod
    def label(device) -> str:
        return "batched+graph" if device.type == "cuda" else "batched+static"

    def __init__(self, theta, dims, inner_lr, inner_steps, outer_lr, clip, device, compile_=False):
        super().__init__(theta, dims, inner_lr, inner_steps, outer_lr, clip, device)
        self.graphs = device.type == "cuda"
        self.name = self.label(device)
        self.outer = Outer(theta, outer_lr, clip, device, capturable=self.graphs)
        self.lmax = None  # padded length; None: each batch's longest prefix
        self.captured = {}  # (N, K, Q, lmax) -> (graph, static support, static query, outputs)

    def pack(self, batch: Batch):
        dt = self.theta[NAMES[0]].dtype
        eps = batch.episodes
        lmax = self.lmax or max(
            len(p) for e in eps for p in e["support_prefixes"] + e["query_prefixes"]
        )
        s = StaticPacked(
            [e["support_prefixes"] for e in eps], [e["support_labels"] for e in eps],
            batch.weights, self.v, self.device, dt, lmax,
        )
        q = StaticPacked(
            [e["query_prefixes"] for e in eps], [e["query_labels"] for e in eps],
            [1.0] * len(eps[0]["query_labels"]), self.v, self.device, dt, lmax,
        )
        return s, q

    def step_tensors(self, s: StaticPacked, q: StaticPacked, n: int):
        phi = self.adapt(s, n)
        ce, _ = self.losses(phi, q)
        meta_loss = ce.mean()
        meta_loss.backward()
        return meta_loss.detach(), self.outer.step_tensor()

    def capture(self, s: StaticPacked, q: StaticPacked, n: int):
        """Warm-up on a side stream (cuBLAS and the allocator set up outside the capture), then
        the capture; θ and Adam's state are put back as they were before the warm-up."""
        saved = {k: t.detach().clone() for k, t in self.theta.items()}
        opt = self.outer.opt
        saved_state = {
            id(p): {k: v.clone() if torch.is_tensor(v) else v for k, v in st.items()}
            for p, st in opt.state.items()
        }
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                opt.zero_grad(set_to_none=True)
                self.step_tensors(s, q, n)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        opt.zero_grad(set_to_none=True)
        with torch.cuda.graph(graph):
            out = self.step_tensors(s, q, n)
        with torch.no_grad():
            for k, t in self.theta.items():
                t.copy_(saved[k])
            for p, st in opt.state.items():
                old = saved_state.get(id(p))
                for k, v in st.items():
                    if torch.is_tensor(v):
                        if old is None:
                            v.zero_()  # first step: Adam's state did not exist yet
                        else:
                            v.copy_(old[k])
        return graph, s, q, out

    def meta_step(self, batch: Batch) -> tuple[float, float]:
        s, q = self.pack(batch)
        n = len(batch)
        if not self.graphs:
            for p in self.theta.values():
                p.grad = None
            loss, norm = self.step_tensors(s, q, n)
            return float(loss), float(norm)
        key = (n, s.x.shape[1], q.x.shape[1], s.lmax)
        if key not in self.captured:
            self.captured[key] = self.capture(s, q, n)
        graph, gs, gq, (loss, norm) = self.captured[key]
        for dst, src in ((gs, s), (gq, q)):
            dst.x.copy_(src.x)
            dst.mask.copy_(src.mask)
            dst.labels.copy_(src.labels)
            dst.weights.copy_(src.weights)
        graph.replay()
        return float(loss), float(norm)


FORMS = {"loop": LoopForm, "batched": BatchedForm, "graph": GraphForm}


# ------------------------------------------------------------------------------------------------
# fixture check


def load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path))


class Checker:
    def __init__(self, case: str, tol: float):
        self.case, self.tol, self.failures, self.count = case, tol, [], 0

    def tensor(self, what: str, got: torch.Tensor, want: torch.Tensor):
        got, want = got.detach().double().cpu().reshape(-1), want.double().reshape(-1)
        err = float((got - want).norm() / want.norm()) if want.norm() > 0 else float(got.norm())
        self._record(what, err)

    def scalar(self, what: str, got: float, want: float):
        self._record(what, abs(got - want) / abs(want))

    def _record(self, what, err):
        self.count += 1
        if not (err < self.tol):
            self.failures.append(f"{self.case}: {what}: relative error {err:.3e} >= {self.tol:g}")


def check_case(case_dir: Path, form_cls, dtype, tol, device, compile_) -> Checker:
    cfg = json.loads((case_dir / "expected.json").read_text())
    exp = load_safetensors(case_dir / "expected.safetensors")
    weights = load_safetensors(case_dir / "weights.safetensors")
    episodes = read_episodes(case_dir / "episodes.parquet")
    dims = (cfg["n_items"], cfg["embed_dim"], cfg["hidden_dim"])
    name = form_cls.label(device) if hasattr(form_cls, "label") else form_cls.name
    ck = Checker(f"{case_dir.name} [{name} {str(dtype).replace('torch.', '')}]", tol)
    ck.scalar("recency_weights", 1.0 + recency_weights(cfg)[0], 1.0 + cfg["recency_weights"][0])
    batch = Batch(episodes, recency_weights(cfg))

    def theta0():
        return {
            n: weights[n].to(device=device, dtype=dtype).clone().requires_grad_(True)
            for n in NAMES
        }

    args = (cfg["inner_lr"], cfg["inner_steps"], cfg["outer_lr"], cfg["clip"], device, compile_)
    form = form_cls(theta0(), dims, *args)
    rec = form.task_details(batch)
    ck.scalar("task0_support_loss", rec["support_loss"], cfg["task0_support_loss"])
    for n in NAMES:
        ck.tensor(f"task0.support_grad.{n}", rec["support_grad"][n], exp[f"task0.support_grad.{n}"])
        ck.tensor(f"task0.adapted.{n}", rec["adapted"][n], exp[f"task0.adapted.{n}"])
        ck.tensor(f"task0.query_grad.{n}", rec["query_grad"][n], exp[f"task0.query_grad.{n}"])
    for i, lg in enumerate(rec["few_shot_logits"]):
        ck.tensor(f"task{i}.few_shot_logits", lg, exp[f"task{i}.few_shot_logits"])
    form = form_cls(theta0(), dims, *args)
    loss = form.meta_gradient(batch)
    ck.scalar("meta_loss", loss, cfg["meta_loss"])
    for n in NAMES:
        ck.tensor(f"meta_grad.{n}", form.theta[n].grad, exp[f"meta_grad.{n}"])
    norm = form.outer.step()
    ck.scalar("meta_grad_norm", norm, cfg["meta_grad_norm"])
    base = {n: weights[n].double() for n in NAMES}
    for n in NAMES:
        ck.tensor(f"after_adam.{n}", form.theta[n], exp[f"after_adam.{n}"])
        # Adam's first step moves each weight by about outer_lr: compare the update itself.
        d_exp = exp[f"after_adam.{n}"].double() - base[n]
        if dtype == torch.float64 and d_exp.norm() > 0:
            ck.tensor(f"update after_adam.{n}", form.theta[n].detach().cpu().double() - base[n], d_exp)
    loss2, norm2 = form.meta_step(batch)
    ck.scalar("meta_loss_2", loss2, cfg["meta_loss_2"])
    ck.scalar("meta_grad_norm_2", norm2, cfg["meta_grad_norm_2"])
    for n in NAMES:
        ck.tensor(f"after_adam2.{n}", form.theta[n], exp[f"after_adam2.{n}"])
    return ck


def check_fixtures(root: Path, forms: list[str], device, compile_) -> int:
    cases = sorted(p for p in root.iterdir() if (p / "expected.json").exists())
    if not cases:
        print(f"error: no fixture cases (folders with expected.json) in {root}", file=sys.stderr)
        return 2
    failures, count = [], 0
    for case in cases:
        for name in forms:
            for dtype, tol in [(torch.float64, 1e-9), (torch.float32, 1e-4)]:
                ck = check_case(case, FORMS[name], dtype, tol, device, compile_)
                failures += ck.failures
                count += ck.count
                status = "ok" if not ck.failures else f"{len(ck.failures)} FAILED"
                print(f"{ck.case}: {ck.count} comparisons, {status}")
    for f in failures:
        print("MISMATCH", f)
    print(f"fixture check: {count - len(failures)} passed, {len(failures)} failed")
    return 1 if failures else 0


# ------------------------------------------------------------------------------------------------
# timing


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_form(form, batches, warmup, iters, repeats, budget_s, device):
    """Median ms per meta-iteration over `repeats` runs of `iters`, after `warmup` untimed ones.

    When a warm-up iteration shows that the full schedule would exceed `budget_s`, `iters` is
    reduced (at least 1), and the batches used are the first ones of the schedule in order.
    """
    it = iter(batches)
    t_warm = []
    for _ in range(max(warmup, 1)):
        t0 = time.perf_counter()
        form.meta_step(next(it))
        sync(device)
        t_warm.append(time.perf_counter() - t0)
    est = min(t_warm)
    iters = max(1, min(iters, int(budget_s / max(est * repeats, 1e-9))))
    per_iter = []
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        for _ in range(iters):
            form.meta_step(next(it))
        sync(device)
        per_iter.append((time.perf_counter() - t0) * 1e3 / iters)
    return statistics.median(per_iter), iters, per_iter


def load_workloads(path: Path) -> list[tuple[Path, dict]]:
    if path.is_file():
        return [(path, json.loads(path.read_text()))]
    files = [path / "workload.json"] if (path / "workload.json").exists() else []
    files += sorted(path.glob("*/workload.json"))
    if not files:
        raise SystemExit(f"error: no workload.json in {path} (write one with recmaml bench --write-workload)")
    return [(f, json.loads(f.read_text())) for f in files]


def bench_workload(wl: dict, args, device, episodes_cache: dict) -> list[dict]:
    path = Path(wl["episodes"])
    if path not in episodes_cache:
        episodes_cache[path] = read_episodes(path)
    rows = episodes_cache[path]
    batches = [Batch([rows[i] for i in b], wl["support_weights"]) for b in wl["batches"]]
    dims = (wl["v"], wl["e"], wl["h"])
    out = []
    variants = [
        (name, compile_, threads)
        for name in args.forms
        for compile_ in ([False, True] if (name == "batched" and args.compile) else [False])
        for threads in args.threads
    ]
    for name, compile_, threads in variants:
        if threads:
            torch.set_num_threads(threads)
        theta = new_theta(*dims, torch.float32, device, wl["seed"])
        form = FORMS[name](
            theta, dims, wl["inner_lr"], wl["inner_steps"], wl["outer_lr"], wl["clip"], device, compile_
        )
        if isinstance(form, GraphForm):  # one padded length (one graph) for the whole schedule
            form.lmax = max(
                len(p)
                for bt in batches
                for e in bt.episodes
                for p in e["support_prefixes"] + e["query_prefixes"]
            )
        warmup = args.warmup if args.warmup is not None else wl["warmup"]
        iters = args.iters if args.iters is not None else wl["iters"]
        repeats = args.repeats if args.repeats is not None else wl["repeats"]
        # The schedule's first batches: fewer iterations per repeat when it is shorter.
        iters = min(iters, (len(batches) - max(warmup, 1)) // repeats)
        if iters < 1:
            raise SystemExit(
                f"error: {wl['label']}: {len(batches)} meta-batches recorded, too few for "
                f"{max(warmup, 1)} warm-up and {repeats} repeats"
            )
        ms, used_iters, runs = time_form(form, batches, warmup, iters, repeats, args.budget_s, device)
        r = {
            "label": wl["label"],
            "form": form.name,
            "device": str(device),
            "threads": torch.get_num_threads(),
            "n": wl["n"], "k": wl["k"], "q": wl["q"], "v": wl["v"], "e": wl["e"], "h": wl["h"],
            "inner_steps": wl["inner_steps"],
            "warmup": max(warmup, 1), "iters": used_iters, "repeats": repeats,
            "ms_per_iter_median": ms,
            "ms_per_iter_runs": runs,
            "iters_per_sec": 1e3 / ms,
            "gflop_per_iter": wl.get("gflop_per_iter"),
            "gflops_achieved": (wl["gflop_per_iter"] / (ms / 1e3)) if wl.get("gflop_per_iter") else None,
        }
        print(
            f"{r['label']:<10} {r['form']:<16} N {r['n']:>4} K {r['k']:>3} V {r['v']:>6} H {r['h']:>4}"
            f" {r['threads']:>2} thr {r['iters_per_sec']:>9.3f} it/s  {ms:>10.2f} ms/it  ({repeats} x {used_iters})",
            flush=True,
        )
        out.append(r)
    return out


def workload_from_episodes(args) -> dict:
    rows = read_episodes(Path(args.episodes))
    rng = np.random.default_rng(args.seed)
    k = len(rows[0]["support_labels"])
    w = np.exp(0.5 * np.arange(k) / max(k - 1, 1))
    v = args.items or 1 + max(
        max(max(p) for p in r["support_prefixes"] + r["query_prefixes"]) for r in rows
    )
    warmup, iters, repeats = args.warmup or 3, args.iters or 20, args.repeats or 5
    return {
        "label": Path(args.episodes).stem,
        "episodes": args.episodes,
        "v": v, "e": args.embed_dim, "h": args.hidden_dim, "n": args.n, "k": k,
        "q": len(rows[0]["query_labels"]),
        "inner_steps": args.inner_steps, "inner_lr": 0.01, "outer_lr": 1e-3, "clip": 10.0,
        "support_weights": list(w / w.sum()),
        "warmup": warmup, "iters": iters, "repeats": repeats, "seed": args.seed,
        "batches": [
            rng.choice(len(rows), args.n, replace=False).tolist()
            for _ in range(max(warmup, 1) + iters * repeats)
        ],
    }


def versions(device) -> dict:
    v = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "mkldnn": torch.backends.mkldnn.is_available(),
    }
    if device.type == "cuda":
        v["gpu"] = torch.cuda.get_device_name(device)
        v["cuda"] = torch.version.cuda
    return v


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check-fixtures", type=Path, metavar="DIR", help="compare with the PyTorch fixtures in DIR")
    mode.add_argument("--workload", type=Path, help="workload.json, or a folder of */workload.json")
    mode.add_argument("--episodes", help="episode parquet file to draw meta-batches from")
    ap.add_argument(
        "--forms",
        default="loop,batched",
        help="comma-separated: loop,batched,graph (graph: the batched form at fixed shapes, "
        "replayed as one CUDA graph per meta-iteration on a GPU)",
    )
    ap.add_argument("--compile", action="store_true", help="also time batched with torch.compile on the GRU cell")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument(
        "--threads",
        default="0",
        help="torch.set_num_threads; a comma-separated list times each (0: PyTorch's default)",
    )
    ap.add_argument("--warmup", type=int, default=None)
    ap.add_argument("--iters", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--budget-s", type=float, default=60.0, help="cap on timed seconds per form and config (fewer iters per repeat)")
    ap.add_argument("--json", type=Path, help="write results here")
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--items", type=int, default=None)
    ap.add_argument("--embed-dim", type=int, default=64)
    ap.add_argument("--hidden-dim", type=int, default=64)
    ap.add_argument("--inner-steps", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    args.forms = [f for f in args.forms.split(",") if f]
    unknown = [f for f in args.forms if f not in FORMS]
    if unknown:
        ap.error(f"--forms: unknown {unknown} (known: {list(FORMS)})")
    try:
        args.threads = [int(t) for t in str(args.threads).split(",")]
    except ValueError:
        ap.error(f"--threads: expected integers, got {args.threads!r}")
    if args.threads[0]:
        torch.set_num_threads(args.threads[0])
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: torch.cuda.is_available() is False")
    if device.type == "cuda":
        # float32 means IEEE float32 here, as in recmaml: no TF32 in cuBLAS's matrix products or
        # in cuDNN's GRU (cuDNN allows it by default, which misses the 1e-4 fixture tolerance).
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    if args.check_fixtures:
        return check_fixtures(args.check_fixtures, args.forms, device, args.compile)
    workloads = (
        load_workloads(args.workload) if args.workload else [(Path(args.episodes), workload_from_episodes(args))]
    )
    results, cache = [], {}
    for _, wl in workloads:
        results += bench_workload(wl, args, device, cache)
    if args.json:
        args.json.write_text(json.dumps({"versions": versions(device), "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
