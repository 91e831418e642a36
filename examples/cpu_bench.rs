//! Times meta-iterations of the CPU backend on the reference workload:
//! `cargo run --release --example cpu_bench [iterations] [share 0|1]`.

use recmaml::backend::Backend;
use recmaml::cpu::bench::reference_workload;
use recmaml::cpu::Cpu;
use std::time::Instant;

fn main() -> recmaml::Result<()> {
    let mut args = std::env::args().skip(1);
    let iters: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(30);
    let share = args.next().map(|a| a != "0").unwrap_or(true);
    let w = reference_workload(42, 320);
    let mut cpu = Cpu::new(w.layout.clone(), w.theta.clone())?;
    cpu.set_share_prefixes(share);
    for b in 0..3 {
        cpu.meta_step(&w.batch(b), &w.inner, &w.outer)?;
    }
    let t = Instant::now();
    let mut last = 0.0;
    for b in 0..iters {
        last = cpu
            .meta_step(&w.batch(b + 3), &w.inner, &w.outer)?
            .meta_loss;
    }
    let s = t.elapsed().as_secs_f64();
    println!(
        "{iters} meta-iterations in {s:.3} s: {:.2} it/s (threads {}, share {share}, last meta-loss {last:.4})",
        iters as f64 / s,
        rayon::current_num_threads()
    );
    Ok(())
}
