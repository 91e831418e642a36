//! The instruction sets each SIMD function is compiled for, their detection, and the `simd_fn!`
//! macro that compiles one implementation three times (baseline, AVX2+FMA, AVX-512F) and picks the
//! version for the running CPU; also the arithmetic every version shares: [`madd`] (fused only
//! where FMA is enabled) and the lane reduction of dot products.

use crate::cpu::float::Float;
use std::sync::atomic::{AtomicU8, Ordering};

/// The instruction sets a SIMD function has versions for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// The target's baseline (no FMA).
    Base,
    /// AVX2 with FMA.
    Avx2,
    /// AVX-512F (with AVX2 and FMA).
    Avx512,
}

/// f32 lanes per vector register of each version, the const parameter `W` of the
/// implementations (the baseline is taken as SSE2's 4; anything below [`AVX2`] means no FMA).
pub(super) const BASE: usize = 4;
pub(super) const AVX2: usize = 8;
pub(super) const AVX512: usize = 16;

/// The detected [`Isa`], cached: 0 = not yet detected, else `1 + Isa as u8`.
static DETECTED: AtomicU8 = AtomicU8::new(0);

impl Isa {
    /// The best instruction set this CPU supports (detected once).
    pub fn detect() -> Isa {
        match DETECTED.load(Ordering::Relaxed) {
            1 => Isa::Base,
            2 => Isa::Avx2,
            3 => Isa::Avx512,
            _ => {
                let isa = Self::probe();
                DETECTED.store(
                    match isa {
                        Isa::Base => 1,
                        Isa::Avx2 => 2,
                        Isa::Avx512 => 3,
                    },
                    Ordering::Relaxed,
                );
                isa
            }
        }
    }

    fn probe() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                if std::is_x86_feature_detected!("avx512f") {
                    return Isa::Avx512;
                }
                return Isa::Avx2;
            }
        }
        Isa::Base
    }

    /// Whether this CPU can run functions compiled for `self`.
    pub fn supported(self) -> bool {
        match self {
            Isa::Base => true,
            Isa::Avx2 => Isa::detect() != Isa::Base,
            Isa::Avx512 => Isa::detect() == Isa::Avx512,
        }
    }
}

/// `a * b + c`, fused where the FMA instruction is enabled.
#[inline(always)]
pub(super) fn madd<F: Float, const W: usize>(a: F, b: F, c: F) -> F {
    if W >= AVX2 {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// Accumulator lanes of a dot product.
pub(super) const LANES: usize = 16;

/// Tree reduction of a dot product's lanes, plus its scalar tail.
#[inline(always)]
pub(super) fn reduce_lanes<F: Float>(mut acc: [F; LANES], tail: F) -> F {
    let mut width = LANES / 2;
    while width > 0 {
        for i in 0..width {
            acc[i] += acc[i + width];
        }
        width /= 2;
    }
    acc[0] + tail
}

/// Defines a public function `$name` that runs the best version of `$imp` for this CPU, and
/// `$name_isa` that runs the version for a given [`Isa`] (which must be supported).
macro_rules! simd_fn {
    ($(#[$m:meta])* $name:ident, $name_isa:ident => $imp:ident ($($arg:ident : $ty:ty),*) $(-> $ret:ty)?) => {
        $(#[$m])*
        pub fn $name<F: Float>($($arg: $ty),*) $(-> $ret)? {
            $name_isa::<F>(Isa::detect(), $($arg),*)
        }

        $(#[$m])*
        ///
        /// This is the version compiled for `isa`, which must be [supported](Isa::supported)
        /// (else the baseline runs).
        pub fn $name_isa<F: Float>(isa: Isa, $($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx2,fma")]
                unsafe fn avx512<F: Float>($($arg: $ty),*) $(-> $ret)? {
                    $imp::<F, AVX512>($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2<F: Float>($($arg: $ty),*) $(-> $ret)? {
                    $imp::<F, AVX2>($($arg),*)
                }
                if isa == Isa::Avx512 && isa.supported() {
                    // SAFETY: the CPU supports every feature `avx512` was compiled for.
                    return unsafe { avx512::<F>($($arg),*) };
                }
                if isa != Isa::Base && Isa::Avx2.supported() {
                    // SAFETY: the CPU supports every feature `avx2` was compiled for.
                    return unsafe { avx2::<F>($($arg),*) };
                }
            }
            let _ = isa;
            $imp::<F, BASE>($($arg),*)
        }
    };
}
