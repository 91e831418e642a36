//! The launch plan for a device: threads per block and the task kernels' shared-memory layout,
//! chosen from the device's architecture and limits and the run's sizes, as a pure function so
//! that every architecture's plan is tested on any machine.
//!
//! Threads per block: 768 where the kernels compile without register spills at that size
//! (sm_90, sm_100), else 384. Measured with NVRTC 13.0 and ptxas (2026-12-03): at 768 threads the
//! task kernels spill 8-20 bytes on sm_75 to sm_89; at 384 none do on sm_80 to sm_100. sm_75
//! spills at every size tried (128 to 768 threads); 384 is the least (8 bytes stored, 4 loaded,
//! one kernel), and `tests/kernels_compile.rs` holds it to that while every other architecture
//! must not spill at its planned size.

use super::abi::{smem_bytes, smem_plan, SmemPlan};

/// What the plan needs to know of a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceLimits {
    /// Compute capability as `major * 10 + minor` (90 for sm_90).
    pub cc: u32,
    /// Dynamic shared memory a block may use after opting in, in bytes.
    pub smem_per_block: usize,
}

impl DeviceLimits {
    /// The published limits of an architecture (`None` below sm_75, which is not supported).
    pub fn of_arch(cc: u32) -> Option<Self> {
        let kb = match cc {
            75 => 64,
            80 | 87 => 163,
            86 | 89 | 120 | 121 => 99,
            90 | 100 | 103 => 227,
            _ => return None,
        };
        Some(DeviceLimits {
            cc,
            smem_per_block: kb * 1024,
        })
    }
}

/// The architectures the backend is built and checked for.
pub const ARCHS: [u32; 6] = [75, 80, 86, 89, 90, 100];

/// Threads per block on an architecture (see the module's note on spills).
pub fn default_block(cc: u32) -> u32 {
    match cc {
        90..=109 => 768,
        _ => 384,
    }
}

/// The sizes of a run that the plan depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sizes {
    /// H.
    pub hidden: usize,
    /// The most sequences in one split of a task (max of K and Q).
    pub seqs: usize,
    /// Low-rank terms of output.weight's update: inner steps × K.
    pub rank: usize,
}

/// A device's plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    pub block: u32,
    pub smem: SmemPlan,
}

/// The plan for `limits` and `sizes` with `block` threads per block: w_hh in shared memory when
/// wanted and it fits, else in global memory; an error that says which setting to lower when
/// even the smallest layout does not fit.
pub fn plan(
    limits: &DeviceLimits,
    block: u32,
    sizes: &Sizes,
    want_whh: bool,
) -> Result<Plan, String> {
    let (h, b, r) = (sizes.hidden, sizes.seqs, sizes.rank);
    if h > block as usize {
        return Err(format!(
            "model.hidden_dim = {h} is larger than the {block} threads per block planned for \
             sm_{}: lower model.hidden_dim to {block} or less",
            limits.cc
        ));
    }
    match smem_plan(h, b, r, block as usize, limits.smem_per_block, want_whh) {
        Some(smem) => Ok(Plan { block, smem }),
        None => Err(format!(
            "a task needs {} bytes of shared memory (H {h}, {b} sequences per split, {r} low-rank \
             terms) and sm_{} allows {} per block: lower model.hidden_dim, the episodes' K or Q \
             (prepare --K/--Q), or maml.inner_steps",
            smem_bytes(h, b, r, 1, 1, false),
            limits.cc,
            limits.smem_per_block
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_architecture_has_limits_and_a_block() {
        for cc in ARCHS {
            let l = DeviceLimits::of_arch(cc).unwrap();
            assert!(l.smem_per_block >= 64 * 1024, "sm_{cc}");
            let b = default_block(cc);
            assert!(
                b.is_multiple_of(32) && (64..=1024).contains(&b),
                "sm_{cc}: {b}"
            );
        }
        assert_eq!(DeviceLimits::of_arch(70), None);
        assert_eq!(default_block(90), 768);
        assert_eq!(default_block(86), 384);
    }

    /// Over H up to 256 and episode sizes up to K 50, Q 50, 10 inner steps, on every
    /// architecture: a plan that fits the device's shared memory and its block, or an error that
    /// names a setting to lower. (V does not enter shared memory; it sizes the global workspace.)
    #[test]
    fn every_architecture_plans_or_names_the_setting_to_lower() {
        let mut fits = std::collections::BTreeMap::new();
        for cc in ARCHS {
            let limits = DeviceLimits::of_arch(cc).unwrap();
            let block = default_block(cc);
            for h in [8, 16, 32, 64, 100, 128, 200, 256] {
                for (k, q, s) in [(1, 1, 1), (5, 10, 5), (20, 20, 5), (50, 50, 10)] {
                    let sizes = Sizes {
                        hidden: h,
                        seqs: k.max(q),
                        rank: s * k,
                    };
                    for want in [true, false] {
                        match plan(&limits, block, &sizes, want) {
                            Ok(p) => {
                                assert!(p.smem.bytes <= limits.smem_per_block, "sm_{cc} {sizes:?}");
                                assert!(want || p.smem.smem_whh == 0, "w_hh placed unasked");
                                assert_eq!(p.block, block);
                                *fits.entry(cc).or_insert(0) += 1;
                            }
                            Err(e) => assert!(
                                e.contains("lower model.hidden_dim")
                                    && e.contains(&format!("sm_{cc}")),
                                "{e}"
                            ),
                        }
                    }
                }
            }
        }
        // The reference configuration (H 64, K 5, Q 10, 5 steps) fits everywhere, with w_hh in
        // shared memory wherever a block has 99 KB or more (sm_75's 64 KB hold the rest only).
        for cc in ARCHS {
            let p = plan(
                &DeviceLimits::of_arch(cc).unwrap(),
                default_block(cc),
                &Sizes {
                    hidden: 64,
                    seqs: 10,
                    rank: 25,
                },
                true,
            )
            .unwrap();
            assert_eq!(p.smem.smem_whh, u32::from(cc != 75), "sm_{cc}");
        }
        // Larger shared memory never fits fewer shapes.
        assert!(fits[&75] <= fits[&86] && fits[&86] <= fits[&80] && fits[&80] <= fits[&90]);
    }

    #[test]
    fn a_too_large_hidden_size_names_the_setting() {
        let l = DeviceLimits::of_arch(75).unwrap();
        let sizes = Sizes {
            hidden: 512,
            seqs: 10,
            rank: 25,
        };
        let e = plan(&l, default_block(75), &sizes, true).unwrap_err();
        assert!(e.contains("model.hidden_dim = 512"), "{e}");
        let sizes = Sizes {
            hidden: 256,
            seqs: 50,
            rank: 500,
        };
        let e = plan(&l, 320, &sizes, true).unwrap_err();
        assert!(
            e.contains("allows 65536") && e.contains("prepare --K/--Q"),
            "{e}"
        );
    }
}
