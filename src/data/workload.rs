//! Generated workloads: episodes of random items with XuetangX-like prefix lengths, for the
//! benchmark (`recmaml bench`) and the backend checks (`recmaml gpu-check`, the emulated tests).

use super::Episode;
use crate::rng::Rng;

/// A prefix length with median about 3 and p90 about 19 (a discretised log-normal), in `1..=cap`.
pub fn xuetangx_prefix_len(rng: &mut Rng, cap: usize) -> usize {
    // ln L ~ N(ln 3, 1.44): median 3, 90th percentile exp(ln 3 + 1.2816 * 1.44) = 19.
    let l = (3f64.ln() + 1.44 * rng.normal()).exp().round() as usize;
    l.clamp(1, cap)
}

/// `n` generated episodes with random items in `1..v` and XuetangX-like prefix lengths.
pub fn generate_episodes(
    n: usize,
    k: usize,
    q: usize,
    v: usize,
    cap: usize,
    seed: u64,
) -> Vec<Episode> {
    let mut rng = Rng::new(seed);
    let pairs = |count: usize, rng: &mut Rng| -> (Vec<Vec<u32>>, Vec<u32>) {
        (0..count)
            .map(|_| {
                let len = xuetangx_prefix_len(rng, cap);
                let prefix = (0..len)
                    .map(|_| 1 + rng.below(v as u64 - 1) as u32)
                    .collect();
                (prefix, 1 + rng.below(v as u64 - 1) as u32)
            })
            .unzip()
    };
    (0..n)
        .map(|i| {
            let (sp, sl) = pairs(k, &mut rng);
            let (qp, ql) = pairs(q, &mut rng);
            Episode {
                episode_id: i as i64,
                user_id: format!("bench{i}"),
                support_prefixes: sp,
                support_labels: sl,
                query_prefixes: qp,
                query_labels: ql,
                support_label_ts: None,
                query_label_ts: None,
            }
        })
        .collect()
}
