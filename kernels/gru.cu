// GRU (PyTorch's cell, gates r, z, n; h0 = 0) over the masked mixed-length sequences of one split
// of a task, all sequences at once, one time step after the other. Each step of each sequence is
// a record: h_prev, the activated gates and W_hn h + b_hn are kept for the backward. A
// sequence's hidden state is read at its own last step; padded steps are never computed.
//
// Memory access: consecutive threads take consecutive output rows j. The forward reads the
// transposed copies w_ih^T / w_hh^T (gru_t, kept equal to the row-major block), so a warp's
// weight loads are one contiguous line; the backward reads the row-major block along its rows.
// The input pre-activations W_ih x + b_ih of every record do not depend on h: they are computed
// for all records at once before the recurrence, which then only does W_hh h per step.
#include "common.cuh"

// Writes `value` into the transposed copy at the position of element i of the row-major block
// w_ih | w_hh (i < 3H*E + 3H*H).
__device__ __forceinline__ void gru_set_transposed(const Dims& d, const WsLayout& L, float* ws,
                                                   u32 i, float value) {
    const u32 g3 = 3 * d.h, n_ih = g3 * d.e;
    if (i < n_ih) {
        u32 j = i / d.e, c = i % d.e;
        ws[L.gru_t + (u64)c * g3 + j] = value;
    } else {
        u32 q = i - n_ih, j = q / d.h, k = q % d.h;
        ws[L.gru_t + n_ih + (u64)k * g3 + j] = value;
    }
}

// sum_c wt[c * stride] * x[c] for c < n, in four interleaved chains: eight independent loads
// are in flight before the first multiply-add needs one (the loops are latency-bound).
__device__ __forceinline__ float rm_dot_strided(const float* wt, u32 stride, const float* x,
                                                u32 n) {
    float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
    u32 c = 0;
    for (; c + 3 < n; c += 4) {
        a0 = fmaf(wt[(u64)c * stride], x[c], a0);
        a1 = fmaf(wt[(u64)(c + 1) * stride], x[c + 1], a1);
        a2 = fmaf(wt[(u64)(c + 2) * stride], x[c + 2], a2);
        a3 = fmaf(wt[(u64)(c + 3) * stride], x[c + 3], a3);
    }
    for (; c < n; ++c) a0 = fmaf(wt[(u64)c * stride], x[c], a0);
    return (a0 + a1) + (a2 + a3);
}

// Forward. `sh_h` is shared memory [B, H] (the running hidden states); `sh_w`, when not null,
// shared memory [3H, H + 1] that receives w_hh (padded rows) for this split's forward and
// backward. Uses dgi [T, 3H] for the input pre-activations (free until the backward) and
// pre [B, 3H] for W_hh h + b_hh.
__device__ void gru_forward_block(const Dims& d, const WsLayout& L, float* ws, const u32* ints,
                                  const SplitDesc& s, float* sh_h, float* sh_w) {
    const u32 h = d.h, e = d.e, g3 = 3 * h, b_n = s.n_seqs;
    const float* wt_ih = ws + L.gru_t;          // [E, 3H]
    const float* wt_hh = wt_ih + (u64)g3 * e;   // [H, 3H]
    const float* b_ih = ws + L.gru + (u64)g3 * e + (u64)g3 * h;
    const float* b_hh = b_ih + g3;
    const float* table = ws + L.table;
    const u32* tok = ints + s.tokens;
    float* xi = ws + L.dgi;
    float* gh = ws + L.pre;
    for (u32 i = threadIdx.x; i < s.n_steps * g3; i += blockDim.x) {
        u32 r = i / g3, j = i % g3;
        xi[i] = b_ih[j] + rm_dot_strided(wt_ih + j, g3, table + (u64)tok[r] * e, e);
    }
    for (u32 i = threadIdx.x; i < b_n * h; i += blockDim.x) sh_h[i] = 0.0f;
    if (sh_w) {
        const float* w_hh = ws + L.gru + (u64)g3 * e;
        for (u32 i = threadIdx.x; i < g3 * h; i += blockDim.x)
            sh_w[(i / h) * (h + 1) + i % h] = w_hh[i];
    }
    __syncthreads();
    RM_MARK(1);
    for (u32 t = 0; t < s.max_len; ++t) {
        // Hidden pre-activations W_hh h + b_hh, one gate row of one sequence per thread.
        for (u32 i = threadIdx.x; i < b_n * g3; i += blockDim.x) {
            u32 b = i / g3, j = i % g3, start, len;
            rm_seq(ints, s, b, start, len);
            if (t >= len) continue;
            gh[i] = b_hh[j] + (sh_w ? rm_dot_strided(sh_w + j * (h + 1), 1, sh_h + b * h, h)
                                    : rm_dot_strided(wt_hh + j, g3, sh_h + b * h, h));
        }
        __syncthreads();
        // The cell, one hidden unit per thread.
        for (u32 i = threadIdx.x; i < b_n * h; i += blockDim.x) {
            u32 b = i / h, k = i % h, start, len;
            rm_seq(ints, s, b, start, len);
            if (t >= len) continue;
            u64 rec = start + t;
            const float* gi = xi + rec * g3;
            const float* gb = gh + (u64)b * g3;
            float r = rm_sigmoid(gi[k] + gb[k]);
            float z = rm_sigmoid(gi[h + k] + gb[h + k]);
            float hn = gb[2 * h + k];
            float n = tanhf(gi[2 * h + k] + r * hn);
            float hp = sh_h[i];
            ws[L.hprev + rec * h + k] = hp;
            ws[L.gates + rec * g3 + k] = r;
            ws[L.gates + rec * g3 + h + k] = z;
            ws[L.gates + rec * g3 + 2 * h + k] = n;
            ws[L.ghn + rec * h + k] = hn;
            float hnew = (1.0f - z) * n + z * hp;
            sh_h[i] = hnew;
            if (t + 1 == len) ws[L.hlast + (u64)b * h + k] = hnew;
        }
        __syncthreads();
    }
    RM_MARK(2);
}

// Backward through time from dhlast [B, H]: fills dgi / dgh [T, 3H] per record. `sh_dh` is
// shared memory [B, H] (z * dh of each sequence's last processed step); `sh_w` the shared copy
// of w_hh made by this split's forward, or null. W_hh^T dgh is summed per gate (three partial
// sums of H terms each, in pre [3, B, H]) by three threads per hidden unit, and the partials are
// added where the step before reads them.
__device__ void gru_backward_time_block(const Dims& d, const WsLayout& L, float* ws,
                                        const u32* ints, const SplitDesc& s, float* sh_dh,
                                        const float* sh_w) {
    const u32 h = d.h, e = d.e, g3 = 3 * h, b_n = s.n_seqs, bh = b_n * h;
    const float* w_hh = ws + L.gru + (u64)g3 * e;  // [3H, H]
    float* part = ws + L.pre;
    for (int t = (int)s.max_len - 1; t >= 0; --t) {
        for (u32 i = threadIdx.x; i < bh; i += blockDim.x) {
            u32 b = i / h, k = i % h, start, len;
            rm_seq(ints, s, b, start, len);
            if ((u32)t >= len) continue;
            u64 rec = start + t;
            // dh: from step t + 1 of this sequence (z dh + W_hh^T dgh there), or dhlast at its end.
            float dh = (u32)t + 1 < len ? sh_dh[i] + part[i] + part[bh + i] + part[2 * bh + i]
                                        : ws[L.dhlast + (u64)b * h + k];
            const float* g = ws + L.gates + rec * g3;
            float r = g[k], z = g[h + k], n = g[2 * h + k];
            float hn = ws[L.ghn + rec * h + k], hp = ws[L.hprev + rec * h + k];
            float dn = dh * (1.0f - z);
            float dz = dh * (hp - n);
            float dn_pre = dn * (1.0f - n * n);
            float dz_pre = dz * z * (1.0f - z);
            float dr_pre = dn_pre * hn * r * (1.0f - r);
            float* dgi = ws + L.dgi + rec * g3;
            float* dgh = ws + L.dgh + rec * g3;
            dgi[k] = dr_pre;
            dgi[h + k] = dz_pre;
            dgi[2 * h + k] = dn_pre;
            dgh[k] = dr_pre;
            dgh[h + k] = dz_pre;
            dgh[2 * h + k] = dn_pre * r;
            sh_dh[i] = z * dh;
        }
        __syncthreads();
        if (t == 0) break;  // h_prev = h0 = 0: nothing further back
        // part[g, b, k] = sum over the H rows j of gate g of W_hh[j, k] dgh[j].
        for (u32 i = threadIdx.x; i < 3 * bh; i += blockDim.x) {
            u32 g = i / bh, rem = i % bh, b = rem / h, k = rem % h, start, len;
            rm_seq(ints, s, b, start, len);
            if ((u32)t >= len) continue;
            const float* dgh = ws + L.dgh + (u64)(start + t) * g3 + (u64)g * h;
            part[i] = sh_w ? rm_dot_strided(sh_w + g * h * (h + 1) + k, h + 1, dgh, h)
                           : rm_dot_strided(w_hh + (u64)g * h * h + k, h, dgh, h);
        }
        __syncthreads();
    }
}

// Gradient of the GRU block (w_ih | w_hh | b_ih | b_hh) from the records' dgi / dgh, each element
// summed over the records in order. The weight matrices go in 4 x 4 tiles per thread (8 loads for
// 16 multiply-adds per record). With `update` the block and its transposed copy are updated in
// place (SGD; the gradient is not kept), otherwise the gradient is assigned to `dgru`. Reads the
// fast embedding rows (x), never the GRU weights, so the in-place update does not race with other
// threads' sums.
__device__ void gru_backward_params_block(const Dims& d, const WsLayout& L, float* ws,
                                          const u32* ints, const SplitDesc& s, float lr,
                                          bool update) {
    const u32 h = d.h, e = d.e, g3 = 3 * h, n_t = s.n_steps;
    const u32 n_ih = g3 * e;
    const u32 tj = (g3 + 3) / 4, tc = (e + 3) / 4, tk = (h + 3) / 4;
    const u32 tiles_ih = tj * tc, tiles_hh = tj * tk;
    const float* dgi = ws + L.dgi;
    const float* dgh = ws + L.dgh;
    const float* table = ws + L.table;
    const float* hprev = ws + L.hprev;
    const u32* tok = ints + s.tokens;
    const u32 n_items = tiles_ih + tiles_hh + 2 * g3;
    for (u32 it = threadIdx.x; it < n_items; it += blockDim.x) {
        if (it < tiles_ih + tiles_hh) {
            const bool ih = it < tiles_ih;
            const u32 q = ih ? it : it - tiles_ih;
            const u32 cols = ih ? e : h, tcols = ih ? tc : tk;
            const u32 j0 = (q / tcols) * 4, c0 = (q % tcols) * 4;
            const float* dg = ih ? dgi : dgh;
            float acc[4][4] = {};
            for (u32 r = 0; r < n_t; ++r) {
                const float* x = ih ? table + (u64)tok[r] * e : hprev + (u64)r * h;
                float a[4], xv[4];
#pragma unroll
                for (u32 u = 0; u < 4; ++u) {
                    a[u] = j0 + u < g3 ? dg[(u64)r * g3 + j0 + u] : 0.0f;
                    xv[u] = c0 + u < cols ? x[c0 + u] : 0.0f;
                }
#pragma unroll
                for (u32 u = 0; u < 4; ++u)
#pragma unroll
                    for (u32 w = 0; w < 4; ++w) acc[u][w] = fmaf(a[u], xv[w], acc[u][w]);
            }
#pragma unroll
            for (u32 u = 0; u < 4; ++u)
#pragma unroll
                for (u32 w = 0; w < 4; ++w) {
                    if (j0 + u >= g3 || c0 + w >= cols) continue;
                    u32 i = (ih ? 0 : n_ih) + (j0 + u) * cols + c0 + w;
                    if (update) {
                        float nv = ws[L.gru + i] - lr * acc[u][w];
                        ws[L.gru + i] = nv;
                        gru_set_transposed(d, L, ws, i, nv);
                    } else {
                        ws[L.dgru + i] = acc[u][w];
                    }
                }
        } else {
            const u32 q = it - tiles_ih - tiles_hh;
            const bool bi = q < g3;
            const u32 j = bi ? q : q - g3;
            const float* dg = bi ? dgi : dgh;
            float acc = 0.0f;
            for (u32 r = 0; r < n_t; ++r) acc += dg[(u64)r * g3 + j];
            u32 i = n_ih + g3 * h + q;
            if (update)
                ws[L.gru + i] -= lr * acc;
            else
                ws[L.dgru + i] = acc;
        }
    }
}
