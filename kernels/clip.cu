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
    for (u32 s = RM_BLOCK / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) red[threadIdx.x] += red[threadIdx.x + s];
        __syncthreads();
    }
    if (threadIdx.x == 0) partials[blockIdx.x] = red[0];
}
