//! The one float trait the engine is generic over: `f32` for the backend, `f64` for the reference
//! that gradient checks and fixture tests use.

use std::fmt::Debug;
use std::ops::{Add, AddAssign, Div, Mul, MulAssign, Neg, Sub, SubAssign};

/// The arithmetic the engine needs from a float type.
pub trait Float:
    Copy
    + Send
    + Sync
    + Debug
    + Default
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + SubAssign
    + MulAssign
    + 'static
{
    /// 0.
    const ZERO: Self;
    /// 1.
    const ONE: Self;
    /// Nearest value of this type.
    fn from_f64(x: f64) -> Self;
    /// Exact widening.
    fn to_f64(self) -> f64;
    /// e^x.
    fn exp(self) -> Self;
    /// Natural logarithm.
    fn ln(self) -> Self;
    /// Hyperbolic tangent.
    fn tanh(self) -> Self;
    /// Square root.
    fn sqrt(self) -> Self;
    /// `self * a + b`, fused (one rounding). Only call it where the FMA instruction is enabled:
    /// elsewhere it is a slow library call.
    fn mul_add(self, a: Self, b: Self) -> Self;
    /// The larger of the two (NaN-ignoring, like `f64::max`).
    fn max(self, other: Self) -> Self;
    /// Whether the value is neither infinite nor NaN.
    fn is_finite(self) -> bool;

    /// e^x without library calls, so that loops over it vectorize: for `f32` a Cephes-style
    /// polynomial (about 1 ulp; arguments clamped to [−87.3, 88], where the result is
    /// 1.2e−38 and 1.65e38), for `f64` the standard `exp`.
    fn fast_exp(self) -> Self;

    /// The logistic function `1 / (1 + e^-x)`, as PyTorch computes it, on [`Float::fast_exp`].
    #[inline(always)]
    fn sigmoid(self) -> Self {
        Self::ONE / (Self::ONE + (-self).fast_exp())
    }

    /// tanh: for `f32` `1 − 2 / (e^{2x} + 1)` on [`Float::fast_exp`] (absolute error about
    /// 1e−7), for `f64` the standard `tanh`.
    fn fast_tanh(self) -> Self;
}

/// Cephes' `expf`: `2^n · p(r)` with `x = n ln 2 + r`, `|r| <= ln 2 / 2`.
#[inline(always)]
fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    let x = x.clamp(-87.3, 88.0);
    let n = (x * LOG2E + 0.5).floor();
    let r = x - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 0.166_666_65)
        * r
        + 0.5;
    let y = p * r * r + r + 1.0;
    // 2^n from the bits: n is an integer in [-126, 128] here, and adding 1.5 · 2^23 puts it in
    // the low mantissa bits (this avoids `as i32`'s saturating conversion, which does not
    // vectorize; a NaN argument gives some NaN or garbage exponent times y = NaN).
    const MAGIC: f32 = 12_582_912.0;
    let bits = (n + MAGIC).to_bits().wrapping_sub(MAGIC.to_bits());
    f32::from_bits(bits.wrapping_add(127) << 23) * y
}

macro_rules! impl_float {
    ($t:ty, $fast_exp:expr, $fast_tanh:expr) => {
        impl Float for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            #[inline(always)]
            fn from_f64(x: f64) -> Self {
                x as $t
            }
            #[inline(always)]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline(always)]
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            #[inline(always)]
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
            #[inline(always)]
            fn tanh(self) -> Self {
                <$t>::tanh(self)
            }
            #[inline(always)]
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            #[inline(always)]
            fn mul_add(self, a: Self, b: Self) -> Self {
                <$t>::mul_add(self, a, b)
            }
            #[inline(always)]
            fn max(self, other: Self) -> Self {
                <$t>::max(self, other)
            }
            #[inline(always)]
            fn is_finite(self) -> bool {
                <$t>::is_finite(self)
            }
            #[inline(always)]
            fn fast_exp(self) -> Self {
                $fast_exp(self)
            }
            #[inline(always)]
            fn fast_tanh(self) -> Self {
                $fast_tanh(self)
            }
        }
    };
}

impl_float!(f32, exp_f32, |x: f32| 1.0 - 2.0 / (exp_f32(2.0 * x) + 1.0));
impl_float!(f64, f64::exp, f64::tanh);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_exp_and_tanh_are_accurate_for_f32() {
        let mut worst = (0.0f64, 0.0f64);
        for i in -80_000..=80_000 {
            let x = i as f32 * 1e-3;
            let e = (x as f64).exp();
            worst.0 = worst.0.max(((x.fast_exp() as f64) - e).abs() / e);
            worst.1 = worst
                .1
                .max(((x.fast_tanh() as f64) - (x as f64).tanh()).abs());
        }
        assert!(worst.0 < 3e-7, "exp relative error {}", worst.0);
        assert!(worst.1 < 3e-7, "tanh absolute error {}", worst.1);
        assert_eq!((-1000.0f32).fast_exp(), (-87.3f32).fast_exp());
        assert_eq!(1000.0f32.fast_tanh(), 1.0);
        assert_eq!((-1000.0f32).fast_tanh(), -1.0);
    }
}
