//! Central finite differences in float64 against every backward pass: each layer on its own
//! (embedding, GRU over sequences of mixed lengths, output layer + weighted CE) and the whole
//! weighted support loss. Every coordinate of every tensor is checked (the models are small), and
//! the error is `||g_fd − g|| / ||g||` per tensor, required under 1e-6.

use recmaml::backend::Task;
use recmaml::cpu::embedding::{embedding_backward, embedding_forward};
use recmaml::cpu::forest::SeqForest;
use recmaml::cpu::gru::{
    gru_backward, gru_block_len, gru_forward, gru_split, gru_split_mut, GruCache,
};
use recmaml::cpu::output_ce::{output_ce_backward, output_ce_forward, OutputWeights};
use recmaml::cpu::simd::transpose;
use recmaml::cpu::{self, Engine};
use recmaml::model::{ModelDims, ParamLayout};
use recmaml::rng::Rng;

const TOL: f64 = 1e-6;
/// Step of the central differences: truncation error ~ STEP² and round-off ~ 1e-16 / STEP are
/// both far below the tolerance for O(1) losses.
const STEP: f64 = 1e-5;

fn uniform(rng: &mut Rng, n: usize, a: f64) -> Vec<f64> {
    (0..n).map(|_| rng.uniform(-a, a)).collect()
}

/// `(f(x + STEP e_i) − f(x − STEP e_i)) / 2 STEP` for every coordinate i of `x`.
fn numeric_grad(x: &mut [f64], mut f: impl FnMut(&[f64]) -> f64) -> Vec<f64> {
    (0..x.len())
        .map(|i| {
            let orig = x[i];
            x[i] = orig + STEP;
            let up = f(x);
            x[i] = orig - STEP;
            let down = f(x);
            x[i] = orig;
            (up - down) / (2.0 * STEP)
        })
        .collect()
}

fn assert_close(what: &str, analytic: &[f64], numeric: &[f64]) {
    let num: f64 = analytic
        .iter()
        .zip(numeric)
        .map(|(a, n)| (a - n) * (a - n))
        .sum();
    let den: f64 = analytic.iter().map(|a| a * a).sum();
    assert!(
        den > 0.0,
        "{what}: the analytic gradient is zero, the check would be empty"
    );
    let e = (num / den).sqrt();
    assert!(e < TOL, "{what}: relative error {e:.3e}");
}

fn flat(seqs: &[Vec<u32>]) -> (Vec<u32>, Vec<usize>) {
    let mut f = Vec::new();
    let mut o = vec![0];
    for s in seqs {
        f.extend_from_slice(s);
        o.push(f.len());
    }
    (f, o)
}

/// Sequences of mixed lengths (1 to 7) with shared prefixes, repeated items and a duplicate.
fn sequences() -> Vec<Vec<u32>> {
    vec![
        vec![3, 1, 4, 1, 5, 9, 2],
        vec![3, 1, 4],
        vec![7],
        vec![3, 1, 4, 1, 5],
        vec![2, 2, 8],
        vec![7],
        vec![6, 5],
    ]
}

#[test]
fn embedding_gradient() {
    let mut rng = Rng::new(1);
    let (rows, e) = (9, 5);
    let ids = [3u32, 0, 7, 3, 8, 0, 1];
    let c = uniform(&mut rng, ids.len() * e, 1.0);
    let mut table = uniform(&mut rng, rows * e, 1.0);
    let loss = |t: &[f64]| {
        let mut out = vec![0.0; ids.len() * e];
        embedding_forward(&mut out, t, &ids, e);
        out.iter().zip(&c).map(|(o, c)| o * c).sum::<f64>()
    };
    let mut analytic = vec![0.0; rows * e];
    embedding_backward(&mut analytic, &c, &ids, Some(0), e);
    let numeric = numeric_grad(&mut table, loss);
    // Row 0 is padding: read by the forward, never given gradient (nn.Embedding(padding_idx=0)).
    assert!(analytic[..e].iter().all(|&g| g == 0.0));
    assert!(
        numeric[..e].iter().any(|&g| g != 0.0),
        "the padding row is read"
    );
    assert_close("embedding.weight", &analytic[e..], &numeric[e..]);
}

#[test]
fn gru_gradient_over_mixed_lengths() {
    for (e, h, share) in [(5, 4, false), (5, 4, true), (17, 19, true)] {
        let mut rng = Rng::new(2);
        let seqs = sequences();
        let (f, o) = flat(&seqs);
        let mut forest = SeqForest::default();
        forest.build(&f, &o, share);
        let (u, s) = (forest.uniq.len(), seqs.len());
        let mut block = uniform(&mut rng, gru_block_len(e, h), 0.6);
        let mut x = uniform(&mut rng, u * e, 1.0);
        let c = uniform(&mut rng, s * h, 1.0);
        let mut cache = GruCache::default();
        let run = |block: &[f64], x: &[f64], cache: &mut GruCache<f64>| {
            let mut hlast = vec![0.0; s * h];
            gru_forward(&mut hlast, cache, gru_split(block, e, h), x, &forest, e, h);
            hlast.iter().zip(&c).map(|(a, b)| a * b).sum::<f64>()
        };
        run(&block, &x, &mut cache);
        let mut dblock = vec![0.0; block.len()];
        let mut dx = vec![f64::NAN; u * e];
        gru_backward(
            &mut dx,
            gru_split_mut(&mut dblock, e, h),
            &c,
            &mut cache,
            gru_split(&block, e, h),
            &x,
            &forest,
            e,
            h,
        );
        let xc = x.clone();
        let nblock = numeric_grad(&mut block, |b| run(b, &xc, &mut GruCache::default()));
        let bc = block.clone();
        let nx = numeric_grad(&mut x, |xx| run(&bc, xx, &mut GruCache::default()));
        let what = format!("E {e} H {h} share {share}");
        let a = gru_split(&dblock, e, h);
        let n = gru_split(&nblock, e, h);
        assert_close(&format!("{what}: weight_ih"), a.w_ih, n.w_ih);
        assert_close(&format!("{what}: weight_hh"), a.w_hh, n.w_hh);
        assert_close(&format!("{what}: bias_ih"), a.b_ih, n.b_ih);
        assert_close(&format!("{what}: bias_hh"), a.b_hh, n.b_hh);
        assert_close(&format!("{what}: input"), &dx, &nx);
    }
}

#[test]
fn gru_reads_each_sequence_at_its_own_end() {
    // The state of [3, 1, 4] must not depend on items of the longer [3, 1, 4, 1, 5, 9, 2].
    let (e, h) = (5, 4);
    let mut rng = Rng::new(3);
    let block = uniform(&mut rng, gru_block_len(e, h), 0.6);
    let state = |seqs: &[Vec<u32>], share: bool| {
        let (f, o) = flat(seqs);
        let mut forest = SeqForest::default();
        forest.build(&f, &o, share);
        let x: Vec<f64> = forest
            .uniq
            .iter()
            .flat_map(|&id| (0..e).map(move |k| ((id as usize * e + k) as f64).sin()))
            .collect();
        let mut hlast = vec![0.0; seqs.len() * h];
        gru_forward(
            &mut hlast,
            &mut GruCache::default(),
            gru_split(&block, e, h),
            &x,
            &forest,
            e,
            h,
        );
        hlast
    };
    let all = state(&sequences(), false);
    let alone = state(&[vec![3, 1, 4]], false);
    assert_eq!(&all[h..2 * h], &alone[..]);
    assert_eq!(
        state(&sequences(), true),
        all,
        "sharing prefixes changes nothing"
    );
}

#[test]
fn output_ce_gradient() {
    let (v, hd, b) = (23, 6, 4);
    for rank in [0, 3] {
        let mut rng = Rng::new(4);
        let mut w = uniform(&mut rng, v * hd, 0.5);
        let mut bias = uniform(&mut rng, v, 0.5);
        let d = uniform(&mut rng, rank * v, 0.3);
        let g = uniform(&mut rng, rank * hd, 0.3);
        let mut h = uniform(&mut rng, b * hd, 1.0);
        let labels = [3u32, 0, 22, 3];
        let weights = [0.1, 0.2, 0.3, 0.4];
        let loss = |w: &[f64], bias: &[f64], h: &[f64]| {
            let (mut logits, mut lse, mut losses) = (vec![0.0; b * v], vec![0.0; b], vec![0.0; b]);
            let mut wt = vec![0.0; v * hd];
            transpose(&mut wt, w, v, hd);
            let ow = OutputWeights {
                w,
                wt: &wt,
                b: bias,
                d: &d,
                g: &g,
            };
            output_ce_forward(
                &mut logits,
                &mut lse,
                &mut losses,
                &mut Vec::new(),
                h,
                ow,
                &labels,
                &weights,
                v,
                hd,
            )
        };
        let (mut logits, mut lse, mut losses) = (vec![0.0; b * v], vec![0.0; b], vec![0.0; b]);
        let mut wt = vec![0.0; v * hd];
        transpose(&mut wt, &w, v, hd);
        let ow = OutputWeights {
            w: &w,
            wt: &wt,
            b: &bias,
            d: &d,
            g: &g,
        };
        let mut coef = Vec::new();
        output_ce_forward(
            &mut logits,
            &mut lse,
            &mut losses,
            &mut coef,
            &h,
            ow,
            &labels,
            &weights,
            v,
            hd,
        );
        let (mut dlogits, mut dh) = (vec![0.0; b * v], vec![f64::NAN; b * hd]);
        let (mut db, mut dw) = (vec![0.0; v], vec![0.0; v * hd]);
        output_ce_backward(
            &mut dlogits,
            &mut dh,
            &mut db,
            Some(&mut dw),
            &mut coef,
            &logits,
            &lse,
            &h,
            ow,
            &labels,
            &weights,
            v,
            hd,
        );
        let (bc, hc) = (bias.clone(), h.clone());
        let nw = numeric_grad(&mut w, |w| loss(w, &bc, &hc));
        let wc = w.clone();
        let nb = numeric_grad(&mut bias, |bb| loss(&wc, bb, &hc));
        let bc = bias.clone();
        let nh = numeric_grad(&mut h, |hh| loss(&wc, &bc, hh));
        assert_close(&format!("rank {rank}: output.weight"), &dw, &nw);
        assert_close(&format!("rank {rank}: output.bias"), &db, &nb);
        assert_close(&format!("rank {rank}: hidden"), &dh, &nh);
    }
}

/// A small model with random weights and two tasks whose prefixes have mixed lengths.
struct Setup {
    layout: ParamLayout,
    theta: Vec<f64>,
    prefixes: Vec<Vec<Vec<u32>>>,
    labels: Vec<Vec<u32>>,
    weights: Vec<f64>,
}

fn setup() -> Setup {
    let layout = ParamLayout::new(ModelDims {
        n_items: 31,
        embed_dim: 6,
        hidden_dim: 5,
    });
    let mut rng = Rng::new(5);
    let theta = uniform(&mut rng, layout.len, 0.5);
    Setup {
        layout,
        theta,
        prefixes: vec![
            sequences(),
            vec![
                vec![30, 29],
                vec![30, 29, 28, 27],
                vec![1],
                vec![12, 13, 14, 15, 16, 17, 18, 19, 20],
            ],
        ],
        labels: vec![vec![5, 9, 1, 2, 30, 7, 9], vec![28, 26, 4, 20]],
        weights: vec![0.02, 0.08, 0.1, 0.15, 0.2, 0.2, 0.25],
    }
}

impl Setup {
    /// Task: support = first prefixes/labels, query = second.
    fn task<'a>(&'a self, w32: &'a [f32]) -> Task<'a> {
        Task {
            support_prefixes: &self.prefixes[0],
            support_labels: &self.labels[0],
            support_weights: w32,
            query_prefixes: &self.prefixes[1],
            query_labels: &self.labels[1],
        }
    }
}

#[test]
fn whole_support_loss_gradient() {
    let s = setup();
    let w32: Vec<f32> = s.weights.iter().map(|&w| w as f32).collect();
    let task = s.task(&w32);
    let mut analytic = vec![0.0; s.layout.len];
    cpu::support_loss_grad(&s.layout, &s.theta, &task, &s.weights, &mut analytic).unwrap();
    let mut theta = s.theta.clone();
    let numeric = numeric_grad(&mut theta, |t| {
        cpu::support_loss_grad(&s.layout, t, &task, &s.weights, &mut vec![0.0; t.len()]).unwrap()
    });
    for t in &s.layout.tensors {
        let r = t.range();
        assert_close(t.name, &analytic[r.clone()], &numeric[r]);
    }
}

#[test]
fn whole_query_loss_gradient_at_adapted_weights() {
    let s = setup();
    let w32: Vec<f32> = s.weights.iter().map(|&w| w as f32).collect();
    let task = s.task(&w32);
    let mut phi = vec![0.0; s.layout.len];
    cpu::adapt(&s.layout, &s.theta, &task, &s.weights, 0.3, 3, &mut phi).unwrap();
    let mut analytic = vec![0.0; s.layout.len];
    cpu::query_loss_grad(&s.layout, &phi, &task, &mut analytic).unwrap();
    let numeric = numeric_grad(&mut phi, |p| {
        cpu::query_loss_grad(&s.layout, p, &task, &mut vec![0.0; p.len()]).unwrap()
    });
    for t in &s.layout.tensors {
        let r = t.range();
        assert_close(t.name, &analytic[r.clone()], &numeric[r]);
    }
}

/// The inner loop keeps its fast weights compactly (task rows of the embedding, low-rank
/// `output.weight`); it must equal plain dense SGD on the support gradient.
#[test]
fn compact_inner_loop_equals_dense_sgd() {
    let s = setup();
    let w32: Vec<f32> = s.weights.iter().map(|&w| w as f32).collect();
    let task = s.task(&w32);
    let (lr, steps) = (0.4, 4);
    let mut dense = s.theta.clone();
    for _ in 0..steps {
        let mut g = vec![0.0; dense.len()];
        cpu::support_loss_grad(&s.layout, &dense, &task, &s.weights, &mut g).unwrap();
        for (p, g) in dense.iter_mut().zip(&g) {
            *p -= lr * g;
        }
    }
    let mut phi = vec![0.0; s.layout.len];
    cpu::adapt(&s.layout, &s.theta, &task, &s.weights, lr, steps, &mut phi).unwrap();
    let moved: Vec<f64> = dense.iter().zip(&s.theta).map(|(a, b)| a - b).collect();
    let got: Vec<f64> = phi.iter().zip(&s.theta).map(|(a, b)| a - b).collect();
    assert_close("adapted − θ", &got, &moved);
    let err = moved
        .iter()
        .zip(&got)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(err < 1e-12, "largest difference {err:e}");
}

/// The engine's meta-gradient is the mean of the per-task query gradients at adapted weights.
#[test]
fn meta_gradient_is_the_mean_of_task_gradients() {
    let s = setup();
    let w32: Vec<f32> = s.weights.iter().map(|&w| w as f32).collect();
    let t1 = s.task(&w32);
    // Second task: support and query swapped (K 4, Q 7) with K weights of its own.
    let w2 = [0.1, 0.2, 0.3, 0.4];
    let w2_32 = [0.1f32, 0.2, 0.3, 0.4];
    let t2 = Task {
        support_prefixes: &s.prefixes[1],
        support_labels: &s.labels[1],
        support_weights: &w2_32,
        query_prefixes: &s.prefixes[0],
        query_labels: &s.labels[0],
    };
    let (lr, steps) = (0.2, 2);
    let mut expected = vec![0.0; s.layout.len];
    let mut loss = 0.0;
    for (t, w) in [(&t1, &s.weights[..]), (&t2, &w2[..])] {
        let mut phi = vec![0.0; s.layout.len];
        cpu::adapt(&s.layout, &s.theta, t, w, lr, steps, &mut phi).unwrap();
        loss += cpu::query_loss_grad(&s.layout, &phi, t, &mut expected).unwrap() / 2.0;
    }
    expected.iter_mut().for_each(|g| *g /= 2.0);
    let mut eng = Engine::<f64>::new(s.layout.clone(), s.theta.clone()).unwrap();
    let mut got = vec![f64::NAN; s.layout.len];
    let meta = eng
        .meta_gradient_weighted(&[t1, t2], &[&s.weights, &w2], lr, steps, &mut got)
        .unwrap();
    assert!((meta - loss).abs() < 1e-12 * loss);
    assert_close("meta-gradient", &got, &expected);
}
