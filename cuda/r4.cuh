// The row-interleaved types (FORMATS.md §8): IQ2_K_R4, IQ3_K_R4, IQ4_K_R4, IQ5_K_R4, IQ4_KS_R4.
// A group of 4 rows is `[row scales of rows 0..3 (IQ4_KS_R4: 4 f32)][R4 block 0] …`, an R4 block
// holding the 4 rows' data of one 256-column super-block. Unit `u` of row `r` (sub-block
// ib = u % 8 of R4 block u / 8) decodes to the base type's values and scales.
//
// IQ*_K_R4 blocks: d[4] (f16) @0, extra[8] @8, scales_h @16 (none for IQ2_K), scales_l[32] @S
// (S = 16, 24, 32 for IQ2/IQ3/IQ4-5), qs @S + 32, qh (IQ3: 128 bytes after qs[256]; IQ5: after
// qs[512]). The half h of the unit (16-weight sub-block 2·ib + h) has its shift in bit ib of
// extra[r + 4h] and its scale field at is = 8·ib + r + 4h: nibble is/32 of scales_l[is % 32];
// IQ3's sign bit is/8 of scales_h[is % 8]; IQ4/IQ5's high bits 2·(is/16) of scales_h[is % 16].
// IQ4_KS_R4 blocks: scales[32] @0 (row r's scale byte of sub-block ib at 4·ib + r), qs[512] @32.
//
// Indices of row r, sub-block ib:
// * 4-bit (IQ4/IQ5 K, IQ4_KS): word W_c at qs + 64·ib + 16·c + 4·r (c = 0..3); byte i holds
//   weight i + (0, 16, 4, 20)[c] in its low nibble and that + 8 in its high nibble. IQ5: bit k
//   of byte i of the word at qh + 16·ib + 4·r is bit 4 of weight i + (0, 8, 16, 24, 4, 12, 20, 28)[k].
// * 2-bit (IQ2/IQ3 K): crumb j of byte i of the word at qs + 32·ib + 4·r is weight i + 4j, of
//   the word 16 bytes on weight 16 + i + 4j; IQ3: bit k of byte i of the word at qh + 16·ib + 4·r
//   is bit 2 of weight i + 4k.
#pragma once

#include "grids.cuh"
#include "k.cuh"
#include "ks.cuh"

namespace iqrs {

/// The words W_0..W_3 of the 4-bit layout of one row and sub-block, regrouped as nibble-pair
/// words (grids.cuh): W0 holds weights 0..3 | 8..11, W1 16..19 | 24..27, W2 4..7 | 12..15,
/// W3 20..23 | 28..31 (low | high nibbles).
__device__ __forceinline__ void r4_nibble_pairs(const uint8_t* qs, int ib, int r, uint32_t (&c)[4]) {
    uint32_t w[4];
#pragma unroll
    for (int j = 0; j < 4; ++j) w[j] = ld_u32(qs + 64 * ib + 16 * j + 4 * r);
    c[0] = (w[0] & 0x0F0F0F0Fu) | ((w[1] << 4) & 0xF0F0F0F0u);
    c[1] = (w[2] & 0x0F0F0F0Fu) | ((w[3] << 4) & 0xF0F0F0F0u);
    c[2] = ((w[0] >> 4) & 0x0F0F0F0Fu) | (w[1] & 0xF0F0F0F0u);
    c[3] = ((w[2] >> 4) & 0x0F0F0F0Fu) | (w[3] & 0xF0F0F0F0u);
}

/// What the IQ*_K_R4 types share: the R4 block of a unit, its `ib`, row `r`, and row r's `d`.
struct R4Block {
    const uint8_t* b;
    int ib, r;
    float d;

    __device__ __forceinline__ R4Block(const uint8_t* group, int r, int u, int base_bytes)
        : b(group + (u >> 3) * 4 * base_bytes), ib(u & 7), r(r), d(ld_f16(b + 2 * r)) {}

    /// The shift bit of half `h`.
    __device__ __forceinline__ uint32_t shift(int h) const { return (__ldg(b + 8 + r + 4 * h) >> ib) & 1; }

    /// The 4-bit scale field of half `h` (scales_l at `off`).
    __device__ __forceinline__ int nibble(int off, int h) const {
        const int is = 8 * ib + r + 4 * h;
        return (__ldg(b + off + is % 32) >> (4 * (is / 32))) & 15;
    }

    /// Bits `2·(is/16)` of scales_h[is % 16] (IQ4_K, IQ5_K) of half `h`.
    __device__ __forceinline__ int high2(int h) const {
        const int is = 8 * ib + r + 4 * h;
        return (__ldg(b + 16 + is % 16) >> (2 * (is / 16))) & 3;
    }


    /// The index words of the 2-bit layout at `qs`.
    __device__ __forceinline__ void crumbs(int qs, uint32_t (&idx)[8]) const {
        const uint32_t lo = ld_u32(b + qs + 32 * ib + 4 * r), hi = ld_u32(b + qs + 32 * ib + 16 + 4 * r);
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            idx[j] = (lo >> (2 * j)) & 0x03030303u;
            idx[j + 4] = (hi >> (2 * j)) & 0x03030303u;
        }
    }
};

struct IQ2KR4 {
    static constexpr int ROWS_PER_GROUP = 4;
    static constexpr bool SPLIT_SCALE = true;

    static __device__ __forceinline__ Unit unit(const uint8_t* __restrict__ group, int r, int u) {
        const R4Block k(group, r, u, IQ2K::BLOCK_BYTES);
        uint32_t idx[8];
        k.crumbs(48, idx);
        Unit x;
        iq2nl_values(idx, k.shift(0), k.shift(1), x);
        set_scales(x, k.d, k.nibble(16, 0) - 8, k.nibble(16, 1) - 8);
        return x;
    }
};

struct IQ3KR4 {
    static constexpr int ROWS_PER_GROUP = 4;
    static constexpr bool SPLIT_SCALE = true;

    static __device__ __forceinline__ Unit unit(const uint8_t* __restrict__ group, int r, int u) {
        const R4Block k(group, r, u, IQ3K::BLOCK_BYTES);
        uint32_t idx[8];
        k.crumbs(56, idx);
        const uint32_t h = ld_u32(k.b + 312 + 16 * k.ib + 4 * r);
#pragma unroll
        for (int j = 0; j < 8; ++j) idx[j] |= ((h >> j) & 0x01010101u) << 2;
        Unit x;
        iq3nl_values(idx, k.shift(0), k.shift(1), x);
        // Sign of half h: bit is/8 = ib of scales_h[is % 8] = scales_h[r + 4h].
        const uint32_t s0 = (__ldg(k.b + 16 + r) >> k.ib) & 1, s1 = (__ldg(k.b + 20 + r) >> k.ib) & 1;
        set_scales(x, k.d, iq3k_level(k.nibble(24, 0), s0), iq3k_level(k.nibble(24, 1), s1));
        return x;
    }
};

struct IQ4KR4 {
    static constexpr int ROWS_PER_GROUP = 4;
    static constexpr bool SPLIT_SCALE = true;

    static __device__ __forceinline__ Unit unit(const uint8_t* __restrict__ group, int r, int u) {
        const R4Block k(group, r, u, IQ4K::BLOCK_BYTES);
        uint32_t c[4];
        r4_nibble_pairs(k.b + 64, k.ib, r, c);
        Unit x;
        iq4k_values(c, k.shift(0), k.shift(1), x);
        set_scales(x, k.d, (k.nibble(32, 0) | k.high2(0) << 4) - 32, (k.nibble(32, 1) | k.high2(1) << 4) - 32);
        return x;
    }
};

struct IQ5KR4 {
    static constexpr int ROWS_PER_GROUP = 4;
    static constexpr bool SPLIT_SCALE = true;

    static __device__ __forceinline__ Unit unit(const uint8_t* __restrict__ group, int r, int u) {
        const R4Block k(group, r, u, IQ5K::BLOCK_BYTES);
        uint32_t c[4], h[8];
        r4_nibble_pairs(k.b + 64, k.ib, r, c);
        const uint32_t hw = ld_u32(k.b + 576 + 16 * k.ib + 4 * r);
        // Bit 4 of weights 4m..4m+3 is bit (0, 4, 1, 5, 2, 6, 3, 7)[m] of the bytes of hw.
#pragma unroll
        for (int m = 0; m < 8; ++m) h[m] = (hw >> (m / 2 + 4 * (m % 2))) & 0x01010101u;
        Unit x;
        iq5nl_values(c, h, k.shift(0), k.shift(1), x);
        set_scales(x, k.d, (k.nibble(32, 0) | k.high2(0) << 4) - 32, (k.nibble(32, 1) | k.high2(1) << 4) - 32);
        return x;
    }
};

struct IQ4KSR4 {
    static constexpr int ROWS_PER_GROUP = 4;
    static constexpr bool SPLIT_SCALE = false;

    static __device__ __forceinline__ Unit unit(const uint8_t* __restrict__ group, int r, int u) {
        const uint8_t* b = group + 16 + (u >> 3) * 4 * IQ4KS::BLOCK_BYTES;
        const int ib = u & 7;
        uint32_t c[4];
        r4_nibble_pairs(b + 32, ib, r, c);
        return iq4ks_unit(ld_f32(group + 4 * r), __ldg(b + 4 * ib + r), c);
    }
};

}  // namespace iqrs
