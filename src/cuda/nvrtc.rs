//! NVRTC, loaded at run time from a library chosen to fit the driver: a program compiled by an
//! NVRTC newer than the driver yields PTX the driver rejects (`CUDA_ERROR_UNSUPPORTED_PTX_VERSION`),
//! so the library's major version must not exceed the driver's. cudarc's NVRTC bindings load
//! whichever `libnvrtc` the loader finds first and cannot be pointed at another, so this module
//! binds the eight NVRTC functions the program needs itself (through `libloading`).
//!
//! Search order: `$RECMAML_NVRTC` (a library file) alone when set; otherwise `libnvrtc.so.<major>`
//! for the driver's major version down to 12, then `libnvrtc.so`, each through the dynamic
//! loader's path (`LD_LIBRARY_PATH`, system folders). The first that loads and whose version is
//! 12.0 or newer and not newer than the driver is used.

use crate::error::{Error, Result};
use std::ffi::{c_char, c_int, CStr, CString};
use std::path::{Path, PathBuf};

fn err(msg: impl Into<String>) -> Error {
    Error::Backend {
        backend: "cuda".into(),
        msg: msg.into(),
    }
}

/// The oldest NVRTC whose output is used (CUDA 12: sm_90 and the wheels' oldest maintained line).
pub const MIN_MAJOR: i32 = 12;

/// A CUDA version `(major, minor)` from the driver's integer form (`12040` is 12.4).
pub fn version_of(driver: i32) -> (i32, i32) {
    (driver / 1000, (driver % 1000) / 10)
}

/// The library names tried for a driver of major version `major`, in order.
pub fn candidate_names(major: i32) -> Vec<String> {
    let mut names: Vec<String> = (MIN_MAJOR..=major.max(MIN_MAJOR))
        .rev()
        .map(|m| format!("libnvrtc.so.{m}"))
        .collect();
    names.push("libnvrtc.so".into());
    names
}

/// What loading one candidate gave: its version, or why it cannot be used.
pub type Probe = (String, std::result::Result<(i32, i32), String>);

/// The index of the candidate to use for a driver of version `driver`: the first that loaded,
/// is at least [`MIN_MAJOR`] and not newer than the driver; otherwise the error a user sees,
/// naming the driver, every candidate with why it was passed over, and how to install one.
pub fn choose(driver: (i32, i32), probes: &[Probe]) -> std::result::Result<usize, String> {
    let mut why = Vec::new();
    for (i, (name, probe)) in probes.iter().enumerate() {
        match probe {
            Ok((maj, min)) if *maj > driver.0 => why.push(format!(
                "{name}: NVRTC {maj}.{min} is newer than the driver (CUDA {}.{})",
                driver.0, driver.1
            )),
            Ok((maj, min)) if *maj < MIN_MAJOR => why.push(format!(
                "{name}: NVRTC {maj}.{min} is older than {MIN_MAJOR}.0"
            )),
            Ok(_) => return Ok(i),
            Err(e) => why.push(format!("{name}: {e}")),
        }
    }
    let wheel = if driver.0 >= 13 {
        "nvidia-cuda-nvrtc"
    } else {
        "nvidia-cuda-nvrtc-cu12"
    };
    Err(format!(
        "no usable NVRTC for this CUDA {}.{} driver; looked for {}. Install the NVRTC of CUDA \
         {} (e.g. `pip install {wheel}`) and put its library folder on LD_LIBRARY_PATH, or set \
         RECMAML_NVRTC to the library file; or use run.backend = \"cpu\"",
        driver.0,
        driver.1,
        why.join("; "),
        driver.0.max(MIN_MAJOR)
    ))
}

type Prog = *mut std::ffi::c_void;

/// The NVRTC functions the program uses.
struct Api {
    version: unsafe extern "C" fn(*mut c_int, *mut c_int) -> c_int,
    num_archs: unsafe extern "C" fn(*mut c_int) -> c_int,
    archs: unsafe extern "C" fn(*mut c_int) -> c_int,
    create: unsafe extern "C" fn(
        *mut Prog,
        *const c_char,
        *const c_char,
        c_int,
        *const *const c_char,
        *const *const c_char,
    ) -> c_int,
    compile: unsafe extern "C" fn(Prog, c_int, *const *const c_char) -> c_int,
    log_size: unsafe extern "C" fn(Prog, *mut usize) -> c_int,
    log: unsafe extern "C" fn(Prog, *mut c_char) -> c_int,
    ptx_size: unsafe extern "C" fn(Prog, *mut usize) -> c_int,
    ptx: unsafe extern "C" fn(Prog, *mut c_char) -> c_int,
    cubin_size: unsafe extern "C" fn(Prog, *mut usize) -> c_int,
    cubin: unsafe extern "C" fn(Prog, *mut c_char) -> c_int,
    destroy: unsafe extern "C" fn(*mut Prog) -> c_int,
}

/// A loaded NVRTC library.
pub struct Nvrtc {
    api: Api,
    /// What was loaded (a name or a path).
    pub name: String,
    /// `(major, minor)`.
    pub version: (i32, i32),
    _lib: libloading::Library,
}

impl std::fmt::Debug for Nvrtc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "NVRTC {}.{} ({})",
            self.version.0, self.version.1, self.name
        )
    }
}

/// What a compile produced: a cubin for the device's own architecture, or PTX for a virtual one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Image {
    Cubin(Vec<u8>),
    Ptx(String),
}

impl Nvrtc {
    /// Loads the library `name` (a file path, or a name the dynamic loader resolves) and reads
    /// its version.
    pub fn open(name: &str) -> std::result::Result<Nvrtc, String> {
        // SAFETY: loading a shared library runs its initialisers; NVRTC's have no requirements.
        let lib = unsafe { libloading::Library::new(name) }.map_err(|e| {
            let detail = std::error::Error::source(&e).map_or(e.to_string(), |s| s.to_string());
            let missing = if name.contains('/') {
                !Path::new(name).exists()
            } else {
                detail.contains("No such file") || detail.contains("cannot open shared object")
            };
            if missing {
                "not found".to_string()
            } else {
                format!("cannot be loaded ({detail})")
            }
        })?;
        // SAFETY: each symbol is looked up with its C signature from nvrtc.h.
        let api = unsafe {
            macro_rules! sym {
                ($s:literal) => {
                    *lib.get($s).map_err(|e| format!("is not NVRTC ({e})"))?
                };
            }
            Api {
                version: sym!(b"nvrtcVersion\0"),
                num_archs: sym!(b"nvrtcGetNumSupportedArchs\0"),
                archs: sym!(b"nvrtcGetSupportedArchs\0"),
                create: sym!(b"nvrtcCreateProgram\0"),
                compile: sym!(b"nvrtcCompileProgram\0"),
                log_size: sym!(b"nvrtcGetProgramLogSize\0"),
                log: sym!(b"nvrtcGetProgramLog\0"),
                ptx_size: sym!(b"nvrtcGetPTXSize\0"),
                ptx: sym!(b"nvrtcGetPTX\0"),
                cubin_size: sym!(b"nvrtcGetCUBINSize\0"),
                cubin: sym!(b"nvrtcGetCUBIN\0"),
                destroy: sym!(b"nvrtcDestroyProgram\0"),
            }
        };
        let (mut major, mut minor) = (0, 0);
        // SAFETY: valid out-pointers.
        let rc = unsafe { (api.version)(&mut major, &mut minor) };
        if rc != 0 {
            return Err(format!("nvrtcVersion failed ({rc})"));
        }
        Ok(Nvrtc {
            api,
            name: name.to_string(),
            version: (major, minor),
            _lib: lib,
        })
    }

    /// The NVRTC for a driver of CUDA version `driver`, by the module's search order; an error
    /// that names the driver and every candidate when none fits.
    pub fn for_driver(driver: (i32, i32)) -> Result<Nvrtc> {
        let names = match std::env::var("RECMAML_NVRTC") {
            Ok(p) if !p.is_empty() => vec![p],
            _ => candidate_names(driver.0),
        };
        Self::first_fitting(driver, &names).map_err(err)
    }

    /// The first of `names` that [`choose`] accepts for `driver`.
    pub fn first_fitting(
        driver: (i32, i32),
        names: &[String],
    ) -> std::result::Result<Nvrtc, String> {
        let mut probes: Vec<Probe> = Vec::new();
        let mut loaded = Vec::new();
        for name in names {
            match Nvrtc::open(name) {
                Ok(n) => {
                    probes.push((name.clone(), Ok(n.version)));
                    loaded.push(Some(n));
                }
                Err(e) => {
                    probes.push((name.clone(), Err(e)));
                    loaded.push(None);
                }
            }
            if choose(driver, &probes).is_ok() {
                break;
            }
        }
        let i = choose(driver, &probes)?;
        Ok(loaded
            .swap_remove(i)
            .expect("a chosen candidate was loaded"))
    }

    /// The real architectures (`sm_XY` as `XY`) this NVRTC can emit cubin for.
    pub fn supported_archs(&self) -> Vec<i32> {
        let mut n = 0;
        // SAFETY: valid out-pointer, then an array of the size NVRTC reported.
        unsafe {
            if (self.api.num_archs)(&mut n) != 0 || n <= 0 {
                return Vec::new();
            }
            let mut out = vec![0; n as usize];
            if (self.api.archs)(out.as_mut_ptr()) != 0 {
                return Vec::new();
            }
            out
        }
    }

    /// The target for a device of compute capability `cc` (e.g. 90): its own `sm_XY` (cubin) when
    /// this NVRTC supports it, else PTX for the newest architecture it has at or below `cc`,
    /// which the driver compiles on loading; `None` when it has none.
    pub fn target_for(&self, cc: i32) -> Option<String> {
        let archs = self.supported_archs();
        if archs.contains(&cc) {
            return Some(format!("sm_{cc}"));
        }
        archs
            .into_iter()
            .filter(|&a| a <= cc)
            .max()
            .map(|a| format!("compute_{a}"))
    }

    /// Compiles `source` (named `name` in messages) with `options`; the architecture option
    /// decides the output: `--gpu-architecture=sm_XY` gives a cubin, `compute_XY` PTX. A compile
    /// error carries NVRTC's log, which names the kernel file and line.
    pub fn compile(&self, source: &str, name: &str, options: &[String]) -> Result<Image> {
        let src = CString::new(source).map_err(|_| err("the kernel source holds a NUL byte"))?;
        let cname = CString::new(name).map_err(|_| err("a program name holds a NUL byte"))?;
        let opts: Vec<CString> = options
            .iter()
            .map(|o| CString::new(o.as_str()).map_err(|_| err("an option holds a NUL byte")))
            .collect::<Result<_>>()?;
        let ptrs: Vec<*const c_char> = opts.iter().map(|o| o.as_ptr()).collect();
        let cubin = options
            .iter()
            .any(|o| o.starts_with("--gpu-architecture=sm_"));
        let mut prog: Prog = std::ptr::null_mut();
        // SAFETY: NVRTC's C API with valid strings; the program is destroyed below.
        unsafe {
            let rc = (self.api.create)(
                &mut prog,
                src.as_ptr(),
                cname.as_ptr(),
                0,
                std::ptr::null(),
                std::ptr::null(),
            );
            if rc != 0 {
                return Err(err(format!("nvrtcCreateProgram failed ({rc})")));
            }
            let rc = (self.api.compile)(prog, ptrs.len() as c_int, ptrs.as_ptr());
            let out = if rc != 0 {
                Err(err(format!(
                    "NVRTC {}.{} failed to compile the kernels ({options:?}, error {rc}):\n{}",
                    self.version.0,
                    self.version.1,
                    self.read_log(prog)
                )))
            } else if cubin {
                self.read(prog, self.api.cubin_size, self.api.cubin)
                    .map(Image::Cubin)
            } else {
                self.read(prog, self.api.ptx_size, self.api.ptx)
                    .map(|mut b| {
                        while b.last() == Some(&0) {
                            b.pop();
                        }
                        Image::Ptx(String::from_utf8_lossy(&b).into_owned())
                    })
            };
            (self.api.destroy)(&mut prog);
            out
        }
    }

    /// # Safety
    /// `prog` is a live program.
    unsafe fn read_log(&self, prog: Prog) -> String {
        let mut n = 0usize;
        // SAFETY: valid out-pointer, then a buffer of the reported size.
        unsafe {
            if (self.api.log_size)(prog, &mut n) != 0 || n == 0 {
                return String::new();
            }
            let mut buf = vec![0 as c_char; n];
            if (self.api.log)(prog, buf.as_mut_ptr()) != 0 {
                return String::new();
            }
            CStr::from_ptr(buf.as_ptr()).to_string_lossy().into_owned()
        }
    }

    /// # Safety
    /// `prog` is a live, compiled program; `size`/`get` are a matching NVRTC pair.
    unsafe fn read(
        &self,
        prog: Prog,
        size: unsafe extern "C" fn(Prog, *mut usize) -> c_int,
        get: unsafe extern "C" fn(Prog, *mut c_char) -> c_int,
    ) -> Result<Vec<u8>> {
        let mut n = 0usize;
        // SAFETY: valid out-pointer, then a buffer of the reported size.
        unsafe {
            if size(prog, &mut n) != 0 {
                return Err(err("NVRTC did not report its output's size"));
            }
            let mut buf = vec![0u8; n];
            if get(prog, buf.as_mut_ptr() as *mut c_char) != 0 {
                return Err(err("NVRTC did not return its output"));
            }
            Ok(buf)
        }
    }
}

/// The path of a loaded library's file, for messages, when the name was a path.
pub fn describe(n: &Nvrtc) -> String {
    let p = Path::new(&n.name);
    if p.is_absolute() {
        PathBuf::from(p).display().to_string()
    } else {
        n.name.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn driver_versions_read_as_major_minor() {
        assert_eq!(version_of(12040), (12, 4));
        assert_eq!(version_of(13000), (13, 0));
        assert_eq!(version_of(12090), (12, 9));
    }

    #[test]
    fn candidates_go_from_the_drivers_major_down() {
        assert_eq!(
            candidate_names(13),
            ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"]
        );
        assert_eq!(candidate_names(12), ["libnvrtc.so.12", "libnvrtc.so"]);
        assert_eq!(candidate_names(11), ["libnvrtc.so.12", "libnvrtc.so"]);
    }

    #[test]
    fn the_choice_never_takes_an_nvrtc_newer_than_the_driver() {
        let p = |n: &str, v: std::result::Result<(i32, i32), &str>| -> Probe {
            (n.to_string(), v.map_err(str::to_string))
        };
        // A CUDA 12.4 driver with NVRTC 13.0 first on the path: 12.x is taken.
        let probes = [
            p("libnvrtc.so.13", Ok((13, 0))),
            p("libnvrtc.so.12", Ok((12, 8))),
        ];
        assert_eq!(choose((12, 4), &probes), Ok(1));
        // A newer minor of the same major is fine (the PTX ISA of a major's minors is loadable
        // by that major's drivers for the targets used here).
        assert_eq!(choose((13, 0), &[p("libnvrtc.so.13", Ok((13, 2)))]), Ok(0));
        // Nothing fits: every candidate is named with its reason, and the install hint fits the
        // driver.
        let probes = [
            p("libnvrtc.so.12", Err("not found")),
            p("libnvrtc.so", Ok((13, 0))),
        ];
        let e = choose((12, 2), &probes).unwrap_err();
        for needle in [
            "CUDA 12.2 driver",
            "libnvrtc.so.12: not found",
            "libnvrtc.so: NVRTC 13.0 is newer than the driver",
            "nvidia-cuda-nvrtc-cu12",
            "RECMAML_NVRTC",
        ] {
            assert!(e.contains(needle), "{needle}: {e}");
        }
        let e = choose((13, 0), &[p("x", Ok((11, 8)))]).unwrap_err();
        assert!(
            e.contains("older than 12.0") && e.contains("pip install nvidia-cuda-nvrtc"),
            "{e}"
        );
    }

    /// Fake library folders: a file that is not a library, and a missing one, are named with
    /// their reasons.
    #[test]
    fn fake_libraries_are_reported_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("libnvrtc.so.12");
        std::fs::write(&fake, b"not a library").unwrap();
        let missing = dir.path().join("libnvrtc.so.13");
        let names = [missing.display().to_string(), fake.display().to_string()];
        let e = Nvrtc::first_fitting((13, 0), &names).unwrap_err();
        assert!(e.contains(&format!("{}: not found", names[0])), "{e}");
        assert!(
            e.contains(&format!("{}: cannot be loaded", names[1])),
            "{e}"
        );
        assert!(e.contains("CUDA 13.0 driver"), "{e}");
    }
}
