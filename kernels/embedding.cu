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

// dtable[u, c] = sum over the records r of row u of (dgi[r, :] . w_ih[:, c]), assigned; the
// padding row gets 0 (PyTorch's padding_idx). `rows` is the split's CSR (U + 1 starts, entries).
// dgi is first summed over the row's records (one 3H vector), then multiplied by w_ih, like the
// CPU engine's per-item accumulation.
__device__ void embedding_backward_block(float* dtable, const float* dgi, const float* w_ih,
                                         const u32* rows, u32 n_rows, u32 padding_row, u32 e,
                                         u32 h) {
    const u32 g3 = 3 * h;
    const u32* entries = rows + n_rows + 1;
    for (u32 i = threadIdx.x; i < n_rows * e; i += blockDim.x) {
        u32 u = i / e, c = i % e;
        float acc = 0.0f;
        if (u != padding_row) {
            u32 r0 = rows[u], r1 = rows[u + 1];
            for (u32 j = 0; j < g3; ++j) {
                float sj = 0.0f;
                for (u32 q = r0; q < r1; ++q) sj += dgi[(u64)entries[q] * g3 + j];
                acc = fmaf(sj, w_ih[(u64)j * e + c], acc);
            }
        }
        dtable[i] = acc;
    }
}

// Stand-alone entry points (one block per task), for validating the op on its own.
extern "C" __global__ void __launch_bounds__(RM_BLOCK)
    embedding_forward(TaskParams p, const float* theta, const u32* ints, const TaskDesc* descs,
                      float* ws_all) {
    const TaskDesc& t = descs[blockIdx.x];
    float* ws = ws_all + blockIdx.x * p.ws.stride;
    embedding_forward_block(ws + p.ws.table, theta + p.d.off_emb, ints + t.ids, t.n_rows, p.d.e);
}

extern "C" __global__ void __launch_bounds__(RM_BLOCK)
    embedding_backward(TaskParams p, const u32* ints, const TaskDesc* descs, float* ws_all,
                       u32 query) {
    const TaskDesc& t = descs[blockIdx.x];
    const SplitDesc& s = query ? t.query : t.support;
    float* ws = ws_all + blockIdx.x * p.ws.stride;
    embedding_backward_block(ws + p.ws.dtable, ws + p.ws.dgi, ws + p.ws.gru, ints + s.rows,
                             t.n_rows, t.padding_row, p.d.e, p.d.h);
}
