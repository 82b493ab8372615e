// The generic kernels, written once over a type's `unit()` decoder, and the macro that gives a
// type its `extern "C"` entry points. A type `T` provides:
//
//   static constexpr int ROWS_PER_GROUP;   // 4 for _R4 types, else 1
//   static constexpr bool SPLIT_SCALE;     // true if the two 16-weight halves of a unit have
//                                          // different scales (d[0] != d[1])
//   static __device__ Unit unit(const uint8_t* group, int r, int u);
//                                          // unit u (32 weights) of row r of a row group
//
// and its family's .cu file says `IQRS_TYPE_KERNELS(name, T)` once. Tensors are ggml's layout:
// row groups of `ROWS_PER_GROUP * row_bytes` bytes back to back.
#pragma once

#include "common.cuh"

namespace iqrs {

/// Threads per block of the dequantize kernels (one unit each).
constexpr int DEQUANT_THREADS = 256;
/// Rows (warps) per block of the mat-vec kernels.
constexpr int MMV_ROWS = 4;

template <class T>
__device__ __forceinline__ const uint8_t* group_of(const uint8_t* w, size_t row_bytes, int row) {
    return w + size_t(row / T::ROWS_PER_GROUP) * T::ROWS_PER_GROUP * row_bytes;
}

/// Stores the 32 values of a unit at `o` (16-byte aligned): f32.
__device__ __forceinline__ void store_unit(const Unit& x, float* o) {
#pragma unroll
    for (int i = 0; i < UNIT; i += 4) {
        reinterpret_cast<float4*>(o)[i / 4] = make_float4(unit_value(x, i), unit_value(x, i + 1), unit_value(x, i + 2), unit_value(x, i + 3));
    }
}

/// Packs two f32 (rounded to nearest-even) into a word of two 16-bit floats.
__device__ __forceinline__ uint32_t pack2(float a, float b, __half*) {
    const __half2 h = __floats2half2_rn(a, b);
    return *reinterpret_cast<const uint32_t*>(&h);
}
__device__ __forceinline__ uint32_t pack2(float a, float b, __nv_bfloat16*) {
    const __nv_bfloat162 h = __floats2bfloat162_rn(a, b);
    return *reinterpret_cast<const uint32_t*>(&h);
}

/// Stores the 32 values of a unit at `o` (16-byte aligned): f16 or bf16.
template <class H>
__device__ __forceinline__ void store_unit(const Unit& x, H* o) {
#pragma unroll
    for (int i = 0; i < UNIT; i += 8) {
        reinterpret_cast<uint4*>(o)[i / 8] = make_uint4(pack2(unit_value(x, i), unit_value(x, i + 1), o), pack2(unit_value(x, i + 2), unit_value(x, i + 3), o),
                                                        pack2(unit_value(x, i + 4), unit_value(x, i + 5), o), pack2(unit_value(x, i + 6), unit_value(x, i + 7), o));
    }
}

/// Dequantizes `rows` rows of `units` units each into row-major `out` (one thread per unit).
template <class T, class Out>
__device__ __forceinline__ void dequantize(const uint8_t* __restrict__ w, size_t row_bytes, int rows, int units, Out* __restrict__ out) {
    const size_t idx = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (idx >= size_t(rows) * units) return;
    const int row = int(idx / units), u = int(idx % units);
    store_unit(T::unit(group_of<T>(w, row_bytes, row), row % T::ROWS_PER_GROUP, u), out + idx * UNIT);
}

/// `out[c][row] = Σ_u W[row, unit u] · y[c, unit u]` for NC activation vectors quantized to Q8_1
/// (`yq`: NC × units × 32 int8, `yd`: NC × units f32 scales). One warp per row; exact integer
/// sums per unit (dp4a), f32 across units.
template <class T, int NC>
__device__ __forceinline__ void mmv(const uint8_t* __restrict__ w, size_t row_bytes, int rows, int units, const int8_t* __restrict__ yq,
                                    const float* __restrict__ yd, void* __restrict__ out, int out_dtype) {
    const int row = blockIdx.x * MMV_ROWS + threadIdx.y;
    if (row >= rows) return;
    const uint8_t* g = group_of<T>(w, row_bytes, row);
    const int r = row % T::ROWS_PER_GROUP;
    float acc[NC];
#pragma unroll
    for (int c = 0; c < NC; ++c) acc[c] = 0.0f;
#pragma unroll 2
    for (int u = threadIdx.x; u < units; u += 32) {
        const Unit x = T::unit(g, r, u);
#pragma unroll
        for (int c = 0; c < NC; ++c) {
            const int4* yp = reinterpret_cast<const int4*>(yq + (size_t(c) * units + u) * UNIT);
            const int4 a = __ldg(yp), b = __ldg(yp + 1);
            const float dy = __ldg(yd + size_t(c) * units + u);
            const int s0 = __dp4a(x.q[3], a.w, __dp4a(x.q[2], a.z, __dp4a(x.q[1], a.y, __dp4a(x.q[0], a.x, 0))));
            const int s1 = __dp4a(x.q[7], b.w, __dp4a(x.q[6], b.z, __dp4a(x.q[5], b.y, __dp4a(x.q[4], b.x, 0))));
            if constexpr (T::SPLIT_SCALE) {
                acc[c] += dy * (x.d[0] * float(s0) + x.d[1] * float(s1));
            } else {
                acc[c] += dy * x.d[0] * float(s0 + s1);
            }
        }
    }
#pragma unroll
    for (int c = 0; c < NC; ++c) acc[c] = warp_sum(acc[c]);
    if (threadIdx.x == 0) {
#pragma unroll
        for (int c = 0; c < NC; ++c) store_elem(out, out_dtype, size_t(c) * rows + row, acc[c]);
    }
}

}  // namespace iqrs

#define IQRS_DEQUANT_ENTRY(name, T, suffix, Out)                                                                             \
    extern "C" __global__ void __launch_bounds__(iqrs::DEQUANT_THREADS)                                                     \
        iqrs_dequant_##name##_##suffix(const uint8_t* w, unsigned long long row_bytes, int rows, int units, Out* out) {     \
        iqrs::dequantize<T, Out>(w, row_bytes, rows, units, out);                                                            \
    }

#define IQRS_MMV_ENTRY(name, T, nc)                                                                                          \
    extern "C" __global__ void __launch_bounds__(32 * iqrs::MMV_ROWS)                                                       \
        iqrs_mmv_##name##_##nc(const uint8_t* w, unsigned long long row_bytes, int rows, int units, const int8_t* yq,       \
                               const float* yd, void* out, int out_dtype) {                                                  \
        iqrs::mmv<T, nc>(w, row_bytes, rows, units, yq, yd, out, out_dtype);                                                 \
    }

/// Every entry point of a type: `iqrs_dequant_<name>_{f32,f16,bf16}` and `iqrs_mmv_<name>_{1..8}`.
#define IQRS_TYPE_KERNELS(name, T)                                                                                           \
    IQRS_DEQUANT_ENTRY(name, T, f32, float)                                                                                  \
    IQRS_DEQUANT_ENTRY(name, T, f16, __half)                                                                                 \
    IQRS_DEQUANT_ENTRY(name, T, bf16, __nv_bfloat16)                                                                         \
    IQRS_MMV_ENTRY(name, T, 1)                                                                                               \
    IQRS_MMV_ENTRY(name, T, 2)                                                                                               \
    IQRS_MMV_ENTRY(name, T, 3)                                                                                               \
    IQRS_MMV_ENTRY(name, T, 4)                                                                                               \
    IQRS_MMV_ENTRY(name, T, 5)                                                                                               \
    IQRS_MMV_ENTRY(name, T, 6)                                                                                               \
    IQRS_MMV_ENTRY(name, T, 7)                                                                                               \
    IQRS_MMV_ENTRY(name, T, 8)
