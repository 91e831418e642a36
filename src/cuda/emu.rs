//! Tests only: the CUDA kernels run on the CPU, so their logic is checked against the CPU engine
//! on machines without a GPU (CI among them).
//!
//! The kernel program, exactly as NVRTC gets it ([`kernels::program_source`]), is compiled by the
//! host C++ compiler (`$CXX`, else `g++`) together with `emu_runtime.h`, an emulator of the CUDA
//! execution model (threads as fibers that switch at barriers and warp shuffles; a barrier that
//! can never complete is an error), and `emu_launch.cpp` (one entry point taking
//! cuLaunchKernel-style arguments). [`Engine`] then drives the same launches as the CUDA backend
//! (same packing, parameters and grid sizes, from `pack` and `params`) on host buffers.
//!
//! What this shows: the kernels compute the CPU engine's function for every path the test
//! shapes reach, under one barrier-respecting schedule. What it cannot: speed, memory ordering
//! and races between threads (compute-sanitizer on a GPU), the device's libm.

use super::abi::{self as params, AdamParams, Dims, ReduceParams, TaskParams, NORM_BLOCKS};
use super::pack;
use super::program as kernels;
use crate::backend::{InnerLoop, OuterConfig, Task, TaskEval};
use crate::model::ParamLayout;
use std::ffi::{c_char, c_int, c_ulong, c_void, CString};
use std::path::PathBuf;

type LaunchFn = unsafe extern "C" fn(
    *const c_char,
    u32,
    u32,
    u32,
    *mut *mut c_void,
    *mut c_char,
    c_ulong,
) -> c_int;

/// The kernel program compiled for the host, for `block` threads per block.
pub struct Emu {
    lib: libloading::Library,
    _dir: tempfile::TempDir,
    pub block: u32,
}

/// The C++ translation unit: the runtime, the kernel program (RECMAML_KERNEL_DIR's when set) with its shared-memory declarations
/// made host-side (the dynamic array becomes the block's buffer, static ones thread-locals
/// shared by the block's fibers), then the launcher.
pub fn source(block: u32) -> Result<String, String> {
    let program = kernels::run_program_source()
        .map_err(|e| e.to_string())?
        .replace(
            "extern __shared__ float sh[];",
            "float* sh = rm_emu_dyn_smem();",
        )
        .replace("__shared__ ", "static thread_local ");
    Ok(format!(
        "#define RM_BLOCK {block}\n#line 1 \"emu_runtime.h\"\n{}\n{program}\n#line 1 \"emu_launch.cpp\"\n{}",
        include_str!("../../tests/emu/runtime.h"),
        include_str!("../../tests/emu/launch.cpp")
    ))
}

impl Emu {
    /// Compiles the program; `Ok(None)` when no C++ compiler can be run (the caller skips).
    pub fn build(block: u32) -> Result<Option<Emu>, String> {
        let cxx = std::env::var("CXX").unwrap_or_else(|_| "g++".into());
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let src = dir.path().join("recmaml_emu.cpp");
        let lib: PathBuf = dir.path().join("librecmaml_emu.so");
        std::fs::write(&src, source(block)?).map_err(|e| e.to_string())?;
        let out = match std::process::Command::new(&cxx)
            .args(["-std=c++17", "-O2", "-shared", "-fPIC", "-w", "-o"])
            .arg(&lib)
            .arg(&src)
            .output()
        {
            Ok(o) => o,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("running {cxx}: {e}")),
        };
        if !out.status.success() {
            return Err(format!(
                "{cxx} failed on the emulated kernels:\n{}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        // SAFETY: a library we just built; its only initialisers are the C++ runtime's.
        let lib = unsafe { libloading::Library::new(&lib) }.map_err(|e| e.to_string())?;
        Ok(Some(Emu {
            lib,
            _dir: dir,
            block,
        }))
    }

    /// Runs kernel `name` on `grid` blocks with `smem` bytes of dynamic shared memory; `args`
    /// point at each argument's value, as for cuLaunchKernel.
    ///
    /// # Safety
    /// `args` must match the kernel's signature and every buffer must be large enough.
    pub unsafe fn launch(
        &self,
        name: &str,
        grid: u32,
        smem: usize,
        args: &mut [*mut c_void],
    ) -> Result<(), String> {
        let f: libloading::Symbol<LaunchFn> = self
            .lib
            .get(b"rm_emu_launch\0")
            .map_err(|e| e.to_string())?;
        let name_c = CString::new(name).map_err(|e| e.to_string())?;
        let mut msg = vec![0 as c_char; 1024];
        // One launch at a time in the process: a launch installs its library's fault handler
        // for its own length (emu_launch.cpp), and every Emu is a separate library.
        static LAUNCH: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one = LAUNCH.lock().unwrap_or_else(|e| e.into_inner());
        let rc = f(
            name_c.as_ptr(),
            grid,
            self.block,
            smem as u32,
            args.as_mut_ptr(),
            msg.as_mut_ptr(),
            msg.len() as c_ulong,
        );
        if rc == 0 {
            Ok(())
        } else {
            let bytes: Vec<u8> = msg
                .iter()
                .take_while(|&&c| c != 0)
                .map(|&c| c as u8)
                .collect();
            Err(String::from_utf8_lossy(&bytes).into_owned())
        }
    }
}

impl Emu {
    /// Runs each block's threads in reverse index order between barriers (`true`) or in order:
    /// a kernel without races gives the same bytes either way. Applies to the calling thread.
    pub fn set_reverse(&self, reverse: bool) -> Result<(), String> {
        // SAFETY: rm_emu_order(int) in emu_launch.cpp.
        let f: libloading::Symbol<unsafe extern "C" fn(c_int)> =
            unsafe { self.lib.get(b"rm_emu_order\0").map_err(|e| e.to_string())? };
        // SAFETY: sets a thread-local flag.
        unsafe { f(c_int::from(reverse)) };
        Ok(())
    }
}

/// A pointer to a value, as a kernel argument.
fn a<T>(x: &mut T) -> *mut c_void {
    x as *mut T as *mut c_void
}

/// The CUDA backend's launch sequence on emulated kernels, with host buffers. Every buffer the
/// kernels write is filled with NaN before each launch, as in `recmaml gpu-check`.
pub struct Engine {
    pub emu: Emu,
    layout: ParamLayout,
    dims: Dims,
    pub theta: Vec<f32>,
    m: Vec<f32>,
    v: Vec<f32>,
    step: u64,
    /// Shared-memory limit for the plan (the H100's opt-in limit by default) and whether w_hh
    /// may sit in shared memory.
    pub smem_limit: usize,
    pub smem_whh: bool,
    /// The last task launch's workspaces (for [`Engine::adapted`]).
    ws: Vec<f32>,
}

/// Pretraining on the emulated kernels (`pretrain::fit_chunked`), as `Cuda` does on a GPU.
impl crate::pretrain::ChunkStepper for Engine {
    fn pretrain_step(
        &mut self,
        chunks: &[Task],
        over: &[pack::QueryOverride],
        outer: &OuterConfig,
    ) -> crate::error::Result<f64> {
        let none = InnerLoop { lr: 0.0, steps: 0 };
        let (loss, _) = self
            .step_with(chunks, &none, outer, Some(over))
            .map_err(crate::error::Error::Other)?;
        // meta_grad_forward reports the mean of the tasks' losses; each is already weighted.
        Ok(loss * chunks.len() as f64)
    }
    fn params(&self) -> crate::error::Result<Vec<f32>> {
        Ok(self.theta.clone())
    }
}

/// A packed batch ready for the task kernels ([`Engine::load`]): their parameters, shared
/// memory, the batch and θ's output.weight transposed.
struct Loaded {
    tp: TaskParams,
    smem: usize,
    b: pack::Batch,
    w_out_t: Vec<f32>,
}

/// The outputs of [`Engine::meta_gradient`].
pub struct MetaGrad {
    pub grad: Vec<f32>,
    pub loss: f64,
}

impl Engine {
    pub fn new(emu: Emu, layout: ParamLayout, theta: Vec<f32>) -> Self {
        let p = layout.len;
        Engine {
            emu,
            dims: Dims::of(&layout),
            layout,
            theta,
            m: vec![0.0; p],
            v: vec![0.0; p],
            step: 0,
            smem_limit: 227 * 1024,
            smem_whh: true,
            ws: Vec::new(),
        }
    }

    /// θ and the Adam state.
    pub fn state(&self) -> super::check::State {
        super::check::State {
            theta: self.theta.clone(),
            adam: crate::backend::AdamState {
                step: self.step,
                m: self.m.clone(),
                v: self.v.clone(),
            },
        }
    }

    fn nan(n: usize) -> Vec<f32> {
        vec![f32::from_bits(u32::MAX); n.max(1)]
    }

    /// Packs the batch, runs transpose_out.
    fn load(
        &mut self,
        tasks: &[Task],
        inner: &InnerLoop,
        over: Option<&[pack::QueryOverride]>,
    ) -> Result<Loaded, String> {
        let block = self.emu.block;
        let b = pack::pack_with(tasks, &self.dims, inner.steps, block, over)
            .map_err(|e| e.to_string())?;
        let plan = params::smem_plan(
            self.dims.h as usize,
            b.ws.b_max as usize,
            b.ws.r_max as usize,
            block as usize,
            self.smem_limit,
            self.smem_whh,
        )
        .ok_or("no shared-memory plan fits")?;
        let n_out = (self.dims.v * self.dims.h) as usize;
        let mut w_out_t = Self::nan(n_out);
        let (mut d, mut th, mut wt) = (self.dims, self.theta.as_ptr(), w_out_t.as_mut_ptr());
        let g = params::grid_blocks(n_out, 1024, block);
        // SAFETY: transpose_out(Dims, const float*, float*); w_out_t holds V * H floats.
        unsafe {
            self.emu.launch(
                "transpose_out",
                g,
                0,
                &mut [a(&mut d), a(&mut th), a(&mut wt)],
            )?
        };
        Ok(Loaded {
            tp: TaskParams::new(self.dims, &b, tasks.len(), inner, &plan),
            smem: plan.bytes,
            b,
            w_out_t,
        })
    }

    /// The meta-gradient (task_backward, meta_grad_forward) and the meta-loss.
    pub fn meta_gradient(&mut self, tasks: &[Task], inner: &InnerLoop) -> Result<MetaGrad, String> {
        self.meta_gradient_with(tasks, inner, None)
    }

    /// [`Engine::meta_gradient`] with the query splits' weights and dropout masks replaced by
    /// `over` and the task gradients summed (pretraining), as in the CUDA backend.
    pub fn meta_gradient_with(
        &mut self,
        tasks: &[Task],
        inner: &InnerLoop,
        over: Option<&[pack::QueryOverride]>,
    ) -> Result<MetaGrad, String> {
        let l = self.load(tasks, inner, over)?;
        let b = &l.b;
        let n = tasks.len();
        let mut ws = Self::nan(b.ws.stride as usize * n);
        let mut task_loss = Self::nan(n);
        self.launch_task("task_backward", &l, &mut ws, [task_loss.as_mut_ptr()])?;
        let p = self.layout.len;
        let mut grad = Self::nan(p);
        let mut stats = [f64::NAN; 2];
        let mut rp = ReduceParams::new(&l.tp, b.item_csr, over.is_some());
        let (mut ints, mut descs) = (b.ints.as_ptr(), b.descs.as_ptr());
        let (mut wsc, mut tlc) = (ws.as_ptr(), task_loss.as_ptr());
        let (mut gp, mut sp) = (grad.as_mut_ptr(), stats.as_mut_ptr());
        // SAFETY: meta_grad_forward's signature (meta_grad.cu).
        unsafe {
            self.emu.launch(
                "meta_grad_forward",
                params::grid_blocks(p, 4096, self.emu.block),
                0,
                &mut [
                    a(&mut rp),
                    a(&mut ints),
                    a(&mut descs),
                    a(&mut wsc),
                    a(&mut tlc),
                    a(&mut gp),
                    a(&mut sp),
                ],
            )?
        };
        self.ws = ws;
        Ok(MetaGrad {
            grad,
            loss: stats[0],
        })
    }

    /// Task `i`'s adapted weights after [`Engine::meta_gradient`] on the same tasks.
    pub fn adapted(&self, tasks: &[Task], inner: &InnerLoop, i: usize) -> Result<Vec<f32>, String> {
        let b = pack::pack(tasks, &self.dims, inner.steps, self.emu.block)
            .map_err(|e| e.to_string())?;
        let stride = b.ws.stride as usize;
        let ws = &self.ws[i * stride..(i + 1) * stride];
        Ok(pack::adapted_dense(
            &self.layout,
            &self.dims,
            &b,
            i,
            inner.steps,
            ws,
            self.theta.clone(),
        ))
    }

    /// One meta-step: meta-gradient, clip_forward, adam_forward. Returns the gradient norm.
    pub fn meta_step(
        &mut self,
        tasks: &[Task],
        inner: &InnerLoop,
        outer: &OuterConfig,
    ) -> Result<f64, String> {
        Ok(self.step_with(tasks, inner, outer, None)?.1)
    }

    /// One meta-step with `over` as in [`Engine::meta_gradient_with`]: (meta-loss, gradient norm).
    pub fn step_with(
        &mut self,
        tasks: &[Task],
        inner: &InnerLoop,
        outer: &OuterConfig,
        over: Option<&[pack::QueryOverride]>,
    ) -> Result<(f64, f64), String> {
        let mg = self.meta_gradient_with(tasks, inner, over)?;
        let mut ap = AdamParams::for_step(self.step, self.layout.len, outer);
        let mut partials = vec![f64::NAN; NORM_BLOCKS as usize];
        let mut stats = [mg.loss, f64::NAN];
        let (mut gp, mut pp) = (mg.grad.as_ptr(), partials.as_mut_ptr());
        // SAFETY: clip_forward's signature (clip.cu); NORM_BLOCKS partials.
        unsafe {
            self.emu.launch(
                "clip_forward",
                NORM_BLOCKS,
                0,
                &mut [a(&mut ap), a(&mut gp), a(&mut pp)],
            )?
        };
        let (mut th, mut m, mut v) = (
            self.theta.as_mut_ptr(),
            self.m.as_mut_ptr(),
            self.v.as_mut_ptr(),
        );
        let (mut pc, mut sp) = (partials.as_ptr(), stats.as_mut_ptr());
        // SAFETY: adam_forward's signature (adam.cu).
        unsafe {
            self.emu.launch(
                "adam_forward",
                params::grid_blocks(self.layout.len, 4096, self.emu.block),
                0,
                &mut [
                    a(&mut ap),
                    a(&mut th),
                    a(&mut gp),
                    a(&mut m),
                    a(&mut v),
                    a(&mut pc),
                    a(&mut sp),
                ],
            )?
        };
        if stats[0].is_finite() && stats[1].is_finite() {
            self.step += 1;
        }
        Ok((stats[0], stats[1]))
    }

    /// Zero- and few-shot query logits and losses (task_forward).
    pub fn evaluate(&mut self, tasks: &[Task], inner: &InnerLoop) -> Result<Vec<TaskEval>, String> {
        let l = self.load(tasks, inner, None)?;
        let (n, v, q_max) = (tasks.len(), self.dims.v as usize, l.b.q_max as usize);
        let mut ws = Self::nan(l.b.ws.stride as usize * n);
        let mut logits = Self::nan(n * 2 * q_max * v);
        let mut losses = Self::nan(2 * n);
        let outs = [logits.as_mut_ptr(), losses.as_mut_ptr()];
        self.launch_task("task_forward", &l, &mut ws, outs)?;
        Ok(pack::task_evals(tasks, &logits, &losses, q_max, v))
    }

    /// Launches task_backward or task_forward, one block per task: the seven arguments they
    /// share (parameters, θ, w_out_t, the batch's ints, descriptors and floats, the
    /// workspaces), then `outs`, their output buffers in signature order (task_loss; or
    /// logits and losses).
    fn launch_task<const N: usize>(
        &self,
        name: &str,
        l: &Loaded,
        ws: &mut [f32],
        mut outs: [*mut f32; N],
    ) -> Result<(), String> {
        let (mut tp, b, grid) = (l.tp, &l.b, l.tp.n_tasks);
        let (mut th, mut wt) = (self.theta.as_ptr(), l.w_out_t.as_ptr());
        let (mut ints, mut descs, mut fl) = (b.ints.as_ptr(), b.descs.as_ptr(), b.floats.as_ptr());
        let mut wsp = ws.as_mut_ptr();
        let mut args = vec![
            a(&mut tp),
            a(&mut th),
            a(&mut wt),
            a(&mut ints),
            a(&mut descs),
            a(&mut fl),
            a(&mut wsp),
        ];
        args.extend(outs.iter_mut().map(a));
        // SAFETY: the signatures of task_backward / task_forward (task.cu); the buffers are sized
        // by pack() and the callers.
        unsafe { self.emu.launch(name, grid, l.smem, &mut args) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Backend;
    use crate::cpu::Cpu;
    use crate::cuda::check::{
        clip_schedule, cpu_adapted, linear_weights, norm, part, pretraining_case, rel_diff,
        rel_scalar, same_bits, step_rows, update_diff, State, StepTols, PRETRAIN_TOL, UPDATE_TOL,
    };
    use crate::data::workload::generate_episodes;
    use crate::model::{init_params, ModelDims};

    /// The emulated kernels for `block` threads, or `None` (printed) without a C++ compiler,
    /// which RECMAML_REQUIRE_EMU=1 (CI) turns into a failure.
    fn emu(block: u32) -> Option<Emu> {
        match Emu::build(block) {
            Ok(Some(e)) => Some(e),
            Ok(None) => {
                assert!(
                    std::env::var("RECMAML_REQUIRE_EMU").map_or(true, |v| v != "1"),
                    "RECMAML_REQUIRE_EMU=1 but no C++ compiler ($CXX or g++) could be run"
                );
                eprintln!("skipped: no C++ compiler ($CXX or g++) to build the kernel emulator");
                None
            }
            Err(e) => panic!("{e}"),
        }
    }

    /// Everything `recmaml gpu-check` compares, on the emulated kernels against the CPU engine:
    /// the meta-gradient and meta-loss, the first and last task's adapted weights, two
    /// meta-steps (clip + Adam; the second with the clip scaling, [`clip_schedule`]) by
    /// [`step_rows`], the zero- and few-shot logits; each tensor within 1e-4 relative (L2),
    /// each update within [`UPDATE_TOL`] of the CPU's, unwritten elements (NaN-poisoned),
    /// missing or extra values failing.
    fn check_case(
        block: u32,
        (v, e, h, n, k, q, s): (usize, usize, usize, usize, usize, usize, usize),
        max_len: usize,
        smem_whh: bool,
    ) {
        let Some(emu) = emu(block) else { return };
        let tol = 1e-4;
        let layout = ParamLayout::new(ModelDims {
            n_items: v,
            embed_dim: e,
            hidden_dim: h,
        });
        let seed = (v * 31 + h * 7 + n) as u64;
        let theta = init_params(&layout, seed);
        let eps = generate_episodes(n, k, q, v, max_len, seed);
        let weights = linear_weights(k);
        let tasks: Vec<Task> = eps
            .iter()
            .map(|ep| crate::backend::Task::of(ep, &weights))
            .collect();
        let inner = InnerLoop { lr: 0.05, steps: s };
        let mut cpu = Cpu::new(layout.clone(), theta.clone()).unwrap();
        let mut gpu = Engine::new(emu, layout.clone(), theta.clone());
        gpu.smem_whh = smem_whh;
        let label = format!("block {block}, V {v} E {e} H {h} N {n} K {k} Q {q} S {s}");
        let check = |what: &str, d: Result<(f64, f64), String>, tol: f64| match d {
            Ok((d, dmax)) => assert!(
                d <= tol,
                "{label}: {what} differs by {d:.3e} (max-norm {dmax:.3e}; tolerance {tol:e})"
            ),
            Err(why) => panic!("{label}: {what}: {why}"),
        };
        let close = |what: &str, got: &[f32], want: &[f32]| check(what, rel_diff(got, want), tol);
        let mut g_cpu = vec![0.0f32; layout.len];
        let l_cpu = cpu.meta_gradient(&tasks, &inner, &mut g_cpu).unwrap();
        let mg = gpu.meta_gradient(&tasks, &inner).unwrap();
        check("meta-loss", rel_scalar(mg.loss, l_cpu), tol);
        for t in &layout.tensors {
            close(
                &format!("meta-gradient {}", t.name),
                part(&mg.grad, t),
                part(&g_cpu, t),
            );
        }
        // The same launches with each block's threads in reverse order: the same bytes, or a
        // result depends on the order in which threads reach shared memory (a race).
        let ws_fwd = gpu.ws.clone();
        gpu.emu.set_reverse(true).unwrap();
        let rev = gpu.meta_gradient(&tasks, &inner).unwrap();
        let ev_rev = gpu.evaluate(&tasks, &inner).unwrap();
        gpu.emu.set_reverse(false).unwrap();
        let race = |what: &str, d: Result<(f64, f64), String>| {
            if let Err(why) = d {
                panic!("{label}: {what} depends on the threads' order (a race): {why}");
            }
        };
        race("the meta-gradient", same_bits(&rev.grad, &mg.grad));
        assert_eq!(
            rev.loss.to_bits(),
            mg.loss.to_bits(),
            "{label}: the meta-loss depends on the threads' order (a race)"
        );
        let ev_fwd = gpu.evaluate(&tasks, &inner).unwrap();
        assert_eq!(ev_fwd.len(), n, "{label}: evaluated tasks");
        assert_eq!(ev_rev.len(), n, "{label}: evaluated tasks, reverse order");
        for (i, (x, y)) in ev_fwd.iter().zip(&ev_rev).enumerate() {
            race(
                &format!("task {i}'s few-shot logits"),
                same_bits(&x.few_shot_logits, &y.few_shot_logits),
            );
            race(
                &format!("task {i}'s zero-shot logits"),
                same_bits(&x.zero_shot_logits, &y.zero_shot_logits),
            );
        }
        gpu.ws = ws_fwd;
        for i in [0, n - 1] {
            let phi = gpu.adapted(&tasks, &inner, i).unwrap();
            let want = cpu_adapted(&layout, &theta, &tasks[i], &inner).unwrap();
            for ten in &layout.tensors {
                close(
                    &format!("task {i} adapted {}", ten.name),
                    part(&phi, ten),
                    part(&want, ten),
                );
            }
        }
        let tols = StepTols {
            state: tol,
            update: UPDATE_TOL,
        };
        for (i, step) in clip_schedule(norm(&g_cpu), 1e-3).iter().enumerate() {
            let (cpu0, gpu0) = (State::of(&cpu).unwrap(), gpu.state());
            let a = cpu.meta_step(&tasks, &inner, &step.0).unwrap();
            let b = gpu.meta_step(&tasks, &inner, &step.0).unwrap();
            let (cpu1, gpu1) = (State::of(&cpu).unwrap(), gpu.state());
            for (what, d, tol) in step_rows(
                &layout,
                i + 1,
                (&step.0, step.1),
                (&cpu0, &cpu1, a.grad_norm),
                (&gpu0, &gpu1, b),
                tols,
            ) {
                check(&what, d, tol);
            }
        }
        let (e_cpu, e_gpu) = (
            cpu.evaluate(&tasks, &inner).unwrap(),
            gpu.evaluate(&tasks, &inner).unwrap(),
        );
        assert_eq!(e_gpu.len(), e_cpu.len(), "{label}: evaluated tasks");
        for (i, (a, b)) in e_cpu.iter().zip(&e_gpu).enumerate() {
            close(
                &format!("task {i} zero-shot logits"),
                &b.zero_shot_logits,
                &a.zero_shot_logits,
            );
            close(
                &format!("task {i} few-shot logits"),
                &b.few_shot_logits,
                &a.few_shot_logits,
            );
            check(
                &format!("task {i} few-shot loss"),
                rel_scalar(b.few_shot_loss, a.few_shot_loss),
                tol,
            );
            check(
                &format!("task {i} zero-shot loss"),
                rel_scalar(b.zero_shot_loss, a.zero_shot_loss),
                tol,
            );
        }
    }

    /// Pretraining (query weights 1/batch, dropout masks on the final hidden states, gradients
    /// summed, no inner step) on the emulated kernels against the CPU's `pretrain::fit`, as
    /// `recmaml gpu-check` does on a GPU: per-epoch losses within 1e-4, each tensor's change
    /// over the 2 epochs within [`PRETRAIN_TOL`] of the CPU's change.
    #[test]
    fn emulated_pretraining_matches_cpu() {
        use crate::pretrain::{fit, fit_chunked};
        let Some(emu) = emu(128) else { return };
        let (pairs, layout, settings) = pretraining_case((200, 16, 32), 60, 30, 5);
        let theta = init_params(&layout, 5);
        let (mut t_cpu, mut t_emu) = (theta.clone(), theta.clone());
        let l_cpu = fit(&layout, &mut t_cpu, &pairs, &settings, true).unwrap();
        let mut engine = Engine::new(emu, layout.clone(), theta.clone());
        let l_emu = fit_chunked(&layout, &mut t_emu, &pairs, &settings, true, &mut engine).unwrap();
        assert_eq!(l_emu.len(), l_cpu.len(), "epochs");
        assert_eq!(l_cpu.len(), settings.epochs, "epochs");
        for (a, b) in l_cpu.iter().zip(&l_emu) {
            let d = rel_scalar(b.train_loss, a.train_loss);
            assert!(
                matches!(d, Ok((d, _)) if d <= 1e-4),
                "epoch {}: loss {} vs {} ({d:?})",
                a.epoch,
                b.train_loss,
                a.train_loss
            );
        }
        for t in &layout.tensors {
            let d = update_diff(
                (part(&t_emu, t), part(&theta, t)),
                (part(&t_cpu, t), part(&theta, t)),
            );
            assert!(
                matches!(d, Ok((d, _)) if d <= PRETRAIN_TOL),
                "{}'s change over 2 epochs: {d:?} (tolerance {PRETRAIN_TOL:e})",
                t.name
            );
        }
    }

    /// The guard page behind each block's dynamic shared memory: the task kernels launched
    /// with less shared memory than their plan reserves must fail with an invalid access named
    /// by kernel, block and thread, where a plain buffer would let them read whatever memory
    /// follows. With the plan's own size the same launches succeed. Another emulator library
    /// loaded and unloaded in between must not take over the fault handling.
    #[test]
    fn emulated_shared_memory_overrun_is_reported() {
        let Some(first) = emu(64) else { return };
        let (v, e, h, n, k, q) = (40, 16, 32, 2, 3, 4);
        let layout = ParamLayout::new(ModelDims {
            n_items: v,
            embed_dim: e,
            hidden_dim: h,
        });
        let theta = init_params(&layout, 3);
        let weights = linear_weights(k);
        let eps = generate_episodes(n, k, q, v, 12, 3);
        let tasks: Vec<Task> = eps
            .iter()
            .map(|ep| crate::backend::Task::of(ep, &weights))
            .collect();
        let inner = InnerLoop { lr: 0.05, steps: 2 };
        let mut gpu = Engine::new(first, layout.clone(), theta.clone());
        // Another copy of the emulator library launched and unloaded after this one's first
        // launch: this one's faults must still come back here (once, a handler installed per
        // process pointed at the unloaded copy and the fault ended the test process).
        gpu.meta_gradient(&tasks, &inner).unwrap();
        if let Some(other) = emu(64) {
            Engine::new(other, layout.clone(), theta)
                .meta_gradient(&tasks, &inner)
                .unwrap();
        }
        let mut l = gpu.load(&tasks, &inner, None).unwrap();
        let stride = l.b.ws.stride as usize * n;
        let full = l.smem;
        for name in ["task_backward", "task_forward"] {
            let mut ws = Engine::nan(stride);
            let mut out_a = Engine::nan(n * 2 * l.b.q_max as usize * v);
            let mut out_b = Engine::nan(2 * n);
            let outs = [out_a.as_mut_ptr(), out_b.as_mut_ptr()];
            l.smem = full;
            let run = |l: &Loaded, ws: &mut [f32]| match name {
                "task_backward" => gpu.launch_task(name, l, ws, [outs[1]]),
                _ => gpu.launch_task(name, l, ws, outs),
            };
            run(&l, &mut ws).unwrap_or_else(|e| panic!("{name} with its planned smem: {e}"));
            // Half the plan: the upper regions (w_hh, the states) now lie past the buffer.
            l.smem = full / 2;
            let err = run(&l, &mut ws).expect_err("an overrun of the shared memory went unnoticed");
            assert!(
                err.starts_with(name)
                    && err.contains("invalid memory access")
                    && err.contains(" in block "),
                "{name}: unexpected error {err:?}"
            );
        }
    }

    /// 64 threads: more (sequence, unit) items than threads (the non-prefetched cell path),
    /// one column slice.
    #[test]
    fn emulated_kernels_match_cpu_with_64_threads() {
        check_case(64, (40, 16, 32, 3, 3, 4, 2), 12, true);
    }

    /// The default block at the reference model size (V 1519, E 64, H 64; 5 support and 10
    /// query sequences, two 8-column groups), w_hh in shared memory.
    #[test]
    fn emulated_kernels_match_cpu_reference_shape() {
        check_case(768, (1519, 64, 64, 3, 5, 10, 2), 20, true);
    }

    /// H and E not multiples of 4 (scalar tile and projection paths), w_hh read from global
    /// memory.
    #[test]
    fn emulated_kernels_match_cpu_odd_sizes_global_whh() {
        check_case(96, (57, 6, 10, 2, 4, 3, 2), 9, false);
    }

    /// H 128 with 20 support sequences (three 8-column groups), 384 threads.
    #[test]
    fn emulated_kernels_match_cpu_wide() {
        check_case(384, (300, 32, 128, 2, 20, 5, 1), 15, true);
    }
}
