//! [`Driver`]: the [`Device`] of a real GPU, through cudarc (driver API and NVRTC loaded at run
//! time, so a machine without CUDA gets an error naming what is missing, never a panic).

use super::device::{Device, Kernel, Launch};
use super::driver_lib;
use super::nvrtc::{self, Image, Nvrtc};
use super::{debug, err, plan, program};
use crate::error::Result;
use cudarc::driver::{
    CudaContext, CudaEvent, CudaFunction, CudaModule, CudaSlice, CudaStream, DevicePtr,
};
use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::Arc;
use std::time::Instant;

/// Dynamic shared memory available without an opt-in.
const DEFAULT_SHARED: usize = 48 * 1024;

fn drv(what: &str) -> impl Fn(cudarc::driver::DriverError) -> crate::Error + '_ {
    move |e| err(format!("{what}: {e:?}"))
}

/// Whether a CUDA driver and at least one device are present (never panics).
pub fn device_available() -> bool {
    // SAFETY: only tries to dlopen candidate library names.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return false;
    }
    driver_lib::check_symbols().is_ok()
        && driver_lib::guarded(|| {
            Ok(cudarc::driver::result::init().is_ok()
                && CudaContext::device_count().is_ok_and(|n| n > 0))
        })
        .unwrap_or(false)
}

/// Device 0 with the kernel program loaded: one stream does all the work, in issue order.
pub struct Driver {
    name: String,
    /// The architecture the launches are planned for (the device's, or `RECMAML_CUDA_PLAN`'s).
    arch: u32,
    block: u32,
    smem_optin: usize,
    stream: Arc<CudaStream>,
    module: Arc<CudaModule>,
    functions: HashMap<Kernel, CudaFunction>,
    /// The dynamic shared memory each kernel is currently allowed.
    smem_set: HashMap<Kernel, usize>,
    events: (CudaEvent, CudaEvent),
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver").field("name", &self.name).finish()
    }
}

/// The architecture to plan for and its shared-memory limit: the device's own (`cc`, `optin`),
/// or with `RECMAML_CUDA_PLAN=sm_XY` an older architecture's plan (block size and shared-memory
/// limit), which must then be correct on this device too.
fn planned_arch(cc: u32, optin: usize) -> Result<(u32, usize)> {
    let Ok(v) = std::env::var("RECMAML_CUDA_PLAN") else {
        return Ok((cc, optin));
    };
    let forced = v
        .trim()
        .strip_prefix("sm_")
        .and_then(|x| x.parse::<u32>().ok())
        .and_then(plan::DeviceLimits::of_arch)
        .filter(|l| l.cc <= cc)
        .ok_or_else(|| {
            err(format!(
                "RECMAML_CUDA_PLAN={v}: expected sm_XY for one of {:?} not newer than this device (sm_{cc})",
                plan::ARCHS
            ))
        })?;
    Ok((forced.cc, forced.smem_per_block.min(optin)))
}

impl Driver {
    /// Device 0 with the program compiled for its architecture (once per process). Without a
    /// driver, a device or NVRTC this is an error saying which.
    pub fn open() -> Result<Self> {
        // SAFETY: only tries to dlopen candidate library names.
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            return Err(err(
                "no CUDA driver (libcuda.so) found on this machine; use run.backend = \"cpu\"",
            ));
        }
        // cudarc panics on a missing driver symbol (a driver older than the bindings): an error
        // naming the library and the function instead.
        driver_lib::check_symbols()?;
        driver_lib::guarded(Self::init)
    }

    fn init() -> Result<Self> {
        let n = CudaContext::device_count().map_err(drv("counting CUDA devices"))?;
        if n < 1 {
            return Err(err("a CUDA driver is installed but no device was found"));
        }
        let ctx = CudaContext::new(0).map_err(drv("creating a context on device 0"))?;
        let name = ctx.name().unwrap_or_else(|_| "unknown".into());
        let (major, minor) = ctx
            .compute_capability()
            .map_err(drv("reading the compute capability"))?;
        let cc = (major * 10 + minor) as u32;
        let smem_optin = ctx
            .attribute(
                cudarc::driver::sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN,
            )
            .map_err(drv("reading the shared-memory limit"))?
            .max(DEFAULT_SHARED as i32) as usize;
        let (plan_cc, smem_optin) = planned_arch(cc, smem_optin)?;
        let block = program::block_size(plan::default_block(plan_cc))?;
        let mut drv_version = 0;
        // SAFETY: the driver is loaded and initialised (a context exists); valid out-pointer.
        unsafe { cudarc::driver::sys::cuDriverGetVersion(&mut drv_version) };
        let cuda = nvrtc::version_of(drv_version);
        let nvrtc = Nvrtc::for_driver(cuda)?;
        let arch = nvrtc.target_for(cc as i32).ok_or_else(|| {
            err(format!(
                "{nvrtc:?} cannot compile for this device (sm_{cc}); use the NVRTC of a newer CUDA \
                 (not newer than the driver, CUDA {}.{}) or run.backend = \"cpu\"",
                cuda.0, cuda.1
            ))
        })?;
        let t0 = Instant::now();
        let (image, fresh) = program::compile_once(&nvrtc, &arch, block)?;
        debug(&format!(
            "{} {} kernels{} for {arch} ({}) on {name} (sm_{cc}, planned as sm_{plan_cc}: {block} threads, {smem_optin} bytes of shared memory) in {:.0} ms with {nvrtc:?}, driver CUDA {}.{}, options {:?}",
            if fresh { "compiled" } else { "reused this process's image of" },
            Kernel::ALL.len(),
            program::kernel_dir().map_or(String::new(), |d| format!(" from {}", d.display())),
            if matches!(image, Image::Cubin(_)) { "cubin" } else { "PTX, compiled by the driver" },
            t0.elapsed().as_secs_f64() * 1e3,
            cuda.0,
            cuda.1,
            program::compile_options(&arch, block)
        ));
        let ptx = match image {
            Image::Cubin(bytes) => cudarc::nvrtc::Ptx::from_binary(bytes),
            Image::Ptx(text) => cudarc::nvrtc::Ptx::from_src(text),
        };
        let module = ctx.load_module(ptx).map_err(|e| {
            err(format!(
                "loading the kernels ({arch}, {nvrtc:?}) on {name}: {e:?} (driver CUDA {}.{})",
                cuda.0, cuda.1
            ))
        })?;
        let mut functions = HashMap::new();
        for k in Kernel::ALL {
            let f = module
                .load_function(k.name())
                .map_err(|e| err(format!("kernel `{}`: {e:?}", k.name())))?;
            functions.insert(k, f);
        }
        // SAFETY: one stream does all the work, so no cross-stream synchronisation is needed.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.default_stream();
        let timing = Some(cudarc::driver::sys::CUevent_flags::CU_EVENT_DEFAULT);
        let events = (
            ctx.new_event(timing).map_err(drv("creating an event"))?,
            ctx.new_event(timing).map_err(drv("creating an event"))?,
        );
        Ok(Driver {
            name,
            arch: plan_cc,
            block,
            smem_optin,
            stream,
            module,
            functions,
            smem_set: HashMap::new(),
            events,
        })
    }
}

impl Device for Driver {
    type Mem = CudaSlice<u8>;

    fn name(&self) -> String {
        self.name.clone()
    }

    fn block(&self) -> u32 {
        self.block
    }

    fn smem_limit(&self) -> usize {
        self.smem_optin
    }

    fn arch(&self) -> u32 {
        self.arch
    }

    fn alloc(&mut self, bytes: usize) -> Result<Self::Mem> {
        self.stream
            .alloc_zeros::<u8>(bytes.max(1))
            .map_err(drv("allocating device memory"))
    }

    fn addr(&self, mem: &Self::Mem) -> u64 {
        // Event tracking is off (one stream), so the guard that comes with the pointer does nothing.
        let (ptr, _guard) = mem.device_ptr(&self.stream);
        ptr
    }

    fn write(&mut self, mem: &mut Self::Mem, offset: usize, src: &[u8]) -> Result<()> {
        self.stream
            .memcpy_htod(src, &mut mem.slice_mut(offset..offset + src.len()))
            .map_err(drv("copying to the device"))
    }

    fn read(&self, mem: &Self::Mem, offset: usize, dst: &mut [u8]) -> Result<()> {
        self.stream
            .memcpy_dtoh(&mem.slice(offset..offset + dst.len()), dst)
            .map_err(drv("copying from the device"))
    }

    fn set_smem(&mut self, kernel: Kernel, bytes: usize) -> Result<()> {
        if bytes <= DEFAULT_SHARED || self.smem_set.get(&kernel).is_some_and(|&b| b >= bytes) {
            return Ok(());
        }
        self.functions[&kernel]
            .set_attribute(
                cudarc::driver::sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                bytes as i32,
            )
            .map_err(drv("raising a kernel's shared-memory limit"))?;
        self.smem_set.insert(kernel, bytes);
        Ok(())
    }

    unsafe fn launch(
        &mut self,
        kernel: Kernel,
        shape: Launch,
        args: &mut [*mut c_void],
    ) -> Result<()> {
        // SAFETY: the caller guarantees that `args` matches the kernel; the function belongs to
        // the loaded module and the stream to its context.
        unsafe {
            cudarc::driver::result::launch_kernel(
                self.functions[&kernel].cu_function(),
                (shape.grid, 1, 1),
                (shape.block, 1, 1),
                shape.smem,
                self.stream.cu_stream(),
                args,
            )
        }
        .map_err(|e| err(format!("launching {}: {e:?}", kernel.name())))
    }

    fn timer_start(&mut self) -> Result<()> {
        self.events
            .0
            .record(&self.stream)
            .map_err(drv("recording an event"))
    }

    fn timer_stop(&mut self) -> Result<Option<f64>> {
        self.events
            .1
            .record(&self.stream)
            .map_err(drv("recording an event"))?;
        let ms = self
            .events
            .0
            .elapsed_ms(&self.events.1)
            .map_err(drv("reading the device time"))?;
        Ok(Some(ms as f64))
    }

    fn read_global(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let g = self
            .module
            .get_global(name, &self.stream)
            .map_err(drv("finding a global of the program"))?;
        let bytes = self
            .stream
            .clone_dtoh(&g)
            .map_err(drv("reading a global of the program"))?;
        Ok(Some(bytes))
    }

    fn zero_global(&mut self, name: &str) -> Result<()> {
        let mut g = self
            .module
            .get_global(name, &self.stream)
            .map_err(drv("finding a global of the program"))?;
        let n = g.len();
        self.stream
            .memcpy_htod(&vec![0u8; n], &mut g)
            .map_err(drv("clearing a global of the program"))
    }
}
