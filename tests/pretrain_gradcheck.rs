//! The pretraining loss with a fixed dropout mask against central finite differences in float64,
//! and the statistics of the dropout masks a run draws.
//!
//! The gradient check runs [`PairGrad::loss_grad`] itself (the CPU backend's pretraining step
//! takes its gradient from it) on a tiny model, over a batch larger than the step's 8 chunks, with prefixes of length 1
//! and longer than the prefix cap. Every coordinate of every tensor is checked; the error is
//! `||g_fd − g|| / ||g||` per tensor, required under 1e-6, as in tests/gradcheck.rs.

use recmaml::cpu::PairGrad;
use recmaml::model::{ModelDims, ParamLayout};
use recmaml::pretrain::Dropout;
use recmaml::rng::Rng;

const TOL: f64 = 1e-6;
/// Step of the central differences: truncation error ~ STEP² and round-off ~ 1e-16 / STEP are
/// both far below the tolerance for O(1) losses.
const STEP: f64 = 1e-5;
const CAP: usize = 4;
/// Item 10 appears only in the part of a prefix that the cap cuts off.
const CUT_ITEM: usize = 10;

fn layout() -> ParamLayout {
    ParamLayout::new(ModelDims {
        n_items: 12,
        embed_dim: 4,
        hidden_dim: 5,
    })
}

/// 11 pairs (chunks of 2, the last of 1): prefixes of length 1, prefixes of one another (shared
/// in the forest), a repeated item, and two longer than `CAP`.
fn pairs() -> (Vec<Vec<u32>>, Vec<u32>) {
    let prefixes = vec![
        vec![3],
        vec![3, 7],
        vec![10, 3, 7, 2, 9, 5],
        vec![8],
        vec![5, 5, 5],
        vec![1, 2],
        vec![6, 1, 8, 2, 11, 4, 9],
        vec![11, 4, 6],
        vec![9],
        vec![3, 7, 2],
        vec![4, 6, 11, 1],
    ];
    let labels = vec![7, 2, 4, 1, 5, 11, 3, 8, 6, 9, 2];
    let cut = |p: &Vec<u32>| {
        p.iter()
            .rposition(|&x| x == CUT_ITEM as u32)
            .is_none_or(|i| i + CAP < p.len())
    };
    assert!(prefixes.iter().all(cut));
    (prefixes, labels)
}

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

fn rel_err(analytic: &[f64], numeric: &[f64]) -> f64 {
    let num: f64 = analytic
        .iter()
        .zip(numeric)
        .map(|(a, n)| (a - n) * (a - n))
        .sum();
    let den: f64 = analytic.iter().map(|a| a * a).sum();
    (num / den).sqrt()
}

/// The analytic gradient of the batch's mean CE with dropout multipliers `mask` against central
/// differences of the same loss, per tensor; returns the numeric gradient.
fn check(what: &str, cap: usize, mask: &[f64]) -> Vec<f64> {
    let layout = layout();
    let (prefixes, labels) = pairs();
    let mut theta = uniform(&mut Rng::new(11), layout.len, 0.5);
    let mut tr = PairGrad::<f64>::new(&layout, cap);
    tr.loss_grad(&theta, &prefixes, &labels, mask).unwrap();
    let analytic = tr.grad().to_vec();
    let numeric = numeric_grad(&mut theta, |t| {
        tr.loss_grad(t, &prefixes, &labels, mask).unwrap()
    });
    for t in &layout.tensors {
        let (a, n) = (&analytic[t.range()], &numeric[t.range()]);
        assert!(
            a.iter().any(|&g| g != 0.0),
            "{what}: {}: the analytic gradient is zero, the check would be empty",
            t.name
        );
        let e = rel_err(a, n);
        assert!(e < TOL, "{what}: {}: relative error {e:.3e}", t.name);
    }
    // Row 0 is padding (never in a prefix, and given no gradient).
    let e = layout.dims.embed_dim;
    assert!(analytic[..e].iter().all(|&g| g == 0.0));
    numeric
}

/// Multipliers `[B, H]`: the rows of pairs 3 and 8 all zero (the whole state dropped), the rest
/// zero with probability 0.3 and otherwise uniform in [0.5, 2], so that the backward must use
/// each multiplier where the forward did.
fn general_mask(b: usize, h: usize) -> Vec<f64> {
    let mut rng = Rng::new(5);
    (0..b * h)
        .map(|i| {
            if i / h == 3 || i / h == 8 || rng.next_f64() < 0.3 {
                0.0
            } else {
                rng.uniform(0.5, 2.0)
            }
        })
        .collect()
}

#[test]
fn pretraining_gradient_with_a_fixed_mask_matches_finite_differences() {
    let h = layout().dims.hidden_dim;
    let b = pairs().1.len();
    let mask = general_mask(b, h);
    assert!(mask.contains(&0.0) && mask.iter().any(|&m| m > 1.0));
    check("general mask", CAP, &mask);

    // A dropout keep pattern at p = 0.3, as a run's multipliers (0 or 1/0.7).
    let mut rng = Rng::new(9);
    let kept: Vec<bool> = (0..b * h).map(|_| rng.next_f64() >= 0.3).collect();
    let mut drop = Vec::new();
    Dropout { p: 0.3 }.multipliers::<f64>(&kept, &mut drop);
    assert!(kept.contains(&false) && kept.contains(&true));
    check("dropout p 0.3", CAP, &drop);
}

#[test]
fn items_cut_off_by_the_prefix_cap_get_no_gradient() {
    let (e, h) = (layout().dims.embed_dim, layout().dims.hidden_dim);
    let mask = vec![1.0; pairs().1.len() * h];
    let row = CUT_ITEM * e..(CUT_ITEM + 1) * e;
    let cut = check("no dropout, cap 4", CAP, &mask);
    assert!(
        cut[row.clone()].iter().all(|&g| g == 0.0),
        "item {CUT_ITEM} lies beyond the cap but moves the loss: {:?}",
        &cut[row]
    );
    // Without the cap the same item does move the loss: the cap is what removed it.
    let whole = check("no dropout, cap 100", 100, &mask);
    assert!(whole[row].iter().any(|&g| g.abs() > 1e-6));
}

/// Within `z` standard deviations of the binomial count `n (1 − p)`.
fn assert_binomial(kept: usize, n: usize, p: f64, what: &str) {
    let (mean, sd) = (n as f64 * (1.0 - p), (n as f64 * p * (1.0 - p)).sqrt());
    let z = (kept as f64 - mean) / sd;
    assert!(
        z.abs() < 5.0,
        "{what}: kept {kept} of {n} ({:.4}), expected 1 − p = {:.4} ({z:+.1} sd)",
        kept as f64 / n as f64,
        1.0 - p
    );
}

#[test]
fn dropout_draws_keep_one_minus_p_and_scale_kept_by_its_inverse() {
    let (batch, h) = (256, 7);
    for p in [0.2, 0.3, 0.5, 0.9] {
        let d = Dropout { p };
        let scale = 1.0 / (1.0 - p);
        let mut rng = Rng::new(17);
        let (mut mask, mut mask64) = (Vec::<f32>::new(), Vec::<f64>::new());
        let (mut n, mut kept, mut sum) = (0usize, 0usize, 0.0f64);
        let mut first_batch = Vec::new();
        for i in 0..200 {
            d.draw(&mut rng, batch * h, &mut mask);
            assert_eq!(mask.len(), batch * h);
            for &m in &mask {
                assert!(
                    m == 0.0 || m == scale as f32,
                    "p {p}: multiplier {m}, expected 0 or 1/(1 − p) = {scale}"
                );
            }
            n += mask.len();
            kept += mask.iter().filter(|&&m| m != 0.0).count();
            sum += mask.iter().map(|&m| m as f64).sum::<f64>();
            if i == 0 {
                first_batch = mask.clone();
            }
        }
        assert_binomial(kept, n, p, &format!("p {p}"));
        assert_ne!(first_batch, mask, "p {p}: every batch gets the same mask");
        // Inverted dropout keeps the expected activation: the mean multiplier is 1.
        let mean = sum / n as f64;
        let sd = (p / (1.0 - p) / n as f64).sqrt();
        assert!(
            (mean - 1.0).abs() < 5.0 * sd,
            "p {p}: mean multiplier {mean}"
        );

        // The float64 multipliers of the same draws: the same pattern, the scale in f64.
        let (mut a, mut b) = (Rng::new(3), Rng::new(3));
        d.draw(&mut a, 1000, &mut mask);
        d.draw(&mut b, 1000, &mut mask64);
        for (&x, &y) in mask.iter().zip(&mask64) {
            assert_eq!(x == 0.0, y == 0.0);
            assert!(y == 0.0 || y == scale, "p {p}: f64 multiplier {y}");
        }

        // A given keep pattern maps to the same multipliers.
        let kept: Vec<bool> = mask64.iter().map(|&m| m != 0.0).collect();
        let mut given = Vec::new();
        d.multipliers::<f64>(&kept, &mut given);
        assert_eq!(given, mask64);
    }

    // p 0: every multiplier 1, and nothing is drawn (the run's shuffles stay as they were).
    let mut rng = Rng::new(23);
    let mut mask = Vec::<f32>::new();
    Dropout { p: 0.0 }.draw(&mut rng, 50, &mut mask);
    assert_eq!(mask, vec![1.0; 50]);
    assert_eq!(rng.next_u64(), Rng::new(23).next_u64());
}
