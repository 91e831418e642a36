//! The GRU layer (PyTorch's `nn.GRU(E, H)`: one layer, gates r, z, n, h0 = 0) over a
//! [`SeqForest`] of sequences: the forward step by step through the forest's levels, keeping in a
//! [`GruCache`] what the backward through time needs, and that backward. The parameters are one
//! contiguous block of the flat layout, split into [`GruWeights`] / [`GruGrads`]. The CPU twin of
//! `kernels/gru.cu`.

use super::float::Float;
use super::forest::{SeqForest, NO_PARENT};
use super::profile::{self, Phase};
use super::scratch::{ensure, resize};
use super::simd::{axpy, gemm_nn_acc, ger_acc, ger_set, gru_cell, transpose};

/// The GRU's parameters, PyTorch's `gru.*_l0` (gate order r, z, n in the 3H rows).
#[derive(Clone, Copy, Debug)]
pub struct GruWeights<'a, F> {
    /// `weight_ih [3H, E]`.
    pub w_ih: &'a [F],
    /// `weight_hh [3H, H]`.
    pub w_hh: &'a [F],
    /// `bias_ih [3H]`.
    pub b_ih: &'a [F],
    /// `bias_hh [3H]`.
    pub b_hh: &'a [F],
}

/// Gradients of the GRU's parameters, same shapes as [`GruWeights`].
#[derive(Debug)]
pub struct GruGrads<'a, F> {
    /// d `weight_ih [3H, E]`.
    pub dw_ih: &'a mut [F],
    /// d `weight_hh [3H, H]`.
    pub dw_hh: &'a mut [F],
    /// d `bias_ih [3H]`.
    pub db_ih: &'a mut [F],
    /// d `bias_hh [3H]`.
    pub db_hh: &'a mut [F],
}

/// Length of the GRU's contiguous parameter block `w_ih | w_hh | b_ih | b_hh` (that is their order
/// in the flat layout).
pub fn gru_block_len(e: usize, h: usize) -> usize {
    3 * h * e + 3 * h * h + 6 * h
}

/// Splits a GRU block (see [`gru_block_len`]) into its four tensors.
pub fn gru_split<F>(block: &[F], e: usize, h: usize) -> GruWeights<'_, F> {
    let (w_ih, rest) = block.split_at(3 * h * e);
    let (w_hh, rest) = rest.split_at(3 * h * h);
    let (b_ih, b_hh) = rest.split_at(3 * h);
    GruWeights {
        w_ih,
        w_hh,
        b_ih,
        b_hh,
    }
}

/// Splits a GRU gradient block into its four tensors.
pub fn gru_split_mut<F>(block: &mut [F], e: usize, h: usize) -> GruGrads<'_, F> {
    let (dw_ih, rest) = block.split_at_mut(3 * h * e);
    let (dw_hh, rest) = rest.split_at_mut(3 * h * h);
    let (db_ih, db_hh) = rest.split_at_mut(3 * h);
    GruGrads {
        dw_ih,
        dw_hh,
        db_ih,
        db_hh,
    }
}

/// What the GRU's forward keeps for its backward, per forest node (row), plus scratch. Reused
/// between calls; grows to the largest forest seen.
#[derive(Clone, Debug, Default)]
pub struct GruCache<F> {
    /// `weight_ih^T [E, 3H]` and `weight_hh^T [H, 3H]` of the last forward.
    w_iht: Vec<F>,
    w_hht: Vec<F>,
    /// Input projection of each distinct item `W_ih x + b_ih`, `[U, 3H]`.
    xi: Vec<F>,
    /// Activated gates r, z, n per node, `[R, 3H]`.
    rzn: Vec<F>,
    /// The candidate's hidden term `W_hn h_prev + b_hn` per node, `[R, H]`.
    ghn: Vec<F>,
    /// Previous hidden state per node (0 at depth 0), `[R, H]`.
    hprev: Vec<F>,
    /// Hidden state per node, `[R, H]`.
    hs: Vec<F>,
    /// Scratch: hidden pre-activations of one level, `[B, 3H]`; gradients per node.
    gh: Vec<F>,
    dh: Vec<F>,
    dgh: Vec<F>,
    dxi: Vec<F>,
    dhp: Vec<F>,
}

/// Sums the rows of `m [rows, n]` into `out [n]` (`+=`).
fn add_rows<F: Float>(out: &mut [F], m: &[F], n: usize) {
    for row in m.chunks_exact(n) {
        axpy(out, F::ONE, row);
    }
}

/// GRU forward over every node of `forest`, PyTorch's cell with h0 = 0:
/// `r = σ(W_ir x + b_ir + W_hr h + b_hr)`, `z = σ(W_iz x + b_iz + W_hz h + b_hz)`,
/// `n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))`, `h' = (1 − z) ⊙ n + z ⊙ h`.
/// `x [U, E]` holds the embedding of each of `forest.uniq`. Writes `hlast [S, H]`, the hidden
/// state at each sequence's own last item.
pub fn gru_forward<F: Float>(
    hlast: &mut [F],
    cache: &mut GruCache<F>,
    w: GruWeights<F>,
    x: &[F],
    forest: &SeqForest,
    e: usize,
    h: usize,
) {
    let (u, r) = (forest.uniq.len(), forest.n_nodes());
    let g3 = 3 * h;
    let p = profile::phase(Phase::InputProjection);
    ensure(&mut cache.w_iht, e * g3);
    transpose(&mut cache.w_iht, w.w_ih, g3, e);
    ensure(&mut cache.w_hht, h * g3);
    transpose(&mut cache.w_hht, w.w_hh, g3, h);
    ensure(&mut cache.xi, u * g3);
    for row in cache.xi.chunks_exact_mut(g3) {
        row.copy_from_slice(w.b_ih);
    }
    gemm_nn_acc(&mut cache.xi, &x[..u * e], &cache.w_iht, g3);
    drop(p);
    let _p = profile::phase(Phase::Recurrence);
    ensure(&mut cache.rzn, r * g3);
    ensure(&mut cache.ghn, r * h);
    ensure(&mut cache.hprev, r * h);
    // h0 = 0 for the nodes at depth 0; deeper nodes copy their parent's state below.
    let l1 = forest.level_start.get(1).copied().unwrap_or(r);
    cache.hprev[..l1 * h].fill(F::ZERO);
    ensure(&mut cache.hs, r * h);
    for t in 0..forest.n_levels() {
        let lv = forest.level(t);
        let b = lv.len();
        // Hidden pre-activations of the level: b_hh + W_hh h_prev.
        ensure(&mut cache.gh, b * g3);
        for row in cache.gh.chunks_exact_mut(g3) {
            row.copy_from_slice(w.b_hh);
        }
        if t > 0 {
            for i in lv.clone() {
                let p = forest.parents[i] as usize;
                cache.hprev[i * h..(i + 1) * h].copy_from_slice(&cache.hs[p * h..(p + 1) * h]);
            }
            gemm_nn_acc(
                &mut cache.gh,
                &cache.hprev[lv.start * h..lv.end * h],
                &cache.w_hht,
                g3,
            );
        }
        for (j, i) in lv.enumerate() {
            gru_cell(
                &mut cache.rzn[i * g3..(i + 1) * g3],
                &mut cache.ghn[i * h..(i + 1) * h],
                &mut cache.hs[i * h..(i + 1) * h],
                &cache.xi[forest.items[i] as usize * g3..][..g3],
                &cache.gh[j * g3..(j + 1) * g3],
                &cache.hprev[i * h..(i + 1) * h],
            );
        }
    }
    for (s, &end) in forest.ends.iter().enumerate() {
        hlast[s * h..(s + 1) * h].copy_from_slice(&cache.hs[end * h..(end + 1) * h]);
    }
}

/// The backward of one GRU cell: from `dh [H]`, the gradient at its new state, and what the
/// forward kept (`hp` = h_prev, the gates `rzn [3H]`, `ghn [H]`), adds the gradient of the input
/// projection's pre-activations to `dxi [3H]` and writes that of the hidden ones to `dgh [3H]`.
fn gru_cell_backward<F: Float>(
    dxi: &mut [F],
    dgh: &mut [F],
    dh: &[F],
    hp: &[F],
    rzn: &[F],
    ghn: &[F],
) {
    let h = dh.len();
    let (rg, rest) = rzn[..3 * h].split_at(h);
    let (zg, ng) = rest.split_at(h);
    let (dxr, rest) = dxi[..3 * h].split_at_mut(h);
    let (dxz, dxn) = rest.split_at_mut(h);
    let (dgr, rest) = dgh[..3 * h].split_at_mut(h);
    let (dgz, dgn) = rest.split_at_mut(h);
    let (hp, ghn) = (&hp[..h], &ghn[..h]);
    for k in 0..h {
        let (rg, zg, ng) = (rg[k], zg[k], ng[k]);
        let dn = dh[k] * (F::ONE - zg);
        let dz = dh[k] * (hp[k] - ng);
        let dn_pre = dn * (F::ONE - ng * ng);
        let dz_pre = dz * zg * (F::ONE - zg);
        let dr_pre = dn_pre * ghn[k] * rg * (F::ONE - rg);
        dxr[k] += dr_pre;
        dxz[k] += dz_pre;
        dxn[k] += dn_pre;
        dgr[k] = dr_pre;
        dgz[k] = dz_pre;
        dgn[k] = dn_pre * rg;
    }
}

/// GRU backward: from `dhlast [S, H]`, the gradient at each sequence's last hidden state, to
/// `dx [U, E]` (assigned; the gradient of the input rows `x`) and the parameter gradients
/// (accumulated). Uses the cache of the matching [`gru_forward`].
#[allow(clippy::too_many_arguments)]
pub fn gru_backward<F: Float>(
    dx: &mut [F],
    dw: GruGrads<F>,
    dhlast: &[F],
    cache: &mut GruCache<F>,
    w: GruWeights<F>,
    x: &[F],
    forest: &SeqForest,
    e: usize,
    h: usize,
) {
    gru_backward_into::<F, false>(dx, dw, dhlast, cache, w, x, forest, e, h);
}

/// [`gru_backward`] with the parameter gradients assigned rather than accumulated: the same bits
/// as accumulating into zeros, without clearing the block first.
#[allow(clippy::too_many_arguments)]
pub fn gru_backward_set<F: Float>(
    dx: &mut [F],
    dw: GruGrads<F>,
    dhlast: &[F],
    cache: &mut GruCache<F>,
    w: GruWeights<F>,
    x: &[F],
    forest: &SeqForest,
    e: usize,
    h: usize,
) {
    gru_backward_into::<F, true>(dx, dw, dhlast, cache, w, x, forest, e, h);
}

#[allow(clippy::too_many_arguments)]
fn gru_backward_into<F: Float, const SET: bool>(
    dx: &mut [F],
    dw: GruGrads<F>,
    dhlast: &[F],
    cache: &mut GruCache<F>,
    w: GruWeights<F>,
    x: &[F],
    forest: &SeqForest,
    e: usize,
    h: usize,
) {
    let (u, r) = (forest.uniq.len(), forest.n_nodes());
    let g3 = 3 * h;
    let p = profile::phase(Phase::RecurrenceBackward);
    resize(&mut cache.dh, r * h);
    for (s, &end) in forest.ends.iter().enumerate() {
        axpy(
            &mut cache.dh[end * h..(end + 1) * h],
            F::ONE,
            &dhlast[s * h..(s + 1) * h],
        );
    }
    ensure(&mut cache.dgh, r * g3);
    resize(&mut cache.dxi, u * g3);
    for t in (0..forest.n_levels()).rev() {
        let lv = forest.level(t);
        for i in lv.clone() {
            let dh = &cache.dh[i * h..(i + 1) * h];
            let hp = &cache.hprev[i * h..(i + 1) * h];
            let rzn = &cache.rzn[i * g3..(i + 1) * g3];
            let ghn = &cache.ghn[i * h..(i + 1) * h];
            let dxi = &mut cache.dxi[forest.items[i] as usize * g3..][..g3];
            let dgh = &mut cache.dgh[i * g3..(i + 1) * g3];
            gru_cell_backward(dxi, dgh, dh, hp, rzn, ghn);
        }
        if t == 0 {
            break; // h_prev = h0 = 0: nothing further back
        }
        let dgh = &cache.dgh[lv.start * g3..lv.end * g3];
        // dh_prev = z ⊙ dh + W_hh^T dgh, added into each node's parent.
        ensure(&mut cache.dhp, lv.len() * h);
        for (j, i) in lv.clone().enumerate() {
            let z = &cache.rzn[i * g3 + h..i * g3 + 2 * h];
            let dh = &cache.dh[i * h..(i + 1) * h];
            for (k, d) in cache.dhp[j * h..(j + 1) * h].iter_mut().enumerate() {
                *d = z[k] * dh[k];
            }
        }
        gemm_nn_acc(&mut cache.dhp, dgh, w.w_hh, h);
        for (j, i) in lv.enumerate() {
            let p = forest.parents[i];
            debug_assert_ne!(p, NO_PARENT);
            let p = p as usize;
            axpy(
                &mut cache.dh[p * h..(p + 1) * h],
                F::ONE,
                &cache.dhp[j * h..(j + 1) * h],
            );
        }
    }
    drop(p);
    let _p = profile::phase(Phase::GruGradient);
    // Parameter gradients of all nodes at once (h_prev = 0 at depth 0 adds nothing to W_hh).
    let ger = if SET { ger_set::<F> } else { ger_acc::<F> };
    if SET {
        dw.db_hh.fill(F::ZERO);
        dw.db_ih.fill(F::ZERO);
    }
    add_rows(dw.db_hh, &cache.dgh, g3);
    let l1 = forest.level_start.get(1).copied().unwrap_or(r);
    ger(
        dw.dw_hh,
        &cache.dgh[l1 * g3..],
        g3,
        &cache.hprev[l1 * h..],
        h,
    );
    ger(dw.dw_ih, &cache.dxi, g3, &x[..u * e], e);
    add_rows(dw.db_ih, &cache.dxi, g3);
    let dx = &mut dx[..u * e];
    dx.fill(F::ZERO);
    gemm_nn_acc(dx, &cache.dxi, w.w_ih, e);
}
