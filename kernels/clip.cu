// clip_grad_norm_, first half: per-block partial sums of squares of the meta-gradient (in
// double, grid-stride then a fixed-shape tree), one value per block. adam_forward sums the
// partials in block order; the grid size is fixed by the host, so the norm is deterministic.
// With p.anchor_l2 != 0 the anchor penalty's gradient anchor_l2 * (theta - anchor) is first added
// to the meta-gradient in place (as cpu::Engine::meta_step_anchored does), so the norm, the clip
// and adam_forward see the sum; with 0, theta and anchor are not read.
#include "common.cuh"

extern "C" __global__ void __launch_bounds__(RM_BLOCK)
    clip_forward(AdamParams p, float* grad, const float* theta, const float* anchor,
                 double* partials) {
    __shared__ double red[RM_BLOCK];
    double acc = 0.0;
    const bool anchored = p.anchor_l2 != 0.0f;
    for (u32 i = blockIdx.x * blockDim.x + threadIdx.x; i < p.p; i += gridDim.x * blockDim.x) {
        float gf = grad[i];
        if (anchored) {
            gf += p.anchor_l2 * (theta[i] - anchor[i]);
            grad[i] = gf;
        }
        double g = (double)gf;
        acc += g * g;
    }
    red[threadIdx.x] = acc;
    __syncthreads();
    // RM_BLOCK need not be a power of two: halve from the next power of two, skipping partners
    // past the end.
    u32 top = 1;
    while (top < RM_BLOCK) top <<= 1;
    for (u32 s = top / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s && threadIdx.x + s < RM_BLOCK) red[threadIdx.x] += red[threadIdx.x + s];
        __syncthreads();
    }
    if (threadIdx.x == 0) partials[blockIdx.x] = red[0];
}
