// IQ4_KS and IQ4_KSS (FORMATS.md §6.1, §6.2): an f32 row scale D, then blocks of 256 weights.
// Per 32-weight sub-block (= one unit) a scale byte: bits 1..7 give the odd scale L = (b & 0xFE) - 127,
// bit 0 picks the plain or the shifted half of the IQ4K grid; weight = (D·L)·T[index].
//
// * IQ4_KS block (136 bytes): scales[8], then qs[128]; byte 16·ib + t of sub-block ib holds
//   weight t in its low nibble and weight t + 16 in its high nibble.
// * IQ4_KSS block (128 bytes): 64 u16 words, 8 per sub-block. Word k carries bit k of the scale
//   byte in bit 0 and, in bits 1..15, the prefix-XOR code of the even-parity 16-bit index group
//   that IQ4_KS stores in its bytes 2k and 2k + 1 (decoded as a ^ (a >> 1), a = word & 0xFFFE).
#pragma once

#include "common.cuh"

namespace iqrs {

/// The IQ4K grid half a scale byte selects (bit 0: the shifted half), as four packed words.
__device__ __forceinline__ void iq4k_table(uint32_t shifted, uint32_t (&t)[4]) {
    t[0] = shifted ? pack4(-123, -100, -79, -61) : pack4(-127, -104, -83, -65);
    t[1] = shifted ? pack4(-45, -31, -18, -6) : pack4(-49, -35, -22, -10);
    t[2] = shifted ? pack4(5, 17, 29, 42) : pack4(1, 13, 25, 38);
    t[3] = shifted ? pack4(57, 73, 93, 117) : pack4(53, 69, 89, 113);
}

/// Decodes an IQ4_KS sub-block from the row scale, its scale byte and its 16 index bytes (as
/// four words: word k = bytes 4k..4k+3, i.e. weights 4k..4k+3 and 4k+16..4k+19).
__device__ __forceinline__ Unit iq4ks_unit(float row_scale, uint32_t sbyte, const uint32_t (&qs)[4]) {
    uint32_t t[4];
    iq4k_table(sbyte & 1, t);
    Unit x;
#pragma unroll
    for (int k = 0; k < 4; ++k) lookup16(qs[k], t, x.q[k], x.q[k + 4]);
    x.d[0] = x.d[1] = row_scale * small_int_to_float(int(sbyte & 0xFE) - 127);
    return x;
}

struct IQ4KS {
    static constexpr int BLOCK_BYTES = 136;
    static constexpr int ROWS_PER_GROUP = 1;
    static constexpr bool SPLIT_SCALE = false;

    static __device__ __forceinline__ Unit unit(const uint8_t* __restrict__ row, int, int u) {
        const uint8_t* b = row + 4 + (u >> 3) * BLOCK_BYTES;
        const int ib = u & 7;
        uint32_t qs[4];
#pragma unroll
        for (int k = 0; k < 4; ++k) qs[k] = ld_u32(b + 8 + 16 * ib + 4 * k);
        return iq4ks_unit(ld_f32(row), __ldg(b + ib), qs);
    }
};

struct IQ4KSS {
    static constexpr int BLOCK_BYTES = 128;
    static constexpr int ROWS_PER_GROUP = 1;
    static constexpr bool SPLIT_SCALE = false;

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
        return iq4ks_unit(ld_f32(row), (bits | bits >> 15) & 0xFF, qs);
    }
};

}  // namespace iqrs
