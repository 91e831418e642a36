// SGD on a task's fast weights: params -= lr * grads. The GRU block is updated where its gradient
// is summed (gru_backward_params_block); the embedding rows and the output bias here;
// output.weight's update is appended as rank-1 terms (-lr dlogits_b) ⊗ hlast_b.
#include "common.cuh"

// p[i] -= lr * g[i] for i < n.
__device__ void sgd_block(float* p, const float* g, u32 n, float lr) {
    for (u32 i = threadIdx.x; i < n; i += blockDim.x) p[i] -= lr * g[i];
}

// Appends the B rank-1 terms of output.weight's SGD step after `rank` existing ones.
__device__ void sgd_lowrank_block(const Dims& d, const WsLayout& L, float* ws, u32 b_n, u32 rank,
                                  float lr) {
    const u32 v_n = d.v, h = d.h;
    for (u32 i = threadIdx.x; i < b_n * v_n; i += blockDim.x)
        ws[L.lr_d + (u64)rank * v_n + i] = -lr * ws[L.logits + i];
    for (u32 i = threadIdx.x; i < b_n * h; i += blockDim.x)
        ws[L.lr_g + (u64)rank * h + i] = ws[L.hlast + i];
}
