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

// Shared memory of the recurrences (see TaskParams::pf / pb; the host sizes it the same way,
// `params::smem_plan` in src/cuda/params.rs). Rows of sequences are padded to BP = B rounded up
// to 8 (two float4 loads per row read 8 sequences at once; padded lanes feed accumulators that
// are never stored).
//   h    [H, BPmax]: the running hidden states, column b (forward); [B, H] z * dh (backward)
//   g    [3H, BPmax]: one step's dgh, column b (backward); also the output layer's staged inputs,
//        [(H + R_max) * 8] (output_ce_forward_block)
//   red  [max(pf * 3H, pb * H) * Bmax]: partial matrix-vector products of one step
//   seq  [2 * Bmax] u32: each sequence's first record and length
//   w    [3H, H + 1]: w_hh with padded rows, when smem_whh
struct GruSmem {
    float *h, *g, *red, *w;
    u32* seq;
};

__device__ __forceinline__ u32 rm_bpad(u32 b) { return (b + 7u) & ~7u; }
__device__ __forceinline__ u32 rm_up4(u32 n) { return (n + 3u) & ~3u; }

__device__ __forceinline__ GruSmem gru_smem(const TaskParams& p, float* sh) {
    const u32 h = p.d.h, bm = p.ws.b_max, bpm = rm_bpad(bm);
    GruSmem m;
    m.h = sh;
    sh += h * bpm;
    m.g = sh;
    sh += max(3 * h * bpm, (h + p.ws.r_max) * 8);
    m.red = sh;
    sh += rm_up4(max(p.pf * 3 * h, p.pb * h) * bm);
    m.seq = (u32*)sh;
    sh += rm_up4(2 * bm);
    m.w = p.smem_whh ? sh : nullptr;
    return m;
}

// Each sequence's first record and length into m.seq (the caller's barrier publishes them).
__device__ __forceinline__ void gru_load_seqs(const u32* ints, const SplitDesc& s, u32* seq) {
    for (u32 b = threadIdx.x; b < s.n_seqs; b += blockDim.x) {
        u32 start, len;
        rm_seq(ints, s, b, start, len);
        seq[2 * b] = start;
        seq[2 * b + 1] = len;
    }
}

// acc[u] += sum over i in [i0, i1) of w(i) * x[i * bp + c + u] for u < 8: x holds 8-float rows
// (16-byte aligned), read two float4 at a time; w(i) = w[i * w_stride].
__device__ __forceinline__ void rm_mv8(const float* w, u32 w_stride, const float* x, u32 bp,
                                       u32 c, u32 i0, u32 i1, float acc[8]) {
#pragma unroll 1
    for (u32 i = i0; i < i1; ++i) {
        const float wv = w[(u64)i * w_stride];
        const float4 x0 = *reinterpret_cast<const float4*>(x + i * bp + c);
        const float4 x1 = *reinterpret_cast<const float4*>(x + i * bp + c + 4);
        acc[0] = fmaf(wv, x0.x, acc[0]);
        acc[1] = fmaf(wv, x0.y, acc[1]);
        acc[2] = fmaf(wv, x0.z, acc[2]);
        acc[3] = fmaf(wv, x0.w, acc[3]);
        acc[4] = fmaf(wv, x1.x, acc[4]);
        acc[5] = fmaf(wv, x1.y, acc[5]);
        acc[6] = fmaf(wv, x1.z, acc[6]);
        acc[7] = fmaf(wv, x1.w, acc[7]);
    }
}

// Forward. Uses dgi [T, 3H] for the input pre-activations (free until the backward). Per time
// step: (1) pf * 3H threads each take one gate row j and a 1/pf slice of the columns, and sum
// W_hh[j, slice] h_b for up to 8 sequences at once (each weight read once for all of them) into
// red [pf, B, 3H]; (2) one thread per (sequence, hidden unit) adds the slices in order, applies
// the cell and writes the records. Two barriers per step.
__device__ void gru_forward_block(const TaskParams& p, float* ws, const u32* ints,
                                  const SplitDesc& s, float* sh) {
    const Dims& d = p.d;
    const WsLayout& L = p.ws;
    const u32 h = d.h, e = d.e, g3 = 3 * h, b_n = s.n_seqs, bm = L.b_max, bp = rm_bpad(b_n);
    const GruSmem m = gru_smem(p, sh);
    const float* wt_ih = ws + L.gru_t;          // [E, 3H]
    const float* wt_hh = wt_ih + (u64)g3 * e;   // [H, 3H]
    const float* b_ih = ws + L.gru + (u64)g3 * e + (u64)g3 * h;
    const float* b_hh = b_ih + g3;
    const float* table = ws + L.table;
    const u32* tok = ints + s.tokens;
    float* xi = ws + L.dgi;
    // Input pre-activations, one gate row of four records per thread: each weight load serves
    // four records, whose embedding rows are read as float4 when E is a multiple of 4.
    const u32 n_t = s.n_steps, n_groups = (n_t + 3) / 4;
    for (u32 i = threadIdx.x; i < n_groups * g3; i += blockDim.x) {
        const u32 r0 = (i / g3) * 4, j = i % g3;
        u32 x[4];  // offsets of the records' embedding rows in `table`
        float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
        for (u32 u = 0; u < 4; ++u) x[u] = tok[min(r0 + u, n_t - 1)] * e;
        if (e % 4 == 0) {
            for (u32 c = 0; c < e; c += 4) {
                float w[4];
#pragma unroll
                for (u32 q = 0; q < 4; ++q) w[q] = wt_ih[(u64)(c + q) * g3 + j];
#pragma unroll
                for (u32 u = 0; u < 4; ++u) {
                    const float4 xv = *reinterpret_cast<const float4*>(table + x[u] + c);
                    acc[u] = fmaf(w[0], xv.x, acc[u]);
                    acc[u] = fmaf(w[1], xv.y, acc[u]);
                    acc[u] = fmaf(w[2], xv.z, acc[u]);
                    acc[u] = fmaf(w[3], xv.w, acc[u]);
                }
            }
        } else {
            for (u32 c = 0; c < e; ++c) {
                const float w = wt_ih[(u64)c * g3 + j];
#pragma unroll
                for (u32 u = 0; u < 4; ++u) acc[u] = fmaf(w, table[x[u] + c], acc[u]);
            }
        }
#pragma unroll
        for (u32 u = 0; u < 4; ++u)
            if (r0 + u < n_t) xi[(u64)(r0 + u) * g3 + j] = b_ih[j] + acc[u];
    }
    for (u32 i = threadIdx.x; i < h * bp; i += blockDim.x) m.h[i] = 0.0f;
    gru_load_seqs(ints, s, m.seq);
    if (m.w) {
        const float* w_hh = ws + L.gru + (u64)g3 * e;
        for (u32 i = threadIdx.x; i < g3 * h; i += blockDim.x)
            m.w[(i / h) * (h + 1) + i % h] = w_hh[i];
    }
    __syncthreads();
    RM_MARK(1);
    const u32 pf = p.pf, kc = (h + pf - 1) / pf;
    // This thread's first cell item (i = threadIdx.x): its biases for the whole split, and each
    // step's input pre-activations loaded before the matrix-vector phase, whose work then
    // covers their latency. Other items (more than blockDim of them) load their own.
    const bool first = threadIdx.x < b_n * h;
    const u32 fb = first ? threadIdx.x / h : 0, fk = first ? threadIdx.x % h : 0;
    float fbh[3] = {0.0f, 0.0f, 0.0f};
    if (first) {
        fbh[0] = b_hh[fk];
        fbh[1] = b_hh[h + fk];
        fbh[2] = b_hh[2 * h + fk];
    }
    for (u32 t = 0; t < s.max_len; ++t) {
        float fx[3] = {0.0f, 0.0f, 0.0f};
        if (first && t < m.seq[2 * fb + 1]) {
            const float* gi = xi + (u64)(m.seq[2 * fb] + t) * g3;
            fx[0] = gi[fk];
            fx[1] = gi[h + fk];
            fx[2] = gi[2 * h + fk];
        }
        for (u32 it = threadIdx.x; it < pf * g3; it += blockDim.x) {
            const u32 q = it / g3, j = it % g3, k0 = min(h, q * kc), k1 = min(h, k0 + kc);
            for (u32 c = 0; c < b_n; c += 8) {
                float acc[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
                if (m.w)
                    rm_mv8(m.w + j * (h + 1), 1, m.h, bp, c, k0, k1, acc);
                else
                    rm_mv8(wt_hh + j, g3, m.h, bp, c, k0, k1, acc);
#pragma unroll
                for (u32 u = 0; u < 8; ++u)
                    if (c + u < b_n) m.red[((u64)q * bm + c + u) * g3 + j] = acc[u];
            }
        }
        __syncthreads();
        // The cell, one hidden unit of one sequence per thread.
        for (u32 i = threadIdx.x; i < b_n * h; i += blockDim.x) {
            const u32 b = i / h, k = i % h, start = m.seq[2 * b], len = m.seq[2 * b + 1];
            if (t >= len) continue;
            const u64 rec = start + t;
            const bool own = i == threadIdx.x;
            const float* gi = xi + rec * g3;
            float ghr = own ? fbh[0] : b_hh[k], ghz = own ? fbh[1] : b_hh[h + k],
                  hn = own ? fbh[2] : b_hh[2 * h + k];
            const float xr = own ? fx[0] : gi[k], xz = own ? fx[1] : gi[h + k],
                        xn = own ? fx[2] : gi[2 * h + k];
            for (u32 q = 0; q < pf; ++q) {
                const float* pr = m.red + ((u64)q * bm + b) * g3;
                ghr += pr[k];
                ghz += pr[h + k];
                hn += pr[2 * h + k];
            }
            float r = rm_sigmoid(xr + ghr);
            float z = rm_sigmoid(xz + ghz);
            float n = tanhf(xn + r * hn);
            float hp = m.h[k * bp + b];
            ws[L.hprev + rec * h + k] = hp;
            ws[L.gates + rec * g3 + k] = r;
            ws[L.gates + rec * g3 + h + k] = z;
            ws[L.gates + rec * g3 + 2 * h + k] = n;
            ws[L.ghn + rec * h + k] = hn;
            float hnew = (1.0f - z) * n + z * hp;
            m.h[k * bp + b] = hnew;
            if (t + 1 == len) ws[L.hlast + (u64)b * h + k] = hnew;
        }
        __syncthreads();
    }
    RM_MARK(2);
}

// Backward through time from dhlast [B, H]: fills dgi / dgh [T, 3H] per record. Per time step:
// (1) one thread per (sequence, hidden unit) takes dh (z * dh of the step after plus the slices
// of W_hh^T dgh there, or dhlast at the sequence's end), writes the records' gate gradients and
// the step's dgh into shared memory; (2) pb * H threads each take one hidden unit k and a 1/pb
// slice of the 3H gate rows, and sum W_hh[slice, k] dgh_b for up to 8 sequences at once into
// red [pb, B, H]. Two barriers per step.
__device__ void gru_backward_time_block(const TaskParams& p, float* ws, const u32* ints,
                                        const SplitDesc& s, float* sh) {
    const Dims& d = p.d;
    const WsLayout& L = p.ws;
    const u32 h = d.h, e = d.e, g3 = 3 * h, b_n = s.n_seqs, bm = L.b_max, bp = rm_bpad(b_n);
    const GruSmem m = gru_smem(p, sh);
    const float* w_hh = ws + L.gru + (u64)g3 * e;  // [3H, H]
    float* sdh = m.h;                               // [B, H]: z * dh of the step after
    gru_load_seqs(ints, s, m.seq);
    __syncthreads();
    const u32 pb = p.pb, jc = (g3 + pb - 1) / pb;
    // This thread's first item (i = threadIdx.x): the records it reads at step t are loaded
    // during step t + 1's matrix-vector phase (its work covers their latency).
    const bool first = threadIdx.x < b_n * h;
    const u32 fb = first ? threadIdx.x / h : 0, fk = first ? threadIdx.x % h : 0;
    float fr[6];  // r, z, n, W_hn h + b_hn, h_prev, dhlast (at the sequence's last step)
    auto fetch = [&](int t) {
        if (!first || (u32)t >= m.seq[2 * fb + 1]) return;
        const u64 rec = m.seq[2 * fb] + t;
        const float* g = ws + L.gates + rec * g3;
        fr[0] = g[fk];
        fr[1] = g[h + fk];
        fr[2] = g[2 * h + fk];
        fr[3] = ws[L.ghn + rec * h + fk];
        fr[4] = ws[L.hprev + rec * h + fk];
        fr[5] = (u32)t + 1 == m.seq[2 * fb + 1] ? ws[L.dhlast + (u64)fb * h + fk] : 0.0f;
    };
    fetch((int)s.max_len - 1);
    for (int t = (int)s.max_len - 1; t >= 0; --t) {
        for (u32 i = threadIdx.x; i < b_n * h; i += blockDim.x) {
            const u32 b = i / h, k = i % h, start = m.seq[2 * b], len = m.seq[2 * b + 1];
            if ((u32)t >= len) continue;
            const u64 rec = start + t;
            const bool own = i == threadIdx.x;
            float dh;
            if ((u32)t + 1 < len) {
                dh = sdh[i];
                for (u32 q = 0; q < pb; ++q) dh += m.red[((u64)q * bm + b) * h + k];
            } else {
                dh = own ? fr[5] : ws[L.dhlast + (u64)b * h + k];
            }
            const float* g = ws + L.gates + rec * g3;
            const float r = own ? fr[0] : g[k], z = own ? fr[1] : g[h + k],
                        n = own ? fr[2] : g[2 * h + k];
            const float hn = own ? fr[3] : ws[L.ghn + rec * h + k],
                        hp = own ? fr[4] : ws[L.hprev + rec * h + k];
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
            m.g[k * bp + b] = dr_pre;
            m.g[(h + k) * bp + b] = dz_pre;
            m.g[(2 * h + k) * bp + b] = dn_pre * r;
            sdh[i] = z * dh;
        }
        __syncthreads();
        if (t == 0) break;  // h_prev = h0 = 0: nothing further back
        fetch(t - 1);
        // Slices of W_hh^T dgh. Sequences that ended before step t are never read again, and a
        // sequence not yet started at t (len <= t) takes dhlast at t - 1; their columns of g
        // hold stale values that reach only unread sums.
        for (u32 it = threadIdx.x; it < pb * h; it += blockDim.x) {
            const u32 q = it / h, k = it % h, j0 = min(g3, q * jc), j1 = min(g3, j0 + jc);
            for (u32 c = 0; c < b_n; c += 8) {
                float acc[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
                if (m.w)
                    rm_mv8(m.w + k, h + 1, m.g, bp, c, j0, j1, acc);
                else
                    rm_mv8(w_hh + k, h, m.g, bp, c, j0, j1, acc);
#pragma unroll
                for (u32 u = 0; u < 8; ++u)
                    if (c + u < b_n) m.red[((u64)q * bm + c + u) * h + k] = acc[u];
            }
        }
        __syncthreads();
    }
}

// Gradient of the GRU block (w_ih | w_hh | b_ih | b_hh) from the records' dgi / dgh, each element
// summed over the records in order. The weight matrices go in 4 x 4 tiles per thread (two float4
// loads, or eight scalar ones when H or E is not a multiple of 4, for 16 multiply-adds per
// record). With `update` the block and its transposed copy are updated in place (SGD; the
// gradient is not kept), otherwise the gradient is assigned to `dgru`. Reads the
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
    // H and E multiples of 4: every tile is whole and its rows start on 16 bytes (workspace
    // buffers are aligned to 128 bytes).
    const bool vec4 = h % 4 == 0 && e % 4 == 0;
    for (u32 it = threadIdx.x; it < n_items; it += blockDim.x) {
        if (it < tiles_ih + tiles_hh) {
            const bool ih = it < tiles_ih;
            const u32 q = ih ? it : it - tiles_ih;
            const u32 cols = ih ? e : h, tcols = ih ? tc : tk;
            const u32 j0 = (q / tcols) * 4, c0 = (q % tcols) * 4;
            const float* dg = ih ? dgi : dgh;
            float acc[4][4] = {};
            if (vec4) {  // whole tiles, 16-byte aligned rows: two float4 loads per record
                for (u32 r = 0; r < n_t; ++r) {
                    const float* x = ih ? table + (u64)tok[r] * e : hprev + (u64)r * h;
                    const float4 a4 = *reinterpret_cast<const float4*>(dg + (u64)r * g3 + j0);
                    const float4 x4 = *reinterpret_cast<const float4*>(x + c0);
                    const float a[4] = {a4.x, a4.y, a4.z, a4.w}, xv[4] = {x4.x, x4.y, x4.z, x4.w};
#pragma unroll
                    for (u32 u = 0; u < 4; ++u)
#pragma unroll
                        for (u32 w = 0; w < 4; ++w) acc[u][w] = fmaf(a[u], xv[w], acc[u][w]);
                }
            } else {
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
