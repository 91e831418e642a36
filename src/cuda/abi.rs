//! The launch arguments: `#[repr(C)]` mirrors of the parameter structs in `kernels/common.cuh`
//! (plain old data, so they are passed by value as bytes). Both sides assert the
//! same sizes (`static_assert` there, `const` assertions here), so a field added on one side only
//! fails the build or the kernel compile.

use crate::model::ParamLayout;

/// Marks "no such row" (a task without the padding item 0).
pub const NONE: u32 = u32::MAX;

/// One split (support or query) of a task; see `SplitDesc` in `common.cuh`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct SplitDesc {
    pub n_seqs: u32,
    pub n_steps: u32,
    pub max_len: u32,
    pub seq_off: u32,
    pub tokens: u32,
    pub labels: u32,
    pub rows: u32,
    pub weights: u32,
    pub mask: u32,
}

/// One task; see `TaskDesc` in `common.cuh`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct TaskDesc {
    pub support: SplitDesc,
    pub query: SplitDesc,
    pub n_rows: u32,
    pub ids: u32,
    pub padding_row: u32,
    pub pad_: u32,
}

/// Model sizes and tensor offsets; see `Dims` in `common.cuh`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Dims {
    pub v: u32,
    pub e: u32,
    pub h: u32,
    pub p: u32,
    pub off_emb: u32,
    pub off_wih: u32,
    pub off_whh: u32,
    pub off_bih: u32,
    pub off_bhh: u32,
    pub off_wout: u32,
    pub off_bout: u32,
    pub gru_len: u32,
}

/// Per-task workspace layout (offsets in floats); see `WsLayout` in `common.cuh`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct WsLayout {
    pub stride: u64,
    pub gru: u32,
    pub dgru: u32,
    pub table: u32,
    pub dtable: u32,
    pub bias: u32,
    pub dbias: u32,
    pub lr_d: u32,
    pub lr_g: u32,
    pub hprev: u32,
    pub gates: u32,
    pub ghn: u32,
    pub dgi: u32,
    pub dgh: u32,
    pub dlt: u32,
    pub hlast: u32,
    pub dhlast: u32,
    pub logits: u32,
    pub lse: u32,
    pub loss: u32,
    pub coef: u32,
    pub gru_t: u32,
    pub rowsum: u32,
    pub red: u32,
    pub b_max: u32,
    pub r_max: u32,
    pub pad_: u32,
}

/// Arguments of `task_forward` / `task_backward`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct TaskParams {
    pub d: Dims,
    pub ws: WsLayout,
    pub n_tasks: u32,
    pub steps: u32,
    pub lr: f32,
    pub q_max: u32,
    pub smem_whh: u32,
    pub pf: u32,
    pub pb: u32,
    pub pad_: u32,
}

/// Arguments of `meta_grad_forward`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct ReduceParams {
    pub d: Dims,
    pub ws: WsLayout,
    pub n_tasks: u32,
    pub item_csr: u32,
    pub inv_n: f32,
    pub pad_: u32,
}

/// Arguments of `clip_forward` / `adam_forward`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct AdamParams {
    pub p: u32,
    pub n_partials: u32,
    pub clip: f32,
    pub step_size: f32,
    pub beta2: f32,
    pub w1: f32,
    pub w2: f32,
    pub bias_c2_sqrt: f32,
    pub eps: f32,
    /// Weight of the anchor penalty (0: none); clip_forward adds its gradient.
    pub anchor_l2: f32,
}

/// Blocks of clip_forward (fixed, so the norm's summation order is fixed).
pub const NORM_BLOCKS: u32 = 256;

/// Blocks for a grid-stride kernel over `n` elements: enough for one element per thread, at
/// least 1 and at most `cap`.
pub fn grid_blocks(n: usize, cap: u32, block: u32) -> u32 {
    (n.div_ceil(block as usize) as u32).clamp(1, cap)
}

impl TaskParams {
    /// The task kernels' arguments for a packed batch of `n_tasks` tasks (its workspace layout
    /// `ws` and longest query `q_max`), the inner loop (`steps`, `lr`) and the shared-memory plan.
    pub fn new(
        d: Dims,
        ws: WsLayout,
        q_max: u32,
        n_tasks: usize,
        inner: &crate::backend::InnerLoop,
        plan: &SmemPlan,
    ) -> Self {
        TaskParams {
            d,
            ws,
            n_tasks: n_tasks as u32,
            steps: inner.steps as u32,
            lr: inner.lr,
            q_max,
            smem_whh: plan.smem_whh,
            pf: plan.pf,
            pb: plan.pb,
            pad_: 0,
        }
    }
}

impl ReduceParams {
    /// meta_grad_forward's arguments: the task gradients averaged over the N tasks, or summed
    /// (`summed`, pretraining: each task's loss is already weighted).
    pub fn new(t: &TaskParams, item_csr: u32, summed: bool) -> Self {
        ReduceParams {
            d: t.d,
            ws: t.ws,
            n_tasks: t.n_tasks,
            item_csr,
            inv_n: if summed {
                1.0
            } else {
                1.0f32 / t.n_tasks as f32
            },
            pad_: 0,
        }
    }
}

impl AdamParams {
    /// clip_forward's and adam_forward's arguments for Adam step `step + 1` over `p` parameters
    /// (the bias corrections in double, as in cpu::adam::adam_step).
    pub fn for_step(step: u64, p: usize, outer: &crate::backend::OuterConfig) -> Self {
        let t = (step + 1).min(i32::MAX as u64) as i32;
        let bias_c1 = 1.0f32 - (outer.beta1 as f64).powi(t) as f32;
        let bias_c2 = 1.0f32 - (outer.beta2 as f64).powi(t) as f32;
        AdamParams {
            p: p as u32,
            n_partials: NORM_BLOCKS,
            clip: outer.clip,
            step_size: outer.lr / bias_c1,
            beta2: outer.beta2,
            w1: 1.0 - outer.beta1,
            w2: 1.0 - outer.beta2,
            bias_c2_sqrt: bias_c2.sqrt(),
            eps: outer.eps,
            anchor_l2: outer.anchor_l2,
        }
    }
}

const _: () = assert!(std::mem::size_of::<SplitDesc>() == 36);
const _: () = assert!(std::mem::size_of::<TaskDesc>() == 88);
const _: () = assert!(std::mem::size_of::<Dims>() == 48);
const _: () = assert!(std::mem::size_of::<WsLayout>() == 112);
const _: () = assert!(std::mem::size_of::<TaskParams>() == 192);
const _: () = assert!(std::mem::size_of::<ReduceParams>() == 176);
const _: () = assert!(std::mem::size_of::<AdamParams>() == 40);

impl Dims {
    /// From the model's layout.
    pub fn of(layout: &ParamLayout) -> Self {
        let d = layout.dims;
        let u = |x: usize| x as u32;
        Dims {
            v: u(d.n_items),
            e: u(d.embed_dim),
            h: u(d.hidden_dim),
            p: u(layout.len),
            off_emb: u(layout.embedding().start),
            off_wih: u(layout.w_ih().start),
            off_whh: u(layout.w_hh().start),
            off_bih: u(layout.b_ih().start),
            off_bhh: u(layout.b_hh().start),
            off_wout: u(layout.out_w().start),
            off_bout: u(layout.out_b().start),
            gru_len: u(layout.b_hh().end - layout.w_ih().start),
        }
    }
}

/// How the task kernels use shared memory (`GruSmem` in `kernels/gru.cu`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SmemPlan {
    /// Dynamic shared memory per block.
    pub bytes: usize,
    /// w_hh in shared memory (1) or read from global memory (0).
    pub smem_whh: u32,
    /// Column slices of `W_hh h` per gate row (forward) and row slices of `W_hh^T dgh` per
    /// hidden unit (backward).
    pub pf: u32,
    pub pb: u32,
}

/// Bytes of `GruSmem` for hidden size `h`, `b_max` sequences per split, `r_max` low-rank terms,
/// the slice counts and whether w_hh is included; the kernel's `gru_smem` lays out the same
/// regions.
pub fn smem_bytes(h: usize, b_max: usize, r_max: usize, pf: usize, pb: usize, whh: bool) -> usize {
    let up4 = |n: usize| n.div_ceil(4) * 4;
    let bpm = b_max.div_ceil(8) * 8;
    let floats = h * bpm
        + (3 * h * bpm).max((h + r_max) * 8)
        + up4((pf * 3 * h).max(pb * h) * b_max)
        + up4(2 * b_max)
        + if whh { 3 * h * (h + 1) } else { 0 };
    floats * 4
}

/// The shared-memory plan for `block` threads per block and a per-block limit of `limit` bytes:
/// as many slices (up to 8) as there are threads for, w_hh in shared memory when wanted and it
/// fits, fewer slices only when even that does not fit. `None`: nothing fits.
pub fn smem_plan(
    h: usize,
    b_max: usize,
    r_max: usize,
    block: usize,
    limit: usize,
    want_whh: bool,
) -> Option<SmemPlan> {
    // The most slices (of `n` columns or rows each) that `rows` threads per slice allow.
    let most = |rows: usize, n: usize| {
        [8usize, 4, 2, 1]
            .into_iter()
            .find(|&p| p * rows <= block && p <= n.max(1))
            .unwrap_or(1)
    };
    let (mut pf, mut pb) = (most(3 * h, h), most(h, 3 * h));
    loop {
        for whh in [true, false] {
            if whh && !want_whh {
                continue;
            }
            let bytes = smem_bytes(h, b_max, r_max, pf, pb, whh);
            if bytes <= limit {
                return Some(SmemPlan {
                    bytes,
                    smem_whh: whh as u32,
                    pf: pf as u32,
                    pb: pb as u32,
                });
            }
        }
        if pf == 1 && pb == 1 {
            return None;
        }
        if pf >= pb {
            pf = (pf / 2).max(1);
        } else {
            pb = (pb / 2).max(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smem_plan_of_the_reference_and_large_shapes() {
        // Reference configuration (H 64, Q 10, 768 threads): 4 column slices, 8 row slices,
        // w_hh in shared memory.
        let p = smem_plan(64, 10, 25, 768, 227 * 1024, true).unwrap();
        assert_eq!((p.pf, p.pb, p.smem_whh), (4, 8, 1));
        assert_eq!(p.bytes, smem_bytes(64, 10, 25, 4, 8, true));
        // H 128, 20 sequences: w_hh (198 KB) does not fit beside the rest.
        let p = smem_plan(128, 20, 25, 768, 227 * 1024, true).unwrap();
        assert_eq!((p.pf, p.pb, p.smem_whh), (2, 4, 0));
        // Turned off by the caller.
        assert_eq!(
            smem_plan(64, 10, 25, 768, 227 * 1024, false)
                .unwrap()
                .smem_whh,
            0
        );
        // A tight limit first drops w_hh, then halves the slices (the larger count first; 2 row
        // slices of 64 take no more room than 1 column slice of 192), then gives up.
        let bare = smem_bytes(64, 10, 25, 1, 1, false);
        let p = smem_plan(64, 10, 25, 768, bare, true).unwrap();
        assert_eq!((p.pf, p.pb, p.smem_whh, p.bytes), (1, 2, 0, bare));
        assert!(smem_plan(64, 10, 25, 768, bare - 4, true).is_none());
        // Tiny hidden sizes never take more slices than there are columns.
        let p = smem_plan(6, 3, 25, 256, 48 * 1024, true).unwrap();
        assert!(p.pf <= 6 && p.pb <= 8);
    }

    #[test]
    fn smem_bytes_counts_each_region() {
        // H 64, 10 sequences (padded to 16), 25 low-rank terms, 4 / 8 slices: h 64*16,
        // g max(192*16, (64 + 25) * 8), red max(768, 512) * 10, seq 20, w_hh 192 * 65.
        let floats = 64 * 16 + 192 * 16 + 7680 + 20 + 192 * 65;
        assert_eq!(smem_bytes(64, 10, 25, 4, 8, true), floats * 4);
        // 400 low-rank terms: the output layer's staging area outgrows g.
        let big = floats - 192 * 16 + (64 + 400) * 8;
        assert_eq!(smem_bytes(64, 10, 400, 4, 8, true), big * 4);
        assert_eq!(smem_bytes(64, 10, 25, 4, 8, false), (floats - 192 * 65) * 4);
    }
}
