//! The closed sets of names a configuration chooses from: the weighting schemes
//! (`recency.weighting_scheme`) and the backends (`run.backend`), read and written by name.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// The support-pair weighting schemes (`recency.weighting_scheme`), by their names in TOML.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum WeightingScheme {
    /// Every support pair weighs the same.
    Equal,
    /// Weights grow as `exp(lambda * position / (K - 1))`.
    Exponential,
    /// Weights grow as `position + 1`.
    Linear,
    /// A softmax over positions at `temperature`.
    Softmax,
    /// Weights decay as `exp(-age / tau)`, age in seconds from the newest support label.
    Time,
}

/// The backends a run may ask for (`run.backend`), by their names in TOML.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum BackendKind {
    /// The CPU reference engine.
    Cpu,
    /// The CUDA engine (an error without a usable GPU).
    Cuda,
    /// CUDA when a driver and a device are found, else the CPU.
    Auto,
}

impl WeightingScheme {
    /// Every scheme.
    pub const ALL: [WeightingScheme; 5] = [
        WeightingScheme::Equal,
        WeightingScheme::Exponential,
        WeightingScheme::Linear,
        WeightingScheme::Softmax,
        WeightingScheme::Time,
    ];

    /// The scheme's name in TOML.
    pub fn name(self) -> &'static str {
        match self {
            WeightingScheme::Equal => "equal",
            WeightingScheme::Exponential => "exponential",
            WeightingScheme::Linear => "linear",
            WeightingScheme::Softmax => "softmax",
            WeightingScheme::Time => "time",
        }
    }
}

impl BackendKind {
    /// Every backend.
    pub const ALL: [BackendKind; 3] = [BackendKind::Cpu, BackendKind::Cuda, BackendKind::Auto];

    /// The backend's name in TOML.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Cpu => "cpu",
            BackendKind::Cuda => "cuda",
            BackendKind::Auto => "auto",
        }
    }
}

/// The value of `all` called `s`, or a message listing the names `s` is not one of.
fn by_name<T: Copy>(
    s: &str,
    all: &[T],
    name: fn(T) -> &'static str,
) -> std::result::Result<T, String> {
    all.iter().copied().find(|&x| name(x) == s).ok_or_else(|| {
        let names: Vec<&str> = all.iter().map(|&x| name(x)).collect();
        format!("`{s}` is not one of {names:?}")
    })
}

/// How serde reads a scheme: by name, an error message listing the names otherwise.
impl TryFrom<String> for WeightingScheme {
    type Error = String;

    fn try_from(s: String) -> std::result::Result<Self, String> {
        by_name(&s, &WeightingScheme::ALL, WeightingScheme::name)
    }
}

/// How serde reads a backend: by name, an error message listing the names otherwise.
impl TryFrom<String> for BackendKind {
    type Error = String;

    fn try_from(s: String) -> std::result::Result<Self, String> {
        by_name(&s, &BackendKind::ALL, BackendKind::name)
    }
}

/// A backend by name (as `run.backend` takes it); an error naming `run.backend` otherwise.
impl std::str::FromStr for BackendKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        by_name(s, &BackendKind::ALL, BackendKind::name)
            .map_err(|m| Error::config("run.backend", m))
    }
}

impl std::fmt::Display for WeightingScheme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
