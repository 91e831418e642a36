//! Compiles every CUDA kernel with NVRTC for sm_90 (PTX for compute_90) and assembles the PTX
//! with `ptxas -arch=sm_90 -v`, printing registers and spills per kernel; a compile error or any
//! spill fails. Needs no GPU. Without NVRTC (LD_LIBRARY_PATH) or ptxas (`RECMAML_PTXAS`, else
//! `ptxas` on PATH) it is skipped with the reason, unless `RECMAML_REQUIRE_NVRTC=1` (CI), in
//! which case it fails.

mod common;

use recmaml::cuda::program as kernels;
use std::path::PathBuf;
use std::process::Command;

fn skip(reason: &str) {
    common::skip(common::Needs::Nvrtc, reason);
}

fn ptxas() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("RECMAML_PTXAS") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("ptxas"))
        .find(|p| p.is_file())
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
fn every_kernel_compiles_for_sm90_without_spills() {
    if !kernels::nvrtc_available() {
        return skip("NVRTC (libnvrtc.so) not found; put the nvidia-cuda-nvrtc wheel's lib folder on LD_LIBRARY_PATH");
    }
    let Some(ptxas) = ptxas() else {
        return skip("ptxas not found; set RECMAML_PTXAS (the nvidia-cuda-nvcc wheel's bin/ptxas)");
    };
    let (major, minor) = kernels::nvrtc_version().expect("NVRTC version");
    // The default block size (768 threads: 80 registers per thread) and a smaller one. At some
    // other sizes (256, 512, 1024) ptxas spills a few bytes in the task kernels, even where the
    // register cap is not reached; a tuning run may still choose them.
    // The kernels in the binary, then each variant under kernels/variants/.
    let mut programs = vec![("main".to_string(), kernels::program_source())];
    let variants = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("kernels/variants");
    for dir in kernels::variant_dirs(&variants).unwrap() {
        let src = kernels::program_source_from(&dir).unwrap_or_else(|e| panic!("{e}"));
        programs.push((dir.file_name().unwrap().to_string_lossy().into_owned(), src));
    }
    for (name, src) in &programs {
        for block in [kernels::DEFAULT_BLOCK, 384] {
            compile_and_assemble(&ptxas, name, src, block, (major, minor));
        }
    }
}

fn compile_and_assemble(
    ptxas: &PathBuf,
    name: &str,
    src: &str,
    block: u32,
    (major, minor): (i32, i32),
) {
    let t0 = std::time::Instant::now();
    let ptx =
        kernels::compile_ptx_source(src, "compute_90", block).unwrap_or_else(|e| panic!("{e}"));
    println!(
        "NVRTC {major}.{minor}, kernels `{name}`, {block} threads per block: compiled in {:.0} ms",
        t0.elapsed().as_secs_f64() * 1e3
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("recmaml.ptx");
    std::fs::write(&file, ptx.to_src()).unwrap();
    let out = Command::new(ptxas)
        .args(["-arch=sm_90", "-v", "-o"])
        .arg(dir.path().join("recmaml.cubin"))
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", ptxas.display()));
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "ptxas failed ({block} threads):\n{log}"
    );
    let rows = parse_ptxas(&log);
    println!(
        "{:<22} {:>9} {:>13} {:>12} {:>12}",
        format!("{name} (sm_90, {block})"),
        "registers",
        "spill stores",
        "spill loads",
        "stack frame"
    );
    for (name, regs, st, ld, frame) in &rows {
        println!("{name:<22} {regs:>9} {st:>13} {ld:>12} {frame:>12}");
    }
    let names: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    for entry in kernels::ENTRY_POINTS {
        assert!(
            names.contains(&entry),
            "ptxas reports no kernel `{entry}` ({block} threads):\n{log}"
        );
    }
    let spilling: Vec<_> = rows.iter().filter(|r| r.2 > 0 || r.3 > 0).collect();
    assert!(
        spilling.is_empty(),
        "kernels `{name}` spill registers at {block} threads per block: {spilling:?}"
    );
    assert!(
        rows.iter().all(|r| r.1 > 0),
        "a kernel without a register count:\n{log}"
    );
}

/// A process compiles each option set once: the second request returns the first's PTX.
#[test]
fn the_program_is_compiled_once_per_process() {
    if !kernels::nvrtc_available() {
        return skip("NVRTC (libnvrtc.so) not found");
    }
    let (a, fresh_a) =
        kernels::compile_ptx_once("compute_90", 256).unwrap_or_else(|e| panic!("{e}"));
    let (b, fresh_b) =
        kernels::compile_ptx_once("compute_90", 256).unwrap_or_else(|e| panic!("{e}"));
    assert!(fresh_a && !fresh_b, "compiled twice: {fresh_a} {fresh_b}");
    assert_eq!(a.to_src(), b.to_src());
    let (_, fresh_c) =
        kernels::compile_ptx_once("compute_90", 512).unwrap_or_else(|e| panic!("{e}"));
    assert!(fresh_c, "another block size needs its own compile");
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
