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
// (one column of four rows per thread, reading w_ih along its rows), like the CPU engine's
// per-item accumulation. Ends with a barrier.
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
    // Four rows per thread: each w_ih load serves four rows, whose sums are read as float4 when
    // 3H is a multiple of 4 (rowsum rows then start on 16 bytes).
    const u32 n_groups = (n_rows + 3) / 4;
    for (u32 i = threadIdx.x; i < n_groups * e; i += blockDim.x) {
        const u32 u0 = (i / e) * 4, c = i % e;
        const float* rs[4];
        float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
        for (u32 q = 0; q < 4; ++q) rs[q] = rowsum + (u64)min(u0 + q, n_rows - 1) * g3;
        if (g3 % 4 == 0) {
            for (u32 j = 0; j < g3; j += 4) {
                float w[4];
#pragma unroll
                for (u32 a = 0; a < 4; ++a) w[a] = w_ih[(u64)(j + a) * e + c];
#pragma unroll
                for (u32 q = 0; q < 4; ++q) {
                    const float4 g = *reinterpret_cast<const float4*>(rs[q] + j);
                    acc[q] = fmaf(w[0], g.x, acc[q]);
                    acc[q] = fmaf(w[1], g.y, acc[q]);
                    acc[q] = fmaf(w[2], g.z, acc[q]);
                    acc[q] = fmaf(w[3], g.w, acc[q]);
                }
            }
        } else {
            for (u32 j = 0; j < g3; ++j) {
                const float w = w_ih[(u64)j * e + c];
#pragma unroll
                for (u32 q = 0; q < 4; ++q) acc[q] = fmaf(w, rs[q][j], acc[q]);
            }
        }
#pragma unroll
        for (u32 q = 0; q < 4; ++q) {
            const u32 u = u0 + q;
            if (u < n_rows)
                dtable[(u64)u * e + c] = u != padding_row && rows[u + 1] > rows[u] ? acc[q] : 0.0f;
        }
    }
    __syncthreads();
}
