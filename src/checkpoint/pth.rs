//! PyTorch's `torch.save(state_dict)` zip format (torch >= 1.6):
//!
//! ```text
//! <archive>/data.pkl      pickle of an OrderedDict name -> _rebuild_tensor_v2(storage, offset, size, stride, ...)
//! <archive>/data/<key>    one raw little-endian storage per persistent id
//! <archive>/byteorder     "little" (absent in old files, which are little-endian)
//! ```
//!
//! Tensors are read with their storage offset, sizes and strides honoured (a view into a shared or
//! larger storage loads as the view's values, in row-major order).

use super::pickle::{unpickle, StorageRef, TensorRef, Value};
use super::{DType, StateDict, Tensor};
use crate::util::limits::{max_param_bytes, param_limit_text};
use crate::{Error, Result};
use std::collections::{BTreeMap, HashMap};
use std::io::{Cursor, Read};
use std::path::Path;

/// Reads a `.pth` zip archive already loaded into memory.
pub fn read_pth(bytes: &[u8], file: &Path) -> Result<StateDict> {
    let err = |msg: String| Error::checkpoint(file, msg);
    // torch never prepends data to the archive, so its offset is known to be 0. (zip 9.8's
    // offset detection rejects some valid torch archives, e.g. the upstream_hidden128_fc.pth
    // fixture, with "Invalid Central Directory header".)
    let config = zip::read::Config {
        archive_offset: zip::read::ArchiveOffset::Known(0),
    };
    let mut zip = zip::ZipArchive::with_config(config, Cursor::new(bytes)).map_err(|e| {
        err(format!(
            "not a readable PyTorch zip archive (truncated or damaged?): {e}"
        ))
    })?;
    let pkl_name = zip
        .file_names()
        .filter_map(|n| n.ok().map(|n| n.into_owned()))
        .filter(|n| n.ends_with("data.pkl"))
        .min_by_key(|n| n.len())
        .ok_or_else(|| err("zip archive has no data.pkl: not a torch.save file".into()))?;
    let prefix = &pkl_name[..pkl_name.len() - "data.pkl".len()];
    let mut budget = EntryBudget::new(bytes.len());
    if let Ok(order) = read_entry(&mut zip, &format!("{prefix}byteorder"), &mut budget) {
        if order != b"little" {
            let order = String::from_utf8_lossy(&order).into_owned();
            return Err(err(format!(
                "byte order `{order}` is not supported (only little)"
            )));
        }
    }
    let pkl = read_entry(&mut zip, &pkl_name, &mut budget)
        .map_err(|e| err(format!("{pkl_name}: {e}")))?;
    let root = unpickle(&pkl).map_err(|e| err(format!("{pkl_name}: {e}")))?;
    let Value::Dict(items) = root else {
        return Err(err(format!(
            "{pkl_name} holds a {root}, not a state dict (save `model.state_dict()`)"
        )));
    };

    let mut storages: HashMap<String, Vec<u8>> = HashMap::new();
    let mut tensors = BTreeMap::new();
    for (key, value) in items {
        let Value::Str(name) = key else {
            return Err(err(format!("state dict key {key} is not a string")));
        };
        let Value::Tensor(t) = value else {
            return Err(err(format!(
                "`{name}` holds a {value}, not a tensor (nested checkpoints are not supported: \
                 save `model.state_dict()` itself)"
            )));
        };
        let entry = format!("{prefix}data/{}", t.storage.key);
        if !storages.contains_key(&entry) {
            let raw = read_entry(&mut zip, &entry, &mut budget)
                .map_err(|e| err(format!("`{name}`: storage {entry}: {e}")))?;
            storages.insert(entry.clone(), raw);
        }
        let tensor =
            materialise(&t, &storages[&entry]).map_err(|e| err(format!("`{name}`: {e}")))?;
        if tensors.insert(name.clone(), tensor).is_some() {
            return Err(err(format!("`{name}` appears twice")));
        }
    }
    Ok(StateDict {
        tensors,
        metadata: BTreeMap::new(),
    })
}

/// What the entries of one archive may expand to, checked before each is read: every entry's
/// declared size against the archive's size (stored entries) or deflate's largest ratio, and the
/// total against twice [`max_param_bytes`] (a float64 checkpoint of the largest allowed model).
struct EntryBudget {
    archive_len: u64,
    left: u64,
}

/// Deflate cannot expand data by more than 1032 to 1.
const MAX_DEFLATE_RATIO: u64 = 1032;

impl EntryBudget {
    fn new(archive_len: usize) -> Self {
        EntryBudget {
            archive_len: archive_len as u64,
            left: max_param_bytes().saturating_mul(2),
        }
    }
}

fn read_entry(
    zip: &mut zip::ZipArchive<Cursor<&[u8]>>,
    name: &str,
    budget: &mut EntryBudget,
) -> Result<Vec<u8>, String> {
    let f = zip.by_name(name).map_err(|e| e.to_string())?;
    let (size, packed) = (f.size(), f.compressed_size());
    let most = match f.compression() {
        zip::CompressionMethod::Stored => packed.min(budget.archive_len),
        _ => packed.saturating_mul(MAX_DEFLATE_RATIO),
    };
    if size > most {
        return Err(format!(
            "declares {size} bytes uncompressed from {packed} stored bytes in a {}-byte archive: \
             damaged or crafted",
            budget.archive_len
        ));
    }
    if size > budget.left {
        return Err(format!(
            "expands to {size} bytes, over what is left ({} bytes) of the checkpoint's limit of \
             twice the parameter limit; {}",
            budget.left,
            param_limit_text()
        ));
    }
    budget.left -= size;
    let mut out = Vec::with_capacity(size as usize);
    f.take(size + 1)
        .read_to_end(&mut out)
        .map_err(|e| e.to_string())?;
    if out.len() as u64 != size {
        return Err(format!(
            "holds {} bytes but declares {size}: damaged",
            out.len()
        ));
    }
    Ok(out)
}

/// The element type and size of a legacy typed storage class.
fn storage_dtype(s: &StorageRef) -> Result<DType, String> {
    match s.class.as_str() {
        "FloatStorage" => Ok(DType::F32),
        "HalfStorage" => Ok(DType::F16),
        "BFloat16Storage" => Ok(DType::BF16),
        "DoubleStorage" => Ok(DType::F64),
        other => Err(format!(
            "storage type torch.{other} is not supported (float32, float16, bfloat16, float64 are)"
        )),
    }
}

/// Gathers the tensor's elements, row-major, from `raw` through its offset and strides.
fn materialise(t: &TensorRef, raw: &[u8]) -> Result<Tensor, String> {
    let dtype = storage_dtype(&t.storage)?;
    let width = dtype.size();
    let have = raw.len() / width;
    if !raw.len().is_multiple_of(width) || have < t.storage.numel {
        return Err(format!(
            "storage {} has {} bytes; {} elements of {width} bytes were declared",
            t.storage.key,
            raw.len(),
            t.storage.numel
        ));
    }
    let numel = t.size.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    let numel = numel.ok_or_else(|| format!("size {:?} overflows", t.size))?;
    // A state dict's tensors are contiguous; a view with more elements than its storage (a
    // stride-0 expansion) would let a small file ask for any amount of memory.
    if numel > t.storage.numel {
        return Err(format!(
            "size {:?} has {numel} elements, more than the {} of its storage {} (an expanded \
             view; save a contiguous copy, `t.contiguous()`)",
            t.size, t.storage.numel, t.storage.key
        ));
    }
    if numel > 0 {
        let last = t
            .size
            .iter()
            .zip(&t.stride)
            .try_fold(t.offset, |a, (&d, &s)| {
                (d - 1).checked_mul(s).and_then(|x| a.checked_add(x))
            });
        if last.is_none_or(|l| l >= t.storage.numel) {
            return Err(format!(
                "size {:?}, stride {:?} and offset {} reach past the storage's {} elements",
                t.size, t.stride, t.offset, t.storage.numel
            ));
        }
    }
    let mut values = Vec::with_capacity(numel);
    let mut index = vec![0usize; t.size.len()];
    for _ in 0..numel {
        let at: usize = t.offset
            + index
                .iter()
                .zip(&t.stride)
                .map(|(i, s)| i * s)
                .sum::<usize>();
        values.push(dtype.decode(&raw[at * width..(at + 1) * width]));
        // Row-major increment of the multi-index.
        for axis in (0..index.len()).rev() {
            index[axis] += 1;
            if index[axis] < t.size[axis] {
                break;
            }
            index[axis] = 0;
        }
    }
    Ok(Tensor {
        shape: t.size.clone(),
        values,
        dtype,
    })
}
