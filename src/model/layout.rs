//! One flat parameter buffer with a typed layout (llm.c style): every named tensor of the model is
//! a contiguous range of one `[P]` buffer. Gradients and Adam moments share the layout, and a
//! meta-batch's fast weights are one `[N x P]` buffer, task `i` at `i*P..(i+1)*P`.

use serde::{Deserialize, Serialize};
use std::ops::Range;

/// Model sizes: V items (id 0 is padding), E embedding size, H GRU hidden size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelDims {
    pub n_items: usize,
    pub embed_dim: usize,
    pub hidden_dim: usize,
}

/// PyTorch's parameter names, in `named_parameters()` order of the seed's `GRURecommender`.
pub const PARAM_NAMES: [&str; 7] = [
    "embedding.weight",
    "gru.weight_ih_l0",
    "gru.weight_hh_l0",
    "gru.bias_ih_l0",
    "gru.bias_hh_l0",
    "output.weight",
    "output.bias",
];

impl ModelDims {
    /// P, the number of parameters of a model of these sizes, or `None` if it overflows `u64`.
    pub fn param_count(&self) -> Option<u64> {
        let (v, e, h) = (
            self.n_items as u64,
            self.embed_dim as u64,
            self.hidden_dim as u64,
        );
        let h3 = h.checked_mul(3)?;
        [
            v.checked_mul(e)?,
            h3.checked_mul(e)?,
            h3.checked_mul(h)?,
            h3.checked_mul(2)?,
            v.checked_mul(h)?,
            v,
        ]
        .into_iter()
        .try_fold(0u64, |a, x| a.checked_add(x))
    }

    /// Fails, saying by how much, when the parameter vector (4 bytes per parameter) would exceed
    /// [`max_param_bytes`](crate::util::limits::max_param_bytes); checked before anything of that
    /// size is allocated.
    pub fn check_memory(&self) -> Result<(), String> {
        let limit = crate::util::limits::max_param_bytes();
        let bytes = self.param_count().and_then(|p| p.checked_mul(4));
        if bytes.is_some_and(|b| b <= limit && usize::try_from(b).is_ok()) {
            return Ok(());
        }
        let size = match (self.param_count(), bytes) {
            (Some(p), Some(b)) => format!("{p} parameters ({} MiB)", b >> 20),
            (Some(p), None) => format!("{p} parameters"),
            _ => "more than 2^64 parameters".to_string(),
        };
        Err(format!(
            "V = {}, embed_dim = {}, hidden_dim = {} make {size}; {}",
            self.n_items,
            self.embed_dim,
            self.hidden_dim,
            crate::util::limits::param_limit_text()
        ))
    }
}

/// One named tensor inside the flat buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamTensor {
    pub name: &'static str,
    pub offset: usize,
    pub shape: Vec<usize>,
}

impl ParamTensor {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Its range in the flat buffer.
    pub fn range(&self) -> Range<usize> {
        self.offset..self.offset + self.numel()
    }
}

/// The named ranges of the flat buffer, computed once from the dimensions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamLayout {
    pub dims: ModelDims,
    pub tensors: Vec<ParamTensor>,
    /// P, the total number of parameters.
    pub len: usize,
}

impl ParamLayout {
    /// The layout of a model of these sizes.
    pub fn new(dims: ModelDims) -> Self {
        let ModelDims {
            n_items: v,
            embed_dim: e,
            hidden_dim: h,
        } = dims;
        let shapes: [Vec<usize>; 7] = [
            vec![v, e],
            vec![3 * h, e],
            vec![3 * h, h],
            vec![3 * h],
            vec![3 * h],
            vec![v, h],
            vec![v],
        ];
        let mut offset = 0;
        let mut tensors = Vec::with_capacity(7);
        for (name, shape) in PARAM_NAMES.iter().zip(shapes) {
            let t = ParamTensor {
                name,
                offset,
                shape,
            };
            offset += t.numel();
            tensors.push(t);
        }
        ParamLayout {
            dims,
            tensors,
            len: offset,
        }
    }

    /// The tensor called `name` (a PyTorch name), if any.
    pub fn get(&self, name: &str) -> Option<&ParamTensor> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// Range of `embedding.weight`.
    pub fn embedding(&self) -> Range<usize> {
        self.tensors[0].range()
    }
    /// Range of `gru.weight_ih_l0`.
    pub fn w_ih(&self) -> Range<usize> {
        self.tensors[1].range()
    }
    /// Range of `gru.weight_hh_l0`.
    pub fn w_hh(&self) -> Range<usize> {
        self.tensors[2].range()
    }
    /// Range of `gru.bias_ih_l0`.
    pub fn b_ih(&self) -> Range<usize> {
        self.tensors[3].range()
    }
    /// Range of `gru.bias_hh_l0`.
    pub fn b_hh(&self) -> Range<usize> {
        self.tensors[4].range()
    }
    /// Range of `output.weight`.
    pub fn out_w(&self) -> Range<usize> {
        self.tensors[5].range()
    }
    /// Range of `output.bias`.
    pub fn out_b(&self) -> Range<usize> {
        self.tensors[6].range()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_tile_the_buffer_exactly() {
        for dims in [
            ModelDims {
                n_items: 40,
                embed_dim: 8,
                hidden_dim: 6,
            },
            ModelDims {
                n_items: 1519,
                embed_dim: 64,
                hidden_dim: 64,
            },
        ] {
            let l = ParamLayout::new(dims);
            let mut next = 0;
            for t in &l.tensors {
                assert_eq!(
                    t.offset, next,
                    "{} does not start where the previous ends",
                    t.name
                );
                next = t.range().end;
            }
            assert_eq!(next, l.len);
            let (v, e, h) = (dims.n_items, dims.embed_dim, dims.hidden_dim);
            assert_eq!(l.len, v * e + 3 * h * e + 3 * h * h + 6 * h + v * h + v);
        }
    }
}
