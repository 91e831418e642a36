// Output layer and weighted cross-entropy for the B sequences of a split. The task's
// output.weight is θ's dense [V, H] plus its SGD updates kept as R rank-1 terms
// (lr_d [R, V] ⊗ lr_g [R, H]): a step on K samples adds K terms instead of touching V*H weights.
// The forward reads θ's output.weight transposed (w_out_t [H, V], written by transpose_out), so
// consecutive threads (items) read consecutive addresses; the backward reads it row-major.
// Row reductions (max, sum of exp, d·dlogits) are one warp per row, fixed order. Registers hold the
// sums of 8 (forward) or up to 16 (backward) sequences per thread (template width NB).
#include "common.cuh"

// acc[u] += w * x[u] for u < NB; x is 16-byte aligned (NB / 4 float4 loads, broadcast when the
// lanes of a warp share x).
template <int NB>
__device__ __forceinline__ void rm_axpy(float w, const float* x, float* acc) {
#pragma unroll
    for (int u = 0; u < NB; u += 4) {
        const float4 xv = *reinterpret_cast<const float4*>(x + u);
        acc[u] = fmaf(w, xv.x, acc[u]);
        acc[u + 1] = fmaf(w, xv.y, acc[u + 1]);
        acc[u + 2] = fmaf(w, xv.z, acc[u + 2]);
        acc[u + 3] = fmaf(w, xv.w, acc[u + 3]);
    }
}

// Stages the inputs of the logits of sequences c0 .. c0 + NB - 1 in shared memory, one row of NB
// per input: rows k < H hold hlast[b, k], rows H + r the low-rank coefficients
// lr_g[r, :] . hlast_b; sequences past the last are zeros. Ends with a barrier.
// The coefficients are dot products over H with four chains (k = 4i + c), read from the staged
// hidden states.
template <int NB>
__device__ void output_stage(const Dims& d, const WsLayout& L, const float* ws, u32 b_n, u32 c0,
                             u32 rank, float* stage) {
    const u32 h = d.h;
    const float* hl = ws + L.hlast;
    for (u32 i = threadIdx.x; i < h * NB; i += blockDim.x) {
        const u32 row = i / NB, b = c0 + i % NB;
        stage[i] = b < b_n ? hl[(u64)b * h + row] : 0.0f;
    }
    __syncthreads();
    for (u32 i = threadIdx.x; i < rank * NB; i += blockDim.x) {
        const u32 r = i / NB, u = i % NB;
        const float* g = ws + L.lr_g + (u64)r * h;
        float a[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        u32 k = 0;
        for (; k + 4 <= h; k += 4) {
#pragma unroll
            for (u32 c = 0; c < 4; ++c) a[c] = fmaf(g[k + c], stage[(k + c) * NB + u], a[c]);
        }
        for (; k < h; ++k) a[0] = fmaf(g[k], stage[k * NB + u], a[0]);
        stage[(h + r) * NB + u] = (a[0] + a[1]) + (a[2] + a[3]);
    }
    __syncthreads();
}

// logits[b, v] for the staged sequences c0 + u < B: bias[v] + W[v, :] . h_b + the low-rank terms,
// one item v per thread, all NB sequences at once (each weight read once for all of them), eight
// weight loads in flight.
template <int NB>
__device__ void output_logits(const Dims& d, const WsLayout& L, float* ws, const float* w_out_t,
                              u32 b_n, u32 c0, u32 rank, const float* stage) {
    const u32 v_n = d.v, h = d.h;
    float* logits = ws + L.logits;
    for (u32 v = threadIdx.x; v < v_n; v += blockDim.x) {
        float acc[NB];
        const float bias = ws[L.bias + v];
#pragma unroll
        for (int u = 0; u < NB; ++u) acc[u] = bias;
        const float* wp = w_out_t + v;
        u32 k = 0;
        for (; k + 8 <= h; k += 8) {
            float w[8];
#pragma unroll
            for (u32 q = 0; q < 8; ++q) w[q] = wp[(u64)(k + q) * v_n];
#pragma unroll
            for (u32 q = 0; q < 8; ++q) rm_axpy<NB>(w[q], stage + (k + q) * NB, acc);
        }
        for (; k < h; ++k) rm_axpy<NB>(wp[(u64)k * v_n], stage + k * NB, acc);
        const float* lp = ws + L.lr_d + v;
#pragma unroll 2  // 4 spills registers at 768 threads per block
        for (u32 r = 0; r < rank; ++r) rm_axpy<NB>(lp[(u64)r * v_n], stage + (h + r) * NB, acc);
#pragma unroll
        for (int u = 0; u < NB; ++u)
            if (c0 + u < b_n) logits[(u64)(c0 + u) * v_n + v] = acc[u];
    }
}

// logits[b, v] = bias[v] + W[v, :] . h_b + sum_r lr_d[r, v] (lr_g[r, :] . h_b); lse[b];
// loss[b] = lse[b] - logits[b, label_b]. Returns sum_b w_b loss[b] (valid in thread 0). `stage`
// is shared memory of (H + rank) * 8 floats. Sequences go 8 at a time (a width of 16 made the
// kernel spill registers at 768 threads per block).
__device__ float output_ce_forward_block(const Dims& d, const WsLayout& L, float* ws,
                                         const float* w_out_t, const u32* ints, const float* fl,
                                         const SplitDesc& s, u32 rank, float* stage) {
    const u32 v_n = d.v, b_n = s.n_seqs;
    float* logits = ws + L.logits;
    for (u32 c0 = 0; c0 < b_n; c0 += 8) {
        output_stage<8>(d, L, ws, b_n, c0, rank, stage);
        output_logits<8>(d, L, ws, w_out_t, b_n, c0, rank, stage);
        __syncthreads();  // the next chunk restages
    }
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

// W^T dlogits for the sequences c0 .. c0 + NB - 1 over slice `sl` of the items (v = sl, sl + S,
// ...), hidden unit k: dlogits read from dlt [V, BP] (NB / 4 float4 loads per item, the same for
// every lane of a warp), four items in flight. Partial sums into red [S, B, H].
template <int NB>
__device__ void output_wt_dl(const Dims& d, const WsLayout& L, float* ws, const float* w_out,
                             u32 b_n, u32 bp, u32 c0, u32 sl, u32 n_slices, u32 k) {
    const u32 v_n = d.v, h = d.h;
    const float* dlt = ws + L.dlt;
    float acc[NB];
#pragma unroll
    for (int u = 0; u < NB; ++u) acc[u] = 0.0f;
#pragma unroll 4
    for (u32 v = sl; v < v_n; v += n_slices)
        rm_axpy<NB>(w_out[(u64)v * h + k], dlt + (u64)v * bp + c0, acc);
#pragma unroll
    for (int u = 0; u < NB; ++u)
        if (c0 + u < b_n) ws[L.red + ((u64)sl * b_n + c0 + u) * h + k] = acc[u];
}

// Backward of the last forward: dlogits (in place over logits) = w_b (softmax - onehot), also
// written transposed into dlt [V, BP] (BP = B rounded up to 8); dbias[v] = sum_b dlogits[b, v]
// (assigned); dhlast[b, :] = W^T dlogits_b + sum_r lr_g[r, :] (lr_d[r, :] . dlogits_b).
// output.weight's gradient stays factored: dlogits^T hlast.
// W^T dlogits: the block's threads form S = blockDim / H slices of H threads; slice s sums the
// items v = s, s + S, ... (red [S, B, H]); the slices are then added in order.
__device__ void output_ce_backward_block(const Dims& d, const WsLayout& L, float* ws,
                                         const float* w_out, const u32* ints, const float* fl,
                                         const SplitDesc& s, u32 rank) {
    const u32 v_n = d.v, h = d.h, b_n = s.n_seqs, bp = (b_n + 7u) & ~7u;
    float* dl = ws + L.logits;
    float* coef = ws + L.coef;
    float* red = ws + L.red;
    for (u32 v = threadIdx.x; v < v_n; v += blockDim.x) {
        float acc = 0.0f;
        for (u32 b = 0; b < b_n; ++b) {
            const float w = fl[s.weights + b];
            float g = w * expf(dl[(u64)b * v_n + v] - ws[L.lse + b]);
            if (v == ints[s.labels + b]) g -= w;
            dl[(u64)b * v_n + v] = g;
            ws[L.dlt + (u64)v * bp + b] = g;
            acc += g;
        }
        ws[L.dbias + v] = acc;
    }
    __syncthreads();
    // coef[b, r] = lr_d[r, :] . dlogits_b: one warp per (term, 8 sequences), the lanes over the
    // items, 8 sums at once from dlt, then a butterfly over the warp.
    const u32 warp = threadIdx.x / 32, lane = threadIdx.x % 32, n_c = bp / 8;
    for (u32 pr = warp; pr < rank * n_c; pr += blockDim.x / 32) {
        const u32 r = pr / n_c, c0 = (pr % n_c) * 8;
        float acc[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
        const float* lp = ws + L.lr_d + (u64)r * v_n;
#pragma unroll 1
        for (u32 v = lane; v < v_n; v += 32) rm_axpy<8>(lp[v], ws + L.dlt + (u64)v * bp + c0, acc);
#pragma unroll
        for (u32 u = 0; u < 8; ++u) {
            const float x = rm_warp_sum(acc[u]);
            if (lane == 0 && c0 + u < b_n) coef[(c0 + u) * L.r_max + r] = x;
        }
    }
    const u32 n_slices = blockDim.x / h;
    if (threadIdx.x < n_slices * h) {
        const u32 sl = threadIdx.x / h, k = threadIdx.x % h;
        for (u32 c0 = 0; c0 < b_n; c0 += 8) {
            if (b_n - c0 > 8 && bp - c0 >= 16) {
                output_wt_dl<16>(d, L, ws, w_out, b_n, bp, c0, sl, n_slices, k);
                c0 += 8;
            } else {
                output_wt_dl<8>(d, L, ws, w_out, b_n, bp, c0, sl, n_slices, k);
            }
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
