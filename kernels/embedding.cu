// Embedding: a task's fast embedding table holds only the rows of the items in its prefixes
// (no other row can receive gradient). Forward gathers those rows from θ; backward sums the
// gradients of a row's records (CSR, in record order) and returns them per local row.
#include "common.cuh"

// table[u, :] = theta_emb[ids[u], :] for the task's U local rows.
__device__ void embedding_forward_block(float* table, const float* theta_emb, const u32* ids,
                                        u32 n_rows, u32 e) {
    for (u32 i = threadIdx.x; i < n_rows * e; i += blockDim.x) {
        u32 u = i / e, c = i % e;
        table[i] = theta_emb[(u64)ids[u] * e + c];
    }
}

// dtable[u, c] = (sum over the records r of row u of dgi[r, :]) . w_ih[:, c], assigned; the
// padding row gets 0 (PyTorch's padding_idx). `rows` is the split's CSR (U + 1 starts, entries).
// First the per-row sums of dgi (rowsum [U, 3H], one gate row per thread), then the products
// (one (row, column) per thread, reading w_ih along its rows), like the CPU engine's per-item
// accumulation. Ends with a barrier.
__device__ void embedding_backward_block(float* dtable, float* rowsum, const float* dgi,
                                         const float* w_ih, const u32* rows, u32 n_rows,
                                         u32 padding_row, u32 e, u32 h) {
    const u32 g3 = 3 * h;
    const u32* entries = rows + n_rows + 1;
    for (u32 i = threadIdx.x; i < n_rows * g3; i += blockDim.x) {
        u32 u = i / g3, j = i % g3;
        float sj = 0.0f;
        for (u32 q = rows[u]; q < rows[u + 1]; ++q) sj += dgi[(u64)entries[q] * g3 + j];
        rowsum[i] = sj;
    }
    __syncthreads();
    for (u32 i = threadIdx.x; i < n_rows * e; i += blockDim.x) {
        u32 u = i / e, c = i % e;
        dtable[i] = u != padding_row && rows[u + 1] > rows[u]
                        ? rm_dot_strided(w_ih + c, e, rowsum + (u64)u * g3, g3)
                        : 0.0f;
    }
    __syncthreads();
}
