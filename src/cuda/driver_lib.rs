//! The CUDA driver library as cudarc loads it (the first of its candidate names, e.g.
//! `libcuda.so`, that the dynamic loader opens). cudarc resolves each driver function on its
//! first call and panics when the library lacks it; here the functions recmaml's start needs are
//! looked up first, and any later lookup panic is caught, so that a driver without a function is
//! an error naming the library and the function.

use super::err;
use crate::error::Result;
use std::sync::Once;

/// Driver functions called while opening the device, by the name cudarc resolves.
const NEEDED: [&str; 14] = [
    "cuInit",
    "cuDriverGetVersion",
    "cuGetErrorString",
    "cuGetErrorName",
    "cuDeviceGetCount",
    "cuDeviceGet",
    "cuDeviceGetName",
    "cuDeviceGetAttribute",
    "cuDevicePrimaryCtxRetain",
    "cuCtxSetCurrent",
    "cuStreamCreate",
    "cuModuleLoadData",
    "cuModuleGetFunction",
    "cuLaunchKernel",
];

/// The name of the library cudarc would load, or `None` when none loads.
fn library_name() -> Option<String> {
    ["cuda", "nvcuda"]
        .iter()
        .flat_map(|l| cudarc::get_lib_name_candidates(l))
        // SAFETY: opening the library runs its initialisers, as cudarc's own loading does.
        .find(|name| unsafe { libloading::Library::new(name) }.is_ok())
}

/// Fails naming the library and the first function of [`NEEDED`] it lacks.
pub(super) fn check_symbols() -> Result<()> {
    let Some(name) = library_name() else {
        return Ok(());
    };
    // SAFETY: as above; only symbol addresses are looked up, nothing is called.
    let lib = unsafe { libloading::Library::new(&name) }
        .map_err(|e| err(format!("loading the CUDA driver library {name}: {e}")))?;
    for sym in NEEDED {
        if unsafe { lib.get::<*const std::ffi::c_void>(sym.as_bytes()) }.is_err() {
            return Err(err(format!(
                "the CUDA driver library {name} lacks the function {sym} (a driver older than \
                 CUDA 12?); update the driver or use run.backend = \"cpu\""
            )));
        }
    }
    Ok(())
}

/// Whether a panic message is one of cudarc's library-loading panics.
fn is_loading_panic(msg: &str) -> bool {
    msg.starts_with("Missing symbol") || msg.starts_with("Unable to dynamically load")
}

fn message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// Runs `f`, turning a cudarc loading panic into an error that names the library and the
/// function; such panics are not printed (other panics are, as before).
pub(super) fn guarded<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    static QUIET: Once = Once::new();
    QUIET.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !is_loading_panic(&message(info.payload())) {
                previous(info);
            }
        }));
    });
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        let msg = message(payload.as_ref());
        let lib = library_name().unwrap_or_else(|| "libcuda.so".into());
        Err(err(if is_loading_panic(&msg) {
            format!("the CUDA driver library {lib}: {msg}; update the driver or use run.backend = \"cpu\"")
        } else {
            format!("the CUDA driver library {lib} failed: {msg}")
        }))
    })
}
