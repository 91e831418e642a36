//! The CUDA backend: the meta-iteration as five launches independent of N (one persistent block
//! per task for the inner loop and query gradient, then the meta-gradient reduction, clip and
//! Adam), on kernels compiled once per process with NVRTC for the device's own architecture.
//! cudarc loads the driver and NVRTC at run time, so the crate builds and runs without CUDA;
//! [`Cuda::new`] then returns an [`Error::Backend`] that says what is missing.
//!
//! `benches/gpu_check.sh` checks the kernels against the CPU engine and the PyTorch fixtures
//! on a GPU; tests/kernels_compile.rs compiles them (NVRTC + ptxas) on machines without one.

pub mod check;
#[cfg(test)]
mod emu;
pub mod kernels;
pub mod pack;
pub mod params;

use crate::backend::{AdamState, Backend, InnerLoop, MetaStepStats, OuterConfig, Task, TaskEval};
use crate::error::{Error, Result};
use crate::model::ParamLayout;
use cudarc::driver::{
    CudaContext, CudaEvent, CudaFunction, CudaModule, CudaSlice, CudaStream, DeviceRepr,
    LaunchConfig, PushKernelArg,
};
use params::{AdamParams, Dims, ReduceParams, TaskDesc, TaskParams, NORM_BLOCKS};
use std::sync::Arc;
use std::time::Instant;

/// Dynamic shared memory available without an opt-in.
const DEFAULT_SHARED: usize = 48 * 1024;

fn err(msg: impl Into<String>) -> Error {
    Error::Backend {
        backend: "cuda".into(),
        msg: msg.into(),
    }
}

fn drv(what: &str) -> impl Fn(cudarc::driver::DriverError) -> Error + '_ {
    move |e| err(format!("{what}: {e:?}"))
}

/// Prints a debug line when `RECMAML_LOG=debug`.
fn debug(msg: &str) {
    if std::env::var("RECMAML_LOG").is_ok_and(|v| v == "debug") {
        eprintln!("[recmaml cuda] {msg}");
    }
}

// SAFETY: TaskDesc is a POD of u32s; all-zero bits are a valid value.
unsafe impl cudarc::driver::ValidAsZeroBits for TaskDesc {}

/// The kernels of the meta-iteration, looked up once.
struct Kernels {
    transpose_out: CudaFunction,
    task_forward: CudaFunction,
    task_backward: CudaFunction,
    meta_grad: CudaFunction,
    clip: CudaFunction,
    adam: CudaFunction,
}

/// Device buffers of the current meta-batch, grown as needed and reused.
struct BatchBufs {
    ints: CudaSlice<u32>,
    floats: CudaSlice<f32>,
    descs: CudaSlice<TaskDesc>,
    ws: CudaSlice<f32>,
    task_loss: CudaSlice<f32>,
    eval_logits: CudaSlice<f32>,
    eval_loss: CudaSlice<f32>,
}

/// The CUDA backend: θ, the meta-gradient and Adam's moments live on the device.
pub struct Cuda {
    layout: ParamLayout,
    dims: Dims,
    stream: Arc<CudaStream>,
    k: Kernels,
    theta: CudaSlice<f32>,
    /// θ's output.weight transposed [H, V] (written by transpose_out before each task launch).
    w_out_t: CudaSlice<f32>,
    grad: CudaSlice<f32>,
    m: CudaSlice<f32>,
    v: CudaSlice<f32>,
    partials: CudaSlice<f64>,
    stats: CudaSlice<f64>,
    step: u64,
    bufs: BatchBufs,
    device: String,
    /// Threads per block (`RM_BLOCK` the kernels were compiled with).
    block: u32,
    /// CUDA events around the device work of a meta-step, and the last step's time between them.
    events: (CudaEvent, CudaEvent),
    last_ms: Option<f64>,
    /// Fill every output and workspace buffer with NaN before each launch (checks).
    poison: bool,
    /// Keep w_hh in shared memory during the recurrence when it fits (`RECMAML_CUDA_SMEM_WHH=0`
    /// turns this off); the device's opt-in shared-memory limit per block, and the limit the task
    /// kernels are currently set to.
    smem_whh: bool,
    smem_optin: usize,
    smem_set: usize,
    /// The loaded program (for the phase counters of RECMAML_CUDA_PROFILE=1).
    module: Arc<CudaModule>,
}

impl std::fmt::Debug for Cuda {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cuda")
            .field("device", &self.device)
            .field("step", &self.step)
            .finish()
    }
}

/// Whether a CUDA driver and at least one device are present (never panics).
pub fn device_available() -> bool {
    // SAFETY: only tries to dlopen candidate library names.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return false;
    }
    std::panic::catch_unwind(|| {
        cudarc::driver::result::init().is_ok() && CudaContext::device_count().is_ok_and(|n| n > 0)
    })
    .unwrap_or(false)
}

/// Grows `buf` to hold `data` and copies it in.
fn upload<T: DeviceRepr + cudarc::driver::ValidAsZeroBits>(
    stream: &Arc<CudaStream>,
    buf: &mut CudaSlice<T>,
    data: &[T],
) -> Result<()> {
    if buf.len() < data.len() {
        *buf = stream
            .alloc_zeros::<T>(data.len())
            .map_err(drv("allocating a batch buffer"))?;
    }
    if !data.is_empty() {
        stream
            .memcpy_htod(data, &mut buf.slice_mut(..data.len()))
            .map_err(drv("copying a batch to the device"))?;
    }
    Ok(())
}

/// Grows `buf` to at least `n` elements (contents undefined).
fn reserve<T: DeviceRepr + cudarc::driver::ValidAsZeroBits>(
    stream: &Arc<CudaStream>,
    buf: &mut CudaSlice<T>,
    n: usize,
) -> Result<()> {
    if buf.len() < n {
        *buf = stream
            .alloc_zeros::<T>(n)
            .map_err(drv("allocating a workspace"))?;
    }
    Ok(())
}

fn grid(n: usize, cap: u32, block: u32) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (params::grid_blocks(n, cap, block), 1, 1),
        block_dim: (block, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// Overwrites the first `n` elements of `buf` with NaN (all bits set).
fn fill_nan(stream: &Arc<CudaStream>, buf: &mut CudaSlice<f32>, n: usize) -> Result<()> {
    let n = n.min(buf.len());
    if n > 0 {
        stream
            .memcpy_htod(&vec![f32::from_bits(u32::MAX); n], &mut buf.slice_mut(..n))
            .map_err(drv("poisoning a buffer"))?;
    }
    Ok(())
}

impl Cuda {
    /// A CUDA backend on device 0 holding `theta` (length P), Adam's state at zero. Without a
    /// driver, a device or NVRTC this is an [`Error::Backend`] saying which.
    pub fn new(layout: ParamLayout, theta: Vec<f32>) -> Result<Self> {
        if theta.len() != layout.len {
            return Err(Error::Shape(format!(
                "parameters: {} values given, the model needs {}",
                theta.len(),
                layout.len
            )));
        }
        // SAFETY: only tries to dlopen candidate library names.
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            return Err(err(
                "no CUDA driver (libcuda.so) found on this machine; use run.backend = \"cpu\"",
            ));
        }
        if !kernels::nvrtc_available() {
            return Err(err(
                "NVRTC (libnvrtc.so) was not found: put the CUDA toolkit's (or the nvidia-cuda-nvrtc \
                 wheel's) library folder on LD_LIBRARY_PATH, or use run.backend = \"cpu\"",
            ));
        }
        // cudarc panics on a missing driver symbol (a driver older than the bindings): turn
        // that into an error too.
        std::panic::catch_unwind(move || Self::init(layout, theta)).unwrap_or_else(|_| {
            Err(err(
                "the CUDA driver is missing a required function (too old?)",
            ))
        })
    }

    fn init(layout: ParamLayout, theta: Vec<f32>) -> Result<Self> {
        let n = CudaContext::device_count().map_err(drv("counting CUDA devices"))?;
        if n < 1 {
            return Err(err("a CUDA driver is installed but no device was found"));
        }
        let ctx = CudaContext::new(0).map_err(drv("creating a context on device 0"))?;
        let device = ctx.name().unwrap_or_else(|_| "unknown".into());
        let (major, minor) = ctx
            .compute_capability()
            .map_err(drv("reading the compute capability"))?;
        let arch = format!("compute_{major}{minor}");
        let smem_optin = ctx
            .attribute(
                cudarc::driver::sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN,
            )
            .map_err(drv("reading the shared-memory limit"))?
            .max(DEFAULT_SHARED as i32) as usize;
        let block = kernels::block_size()?;
        let t0 = Instant::now();
        let (ptx, fresh) = kernels::compile_ptx_once(&arch, block)?;
        let (nv_major, nv_minor) = kernels::nvrtc_version()?;
        let mut drv_version = 0;
        // SAFETY: the driver is loaded and initialised (a context exists); valid out-pointer.
        unsafe { cudarc::driver::sys::cuDriverGetVersion(&mut drv_version) };
        debug(&format!(
            "{} {} kernels{} for {arch} on {device} in {:.0} ms (NVRTC {nv_major}.{nv_minor}, driver API {drv_version}, options {:?})",
            if fresh { "compiled" } else { "reused this process's PTX of" },
            kernels::ENTRY_POINTS.len(),
            kernels::kernel_dir().map_or(String::new(), |d| format!(" from {}", d.display())),
            t0.elapsed().as_secs_f64() * 1e3,
            kernels::compile_options(&arch, block)
        ));
        let module = ctx.load_module(ptx).map_err(|e| {
            err(format!(
                "loading the PTX on {device} ({arch}): {e:?}; CUDA_ERROR_UNSUPPORTED_PTX_VERSION \
                 means NVRTC {nv_major}.{nv_minor} is newer than the driver ({drv_version}): use the NVRTC that matches the driver"
            ))
        })?;
        let f = |name: &str| {
            module
                .load_function(name)
                .map_err(|e| err(format!("kernel `{name}`: {e:?}")))
        };
        let k = Kernels {
            transpose_out: f("transpose_out")?,
            task_forward: f("task_forward")?,
            task_backward: f("task_backward")?,
            meta_grad: f("meta_grad_forward")?,
            clip: f("clip_forward")?,
            adam: f("adam_forward")?,
        };
        // SAFETY: one stream does all the work, so no cross-stream synchronisation is needed.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.default_stream();
        let timing = Some(cudarc::driver::sys::CUevent_flags::CU_EVENT_DEFAULT);
        let events = (
            ctx.new_event(timing).map_err(drv("creating an event"))?,
            ctx.new_event(timing).map_err(drv("creating an event"))?,
        );
        let p = layout.len;
        let n_out = layout.dims.n_items * layout.dims.hidden_dim;
        let z32 = |n: usize| {
            stream
                .alloc_zeros::<f32>(n.max(1))
                .map_err(drv("allocating"))
        };
        let bufs = BatchBufs {
            ints: stream.alloc_zeros::<u32>(1).map_err(drv("allocating"))?,
            floats: z32(1)?,
            descs: stream
                .alloc_zeros::<TaskDesc>(1)
                .map_err(drv("allocating"))?,
            ws: z32(1)?,
            task_loss: z32(1)?,
            eval_logits: z32(1)?,
            eval_loss: z32(1)?,
        };
        let theta_d = stream.clone_htod(&theta).map_err(drv("copying θ"))?;
        Ok(Cuda {
            dims: Dims::of(&layout),
            layout,
            k,
            theta: theta_d,
            w_out_t: z32(n_out)?,
            grad: z32(p)?,
            m: z32(p)?,
            v: z32(p)?,
            partials: stream
                .alloc_zeros::<f64>(NORM_BLOCKS as usize)
                .map_err(drv("allocating"))?,
            stats: stream.alloc_zeros::<f64>(2).map_err(drv("allocating"))?,
            step: 0,
            bufs,
            device,
            block,
            events,
            last_ms: None,
            poison: false,
            smem_whh: std::env::var("RECMAML_CUDA_SMEM_WHH").map_or(true, |v| v != "0"),
            smem_optin,
            smem_set: DEFAULT_SHARED,
            module,
            stream,
        })
    }

    /// With `on`, every output and workspace buffer is filled with NaN before each launch, so an
    /// element the kernels fail to write shows up as NaN in the results (`recmaml gpu-check`).
    pub fn set_poison(&mut self, on: bool) {
        self.poison = on;
    }

    /// Task `i`'s adapted weights as a dense flat vector (length P), read back from its
    /// workspace after [`Backend::meta_gradient`] on the same `tasks` and `inner`: the fast GRU
    /// block, embedding rows and output bias, and output.weight as θ's plus the SGD steps'
    /// rank-1 terms. For checks against the CPU engine.
    pub fn adapted_params(&self, tasks: &[Task], inner: &InnerLoop, i: usize) -> Result<Vec<f32>> {
        let b = pack::pack(tasks, &self.dims, inner.steps, self.block)?;
        let stride = b.ws.stride as usize;
        let ws = self
            .stream
            .clone_dtoh(&self.bufs.ws.slice(i * stride..(i + 1) * stride))
            .map_err(drv("reading a workspace"))?;
        Ok(pack::adapted_dense(
            &self.layout,
            &self.dims,
            &b,
            i,
            inner.steps,
            &ws,
            self.params()?,
        ))
    }

    /// The device's name.
    pub fn device_name(&self) -> &str {
        &self.device
    }

    /// Packs and uploads a batch and launches transpose_out (θ's output.weight for the task
    /// kernels); returns the task kernels' parameters and launch shape.
    fn load_batch(
        &mut self,
        tasks: &[Task],
        inner: &InnerLoop,
        over: Option<&[pack::QueryOverride]>,
    ) -> Result<(TaskParams, LaunchConfig, pack::Batch)> {
        if self.dims.h > self.block {
            return Err(Error::Shape(format!(
                "hidden size {} is larger than the CUDA kernels' {} threads per block \
                 (RECMAML_CUDA_BLOCK)",
                self.dims.h, self.block
            )));
        }
        let b = pack::pack_with(tasks, &self.dims, inner.steps, self.block, over)?;
        let h = self.dims.h as usize;
        let (bm, rm) = (b.ws.b_max as usize, b.ws.r_max as usize);
        let plan = params::smem_plan(h, bm, rm, self.block as usize, self.smem_optin, self.smem_whh)
            .ok_or_else(|| {
                Error::Shape(format!(
                    "{bm} sequences per split × H {h} need {} bytes of shared memory per task; this device allows {}",
                    params::smem_bytes(h, bm, rm, 1, 1, false),
                    self.smem_optin
                ))
            })?;
        let shared = plan.bytes;
        if shared > self.smem_set {
            for f in [&self.k.task_forward, &self.k.task_backward] {
                f.set_attribute(
                    cudarc::driver::sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                    shared as i32,
                )
                .map_err(drv("raising the kernels' shared-memory limit"))?;
            }
            self.smem_set = shared;
        }
        let s = &self.stream;
        upload(s, &mut self.bufs.ints, &b.ints)?;
        upload(s, &mut self.bufs.floats, &b.floats)?;
        upload(s, &mut self.bufs.descs, &b.descs)?;
        let ws_len = b.ws.stride as usize * tasks.len();
        reserve(s, &mut self.bufs.ws, ws_len)?;
        reserve(s, &mut self.bufs.task_loss, tasks.len())?;
        if self.poison {
            fill_nan(s, &mut self.bufs.ws, ws_len)?;
            fill_nan(s, &mut self.bufs.task_loss, tasks.len())?;
            fill_nan(s, &mut self.grad, self.layout.len)?;
            s.memcpy_htod(&[f64::NAN; 2], &mut self.stats)
                .map_err(drv("poisoning a buffer"))?;
        }
        let n_out = self.w_out_t.len();
        if self.poison {
            fill_nan(s, &mut self.w_out_t, n_out)?;
        }
        let mut l = self.stream.launch_builder(&self.k.transpose_out);
        l.arg(&self.dims).arg(&self.theta).arg(&mut self.w_out_t);
        // SAFETY: matches transpose_out in output_ce.cu; w_out_t holds V * H floats.
        unsafe { l.launch(grid(n_out, 1024, self.block)) }
            .map_err(drv("launching transpose_out"))?;
        let params = TaskParams::new(self.dims, &b, tasks.len(), inner, &plan);
        let cfg = LaunchConfig {
            grid_dim: (tasks.len() as u32, 1, 1),
            block_dim: (self.block, 1, 1),
            shared_mem_bytes: shared.max(4) as u32,
        };
        Ok((params, cfg, b))
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
        let (params, cfg, b) = self.load_batch(tasks, inner, over)?;
        let bf = &mut self.bufs;
        let mut l = self.stream.launch_builder(&self.k.task_backward);
        l.arg(&params)
            .arg(&self.theta)
            .arg(&self.w_out_t)
            .arg(&bf.ints)
            .arg(&bf.descs)
            .arg(&bf.floats)
            .arg(&mut bf.ws)
            .arg(&mut bf.task_loss);
        // SAFETY: argument types and order match task_backward in task.cu; buffers are sized by pack().
        unsafe { l.launch(cfg) }.map_err(drv("launching task_backward"))?;
        let rp = ReduceParams::new(&params, b.item_csr, over.is_some());
        let mut l = self.stream.launch_builder(&self.k.meta_grad);
        l.arg(&rp)
            .arg(&bf.ints)
            .arg(&bf.descs)
            .arg(&bf.ws)
            .arg(&bf.task_loss)
            .arg(&mut self.grad)
            .arg(&mut self.stats);
        // SAFETY: matches meta_grad_forward in meta_grad.cu.
        unsafe { l.launch(grid(self.layout.len, 4096, self.block)) }
            .map_err(drv("launching meta_grad_forward"))?;
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
        self.events
            .0
            .record(&self.stream)
            .map_err(drv("recording an event"))?;
        self.launch_meta_gradient(tasks, inner, over)?;
        let ap = AdamParams::for_step(self.step, self.layout.len, outer);
        let cfg = LaunchConfig {
            grid_dim: (NORM_BLOCKS, 1, 1),
            block_dim: (self.block, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut l = self.stream.launch_builder(&self.k.clip);
        l.arg(&ap).arg(&self.grad).arg(&mut self.partials);
        // SAFETY: matches clip_forward in clip.cu; partials has NORM_BLOCKS elements.
        unsafe { l.launch(cfg) }.map_err(drv("launching clip_forward"))?;
        let mut l = self.stream.launch_builder(&self.k.adam);
        l.arg(&ap)
            .arg(&mut self.theta)
            .arg(&self.grad)
            .arg(&mut self.m)
            .arg(&mut self.v)
            .arg(&self.partials)
            .arg(&mut self.stats);
        // SAFETY: matches adam_forward in adam.cu.
        unsafe { l.launch(grid(self.layout.len, 4096, self.block)) }
            .map_err(drv("launching adam_forward"))?;
        self.events
            .1
            .record(&self.stream)
            .map_err(drv("recording an event"))?;
        let stats = self
            .stream
            .clone_dtoh(&self.stats)
            .map_err(drv("reading the step's statistics"))?;
        self.last_ms = Some(
            self.events
                .0
                .elapsed_ms(&self.events.1)
                .map_err(drv("reading the step's device time"))? as f64,
        );
        let (meta_loss, grad_norm) = (stats[0], stats[1]);
        if meta_loss.is_finite() && grad_norm.is_finite() {
            self.step += 1;
        }
        Ok(MetaStepStats {
            meta_loss,
            grad_norm,
        })
    }

    /// One pretraining step of the global model: `chunks` are tasks whose query split is a chunk
    /// of the batch (their support splits are not used: no inner step), `over` gives each chunk's
    /// per-pair loss weights (1 / batch size) and dropout mask on the final hidden states. θ takes
    /// one Adam step (`outer`) on the gradient of Σ w · CE. Returns that loss.
    pub fn pretrain_step(
        &mut self,
        chunks: &[Task],
        over: &[pack::QueryOverride],
        outer: &OuterConfig,
    ) -> Result<f64> {
        let none = InnerLoop { lr: 0.0, steps: 0 };
        let st = self.step_with(chunks, &none, outer, Some(over))?;
        // meta_grad_forward reports the mean of the tasks' losses; each is already weighted.
        Ok(st.meta_loss * chunks.len() as f64)
    }
}

impl Backend for Cuda {
    fn name(&self) -> &'static str {
        "cuda"
    }

    fn layout(&self) -> &ParamLayout {
        &self.layout
    }

    fn set_params(&mut self, theta: &[f32]) -> Result<()> {
        if theta.len() != self.layout.len {
            return Err(Error::Shape(format!(
                "parameters: {} values given, the model needs {}",
                theta.len(),
                self.layout.len
            )));
        }
        self.stream
            .memcpy_htod(theta, &mut self.theta)
            .map_err(drv("copying θ"))
    }

    fn params(&self) -> Result<Vec<f32>> {
        self.stream
            .clone_dtoh(&self.theta)
            .map_err(drv("reading θ"))
    }

    fn set_adam(&mut self, state: &AdamState) -> Result<()> {
        state.check_len(self.layout.len)?;
        self.stream
            .memcpy_htod(&state.m, &mut self.m)
            .map_err(drv("copying Adam's m"))?;
        self.stream
            .memcpy_htod(&state.v, &mut self.v)
            .map_err(drv("copying Adam's v"))?;
        self.step = state.step;
        Ok(())
    }

    fn adam(&self) -> Result<AdamState> {
        Ok(AdamState {
            step: self.step,
            m: self
                .stream
                .clone_dtoh(&self.m)
                .map_err(drv("reading Adam's m"))?,
            v: self
                .stream
                .clone_dtoh(&self.v)
                .map_err(drv("reading Adam's v"))?,
        })
    }

    fn meta_gradient(
        &mut self,
        tasks: &[Task],
        inner: &InnerLoop,
        grad: &mut [f32],
    ) -> Result<f64> {
        if grad.len() != self.layout.len {
            return Err(Error::Shape(format!(
                "gradient buffer: {} values given, the model needs {}",
                grad.len(),
                self.layout.len
            )));
        }
        self.launch_meta_gradient(tasks, inner, None)?;
        self.stream
            .memcpy_dtoh(&self.grad, grad)
            .map_err(drv("reading the meta-gradient"))?;
        let stats = self
            .stream
            .clone_dtoh(&self.stats)
            .map_err(drv("reading the meta-loss"))?;
        Ok(stats[0])
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

    fn reset_profile(&mut self) -> Result<()> {
        if !kernels::profiling() {
            return Ok(());
        }
        let mut g = self
            .module
            .get_global("rm_prof", &self.stream)
            .map_err(drv("finding the phase counters"))?;
        let n = g.len();
        self.stream
            .memcpy_htod(&vec![0u8; n], &mut g)
            .map_err(drv("clearing the phase counters"))
    }

    fn profile(&self) -> Result<Option<Vec<Vec<u64>>>> {
        if !kernels::profiling() {
            return Ok(None);
        }
        let g = self
            .module
            .get_global("rm_prof", &self.stream)
            .map_err(drv("finding the phase counters"))?;
        let bytes = self
            .stream
            .clone_dtoh(&g)
            .map_err(drv("reading the phase counters"))?;
        let n = kernels::PROFILE_PHASES.len();
        Ok(Some(
            bytes
                .chunks_exact(8 * n)
                .map(|task| {
                    task.chunks_exact(8)
                        .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
                        .collect()
                })
                .collect(),
        ))
    }

    fn evaluate(&mut self, tasks: &[Task], inner: &InnerLoop) -> Result<Vec<TaskEval>> {
        let (params, cfg, b) = self.load_batch(tasks, inner, None)?;
        let (n, v, q_max) = (tasks.len(), self.dims.v as usize, b.q_max as usize);
        let bf = &mut self.bufs;
        reserve(&self.stream, &mut bf.eval_logits, n * 2 * q_max * v)?;
        reserve(&self.stream, &mut bf.eval_loss, 2 * n)?;
        if self.poison {
            fill_nan(&self.stream, &mut bf.eval_logits, n * 2 * q_max * v)?;
            fill_nan(&self.stream, &mut bf.eval_loss, 2 * n)?;
        }
        let mut l = self.stream.launch_builder(&self.k.task_forward);
        l.arg(&params)
            .arg(&self.theta)
            .arg(&self.w_out_t)
            .arg(&bf.ints)
            .arg(&bf.descs)
            .arg(&bf.floats)
            .arg(&mut bf.ws)
            .arg(&mut bf.eval_logits)
            .arg(&mut bf.eval_loss);
        // SAFETY: matches task_forward in task.cu; the outputs are sized above.
        unsafe { l.launch(cfg) }.map_err(drv("launching task_forward"))?;
        let logits = self
            .stream
            .clone_dtoh(&bf.eval_logits.slice(..n * 2 * q_max * v))
            .map_err(drv("reading logits"))?;
        let losses = self
            .stream
            .clone_dtoh(&bf.eval_loss.slice(..2 * n))
            .map_err(drv("reading losses"))?;
        Ok(pack::task_evals(tasks, &logits, &losses, q_max, v))
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
