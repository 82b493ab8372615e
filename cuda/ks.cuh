// The row-scale types (FORMATS.md §6): a row scale D at the head of every row (f32 for IQ4_KS,
// IQ4_KSS, IQ5_KS; f16 for IQ2_KS, IQ3_KS, IQ2_KL), then blocks of 256 weights with one integer
// scale L per 32-weight sub-block (= one unit), so weight = (D·L)·T[index] with one scale per unit.
//
// * IQ4_KS, IQ5_KS: per sub-block a scale byte: bits 1..7 give the odd scale L = (b & 0xFE) - 127,
//   bit 0 picks the plain or the shifted half of the grid (iq4k, iq5nl).
//   - IQ4_KS block (136 bytes): scales[8], then qs[128]; byte 16·ib + t of sub-block ib holds
//     weight t in its low nibble and weight t + 16 in its high nibble.
//   - IQ5_KS block (168 bytes): scales[8], qs[128], qh[32]; the 5-bit index of weight t is
//     nibble ib % 2 of qs[32·(ib/2) + t] plus bit ib of qh[t] as bit 4.
// * IQ4_KSS block (128 bytes): 64 u16 words, 8 per sub-block. Word k carries bit k of the scale
//   byte in bit 0 and, in bits 1..15, the prefix-XOR code of the even-parity 16-bit index group
//   that IQ4_KS stores in its bytes 2k and 2k + 1 (decoded as a ^ (a >> 1), a = word & 0xFFFE).
// * IQ2_KS block (70 bytes): extra (u16), scales[4], qs[64]. L + 16 = nibble ib % 2 of
//   scales[ib/2] plus bit 8 + ib of extra as bit 4; bit ib of extra shifts iq2nl; the index of
//   weight t is bits 2·(ib%4) of qs[32·(ib/4) + t].
// * IQ3_KS block (102 bytes): extra (u16), scales[4], qs[64], qh[32]. L + 16 = nibble ib / 4 of
//   scales[ib % 4] plus bit ib of extra as bit 4; bit 8 + ib of extra shifts iq3nl; the index
//   is bits 2·(ib%4) of qs[32·(ib/4) + t] plus bit ib of qh[t] as bit 2.
// * IQ2_KL block (86 bytes): scales_h (u16), scales_l[4], qs[64], qh[16]. L + 32 = nibble ib / 4
//   of scales_l[ib % 4] plus bits 2·ib..2·ib+1 of scales_h as bits 4..5; weights 2p, 2p + 1 are
//   the coordinates of grid point g = nibble ib % 2 of qs[16·(ib/2) + p] plus bit ib of qh[p] as
//   bit 4.
#pragma once

#include "grids.cuh"

namespace iqrs {

/// Decodes an IQ4_KS sub-block from the row scale, its scale byte and its 16 index bytes (as
/// four words: word k = bytes 4k..4k+3, i.e. weights 4k..4k+3 and 4k+16..4k+19), the values in
/// `ORDER`: NATURAL, or HALVES_PAIRED as the look-ups give them (the mat-vec's).
template <int ORDER = NATURAL>
__device__ __forceinline__ Unit iq4ks_unit(float row_scale, uint32_t sbyte, const uint32_t (&qs)[4]) {
    static_assert(ORDER == NATURAL || ORDER == HALVES_PAIRED);
    uint32_t t[4];
    iq4k_table(sbyte & 1, t);
    Unit x;
#pragma unroll
    for (int k = 0; k < 4; ++k) {
        if constexpr (ORDER == HALVES_PAIRED) {
            lookup16_pairs(qs[k], t, x.q[2 * k], x.q[2 * k + 1]);
        } else {
            lookup16(qs[k], t, x.q[k], x.q[k + 4]);
        }
    }
    set_scale(x, row_scale, int(sbyte & 0xFE) - 127);
    return x;
}

struct IQ4KS {
    static constexpr int BLOCK_BYTES = 136;
    static constexpr int ROWS_PER_GROUP = 1;
    static constexpr bool SPLIT_SCALE = false;
    static constexpr int MMV_PREFETCH_FROM = 4;  // mat-vec: L2 prefetch of the rows from 4 vectors (kernels.cuh)
    static constexpr int MMV_ROWS_MANY = 2;  // mat-vec rows a warp for 4..8 vectors (kernels.cuh)
    static constexpr int MMV_BLOCKS_1 = 8;   // one-vector mat-vec: 64 registers (kernels.cuh)

    static constexpr int MMV_ORDER = HALVES_PAIRED;  // mat-vec activations (kernels.cuh)

    template <int ORDER = NATURAL>
    static __device__ __forceinline__ Unit unit(const uint8_t* __restrict__ row, int, int u) {
        const uint8_t* b = row + 4 + (u >> 3) * BLOCK_BYTES;
        const int ib = u & 7;
        uint32_t qs[4];
#pragma unroll
        for (int k = 0; k < 4; ++k) qs[k] = ld_u32(b + 8 + 16 * ib + 4 * k);
        return iq4ks_unit<ORDER>(ld_f32(row), ld_u8(b + ib), qs);
    }
};

struct IQ4KSS {
    static constexpr int BLOCK_BYTES = 128;
    static constexpr int ROWS_PER_GROUP = 1;
    static constexpr bool SPLIT_SCALE = false;
    static constexpr int MMV_PREFETCH_FROM = 4;  // mat-vec: L2 prefetch of the rows from 4 vectors (kernels.cuh)
    static constexpr int MMV_ROWS_MANY = 2;  // mat-vec rows a warp for 4..8 vectors (kernels.cuh)
    static constexpr int MMV_BLOCKS_1 = 8;   // one-vector mat-vec: 64 registers (kernels.cuh)

    static constexpr int MMV_ORDER = HALVES_PAIRED;  // mat-vec activations (kernels.cuh)

    template <int ORDER = NATURAL>
    static __device__ __forceinline__ Unit unit(const uint8_t* __restrict__ row, int, int u) {
        const uint8_t* b = row + 4 + (u >> 3) * BLOCK_BYTES + 16 * (u & 7);
        uint32_t qs[4];
        uint32_t bits = 0;  // scale-byte bit 2k at bit 2k, bit 2k+1 at bit 2k+16
#pragma unroll
        for (int k = 0; k < 4; ++k) {
            const uint32_t w = ld_u32(b + 4 * k);  // words 2k (low half) and 2k + 1
            bits |= (w & 0x00010001u) << (2 * k);
            const uint32_t a = w & 0xFFFEFFFEu;
            qs[k] = a ^ (a >> 1);  // bit 16 of a is clear, so the halves do not mix
        }
        return iq4ks_unit<ORDER>(ld_f32(row), (bits | bits >> 15) & 0xFF, qs);
    }
};

struct IQ5KS {
    static constexpr int BLOCK_BYTES = 168;
    static constexpr int ROWS_PER_GROUP = 1;
    static constexpr bool SPLIT_SCALE = false;
    static constexpr int MMV_BLOCKS_1 = 8;   // one-vector mat-vec: 64 registers (kernels.cuh)

    static __device__ __forceinline__ Unit unit(const uint8_t* __restrict__ row, int, int u) {
        const uint8_t* b = row + 4 + (u >> 3) * BLOCK_BYTES;
        const int ib = u & 7;
        uint32_t w[8], h[8], c[4];
#pragma unroll
        for (int k = 0; k < 8; ++k) {
            w[k] = ld_u32(b + 8 + 32 * (ib >> 1) + 4 * k);
            h[k] = (ld_u32(b + 136 + 4 * k) >> ib) & 0x01010101u;
        }
        pair_nibbles(w, ib & 1, c);
        const uint32_t sbyte = ld_u8(b + ib);
        Unit x;
        iq5nl_values(c, h, sbyte & 1, sbyte & 1, x);
        set_scale(x, ld_f32(row), int(sbyte & 0xFE) - 127);
        return x;
    }
};

struct IQ2KS {
    static constexpr int BLOCK_BYTES = 70;
    static constexpr int ROWS_PER_GROUP = 1;
    static constexpr bool SPLIT_SCALE = false;
    static constexpr int MMV_PREFETCH_FROM = 4;  // mat-vec: L2 prefetch of the rows from 4 vectors (kernels.cuh)
    static constexpr int MMV_BLOCKS_1 = 8;   // one-vector mat-vec: 64 registers (kernels.cuh)
    static constexpr int MMV_ORDER = PAIRS_IN_EIGHTS;  // mat-vec activations (kernels.cuh)

    template <int ORDER = NATURAL>
    static __device__ __forceinline__ Unit unit(const uint8_t* __restrict__ row, int, int u) {
        const uint8_t* b = row + 2 + (u >> 3) * BLOCK_BYTES;
        const int ib = u & 7;
        uint32_t idx[8];
        ld_words(b + 6 + 32 * (ib >> 2), idx);
#pragma unroll
        for (int k = 0; k < 8; ++k) idx[k] = (idx[k] >> (2 * (ib & 3))) & 0x03030303u;
        const uint32_t extra = ld_u16(b);
        const uint32_t sh = (extra >> ib) & 1;
        Unit x;
        iq2nl_values<ORDER>(idx, sh, sh, x);
        const int l = int(((ld_u8(b + 2 + (ib >> 1)) >> (4 * (ib & 1))) & 15) | ((extra >> (8 + ib)) & 1) << 4) - 16;
        set_scale(x, ld_f16(row), l);
        return x;
    }
};

struct IQ3KS {
    static constexpr int BLOCK_BYTES = 102;
    static constexpr int ROWS_PER_GROUP = 1;
    static constexpr bool SPLIT_SCALE = false;
    static constexpr int MMV_PREFETCH_FROM = 4;  // mat-vec: L2 prefetch of the rows from 4 vectors (kernels.cuh)
    static constexpr int MMV_BLOCKS_1 = 8;   // one-vector mat-vec: 64 registers (kernels.cuh)
    static constexpr int MMV_ORDER = PAIRS_IN_EIGHTS;  // mat-vec activations (kernels.cuh)

    template <int ORDER = NATURAL>
    static __device__ __forceinline__ Unit unit(const uint8_t* __restrict__ row, int, int u) {
        const uint8_t* b = row + 2 + (u >> 3) * BLOCK_BYTES;
        const int ib = u & 7;
        uint32_t idx[8], h[8];
        ld_words(b + 6 + 32 * (ib >> 2), idx);
        ld_words(b + 70, h);
#pragma unroll
        for (int k = 0; k < 8; ++k) idx[k] = ((idx[k] >> (2 * (ib & 3))) & 0x03030303u) | ((h[k] >> ib) & 0x01010101u) << 2;
        const uint32_t extra = ld_u16(b);
        const uint32_t sh = (extra >> (8 + ib)) & 1;
        Unit x;
        iq3nl_values<ORDER>(idx, sh, sh, x);
        const int l = int(((ld_u8(b + 2 + (ib & 3)) >> (4 * (ib >> 2))) & 15) | ((extra >> ib) & 1) << 4) - 16;
        set_scale(x, ld_f16(row), l);
        return x;
    }
};

struct IQ2KL {
    static constexpr int BLOCK_BYTES = 86;
    static constexpr int ROWS_PER_GROUP = 1;
    static constexpr bool SPLIT_SCALE = false;
    static constexpr int MMV_PREFETCH_FROM = 4;  // mat-vec: L2 prefetch of the rows from 4 vectors (kernels.cuh)
    static constexpr int MMV_BLOCKS_1 = 8;   // one-vector mat-vec: 64 registers (kernels.cuh)

    static __device__ __forceinline__ Unit unit(const uint8_t* __restrict__ row, int, int u) {
        const uint8_t* b = row + 2 + (u >> 3) * BLOCK_BYTES;
        const int ib = u & 7;
        uint32_t g[4], h[4], codes[2][4];
        ld_words(b + 6 + 16 * (ib >> 1), g);  // pairs 4k..4k+3 in word k
        ld_words(b + 70, h);
        iq2kl_codes(codes);
        const uint32_t v0 = pack4(-63, -40, -23, -10), v1 = pack4(1, 13, 28, 47);  // plain iq3nl
        Unit x;
#pragma unroll
        for (int k = 0; k < 2; ++k) {
            // Pairs 4k..4k+3 in the low nibbles, pairs 4k+8..4k+11 in the high nibbles.
            const int s = 4 * (ib & 1);
            const uint32_t c = ((g[k] >> s) & 0x0F0F0F0Fu) | (((g[k + 2] >> s) << 4) & 0xF0F0F0F0u);
            const uint32_t hlo = (h[k] >> ib) & 0x01010101u, hhi = (h[k + 2] >> ib) & 0x01010101u;
            int lo, hi;  // the codes of pairs 4k..4k+3, 4k+8..4k+11
            lookup32(c, hlo, hhi, codes, lo, hi);
            // Two pairs' codes are the selector of their four values (weights 2p..2p+3).
            x.q[2 * k] = int(prmt(v0, v1, lo));
            x.q[2 * k + 1] = int(prmt(v0, v1, uint32_t(lo) >> 16));
            x.q[2 * k + 4] = int(prmt(v0, v1, hi));
            x.q[2 * k + 5] = int(prmt(v0, v1, uint32_t(hi) >> 16));
        }
        const int l = int(((ld_u8(b + 2 + (ib & 3)) >> (4 * (ib >> 2))) & 15) | ((ld_u16(b) >> (2 * ib)) & 3) << 4) - 32;
        set_scale(x, ld_f16(row), l);
        return x;
    }
};

}  // namespace iqrs
