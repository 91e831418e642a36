//! The CUDA kernel sources, carried in the binary (`include_str!`), and their compilation with
//! NVRTC into one program. The `.cu` files each include only `common.cuh`; the program is the
//! header followed by every file in order, with the include lines resolved here (NVRTC adds no
//! include paths of its own). No fast-math: IEEE division and square root, no flush to zero.

use super::nvrtc::{Image, Nvrtc};
use crate::error::{Error, Result};

/// The shared header.
pub const COMMON: &str = include_str!("../../kernels/common.cuh");

/// Every kernel file, in program order (a file may use the device functions of earlier ones).
pub const SOURCES: [(&str, &str); 8] = [
    ("gru.cu", include_str!("../../kernels/gru.cu")),
    ("embedding.cu", include_str!("../../kernels/embedding.cu")),
    ("output_ce.cu", include_str!("../../kernels/output_ce.cu")),
    ("sgd.cu", include_str!("../../kernels/sgd.cu")),
    ("task.cu", include_str!("../../kernels/task.cu")),
    ("meta_grad.cu", include_str!("../../kernels/meta_grad.cu")),
    ("clip.cu", include_str!("../../kernels/clip.cu")),
    ("adam.cu", include_str!("../../kernels/adam.cu")),
];

/// Every `extern "C"` entry point of the program.
pub const ENTRY_POINTS: [&str; 6] = [
    "transpose_out",
    "task_forward",
    "task_backward",
    "meta_grad_forward",
    "clip_forward",
    "adam_forward",
];

/// The single translation unit NVRTC compiles: `common.cuh`, then each file with its
/// `#include "common.cuh"` line removed (and a `#line` marker so that compile errors name the
/// file and line). The sources carried in the binary.
pub fn program_source() -> String {
    assemble(COMMON, &SOURCES)
}

/// The folder named by `RECMAML_KERNEL_DIR`, if set: the kernels are read from there at run
/// time instead of the binary's copies (trying a kernel change, or timing variants of the
/// kernels with one binary on a GPU machine without a Rust toolchain).
pub fn kernel_dir() -> Option<std::path::PathBuf> {
    std::env::var_os("RECMAML_KERNEL_DIR")
        .filter(|v| !v.is_empty())
        .map(Into::into)
}

/// The kernel variants in `dir` (`kernels/variants/`): every sub-folder, sorted by name; none
/// when `dir` does not exist. Each is a complete set of kernel files that
/// [`program_source_from`] reads (`RECMAML_KERNEL_DIR=kernels/variants/NAME` runs one).
pub fn variant_dirs(dir: &std::path::Path) -> Result<Vec<std::path::PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(crate::Error::io(dir, e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| crate::Error::io(dir, e))?.path();
        if path.is_dir() {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// [`program_source`] from the files `common.cuh` and [`SOURCES`]' names in `dir`; a missing
/// or unreadable file is an error naming it.
pub fn program_source_from(dir: &std::path::Path) -> Result<String> {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read_to_string(&path).map_err(|e| {
            backend_err(format!(
                "RECMAML_KERNEL_DIR: cannot read {}: {e}",
                path.display()
            ))
        })
    };
    let common = read("common.cuh")?;
    let mut files = Vec::with_capacity(SOURCES.len());
    for (name, _) in SOURCES {
        files.push((name, read(name)?));
    }
    Ok(assemble(&common, &files))
}

/// The program of the run: from `RECMAML_KERNEL_DIR` when set, else the binary's.
pub fn run_program_source() -> Result<String> {
    match kernel_dir() {
        Some(dir) => program_source_from(&dir),
        None => Ok(program_source()),
    }
}

fn assemble(common: &str, files: &[(&str, impl AsRef<str>)]) -> String {
    let mut src = String::with_capacity(64 * 1024);
    src.push_str("#line 1 \"common.cuh\"\n");
    src.push_str(common);
    for (name, text) in files {
        src.push_str(&format!("\n#line 1 \"{name}\"\n"));
        for line in text.as_ref().lines() {
            if line.trim() == "#include \"common.cuh\"" {
                src.push('\n'); // keep the line numbers
            } else {
                src.push_str(line);
                src.push('\n');
            }
        }
    }
    src
}

/// Threads per block of the architecture with the most shared memory and registers to spare
/// (sm_90): 768 leave 80 registers per thread (1024 leave 64, too few for the task kernels
/// without spilling), and 768 threads are 4 slices of the 3H = 192 gate rows at H 64. Other
/// architectures' sizes: [`super::plan::default_block`].
pub const DEFAULT_BLOCK: u32 = 768;

/// Threads per block: `RECMAML_CUDA_BLOCK` (a multiple of 32 in 64..=1024, for tuning runs) or
/// `planned`; any other value is an error naming the variable.
pub fn block_size(planned: u32) -> Result<u32> {
    std::env::var("RECMAML_CUDA_BLOCK").map_or(Ok(planned), |s| parse_block(&s))
}

/// A `RECMAML_CUDA_BLOCK` value: a multiple of 32 (whole warps) from 64 to 1024.
fn parse_block(s: &str) -> Result<u32> {
    match s.trim().parse::<u32>() {
        Ok(b) if (64..=1024).contains(&b) && b % 32 == 0 => Ok(b),
        _ => Err(backend_err(format!(
            "RECMAML_CUDA_BLOCK={s}: expected a multiple of 32 from 64 to 1024"
        ))),
    }
}

/// NVRTC options for `arch` (e.g. `compute_90`) and `block` threads per block: no fast-math
/// (`--use_fast_math` is never passed), IEEE division and square root, denormals kept;
/// multiply-adds may be fused.
pub fn compile_options(arch: &str, block: u32) -> Vec<String> {
    let mut o = vec![
        format!("--gpu-architecture={arch}"),
        format!("-DRM_BLOCK={block}"),
        "--std=c++17".into(),
        "--ftz=false".into(),
        "--prec-div=true".into(),
        "--prec-sqrt=true".into(),
        "--fmad=true".into(),
    ];
    if profiling() {
        o.push("-DRM_PROFILE".into());
    }
    if std::env::var("RECMAML_CUDA_LINEINFO").is_ok_and(|v| v == "1") {
        // Source lines in the PTX, for a profiler's per-line counters (no effect on the code).
        o.push("-lineinfo".into());
    }
    o
}

/// Whether `RECMAML_CUDA_PROFILE=1` asks for the kernels' phase counters (compiled in only then).
pub fn profiling() -> bool {
    std::env::var("RECMAML_CUDA_PROFILE").is_ok_and(|v| v == "1")
}

/// Names of the phase counters (`RM_PROF_CATS` in common.cuh, in order).
pub const PROFILE_PHASES: [&str; 8] = [
    "load",
    "gru input projection",
    "gru recurrence",
    "output forward",
    "output backward",
    "gru backward (time)",
    "embedding backward",
    "gru gradient + sgd",
];

fn backend_err(msg: String) -> Error {
    Error::Backend {
        backend: "cuda".into(),
        msg,
    }
}

/// Compiles the program (the binary's kernels, or `RECMAML_KERNEL_DIR`'s) with `nvrtc` for the
/// target `arch` (`sm_XY` gives a cubin, `compute_XY` PTX) and `block` threads per block.
pub fn compile(nvrtc: &Nvrtc, arch: &str, block: u32) -> Result<Image> {
    compile_source(nvrtc, &run_program_source()?, arch, block)
}

/// [`compile`] of the program text `source` (e.g. a variant's, [`program_source_from`]).
pub fn compile_source(nvrtc: &Nvrtc, source: &str, arch: &str, block: u32) -> Result<Image> {
    nvrtc.compile(source, "recmaml_kernels.cu", &compile_options(arch, block))
}

/// [`compile`] once per process, NVRTC, target and option set: later calls (every backend a
/// `matrix` or `pretrain` run creates) reuse the image. Returns it and whether this call
/// compiled it.
pub fn compile_once(nvrtc: &Nvrtc, arch: &str, block: u32) -> Result<(Image, bool)> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static CACHE: OnceLock<Mutex<HashMap<Vec<String>, Image>>> = OnceLock::new();
    let mut key = compile_options(arch, block);
    key.push(format!("{:?}", kernel_dir()));
    key.push(format!("{nvrtc:?}"));
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(image) = cache.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
        return Ok((image.clone(), false));
    }
    let image = compile(nvrtc, arch, block)?;
    cache
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(key, image.clone());
    Ok((image, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_sizes_are_whole_warps_from_64_to_1024() {
        for ok in ["64", "96", "384", " 768 ", "1024"] {
            assert_eq!(parse_block(ok).unwrap(), ok.trim().parse::<u32>().unwrap());
        }
        for bad in ["32", "100", "1056", "0", "-64", "768x", ""] {
            let e = parse_block(bad).unwrap_err().to_string();
            assert!(
                e.contains("RECMAML_CUDA_BLOCK") && e.contains("multiple of 32"),
                "{e}"
            );
        }
    }

    #[test]
    fn kernel_dir_sources_replace_the_embedded_ones() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("common.cuh"), COMMON).unwrap();
        for (name, text) in SOURCES {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        assert_eq!(program_source_from(dir.path()).unwrap(), program_source());
        // A changed file is what gets compiled.
        std::fs::write(dir.path().join("sgd.cu"), "// changed\n").unwrap();
        let changed = program_source_from(dir.path()).unwrap();
        assert!(changed.contains("#line 1 \"sgd.cu\"\n// changed\n"));
        assert!(!changed.contains("__device__ void sgd_block"));
        // A missing file is an error naming it.
        std::fs::remove_file(dir.path().join("adam.cu")).unwrap();
        let e = program_source_from(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("RECMAML_KERNEL_DIR") && e.contains("adam.cu"),
            "{e}"
        );
    }

    #[test]
    fn every_entry_point_is_extern_c_in_some_file() {
        let src = program_source();
        for name in ENTRY_POINTS {
            let decl = format!("{name}(");
            let pos = src
                .find(&decl)
                .unwrap_or_else(|| panic!("{name} not in the sources"));
            let before = &src[..pos];
            let start = before.rfind("extern \"C\"").expect("an extern \"C\" entry");
            assert!(
                !before[start..].contains(';'),
                "{name} is not declared right after an extern \"C\""
            );
        }
        assert!(!src.contains("#include"), "every include must be resolved");
    }
}
