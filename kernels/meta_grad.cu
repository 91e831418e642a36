// The first-order meta-gradient: the mean over tasks of each task's query gradient (left in its
// workspace by task_backward), one thread per parameter, summed in task order (no atomics), so
// the result is the same bit for bit on every run. Also the meta-loss (mean query CE, in double).
#include "common.cuh"

extern "C" __global__ void __launch_bounds__(RM_BLOCK)
    meta_grad_forward(ReduceParams p, const u32* ints, const TaskDesc* descs, const float* ws_all,
                      const float* task_loss, float* grad, double* stats) {
    const Dims& d = p.d;
    const WsLayout& L = p.ws;
    if (blockIdx.x == 0 && threadIdx.x == 0) {
        double total = 0.0;
        for (u32 t = 0; t < p.n_tasks; ++t) total += (double)task_loss[t];
        stats[0] = total / (double)p.n_tasks;
    }
    for (u32 i = blockIdx.x * blockDim.x + threadIdx.x; i < d.p; i += gridDim.x * blockDim.x) {
        float acc = 0.0f;
        if (i >= d.off_wih && i < d.off_wih + d.gru_len) {
            u32 j = i - d.off_wih;
            for (u32 t = 0; t < p.n_tasks; ++t) acc += ws_all[t * L.stride + L.dgru + j];
        } else if (i >= d.off_emb && i < d.off_emb + d.v * d.e) {
            u32 item = (i - d.off_emb) / d.e, c = (i - d.off_emb) % d.e;
            const u32* csr = ints + p.item_csr;
            const u32* pairs = csr + d.v + 1;
            for (u32 q = csr[item]; q < csr[item + 1]; ++q) {
                u32 t = pairs[2 * q], row = pairs[2 * q + 1];
                acc += ws_all[t * L.stride + L.dtable + (u64)row * d.e + c];
            }
        } else if (i >= d.off_bout && i < d.off_bout + d.v) {
            u32 v = i - d.off_bout;
            for (u32 t = 0; t < p.n_tasks; ++t) acc += ws_all[t * L.stride + L.dbias + v];
        } else {
            // output.weight [V, H]: sum over tasks and their query pairs of dlogits ⊗ hlast.
            u32 v = (i - d.off_wout) / d.h, k = (i - d.off_wout) % d.h;
            for (u32 t = 0; t < p.n_tasks; ++t) {
                const float* ws = ws_all + t * L.stride;
                for (u32 b = 0; b < descs[t].query.n_seqs; ++b)
                    acc = fmaf(ws[L.logits + (u64)b * d.v + v], ws[L.hlast + (u64)b * d.h + k], acc);
            }
        }
        grad[i] = acc * p.inv_n;
    }
}
