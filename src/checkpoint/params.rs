//! Between a checkpoint's named tensors and the model's flat parameter buffer: name mapping
//! (the upstream GRU4Rec's `fc.*` is our `output.*`), completeness, shape checks whose errors say
//! which configuration setting to change, and inference of the model size from the shapes.

use super::{save_safetensors, StateDict, Tensor};
use crate::model::{ModelDims, ParamLayout, PARAM_NAMES};
use crate::{Error, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// What each axis of a parameter tensor measures.
#[derive(Clone, Copy)]
enum Axis {
    /// V, the vocabulary (from the data or the checkpoint; not a setting).
    Items,
    /// E, `model.embed_dim`.
    Embed,
    /// 3H, the GRU's stacked r, z, n gate rows.
    Gates,
    /// H, `model.hidden_dim`.
    Hidden,
}

/// The axes of each tensor, in [`PARAM_NAMES`] order.
const AXES: [&[Axis]; 7] = {
    use Axis::*;
    [
        &[Items, Embed],
        &[Gates, Embed],
        &[Gates, Hidden],
        &[Gates],
        &[Gates],
        &[Items, Hidden],
        &[Items],
    ]
};

/// Our name for a tensor that the file calls `name` (upstream GRU4Rec names its output layer `fc`).
fn canonical(name: &str) -> String {
    match name.strip_prefix("fc.") {
        Some(rest) => format!("output.{rest}"),
        None => name.to_string(),
    }
}

/// The seven GRU4Rec tensors in [`PARAM_NAMES`] order, each with the name the file uses; an
/// error lists every missing or unexpected tensor.
fn gru4rec_tensors<'a>(sd: &'a StateDict, file: &Path) -> Result<Vec<(&'a str, &'a Tensor)>> {
    let mut found: BTreeMap<String, (&str, &Tensor)> = BTreeMap::new();
    let mut unexpected = Vec::new();
    for (name, t) in &sd.tensors {
        let ours = canonical(name);
        if !PARAM_NAMES.contains(&ours.as_str()) {
            unexpected.push(format!("`{name}`"));
        } else if let Some((other, _)) = found.insert(ours.clone(), (name, t)) {
            return Err(Error::checkpoint(
                file,
                format!("both `{other}` and `{name}` hold `{ours}`"),
            ));
        }
    }
    let missing: Vec<String> = PARAM_NAMES
        .iter()
        .filter(|n| !found.contains_key(**n))
        .map(|n| format!("`{n}`"))
        .collect();
    if !missing.is_empty() || !unexpected.is_empty() {
        let mut msg = String::from("not a one-layer GRU4Rec state dict:");
        if !missing.is_empty() {
            msg += &format!(" missing {}", missing.join(", "));
        }
        if !unexpected.is_empty() {
            let sep = if missing.is_empty() { "" } else { ";" };
            msg += &format!("{sep} unexpected tensor(s) {}", unexpected.join(", "));
        }
        msg += &format!(
            " (expected exactly {}; `fc.*` is accepted for `output.*`)",
            PARAM_NAMES.join(", ")
        );
        return Err(Error::checkpoint(file, msg));
    }
    Ok(PARAM_NAMES.iter().map(|n| found[*n]).collect())
}

/// `fc.weight (output.weight)` where the file's name differs from ours.
fn display_name(file_name: &str, ours: &str) -> String {
    if file_name == ours {
        format!("`{ours}`")
    } else {
        format!("`{file_name}` (our `{ours}`)")
    }
}

/// One tensor whose shape differs from the one expected, with the settings that would fix it.
struct Mismatch {
    what: String,
    fixes: Vec<String>,
}

/// Compares every tensor's shape with `layout`'s; `expecter` says whose expectation it is.
fn mismatches(ts: &[(&str, &Tensor)], layout: &ParamLayout, expecter: &str) -> Vec<Mismatch> {
    let mut out = Vec::new();
    for (i, ((file_name, t), want)) in ts.iter().zip(&layout.tensors).enumerate() {
        if t.shape == want.shape {
            continue;
        }
        let what = format!(
            "{} has shape {:?} in the checkpoint but {expecter} {:?}",
            display_name(file_name, want.name),
            t.shape,
            want.shape
        );
        let fixes = if t.shape.len() != want.shape.len() {
            vec![format!(
                "use a one-layer GRU4Rec checkpoint (`{}` must have rank {})",
                want.name,
                want.shape.len()
            )]
        } else {
            AXES[i]
                .iter()
                .zip(t.shape.iter().zip(&want.shape))
                .filter(|(_, (got, want))| got != want)
                .map(|(axis, (&got, &want))| fix_for(*axis, got, want))
                .collect()
        };
        out.push(Mismatch { what, fixes });
    }
    out
}

/// The configuration change that makes an axis of size `want` become `got`.
fn fix_for(axis: Axis, got: usize, want: usize) -> String {
    match axis {
        Axis::Embed => format!("set `model.embed_dim = {got}`"),
        Axis::Hidden => format!("set `model.hidden_dim = {got}`"),
        Axis::Gates if got.is_multiple_of(3) => format!("set `model.hidden_dim = {}`", got / 3),
        Axis::Gates => format!("use a GRU checkpoint ({got} gate rows is not 3 x hidden_dim)"),
        Axis::Items => format!(
            "use episode files with the checkpoint's vocabulary: it has n_items = {got} \
             (counting padding id 0), the data here gives n_items = {want}"
        ),
    }
}

/// Joins mismatches into one message: every tensor, then every distinct fix.
fn mismatch_message(ms: &[Mismatch]) -> String {
    let fixes: BTreeSet<&str> = ms
        .iter()
        .flat_map(|m| m.fixes.iter().map(String::as_str))
        .collect();
    let whats: Vec<&str> = ms.iter().map(|m| m.what.as_str()).collect();
    format!(
        "shape mismatch: {}; to load it, {}",
        whats.join("; "),
        fixes.into_iter().collect::<Vec<_>>().join(" and ")
    )
}

/// The flat parameter buffer (float32, in `layout`'s order) held by a GRU4Rec state dict.
///
/// Accepts `fc.*` for `output.*`. All seven tensors must be present, with no other tensors, each
/// with the shape `layout` expects; a mismatch is an [`Error::Checkpoint`] naming the tensor, both
/// shapes and the setting to change. Non-finite values are refused.
pub fn params_from_state_dict(
    sd: &StateDict,
    layout: &ParamLayout,
    file: &Path,
) -> Result<Vec<f32>> {
    let ts = gru4rec_tensors(sd, file)?;
    let ms = mismatches(&ts, layout, "the configured model expects");
    if !ms.is_empty() {
        return Err(Error::checkpoint(file, mismatch_message(&ms)));
    }
    let mut theta = vec![0f32; layout.len];
    for ((file_name, t), pt) in ts.iter().zip(&layout.tensors) {
        let dst = &mut theta[pt.range()];
        for (k, (d, &v)) in dst.iter_mut().zip(&t.values).enumerate() {
            *d = v as f32;
            if !d.is_finite() {
                return Err(Error::checkpoint(
                    file,
                    format!(
                        "{} holds {v} (as float32: {d}) at flat index {k}",
                        display_name(file_name, pt.name)
                    ),
                ));
            }
        }
    }
    Ok(theta)
}

/// The model size a GRU4Rec state dict was saved with: V and E from `embedding.weight [V,E]`, H
/// from `gru.weight_hh_l0 [3H,H]`; every other tensor must agree with them.
pub fn dims_from_state_dict(sd: &StateDict, file: &Path) -> Result<ModelDims> {
    let ts = gru4rec_tensors(sd, file)?;
    let (emb, w_hh) = (&ts[0].1.shape, &ts[2].1.shape);
    let dims = match (emb.as_slice(), w_hh.as_slice()) {
        (&[v, e], &[_, h]) if v > 0 && e > 0 && h > 0 => ModelDims {
            n_items: v,
            embed_dim: e,
            hidden_dim: h,
        },
        _ => {
            return Err(Error::checkpoint(
                file,
                format!(
                    "cannot infer the model size: embedding.weight is {emb:?}, gru.weight_hh_l0 is \
                     {w_hh:?} (expected [V, E] and [3H, H], all positive)"
                ),
            ))
        }
    };
    let ms = mismatches(&ts, &ParamLayout::new(dims), "those sizes imply");
    if !ms.is_empty() {
        let whats: Vec<String> = ms.into_iter().map(|m| m.what).collect();
        return Err(Error::checkpoint(
            file,
            format!(
                "inconsistent shapes: embedding.weight and gru.weight_hh_l0 give n_items {}, \
                 embed_dim {}, hidden_dim {}; {}",
                dims.n_items,
                dims.embed_dim,
                dims.hidden_dim,
                whats.join("; ")
            ),
        ));
    }
    Ok(dims)
}

/// Writes `theta` as float32 safetensors with exactly PyTorch's seven names and shapes, so that
/// `model.load_state_dict(safetensors.torch.load_file(path))` works; atomically (see
/// [`save_safetensors`]).
pub fn save_params(
    path: &Path,
    layout: &ParamLayout,
    theta: &[f32],
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    if theta.len() != layout.len {
        return Err(Error::Shape(format!(
            "writing {}: {} parameters given, the layout {:?} has {}",
            path.display(),
            theta.len(),
            layout.dims,
            layout.len
        )));
    }
    let tensors: Vec<(&str, &[usize], &[f32])> = layout
        .tensors
        .iter()
        .map(|t| (t.name, t.shape.as_slice(), &theta[t.range()]))
        .collect();
    save_safetensors(path, &tensors, metadata)
}
