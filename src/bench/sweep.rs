//! The sizes of one benchmark configuration and the sweep: one factor at a time around a base
//! configuration.

use crate::error::{Error, Result};
use serde::Serialize;

/// The sizes of one benchmark configuration (tasks are generated with them unless the options
/// name an episode file).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BenchConfig {
    /// Short name: `reference`, or the factor that differs from it (`N128`, `V50000`, ...).
    pub label: String,
    pub n: usize,
    pub k: usize,
    pub q: usize,
    pub v: usize,
    pub e: usize,
    pub h: usize,
    pub inner_steps: usize,
    pub prefix_cap: usize,
}

/// Tasks per meta-batch in the sweep.
pub const SWEEP_N: [usize; 5] = [1, 8, 32, 128, 512];
/// Support pairs per task in the sweep.
pub const SWEEP_K: [usize; 3] = [5, 10, 20];
/// Items in the sweep.
pub const SWEEP_V: [usize; 3] = [1519, 10_000, 50_000];
/// GRU hidden sizes in the sweep.
pub const SWEEP_H: [usize; 2] = [64, 128];
/// Prefix caps in the sweep.
pub const SWEEP_CAP: [usize; 2] = [10, 50];

impl BenchConfig {
    /// Checks the sizes; errors name the flag of the size.
    pub(super) fn validate(&self) -> Result<()> {
        let positive = [
            ("--n", self.n),
            ("--k", self.k),
            ("--q", self.q),
            ("--embed-dim", self.e),
            ("--hidden-dim", self.h),
            ("--prefix-cap", self.prefix_cap),
        ];
        for (flag, x) in positive {
            if x == 0 {
                return Err(Error::config(flag, "must be at least 1"));
            }
        }
        if self.v < 2 {
            return Err(Error::config(
                "--items",
                "must be at least 2 (id 0 is padding)",
            ));
        }
        Ok(())
    }
}

/// Sets one factor of a configuration.
type SetFactor = fn(&mut BenchConfig, usize);

/// The factors a sweep can vary, by the name `--sweep-factors` uses.
pub const SWEEP_FACTORS: [&str; 5] = ["N", "K", "V", "H", "cap"];

/// The sweep around `base`: `base` itself, then one factor at a time, in the order of
/// [`SWEEP_FACTORS`], over the values in [`SWEEP_N`], [`SWEEP_K`], [`SWEEP_V`], [`SWEEP_H`] and
/// [`SWEEP_CAP`], every other size as in `base` (not the cartesian product). `factors` names the
/// factors to vary; an unknown name is an error naming `--sweep-factors`.
pub fn sweep_configs(base: &BenchConfig, factors: &[String]) -> Result<Vec<BenchConfig>> {
    if let Some(bad) = factors
        .iter()
        .find(|f| !SWEEP_FACTORS.contains(&f.as_str()))
    {
        return Err(Error::config(
            "--sweep-factors",
            format!(
                "unknown factor {bad:?} (known: {})",
                SWEEP_FACTORS.join(",")
            ),
        ));
    }
    let mut out = vec![base.clone()];
    let sets: [(&[usize], SetFactor); 5] = [
        (&SWEEP_N, |c, x| c.n = x),
        (&SWEEP_K, |c, x| c.k = x),
        (&SWEEP_V, |c, x| c.v = x),
        (&SWEEP_H, |c, x| c.h = x),
        (&SWEEP_CAP, |c, x| c.prefix_cap = x),
    ];
    for (name, (values, set)) in SWEEP_FACTORS.iter().zip(sets) {
        if !factors.iter().any(|f| f == name) {
            continue;
        }
        for &x in values {
            let mut c = base.clone();
            set(&mut c, x);
            if c != *base {
                c.label = format!("{name}{x}");
                out.push(c);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweep_varies_one_factor_at_a_time() {
        let base = BenchConfig {
            label: "reference".into(),
            n: 32,
            k: 5,
            q: 10,
            v: 1519,
            e: 64,
            h: 64,
            inner_steps: 5,
            prefix_cap: 50,
        };
        let all = sweep_configs(&base, &SWEEP_FACTORS.map(String::from)).unwrap();
        let labels: Vec<&str> = all.iter().map(|c| c.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "reference",
                "N1",
                "N8",
                "N128",
                "N512",
                "K10",
                "K20",
                "V10000",
                "V50000",
                "H128",
                "cap10"
            ]
        );
        for c in &all[1..] {
            let differing = [
                c.n != base.n,
                c.k != base.k,
                c.v != base.v,
                c.h != base.h,
                c.prefix_cap != base.prefix_cap,
            ];
            assert_eq!(differing.iter().filter(|&&d| d).count(), 1, "{c:?}");
            assert_eq!(
                (c.q, c.e, c.inner_steps),
                (base.q, base.e, base.inner_steps)
            );
        }
        let only_n = sweep_configs(&base, &["N".to_string()]).unwrap();
        assert_eq!(only_n.len(), 5);
        let err = sweep_configs(&base, &["L".to_string()]).unwrap_err();
        assert!(err.to_string().contains("--sweep-factors"), "{err}");
    }
}
