// Shared device code of every format family: the `Unit` every type decodes to, byte-level
// helpers, and the element types the kernels read and write.
//
// A *unit* is 32 consecutive weights of one row — the granularity of the Q8_1 activation blocks.
// Every type provides `static Unit unit(const uint8_t* group, int r, int u)`: the decoded weights
// of unit `u` of row `r` of a row group (see kernels.cuh). Weight `4k + j` of a unit is
// `d[k / 4] * (int8_t) byte j of q[k]`, so the generic kernels dequantize with two f32
// multiplies (the CPU's operation order, hence bit-exact) and dot with `dp4a`.
#pragma once

#include <cstdint>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace iqrs {

/// Weights per unit (one Q8_1 activation block).
constexpr int UNIT = 32;

/// 32 decoded weights: weight `4k + j` = `d[k / 4] * (int8) byte j of q[k]`. Every type's scales
/// are a float factor times a small integer, kept apart too: `d[h] = db * l[h]`, where `db` is the
/// same for all units of a 256-weight block (the quantized matrix multiply applies `l` to its
/// exact integer sums and `db` once per step).
struct Unit {
    int q[8];
    float d[2];
    int l[2];
    float db;
};

/// Element types of activations and outputs (the same codes as `cuda::Dtype` on the Rust side).
enum Dtype : int { F32 = 0, F16 = 1, BF16 = 2 };

/// Orders of a unit's 32 int8 activations for the mat-vec (Q8_1; the same codes as
/// `kernels::mmv_activation_order` on the Rust side). A type whose look-ups give its values in
/// another order than the weights' takes its activations in that order instead of reordering
/// every word it decodes (two `prmt` a word; cuda/NOTES.md). The order applies within a unit only,
/// and the integer sum of a unit (or of each half, for `PAIRS_IN_HALVES`) is the same.
enum ActOrder : int {
    NATURAL = 0,
    HALVES_PAIRED = 1,    // value j and j + 16 side by side: the nibble-pair layouts (one scale a unit)
    PAIRS_IN_HALVES = 2,  // value j and j + 8 of each half side by side: the _R4 4-bit layouts
    PAIRS_IN_EIGHTS = 3,  // value j and j + 4 of each eight side by side: the 2- and 3-bit grids
};

/// The byte of a unit's activations that holds value `k` (0..31) in `order`.
__host__ __device__ constexpr int act_position(int order, int k) {
    return order == HALVES_PAIRED     ? 2 * (k & 15) + (k >> 4)
           : order == PAIRS_IN_HALVES ? (k & 16) + 2 * (k & 7) + ((k >> 3) & 1)
           : order == PAIRS_IN_EIGHTS ? (k & 24) + 2 * (k & 3) + ((k >> 2) & 1)
                                      : k;
}

/// Packs four int8 values into a word, first value in the low byte.
__host__ __device__ constexpr uint32_t pack4(int a, int b, int c, int d) {
    return uint32_t(uint8_t(a)) | uint32_t(uint8_t(b)) << 8 | uint32_t(uint8_t(c)) << 16 | uint32_t(uint8_t(d)) << 24;
}

#if IQRS_GENERIC_LD  // lab: plain loads instead of __ldg (mixed: cuda/NOTES.md)
#define IQRS_LDG(T, p) (*reinterpret_cast<const T*>(p))
#else
#define IQRS_LDG(T, p) __ldg(reinterpret_cast<const T*>(p))
#endif

/// A read-only byte load through the non-coherent cache.
__device__ __forceinline__ uint32_t ld_u8(const uint8_t* p) {
    return IQRS_LDG(uint8_t, p);
}

/// A read-only 4-byte load through the non-coherent cache; `p` must be 4-byte aligned.
__device__ __forceinline__ uint32_t ld_u32(const uint8_t* p) {
    return IQRS_LDG(uint32_t, p);
}

/// A read-only f32 load; `p` must be 4-byte aligned.
__device__ __forceinline__ float ld_f32(const uint8_t* p) {
    return IQRS_LDG(float, p);
}

/// A read-only 8-byte load; `p` must be 8-byte aligned.
__device__ __forceinline__ uint2 ld_u32x2(const uint8_t* p) {
    return IQRS_LDG(uint2, p);
}

/// A read-only 16-byte load; `p` must be 16-byte aligned.
__device__ __forceinline__ uint4 ld_u32x4(const uint8_t* p) {
    return IQRS_LDG(uint4, p);
}

/// Word `i` (0..3) of a 16-byte vector.
__device__ __forceinline__ uint32_t word_of(const uint4& v, int i) {
    return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w;
}

/// A read-only 2-byte load; `p` must be 2-byte aligned.
__device__ __forceinline__ uint32_t ld_u16(const uint8_t* p) {
    return IQRS_LDG(uint16_t, p);
}

/// An f16 at a 2-byte aligned address, as f32 (exact).
__device__ __forceinline__ float ld_f16(const uint8_t* p) {
    return __half2float(__ushort_as_half(IQRS_LDG(unsigned short, p)));
}

/// `N` consecutive little-endian words from a 2-byte aligned address (blocks of 70, 86, 102 or
/// 110 bytes are): aligned loads, realigned by funnel shifts. A misaligned window's first load
/// starts 2 bytes early (inside the same allocation, which is 4-byte aligned while `p` is not);
/// its last is a 2-byte load, so nothing past `p + 4N` is read.
template <int N>
__device__ __forceinline__ void ld_words(const uint8_t* p, uint32_t (&w)[N]) {
    const uintptr_t a = reinterpret_cast<uintptr_t>(p);
#if IQRS_GENERIC_LD
    const uint32_t* q = reinterpret_cast<const uint32_t*>(p - (a & 2));  // pointer arithmetic keeps the address space
#else
    const uint32_t* q = reinterpret_cast<const uint32_t*>(a & ~uintptr_t(3));
#endif
    const uint32_t shift = uint32_t(a & 2) * 8;  // 0 or 16
    uint32_t cur = IQRS_LDG(uint32_t, q);
#pragma unroll
    for (int i = 0; i < N; ++i) {
        // The last word of a misaligned window needs only the low half of the next aligned word.
        const uint32_t next = i + 1 < N ? IQRS_LDG(uint32_t, q + i + 1) : shift ? ld_u16(p + 4 * N - 2) : 0u;
        w[i] = __funnelshift_r(cur, next, shift);
        cur = next;
    }
}

/// `prmt.b32` (byte permute) without the `& 0x7777` that `__byte_perm` adds: callers pass
/// selectors whose nibbles are below 8.
__device__ __forceinline__ uint32_t prmt(uint32_t a, uint32_t b, uint32_t sel) {
    uint32_t r;
    asm("prmt.b32 %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(b), "r"(sel));
    return r;
}

/// Looks up the eight 4-bit indices held in the nibbles of `q` in a 16-entry int8 table (`t[i/4]`
/// byte `i%4` is entry `i`), in nibble order: `v0` gets the values of nibbles 0..3 (byte n for
/// nibble n), `v1` those of nibbles 4..7 — low and high nibbles of q's bytes alternating.
__device__ __forceinline__ void lookup16_pairs(uint32_t q, const uint32_t (&t)[4], int& v0, int& v1) {
    const uint32_t qm = q & 0x77777777u;
    // Byte n of the blend takes the upper half of the table when bit 3 of nibble n is set.
    const uint32_t blend = 0x32103210u | ((q >> 1) & 0x44444444u);
    v0 = int(prmt(prmt(t[0], t[1], qm), prmt(t[2], t[3], qm), blend));
    v1 = int(prmt(prmt(t[0], t[1], qm >> 16), prmt(t[2], t[3], qm >> 16), blend >> 16));
}

/// As [`lookup16_pairs`], in byte order: `lo` gets the values of the low nibbles of q's bytes
/// 0..3, `hi` those of the high nibbles (byte n of each for byte n of q).
__device__ __forceinline__ void lookup16(uint32_t q, const uint32_t (&t)[4], int& lo, int& hi) {
    int v0, v1;
    lookup16_pairs(q, t, v0, v1);
    lo = int(prmt(v0, v1, 0x6420));
    hi = int(prmt(v0, v1, 0x7531));
}

/// Looks up the eight 3-bit indices held in the nibbles of `q` (bit 3 clear) in an 8-entry int8
/// table, in nibble order as [`lookup16_pairs`] does.
__device__ __forceinline__ void lookup8_pairs(uint32_t q, const uint32_t (&t)[2], int& v0, int& v1) {
    v0 = int(prmt(t[0], t[1], q));        // nibbles 0..3
    v1 = int(prmt(t[0], t[1], q >> 16));  // nibbles 4..7
}

/// As [`lookup8_pairs`], in byte order as [`lookup16`] does.
__device__ __forceinline__ void lookup8(uint32_t q, const uint32_t (&t)[2], int& lo, int& hi) {
    int v0, v1;
    lookup8_pairs(q, t, v0, v1);
    lo = int(prmt(v0, v1, 0x6420));
    hi = int(prmt(v0, v1, 0x7531));
}

/// Byte `j` of `b` where byte `j` of `m` is 1, of `a` where it is 0.
__device__ __forceinline__ int blend_bytes(int a, int b, uint32_t m) {
    const uint32_t mask = m * 0xFFu;
    return int((uint32_t(a) & ~mask) | (uint32_t(b) & mask));
}

/// Adds `c` to each of the four int8 values of `w`, each sum within int8 (bytes offset to
/// unsigned, so no carry crosses a byte).
__device__ __forceinline__ int add_i8x4(int w, uint32_t c) {
    return int(((uint32_t(w) ^ 0x80808080u) + c * 0x01010101u) ^ 0x80808080u);
}

/// `float(v)` for |v| < 2^22 without the conversion unit: adding v to the bits of 1.5·2^23
/// lands exactly on 1.5·2^23 + v (one unit per last place at that exponent).
__device__ __forceinline__ float small_int_to_float(int v) {
    return __int_as_float(0x4B400000 + v) - 12582912.0f;
}

/// `(d·L0, d·L1)` as the CPU rounds them: `d * (float)L`; and the factors apart.
__device__ __forceinline__ void set_scales(Unit& x, float d, int l0, int l1) {
    x.d[0] = d * small_int_to_float(l0);
    x.d[1] = d * small_int_to_float(l1);
    x.l[0] = l0;
    x.l[1] = l1;
    x.db = d;
}

/// One scale `d·L` for both halves of a unit.
__device__ __forceinline__ void set_scale(Unit& x, float d, int l) { set_scales(x, d, l, l); }

/// Value `i` (0..31, a compile-time constant after unrolling) of a unit as f32.
__device__ __forceinline__ float unit_value(const Unit& x, int i) {
    return x.d[i / 16] * float(int8_t(x.q[i / 4] >> (8 * (i % 4))));
}

/// Programmatic dependent launch (sm_90 and newer; no-ops before): a kernel that produces input
/// for the next one lets it be scheduled at once (`pdl_launch_dependents`); a kernel launched
/// with the attribute (rust/src/cuda/device.rs `launch_dependent`) may so start before its
/// predecessor ends, and must call `pdl_wait` before it reads what the predecessor writes
/// (or writes anything). Without the attribute `pdl_wait` returns at once.
__device__ __forceinline__ void pdl_launch_dependents() {
#if __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}
__device__ __forceinline__ void pdl_wait() {
#if __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

/// Sum over the 32 lanes of a warp.
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/// Maximum over the 32 lanes of a warp.
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/// Element `i` of an array of element type `dtype`, as f32 (exact for every type).
__device__ __forceinline__ float load_elem(const void* p, int dtype, size_t i) {
    switch (dtype) {
        case F16: return __half2float(static_cast<const __half*>(p)[i]);
        case BF16: return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
        default: return static_cast<const float*>(p)[i];
    }
}

/// Stores `v` rounded to nearest-even into element `i` of an array of element type `dtype`.
__device__ __forceinline__ void store_elem(void* p, int dtype, size_t i, float v) {
    switch (dtype) {
        case F16: static_cast<__half*>(p)[i] = __float2half_rn(v); break;
        case BF16: static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(v); break;
        default: static_cast<float*>(p)[i] = v;
    }
}

}  // namespace iqrs
