// SwiGLU's gate on CUDA, forward and backward, as swiglu.rs computes it on the CPU:
// y = silu(g) · u with candle's silu g / (1 + exp(−g)); the backward writes [dg | du] in one
// buffer of 2n. Storage is f32 or bf16 (`_f32` / `_bf16`); the arithmetic is f32 in both, and
// bf16 results are rounded to nearest even once, at the store. Built into PTX by build.rs under
// the `cuda` feature (no fused multiply-add contraction, like the CPU's rounding).
#include "common.cuh"

template <typename T>
__device__ void fwd(const T *g, const T *u, T *y, size_t n) {
    GRID_STRIDE(i, n) {
        float a = widen(g[i]);
        narrow(a / (1.0f + expf(-a)) * widen(u[i]), &y[i]);
    }
}

// dg = dy·u·s·(1 + g·(1 − s)), du = dy·g·s with s = 1 / (1 + exp(−g))
template <typename T>
__device__ void bwd(const T *g, const T *u, const T *dy, T *out, size_t n) {
    GRID_STRIDE(i, n) {
        float a = widen(g[i]);
        float b = widen(u[i]);
        float d = widen(dy[i]);
        float s = 1.0f / (1.0f + expf(-a));
        narrow(d * b * s * (1.0f + a * (1.0f - s)), &out[i]);
        narrow(d * a * s, &out[n + i]);
    }
}

#define SWIGLU_KERNELS(SUFFIX, T)                                                                  \
    extern "C" __global__ void sft_swiglu_fwd_##SUFFIX(const T *g, const T *u, T *y, size_t n) {   \
        fwd(g, u, y, n);                                                                           \
    }                                                                                              \
    extern "C" __global__ void sft_swiglu_bwd_##SUFFIX(const T *g, const T *u, const T *dy,        \
                                                       T *out, size_t n) {                         \
        bwd(g, u, dy, out, n);                                                                     \
    }

SWIGLU_KERNELS(f32, float)
SWIGLU_KERNELS(bf16, __nv_bfloat16)
