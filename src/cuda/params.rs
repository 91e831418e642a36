//! `#[repr(C)]` mirrors of the parameter structs in `kernels/common.cuh`. Both sides assert the
//! same sizes (`static_assert` there, `const` assertions here), so a field added on one side only
//! fails the build or the kernel compile.

use crate::model::ParamLayout;

/// Marks "no such row" (a task without the padding item 0).
pub const NONE: u32 = u32::MAX;

/// One split (support or query) of a task; see `SplitDesc` in `common.cuh`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
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
    pub pre: u32,
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
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TaskParams {
    pub d: Dims,
    pub ws: WsLayout,
    pub n_tasks: u32,
    pub steps: u32,
    pub lr: f32,
    pub q_max: u32,
    pub smem_whh: u32,
    pub pad_: u32,
}

/// Arguments of `meta_grad_forward`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
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
#[derive(Clone, Copy, Debug, Default, PartialEq)]
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
    pub pad_: u32,
}

const _: () = assert!(std::mem::size_of::<SplitDesc>() == 36);
const _: () = assert!(std::mem::size_of::<TaskDesc>() == 88);
const _: () = assert!(std::mem::size_of::<Dims>() == 48);
const _: () = assert!(std::mem::size_of::<WsLayout>() == 112);
const _: () = assert!(std::mem::size_of::<TaskParams>() == 184);
const _: () = assert!(std::mem::size_of::<ReduceParams>() == 176);
const _: () = assert!(std::mem::size_of::<AdamParams>() == 40);

// SAFETY: plain-old-data `#[repr(C)]` structs of integers and floats, laid out as their C mirrors.
unsafe impl cudarc::driver::DeviceRepr for Dims {}
unsafe impl cudarc::driver::DeviceRepr for TaskDesc {}
unsafe impl cudarc::driver::DeviceRepr for TaskParams {}
unsafe impl cudarc::driver::DeviceRepr for ReduceParams {}
unsafe impl cudarc::driver::DeviceRepr for AdamParams {}

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
