// The non-linear grids of the IQK formats (FORMATS.md §3) as packed int8 words (entry i in byte
// i % 4 of word i / 4), and the decoders from grid indices to a unit's values that the format
// families share. Every grid's shifted half is its plain half plus a constant (iq2nl +5, iq3nl
// +4, iq4k +4, iq5nl +2, iq6nl +1). iq2nl is looked up whole (the shift as an index bit); iq3nl
// by the half each pair of same-half words selects; the larger grids in their plain half
// (IQ4_KS: the half its scale byte selects), the constant added after: a plain word add where
// no plain value's byte can carry (iq4k, iq6nl), byte by byte for iq5nl, which holds -1. The
// `_R4` decoders select tables too (r4.cuh).
//
// Index words: `idx[k]` holds the grid indices of weights 4k..4k+3 of a unit, one per byte.
// Nibble-pair words (the IQ4_KS layout): `c[k]` holds the low 4 index bits of weights 4k..4k+3
// in its low nibbles and of weights 4k+16..4k+19 in its high nibbles; `h[k]` (k = 0..7) holds
// the index bits above those, one byte per weight of word k.
#pragma once

#include "common.cuh"

namespace iqrs {

/// iq2nl, both halves (8 entries).
__device__ __forceinline__ void iq2nl_table(uint32_t (&t)[2]) {
    t[0] = pack4(-31, -13, 1, 17);
    t[1] = pack4(-26, -8, 6, 22);
}

/// iq3nl, both halves (16 entries).
__device__ __forceinline__ void iq3nl_table(uint32_t (&t)[4]) {
    t[0] = pack4(-63, -40, -23, -10);
    t[1] = pack4(1, 13, 28, 47);
    t[2] = pack4(-59, -36, -19, -6);
    t[3] = pack4(5, 17, 32, 51);
}

/// The IQ4K grid half a scale byte selects (bit 0: the shifted half).
__device__ __forceinline__ void iq4k_table(uint32_t shifted, uint32_t (&t)[4]) {
    t[0] = shifted ? pack4(-123, -100, -79, -61) : pack4(-127, -104, -83, -65);
    t[1] = shifted ? pack4(-45, -31, -18, -6) : pack4(-49, -35, -22, -10);
    t[2] = shifted ? pack4(5, 17, 29, 42) : pack4(1, 13, 25, 38);
    t[3] = shifted ? pack4(57, 73, 93, 117) : pack4(53, 69, 89, 113);
}

/// iq5nl, plain half (32 entries).
__device__ __forceinline__ void iq5nl_table(uint32_t (&t)[2][4]) {
    t[0][0] = pack4(-126, -114, -103, -92);
    t[0][1] = pack4(-83, -74, -65, -57);
    t[0][2] = pack4(-50, -43, -36, -30);
    t[0][3] = pack4(-24, -18, -12, -6);
    t[1][0] = pack4(-1, 5, 11, 17);
    t[1][1] = pack4(23, 29, 36, 43);
    t[1][2] = pack4(51, 59, 68, 77);
    t[1][3] = pack4(87, 97, 109, 121);
}

/// The iq5nl half a shift bit selects (the shifted half is the plain one + 2).
__device__ __forceinline__ void iq5nl_table(uint32_t shifted, uint32_t (&t)[2][4]) {
    t[0][0] = shifted ? pack4(-124, -112, -101, -90) : pack4(-126, -114, -103, -92);
    t[0][1] = shifted ? pack4(-81, -72, -63, -55) : pack4(-83, -74, -65, -57);
    t[0][2] = shifted ? pack4(-48, -41, -34, -28) : pack4(-50, -43, -36, -30);
    t[0][3] = shifted ? pack4(-22, -16, -10, -4) : pack4(-24, -18, -12, -6);
    t[1][0] = shifted ? pack4(1, 7, 13, 19) : pack4(-1, 5, 11, 17);
    t[1][1] = shifted ? pack4(25, 31, 38, 45) : pack4(23, 29, 36, 43);
    t[1][2] = shifted ? pack4(53, 61, 70, 79) : pack4(51, 59, 68, 77);
    t[1][3] = shifted ? pack4(89, 99, 111, 123) : pack4(87, 97, 109, 121);
}

/// The IQ2_KL 2-D grid (FORMATS.md §14) as codes (point g in byte g % 4 of `t[g / 16][g / 4 % 4]`):
/// the index of the point's first coordinate in the plain iq3nl half in the low nibble, of its
/// second in the high nibble, so the codes of two consecutive points, as 16 bits, are the `prmt`
/// selector of their four values in that half.
__device__ __forceinline__ void iq2kl_codes(uint32_t (&t)[2][4]) {
    t[0][0] = 0x31015020u;
    t[0][1] = 0x22127151u;
    t[0][2] = 0x03625242u;
    t[0][3] = 0x24735343u;
    t[1][0] = 0x64544434u;
    t[1][1] = 0x45352515u;
    t[1][2] = 0x46260655u;
    t[1][3] = 0x57277666u;
}

/// 5-bit indices in a 32-entry table: the low 4 bits in the nibbles of `c` (as for `lookup16`),
/// bit 4 in the bytes of `hlo` (low nibbles) and `hhi` (high nibbles).
__device__ __forceinline__ void lookup32(uint32_t c, uint32_t hlo, uint32_t hhi, const uint32_t (&t)[2][4], int& lo, int& hi) {
    int alo, ahi, blo, bhi;
    lookup16(c, t[0], alo, ahi);
    lookup16(c, t[1], blo, bhi);
    lo = blend_bytes(alo, blo, hlo);
    hi = blend_bytes(ahi, bhi, hhi);
}

/// Values of 2-bit indices (iq2nl; IQ2_K, IQ2_KS, IQ2_K_R4): `sh0`/`sh1` select the shifted half
/// for weights 0..15 / 16..31 (index bit 2). `ORDER`: NATURAL, or PAIRS_IN_EIGHTS (the
/// mat-vec's), where two index words of one half are looked up at a time and left as they come.
template <int ORDER = NATURAL>
__device__ __forceinline__ void iq2nl_values(const uint32_t (&idx)[8], uint32_t sh0, uint32_t sh1, Unit& x) {
    static_assert(ORDER == NATURAL || ORDER == PAIRS_IN_EIGHTS);
    uint32_t t[2];
    iq2nl_table(t);
    if constexpr (ORDER == PAIRS_IN_EIGHTS) {
        const uint32_t s0 = sh0 * 0x44444444u, s1 = sh1 * 0x44444444u;
#pragma unroll
        for (int k = 0; k < 4; k += 2) {
            lookup8_pairs(idx[k] | idx[k + 1] << 4 | s0, t, x.q[k], x.q[k + 1]);
            lookup8_pairs(idx[k + 4] | idx[k + 5] << 4 | s1, t, x.q[k + 4], x.q[k + 5]);
        }
    } else {
        const uint32_t shift = sh0 * 0x04040404u | sh1 * 0x40404040u;
#pragma unroll
        for (int k = 0; k < 4; ++k) lookup8(idx[k] | idx[k + 4] << 4 | shift, t, x.q[k], x.q[k + 4]);
    }
}

/// Values of 3-bit indices (iq3nl; IQ3_K, IQ3_KS, IQ3_K_R4), as [`iq2nl_values`]: two index
/// words of one half at a time, looked up in that half's 8 entries (plain or shifted).
template <int ORDER = NATURAL>
__device__ __forceinline__ void iq3nl_values(const uint32_t (&idx)[8], uint32_t sh0, uint32_t sh1, Unit& x) {
    static_assert(ORDER == NATURAL || ORDER == PAIRS_IN_EIGHTS);
    uint32_t t[4];
    iq3nl_table(t);
    const uint32_t t0[2] = {sh0 ? t[2] : t[0], sh0 ? t[3] : t[1]}, t1[2] = {sh1 ? t[2] : t[0], sh1 ? t[3] : t[1]};
#pragma unroll
    for (int k = 0; k < 4; k += 2) {
        if constexpr (ORDER == PAIRS_IN_EIGHTS) {
            lookup8_pairs(idx[k] | idx[k + 1] << 4, t0, x.q[k], x.q[k + 1]);
            lookup8_pairs(idx[k + 4] | idx[k + 5] << 4, t1, x.q[k + 4], x.q[k + 5]);
        } else {
            lookup8(idx[k] | idx[k + 1] << 4, t0, x.q[k], x.q[k + 1]);
            lookup8(idx[k + 4] | idx[k + 5] << 4, t1, x.q[k + 4], x.q[k + 5]);
        }
    }
}

/// Values of 4-bit indices in nibble-pair words (iq4k; IQ4_K), the halves shifted by `sh0`/`sh1`.
/// The shift (+4) is a plain add of the words: no plain iq4k value, as a byte, is above 0xF6, so
/// no byte carries into the next.
__device__ __forceinline__ void iq4k_values(const uint32_t (&c)[4], uint32_t sh0, uint32_t sh1, Unit& x) {
    uint32_t t[4];
    iq4k_table(0, t);
    const uint32_t a0 = sh0 * 0x04040404u, a1 = sh1 * 0x04040404u;
#pragma unroll
    for (int k = 0; k < 4; ++k) {
        lookup16(c[k], t, x.q[k], x.q[k + 4]);
        x.q[k] = int(uint32_t(x.q[k]) + a0);
        x.q[k + 4] = int(uint32_t(x.q[k + 4]) + a1);
    }
}

/// Values of 5-bit indices (iq5nl; IQ5_K, IQ5_KS): nibble-pair words and bit 4 in `h`. (The
/// plain half holds -1, so the shift, +2, is added byte by byte.)
__device__ __forceinline__ void iq5nl_values(const uint32_t (&c)[4], const uint32_t (&h)[8], uint32_t sh0, uint32_t sh1, Unit& x) {
    uint32_t t[2][4];
    iq5nl_table(t);
#pragma unroll
    for (int k = 0; k < 4; ++k) {
        lookup32(c[k], h[k], h[k + 4], t, x.q[k], x.q[k + 4]);
        x.q[k] = add_i8x4(x.q[k], 2 * sh0);
        x.q[k + 4] = add_i8x4(x.q[k + 4], 2 * sh1);
    }
}

/// iq6nl's plain half as bytes in global memory, for [`lookup64`]: one aligned 64-byte table, so
/// a warp's 32 loads from it touch one cache line, one pass through L1 each.
static __device__ __align__(128) const uint8_t IQ6NL_BYTES[64] = {
    129, 135, 141, 147, 152, 158, 163, 168, 172, 177, 182, 186, 190, 194, 198, 202,  // -127 .. -54
    205, 209, 212, 216, 219, 222, 225, 228, 231, 234, 237, 240, 243, 245, 248, 251,  // -51 .. -5
    254, 0, 3, 6, 9, 12, 14, 17, 20, 23, 27, 30, 33, 36, 40, 44,                     // -2 .. 44
    47, 51, 55, 59, 63, 68, 72, 77, 82, 87, 92, 98, 103, 109, 115, 121,              // 47 .. 121
};

/// The four 6-bit indices in the bytes of `i` looked up in iq6nl's plain half: a byte load each
/// (a 64-entry table by `prmt` costs 8 byte permutes and 7 selects for 4 values; loads that hit
/// one L1 line are cheaper for the issue-bound decoders).
__device__ __forceinline__ uint32_t lookup64(uint32_t i) {
    const uint32_t b0 = __ldg(IQ6NL_BYTES + (i & 0xFF)), b1 = __ldg(IQ6NL_BYTES + ((i >> 8) & 0xFF));
    const uint32_t b2 = __ldg(IQ6NL_BYTES + ((i >> 16) & 0xFF)), b3 = __ldg(IQ6NL_BYTES + (i >> 24));
    return prmt(prmt(b0, b1, 0x0040), prmt(b2, b3, 0x0040), 0x5410);
}

/// Values of 6-bit indices (iq6nl; IQ6_K): nibble-pair words and bits 4..5 in `h`.
__device__ __forceinline__ void iq6nl_values(const uint32_t (&c)[4], const uint32_t (&h)[8], uint32_t sh0, uint32_t sh1, Unit& x) {
#pragma unroll
    for (int k = 0; k < 4; ++k) {
        const uint32_t lo = (c[k] & 0x0F0F0F0Fu) | (h[k] & 0x03030303u) << 4;
        const uint32_t hi = ((c[k] >> 4) & 0x0F0F0F0Fu) | (h[k + 4] & 0x03030303u) << 4;
        // the shift (+1) as a plain add: no plain iq6nl value is -1, so no byte carries
        x.q[k] = int(lookup64(lo) + sh0 * 0x01010101u);
        x.q[k + 4] = int(lookup64(hi) + sh1 * 0x01010101u);
    }
}

/// The nibble-pair words of a unit whose 4-bit indices are nibble `n` of 32 bytes, one per weight
/// (`w[k]`: weights 4k..4k+3; the IQ5_K/IQ6_K/IQ5_KS layout).
__device__ __forceinline__ void pair_nibbles(const uint32_t (&w)[8], int n, uint32_t (&c)[4]) {
    const int s = 4 * n;
#pragma unroll
    for (int k = 0; k < 4; ++k) c[k] = ((w[k] >> s) & 0x0F0F0F0Fu) | (((w[k + 4] >> s) << 4) & 0xF0F0F0F0u);
}

}  // namespace iqrs
