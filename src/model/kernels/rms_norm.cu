// RMSNorm on CUDA, forward and backward, as rms_norm.rs computes it on the CPU:
// y = x · r · w with r = 1 / sqrt(mean(x²) + eps), one block per row, where x · r is rounded to
// the storage type before the weight multiplies it (transformers' `weight * x.to(input_dtype)`;
// nothing changes in f32); the backward writes
// [gx (rows × d) | gw (d)] in one buffer, gx row by row and gw = Σ_rows g·x·r in two more launches
// (partial sums over chunks of GW_ROWS rows, then their sum: a fixed order, so the same bits on
// every run). Storage is f32 or bf16 (`_f32` / `_bf16`); the arithmetic is f32 in both, and bf16
// results are rounded to nearest even once, at the store. Built into PTX by build.rs under the
// `cuda` feature (no fused multiply-add contraction).
#include "common.cuh"

#define GW_ROWS 64

// The sum of `v` over the block (blockDim.x a multiple of 32, at most 1,024), in every thread.
__device__ float block_sum(float v) {
    __shared__ float warp_sums[32];
    __shared__ float total;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffff, v, o);
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) warp_sums[warp] = v;
    __syncthreads();
    if (warp == 0) {
        int warps = blockDim.x >> 5;
        float s = lane < warps ? warp_sums[lane] : 0.0f;
        for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffff, s, o);
        if (lane == 0) total = s;
    }
    __syncthreads();
    float s = total;
    __syncthreads();  // `total` and `warp_sums` may be reused by the next call
    return s;
}

template <typename T>
__device__ float inv_rms(const T *xr, size_t d, float eps) {
    float ss = 0.0f;
    for (size_t i = threadIdx.x; i < d; i += blockDim.x) {
        float v = widen(xr[i]);
        ss += v * v;
    }
    ss = block_sum(ss);
    return 1.0f / sqrtf(ss / (float)d + eps);
}

template <typename T>
__device__ void fwd(const T *x, const T *w, T *y, size_t d, float eps) {
    const T *xr = x + (size_t)blockIdx.x * d;
    T *yr = y + (size_t)blockIdx.x * d;
    float r = inv_rms(xr, d, eps);
    for (size_t i = threadIdx.x; i < d; i += blockDim.x) {
        narrow(as_stored(widen(xr[i]) * r, xr) * widen(w[i]), &yr[i]);
    }
}

// gx = (g·w)·r − x·c with c = Σ(g·w·x)·r³ / d; `r_out[row]` = r for the gw launches.
template <typename T>
__device__ void bwd_rows(const T *x, const T *w, const T *g, T *gx, float *r_out, size_t d, float eps) {
    size_t row = blockIdx.x;
    const T *xr = x + row * d;
    const T *gr = g + row * d;
    T *gxr = gx + row * d;
    float r = inv_rms(xr, d, eps);
    float dot = 0.0f;
    for (size_t i = threadIdx.x; i < d; i += blockDim.x) dot += widen(gr[i]) * widen(w[i]) * widen(xr[i]);
    dot = block_sum(dot);
    float c = dot * r * r * r / (float)d;
    for (size_t i = threadIdx.x; i < d; i += blockDim.x) {
        narrow(widen(gr[i]) * widen(w[i]) * r - widen(xr[i]) * c, &gxr[i]);
    }
    if (threadIdx.x == 0) r_out[row] = r;
}

// partial[chunk, j] = Σ over the chunk's GW_ROWS rows of g·x·r (grid: columns × chunks)
template <typename T>
__device__ void bwd_gw_partial(const T *x, const T *g, const float *r, float *partial, size_t rows,
                               size_t d) {
    size_t j = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= d) return;
    size_t start = (size_t)blockIdx.y * GW_ROWS;
    size_t end = start + GW_ROWS < rows ? start + GW_ROWS : rows;
    float s = 0.0f;
    for (size_t row = start; row < end; row++) s += widen(g[row * d + j]) * widen(x[row * d + j]) * r[row];
    partial[(size_t)blockIdx.y * d + j] = s;
}

template <typename T>
__device__ void bwd_gw_sum(const float *partial, T *gw, size_t chunks, size_t d) {
    size_t j = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= d) return;
    float s = 0.0f;
    for (size_t c = 0; c < chunks; c++) s += partial[c * d + j];
    narrow(s, &gw[j]);
}

#define RMS_NORM_KERNELS(SUFFIX, T)                                                                \
    extern "C" __global__ void sft_rms_norm_fwd_##SUFFIX(const T *x, const T *w, T *y, size_t d,   \
                                                         float eps) {                              \
        fwd(x, w, y, d, eps);                                                                      \
    }                                                                                              \
    extern "C" __global__ void sft_rms_norm_bwd_rows_##SUFFIX(const T *x, const T *w, const T *g,  \
                                                              T *gx, float *r, size_t d,           \
                                                              float eps) {                         \
        bwd_rows(x, w, g, gx, r, d, eps);                                                          \
    }                                                                                              \
    extern "C" __global__ void sft_rms_norm_bwd_gw_partial_##SUFFIX(                               \
        const T *x, const T *g, const float *r, float *partial, size_t rows, size_t d) {          \
        bwd_gw_partial(x, g, r, partial, rows, d);                                                 \
    }                                                                                              \
    extern "C" __global__ void sft_rms_norm_bwd_gw_sum_##SUFFIX(const float *partial, T *gw,       \
                                                                size_t chunks, size_t d) {         \
        bwd_gw_sum(partial, gw, chunks, d);                                                        \
    }

RMS_NORM_KERNELS(f32, float)
RMS_NORM_KERNELS(bf16, __nv_bfloat16)
