//! Checkpoint files: safetensors (read F32/F16/BF16/F64, write F32, atomically) and PyTorch's
//! `torch.save(state_dict)` `.pth` zip format (read only), into one [`StateDict`] type; and the
//! mapping between a state dict and the model's flat parameter buffer ([`params_from_state_dict`],
//! [`dims_from_state_dict`], [`save_params`]).
//!
//! Values are held as `f64`, which represents every f32, f16 and bf16 value exactly, together with
//! the dtype the file stored them in.

mod params;
mod pickle;
mod pth;
mod st;

pub use params::{dims_from_state_dict, params_from_state_dict, save_params};
pub use st::{load_tensors_f32, save_safetensors, TensorsF32};

use crate::{Error, Result};
use std::collections::BTreeMap;
use std::path::Path;

/// Element types a checkpoint may store floats in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    F16,
    BF16,
    F32,
    F64,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F16 | DType::BF16 => 2,
            DType::F32 => 4,
            DType::F64 => 8,
        }
    }

    /// Decodes one little-endian element (`b.len() == self.size()`), exactly.
    fn decode(self, b: &[u8]) -> f64 {
        match self {
            DType::F16 => half::f16::from_le_bytes([b[0], b[1]]).to_f64(),
            DType::BF16 => half::bf16::from_le_bytes([b[0], b[1]]).to_f64(),
            DType::F32 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64,
            DType::F64 => f64::from_le_bytes(b.try_into().expect("8 bytes")),
        }
    }
}

/// One named tensor of a checkpoint: row-major values with their shape.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    /// Row-major (C order), `shape.iter().product()` elements.
    pub values: Vec<f64>,
    /// The element type the file stored.
    pub dtype: DType,
}

/// A checkpoint's tensors by name, plus the safetensors `__metadata__` (empty for `.pth`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StateDict {
    pub tensors: BTreeMap<String, Tensor>,
    pub metadata: BTreeMap<String, String>,
}

/// Loads a checkpoint, recognised by its content: a zip archive (`PK\x03\x04`) is read as a
/// PyTorch `.pth`, anything else as safetensors.
pub fn load_state_dict(path: &Path) -> Result<StateDict> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if bytes.starts_with(b"PK\x03\x04") {
        pth::read_pth(&bytes, path)
    } else if bytes.starts_with(&[0x80, 0x02, 0x8a]) {
        Err(Error::checkpoint(
            path,
            "a legacy (pre-1.6) torch.save file; re-save it with a current torch \
             (`torch.save(torch.load(path), path)`) or as safetensors",
        ))
    } else {
        st::read_safetensors(&bytes, path)
    }
}
