//! safetensors: reading F32/F16/BF16/F64 into a [`StateDict`], writing float32 atomically.

use super::{DType, StateDict, Tensor};
use crate::util::atomic_replace;
use crate::{Error, Result};
use safetensors::{Dtype, SafeTensors};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Parses a safetensors file already loaded into memory.
pub(super) fn read_safetensors(bytes: &[u8], file: &Path) -> Result<StateDict> {
    let err = |msg: String| Error::checkpoint(file, msg);
    let st = SafeTensors::deserialize(bytes).map_err(|e| {
        err(format!(
            "neither a PyTorch zip checkpoint nor a valid safetensors file ({e}); \
             the file may be truncated or of another format"
        ))
    })?;
    let mut tensors = BTreeMap::new();
    for (name, view) in st.tensors() {
        let dtype = match view.dtype() {
            Dtype::F16 => DType::F16,
            Dtype::BF16 => DType::BF16,
            Dtype::F32 => DType::F32,
            Dtype::F64 => DType::F64,
            other => {
                return Err(err(format!(
                    "tensor `{name}` has dtype {other:?}; only F32, F16, BF16 and F64 load"
                )))
            }
        };
        let values = view
            .data()
            .chunks_exact(dtype.size())
            .map(|b| dtype.decode(b))
            .collect();
        let shape = view.shape().to_vec();
        tensors.insert(
            name,
            Tensor {
                shape,
                values,
                dtype,
            },
        );
    }
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| err(e.to_string()))?;
    let metadata = header
        .metadata()
        .as_ref()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    Ok(StateDict { tensors, metadata })
}

/// Writes `tensors` (name, shape, row-major values) as float32 safetensors with string
/// `metadata`, atomically: into a temporary file in the same folder, synced, then renamed over
/// `path`, so a crash never leaves a half-written checkpoint under the final name.
pub fn save_safetensors(
    path: &Path,
    tensors: &[(&str, &[usize], &[f32])],
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    let mut bytes: Vec<(&str, Vec<usize>, Vec<u8>)> = Vec::with_capacity(tensors.len());
    for &(name, shape, values) in tensors {
        if shape.iter().product::<usize>() != values.len() {
            return Err(Error::Shape(format!(
                "writing {}: tensor `{name}` has shape {shape:?} but {} values",
                path.display(),
                values.len()
            )));
        }
        if bytes.iter().any(|(n, ..)| *n == name) {
            return Err(Error::checkpoint(
                path,
                format!("tensor `{name}` given twice"),
            ));
        }
        let raw = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        bytes.push((name, shape.to_vec(), raw));
    }
    let views = bytes
        .iter()
        .map(|(name, shape, raw)| {
            safetensors::tensor::TensorView::new(Dtype::F32, shape.clone(), raw).map(|v| (*name, v))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::checkpoint(path, e.to_string()))?;
    let meta: HashMap<String, String> = metadata.clone().into_iter().collect();
    let meta = (!meta.is_empty()).then_some(meta);
    let data =
        safetensors::serialize(views, meta).map_err(|e| Error::checkpoint(path, e.to_string()))?;
    write_atomically(path, &data)
}

/// Writes `data` to `path` with [`atomic_replace`]: the folder must exist, and `path` must name
/// a file.
fn write_atomically(path: &Path, data: &[u8]) -> Result<()> {
    if path.file_name().is_none() {
        return Err(Error::checkpoint(path, "not a file path"));
    }
    atomic_replace(path, data)
}

/// A safetensors (or `.pth`) file's tensors as f32 plus its metadata: what training checkpoints
/// (weights, Adam moments, JSON state in the metadata) are read back with.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TensorsF32 {
    /// The file they came from (for error messages).
    pub file: PathBuf,
    /// name -> (shape, row-major values).
    pub tensors: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    pub metadata: BTreeMap<String, String>,
}

impl TensorsF32 {
    /// The values of tensor `name`, which must exist with exactly `shape`.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<&[f32]> {
        let (have, values) = self
            .tensors
            .get(name)
            .ok_or_else(|| Error::checkpoint(&self.file, format!("no tensor `{name}`")))?;
        if have.as_slice() != shape {
            return Err(Error::checkpoint(
                &self.file,
                format!("tensor `{name}` has shape {have:?}, expected {shape:?}"),
            ));
        }
        Ok(values)
    }

    /// The metadata value under `key`.
    pub fn meta(&self, key: &str) -> Result<&str> {
        self.metadata
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| Error::checkpoint(&self.file, format!("no metadata key `{key}`")))
    }
}

/// Loads every tensor of a checkpoint as f32 (exact for F32, F16 and BF16 files; F64 is rounded
/// to nearest), with its metadata.
pub fn load_tensors_f32(path: &Path) -> Result<TensorsF32> {
    let sd = super::load_state_dict(path)?;
    let tensors = sd
        .tensors
        .into_iter()
        .map(|(name, t)| {
            (
                name,
                (t.shape, t.values.iter().map(|&v| v as f32).collect()),
            )
        })
        .collect();
    Ok(TensorsF32 {
        file: path.to_path_buf(),
        tensors,
        metadata: sd.metadata,
    })
}
