// The whole per-task computation of a meta-iteration in one persistent block per task: load the
// fast weights from θ, S inner SGD steps on the weighted support loss (GRU forward, output + CE,
// backward through output, time and embedding rows, SGD), then the query pass at the adapted
// weights. All N tasks in one launch (grid = N). Dynamic shared memory: the recurrences' (GruSmem
// in gru.cu).
// `w_out_t` is θ's output.weight transposed (transpose_out, launched just before).
#include "common.cuh"

// Copies θ's GRU block (and the transposed weight matrices), the task's embedding rows and the
// output bias into the workspace.
__device__ void task_load(const TaskParams& p, const float* theta, const u32* ints,
                          const TaskDesc& t, float* ws) {
    const Dims& d = p.d;
    const u32 n_w = 3 * d.h * (d.e + d.h);
    for (u32 i = threadIdx.x; i < d.gru_len; i += blockDim.x) {
        float x = theta[d.off_wih + i];
        ws[p.ws.gru + i] = x;
        if (i < n_w) gru_set_transposed(d, p.ws, ws, i, x);
    }
    embedding_forward_block(ws + p.ws.table, theta + d.off_emb, ints + t.ids, t.n_rows, d.e);
    for (u32 i = threadIdx.x; i < d.v; i += blockDim.x) ws[p.ws.bias + i] = theta[d.off_bout + i];
    __syncthreads();
    RM_MARK(0);
}

// Forward of a split at the current fast weights (rank low-rank terms); the loss in thread 0.
__device__ float task_split_forward(const TaskParams& p, const float* w_out_t, const u32* ints,
                                    const float* fl, const SplitDesc& s, float* ws, float* sh,
                                    u32 rank) {
    gru_forward_block(p, ws, ints, s, sh);
    if (s.mask != RM_NONE) {  // dropout on the final hidden states (pretraining)
        for (u32 i = threadIdx.x; i < s.n_seqs * p.d.h; i += blockDim.x)
            ws[p.ws.hlast + i] *= fl[s.mask + i];
        __syncthreads();
    }
    float loss = output_ce_forward_block(p.d, p.ws, ws, w_out_t, ints, fl, s, rank,
                                         gru_smem(p, sh).g);
    RM_MARK(3);
    return loss;
}

// Backward of the last forward of split s. With `update`, one SGD step on the fast weights
// (output.weight's appended after `rank` terms); otherwise the gradient stays in the workspace
// (dgru, dtable, dbias, and dlogits / hlast for output.weight).
__device__ void task_split_backward(const TaskParams& p, const float* theta, const u32* ints,
                                    const float* fl, const TaskDesc& t, const SplitDesc& s,
                                    float* ws, float* sh, u32 rank, bool update) {
    const Dims& d = p.d;
    const WsLayout& L = p.ws;
    output_ce_backward_block(d, L, ws, theta + d.off_wout, ints, fl, s, rank);
    if (s.mask != RM_NONE) {
        for (u32 i = threadIdx.x; i < s.n_seqs * d.h; i += blockDim.x)
            ws[L.dhlast + i] *= fl[s.mask + i];
        __syncthreads();
    }
    RM_MARK(4);
    gru_backward_time_block(p, ws, ints, s, sh);
    RM_MARK(5);
    // The embedding gradient reads w_ih: it ends with a barrier, before the GRU block is updated.
    embedding_backward_block(ws + L.dtable, ws + L.rowsum, ws + L.dgi, ws + L.gru,
                             ints + s.rows, t.n_rows, t.padding_row, d.e, d.h);
    RM_MARK(6);
    gru_backward_params_block(d, L, ws, ints, s, p.lr, update);
    if (update) {
        sgd_lowrank_block(d, L, ws, s.n_seqs, rank, p.lr);
        sgd_block(ws + L.bias, ws + L.dbias, d.v, p.lr);
        // The table is read by the GRU gradient above (x): update it after a barrier.
        __syncthreads();
        sgd_block(ws + L.table, ws + L.dtable, t.n_rows * d.e, p.lr);
    }
    __syncthreads();
    RM_MARK(7);
}

// Copies the split's logits [B, V] to out (row stride V).
__device__ void task_copy_logits(const TaskParams& p, const float* ws, u32 b_n, float* out) {
    for (u32 i = threadIdx.x; i < b_n * p.d.v; i += blockDim.x) out[i] = ws[p.ws.logits + i];
}

// Training: each task's query-loss gradient at its adapted weights stays in its workspace, its
// query loss goes to task_loss[task]; meta_grad_forward reduces them.
extern "C" __global__ void __launch_bounds__(RM_BLOCK)
    task_backward(TaskParams p, const float* theta, const float* w_out_t, const u32* ints,
                  const TaskDesc* descs, const float* fl, float* ws_all, float* task_loss) {
    extern __shared__ float sh[];
    const TaskDesc& t = descs[blockIdx.x];
    float* ws = ws_all + blockIdx.x * p.ws.stride;
    RM_MARK_START();
    task_load(p, theta, ints, t, ws);
    u32 rank = 0;
    for (u32 step = 0; step < p.steps; ++step) {
        task_split_forward(p, w_out_t, ints, fl, t.support, ws, sh, rank);
        task_split_backward(p, theta, ints, fl, t, t.support, ws, sh, rank, true);
        rank += t.support.n_seqs;
    }
    float loss = task_split_forward(p, w_out_t, ints, fl, t.query, ws, sh, rank);
    task_split_backward(p, theta, ints, fl, t, t.query, ws, sh, rank, false);
    if (threadIdx.x == 0) task_loss[blockIdx.x] = loss;
}

// Evaluation: query logits and mean query CE at θ (slot 0) and after the inner loop (slot 1):
// logits [N, 2, Q_max, V], losses [N, 2].
extern "C" __global__ void __launch_bounds__(RM_BLOCK)
    task_forward(TaskParams p, const float* theta, const float* w_out_t, const u32* ints,
                 const TaskDesc* descs, const float* fl, float* ws_all, float* logits_out,
                 float* loss_out) {
    extern __shared__ float sh[];
    const TaskDesc& t = descs[blockIdx.x];
    float* ws = ws_all + blockIdx.x * p.ws.stride;
    const u64 slot = (u64)p.q_max * p.d.v;
    float* out = logits_out + blockIdx.x * 2 * slot;
    RM_MARK_START();
    task_load(p, theta, ints, t, ws);
    float zero = task_split_forward(p, w_out_t, ints, fl, t.query, ws, sh, 0);
    task_copy_logits(p, ws, t.query.n_seqs, out);
    __syncthreads();
    u32 rank = 0;
    for (u32 step = 0; step < p.steps; ++step) {
        task_split_forward(p, w_out_t, ints, fl, t.support, ws, sh, rank);
        task_split_backward(p, theta, ints, fl, t, t.support, ws, sh, rank, true);
        rank += t.support.n_seqs;
    }
    float few = task_split_forward(p, w_out_t, ints, fl, t.query, ws, sh, rank);
    task_copy_logits(p, ws, t.query.n_seqs, out + slot);
    if (threadIdx.x == 0) {
        loss_out[2 * blockIdx.x] = zero;
        loss_out[2 * blockIdx.x + 1] = few;
    }
}
