// Rotary position embedding on CUDA, as rope.rs computes it on the CPU (rotate-half, the dims past
// 2·half copied through; `inverse` negates sin, which is the backward pass). One thread per
// element of x [b, h, t, d]; cos/sin are [t, half] or, with `per_batch`, [b, t, half]. Storage is
// f32 or bf16 (`_f32` / `_bf16`); each product and the sum are rounded to the storage type as
// transformers' `q * cos + rotate_half(q) * sin` rounds them (nothing changes in f32). Built into
// PTX by build.rs under the `cuda` feature (no fused multiply-add contraction).
#include "common.cuh"

template <typename T>
__device__ void rope(const T *x, const T *cos, const T *sin, T *y, size_t h, size_t t, size_t d,
                     size_t half, int per_batch, int inverse, size_t n) {
    GRID_STRIDE(i, n) {
        size_t row = i / d, k = i % d;
        const T *xr = x + row * d;
        if (k >= 2 * half) {
            y[i] = xr[k];
            continue;
        }
        size_t pos = row % t;
        size_t table = per_batch ? (row / (h * t) * t + pos) * half : pos * half;
        size_t kk = k < half ? k : k - half;
        float c = widen(cos[table + kk]);
        float s = widen(sin[table + kk]);
        if (inverse) s = -s;
        float x1 = widen(xr[kk]), x2 = widen(xr[kk + half]);
        float out = k < half ? as_stored(x1 * c, x) - as_stored(x2 * s, x)
                             : as_stored(x2 * c, x) + as_stored(x1 * s, x);
        narrow(out, &y[i]);
    }
}

#define ROPE_KERNELS(SUFFIX, T)                                                                    \
    extern "C" __global__ void sft_rope_##SUFFIX(const T *x, const T *cos, const T *sin, T *y,     \
                                                 size_t h, size_t t, size_t d, size_t half,        \
                                                 int per_batch, int inverse, size_t n) {           \
        rope(x, cos, sin, y, h, t, d, half, per_batch, inverse, n);                                \
    }

ROPE_KERNELS(f32, float)
ROPE_KERNELS(bf16, __nv_bfloat16)
