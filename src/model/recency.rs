//! How the K support pairs of a task are weighted in the inner loss: the schemes of [`Recency`],
//! the check of their parameters, and their weights (normalised to sum to 1).

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// How the K support pairs (index 0 = oldest) are weighted in the inner loss. Every scheme is
/// normalised to sum to 1.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "scheme", rename_all = "lowercase")]
pub enum Recency {
    /// `1/K` each (vanilla MAML).
    Equal,
    /// `exp(lambda · i/(K−1))` (`[1]` when K = 1).
    Exponential { lambda: f64 },
    /// `i + 1`.
    Linear,
    /// `softmax(i / temperature)`.
    Softmax { temperature: f64 },
    /// `exp(−(t_newest − t_i) / tau)` from the support labels' timestamps (seconds).
    Time { tau: f64 },
}

impl Recency {
    /// Checks the scheme's parameter, naming the configuration key on error.
    pub fn validate(&self) -> Result<()> {
        let (key, x, positive) = match *self {
            Recency::Equal | Recency::Linear => return Ok(()),
            Recency::Exponential { lambda } => ("recency.lambda", lambda, false),
            Recency::Softmax { temperature } => ("recency.temperature", temperature, true),
            Recency::Time { tau } => ("recency.tau", tau, true),
        };
        if !x.is_finite() || (positive && x <= 0.0) {
            let need = if positive {
                "a finite number > 0"
            } else {
                "a finite number"
            };
            return Err(Error::config(key, format!("must be {need}, got {x}")));
        }
        Ok(())
    }

    /// The K weights, index 0 = oldest support pair. `label_ts` (the support labels' timestamps)
    /// is needed by [`Recency::Time`] only; without it that scheme is an error.
    pub fn weights(&self, k: usize, label_ts: Option<&[i64]>) -> Result<Vec<f64>> {
        self.validate()?;
        if k == 0 {
            return Err(Error::Shape(
                "recency weights need K >= 1 support pairs".into(),
            ));
        }
        let pos = |i: usize| i as f64;
        let raw: Vec<f64> = match *self {
            Recency::Equal => vec![1.0; k],
            Recency::Exponential { lambda } => {
                let span = if k > 1 { (k - 1) as f64 } else { 1.0 };
                (0..k).map(|i| (lambda * (pos(i) / span)).exp()).collect()
            }
            Recency::Linear => (0..k).map(|i| pos(i) + 1.0).collect(),
            Recency::Softmax { temperature } => {
                let top = pos(k - 1) / temperature;
                (0..k).map(|i| (pos(i) / temperature - top).exp()).collect()
            }
            Recency::Time { tau } => {
                let ts = label_ts.ok_or_else(|| {
                    Error::config(
                        "recency.weighting_scheme",
                        "`time` needs the support labels' timestamps, and the episodes have none \
                         (support_label_ts); choose another scheme or prepare episodes with timestamps",
                    )
                })?;
                if ts.len() != k {
                    return Err(Error::Shape(format!(
                        "{} support timestamps for {k} support pairs",
                        ts.len()
                    )));
                }
                let newest = ts.iter().copied().max().unwrap_or(0);
                ts.iter()
                    .map(|&t| (-((newest - t) as f64) / tau).exp())
                    .collect()
            }
        };
        let total: f64 = raw.iter().sum();
        if !(total.is_finite() && total > 0.0) {
            return Err(Error::config(
                "recency.weighting_scheme",
                format!("{self:?} gives weights that cannot be normalised (sum {total})"),
            ));
        }
        Ok(raw.into_iter().map(|w| w / total).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_follow_their_formulas() {
        let w = Recency::Exponential { lambda: 0.5 }
            .weights(5, None)
            .unwrap();
        let raw: Vec<f64> = (0..5).map(|i| (0.5 * i as f64 / 4.0).exp()).collect();
        let s: f64 = raw.iter().sum();
        for (a, b) in w.iter().zip(&raw) {
            assert!((a - b / s).abs() < 1e-15);
        }
        assert_eq!(
            Recency::Exponential { lambda: 3.0 }
                .weights(1, None)
                .unwrap(),
            vec![1.0]
        );
        let lin = Recency::Linear.weights(4, None).unwrap();
        assert_eq!(lin, vec![0.1, 0.2, 0.3, 0.4]);
        let eq = Recency::Equal.weights(4, None).unwrap();
        assert_eq!(eq, vec![0.25; 4]);
        let sm = Recency::Softmax { temperature: 2.0 }
            .weights(3, None)
            .unwrap();
        let e: Vec<f64> = (0..3).map(|i| (i as f64 / 2.0).exp()).collect();
        let es: f64 = e.iter().sum();
        for (a, b) in sm.iter().zip(&e) {
            assert!((a - b / es).abs() < 1e-15);
        }
    }

    #[test]
    fn time_weights_decay_with_age_and_need_timestamps() {
        let ts = [0i64, 43_200, 86_400];
        let w = Recency::Time { tau: 86_400.0 }
            .weights(3, Some(&ts))
            .unwrap();
        let raw = [(-1.0f64).exp(), (-0.5f64).exp(), 1.0];
        let s: f64 = raw.iter().sum();
        for (a, b) in w.iter().zip(raw) {
            assert!((a - b / s).abs() < 1e-15);
        }
        let err = Recency::Time { tau: 1.0 }.weights(3, None).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("`recency.weighting_scheme`") && msg.contains("support_label_ts"),
            "{msg}"
        );
        let err = Recency::Time { tau: 1.0 }
            .weights(3, Some(&ts[..2]))
            .unwrap_err();
        assert!(
            matches!(err, Error::Shape(_))
                && err.to_string().contains("2 support timestamps for 3"),
            "{err}"
        );
    }

    /// A bad parameter is a configuration error naming its key and the value.
    #[test]
    fn bad_parameters_name_their_key() {
        let cases = [
            (Recency::Time { tau: 0.0 }, "`recency.tau`", "> 0, got 0"),
            (
                Recency::Softmax {
                    temperature: f64::NAN,
                },
                "`recency.temperature`",
                "got NaN",
            ),
            (
                Recency::Exponential {
                    lambda: f64::INFINITY,
                },
                "`recency.lambda`",
                "a finite number, got inf",
            ),
        ];
        for (scheme, key, what) in cases {
            let err = scheme.weights(3, Some(&[0, 1, 2])).unwrap_err();
            let msg = err.to_string();
            assert!(
                matches!(err, Error::Config { .. }) && msg.contains(key) && msg.contains(what),
                "{scheme:?}: {msg}"
            );
        }
        let err = Recency::Equal.weights(0, None).unwrap_err().to_string();
        assert!(err.contains("K >= 1"), "{err}");
    }
}
