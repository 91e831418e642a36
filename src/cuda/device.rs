//! The device interface that the CUDA backend's host code is written against: allocate, copy,
//! launch a named kernel with its argument array. [`super::driver::Driver`] implements it on a GPU
//! through cudarc; the test suite implements it with the kernel emulator (`tests/emu/`), so the
//! host code that users run (packing, launch order, argument lists) is what CI checks.

use crate::error::Result;
use std::ffi::c_void;
use std::marker::PhantomData;

/// The kernels the backend launches (`extern "C"` entry points of `kernels/*.cu`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    TransposeOut,
    TaskForward,
    TaskBackward,
    MetaGrad,
    Clip,
    Adam,
}

impl Kernel {
    /// Every kernel, in the order of [`super::program::ENTRY_POINTS`].
    pub const ALL: [Kernel; 6] = [
        Kernel::TransposeOut,
        Kernel::TaskForward,
        Kernel::TaskBackward,
        Kernel::MetaGrad,
        Kernel::Clip,
        Kernel::Adam,
    ];

    /// The entry point's name in the program.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::TransposeOut => "transpose_out",
            Kernel::TaskForward => "task_forward",
            Kernel::TaskBackward => "task_backward",
            Kernel::MetaGrad => "meta_grad_forward",
            Kernel::Clip => "clip_forward",
            Kernel::Adam => "adam_forward",
        }
    }
}

/// One launch's shape: blocks, threads per block, dynamic shared memory in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Launch {
    pub grid: u32,
    pub block: u32,
    pub smem: u32,
}

/// A device that runs the kernel program: memory, copies and launches, in issue order.
pub trait Device {
    /// One allocation.
    type Mem;

    /// A name for messages ("NVIDIA H100 80GB HBM3", "emulator").
    fn name(&self) -> String;
    /// Threads per block the program was compiled for (`RM_BLOCK`).
    fn block(&self) -> u32;
    /// The most dynamic shared memory a block may use (after opting in).
    fn smem_limit(&self) -> usize;
    /// The architecture the launches are planned for, `major * 10 + minor` (90 for sm_90).
    fn arch(&self) -> u32;
    /// `bytes` of device memory (contents undefined).
    fn alloc(&mut self, bytes: usize) -> Result<Self::Mem>;
    /// The address kernels see for `mem`.
    fn addr(&self, mem: &Self::Mem) -> u64;
    /// Copies `src` to `mem` at byte `offset`.
    fn write(&mut self, mem: &mut Self::Mem, offset: usize, src: &[u8]) -> Result<()>;
    /// Copies `mem` from byte `offset` into `dst` (waits for the launches before it).
    fn read(&self, mem: &Self::Mem, offset: usize, dst: &mut [u8]) -> Result<()>;
    /// Allows `kernel` up to `bytes` of dynamic shared memory per block.
    fn set_smem(&mut self, kernel: Kernel, bytes: usize) -> Result<()>;
    /// Launches `kernel`; `args` point at each argument's value, as for `cuLaunchKernel`.
    ///
    /// # Safety
    /// `args` must match the kernel's parameters in number, order and type, and every buffer it
    /// addresses must be large enough for what the kernel reads and writes at this shape.
    unsafe fn launch(
        &mut self,
        kernel: Kernel,
        shape: Launch,
        args: &mut [*mut c_void],
    ) -> Result<()>;
    /// Starts timing the device work issued from now on.
    fn timer_start(&mut self) -> Result<()> {
        Ok(())
    }
    /// The device time in milliseconds since [`Device::timer_start`], where the device measures
    /// one.
    fn timer_stop(&mut self) -> Result<Option<f64>> {
        Ok(None)
    }
    /// The bytes of the program's global `name` (the phase counters), where the device has it.
    fn read_global(&self, _name: &str) -> Result<Option<Vec<u8>>> {
        Ok(None)
    }
    /// Zeroes the program's global `name`, where the device has it.
    fn zero_global(&mut self, _name: &str) -> Result<()> {
        Ok(())
    }
}

/// A typed device buffer of `len` elements of `T`.
pub struct Buf<D: Device, T> {
    mem: D::Mem,
    len: usize,
    _t: PhantomData<T>,
}

impl<D: Device, T: bytemuck::Pod> Buf<D, T> {
    /// `len` elements (at least 1 is allocated, so every buffer has an address).
    pub fn new(dev: &mut D, len: usize) -> Result<Self> {
        let mem = dev.alloc(len.max(1) * std::mem::size_of::<T>())?;
        Ok(Buf {
            mem,
            len,
            _t: PhantomData,
        })
    }

    /// A buffer holding a copy of `data`.
    pub fn from_slice(dev: &mut D, data: &[T]) -> Result<Self> {
        let mut b = Self::new(dev, data.len())?;
        b.write(dev, 0, data)?;
        Ok(b)
    }

    /// Elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The address kernels see.
    pub fn addr(&self, dev: &D) -> u64 {
        dev.addr(&self.mem)
    }

    /// Grows to at least `len` elements (contents undefined after growing). The old memory is
    /// released before the new is allocated, so growing never holds both.
    pub fn reserve(&mut self, dev: &mut D, len: usize) -> Result<()> {
        if self.len < len {
            self.mem = dev.alloc(std::mem::size_of::<T>())?;
            self.len = 0;
            *self = Self::new(dev, len)?;
        }
        Ok(())
    }

    /// Copies `data` in at element `at`.
    pub fn write(&mut self, dev: &mut D, at: usize, data: &[T]) -> Result<()> {
        assert!(at + data.len() <= self.len, "write past a device buffer");
        if data.is_empty() {
            return Ok(());
        }
        dev.write(
            &mut self.mem,
            at * std::mem::size_of::<T>(),
            bytemuck::cast_slice(data),
        )
    }

    /// Grows to hold `data` and copies it in at element 0.
    pub fn upload(&mut self, dev: &mut D, data: &[T]) -> Result<()> {
        self.reserve(dev, data.len())?;
        self.write(dev, 0, data)
    }

    /// Elements `range` copied to the host.
    pub fn read(&self, dev: &D, range: std::ops::Range<usize>) -> Result<Vec<T>> {
        assert!(range.end <= self.len, "read past a device buffer");
        let mut out = vec![T::zeroed(); range.len()];
        if !out.is_empty() {
            dev.read(
                &self.mem,
                range.start * std::mem::size_of::<T>(),
                bytemuck::cast_slice_mut(&mut out),
            )?;
        }
        Ok(out)
    }

    /// Every element copied to the host.
    pub fn to_vec(&self, dev: &D) -> Result<Vec<T>> {
        self.read(dev, 0..self.len)
    }

    /// Fills the first `n` elements with all-ones bytes (NaN for floats): an element a kernel
    /// should write but does not then shows in the results.
    pub fn poison(&mut self, dev: &mut D, n: usize) -> Result<()> {
        let n = n.min(self.len);
        let ones = vec![0xffu8; n * std::mem::size_of::<T>()];
        if n > 0 {
            dev.write(&mut self.mem, 0, &ones)?;
        }
        Ok(())
    }
}

/// A kernel's argument list, in order: buffer addresses and by-value structs, turned into the
/// array of pointers that a launch takes.
pub struct Args<'a> {
    slots: Vec<Slot<'a>>,
}

enum Slot<'a> {
    Addr(u64),
    Value(*const c_void, PhantomData<&'a ()>),
}

impl<'a> Args<'a> {
    pub fn new() -> Self {
        Args { slots: Vec::new() }
    }

    /// A buffer, passed as its address.
    pub fn buf<D: Device, T: bytemuck::Pod>(mut self, dev: &D, b: &Buf<D, T>) -> Self {
        self.slots.push(Slot::Addr(b.addr(dev)));
        self
    }

    /// A plain-old-data value (a `#[repr(C)]` parameter struct), passed by value.
    pub fn val<T: bytemuck::Pod>(mut self, v: &'a T) -> Self {
        self.slots
            .push(Slot::Value(v as *const T as *const c_void, PhantomData));
        self
    }

    /// The pointers to each argument's value; valid while `self` is.
    pub fn pointers(&mut self) -> Vec<*mut c_void> {
        self.slots
            .iter_mut()
            .map(|s| match s {
                Slot::Addr(a) => a as *mut u64 as *mut c_void,
                Slot::Value(p, _) => *p as *mut c_void,
            })
            .collect()
    }
}

impl Default for Args<'_> {
    fn default() -> Self {
        Self::new()
    }
}
