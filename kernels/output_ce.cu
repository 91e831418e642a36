// Output layer and weighted cross-entropy for the B sequences of a split. The task's
// output.weight is θ's dense [V, H] plus its SGD updates kept as R rank-1 terms
// (lr_d [R, V] ⊗ lr_g [R, H]): a step on K samples adds K terms instead of touching V*H weights.
// Row reductions (max, sum of exp, d·dlogits) are one warp per row, fixed order.
#include "common.cuh"

// logits[b, v] = bias[v] + W[v, :] . h_b + sum_r lr_d[r, v] (lr_g[r, :] . h_b); lse[b];
// loss[b] = lse[b] - logits[b, label_b]. Returns sum_b w_b loss[b] (valid in thread 0).
__device__ float output_ce_forward_block(const Dims& d, const WsLayout& L, float* ws,
                                         const float* w_out, const u32* ints, const float* fl,
                                         const SplitDesc& s, u32 rank) {
    const u32 v_n = d.v, h = d.h, b_n = s.n_seqs;
    const float* hl = ws + L.hlast;
    float* coef = ws + L.coef;
    float* logits = ws + L.logits;
    for (u32 i = threadIdx.x; i < b_n * rank; i += blockDim.x) {
        u32 b = i / rank, r = i % rank;
        float acc = 0.0f;
        for (u32 k = 0; k < h; ++k) acc = fmaf(ws[L.lr_g + (u64)r * h + k], hl[b * h + k], acc);
        coef[b * L.r_max + r] = acc;
    }
    __syncthreads();
    for (u32 v = threadIdx.x; v < v_n; v += blockDim.x) {
        const float* wr = w_out + (u64)v * h;
        for (u32 b = 0; b < b_n; ++b) {
            float acc = ws[L.bias + v];
            for (u32 k = 0; k < h; ++k) acc = fmaf(wr[k], hl[b * h + k], acc);
            for (u32 r = 0; r < rank; ++r)
                acc = fmaf(ws[L.lr_d + (u64)r * v_n + v], coef[b * L.r_max + r], acc);
            logits[(u64)b * v_n + v] = acc;
        }
    }
    __syncthreads();
    const u32 warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    for (u32 b = warp; b < b_n; b += RM_WARPS) {
        const float* row = logits + (u64)b * v_n;
        float m = __int_as_float(0xff800000);  // -inf
        for (u32 v = lane; v < v_n; v += 32) m = fmaxf(m, row[v]);
        m = rm_warp_max(m);
        float sum = 0.0f;
        for (u32 v = lane; v < v_n; v += 32) sum += expf(row[v] - m);
        sum = rm_warp_sum(sum);
        if (lane == 0) {
            float lse = m + logf(sum);
            ws[L.lse + b] = lse;
            ws[L.loss + b] = lse - row[ints[s.labels + b]];
        }
    }
    __syncthreads();
    float total = 0.0f;
    if (threadIdx.x == 0)
        for (u32 b = 0; b < b_n; ++b) total += fl[s.weights + b] * ws[L.loss + b];
    return total;
}

// Backward of the last forward: dlogits (in place over logits) = w_b (softmax - onehot);
// dbias[v] = sum_b dlogits[b, v] (assigned); dhlast[b, :] = W^T dlogits_b + sum_r lr_g[r, :]
// (lr_d[r, :] . dlogits_b). output.weight's gradient stays factored: dlogits^T hlast.
__device__ void output_ce_backward_block(const Dims& d, const WsLayout& L, float* ws,
                                         const float* w_out, const u32* ints, const float* fl,
                                         const SplitDesc& s, u32 rank) {
    const u32 v_n = d.v, h = d.h, b_n = s.n_seqs;
    float* dl = ws + L.logits;
    float* coef = ws + L.coef;
    for (u32 i = threadIdx.x; i < b_n * v_n; i += blockDim.x) {
        u32 b = i / v_n, v = i % v_n;
        float w = fl[s.weights + b];
        float g = w * expf(dl[i] - ws[L.lse + b]);
        if (v == ints[s.labels + b]) g -= w;
        dl[i] = g;
    }
    __syncthreads();
    for (u32 v = threadIdx.x; v < v_n; v += blockDim.x) {
        float acc = 0.0f;
        for (u32 b = 0; b < b_n; ++b) acc += dl[(u64)b * v_n + v];
        ws[L.dbias + v] = acc;
    }
    const u32 warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    for (u32 pr = warp; pr < b_n * rank; pr += RM_WARPS) {
        u32 b = pr / rank, r = pr % rank;
        float acc = 0.0f;
        for (u32 v = lane; v < v_n; v += 32)
            acc = fmaf(ws[L.lr_d + (u64)r * v_n + v], dl[(u64)b * v_n + v], acc);
        acc = rm_warp_sum(acc);
        if (lane == 0) coef[b * L.r_max + r] = acc;
    }
    __syncthreads();
    for (u32 i = threadIdx.x; i < b_n * h; i += blockDim.x) {
        u32 b = i / h, k = i % h;
        float acc = 0.0f;
        for (u32 v = 0; v < v_n; ++v) acc = fmaf(dl[(u64)b * v_n + v], w_out[(u64)v * h + k], acc);
        for (u32 r = 0; r < rank; ++r)
            acc = fmaf(coef[b * L.r_max + r], ws[L.lr_g + (u64)r * h + k], acc);
        ws[L.dhlast + i] = acc;
    }
    __syncthreads();
}

// Stand-alone entry points (one block per task), for validating the op on its own at the
// task's current fast weights with `rank` low-rank terms; the forward writes each task's
// weighted loss to loss_out[task].
extern "C" __global__ void __launch_bounds__(RM_BLOCK)
    output_ce_forward(TaskParams p, const float* theta, const u32* ints, const TaskDesc* descs,
                      const float* fl, float* ws_all, float* loss_out, u32 query, u32 rank) {
    const TaskDesc& t = descs[blockIdx.x];
    float total = output_ce_forward_block(p.d, p.ws, ws_all + blockIdx.x * p.ws.stride,
                                          theta + p.d.off_wout, ints, fl,
                                          query ? t.query : t.support, rank);
    if (threadIdx.x == 0) loss_out[blockIdx.x] = total;
}

extern "C" __global__ void __launch_bounds__(RM_BLOCK)
    output_ce_backward(TaskParams p, const float* theta, const u32* ints, const TaskDesc* descs,
                       const float* fl, float* ws_all, u32 query, u32 rank) {
    const TaskDesc& t = descs[blockIdx.x];
    output_ce_backward_block(p.d, p.ws, ws_all + blockIdx.x * p.ws.stride, theta + p.d.off_wout,
                             ints, fl, query ? t.query : t.support, rank);
}
