// The generic kernels, written once over a type's `unit()` decoder, and the macro that gives a
// type its `extern "C"` entry points. A type `T` provides:
//
//   static constexpr int ROWS_PER_GROUP;   // 4 for _R4 types, else 1
//   static constexpr bool SPLIT_SCALE;     // true if the two 16-weight halves of a unit have
//                                          // different scales (d[0] != d[1])
//   static __device__ Unit unit(const uint8_t* group, int r, int u);
//                                          // unit u (32 weights) of row r of a row group
//   static __device__ void group_units(const uint8_t* group, int u, Unit (&x)[ROWS_PER_GROUP]);
//                                          // (ROWS_PER_GROUP > 1 only) unit u of every row of
//                                          // a group at once, for the mat-vec kernels
//
// and its family's .cu file says `IQRS_TYPE_KERNELS(name, T)` once. Tensors are ggml's layout:
// row groups of `ROWS_PER_GROUP * row_bytes` bytes back to back.
#pragma once

#include <type_traits>

#include "common.cuh"

namespace iqrs {

// Tuning knobs of the mat-vec kernels, macros so that `scripts/cuda_lab.py` can time variants
// without a Rust build; the defaults are what the library ships (the launch code in
// rust/src/cuda/kernels.rs mirrors MMV_WARPS and the rows per warp).
#ifndef IQRS_MMV_WARPS
#define IQRS_MMV_WARPS 4
#endif
#ifndef IQRS_MMV_UNROLL1
#define IQRS_MMV_UNROLL1 2  // units in flight per lane when a warp takes one row
#endif
#ifndef IQRS_MMV_ROWS1
#define IQRS_MMV_ROWS1 1  // rows a warp takes for one vector (one-row types)
#endif
#ifndef IQRS_MMV_UNROLLR
#define IQRS_MMV_UNROLLR 1  // ... when it takes several
#endif
#ifndef IQRS_MMV_ROWS2
#define IQRS_MMV_ROWS2 2  // rows a warp takes for 2 or 3 vectors (one-row types)
#endif
#ifndef IQRS_MMV_ROWSN
#define IQRS_MMV_ROWSN 4  // ... for 4 to 8
#endif
// IQRS_MMV_PF=0|1 (a lab knob) turns the L2 prefetch of the warp's rows (`mmv_prefetch` below)
// off, or on for every type and width.

/// Threads per block of the dequantize kernels (one unit each).
constexpr int DEQUANT_THREADS = 256;
/// Warps per block of the mat-vec kernels.
constexpr int MMV_WARPS = IQRS_MMV_WARPS;
/// Units in flight per lane of a mat-vec warp that takes one row, and one that takes several.
constexpr int MMV_UNROLL1 = IQRS_MMV_UNROLL1, MMV_UNROLLR = IQRS_MMV_UNROLLR;

/// Rows each mat-vec warp handles for `nc` activation vectors. With several vectors the
/// activations, not the weights, dominate the traffic to L1/L2 if they are read once per row;
/// a warp that takes R rows reads them once per R rows (and holds them in registers).
__host__ __device__ constexpr int mmv_rows_per_warp(int nc) { return nc == 1 ? IQRS_MMV_ROWS1 : nc <= 3 ? IQRS_MMV_ROWS2 : IQRS_MMV_ROWSN; }

/// Declares `Name<T>::value`: `T::MEMBER` where type `T` sets it, else `def` — a per-type knob
/// whose default the types' traits leave alone unless they measured better otherwise.
#define IQRS_TYPE_KNOB(Name, MEMBER, def)                                                                                    \
    template <class T, class = void>                                                                                         \
    struct Name : std::integral_constant<int, (def)> {};                                                                     \
    template <class T>                                                                                                       \
    struct Name<T, std::void_t<decltype(T::MEMBER)>> : std::integral_constant<int, T::MEMBER> {};

/// Rows a mat-vec warp of a one-row type `T` takes for 4 to 8 vectors: `T::MMV_ROWS_MANY` where
/// the type sets it (the 4-bit types measured faster with 2: cuda/NOTES.md), else as above.
IQRS_TYPE_KNOB(RowsMany, MMV_ROWS_MANY, mmv_rows_per_warp(8))

/// Rows each mat-vec warp of type `T` handles: a whole row group for the interleaved types (their
/// rows' bytes of a unit are adjacent, so a group is read with wide loads), else as above. The
/// launch code (rust/src/cuda/kernels.rs) and scripts/cuda_lab.py mirror this.
template <class T>
__host__ __device__ constexpr int mmv_rows(int nc) {
    return T::ROWS_PER_GROUP > 1 ? T::ROWS_PER_GROUP : nc >= 4 ? RowsMany<T>::value : mmv_rows_per_warp(nc);
}

/// Blocks an SM the one-vector mat-vec kernel of type `T` is compiled for, which sets its
/// registers (at most 65536 / (32 · MMV_WARPS · blocks)): `T::MMV_BLOCKS_1` where the type sets
/// it, else 0 — no bound asked for, as for the other widths. Left alone ptxas gives the one-row
/// types 40-48 registers; 64 (8 blocks) measured faster for most (cuda/NOTES.md).
/// `IQRS_MMV_MINB1` overrides it for every type (a lab knob).
IQRS_TYPE_KNOB(MmvBlocks1, MMV_BLOCKS_1, 0)
template <class T>
constexpr int mmv_min_blocks(int nc) {
#ifdef IQRS_MMV_MINB1
    return nc == 1 ? IQRS_MMV_MINB1 : 0;
#else
    return nc == 1 ? MmvBlocks1<T>::value : 0;
#endif
}

/// Fewest activation vectors for which the mat-vec of type `T` first asks L2 for the warp's
/// whole rows (one `cp.async.bulk.prefetch.L2`, sm_90; older GPUs skip it): `T::MMV_PREFETCH_FROM`
/// where the type sets it, else never. With 4 to 8 vectors a warp takes 2 or 4 rows and spends
/// long on each unit, so the rows' later units are worth fetching early: measured 1.06-1.18x for
/// the one-row types that set it, and slower for the others (the _R4 types, IQ5_K, IQ6_K, Q8_K),
/// and slower for every type with one or two vectors (cuda/NOTES.md).
IQRS_TYPE_KNOB(MmvPrefetchFrom, MMV_PREFETCH_FROM, 1 << 30)
template <class T>
__host__ __device__ constexpr bool mmv_prefetch(int nc) {
#ifdef IQRS_MMV_PF
    return IQRS_MMV_PF != 0;
#else
    return nc >= MmvPrefetchFrom<T>::value;
#endif
}

/// Asks L2 for `bytes` bytes from `p` (whole 16-byte chunks; a hint, so the tail may be skipped).
__device__ __forceinline__ void prefetch_l2_bulk(const uint8_t* p, size_t bytes) {
#if __CUDA_ARCH__ >= 900
    const uintptr_t a = reinterpret_cast<uintptr_t>(p), a16 = a & ~uintptr_t(15);
    const uint32_t n = uint32_t(min(size_t(1) << 30, (a + bytes - a16) & ~size_t(15)));
    if (n) asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(a16), "r"(n) : "memory");
#endif
}

/// The order (`ActOrder`) of the activations the mat-vec of type `T` takes: `T::MMV_ORDER` where
/// the type sets it, else NATURAL. A one-row type that sets it decodes for the mat-vec with
/// `T::unit<MMV_ORDER>`, values in that order; an interleaved type's `group_units` gives them so.
IQRS_TYPE_KNOB(MmvOrder, MMV_ORDER, NATURAL)

template <class T>
__device__ __forceinline__ const uint8_t* group_of(const uint8_t* w, size_t row_bytes, int row) {
    return w + size_t(row / T::ROWS_PER_GROUP) * T::ROWS_PER_GROUP * row_bytes;
}

/// Packs two f32 (rounded to nearest-even) into the bits of two 16-bit floats.
__device__ __forceinline__ uint32_t pack2(float a, float b, __half*) {
    const __half2 h = __floats2half2_rn(a, b);
    return *reinterpret_cast<const uint32_t*>(&h);
}
__device__ __forceinline__ uint32_t pack2(float a, float b, __nv_bfloat16*) {
    const __nv_bfloat162 h = __floats2bfloat162_rn(a, b);
    return *reinterpret_cast<const uint32_t*>(&h);
}

/// 16-byte chunk `j` of a unit's values: 4 f32 or 8 f16/bf16.
__device__ __forceinline__ uint4 unit_chunk(const Unit& x, int j, float*) {
    const int i = 4 * j;
    return make_uint4(__float_as_uint(unit_value(x, i)), __float_as_uint(unit_value(x, i + 1)), __float_as_uint(unit_value(x, i + 2)),
                      __float_as_uint(unit_value(x, i + 3)));
}
template <class H>
__device__ __forceinline__ uint4 unit_chunk(const Unit& x, int j, H* tag) {
    const int i = 8 * j;
    return make_uint4(pack2(unit_value(x, i), unit_value(x, i + 1), tag), pack2(unit_value(x, i + 2), unit_value(x, i + 3), tag),
                      pack2(unit_value(x, i + 4), unit_value(x, i + 5), tag), pack2(unit_value(x, i + 6), unit_value(x, i + 7), tag));
}

/// Dequantizes `rows` rows of `units` units each into row-major `out` (16-byte aligned). Each
/// thread decodes one unit into shared memory; the block then writes its units — contiguous in
/// `out` — with coalesced 16-byte stores. Chunks are XOR-swizzled within a unit to spread the
/// shared-memory banks.
template <class T, class Out>
__device__ __forceinline__ void dequantize(const uint8_t* __restrict__ w, size_t row_bytes, int rows, int units, Out* __restrict__ out) {
    constexpr int C = UNIT * sizeof(Out) / 16;  // 16-byte chunks per unit
    __shared__ uint4 stage[DEQUANT_THREADS * C];
    const size_t first = size_t(blockIdx.x) * DEQUANT_THREADS;
    const size_t total = size_t(rows) * units;
    const size_t idx = first + threadIdx.x;
    if (idx < total) {
        const int row = int(idx / units), u = int(idx % units);
        const Unit x = T::unit(group_of<T>(w, row_bytes, row), row % T::ROWS_PER_GROUP, u);
#pragma unroll
        for (int j = 0; j < C; ++j) stage[threadIdx.x * C + (j ^ (threadIdx.x % C))] = unit_chunk(x, j, out);
    }
    __syncthreads();
    const int chunks = int(min(total - first, size_t(DEQUANT_THREADS))) * C;
    uint4* o = reinterpret_cast<uint4*>(out + first * UNIT);
    for (int i = threadIdx.x; i < chunks; i += DEQUANT_THREADS) {
        const int t = i / C, j = i % C;
        o[i] = stage[t * C + (j ^ (t % C))];
    }
}

/// The exact integer sums of unit `x` against activation words `a`, `b` (its two 16-weight
/// halves), scaled and added to `acc`.
template <class T>
__device__ __forceinline__ void mmv_accumulate(const Unit& x, const int4& a, const int4& b, float dy, float& acc) {
    const int s0 = __dp4a(x.q[3], a.w, __dp4a(x.q[2], a.z, __dp4a(x.q[1], a.y, __dp4a(x.q[0], a.x, 0))));
    const int s1 = __dp4a(x.q[7], b.w, __dp4a(x.q[6], b.z, __dp4a(x.q[5], b.y, __dp4a(x.q[4], b.x, 0))));
    // |s| <= 32 * 127 * 128 < 2^22
    if constexpr (T::SPLIT_SCALE) {
        acc += dy * (x.d[0] * small_int_to_float(s0) + x.d[1] * small_int_to_float(s1));
    } else {
        acc += dy * x.d[0] * small_int_to_float(s0 + s1);
    }
}

/// Unit `u` of the NC activation vectors: its two 16-value halves and its scale, each vector's.
template <int NC>
__device__ __forceinline__ void mmv_activations(const int8_t* __restrict__ yq, const float* __restrict__ yd, int units, int u, int4 (&ya)[NC],
                                                int4 (&yb)[NC], float (&dy)[NC]) {
#pragma unroll
    for (int c = 0; c < NC; ++c) {
        const int4* yp = reinterpret_cast<const int4*>(yq + (size_t(c) * units + u) * UNIT);
        ya[c] = __ldg(yp);
        yb[c] = __ldg(yp + 1);
        dy[c] = __ldg(yd + size_t(c) * units + u);
    }
}

/// `out[c][row] = Σ_u W[row, unit u] · y[c, unit u]` for NC activation vectors quantized to Q8_1
/// (`yq`: NC × units × 32 int8, `yd`: NC × units f32 scales). A warp takes R consecutive rows;
/// lanes stride over the units (exact integer sums per unit with dp4a, f32 across units), then
/// the warp reduces.
template <class T, int NC>
__device__ __forceinline__ void mmv(const uint8_t* __restrict__ w, size_t row_bytes, int rows, int units, const int8_t* __restrict__ yq,
                                    const float* __restrict__ yd, void* __restrict__ out, int out_dtype) {
    constexpr int R = mmv_rows<T>(NC);
    static_assert(MmvOrder<T>::value != HALVES_PAIRED || !T::SPLIT_SCALE, "pairs across the halves mix their scales");
    const int row0 = (blockIdx.x * MMV_WARPS + threadIdx.y) * R;
    if (row0 >= rows) return;
    // Launched as a dependent of the activations' quantization (ops.rs): until that is done
    // (pdl_wait), a warp of an interleaved type decodes its group's first unit, so that those
    // loads overlap the quantization's end (H100: iq4_k_r4 28672x8192 N=1 55.2 -> 54.9 µs with
    // the dependent launch; the one-row types' one-vector kernels measured slower so, iq4_ks
    // 49.0 -> 50.7, and do not).
    constexpr bool PEEL = T::ROWS_PER_GROUP > 1;
    Unit x0[T::ROWS_PER_GROUP];
    int u = threadIdx.x;
    if constexpr (PEEL) {
        if (u < units) T::group_units(group_of<T>(w, row_bytes, row0), u, x0);
    }
    pdl_wait();
    if constexpr (mmv_prefetch<T>(NC)) {
        if (threadIdx.x == 0) prefetch_l2_bulk(group_of<T>(w, row_bytes, row0), size_t(min(R, rows - row0)) * row_bytes);
    }
    float acc[R][NC];
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
        for (int c = 0; c < NC; ++c) acc[r][c] = 0.0f;
    int4 ya[NC], yb[NC];
    float dy[NC];
    if constexpr (PEEL) {
        if (u < units) {
            mmv_activations<NC>(yq, yd, units, u, ya, yb, dy);
#pragma unroll
            for (int r = 0; r < R; ++r)
#pragma unroll
                for (int c = 0; c < NC; ++c) mmv_accumulate<T>(x0[r], ya[c], yb[c], dy[c], acc[r][c]);
            u += 32;
        }
    }
#pragma unroll(R == 1 ? MMV_UNROLL1 : MMV_UNROLLR)
    for (; u < units; u += 32) {
        mmv_activations<NC>(yq, yd, units, u, ya, yb, dy);
        Unit xg[T::ROWS_PER_GROUP];  // an interleaved group's rows (row0 starts a group)
        if constexpr (T::ROWS_PER_GROUP > 1) T::group_units(group_of<T>(w, row_bytes, row0), u, xg);
#pragma unroll
        for (int r = 0; r < R; ++r) {
            const int row = row0 + r;
            if (R > 1 && row >= rows) break;  // the same for the whole warp
            Unit x;
            if constexpr (T::ROWS_PER_GROUP > 1) {
                x = xg[r];
            } else if constexpr (MmvOrder<T>::value != NATURAL) {
                x = T::template unit<MmvOrder<T>::value>(group_of<T>(w, row_bytes, row), 0, u);
            } else {
                x = T::unit(group_of<T>(w, row_bytes, row), 0, u);
            }
#pragma unroll
            for (int c = 0; c < NC; ++c) mmv_accumulate<T>(x, ya[c], yb[c], dy[c], acc[r][c]);
        }
    }
#pragma unroll
    for (int r = 0; r < R; ++r) {
#pragma unroll
        for (int c = 0; c < NC; ++c) acc[r][c] = warp_sum(acc[r][c]);
    }
    if (threadIdx.x == 0) {
#pragma unroll
        for (int r = 0; r < R; ++r) {
            if (row0 + r < rows) {
#pragma unroll
                for (int c = 0; c < NC; ++c) store_elem(out, out_dtype, size_t(c) * rows + row0 + r, acc[r][c]);
            }
        }
    }
}

}  // namespace iqrs

#define IQRS_DEQUANT_ENTRY(name, T, suffix, Out)                                                                             \
    extern "C" __global__ void __launch_bounds__(iqrs::DEQUANT_THREADS)                                                     \
        iqrs_dequant_##name##_##suffix(const uint8_t* w, unsigned long long row_bytes, int rows, int units, Out* out) {     \
        iqrs::dequantize<T, Out>(w, row_bytes, rows, units, out);                                                            \
    }

#define IQRS_MMV_ENTRY(name, T, nc)                                                                                          \
    extern "C" __global__ void __launch_bounds__(32 * iqrs::MMV_WARPS, iqrs::mmv_min_blocks<T>(nc))                          \
        iqrs_mmv_##name##_##nc(const uint8_t* w, unsigned long long row_bytes, int rows, int units, const int8_t* yq,       \
                               const float* yd, void* out, int out_dtype) {                                                  \
        iqrs::mmv<T, nc>(w, row_bytes, rows, units, yq, yd, out, out_dtype);                                                 \
    }

#include "mm.cuh"   // the fused matrix multiply (uses the above)
#include "mmq.cuh"  // the quantized matrix multiply (uses the above and mm.cuh)

/// Every entry point of a type in its family's module: `iqrs_dequant_<name>_{f32,f16,bf16}`,
/// `iqrs_mmv_<name>_{1..8}`, `iqrs_mm_<name>_{64,128}` and `iqrs_mmq_<name>_{1,2,4}`, where
/// `mmq4` says how the 4-tile mmq kernel (17 and more vectors) reads W: `LDG` through `__ldg`
/// there, or `PLAIN` through plain loads, in mmq_wide.cu instead (which includes every family's
/// file with `IQRS_MMQ_WIDE_MODULE` set and so gives only those kernels); per type, whichever
/// measured faster (cuda/NOTES.md). rust/src/cuda/kernels.rs `mmq_module` mirrors the choice.
/// mmw_sm90a.cu, built for sm_90a alone, sets `IQRS_MMW_MODULE` and gets `iqrs_mmw_<name>_*`.
#if IQRS_MMW_MODULE  // mmw_sm90a.cu: only the warpgroup matrix multiply (sm_90a)
#include "mmw.cuh"
#define IQRS_TYPE_KERNELS(name, T, mmq4) IQRS_MMW_KERNELS(name, T)
#elif IQRS_MMQ_WIDE_MODULE
#define IQRS_MMQ4_LDG(name, T)
#define IQRS_MMQ4_PLAIN(name, T) IQRS_MMQ_ENTRY(name, T, 4)
#define IQRS_TYPE_KERNELS(name, T, mmq4) IQRS_MMQ4_##mmq4(name, T)
#else
#define IQRS_MMQ4_LDG(name, T) IQRS_MMQ_ENTRY(name, T, 4)
#define IQRS_MMQ4_PLAIN(name, T)
#ifdef IQRS_LAB  // scripts/cuda_lab.py: the kernels it times alone (faster to compile)
#define IQRS_TYPE_KERNELS(name, T, mmq4)                                                                                     \
    IQRS_DEQUANT_ENTRY(name, T, bf16, __nv_bfloat16)                                                                         \
    IQRS_MMV_ENTRY(name, T, 1) IQRS_MMV_ENTRY(name, T, 2) IQRS_MMV_ENTRY(name, T, 3) IQRS_MMV_ENTRY(name, T, 4)            \
    IQRS_MMV_ENTRY(name, T, 5) IQRS_MMV_ENTRY(name, T, 6) IQRS_MMV_ENTRY(name, T, 7) IQRS_MMV_ENTRY(name, T, 8)            \
    IQRS_MMQ_KERNELS(name, T) IQRS_MMQ4_##mmq4(name, T)
#else
#define IQRS_TYPE_KERNELS(name, T, mmq4)                                                                                     \
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
    IQRS_MMV_ENTRY(name, T, 8)                                                                                               \
    IQRS_MM_KERNELS(name, T)                                                                                                 \
    IQRS_MMQ_KERNELS(name, T)                                                                                                \
    IQRS_MMQ4_##mmq4(name, T)
#endif
#endif
