//! Test support: the CUDA kernels run on the CPU, behind the same [`Device`] interface as a GPU,
//! so the CUDA backend's own host code (`recmaml::cuda::Cuda`: packing, launch order, argument
//! lists, shared-memory plans) is checked against the CPU engine on machines without a GPU.
//!
//! The kernel program, exactly as NVRTC gets it (`program::run_program_source`), is compiled by
//! the host C++ compiler (`$CXX`, else `g++`) together with `runtime.h`, an emulator of the CUDA
//! execution model (threads as fibers that switch at barriers and warp shuffles; a barrier that
//! can never complete, a partial-mask shuffle or an invalid memory access is an error naming
//! the file and line, block and thread), and `launch.cpp` (one entry point taking
//! `cuLaunchKernel`-style arguments). Device memory is host memory.
//!
//! What this shows: the kernels and their host code compute the CPU engine's function for every
//! path the test shapes reach, under one barrier-respecting schedule (and, with
//! [`EmuDevice::set_reverse`], another). What it cannot: speed, memory ordering and races
//! between threads on real hardware (compute-sanitizer on a GPU), the device's libm.
#![allow(dead_code)]

use recmaml::cuda::{program, Device, Kernel, Launch};
use recmaml::error::{Error, Result};
use std::ffi::{c_char, c_int, c_ulong, c_void, CString};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

type LaunchFn = unsafe extern "C" fn(
    *const c_char,
    u32,
    u32,
    u32,
    *mut *mut c_void,
    *mut c_char,
    c_ulong,
) -> c_int;

fn emu_err(msg: impl Into<String>) -> Error {
    Error::Backend {
        backend: "emulator".into(),
        msg: msg.into(),
    }
}

/// The C++ translation unit for `block` threads per block: the runtime, the kernel program
/// (`RECMAML_KERNEL_DIR`'s when set) with its shared-memory declarations made host-side (the
/// dynamic array becomes the block's buffer, static ones thread-locals shared by the block's
/// fibers), then the launcher.
pub fn source(block: u32) -> Result<String> {
    source_of(block, &program::run_program_source()?)
}

/// [`source`] for the kernel program `program` (e.g. a variant's, from
/// `program::program_source_from`).
pub fn source_of(block: u32, program: &str) -> Result<String> {
    let program = program
        .replace(
            "extern __shared__ float sh[];",
            "float* sh = rm_emu_dyn_smem();",
        )
        .replace("__shared__ ", "static thread_local ");
    Ok(format!(
        "#define RM_BLOCK {block}\n#line 1 \"runtime.h\"\n{}\n{program}\n#line 1 \"launch.cpp\"\n{}",
        include_str!("runtime.h"),
        include_str!("launch.cpp")
    ))
}

/// Device memory of the emulator: host memory, 8-byte aligned, counted while it lives.
pub struct EmuMem {
    words: Vec<u64>,
    live: Arc<AtomicUsize>,
}

impl Drop for EmuMem {
    fn drop(&mut self) {
        self.live.fetch_sub(self.words.len() * 8, Ordering::Relaxed);
    }
}

/// The kernel program compiled for the host, as a [`Device`].
pub struct EmuDevice {
    lib: libloading::Library,
    _dir: tempfile::TempDir,
    block: u32,
    arch: u32,
    smem_limit: usize,
    /// Task-kernel launches get this fraction of the shared memory the host code asks for
    /// (1.0 normally; less to check that an overrun is caught).
    smem_scale: f64,
    /// Bytes of device memory alive now, and the most alive at once.
    live: Arc<AtomicUsize>,
    peak: usize,
}

impl EmuDevice {
    /// Compiles the program for `block` threads per block; `Ok(None)` when no C++ compiler can
    /// be run (the caller skips). Shared memory is limited to the H100's 227 KB per block.
    pub fn build(block: u32) -> Result<Option<EmuDevice>> {
        Self::build_from(block, &source(block)?)
    }

    /// [`EmuDevice::build`] from the translation unit `unit` ([`source_of`]).
    pub fn build_from(block: u32, unit: &str) -> Result<Option<EmuDevice>> {
        let cxx = std::env::var("CXX").unwrap_or_else(|_| "g++".into());
        let dir = tempfile::tempdir().map_err(|e| emu_err(e.to_string()))?;
        let src = dir.path().join("recmaml_emu.cpp");
        let lib: PathBuf = dir.path().join("librecmaml_emu.so");
        std::fs::write(&src, unit).map_err(|e| emu_err(e.to_string()))?;
        let out = match std::process::Command::new(&cxx)
            .args(["-std=c++17", "-O2", "-shared", "-fPIC", "-w", "-o"])
            .arg(&lib)
            .arg(&src)
            .output()
        {
            Ok(o) => o,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(emu_err(format!("running {cxx}: {e}"))),
        };
        if !out.status.success() {
            return Err(emu_err(format!(
                "{cxx} failed on the emulated kernels:\n{}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        // SAFETY: a library we just built; its only initialisers are the C++ runtime's.
        let lib = unsafe { libloading::Library::new(&lib) }.map_err(|e| emu_err(e.to_string()))?;
        Ok(Some(EmuDevice {
            lib,
            _dir: dir,
            block,
            arch: 90,
            smem_limit: 227 * 1024,
            smem_scale: 1.0,
            live: Arc::new(AtomicUsize::new(0)),
            peak: 0,
        }))
    }

    /// Runs each block's threads in reverse index order between barriers (`true`) or in order:
    /// a kernel without races gives the same bytes either way. Applies to the calling thread.
    pub fn set_reverse(&self, reverse: bool) -> Result<()> {
        // SAFETY: rm_emu_order(int) in launch.cpp sets a thread-local flag.
        unsafe {
            let f: libloading::Symbol<unsafe extern "C" fn(c_int)> = self
                .lib
                .get(b"rm_emu_order\0")
                .map_err(|e| emu_err(e.to_string()))?;
            f(c_int::from(reverse));
        }
        Ok(())
    }

    /// A short name for messages.
    pub fn name_short(&self) -> String {
        format!("emulator, {} threads", self.block)
    }

    /// Plans the launches as for architecture `cc` (its shared-memory limit).
    pub fn set_arch(&mut self, cc: u32) {
        let l = recmaml::cuda::plan::DeviceLimits::of_arch(cc).expect("a supported architecture");
        self.arch = cc;
        self.smem_limit = l.smem_per_block;
    }

    /// The shared-memory limit per block that the host code plans against.
    pub fn set_smem_limit(&mut self, bytes: usize) {
        self.smem_limit = bytes;
    }

    /// The most device memory (bytes) alive at once since the device was built.
    pub fn peak_bytes(&self) -> usize {
        self.peak
    }

    /// Gives the task kernels `scale` times the shared memory they are launched with.
    pub fn set_smem_scale(&mut self, scale: f64) {
        self.smem_scale = scale;
    }
}

impl Device for EmuDevice {
    type Mem = EmuMem;

    fn name(&self) -> String {
        format!("emulator ({} threads per block)", self.block)
    }

    fn block(&self) -> u32 {
        self.block
    }

    fn smem_limit(&self) -> usize {
        self.smem_limit
    }

    fn arch(&self) -> u32 {
        self.arch
    }

    fn alloc(&mut self, bytes: usize) -> Result<EmuMem> {
        let words = vec![u64::MAX; bytes.div_ceil(8).max(1)];
        let live = self.live.fetch_add(words.len() * 8, Ordering::Relaxed) + words.len() * 8;
        self.peak = self.peak.max(live);
        Ok(EmuMem {
            words,
            live: Arc::clone(&self.live),
        })
    }

    fn addr(&self, mem: &EmuMem) -> u64 {
        mem.words.as_ptr() as u64
    }

    fn write(&mut self, mem: &mut EmuMem, offset: usize, src: &[u8]) -> Result<()> {
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut mem.words);
        bytes[offset..offset + src.len()].copy_from_slice(src);
        Ok(())
    }

    fn read(&self, mem: &EmuMem, offset: usize, dst: &mut [u8]) -> Result<()> {
        let bytes: &[u8] = bytemuck::cast_slice(&mem.words);
        dst.copy_from_slice(&bytes[offset..offset + dst.len()]);
        Ok(())
    }

    fn set_smem(&mut self, _kernel: Kernel, bytes: usize) -> Result<()> {
        if bytes > self.smem_limit {
            return Err(emu_err(format!(
                "{bytes} bytes of shared memory asked for, the limit is {}",
                self.smem_limit
            )));
        }
        Ok(())
    }

    unsafe fn launch(
        &mut self,
        kernel: Kernel,
        shape: Launch,
        args: &mut [*mut c_void],
    ) -> Result<()> {
        if shape.block != self.block {
            return Err(emu_err(format!(
                "{} launched with {} threads per block, the program was built for {}",
                kernel.name(),
                shape.block,
                self.block
            )));
        }
        let smem = match kernel {
            Kernel::TaskForward | Kernel::TaskBackward => {
                (shape.smem as f64 * self.smem_scale) as u32
            }
            _ => shape.smem,
        };
        let name = CString::new(kernel.name()).map_err(|e| emu_err(e.to_string()))?;
        let mut msg = vec![0 as c_char; 1024];
        // One launch at a time in the process: a launch installs its library's fault handler
        // for its own length (launch.cpp), and every EmuDevice is a separate library.
        static LAUNCH: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one = LAUNCH.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: rm_emu_launch's signature (launch.cpp); the caller guarantees that `args`
        // matches the kernel.
        let rc = unsafe {
            let f: libloading::Symbol<LaunchFn> = self
                .lib
                .get(b"rm_emu_launch\0")
                .map_err(|e| emu_err(e.to_string()))?;
            f(
                name.as_ptr(),
                shape.grid,
                shape.block,
                smem,
                args.as_mut_ptr(),
                msg.as_mut_ptr(),
                msg.len() as c_ulong,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        let bytes: Vec<u8> = msg
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        Err(emu_err(String::from_utf8_lossy(&bytes).into_owned()))
    }
}

/// The emulated device for `block` threads, or `None` (the skip recorded) without a C++
/// compiler ([`crate::common::skip`]).
pub fn device(block: u32) -> Option<EmuDevice> {
    device_from(block, &source(block).unwrap_or_else(|e| panic!("{e}")))
}

/// [`device`] from the translation unit `unit` ([`source_of`]).
pub fn device_from(block: u32, unit: &str) -> Option<EmuDevice> {
    match EmuDevice::build_from(block, unit) {
        Ok(Some(e)) => Some(e),
        Ok(None) => {
            crate::common::skip(
                crate::common::Needs::Emu,
                "no C++ compiler ($CXX or g++) to build the kernel emulator",
            );
            None
        }
        Err(e) => panic!("{e}"),
    }
}
