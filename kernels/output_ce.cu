// Output layer and weighted cross-entropy for the B sequences of a split. The task's
// output.weight is θ's dense [V, H] plus its SGD updates kept as R rank-1 terms
// (lr_d [R, V] ⊗ lr_g [R, H]): a step on K samples adds K terms instead of touching V*H weights.
// The forward reads θ's output.weight transposed (w_out_t [H, V], written by transpose_out), so
// consecutive threads (items) read consecutive addresses; the backward reads it row-major.
// Row reductions (max, sum of exp, d·dlogits) are one warp per row, fixed order.
#include "common.cuh"

// Sequences handled together by one thread (register accumulators).
#define RM_BCHUNK 4

// logits[b, v] = bias[v] + W[v, :] . h_b + sum_r lr_d[r, v] (lr_g[r, :] . h_b); lse[b];
// loss[b] = lse[b] - logits[b, label_b]. Returns sum_b w_b loss[b] (valid in thread 0).
__device__ float output_ce_forward_block(const Dims& d, const WsLayout& L, float* ws,
                                         const float* w_out_t, const u32* ints, const float* fl,
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
        const float bias = ws[L.bias + v];
        for (u32 b0 = 0; b0 < b_n; b0 += RM_BCHUNK) {
            // Rows past the last sequence repeat it (computed, never stored).
            u32 bq[RM_BCHUNK];
            float acc[RM_BCHUNK];
#pragma unroll
            for (u32 q = 0; q < RM_BCHUNK; ++q) {
                bq[q] = min(b0 + q, b_n - 1);
                acc[q] = bias;
            }
#pragma unroll 4
            for (u32 k = 0; k < h; ++k) {
                float w = w_out_t[(u64)k * v_n + v];
#pragma unroll
                for (u32 q = 0; q < RM_BCHUNK; ++q) acc[q] = fmaf(w, hl[bq[q] * h + k], acc[q]);
            }
#pragma unroll 4
            for (u32 r = 0; r < rank; ++r) {
                float lr = ws[L.lr_d + (u64)r * v_n + v];
#pragma unroll
                for (u32 q = 0; q < RM_BCHUNK; ++q)
                    acc[q] = fmaf(lr, coef[bq[q] * L.r_max + r], acc[q]);
            }
#pragma unroll
            for (u32 q = 0; q < RM_BCHUNK; ++q)
                if (b0 + q < b_n) logits[(u64)(b0 + q) * v_n + v] = acc[q];
        }
    }
    __syncthreads();
    const u32 warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    for (u32 b = warp; b < b_n; b += blockDim.x / 32) {
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
// W^T dlogits: the block's threads form S = blockDim / H slices of H threads; slice s sums the
// items v = s, s + S, ... (red [S, B, H]); the slices are then added in order.
__device__ void output_ce_backward_block(const Dims& d, const WsLayout& L, float* ws,
                                         const float* w_out, const u32* ints, const float* fl,
                                         const SplitDesc& s, u32 rank) {
    const u32 v_n = d.v, h = d.h, b_n = s.n_seqs;
    float* dl = ws + L.logits;
    float* coef = ws + L.coef;
    float* red = ws + L.red;
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
    for (u32 pr = warp; pr < b_n * rank; pr += blockDim.x / 32) {
        u32 b = pr / rank, r = pr % rank;
        float acc = 0.0f;
#pragma unroll 4
        for (u32 v = lane; v < v_n; v += 32)
            acc = fmaf(ws[L.lr_d + (u64)r * v_n + v], dl[(u64)b * v_n + v], acc);
        acc = rm_warp_sum(acc);
        if (lane == 0) coef[b * L.r_max + r] = acc;
    }
    const u32 n_slices = blockDim.x / h;
    if (threadIdx.x < n_slices * h) {
        const u32 sl = threadIdx.x / h, k = threadIdx.x % h;
        for (u32 b0 = 0; b0 < b_n; b0 += RM_BCHUNK) {
            u32 bq[RM_BCHUNK];
            float acc[RM_BCHUNK];
#pragma unroll
            for (u32 q = 0; q < RM_BCHUNK; ++q) {
                bq[q] = min(b0 + q, b_n - 1);
                acc[q] = 0.0f;
            }
#pragma unroll 4
            for (u32 v = sl; v < v_n; v += n_slices) {
                float w = w_out[(u64)v * h + k];
#pragma unroll
                for (u32 q = 0; q < RM_BCHUNK; ++q)
                    acc[q] = fmaf(dl[(u64)bq[q] * v_n + v], w, acc[q]);
            }
#pragma unroll
            for (u32 q = 0; q < RM_BCHUNK; ++q)
                if (b0 + q < b_n) red[((u64)sl * b_n + b0 + q) * h + k] = acc[q];
        }
    }
    __syncthreads();
    for (u32 i = threadIdx.x; i < b_n * h; i += blockDim.x) {
        u32 b = i / h, k = i % h;
        float acc = 0.0f;
        for (u32 sl = 0; sl < n_slices; ++sl) acc += red[((u64)sl * b_n + b) * h + k];
        for (u32 r = 0; r < rank; ++r)
            acc = fmaf(coef[b * L.r_max + r], ws[L.lr_g + (u64)r * h + k], acc);
        ws[L.dhlast + i] = acc;
    }
    __syncthreads();
}

// θ's output.weight [V, H] transposed into w_out_t [H, V] (grid-stride), for the forward.
extern "C" __global__ void __launch_bounds__(RM_BLOCK)
    transpose_out(Dims d, const float* theta, float* w_out_t) {
    const u64 n = (u64)d.v * d.h;
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (u64)gridDim.x * blockDim.x) {
        u64 k = i / d.v, v = i % d.v;
        w_out_t[i] = theta[d.off_wout + v * d.h + k];
    }
}
