// Kernels on activations, shared by every type: Q8_1 quantization for the mat-vec kernels, int8
// quantization in its layout for the quantized matrix multiply, and element-type conversion for
// the cuBLAS path.
#include "common.cuh"

/// Quantizes `n` values (a multiple of 32; f32, f16 or bf16 by `dtype`) in blocks of 32:
/// `d = amax / 127`, `q = round_half_even(x · (127 / amax))` — the CPU's Q8_K convention on
/// 32-value blocks — each block's values stored in `order` (`iqrs::ActOrder`). One thread per
/// value, one warp per block.
extern "C" __global__ void __launch_bounds__(256) iqrs_quantize_q8_1(const void* __restrict__ x, int dtype, unsigned long long n,
                                                                      int8_t* __restrict__ q, float* __restrict__ d, int order) {
    iqrs::pdl_launch_dependents();  // the mat-vec kernel may be scheduled now (it waits for q, d)
    const size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= n) return;  // n is a multiple of 32: whole warps return
    const float v = iqrs::load_elem(x, dtype, i);
    const float amax = iqrs::warp_max(fabsf(v));
    const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
    q[(i & ~size_t(31)) + iqrs::act_position(order, int(i & 31))] = int8_t(__float2int_rn(v * id));
    if ((threadIdx.x & 31) == 0) d[i / 32] = amax / 127.0f;
}

/// The same convention on blocks of 128 values (`d[i / 128]`), the values of every 128 stored in
/// the order the quantized matrix multiply reads them (mmq.cuh): value 32u + 16h + 4t + b at byte
/// 32t + 4(2u + h) + b. One thread per value, four warps per block of 128.
extern "C" __global__ void __launch_bounds__(256) iqrs_quantize_q8_mmq128(const void* __restrict__ x, int dtype, unsigned long long n,
                                                                           int8_t* __restrict__ q, float* __restrict__ d) {
    __shared__ float warp_amax[8];
    const size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
    const bool live = i < n;  // n is a multiple of 128: the 4 warps of a block of 128 are all live or none
    const float v = live ? iqrs::load_elem(x, dtype, i) : 0.0f;
    const float m = iqrs::warp_max(fabsf(v));
    if ((threadIdx.x & 31) == 0) warp_amax[threadIdx.x >> 5] = m;
    __syncthreads();
    if (!live) return;
    const float* w = warp_amax + 4 * (threadIdx.x >> 7);
    const float amax = fmaxf(fmaxf(w[0], w[1]), fmaxf(w[2], w[3]));
    const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
    const int k = int(i & 127), u = k >> 5, h = (k >> 4) & 1, t = (k >> 2) & 3;
    q[(i & ~size_t(127)) + 32 * t + 4 * (2 * u + h) + (k & 3)] = int8_t(__float2int_rn(v * id));
    if ((threadIdx.x & 127) == 0) d[i / 128] = amax / 127.0f;
}

/// Converts `n` elements from `src_dtype` to `dst_dtype` (round to nearest-even).
extern "C" __global__ void __launch_bounds__(256) iqrs_convert(const void* __restrict__ x, int src_dtype, void* __restrict__ y, int dst_dtype,
                                                                unsigned long long n) {
    for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
        iqrs::store_elem(y, dst_dtype, i, iqrs::load_elem(x, src_dtype, i));
    }
}

/// `y[i] = Σ_s part[s·n + i]` over `splits` partial results (summed in order), stored as `dtype`:
/// the split-K fused matrix multiply's reduction.
extern "C" __global__ void __launch_bounds__(256) iqrs_sum_partials(const float* __restrict__ part, int splits, unsigned long long n,
                                                                     void* __restrict__ y, int dtype) {
    for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
        float v = part[i];
        for (int s = 1; s < splits; ++s) v += part[size_t(s) * n + i];
        iqrs::store_elem(y, dtype, i, v);
    }
}
