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
    let (t, cpu0) = (Instant::now(), cpu_seconds());
    let mut last = 0.0;
    for b in 0..iters {
        last = cpu
            .meta_step(&w.batch(b + 3), &w.inner, &w.outer)?
            .meta_loss;
    }
    let s = t.elapsed().as_secs_f64();
    let c = cpu_seconds() - cpu0;
    println!(
        "{iters} meta-iterations in {s:.3} s: {:.2} it/s, {:.1} ms CPU each (threads {}, share {share}, last meta-loss {last:.4})",
        iters as f64 / s,
        1e3 * c / iters as f64,
        rayon::current_num_threads()
    );
    Ok(())
}

/// User + system CPU time of this process (Linux /proc; 0 elsewhere), so that a busy machine
/// does not hide the cost of an iteration.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, r)| r.split_whitespace().collect())
        .unwrap_or_default();
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (tick(11) + tick(12)) / 100.0
}
