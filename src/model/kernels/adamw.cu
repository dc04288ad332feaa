// AdamW's update in place on CUDA: the same three passes as the CPU kernels in adamw.rs (first
// moment, second moment, parameter), one launch each per parameter tensor, instead of about
// fifteen element-wise kernels and three copies. Built into PTX by build.rs under the `cuda`
// feature and loaded through candle's `get_or_load_custom_func`.
//
// The moments are f32; the gradient and the parameter are f32 or bf16 (`_f32` / `_bf16`). bf16
// values are widened to f32, updated in f32 and rounded back to nearest even, as the composition
// does with `to_dtype`.
#include "common.cuh"

// m ← m + (1 − β1)(g − m), with w = 1 − β1
template <typename G>
__device__ void first_moment(float *m, const G *g, float w, size_t n) {
    GRID_STRIDE(i, n) {
        float mi = m[i];
        m[i] = mi + (widen(g[i]) - mi) * w;
    }
}

// v ← β2 v + (1 − β2) g², with w = 1 − β2
template <typename G>
__device__ void second_moment(float *v, const G *g, float b2, float w, size_t n) {
    GRID_STRIDE(i, n) {
        float gi = widen(g[i]);
        v[i] = v[i] * b2 + gi * gi * w;
    }
}

// p ← p·decay − step · m / (√v / bc2 + eps)
template <typename P>
__device__ void apply(P *p, const float *m, const float *v, float decay, float step, float bc2,
                      float eps, size_t n) {
    GRID_STRIDE(i, n) {
        float q = widen(p[i]);
        if (decay != 1.0f) q = q * decay;
        narrow(q - m[i] / (sqrtf(v[i]) / bc2 + eps) * step, &p[i]);
    }
}

#define ADAMW_KERNELS(SUFFIX, T)                                                                   \
    extern "C" __global__ void sft_adamw_m_##SUFFIX(float *m, const T *g, float w, size_t n) {      \
        first_moment(m, g, w, n);                                                                  \
    }                                                                                              \
    extern "C" __global__ void sft_adamw_v_##SUFFIX(float *v, const T *g, float b2, float w,       \
                                                    size_t n) {                                    \
        second_moment(v, g, b2, w, n);                                                             \
    }                                                                                              \
    extern "C" __global__ void sft_adamw_p_##SUFFIX(T *p, const float *m, const float *v,          \
                                                    float decay, float step, float bc2, float eps, \
                                                    size_t n) {                                    \
        apply(p, m, v, decay, step, bc2, eps, n);                                                  \
    }

ADAMW_KERNELS(f32, float)
ADAMW_KERNELS(bf16, __nv_bfloat16)
