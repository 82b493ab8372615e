// The row-interleaved types (FORMATS.md §8): IQ2_K_R4, IQ3_K_R4, IQ4_K_R4, IQ5_K_R4, IQ4_KS_R4,
// IQ5_KS_R4.
// A group of 4 rows is `[row scales of rows 0..3 (IQ4_KS_R4: 4 f32)][R4 block 0] …`, an R4 block
// holding the 4 rows' data of one 256-column super-block (IQ*_KS_R4: 4 f32 row scales first). Unit `u` of row `r` (sub-block
// ib = u % 8 of R4 block u / 8) decodes to the base type's values and scales.
//
// IQ*_K_R4 blocks: d[4] (f16) @0, extra[8] @8, scales_h @16 (none for IQ2_K), scales_l[32] @S
// (S = 16, 24, 32 for IQ2/IQ3/IQ4-5), qs @S + 32, qh (IQ3: 128 bytes after qs[256]; IQ5: after
// qs[512]). The half h of the unit (16-weight sub-block 2·ib + h) has its shift in bit ib of
// extra[r + 4h] and its scale field at is = 8·ib + r + 4h: nibble is/32 of scales_l[is % 32];
// IQ3's sign bit is/8 of scales_h[is % 8]; IQ4/IQ5's high bits 2·(is/16) of scales_h[is % 16].
// IQ4_KS_R4 blocks: scales[32] @0 (row r's scale byte of sub-block ib at 4·ib + r), qs[512] @32;
// IQ5_KS_R4 blocks add qh[128] @544.
//
// The scale fields of a sub-block's 4 rows are adjacent (byte r + 4h of 8), and so are their index
// words (word r of 16 bytes): `unit()` (dequantize) reads row r's bytes, `group_units()` (mat-vec)
// reads all 4 rows' with 8- and 16-byte loads (groups of IQ3_K_R4 are only 8-byte aligned); both
// decode a row with the same function.
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

/// Looks up the words W_0..W_3 of the 4-bit layout of one row and sub-block as they are (W0:
/// weights 0..3 | 8..11 in low | high nibbles, W1: 16..19 | 24..27, W2: 4..7 | 12..15, W3:
/// 20..23 | 28..31): W0 and W2 hold the unit's first half, W1 and W3 its second, so each half
/// can be looked up in its own table (`t0`, `t1`, plain or shifted). The values in `ORDER`:
/// NATURAL, or PAIRS_IN_HALVES as the look-ups give them (the mat-vec's).
template <int ORDER = NATURAL>
__device__ __forceinline__ void r4_lookup16(const uint32_t (&w)[4], const uint32_t (&t0)[4], const uint32_t (&t1)[4], Unit& x) {
    static_assert(ORDER == NATURAL || ORDER == PAIRS_IN_HALVES);
    if constexpr (ORDER == PAIRS_IN_HALVES) {
        lookup16_pairs(w[0], t0, x.q[0], x.q[1]);
        lookup16_pairs(w[2], t0, x.q[2], x.q[3]);
        lookup16_pairs(w[1], t1, x.q[4], x.q[5]);
        lookup16_pairs(w[3], t1, x.q[6], x.q[7]);
    } else {
        lookup16(w[0], t0, x.q[0], x.q[2]);
        lookup16(w[2], t0, x.q[1], x.q[3]);
        lookup16(w[1], t1, x.q[4], x.q[6]);
        lookup16(w[3], t1, x.q[5], x.q[7]);
    }
}

/// As [`r4_lookup16`] for 5-bit indices, bit 4 of each weight from the row's qh word `hw`: bit 4
/// of weights 4m..4m+3 is bit (0, 4, 1, 5, 2, 6, 3, 7)[m] of its bytes.
__device__ __forceinline__ void r4_lookup32(const uint32_t (&w)[4], uint32_t hw, const uint32_t (&t0)[2][4], const uint32_t (&t1)[2][4], Unit& x) {
    uint32_t h[8];
#pragma unroll
    for (int m = 0; m < 8; ++m) h[m] = (hw >> (m / 2 + 4 * (m % 2))) & 0x01010101u;
    lookup32(w[0], h[0], h[2], t0, x.q[0], x.q[2]);
    lookup32(w[2], h[1], h[3], t0, x.q[1], x.q[3]);
    lookup32(w[1], h[4], h[6], t1, x.q[4], x.q[6]);
    lookup32(w[3], h[5], h[7], t1, x.q[5], x.q[7]);
}

/// The index words of the 2-bit layout of one row from its words at qs + 32·ib (`lo`) and 16 on (`hi`).
__device__ __forceinline__ void r4_crumbs(uint32_t lo, uint32_t hi, uint32_t (&idx)[8]) {
#pragma unroll
    for (int j = 0; j < 4; ++j) {
        idx[j] = (lo >> (2 * j)) & 0x03030303u;
        idx[j + 4] = (hi >> (2 * j)) & 0x03030303u;
    }
}

/// Row r's word of 4 rows' words at `p` (16 bytes): word r.
__device__ __forceinline__ uint32_t row_word(const uint8_t* p, int r) {
    return ld_u32(p + 4 * r);
}

/// The 4 rows' words at `p`, 16-byte aligned if `A16`, else 8-byte aligned.
template <bool A16>
__device__ __forceinline__ uint4 rows_words(const uint8_t* p) {
    if constexpr (A16) {
        return ld_u32x4(p);
    } else {
        const uint2 a = ld_u32x2(p), b = ld_u32x2(p + 8);
        return make_uint4(a.x, a.y, b.x, b.y);
    }
}

/// Where an IQ*_K_R4 block keeps the high bits of its scale fields (IQ2: none; IQ3: a sign;
/// IQ4, IQ5: two bits).
enum class R4High { None, Sign, Two };

/// The scale fields of sub-block `ib` of an IQ*_K_R4 block for its 4 rows, four 8-byte loads:
/// the f16 `d` of row r at bytes 2r..2r+1, its half h's shift byte, low-nibble byte and high-bits
/// byte at byte r + 4h.
template <R4High HIGH>
struct R4Scales {
    uint2 d, extra, lo, hi;
    int ib;

    /// `b`: the R4 block; `lo_off`: offset of scales_l.
    __device__ __forceinline__ R4Scales(const uint8_t* b, int ib, int lo_off)
        : d(ld_u32x2(b)), extra(ld_u32x2(b + 8)), lo(ld_u32x2(b + lo_off + 8 * (ib & 3))), hi(make_uint2(0, 0)), ib(ib) {
        if constexpr (HIGH == R4High::Sign) hi = ld_u32x2(b + 16);
        if constexpr (HIGH == R4High::Two) hi = ld_u32x2(b + 16 + 8 * (ib & 1));
    }

    static __device__ __forceinline__ uint32_t byte(const uint2& v, int r, int h) { return ((h ? v.y : v.x) >> (8 * r)) & 0xFF; }

    __device__ __forceinline__ float row_d(int r) const {
        const uint32_t w = r & 2 ? d.y : d.x;
        return __half2float(__ushort_as_half(static_cast<unsigned short>(w >> (16 * (r & 1)))));
    }

    __device__ __forceinline__ uint32_t shift(int r, int h) const { return (byte(extra, r, h) >> ib) & 1; }

    /// The integer scale L of row r, half h.
    __device__ __forceinline__ int level(int r, int h) const {
        const int f = int(byte(lo, r, h) >> (4 * (ib >> 2))) & 15;
        if constexpr (HIGH == R4High::None) {
            return f - 8;
        } else if constexpr (HIGH == R4High::Sign) {
            return iq3k_level(f, (byte(hi, r, h) >> ib) & 1);
        } else {
            return (f | int((byte(hi, r, h) >> (2 * (ib >> 1))) & 3) << 4) - 32;
        }
    }

    __device__ __forceinline__ void scales(int r, Unit& x) const { set_scales(x, row_d(r), level(r, 0), level(r, 1)); }
};

/// The R4 block of unit `u` of a group of a type whose base blocks have `base_bytes`.
__device__ __forceinline__ const uint8_t* r4_block(const uint8_t* group, int u, int base_bytes) {
    return group + (u >> 3) * 4 * base_bytes;
}

struct IQ2KR4 {
    static constexpr int GROUP_BLOCK_BYTES = 4 * IQ2K::BLOCK_BYTES;  // one block of the group (mmw.cuh)
    static constexpr int ROWS_PER_GROUP = 4;
    static constexpr bool SPLIT_SCALE = true;
    static constexpr int MMV_ORDER = PAIRS_IN_EIGHTS;  // mat-vec activations (kernels.cuh): group_units
    using Scales = R4Scales<R4High::None>;

    template <int ORDER = NATURAL>
    static __device__ __forceinline__ Unit decode(const Scales& s, int r, uint32_t lo, uint32_t hi) {
        uint32_t idx[8];
        r4_crumbs(lo, hi, idx);
        Unit x;
        iq2nl_values<ORDER>(idx, s.shift(r, 0), s.shift(r, 1), x);
        s.scales(r, x);
        return x;
    }

    static __device__ __forceinline__ Unit unit(const uint8_t* __restrict__ group, int r, int u) {
        const uint8_t* b = r4_block(group, u, IQ2K::BLOCK_BYTES);
        const uint8_t* qs = b + 48 + 32 * (u & 7);
        return decode(Scales(b, u & 7, 16), r, row_word(qs, r), row_word(qs + 16, r));
    }

    static __device__ __forceinline__ void group_units(const uint8_t* __restrict__ group, int u, Unit (&x)[4]) {
        const uint8_t* b = r4_block(group, u, IQ2K::BLOCK_BYTES);
        const uint8_t* qs = b + 48 + 32 * (u & 7);
        const Scales s(b, u & 7, 16);
        const uint4 lo = rows_words<true>(qs), hi = rows_words<true>(qs + 16);
#pragma unroll
        for (int r = 0; r < 4; ++r) x[r] = decode<MMV_ORDER>(s, r, word_of(lo, r), word_of(hi, r));
    }
};

struct IQ3KR4 {
    static constexpr int GROUP_BLOCK_BYTES = 4 * IQ3K::BLOCK_BYTES;  // one block of the group (mmw.cuh)
    static constexpr int ROWS_PER_GROUP = 4;
    static constexpr bool SPLIT_SCALE = true;
    static constexpr int MMV_ORDER = PAIRS_IN_EIGHTS;  // mat-vec activations (kernels.cuh): group_units
    using Scales = R4Scales<R4High::Sign>;

    /// `h`: the row's qh word (bit k of byte i: index bit 2 of weight i + 4k).
    template <int ORDER = NATURAL>
    static __device__ __forceinline__ Unit decode(const Scales& s, int r, uint32_t lo, uint32_t hi, uint32_t h) {
        uint32_t idx[8];
        r4_crumbs(lo, hi, idx);
#pragma unroll
        for (int j = 0; j < 8; ++j) idx[j] |= ((h >> j) & 0x01010101u) << 2;
        Unit x;
        iq3nl_values<ORDER>(idx, s.shift(r, 0), s.shift(r, 1), x);
        s.scales(r, x);
        return x;
    }

    static __device__ __forceinline__ Unit unit(const uint8_t* __restrict__ group, int r, int u) {
        const uint8_t* b = r4_block(group, u, IQ3K::BLOCK_BYTES);
        const int ib = u & 7;
        const uint8_t* qs = b + 56 + 32 * ib;
        return decode(Scales(b, ib, 24), r, row_word(qs, r), row_word(qs + 16, r), row_word(b + 312 + 16 * ib, r));
    }

    static __device__ __forceinline__ void group_units(const uint8_t* __restrict__ group, int u, Unit (&x)[4]) {
        const uint8_t* b = r4_block(group, u, IQ3K::BLOCK_BYTES);
        const int ib = u & 7;
        const uint8_t* qs = b + 56 + 32 * ib;
        const Scales s(b, ib, 24);
        const uint4 lo = rows_words<false>(qs), hi = rows_words<false>(qs + 16), h = rows_words<false>(b + 312 + 16 * ib);
#pragma unroll
        for (int r = 0; r < 4; ++r) x[r] = decode<MMV_ORDER>(s, r, word_of(lo, r), word_of(hi, r), word_of(h, r));
    }
};

/// IQ4_K_R4 and IQ5_K_R4 (`QH`: offset of qh, 0 for none).
template <int BASE_BYTES, int QH>
struct IQ45KR4 {
    static constexpr int ROWS_PER_GROUP = 4;
    static constexpr int GROUP_BLOCK_BYTES = 4 * BASE_BYTES;  // one block of the group (mmw.cuh)
    static constexpr bool SPLIT_SCALE = true;
    static constexpr int MMV_ORDER = QH == 0 ? PAIRS_IN_HALVES : NATURAL;  // mat-vec activations (kernels.cuh)
    using Scales = R4Scales<R4High::Two>;

    /// `w`: the row's words W_0..W_3; `hw`: its qh word (IQ5: bit k of byte i is index bit 4 of
    /// weight i + (0, 8, 16, 24, 4, 12, 20, 28)[k]). `SELECT` (the mat-vec's decode, values in
    /// MMV_ORDER): each half looked up in its own (plain or shifted) table — in the mat-vec loop
    /// the tables are constants held in registers, so that is a select a word; else (one decode a
    /// thread: dequantize, fused) the plain table and the shift added to the values.
    template <bool SELECT>
    static __device__ __forceinline__ Unit decode(const Scales& s, int r, const uint32_t (&w)[4], uint32_t hw) {
        Unit x;
        const uint32_t sh0 = s.shift(r, 0), sh1 = s.shift(r, 1);
        if constexpr (QH == 0) {
            uint32_t t0[4], t1[4];
            iq4k_table(SELECT && sh0, t0);
            iq4k_table(SELECT && sh1, t1);
            r4_lookup16<SELECT ? MMV_ORDER : NATURAL>(w, t0, t1, x);
            if constexpr (!SELECT) {
                // +4 as a plain add: no plain iq4k value, as a byte, is above 0xF6 (no carries)
#pragma unroll
                for (int k = 0; k < 4; ++k) {
                    x.q[k] = int(uint32_t(x.q[k]) + sh0 * 0x04040404u);
                    x.q[k + 4] = int(uint32_t(x.q[k + 4]) + sh1 * 0x04040404u);
                }
            }
        } else {
            uint32_t t0[2][4], t1[2][4];
            iq5nl_table(SELECT && sh0, t0);
            iq5nl_table(SELECT && sh1, t1);
            r4_lookup32(w, hw, t0, t1, x);
            if constexpr (!SELECT) {
#pragma unroll
                for (int k = 0; k < 4; ++k) {
                    x.q[k] = add_i8x4(x.q[k], 2 * sh0);
                    x.q[k + 4] = add_i8x4(x.q[k + 4], 2 * sh1);
                }
            }
        }
        s.scales(r, x);
        return x;
    }

    static __device__ __forceinline__ Unit unit(const uint8_t* __restrict__ group, int r, int u) {
        const uint8_t* b = r4_block(group, u, BASE_BYTES);
        const int ib = u & 7;
        uint32_t w[4];
#pragma unroll
        for (int c = 0; c < 4; ++c) w[c] = row_word(b + 64 + 64 * ib + 16 * c, r);
        return decode<false>(Scales(b, ib, 32), r, w, QH ? row_word(b + QH + 16 * ib, r) : 0u);
    }

    static __device__ __forceinline__ void group_units(const uint8_t* __restrict__ group, int u, Unit (&x)[4]) {
        const uint8_t* b = r4_block(group, u, BASE_BYTES);
        const int ib = u & 7;
        const Scales s(b, ib, 32);
        uint4 q[4];
#pragma unroll
        for (int c = 0; c < 4; ++c) q[c] = rows_words<true>(b + 64 + 64 * ib + 16 * c);
        const uint4 h = QH ? rows_words<true>(b + QH + 16 * ib) : make_uint4(0, 0, 0, 0);
#pragma unroll
        for (int r = 0; r < 4; ++r) {
            const uint32_t w[4] = {word_of(q[0], r), word_of(q[1], r), word_of(q[2], r), word_of(q[3], r)};
            x[r] = decode<true>(s, r, w, word_of(h, r));
        }
    }
};

using IQ4KR4 = IQ45KR4<IQ4K::BLOCK_BYTES, 0>;
using IQ5KR4 = IQ45KR4<IQ5K::BLOCK_BYTES, 576>;

/// IQ4_KS_R4 and IQ5_KS_R4: `BASE_BYTES` the base block, `QH` the offset of qh in an R4 block (0
/// for none).
template <int BASE_BYTES, int QH>
struct KSR4 {
    static constexpr int ROWS_PER_GROUP = 4;
    static constexpr int GROUP_BLOCK_BYTES = 4 * BASE_BYTES;  // one block of the group, after the 16 bytes of row scales (mmw.cuh)
    static constexpr bool SPLIT_SCALE = false;

    /// The R4 block of unit u (after the 4 row scales).
    static __device__ __forceinline__ const uint8_t* block(const uint8_t* group, int u) { return group + 16 + (u >> 3) * 4 * BASE_BYTES; }

    /// `w`: the row's words W_0..W_3; `hw`: its qh word (as IQ5_K_R4's); `SELECT` as for
    /// IQ5_K_R4 (IQ4_KS_R4 always selects its table: one shift for the whole unit).
    template <bool SELECT>
    static __device__ __forceinline__ Unit decode(float row_scale, uint32_t sbyte, const uint32_t (&w)[4], uint32_t hw) {
        Unit x;
        if constexpr (QH == 0) {
            uint32_t t[4];
            iq4k_table(sbyte & 1, t);
            r4_lookup16(w, t, t, x);
        } else {
            uint32_t t[2][4];
            iq5nl_table(SELECT && (sbyte & 1), t);
            r4_lookup32(w, hw, t, t, x);
            if constexpr (!SELECT) {
#pragma unroll
                for (int k = 0; k < 8; ++k) x.q[k] = add_i8x4(x.q[k], 2 * (sbyte & 1));
            }
        }
        set_scale(x, row_scale, int(sbyte & 0xFE) - 127);
        return x;
    }

    static __device__ __forceinline__ Unit unit(const uint8_t* __restrict__ group, int r, int u) {
        const uint8_t* b = block(group, u);
        const int ib = u & 7;
        uint32_t w[4];
#pragma unroll
        for (int c = 0; c < 4; ++c) w[c] = row_word(b + 32 + 64 * ib + 16 * c, r);
        return decode<false>(ld_f32(group + 4 * r), ld_u8(b + 4 * ib + r), w, QH ? row_word(b + QH + 16 * ib, r) : 0u);
    }

    static __device__ __forceinline__ void group_units(const uint8_t* __restrict__ group, int u, Unit (&x)[4]) {
        const uint8_t* b = block(group, u);
        const int ib = u & 7;
        const uint4 d = rows_words<true>(group);  // the 4 row scales
        const uint32_t sb = ld_u32(b + 4 * ib);    // the 4 rows' scale bytes
        uint4 q[4];
#pragma unroll
        for (int c = 0; c < 4; ++c) q[c] = rows_words<true>(b + 32 + 64 * ib + 16 * c);
        const uint4 h = QH ? rows_words<true>(b + QH + 16 * ib) : make_uint4(0, 0, 0, 0);
#pragma unroll
        for (int r = 0; r < 4; ++r) {
            const uint32_t w[4] = {word_of(q[0], r), word_of(q[1], r), word_of(q[2], r), word_of(q[3], r)};
            x[r] = decode<true>(__uint_as_float(word_of(d, r)), (sb >> (8 * r)) & 0xFF, w, word_of(h, r));
        }
    }
};

using IQ4KSR4 = KSR4<IQ4KS::BLOCK_BYTES, 0>;
using IQ5KSR4 = KSR4<IQ5KS::BLOCK_BYTES, 544>;

}  // namespace iqrs
