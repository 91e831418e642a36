// clip_grad_norm_'s second half and one step of torch.optim.Adam on θ. Every block sums the
// partials of clip_forward in the same order (so all agree on the norm); block 0 reports it in
// stats[1]. When the meta-loss (stats[0]) or the norm is not finite, θ and the moments are left
// unchanged, like the CPU engine. The bias corrections come from the host (same formulas as
// cpu::adam::adam_step).
#include "common.cuh"

extern "C" __global__ void __launch_bounds__(RM_BLOCK)
    adam_forward(AdamParams p, float* theta, const float* grad, float* m, float* v,
                 const double* partials, double* stats) {
    __shared__ double norm_sh;
    if (threadIdx.x == 0) {
        double sum = 0.0;
        for (u32 b = 0; b < p.n_partials; ++b) sum += partials[b];
        norm_sh = sqrt(sum);
        if (blockIdx.x == 0) stats[1] = norm_sh;
    }
    __syncthreads();
    const double norm = norm_sh;
    if (!isfinite(norm) || !isfinite(stats[0])) return;
    float c = 1.0f;
    bool clip = p.clip > 0.0f && isfinite(p.clip);
    if (clip) {
        double coef = (double)p.clip / (norm + 1e-6);
        if (coef < 1.0) c = (float)coef;
        else clip = false;
    }
    for (u32 i = blockIdx.x * blockDim.x + threadIdx.x; i < p.p; i += gridDim.x * blockDim.x) {
        float g = grad[i];
        if (clip) g *= c;
        float mi = m[i], vi = v[i];
        mi += p.w1 * (g - mi);
        vi = vi * p.beta2 + p.w2 * g * g;
        float denom = sqrtf(vi) / p.bias_c2_sqrt + p.eps;
        theta[i] -= p.step_size * (mi / denom);
        m[i] = mi;
        v[i] = vi;
    }
}
