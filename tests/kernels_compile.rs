//! Compiles every CUDA kernel with NVRTC to PTX for each supported architecture (sm_75, sm_80,
//! sm_86, sm_89, sm_90, sm_100) and assembles the PTX with the matching `ptxas -v`, printing
//! registers and spills per kernel; a compile error or a spill fails (sm_75: more than its known
//! 12 bytes). The main kernels and every variant under `kernels/variants/`, at the block size the
//! backend plans for each architecture. Needs no GPU.
//!
//! The toolchains: `RECMAML_NVRTC_TOOLCHAINS=LIBNVRTC:PTXAS;LIBNVRTC:PTXAS...` (CI: NVRTC 13.0 and
//! 12.9 from the PyPI wheels), else one from `RECMAML_NVRTC` (else `libnvrtc.so` on the loader's
//! path) and `RECMAML_PTXAS` (else `ptxas` on PATH). Without one the test is skipped with the
//! reason, unless `RECMAML_REQUIRE_NVRTC=1` (CI), in which case it fails.

mod common;

use recmaml::cuda::nvrtc::{Image, Nvrtc};
use recmaml::cuda::plan;
use recmaml::cuda::program as kernels;
use std::path::PathBuf;
use std::process::Command;

fn skip(reason: &str) {
    common::skip(common::Needs::Nvrtc, reason);
}

/// The architectures every toolchain is checked for.
const ARCHS: [u32; 6] = plan::ARCHS;

/// Spill bytes (stores + loads, over all kernels) accepted at an architecture's planned block
/// size: sm_75 spills at every size (see `recmaml::cuda::plan`), 12 bytes at 384 threads.
fn allowed_spill(arch: u32) -> u32 {
    if arch == 75 {
        12
    } else {
        0
    }
}

/// (NVRTC library, ptxas) pairs, or why there are none.
fn toolchains() -> Result<Vec<(String, PathBuf)>, String> {
    if let Ok(list) = std::env::var("RECMAML_NVRTC_TOOLCHAINS") {
        return list
            .split(';')
            .filter(|t| !t.is_empty())
            .map(|t| match t.split_once(':') {
                Some((lib, ptxas)) => Ok((lib.to_string(), PathBuf::from(ptxas))),
                None => Err(format!(
                    "RECMAML_NVRTC_TOOLCHAINS: `{t}` is not LIBNVRTC:PTXAS"
                )),
            })
            .collect();
    }
    let lib = std::env::var("RECMAML_NVRTC").unwrap_or_else(|_| "libnvrtc.so".into());
    let ptxas = match std::env::var("RECMAML_PTXAS") {
        Ok(p) => PathBuf::from(p),
        Err(_) => std::env::var_os("PATH")
            .and_then(|path| {
                std::env::split_paths(&path)
                    .map(|d| d.join("ptxas"))
                    .find(|p| p.is_file())
            })
            .ok_or("ptxas not found; set RECMAML_PTXAS (the nvidia-cuda-nvcc wheel's bin/ptxas)")?,
    };
    Ok(vec![(lib, ptxas)])
}

/// Per kernel: (name, registers, spill store bytes, spill load bytes, stack frame bytes), from
/// `ptxas -v` output.
fn parse_ptxas(log: &str) -> Vec<(String, u32, u32, u32, u32)> {
    let num_before = |line: &str, unit: &str| -> Option<u32> {
        let i = line.find(unit)?;
        line[..i].split_whitespace().last()?.parse().ok()
    };
    let mut out: Vec<(String, u32, u32, u32, u32)> = Vec::new();
    for line in log.lines() {
        if let Some(rest) = line.split("Function properties for ").nth(1) {
            out.push((rest.trim().to_string(), 0, 0, 0, 0));
        } else if let Some(last) = out.last_mut() {
            if let Some(f) = num_before(line, "bytes stack frame") {
                last.4 = f;
            }
            if let Some(s) = num_before(line, "bytes spill stores") {
                last.2 = s;
                last.3 = num_before(line, "bytes spill loads").unwrap_or(0);
            }
            if let Some(r) = num_before(line, "registers") {
                last.1 = r;
            }
        }
    }
    out
}

#[test]
fn every_kernel_compiles_for_every_architecture_without_spills() {
    let chains = match toolchains() {
        Ok(c) => c,
        Err(why) => return skip(&why),
    };
    let mut programs = vec![("main".to_string(), kernels::program_source())];
    let variants = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("kernels/variants");
    for dir in kernels::variant_dirs(&variants).unwrap() {
        let src = kernels::program_source_from(&dir).unwrap_or_else(|e| panic!("{e}"));
        programs.push((dir.file_name().unwrap().to_string_lossy().into_owned(), src));
    }
    for (lib, ptxas) in &chains {
        let nvrtc = match Nvrtc::open(lib) {
            Ok(n) => n,
            Err(why) => return skip(&format!("NVRTC {lib}: {why}; put the nvidia-cuda-nvrtc wheel's lib folder on LD_LIBRARY_PATH or set RECMAML_NVRTC")),
        };
        let supported = nvrtc.supported_archs();
        for arch in ARCHS {
            assert!(
                supported.contains(&(arch as i32)),
                "{nvrtc:?} does not support sm_{arch} (it has {supported:?})"
            );
            let block = plan::default_block(arch);
            for (name, src) in &programs {
                compile_and_assemble(&nvrtc, ptxas, name, src, arch, block);
            }
        }
    }
}

fn compile_and_assemble(
    nvrtc: &Nvrtc,
    ptxas: &PathBuf,
    name: &str,
    src: &str,
    arch: u32,
    block: u32,
) {
    let t0 = std::time::Instant::now();
    let what = format!("{name}, {nvrtc:?}, sm_{arch}, {block} threads");
    let ptx = match kernels::compile_source(nvrtc, src, &format!("compute_{arch}"), block) {
        Ok(Image::Ptx(p)) => p,
        Ok(Image::Cubin(_)) => panic!("{what}: a cubin where PTX was asked for"),
        Err(e) => panic!("{what}: {e}"),
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("recmaml.ptx");
    std::fs::write(&file, ptx).unwrap();
    let out = Command::new(ptxas)
        .arg(format!("-arch=sm_{arch}"))
        .args(["-v", "-o"])
        .arg(dir.path().join("recmaml.cubin"))
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", ptxas.display()));
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "ptxas failed ({what}):\n{log}");
    let rows = parse_ptxas(&log);
    println!(
        "{what}: compiled and assembled in {:.0} ms",
        t0.elapsed().as_secs_f64() * 1e3
    );
    println!(
        "  {:<20} {:>9} {:>13} {:>12} {:>12}",
        "kernel", "registers", "spill stores", "spill loads", "stack frame"
    );
    for (k, regs, st, ld, frame) in &rows {
        println!("  {k:<20} {regs:>9} {st:>13} {ld:>12} {frame:>12}");
    }
    let names: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    for entry in kernels::ENTRY_POINTS {
        assert!(
            names.contains(&entry),
            "{what}: ptxas reports no kernel `{entry}`:\n{log}"
        );
    }
    let spilled: u32 = rows.iter().map(|r| r.2 + r.3).sum();
    assert!(
        spilled <= allowed_spill(arch),
        "{what}: kernels spill {spilled} bytes of registers (allowed: {}): {rows:?}",
        allowed_spill(arch)
    );
    assert!(
        rows.iter().all(|r| r.1 > 0),
        "{what}: a kernel without a register count:\n{log}"
    );
}

/// A process compiles each NVRTC, target and option set once: the second request returns the
/// first's image.
#[test]
fn the_program_is_compiled_once_per_process() {
    let chains = match toolchains() {
        Ok(c) => c,
        Err(why) => return skip(&why),
    };
    let nvrtc = match Nvrtc::open(&chains[0].0) {
        Ok(n) => n,
        Err(why) => return skip(&format!("NVRTC {}: {why}", chains[0].0)),
    };
    let (a, fresh_a) =
        kernels::compile_once(&nvrtc, "compute_90", 256).unwrap_or_else(|e| panic!("{e}"));
    let (b, fresh_b) =
        kernels::compile_once(&nvrtc, "compute_90", 256).unwrap_or_else(|e| panic!("{e}"));
    assert!(fresh_a && !fresh_b, "compiled twice: {fresh_a} {fresh_b}");
    assert_eq!(a, b);
    let (_, fresh_c) =
        kernels::compile_once(&nvrtc, "compute_90", 512).unwrap_or_else(|e| panic!("{e}"));
    assert!(fresh_c, "another block size needs its own compile");
    // The device's own architecture gives a cubin (what the backend loads when it can).
    let (cubin, _) = kernels::compile_once(&nvrtc, "sm_90", 256).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        matches!(&cubin, Image::Cubin(b) if b.starts_with(b"\x7fELF")),
        "sm_90 did not give an ELF cubin"
    );
    assert_eq!(nvrtc.target_for(90).as_deref(), Some("sm_90"));
}

#[test]
fn ptxas_output_is_parsed() {
    let log = "ptxas info    : Compiling entry function 'adam_forward' for 'sm_90'\n\
ptxas info    : Function properties for adam_forward\n\
    8 bytes stack frame, 4 bytes spill stores, 12 bytes spill loads\n\
ptxas info    : Used 30 registers, used 1 barriers, 8 bytes smem, 400 bytes cmem[0]\n";
    assert_eq!(
        parse_ptxas(log),
        vec![("adam_forward".to_string(), 30, 4, 12, 8)]
    );
}
