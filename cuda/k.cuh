// IQ2_K, IQ3_K, IQ4_K, IQ5_K, IQ6_K (FORMATS.md §7): blocks of 256 weights, each starting with
// an f16 scale d and a u16 `extra` whose bit b shifts the grid of 16-weight sub-block b; one
// integer scale L_b per 16 weights, so the two halves of a unit (sub-blocks 2·ib, 2·ib + 1) have
// their own scales: weight = (d·L_b)·T[index + shift].
//
// | type  | bytes | scales (b = 16-weight sub-block)                               | indices (t = weight of unit ib)                          |
// |-------|-------|----------------------------------------------------------------|----------------------------------------------------------|
// | IQ2_K | 76    | nibble b%2 of scales[b/2] @4, L = f - 8                        | bits 2·(ib%4) of qs[32·(ib/4) + t] @12                  |
// | IQ3_K | 110   | nibble of scales_l @6, sign bit b of u16 @4, L = ±(2f + 1)      | as IQ2_K @14, plus bit ib of qh[t] @78 as bit 2          |
// | IQ4_K | 144   | nibble of scales_l @8, bits 2·(b%4) of scales_h[b/4] @4, f - 32 | nibble t/16 of qs[16·ib + t%16] @16                      |
// | IQ5_K | 176   | as IQ4_K                                                       | nibble ib%2 of qs[32·(ib/2) + t] @16, bit ib of qh[t] @144 |
// | IQ6_K | 212   | int8 scales[16] @4                                             | as IQ5_K @20, bits 2·(ib%4) of qh[32·(ib/4) + t] @148 as bits 4..5 |
//
// IQ3_K blocks (110 bytes) are only 2-byte aligned: they are read with `ld_words`. IQ6_K decodes
// with the iq6nl table, as the CPU does.
#pragma once

#include "grids.cuh"

namespace iqrs {

/// The block of unit `u`, the unit's sub-block `ib`, and the block's scale and shift bits.
struct KBlock {
    const uint8_t* b;
    int ib;
    float d;
    uint32_t sh0, sh1;  // shift bits of the unit's two halves

    __device__ __forceinline__ KBlock(const uint8_t* row, int u, int block_bytes) : b(row + (u >> 3) * block_bytes), ib(u & 7) {
        d = ld_f16(b);
        const uint32_t extra = ld_u16(b + 2);
        sh0 = (extra >> (2 * ib)) & 1;
        sh1 = (extra >> (2 * ib + 1)) & 1;
    }

    /// Nibble `h` of scale byte `off + ib` (the 4-bit scale fields of the unit's halves).
    __device__ __forceinline__ int nibble(int off, int h) const { return (ld_u8(b + off + ib) >> (4 * h)) & 15; }
};

struct IQ2K {
    static constexpr int BLOCK_BYTES = 76;
    static constexpr int ROWS_PER_GROUP = 1;
    static constexpr bool SPLIT_SCALE = true;
    static constexpr int MMV_PREFETCH_FROM = 4;  // mat-vec: L2 prefetch of the rows from 4 vectors (kernels.cuh)
    static constexpr int MMQ_UNITS = 8;      // units a quantized-matmul step takes (mmq.cuh)
    static constexpr int MMQ_BLOCKS_16 = 3;  // blocks an SM of its 16-vector kernel (mmq.cuh)
    static constexpr int MMV_ORDER = PAIRS_IN_EIGHTS;  // mat-vec activations (kernels.cuh)

    template <int ORDER = NATURAL>
    static __device__ __forceinline__ Unit unit(const uint8_t* __restrict__ row, int, int u) {
        const KBlock k(row, u, BLOCK_BYTES);
        uint32_t idx[8];
#pragma unroll
        for (int j = 0; j < 8; ++j) idx[j] = (ld_u32(k.b + 12 + 32 * (k.ib >> 2) + 4 * j) >> (2 * (k.ib & 3))) & 0x03030303u;
        Unit x;
        iq2nl_values<ORDER>(idx, k.sh0, k.sh1, x);
        set_scales(x, k.d, k.nibble(4, 0) - 8, k.nibble(4, 1) - 8);
        return x;
    }
};

/// IQ3_K's scale from its 4-bit field and sign bit: ±(2f + 1).
__device__ __forceinline__ int iq3k_level(int f, uint32_t sign) {
    return sign ? -(2 * f + 1) : 2 * f + 1;
}

struct IQ3K {
    static constexpr int BLOCK_BYTES = 110;
    static constexpr int ROWS_PER_GROUP = 1;
    static constexpr bool SPLIT_SCALE = true;
    static constexpr int MMV_PREFETCH_FROM = 4;  // mat-vec: L2 prefetch of the rows from 4 vectors (kernels.cuh)
    static constexpr int MMQ_UNITS = 8;  // units a quantized-matmul step takes (mmq.cuh)
    static constexpr int MMV_BLOCKS_1 = 8;   // one-vector mat-vec: 64 registers (kernels.cuh)
    static constexpr int MMV_ORDER = PAIRS_IN_EIGHTS;  // mat-vec activations (kernels.cuh)

    template <int ORDER = NATURAL>
    static __device__ __forceinline__ Unit unit(const uint8_t* __restrict__ row, int, int u) {
        const KBlock k(row, u, BLOCK_BYTES);
        uint32_t idx[8], h[8];
        ld_words(k.b + 14 + 32 * (k.ib >> 2), idx);
        ld_words(k.b + 78, h);
#pragma unroll
        for (int j = 0; j < 8; ++j) idx[j] = ((idx[j] >> (2 * (k.ib & 3))) & 0x03030303u) | ((h[j] >> k.ib) & 0x01010101u) << 2;
        Unit x;
        iq3nl_values<ORDER>(idx, k.sh0, k.sh1, x);
        const uint32_t signs = ld_u16(k.b + 4) >> (2 * k.ib);
        set_scales(x, k.d, iq3k_level(k.nibble(6, 0), signs & 1), iq3k_level(k.nibble(6, 1), signs & 2));
        return x;
    }
};

/// IQ4_K / IQ5_K scales: a nibble of scales_l @8 and 2 high bits of scales_h @4, minus 32.
__device__ __forceinline__ void iq45k_scales(const KBlock& k, Unit& x) {
    const uint32_t hi = ld_u8(k.b + 4 + (k.ib >> 1)) >> (4 * (k.ib & 1));
    set_scales(x, k.d, int(k.nibble(8, 0) | (hi & 3) << 4) - 32, int(k.nibble(8, 1) | ((hi >> 2) & 3) << 4) - 32);
}

struct IQ4K {
    static constexpr int BLOCK_BYTES = 144;
    static constexpr int ROWS_PER_GROUP = 1;
    static constexpr bool SPLIT_SCALE = true;
    static constexpr int MMV_PREFETCH_FROM = 4;  // mat-vec: L2 prefetch of the rows from 4 vectors (kernels.cuh)
    static constexpr int MMV_ROWS_MANY = 2;  // mat-vec rows a warp for 4..8 vectors (kernels.cuh)
    static constexpr int MMV_BLOCKS_1 = 8;   // one-vector mat-vec: 64 registers (kernels.cuh)

    static __device__ __forceinline__ Unit unit(const uint8_t* __restrict__ row, int, int u) {
        const KBlock k(row, u, BLOCK_BYTES);
        // One 16-byte load: blocks of 144 bytes are 16-byte aligned when W is (the launch code
        // checks, rust/src/cuda/kernels.rs `weight_align`). The quantized matrix multiply measured
        // 1.05-1.27x faster than with four 4-byte loads (cuda/NOTES.md).
        const uint4 v = ld_u32x4(k.b + 16 + 16 * k.ib);
        const uint32_t c[4] = {v.x, v.y, v.z, v.w};
        Unit x;
        iq4k_values(c, k.sh0, k.sh1, x);
        iq45k_scales(k, x);
        return x;
    }
};

struct IQ5K {
    static constexpr int BLOCK_BYTES = 176;
    static constexpr int ROWS_PER_GROUP = 1;
    static constexpr bool SPLIT_SCALE = true;
    static constexpr int MMQ_UNITS = 8;      // units a quantized-matmul step takes (mmq.cuh)
    static constexpr int MMQ_BLOCKS_16 = 3;  // blocks an SM of its 16-vector kernel (mmq.cuh)
    static constexpr int MMV_BLOCKS_1 = 8;   // one-vector mat-vec: 64 registers (kernels.cuh)

    static __device__ __forceinline__ Unit unit(const uint8_t* __restrict__ row, int, int u) {
        const KBlock k(row, u, BLOCK_BYTES);
        uint32_t w[8], h[8], c[4];
        // 16-byte loads, as for IQ4_K (blocks of 176 bytes).
#pragma unroll
        for (int j = 0; j < 2; ++j) {
            const uint4 a = ld_u32x4(k.b + 16 + 32 * (k.ib >> 1) + 16 * j), e = ld_u32x4(k.b + 144 + 16 * j);
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                w[4 * j + i] = word_of(a, i);
                h[4 * j + i] = (word_of(e, i) >> k.ib) & 0x01010101u;
            }
        }
        pair_nibbles(w, k.ib & 1, c);
        Unit x;
        iq5nl_values(c, h, k.sh0, k.sh1, x);
        iq45k_scales(k, x);
        return x;
    }
};

struct IQ6K {
    static constexpr int BLOCK_BYTES = 212;
    static constexpr int ROWS_PER_GROUP = 1;
    static constexpr bool SPLIT_SCALE = true;
    static constexpr int MMQ_UNITS = 8;  // units a quantized-matmul step takes (mmq.cuh)
    static constexpr int MMV_BLOCKS_1 = 8;   // one-vector mat-vec: 64 registers (kernels.cuh)

    static __device__ __forceinline__ Unit unit(const uint8_t* __restrict__ row, int, int u) {
        const KBlock k(row, u, BLOCK_BYTES);
        uint32_t w[8], h[8], c[4];
#pragma unroll
        for (int j = 0; j < 8; ++j) {
            w[j] = ld_u32(k.b + 20 + 32 * (k.ib >> 1) + 4 * j);
            h[j] = (ld_u32(k.b + 148 + 32 * (k.ib >> 2) + 4 * j) >> (2 * (k.ib & 3))) & 0x03030303u;
        }
        pair_nibbles(w, k.ib & 1, c);
        Unit x;
        iq6nl_values(c, h, k.sh0, k.sh1, x);
        const uint32_t l = ld_u16(k.b + 4 + 2 * k.ib);  // two signed bytes
        set_scales(x, k.d, int(int8_t(l & 0xFF)), int(int8_t(l >> 8)));
        return x;
    }
};

}  // namespace iqrs
