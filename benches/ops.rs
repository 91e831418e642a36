//! Criterion micro-benchmarks of the CPU engine's ops at the reference sizes (V 1519, E 64, H 64):
//! the GRU forward and backward over one task's 15 prefixes (K 5 + Q 10, XuetangX-like lengths,
//! as `recmaml bench` generates them), the output layer with weighted cross-entropy forward and
//! backward on those 15 hidden states, one SGD step and one Adam step over all P parameters.
//!
//! `cargo bench --bench ops` (add `-- gru` to run the ones whose name contains `gru`).

use criterion::{criterion_group, criterion_main, Criterion};
use recmaml::cpu::adam::{adam_step, Adam};
use recmaml::cpu::forest::SeqForest;
use recmaml::cpu::gru::{
    gru_backward, gru_block_len, gru_forward, gru_split, gru_split_mut, GruCache,
};
use recmaml::cpu::output_ce::{output_ce_backward, output_ce_forward, OutputWeights};
use recmaml::cpu::sgd::sgd;
use recmaml::data::workload::generate_episodes;
use recmaml::model::init::init_params;
use recmaml::model::{ModelDims, ParamLayout};
use recmaml::rng::Rng;
use std::hint::black_box;

const V: usize = 1519;
const E: usize = 64;
const H: usize = 64;

/// One reference task's prefixes as a packed forest (no prefix sharing: PyTorch's layout), its
/// labels, and uniform sample weights.
struct Inputs {
    forest: SeqForest,
    x: Vec<f32>,
    labels: Vec<u32>,
    weights: Vec<f32>,
}

fn inputs() -> Inputs {
    let ep = generate_episodes(1, 5, 10, V, 50, 1).remove(0);
    let prefixes: Vec<&Vec<u32>> = ep
        .support_prefixes
        .iter()
        .chain(&ep.query_prefixes)
        .collect();
    let mut flat = Vec::new();
    let mut offsets = vec![0];
    for p in &prefixes {
        flat.extend_from_slice(p);
        offsets.push(flat.len());
    }
    let mut forest = SeqForest::default();
    forest.build(&flat, &offsets, false);
    let mut rng = Rng::new(2);
    let x = (0..forest.uniq.len() * E)
        .map(|_| rng.normal() as f32 * 0.1)
        .collect();
    let labels: Vec<u32> = ep
        .support_labels
        .iter()
        .chain(&ep.query_labels)
        .copied()
        .collect();
    let weights = vec![1.0 / labels.len() as f32; labels.len()];
    Inputs {
        forest,
        x,
        labels,
        weights,
    }
}

fn random(n: usize, seed: u64, scale: f64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..n).map(|_| (rng.normal() * scale) as f32).collect()
}

fn bench_gru(c: &mut Criterion) {
    let inp = inputs();
    let block = random(gru_block_len(E, H), 3, 0.1);
    let w = gru_split(&block, E, H);
    let s = inp.forest.n_seqs();
    let mut hlast = vec![0.0f32; s * H];
    let mut cache = GruCache::default();
    c.bench_function("gru_forward (15 prefixes, E 64, H 64)", |b| {
        b.iter(|| {
            gru_forward(
                &mut hlast,
                &mut cache,
                w,
                black_box(&inp.x),
                &inp.forest,
                E,
                H,
            )
        })
    });
    let dhlast = random(s * H, 4, 1.0);
    let mut dx = vec![0.0f32; inp.x.len()];
    let mut dblock = vec![0.0f32; block.len()];
    gru_forward(&mut hlast, &mut cache, w, &inp.x, &inp.forest, E, H);
    c.bench_function("gru_backward (15 prefixes, E 64, H 64)", |b| {
        b.iter(|| {
            gru_backward(
                &mut dx,
                gru_split_mut(&mut dblock, E, H),
                black_box(&dhlast),
                &mut cache,
                w,
                &inp.x,
                &inp.forest,
                E,
                H,
            )
        })
    });
}

fn bench_output_ce(c: &mut Criterion) {
    let inp = inputs();
    let b_n = inp.labels.len();
    let w = random(V * H, 5, 0.1);
    let mut wt = vec![0.0f32; V * H];
    for i in 0..V {
        for j in 0..H {
            wt[j * V + i] = w[i * H + j];
        }
    }
    let bias = random(V, 6, 0.1);
    let ow = OutputWeights {
        w: &w,
        wt: &wt,
        b: &bias,
        d: &[],
        g: &[],
    };
    let h = random(b_n * H, 7, 0.5);
    let (mut logits, mut lse, mut losses, mut coef) = (
        vec![0.0f32; b_n * V],
        vec![0.0; b_n],
        vec![0.0; b_n],
        Vec::new(),
    );
    c.bench_function("output_ce_forward (15 samples, V 1519, H 64)", |b| {
        b.iter(|| {
            output_ce_forward(
                &mut logits,
                &mut lse,
                &mut losses,
                &mut coef,
                black_box(&h),
                ow,
                &inp.labels,
                &inp.weights,
                V,
                H,
            )
        })
    });
    let (mut dlogits, mut dh, mut db, mut dw) = (
        vec![0.0f32; b_n * V],
        vec![0.0f32; b_n * H],
        vec![0.0f32; V],
        vec![0.0f32; V * H],
    );
    c.bench_function("output_ce_backward (15 samples, dense dW)", |b| {
        b.iter(|| {
            output_ce_backward(
                &mut dlogits,
                &mut dh,
                &mut db,
                Some(&mut dw),
                &mut coef,
                black_box(&logits),
                &lse,
                &h,
                ow,
                &inp.labels,
                &inp.weights,
                V,
                H,
            )
        })
    });
}

fn bench_updates(c: &mut Criterion) {
    let layout = ParamLayout::new(ModelDims {
        n_items: V,
        embed_dim: E,
        hidden_dim: H,
    });
    let p = layout.len;
    let mut theta = init_params(&layout, 1);
    let grads = random(p, 8, 1e-3);
    c.bench_function(&format!("sgd (P {p})"), |b| {
        b.iter(|| sgd(&mut theta, black_box(&grads), 0.01))
    });
    let (mut m, mut v) = (vec![0.0f32; p], vec![0.0f32; p]);
    let cfg = Adam {
        lr: 1e-3f32,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
    };
    let mut step = 0u64;
    c.bench_function(&format!("adam_step (P {p})"), |b| {
        b.iter(|| {
            step += 1;
            adam_step(&mut theta, black_box(&grads), &mut m, &mut v, step, &cfg)
        })
    });
}

criterion_group!(benches, bench_gru, bench_output_ce, bench_updates);
criterion_main!(benches);
