// clip_grad_norm_, first half: per-block partial sums of squares of the meta-gradient (in
// double, grid-stride then a fixed-shape tree), one value per block. adam_forward sums the
// partials in block order; the grid size is fixed by the host, so the norm is deterministic.
#include "common.cuh"

extern "C" __global__ void __launch_bounds__(RM_BLOCK)
    clip_forward(AdamParams p, const float* grad, double* partials) {
    __shared__ double red[RM_BLOCK];
    double acc = 0.0;
    for (u32 i = blockIdx.x * blockDim.x + threadIdx.x; i < p.p; i += gridDim.x * blockDim.x) {
        double g = (double)grad[i];
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
