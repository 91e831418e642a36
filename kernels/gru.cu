// GRU (PyTorch's cell, gates r, z, n; h0 = 0) over the masked mixed-length sequences of one split
// of a task, all sequences at once, one time step after the other. Each step of each sequence is
// a record: h_prev, the activated gates and W_hn h + b_hn are kept for the backward. A
// sequence's hidden state is read at its own last step; padded steps are never computed.
#include "common.cuh"

// Forward. `sh_h` is shared memory [B, H] (the running hidden states).
__device__ void gru_forward_block(const Dims& d, const WsLayout& L, float* ws, const u32* ints,
                                  const SplitDesc& s, float* sh_h) {
    const u32 h = d.h, e = d.e, g3 = 3 * h, b_n = s.n_seqs;
    const float* w_ih = ws + L.gru;
    const float* w_hh = w_ih + g3 * e;
    const float* b_ih = w_hh + g3 * h;
    const float* b_hh = b_ih + g3;
    const float* table = ws + L.table;
    const u32* tok = ints + s.tokens;
    float* pre = ws + L.pre;
    for (u32 i = threadIdx.x; i < b_n * h; i += blockDim.x) sh_h[i] = 0.0f;
    __syncthreads();
    for (u32 t = 0; t < s.max_len; ++t) {
        // Pre-activations: gi = W_ih x + b_ih and gh = W_hh h + b_hh, one gate row per thread.
        for (u32 i = threadIdx.x; i < b_n * g3; i += blockDim.x) {
            u32 b = i / g3, j = i % g3, start, len;
            rm_seq(ints, s, b, start, len);
            if (t >= len) continue;
            const float* x = table + (u64)tok[start + t] * e;
            const float* wi = w_ih + (u64)j * e;
            const float* wh = w_hh + (u64)j * h;
            const float* hb = sh_h + b * h;
            float gi = b_ih[j], gh = b_hh[j];
            for (u32 c = 0; c < e; ++c) gi = fmaf(wi[c], x[c], gi);
            for (u32 k = 0; k < h; ++k) gh = fmaf(wh[k], hb[k], gh);
            pre[(u64)b * 6 * h + j] = gi;
            pre[(u64)b * 6 * h + g3 + j] = gh;
        }
        __syncthreads();
        // The cell, one hidden unit per thread.
        for (u32 i = threadIdx.x; i < b_n * h; i += blockDim.x) {
            u32 b = i / h, k = i % h, start, len;
            rm_seq(ints, s, b, start, len);
            if (t >= len) continue;
            const float* pb = pre + (u64)b * 6 * h;
            u64 rec = start + t;
            float r = rm_sigmoid(pb[k] + pb[g3 + k]);
            float z = rm_sigmoid(pb[h + k] + pb[g3 + h + k]);
            float hn = pb[g3 + 2 * h + k];
            float n = tanhf(pb[2 * h + k] + r * hn);
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
}

// Backward through time from dhlast [B, H]: fills dgi / dgh [T, 3H] per record. `sh_dh` is
// shared memory [B, H] (the running gradient of each sequence's hidden state).
__device__ void gru_backward_time_block(const Dims& d, const WsLayout& L, float* ws,
                                        const u32* ints, const SplitDesc& s, float* sh_dh) {
    const u32 h = d.h, e = d.e, g3 = 3 * h, b_n = s.n_seqs;
    const float* w_hh = ws + L.gru + g3 * e;
    for (u32 i = threadIdx.x; i < b_n * h; i += blockDim.x) sh_dh[i] = 0.0f;
    __syncthreads();
    for (int t = (int)s.max_len - 1; t >= 0; --t) {
        for (u32 i = threadIdx.x; i < b_n * h; i += blockDim.x) {
            u32 b = i / h, k = i % h, start, len;
            rm_seq(ints, s, b, start, len);
            if ((u32)t >= len) continue;
            u64 rec = start + t;
            float dh = sh_dh[i];
            if ((u32)t + 1 == len) dh += ws[L.dhlast + (u64)b * h + k];
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
        // dh_prev = z * dh + W_hh^T dgh.
        for (u32 i = threadIdx.x; i < b_n * h; i += blockDim.x) {
            u32 b = i / h, k = i % h, start, len;
            rm_seq(ints, s, b, start, len);
            if ((u32)t >= len) continue;
            const float* dgh = ws + L.dgh + (u64)(start + t) * g3;
            float acc = sh_dh[i];
            for (u32 j = 0; j < g3; ++j) acc = fmaf(w_hh[(u64)j * h + k], dgh[j], acc);
            sh_dh[i] = acc;
        }
        __syncthreads();
    }
}

// Gradient of the GRU block (w_ih | w_hh | b_ih | b_hh) from the records' dgi / dgh, summed over
// the records in order. With `lr` > 0 the block is updated in place (SGD; the gradient is not
// kept), otherwise the gradient is assigned to `dgru`. Reads the fast embedding rows (x), never
// the GRU weights, so the in-place update does not race with other threads' sums.
__device__ void gru_backward_params_block(const Dims& d, const WsLayout& L, float* ws,
                                          const u32* ints, const SplitDesc& s, float lr,
                                          bool update) {
    const u32 h = d.h, e = d.e, g3 = 3 * h, n_t = s.n_steps;
    const u32 n_ih = g3 * e, n_hh = g3 * h;
    const float* dgi = ws + L.dgi;
    const float* dgh = ws + L.dgh;
    const float* table = ws + L.table;
    const float* hprev = ws + L.hprev;
    const u32* tok = ints + s.tokens;
    for (u32 i = threadIdx.x; i < d.gru_len; i += blockDim.x) {
        float acc = 0.0f;
        if (i < n_ih) {
            u32 j = i / e, c = i % e;
            for (u32 r = 0; r < n_t; ++r)
                acc = fmaf(dgi[(u64)r * g3 + j], table[(u64)tok[r] * e + c], acc);
        } else if (i < n_ih + n_hh) {
            u32 j = (i - n_ih) / h, k = (i - n_ih) % h;
            for (u32 r = 0; r < n_t; ++r)
                acc = fmaf(dgh[(u64)r * g3 + j], hprev[(u64)r * h + k], acc);
        } else if (i < n_ih + n_hh + g3) {
            u32 j = i - n_ih - n_hh;
            for (u32 r = 0; r < n_t; ++r) acc += dgi[(u64)r * g3 + j];
        } else {
            u32 j = i - n_ih - n_hh - g3;
            for (u32 r = 0; r < n_t; ++r) acc += dgh[(u64)r * g3 + j];
        }
        if (update)
            ws[L.gru + i] -= lr * acc;
        else
            ws[L.dgru + i] = acc;
    }
}

// Stand-alone entry points (one block per task, dynamic shared memory B_max * H floats), for
// validating the op on its own: the forward of a split, and its full backward (time, GRU
// gradient into dgru, embedding rows into dtable).
extern "C" __global__ void __launch_bounds__(RM_BLOCK)
    gru_forward(TaskParams p, const u32* ints, const TaskDesc* descs, float* ws_all, u32 query) {
    extern __shared__ float sh[];
    const TaskDesc& t = descs[blockIdx.x];
    gru_forward_block(p.d, p.ws, ws_all + blockIdx.x * p.ws.stride, ints,
                      query ? t.query : t.support, sh);
}

__device__ void embedding_backward_block(float* dtable, const float* dgi, const float* w_ih,
                                         const u32* rows, u32 n_rows, u32 padding_row, u32 e,
                                         u32 h);

extern "C" __global__ void __launch_bounds__(RM_BLOCK)
    gru_backward(TaskParams p, const u32* ints, const TaskDesc* descs, float* ws_all, u32 query) {
    extern __shared__ float sh[];
    const TaskDesc& t = descs[blockIdx.x];
    const SplitDesc& s = query ? t.query : t.support;
    float* ws = ws_all + blockIdx.x * p.ws.stride;
    gru_backward_time_block(p.d, p.ws, ws, ints, s, sh);
    gru_backward_params_block(p.d, p.ws, ws, ints, s, 0.0f, false);
    embedding_backward_block(ws + p.ws.dtable, ws + p.ws.dgi, ws + p.ws.gru, ints + s.rows,
                             t.n_rows, t.padding_row, p.d.e, p.d.h);
}
