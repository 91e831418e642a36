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

    /// The best supported instruction set, or a lower one named by `RECMAML_CPU_ISA` (`base`,
    /// `avx2` or `avx512`; for comparing the versions on one machine). A name this CPU cannot run,
    /// or an unknown one, is reported on stderr and the best supported set is used.
    fn probe() -> Isa {
        let best = Self::probe_cpu();
        match std::env::var("RECMAML_CPU_ISA") {
            Ok(name) => {
                let (isa, warning) = Self::chosen(&name, best);
                if let Some(w) = warning {
                    eprintln!("{w}");
                }
                isa
            }
            Err(_) => best,
        }
    }

    /// The set `RECMAML_CPU_ISA=name` selects where `best` is the best supported one, and the
    /// warning to print when the name is unknown or names a set this CPU lacks.
    fn chosen(name: &str, best: Isa) -> (Isa, Option<String>) {
        let wanted = match name {
            "base" => Isa::Base,
            "avx2" => Isa::Avx2,
            "avx512" => Isa::Avx512,
            _ => {
                return (
                    best,
                    Some(format!(
                        "RECMAML_CPU_ISA={name}: unknown (expected base, avx2 or avx512); \
                         using {best:?}"
                    )),
                )
            }
        };
        if wanted as u8 <= best as u8 {
            (wanted, None)
        } else {
            (
                best,
                Some(format!(
                    "RECMAML_CPU_ISA={name}: this CPU lacks it; using {best:?}"
                )),
            )
        }
    }

    fn probe_cpu() -> Isa {
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

    /// Whether functions compiled for `self` may run: the CPU has the set and
    /// `RECMAML_CPU_ISA` does not name a narrower one.
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

#[cfg(test)]
mod tests {
    use super::Isa;

    /// `RECMAML_CPU_ISA` selects the named set when it is at most the best supported one, and
    /// otherwise keeps the best with a warning that names the variable and the value.
    #[test]
    fn the_override_never_exceeds_the_cpu() {
        assert_eq!(Isa::chosen("avx2", Isa::Avx512), (Isa::Avx2, None));
        assert_eq!(Isa::chosen("base", Isa::Avx2), (Isa::Base, None));
        assert_eq!(Isa::chosen("avx512", Isa::Avx512), (Isa::Avx512, None));
        let (isa, w) = Isa::chosen("avx512", Isa::Avx2);
        assert_eq!(isa, Isa::Avx2);
        assert!(w
            .unwrap()
            .contains("RECMAML_CPU_ISA=avx512: this CPU lacks it"));
        let (isa, w) = Isa::chosen("sse9", Isa::Base);
        assert_eq!(isa, Isa::Base);
        assert!(w.unwrap().contains("RECMAML_CPU_ISA=sse9: unknown"));
    }
}
