//! The embedding layer (`nn.Embedding(V, E, padding_idx=0)`): the forward gathers rows of the
//! table, the backward adds the output gradients back into the rows read, except the padding row.
//! The CPU twin of `kernels/embedding.cu`.

use super::float::Float;

/// `out[i] = table[ids[i]]`: `out [n, e]`, `table [rows, e]`.
pub fn embedding_forward<F: Float>(out: &mut [F], table: &[F], ids: &[u32], e: usize) {
    for (o, &id) in out.chunks_exact_mut(e).zip(ids) {
        let id = id as usize;
        o.copy_from_slice(&table[id * e..(id + 1) * e]);
    }
}

/// `dtable[ids[i]] += dout[i]`, except for the row `padding` (PyTorch's `padding_idx`: that row is
/// read by the forward but never receives gradient).
pub fn embedding_backward<F: Float>(
    dtable: &mut [F],
    dout: &[F],
    ids: &[u32],
    padding: Option<u32>,
    e: usize,
) {
    for (d, &id) in dout.chunks_exact(e).zip(ids) {
        if Some(id) == padding {
            continue;
        }
        let id = id as usize;
        for (t, &g) in dtable[id * e..(id + 1) * e].iter_mut().zip(d) {
            *t += g;
        }
    }
}
