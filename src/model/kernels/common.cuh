// What the crate's CUDA kernels share (included by each `*.cu` here): widening f32/bf16 storage to
// f32, narrowing back with round-to-nearest-even, rounding a value as the storage type would, and
// the grid-stride loop.
#pragma once
#include <cuda_bf16.h>
#include <stddef.h>

__device__ __forceinline__ float widen(float x) { return x; }
__device__ __forceinline__ float widen(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ void narrow(float x, float *out) { *out = x; }
__device__ __forceinline__ void narrow(float x, __nv_bfloat16 *out) { *out = __float2bfloat16_rn(x); }
// `x` rounded to the storage type of the pointer and back (the identity for f32)
__device__ __forceinline__ float as_stored(float x, const float *) { return x; }
__device__ __forceinline__ float as_stored(float x, const __nv_bfloat16 *) {
    return __bfloat162float(__float2bfloat16_rn(x));
}

#define GRID_STRIDE(i, n) \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (size_t)blockDim.x * gridDim.x)
