//! How a backend's results are compared with the CPU engine's: relative differences that fail
//! on anything they cannot compare (a dropped output, an unwritten NaN element, a reference of
//! zeros), Adam updates rather than weights, and the rows of one meta-step.

use crate::backend::{AdamState, Backend, OuterConfig};
use crate::error::Result;
use crate::model::{ParamLayout, ParamTensor};

/// How `got` differs from the reference `want`:
/// `Ok((||got - want|| / ||want||, max |got - want| / max |want|))` (L2 norms, as in the PyTorch
/// fixtures' tolerance; the max-norm form is shown beside it). `Err` says why the two cannot be
/// compared, and counts as a failure: different lengths (a dropped or extra output), an empty
/// reference (nothing would be compared), a NaN or infinity in either (in `got`: an unwritten,
/// poisoned element), or a reference of zeros that `got` does not match exactly (there is no
/// scale to be relative to).
pub fn rel_diff<T: Copy + Into<f64>>(got: &[T], want: &[T]) -> Result<(f64, f64), String> {
    if got.len() != want.len() {
        return Err(format!(
            "{} values where the reference has {}",
            got.len(),
            want.len()
        ));
    }
    if want.is_empty() {
        return Err("the reference is empty".into());
    }
    for (side, xs) in [("", got), ("reference ", want)] {
        if let Some(i) = xs.iter().position(|&x| !x.into().is_finite()) {
            return Err(format!("{side}element {i} is {}", xs[i].into()));
        }
    }
    let (mut d2, mut b2, mut dmax, mut bmax) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    for (&x, &y) in got.iter().zip(want) {
        let (x, y): (f64, f64) = (x.into(), y.into());
        d2 += (x - y) * (x - y);
        b2 += y * y;
        dmax = dmax.max((x - y).abs());
        bmax = bmax.max(y.abs());
    }
    if b2 == 0.0 {
        return if d2 == 0.0 {
            Ok((0.0, 0.0))
        } else {
            Err(format!(
                "the reference is all zeros, the values are not (max |difference| {dmax:.3e})"
            ))
        };
    }
    Ok((d2.sqrt() / b2.sqrt(), dmax / bmax))
}

/// The relative difference of the scalar `got` from the reference `want`, in both columns; as
/// in [`rel_diff`], a non-finite value or a zero reference that `got` does not match is an `Err`.
pub fn rel_scalar(got: f64, want: f64) -> Result<(f64, f64), String> {
    rel_diff(&[got], &[want])
}

/// `after - before` elementwise, in double (each side rounded to f32 once, by its backend);
/// `Err` when the lengths differ.
pub fn update(after: &[f32], before: &[f32]) -> Result<Vec<f64>, String> {
    if after.len() != before.len() {
        return Err(format!(
            "{} values after the step, {} before it",
            after.len(),
            before.len()
        ));
    }
    Ok(after
        .iter()
        .zip(before)
        .map(|(&a, &b)| a as f64 - b as f64)
        .collect())
}

/// The relative difference of `got`'s update from `want`'s, per [`rel_diff`]; a reference
/// that did not change at all is an `Err` (there would be nothing to compare).
pub fn update_diff(
    (got_after, got_before): (&[f32], &[f32]),
    (want_after, want_before): (&[f32], &[f32]),
) -> Result<(f64, f64), String> {
    let want = update(want_after, want_before)?;
    if want.iter().all(|&d| d == 0.0) {
        return Err("the reference did not change, so nothing is compared".into());
    }
    rel_diff(&update(got_after, got_before)?, &want)
}

/// One backend's θ and Adam state.
#[derive(Clone, Debug)]
pub struct State {
    pub theta: Vec<f32>,
    pub adam: AdamState,
}

impl State {
    /// A backend's θ and Adam state, read back.
    pub fn of(b: &impl Backend) -> Result<Self> {
        Ok(State {
            theta: b.params()?,
            adam: b.adam()?,
        })
    }
}

/// The outer steps of the checks, with `lr` as the rate, from the norm of the meta-gradient at
/// θ (`norm`): the first allows four times that norm (clipping on, but not scaling), the second
/// clips to a quarter of it (scaling the gradient by about 1/4). Adam's update does not change
/// when every gradient it has seen is scaled alike, so a clip scale that is wrong on every step
/// would not show in θ; after these two, the second update weighs its own gradient 4× less
/// against the first than an unclipped one would, which moves it by about a quarter. Clipping
/// the second step rather than the first also keeps the first step's gradients well above
/// Adam's ε, where rounding differences would be amplified. The second item of each pair:
/// whether the clip must scale on that step.
pub fn clip_schedule(norm: f64, lr: f32) -> [(OuterConfig, bool); 2] {
    [
        (OuterConfig::adam(lr, (norm * 4.0) as f32), false),
        (OuterConfig::adam(lr, (norm / 4.0) as f32), true),
    ]
}

/// The tolerances of [`step_rows`].
#[derive(Clone, Copy, Debug)]
pub struct StepTols {
    /// Adam's moments and the gradient norm (as for the meta-gradient).
    pub state: f64,
    /// Each tensor's update θ_after − θ_before, relative to the reference update's norm.
    pub update: f64,
}

/// One compared quantity: its name, the difference, the tolerance.
pub type Row = (String, Result<(f64, f64), String>, f64);

/// The rows comparing meta-step `k` of the GPU path with the CPU engine's; each side's state
/// before and after the step and the gradient norm it reported (before clipping). Compared:
/// the gradient norm; Adam's moments m and v over all parameters (m is linear in the clipped
/// gradients, m_k = β1 m_(k-1) + (1 − β1) c_k g_k, so a wrong clip scale c_k shows there in
/// full); the step counter; and the update θ_after − θ_before of each named tensor relative to
/// the CPU update's norm (the first step's update is about lr × sign(gradient) whatever the
/// clip; the second depends on both steps' clip scales and on the bias corrections). Also a
/// row that fails unless the CPU engine's clip did (or did not) scale, as `outer` meant.
pub fn step_rows(
    layout: &ParamLayout,
    k: usize,
    (outer, scales): (&OuterConfig, bool),
    (cpu_before, cpu_after, cpu_norm): (&State, &State, f64),
    (gpu_before, gpu_after, gpu_norm): (&State, &State, f64),
    tol: StepTols,
) -> Vec<Row> {
    let clip = outer.clip as f64;
    let clip_ok = if (cpu_norm > clip) == scales {
        Ok((0.0, 0.0))
    } else {
        Err(format!(
            "the case is meant to {}clip: CPU gradient norm {cpu_norm:.4e}, max norm {clip:.4e}",
            if scales { "" } else { "not " }
        ))
    };
    let mut rows: Vec<Row> = vec![
        (
            format!(
                "step {k} clip {}",
                if scales { "scales" } else { "on, idle" }
            ),
            clip_ok,
            0.0,
        ),
        (
            format!("step {k} grad norm"),
            rel_scalar(gpu_norm, cpu_norm),
            tol.state,
        ),
        (
            format!("step {k} Adam step count"),
            rel_scalar(gpu_after.adam.step as f64, cpu_after.adam.step as f64),
            0.0,
        ),
        (
            format!("step {k} Adam m"),
            rel_diff(&gpu_after.adam.m, &cpu_after.adam.m),
            tol.state,
        ),
        (
            format!("step {k} Adam v"),
            rel_diff(&gpu_after.adam.v, &cpu_after.adam.v),
            tol.state,
        ),
    ];
    for t in &layout.tensors {
        let r = t.range();
        let slice = |s: &State| s.theta.get(r.clone()).unwrap_or(&[]).to_vec();
        rows.push((
            format!("step {k} update {}", t.name),
            update_diff(
                (&slice(gpu_after), &slice(gpu_before)),
                (&slice(cpu_after), &slice(cpu_before)),
            ),
            tol.update,
        ));
    }
    rows
}

/// The Euclidean norm of `x`, in double.
pub fn norm(x: &[f32]) -> f64 {
    x.iter().map(|&g| g as f64 * g as f64).sum::<f64>().sqrt()
}

/// Tensor `t`'s part of the flat buffer `x`, or nothing where `x` is too short for it (which
/// [`rel_diff`] then reports).
pub fn part<'a, T>(x: &'a [T], t: &ParamTensor) -> &'a [T] {
    x.get(t.range()).unwrap_or(&[])
}

/// Whether `a` and `b` hold the same bytes: `Ok((0, 0))`, else the number of differing
/// elements or the lengths.
pub fn same_bits(a: &[f32], b: &[f32]) -> Result<(f64, f64), String> {
    if a.len() != b.len() || a.is_empty() {
        return Err(format!("{} values, then {}", b.len(), a.len()));
    }
    let n = a
        .iter()
        .zip(b)
        .filter(|(x, y)| x.to_bits() != y.to_bits())
        .count();
    if n == 0 {
        Ok((0.0, 0.0))
    } else {
        Err(format!("{n} of {} values differ", a.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{InnerLoop, Task};
    use crate::cpu::Cpu;
    use crate::data::workload::generate_episodes;
    use crate::model::{init_params, ModelDims};
    use crate::verify::{linear_weights, UPDATE_TOL};

    /// A difference only within tolerance passes; a dropped or extra value, an empty
    /// reference, an unwritten (NaN) element or values where the reference is zero fail.
    #[test]
    fn rel_diff_fails_what_it_cannot_compare() {
        let want = [1.0f32, -2.0, 2.0];
        assert_eq!(rel_diff(&want, &want), Ok((0.0, 0.0)));
        let (d, dmax) = rel_diff(&[1.0f32, -2.0, 2.3], &want).unwrap();
        assert!(
            (d - 0.1).abs() < 1e-6 && (dmax - 0.15).abs() < 1e-6,
            "{d} {dmax}"
        );
        let dropped = rel_diff(&want[..2], &want).unwrap_err();
        assert!(
            dropped.contains("2 values") && dropped.contains("has 3"),
            "{dropped}"
        );
        assert!(rel_diff(&[1.0f32, -2.0, 2.0, 0.0], &want).is_err());
        assert!(rel_diff::<f32>(&[], &[]).unwrap_err().contains("empty"));
        assert!(rel_diff(&[1.0f32, f32::NAN, 2.0], &want).is_err());
        assert!(rel_diff(&want, &[1.0f32, f32::INFINITY, 2.0]).is_err());
        assert_eq!(rel_diff(&[0.0f32; 2], &[0.0; 2]), Ok((0.0, 0.0)));
        assert!(rel_diff(&[0.0f32, 1e-30], &[0.0; 2]).is_err());
        assert!(rel_scalar(f64::NAN, 1.0).is_err());
        assert!(rel_scalar(1.0, 0.0).is_err());
        assert!(same_bits(&want[..2], &want).is_err());
        assert!(same_bits(&[], &[]).is_err());
        assert!(same_bits(&[1.0, -2.0, 2.0000002], &want).is_err());
        assert_eq!(same_bits(&want, &want), Ok((0.0, 0.0)));
    }

    /// Updates: lengths must agree, and a reference that did not move compares nothing.
    #[test]
    fn update_diff_needs_a_moving_reference() {
        let before = [1.0f32, 2.0, 3.0];
        let after = [1.5f32, 2.0, 2.0];
        assert_eq!(update(&after, &before), Ok(vec![0.5, 0.0, -1.0]));
        assert_eq!(
            update_diff((&after, &before), (&after, &before)),
            Ok((0.0, 0.0))
        );
        assert!(update_diff((&after[..2], &before), (&after, &before)).is_err());
        assert!(update_diff((&after, &before), (&before, &before)).is_err());
        // The same θ after, compared as θ rather than as update, hides a 10% error of the
        // update in 1% of θ.
        let off = [1.55f32, 2.0, 1.9];
        let (d, _) = update_diff((&off, &before), (&after, &before)).unwrap();
        assert!((d - 0.1).abs() < 1e-6, "{d}");
    }

    /// [`step_rows`] on two CPU engines (the same code, so any difference is the one made
    /// here): with the same steps every row passes; with a clip that never scales (the
    /// schedule's clip disabled on the second engine) the clip-dependent rows fail, the second
    /// step's update among them; a θ missing its last value fails the last tensor's update.
    #[test]
    fn step_rows_catch_a_clip_that_does_not_scale() {
        let layout = ParamLayout::new(ModelDims {
            n_items: 40,
            embed_dim: 8,
            hidden_dim: 16,
        });
        let theta = init_params(&layout, 11);
        let eps = generate_episodes(3, 3, 4, 40, 12, 11);
        let weights = linear_weights(3);
        let tasks: Vec<Task> = eps
            .iter()
            .map(|ep| crate::backend::Task::of(ep, &weights))
            .collect();
        let inner = InnerLoop { lr: 0.05, steps: 2 };
        let mut g = vec![0.0f32; layout.len];
        Cpu::new(layout.clone(), theta.clone())
            .unwrap()
            .meta_gradient(&tasks, &inner, &mut g)
            .unwrap();
        let schedule = clip_schedule(norm(&g), 1e-3);
        let tol = StepTols {
            state: 1e-4,
            update: UPDATE_TOL,
        };
        let failing = |no_scale: bool, drop_last: bool| -> Vec<String> {
            let mut cpu = Cpu::new(layout.clone(), theta.clone()).unwrap();
            let mut other = Cpu::new(layout.clone(), theta.clone()).unwrap();
            let mut failed = Vec::new();
            for (i, step) in schedule.iter().enumerate() {
                let mut o = step.0;
                if no_scale {
                    o.clip = f32::INFINITY;
                }
                let (c0, o0) = (State::of(&cpu).unwrap(), State::of(&other).unwrap());
                let a = cpu.meta_step(&tasks, &inner, &step.0).unwrap();
                let b = other.meta_step(&tasks, &inner, &o).unwrap();
                let (c1, mut o1) = (State::of(&cpu).unwrap(), State::of(&other).unwrap());
                if drop_last {
                    o1.theta.pop();
                }
                for (what, d, tol) in step_rows(
                    &layout,
                    i + 1,
                    (&step.0, step.1),
                    (&c0, &c1, a.grad_norm),
                    (&o0, &o1, b.grad_norm),
                    tol,
                ) {
                    if !matches!(d, Ok((d, _)) if d <= tol) {
                        failed.push(what);
                    }
                }
            }
            failed
        };
        assert_eq!(failing(false, false), Vec::<String>::new());
        let no_scale = failing(true, false);
        for what in [
            "step 2 Adam m",
            "step 2 Adam v",
            "step 2 update output.weight",
        ] {
            assert!(no_scale.iter().any(|w| w == what), "{what}: {no_scale:?}");
        }
        assert!(
            no_scale.iter().all(|w| w.starts_with("step 2")),
            "{no_scale:?}"
        );
        assert_eq!(
            failing(false, true),
            vec!["step 1 update output.bias", "step 2 update output.bias"]
        );
    }
}
