//! The CUDA backend: the meta-iteration as five launches independent of N (one persistent block
//! per task for the inner loop and query gradient, then the meta-gradient reduction, clip and
//! Adam). The host code ([`Cuda`]) is written once over the [`Device`] interface: on a GPU the
//! device is [`Driver`] (cudarc: the driver API and NVRTC loaded at run time, so the crate builds
//! and runs without CUDA, and [`Cuda::new`] then returns an [`Error::Backend`] that says what is
//! missing); in the test suite it is the kernel emulator, so CI runs this very host code.
//!
//! Files: [`program`] assembles the kernel sources and compiles them with NVRTC; [`abi`] holds the
//! `#[repr(C)]` launch arguments mirrored in `kernels/common.cuh`; [`pack`] lays a meta-batch out
//! for the kernels; [`device`] and [`driver`] are the device interface and its GPU implementation.

pub mod abi;
pub mod device;
pub mod driver;
mod driver_lib;
pub mod memory;
pub mod nvrtc;
pub mod pack;
pub mod plan;
mod pretrain;
pub mod program;

pub use device::{Args, Buf, Device, Kernel, Launch};
pub use driver::{device_available, Driver};

use crate::backend::{
    AdamState, Backend, BatchShape, InnerLoop, MemoryNeed, MetaStepStats, OuterConfig, PairBatch,
    PhaseProfile, Task, TaskEval,
};
use crate::error::{Error, Result};
use crate::model::ParamLayout;
use abi::{AdamParams, Dims, ReduceParams, TaskDesc, TaskParams, NORM_BLOCKS};

pub(crate) fn err(msg: impl Into<String>) -> Error {
    Error::Backend {
        backend: "cuda".into(),
        msg: msg.into(),
    }
}

/// Prints a debug line when `RECMAML_LOG=debug`.
pub(crate) fn debug(msg: &str) {
    if std::env::var("RECMAML_LOG").is_ok_and(|v| v == "debug") {
        eprintln!("[recmaml cuda] {msg}");
    }
}

/// Device buffers of the current meta-batch, grown as needed and reused.
struct BatchBufs<D: Device> {
    ints: Buf<D, u32>,
    floats: Buf<D, f32>,
    descs: Buf<D, TaskDesc>,
    ws: Buf<D, f32>,
    task_loss: Buf<D, f32>,
    eval_logits: Buf<D, f32>,
    eval_loss: Buf<D, f32>,
}

/// A packed batch on the device, ready for the task kernels.
struct Loaded {
    params: TaskParams,
    shape: Launch,
    batch: pack::Batch,
}

/// The CUDA backend: θ, the meta-gradient and Adam's moments live on the device.
pub struct Cuda<D: Device = Driver> {
    dev: D,
    layout: ParamLayout,
    dims: Dims,
    theta: Buf<D, f32>,
    /// θ's output.weight transposed [H, V] (written by transpose_out before each task launch).
    w_out_t: Buf<D, f32>,
    grad: Buf<D, f32>,
    m: Buf<D, f32>,
    v: Buf<D, f32>,
    partials: Buf<D, f64>,
    stats: Buf<D, f64>,
    /// What an anchored meta-step pulls θ toward ([`Backend::set_anchor`]).
    anchor: Option<Buf<D, f32>>,
    step: u64,
    bufs: BatchBufs<D>,
    last_ms: Option<f64>,
    /// Fill every output and workspace buffer with NaN before each launch (checks).
    poison: bool,
    /// Keep w_hh in shared memory during the recurrence when it fits (`RECMAML_CUDA_SMEM_WHH=0`
    /// turns this off).
    smem_whh: bool,
}

impl<D: Device> std::fmt::Debug for Cuda<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cuda")
            .field("device", &self.dev.name())
            .field("step", &self.step)
            .finish()
    }
}

impl Cuda<Driver> {
    /// A CUDA backend on GPU 0 holding `theta` (length P), Adam's state at zero. Without a
    /// driver, a device or NVRTC this is an [`Error::Backend`] saying which.
    pub fn new(layout: ParamLayout, theta: Vec<f32>) -> Result<Self> {
        check_len("parameters", theta.len(), layout.len)?;
        Self::on(Driver::open()?, layout, theta)
    }
}

fn check_len(what: &str, got: usize, want: usize) -> Result<()> {
    if got != want {
        return Err(Error::Shape(format!(
            "{what}: {got} values given, the model needs {want}"
        )));
    }
    Ok(())
}

/// A grid-stride kernel's shape over `n` elements (at most `cap` blocks).
fn spread(n: usize, cap: u32, block: u32) -> Launch {
    Launch {
        grid: abi::grid_blocks(n, cap, block),
        block,
        smem: 0,
    }
}

impl<D: Device> Cuda<D> {
    /// The backend on device `dev` holding `theta` (length P), Adam's state at zero.
    pub fn on(mut dev: D, layout: ParamLayout, theta: Vec<f32>) -> Result<Self> {
        check_len("parameters", theta.len(), layout.len)?;
        let p = layout.len;
        let n_out = layout.dims.n_items * layout.dims.hidden_dim;
        let d = &mut dev;
        let bufs = BatchBufs {
            ints: Buf::new(d, 1)?,
            floats: Buf::new(d, 1)?,
            descs: Buf::new(d, 1)?,
            ws: Buf::new(d, 1)?,
            task_loss: Buf::new(d, 1)?,
            eval_logits: Buf::new(d, 1)?,
            eval_loss: Buf::new(d, 1)?,
        };
        let zeros = vec![0.0f32; p];
        Ok(Cuda {
            dims: Dims::of(&layout),
            theta: Buf::from_slice(d, &theta)?,
            w_out_t: Buf::new(d, n_out)?,
            grad: Buf::new(d, p)?,
            m: Buf::from_slice(d, &zeros)?,
            v: Buf::from_slice(d, &zeros)?,
            partials: Buf::new(d, NORM_BLOCKS as usize)?,
            stats: Buf::new(d, 2)?,
            anchor: None,
            bufs,
            layout,
            step: 0,
            last_ms: None,
            poison: false,
            smem_whh: std::env::var("RECMAML_CUDA_SMEM_WHH").map_or(true, |v| v != "0"),
            dev,
        })
    }

    /// With `on`, every output and workspace buffer is filled with NaN before each launch, so an
    /// element the kernels fail to write shows up as NaN in the results (`recmaml gpu-check`).
    pub fn set_poison(&mut self, on: bool) {
        self.poison = on;
    }

    /// Whether w_hh may sit in shared memory during the recurrence (when it fits).
    pub fn set_smem_whh(&mut self, on: bool) {
        self.smem_whh = on;
    }

    /// The device.
    pub fn device(&self) -> &D {
        &self.dev
    }

    /// The device, mutably (settings of a test device).
    pub fn device_mut(&mut self) -> &mut D {
        &mut self.dev
    }

    /// The device's name.
    pub fn device_name(&self) -> String {
        self.dev.name()
    }

    /// Task `i`'s adapted weights as a dense flat vector (length P), read back from its
    /// workspace after [`Backend::meta_gradient`] on the same `tasks` and `inner`: the fast GRU
    /// block, embedding rows and output bias, and output.weight as θ's plus the SGD steps'
    /// rank-1 terms. For checks against the CPU engine.
    pub fn adapted_params(
        &mut self,
        tasks: &[Task],
        inner: &InnerLoop,
        i: usize,
    ) -> Result<Vec<f32>> {
        let b = pack::pack(tasks, &self.dims, inner.steps, self.dev.block())?;
        let stride = b.ws.stride as usize;
        let ws = self.bufs.ws.read(&self.dev, i * stride..(i + 1) * stride)?;
        let theta = self.params()?;
        Ok(pack::adapted_dense(
            &self.layout,
            &self.dims,
            &b,
            i,
            inner.steps,
            &ws,
            theta,
        ))
    }

    /// Packs and uploads a batch and launches transpose_out (θ's output.weight for the task
    /// kernels); returns the task kernels' parameters and launch shape.
    fn load_batch(
        &mut self,
        tasks: &[Task],
        inner: &InnerLoop,
        over: Option<&[pack::QueryOverride]>,
    ) -> Result<Loaded> {
        let block = self.dev.block();
        let b = pack::pack_with(tasks, &self.dims, inner.steps, block, over)?;
        let limits = plan::DeviceLimits {
            cc: self.dev.arch(),
            smem_per_block: self.dev.smem_limit(),
        };
        let sizes = plan::Sizes {
            hidden: self.dims.h as usize,
            seqs: b.ws.b_max as usize,
            rank: b.ws.r_max as usize,
        };
        let plan = plan::plan(&limits, block, &sizes, self.smem_whh)
            .map_err(Error::Shape)?
            .smem;
        for k in [Kernel::TaskForward, Kernel::TaskBackward] {
            self.dev.set_smem(k, plan.bytes)?;
        }
        let d = &mut self.dev;
        let bf = &mut self.bufs;
        bf.ints.upload(d, &b.ints)?;
        bf.floats.upload(d, &b.floats)?;
        bf.descs.upload(d, &b.descs)?;
        let ws_len = b.ws.stride as usize * tasks.len();
        bf.ws.reserve(d, ws_len)?;
        bf.task_loss.reserve(d, tasks.len())?;
        let n_out = self.w_out_t.len();
        if self.poison {
            bf.ws.poison(d, ws_len)?;
            bf.task_loss.poison(d, tasks.len())?;
            self.grad.poison(d, self.layout.len)?;
            self.stats.poison(d, 2)?;
            self.w_out_t.poison(d, n_out)?;
        }
        let mut args = Args::new()
            .val(&self.dims)
            .buf(d, &self.theta)
            .buf(d, &self.w_out_t);
        // SAFETY: transpose_out(Dims, const float* theta, float* w_out_t) in output_ce.cu;
        // w_out_t holds V * H floats.
        unsafe {
            d.launch(
                Kernel::TransposeOut,
                spread(n_out, 1024, block),
                &mut args.pointers(),
            )?
        };
        Ok(Loaded {
            params: TaskParams::new(self.dims, b.ws, b.q_max, tasks.len(), inner, &plan),
            shape: Launch {
                grid: tasks.len() as u32,
                block,
                smem: plan.bytes.max(4) as u32,
            },
            batch: b,
        })
    }

    /// Launches task_backward and meta_grad_forward: the meta-gradient in `self.grad`, the
    /// meta-loss in stats[0].
    /// With `over`, the query splits' weights and masks are replaced and the task gradients are
    /// summed (not averaged): the gradient of Σ_tasks Σ_pairs w · CE.
    fn launch_meta_gradient(
        &mut self,
        tasks: &[Task],
        inner: &InnerLoop,
        over: Option<&[pack::QueryOverride]>,
    ) -> Result<()> {
        let l = self.load_batch(tasks, inner, over)?;
        let (d, bf) = (&mut self.dev, &self.bufs);
        let mut args = Args::new()
            .val(&l.params)
            .buf(d, &self.theta)
            .buf(d, &self.w_out_t)
            .buf(d, &bf.ints)
            .buf(d, &bf.descs)
            .buf(d, &bf.floats)
            .buf(d, &bf.ws)
            .buf(d, &bf.task_loss);
        // SAFETY: task_backward(TaskParams, theta, w_out_t, ints, descs, floats, ws, task_loss)
        // in task.cu; the buffers are sized by pack() and load_batch.
        unsafe { d.launch(Kernel::TaskBackward, l.shape, &mut args.pointers())? };
        let rp = ReduceParams::new(&l.params, l.batch.item_csr, over.is_some());
        let mut args = Args::new()
            .val(&rp)
            .buf(d, &bf.ints)
            .buf(d, &bf.descs)
            .buf(d, &bf.ws)
            .buf(d, &bf.task_loss)
            .buf(d, &self.grad)
            .buf(d, &self.stats);
        let shape = spread(self.layout.len, 4096, d.block());
        // SAFETY: meta_grad_forward(ReduceParams, ints, descs, ws, task_loss, grad, stats) in
        // meta_grad.cu; grad holds P floats and stats 2 doubles.
        unsafe { d.launch(Kernel::MetaGrad, shape, &mut args.pointers())? };
        Ok(())
    }

    /// One meta-step (meta-gradient with `over` as in [`Self::launch_meta_gradient`], clip, Adam).
    fn step_with(
        &mut self,
        tasks: &[Task],
        inner: &InnerLoop,
        outer: &OuterConfig,
        over: Option<&[pack::QueryOverride]>,
    ) -> Result<MetaStepStats> {
        if outer.anchor_l2 != 0.0 && self.anchor.is_none() {
            return Err(Error::Other(
                "an anchored meta-step needs an anchor (set_anchor)".into(),
            ));
        }
        self.dev.timer_start()?;
        self.launch_meta_gradient(tasks, inner, over)?;
        // Not read without a penalty.
        let anchor = match (&self.anchor, outer.anchor_l2 != 0.0) {
            (Some(a), true) => a,
            _ => &self.theta,
        };
        let ap = AdamParams::for_step(self.step, self.layout.len, outer);
        let d = &mut self.dev;
        let block = d.block();
        let mut args = Args::new()
            .val(&ap)
            .buf(d, &self.grad)
            .buf(d, &self.theta)
            .buf(d, anchor)
            .buf(d, &self.partials);
        let shape = Launch {
            grid: NORM_BLOCKS,
            block,
            smem: 0,
        };
        // SAFETY: clip_forward(AdamParams, grad, theta, anchor, partials) in clip.cu; theta and
        // anchor hold P floats, partials NORM_BLOCKS doubles.
        unsafe { d.launch(Kernel::Clip, shape, &mut args.pointers())? };
        let mut args = Args::new()
            .val(&ap)
            .buf(d, &self.theta)
            .buf(d, &self.grad)
            .buf(d, &self.m)
            .buf(d, &self.v)
            .buf(d, &self.partials)
            .buf(d, &self.stats);
        // SAFETY: adam_forward(AdamParams, theta, grad, m, v, partials, stats) in adam.cu.
        unsafe {
            d.launch(
                Kernel::Adam,
                spread(self.layout.len, 4096, block),
                &mut args.pointers(),
            )?
        };
        self.last_ms = d.timer_stop()?;
        let stats = self.stats.to_vec(d)?;
        let (meta_loss, grad_norm) = (stats[0], stats[1]);
        if meta_loss.is_finite() && grad_norm.is_finite() {
            self.step += 1;
        }
        Ok(MetaStepStats {
            meta_loss,
            grad_norm,
        })
    }
}

impl<D: Device> Backend for Cuda<D> {
    fn name(&self) -> &'static str {
        "cuda"
    }

    fn layout(&self) -> &ParamLayout {
        &self.layout
    }

    fn set_params(&mut self, theta: &[f32]) -> Result<()> {
        check_len("parameters", theta.len(), self.layout.len)?;
        self.theta.write(&mut self.dev, 0, theta)
    }

    fn params(&self) -> Result<Vec<f32>> {
        self.theta.to_vec(&self.dev)
    }

    fn set_anchor(&mut self, anchor: &[f32]) -> Result<()> {
        check_len("anchor", anchor.len(), self.layout.len)?;
        self.anchor = Some(Buf::from_slice(&mut self.dev, anchor)?);
        Ok(())
    }

    fn set_adam(&mut self, state: &AdamState) -> Result<()> {
        state.check_len(self.layout.len)?;
        self.m.write(&mut self.dev, 0, &state.m)?;
        self.v.write(&mut self.dev, 0, &state.v)?;
        self.step = state.step;
        Ok(())
    }

    fn adam(&self) -> Result<AdamState> {
        Ok(AdamState {
            step: self.step,
            m: self.m.to_vec(&self.dev)?,
            v: self.v.to_vec(&self.dev)?,
        })
    }

    fn meta_gradient(
        &mut self,
        tasks: &[Task],
        inner: &InnerLoop,
        grad: &mut [f32],
    ) -> Result<f64> {
        check_len("gradient buffer", grad.len(), self.layout.len)?;
        self.launch_meta_gradient(tasks, inner, None)?;
        grad.copy_from_slice(&self.grad.to_vec(&self.dev)?);
        Ok(self.stats.to_vec(&self.dev)?[0])
    }

    fn meta_step(
        &mut self,
        tasks: &[Task],
        inner: &InnerLoop,
        outer: &OuterConfig,
    ) -> Result<MetaStepStats> {
        self.step_with(tasks, inner, outer, None)
    }

    fn last_step_device_ms(&self) -> Option<f64> {
        self.last_ms
    }

    fn device_memory(&self, shape: &BatchShape) -> Result<Option<MemoryNeed>> {
        memory::need(&self.layout, self.dev.block(), shape).map(Some)
    }

    fn reset_profile(&mut self) -> Result<()> {
        if !program::profiling() {
            return Ok(());
        }
        self.dev.zero_global("rm_prof")
    }

    fn profile(&self) -> Result<Option<PhaseProfile>> {
        if !program::profiling() {
            return Ok(None);
        }
        let Some(bytes) = self.dev.read_global("rm_prof")? else {
            return Ok(None);
        };
        let n = program::PROFILE_PHASES.len();
        let rows = bytes
            .chunks_exact(8 * n)
            .map(|task| {
                task.chunks_exact(8)
                    .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
                    .collect()
            })
            .collect();
        Ok(Some(PhaseProfile {
            phases: program::PROFILE_PHASES.map(String::from).to_vec(),
            unit: "clock cycles",
            rows,
            per_task: true,
        }))
    }

    fn evaluate(&mut self, tasks: &[Task], inner: &InnerLoop) -> Result<Vec<TaskEval>> {
        let l = self.load_batch(tasks, inner, None)?;
        let (n, v, q_max) = (tasks.len(), self.dims.v as usize, l.batch.q_max as usize);
        let (d, bf) = (&mut self.dev, &mut self.bufs);
        bf.eval_logits.reserve(d, n * 2 * q_max * v)?;
        bf.eval_loss.reserve(d, 2 * n)?;
        if self.poison {
            bf.eval_logits.poison(d, n * 2 * q_max * v)?;
            bf.eval_loss.poison(d, 2 * n)?;
        }
        let mut args = Args::new()
            .val(&l.params)
            .buf(d, &self.theta)
            .buf(d, &self.w_out_t)
            .buf(d, &bf.ints)
            .buf(d, &bf.descs)
            .buf(d, &bf.floats)
            .buf(d, &bf.ws)
            .buf(d, &bf.eval_logits)
            .buf(d, &bf.eval_loss);
        // SAFETY: task_forward(TaskParams, theta, w_out_t, ints, descs, floats, ws, logits,
        // losses) in task.cu; the outputs are sized above.
        unsafe { d.launch(Kernel::TaskForward, l.shape, &mut args.pointers())? };
        let logits = bf.eval_logits.read(d, 0..n * 2 * q_max * v)?;
        let losses = bf.eval_loss.read(d, 0..2 * n)?;
        Ok(pack::task_evals(tasks, &logits, &losses, q_max, v))
    }

    fn pretrain_step(&mut self, batch: &PairBatch, outer: &OuterConfig) -> Result<f64> {
        let h = self.dims.h as usize;
        let chunks = pretrain::Chunks::of(batch, h)?;
        let none = InnerLoop { lr: 0.0, steps: 0 };
        let (tasks, over) = (chunks.tasks(), chunks.overrides());
        // The anchor penalty is meta-training's only (see OuterConfig::anchor_l2).
        let outer = OuterConfig {
            anchor_l2: 0.0,
            ..*outer
        };
        let st = self.step_with(&tasks, &none, &outer, Some(&over))?;
        // meta_grad_forward reports the mean of the tasks' losses; each is already weighted.
        Ok(st.meta_loss * tasks.len() as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{init_params, ModelDims};

    /// On a machine without a usable GPU, asking for CUDA is a clear error, not a panic; with
    /// one, the backend starts.
    #[test]
    fn new_without_a_gpu_is_a_backend_error() {
        let layout = ParamLayout::new(ModelDims {
            n_items: 10,
            embed_dim: 4,
            hidden_dim: 3,
        });
        let theta = init_params(&layout, 1);
        match Cuda::new(layout, theta) {
            Ok(gpu) => assert!(device_available(), "started without a device: {gpu:?}"),
            Err(Error::Backend { backend, msg }) => {
                assert_eq!(backend, "cuda");
                assert!(msg.contains("CUDA") || msg.contains("NVRTC"), "{msg}");
            }
            Err(other) => panic!("unexpected error kind: {other}"),
        }
    }
}
