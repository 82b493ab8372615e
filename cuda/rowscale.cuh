// IQ5_KS, IQ3_KS, IQ2_KS and IQ2_KL (FORMATS.md §6.3-§6.6): a row scale D (f32 for IQ5_KS, f16
// for the others), then blocks of 256 weights; per 32-weight sub-block (= one unit) an integer
// scale L and table values, weight = (D·L)·T[index]. Layouts: see rust/src/quants/<type>.rs.
//
// Indices are gathered byte-wise (byte n of a word = weight 4k + n) and looked up in registers
// with `prmt` (`lookup_bytes`). Blocks behind an f16 row scale are only 2-byte aligned, so their
// words are read as two halves.
#pragma once

#include "common.cuh"

namespace iqrs {

/// A 2-byte-aligned 4-byte load.
__device__ __forceinline__ uint32_t ld_u32_a2(const uint8_t* p) {
    const uint16_t* h = reinterpret_cast<const uint16_t*>(p);
    return uint32_t(__ldg(h)) | uint32_t(__ldg(h + 1)) << 16;
}

/// The f16 row scale at the head of a row, as f32 (exact).
__device__ __forceinline__ float ld_f16_row_scale(const uint8_t* row) {
    return __half2float(__ushort_as_half(__ldg(reinterpret_cast<const uint16_t*>(row))));
}

/// Looks up the four byte indices of `idx` (each < 4·W) in a table of 4·W int8 values (`t[i/4]`
/// byte `i%4` is entry `i`; W = 2, 4, 8 or 16): `prmt` picks within each 8-entry group, further
/// `prmt`s pick the group by index bits 3, 4, 5.
template <int W>
__device__ __forceinline__ uint32_t lookup_bytes(uint32_t idx, const uint32_t (&t)[W]) {
    // the low 3 bits of each byte as the 4 selector nibbles of prmt
    const uint32_t x = idx & 0x07070707u;
    const uint32_t sel = (x & 0x7u) | ((x >> 4) & 0x70u) | ((x >> 8) & 0x700u) | ((x >> 12) & 0x7000u);
    uint32_t v[W / 2];
#pragma unroll
    for (int i = 0; i < W / 2; ++i) v[i] = prmt(t[2 * i], t[2 * i + 1], sel);
#pragma unroll
    for (int bit = 3, n = W / 2; n > 1; ++bit, n /= 2) {
        // byte k takes the upper candidate when its index has `bit` set: selector nibble k + 4
        const uint32_t b = idx >> bit;
        const uint32_t m = 0x3210u | ((b << 2) & 0x4u) | ((b >> 2) & 0x40u) | ((b >> 6) & 0x400u) | ((b >> 10) & 0x4000u);
#pragma unroll
        for (int i = 0; i < n / 2; ++i) v[i] = prmt(v[2 * i], v[2 * i + 1], m);
    }
    return v[0];
}

/// A unit whose 32 values are `lookup_bytes` of 8 index words, with one scale.
template <int W>
__device__ __forceinline__ Unit table_unit(float dl, const uint32_t (&idx)[8], const uint32_t (&t)[W]) {
    Unit x;
#pragma unroll
    for (int k = 0; k < 8; ++k) x.q[k] = int(lookup_bytes<W>(idx[k], t));
    x.d[0] = x.d[1] = dl;
    return x;
}

struct IQ5KS {
    static constexpr int BLOCK_BYTES = 168;
    static constexpr int ROWS_PER_GROUP = 1;
    static constexpr bool SPLIT_SCALE = false;

    static __device__ __forceinline__ Unit unit(const uint8_t* __restrict__ row, int, int u) {
        const uint8_t* b = row + 4 + (u >> 3) * BLOCK_BYTES;
        const int ib = u & 7;
        const uint32_t sbyte = __ldg(b + ib);
        // the iq5nl half the scale byte selects (bit 0: shifted = plain + 2)
        uint32_t t[8];
        if (sbyte & 1) {
            t[0] = pack4(-124, -112, -101, -90), t[1] = pack4(-81, -72, -63, -55), t[2] = pack4(-48, -41, -34, -28), t[3] = pack4(-22, -16, -10, -4);
            t[4] = pack4(1, 7, 13, 19), t[5] = pack4(25, 31, 38, 45), t[6] = pack4(53, 61, 70, 79), t[7] = pack4(89, 99, 111, 123);
        } else {
            t[0] = pack4(-126, -114, -103, -92), t[1] = pack4(-83, -74, -65, -57), t[2] = pack4(-50, -43, -36, -30), t[3] = pack4(-24, -18, -12, -6);
            t[4] = pack4(-1, 5, 11, 17), t[5] = pack4(23, 29, 36, 43), t[6] = pack4(51, 59, 68, 77), t[7] = pack4(87, 97, 109, 121);
        }
        uint32_t idx[8];
#pragma unroll
        for (int k = 0; k < 8; ++k) {
            const uint32_t qs = ld_u32(b + 8 + 32 * (ib / 2) + 4 * k);
            const uint32_t qh = ld_u32(b + 136 + 4 * k);
            idx[k] = ((qs >> (4 * (ib % 2))) & 0x0F0F0F0Fu) | (((qh >> ib) & 0x01010101u) << 4);
        }
        return table_unit<8>(ld_f32(row) * small_int_to_float(int(sbyte & 0xFE) - 127), idx, t);
    }
};

struct IQ3KS {
    static constexpr int BLOCK_BYTES = 102;
    static constexpr int ROWS_PER_GROUP = 1;
    static constexpr bool SPLIT_SCALE = false;

    static __device__ __forceinline__ Unit unit(const uint8_t* __restrict__ row, int, int u) {
        const uint8_t* b = row + 2 + (u >> 3) * BLOCK_BYTES;
        const int ib = u & 7;
        const uint32_t extra = __ldg(reinterpret_cast<const uint16_t*>(b));
        const int l = int(((__ldg(b + 2 + ib % 4) >> (4 * (ib / 4))) & 15) | ((extra >> ib) & 1) << 4) - 16;
        // iq3nl, plain half then shifted half: index = 3 bits | shift·8
        const uint32_t t[4] = {pack4(-63, -40, -23, -10), pack4(1, 13, 28, 47), pack4(-59, -36, -19, -6), pack4(5, 17, 32, 51)};
        const uint32_t shift = ((extra >> (8 + ib)) & 1) * 0x08080808u;
        uint32_t idx[8];
#pragma unroll
        for (int k = 0; k < 8; ++k) {
            const uint32_t qs = ld_u32_a2(b + 6 + 32 * (ib / 4) + 4 * k);
            const uint32_t qh = ld_u32_a2(b + 70 + 4 * k);
            idx[k] = ((qs >> (2 * (ib % 4))) & 0x03030303u) | (((qh >> ib) & 0x01010101u) << 2) | shift;
        }
        return table_unit<4>(ld_f16_row_scale(row) * small_int_to_float(l), idx, t);
    }
};

struct IQ2KS {
    static constexpr int BLOCK_BYTES = 70;
    static constexpr int ROWS_PER_GROUP = 1;
    static constexpr bool SPLIT_SCALE = false;

    static __device__ __forceinline__ Unit unit(const uint8_t* __restrict__ row, int, int u) {
        const uint8_t* b = row + 2 + (u >> 3) * BLOCK_BYTES;
        const int ib = u & 7;
        const uint32_t extra = __ldg(reinterpret_cast<const uint16_t*>(b));
        const int l = int(((__ldg(b + 2 + ib / 2) >> (4 * (ib % 2))) & 15) | ((extra >> (8 + ib)) & 1) << 4) - 16;
        // iq2nl, plain half then shifted half: index = 2 bits | shift·4
        const uint32_t t[2] = {pack4(-31, -13, 1, 17), pack4(-26, -8, 6, 22)};
        const uint32_t shift = ((extra >> ib) & 1) * 0x04040404u;
        uint32_t idx[8];
#pragma unroll
        for (int k = 0; k < 8; ++k) idx[k] = ((ld_u32_a2(b + 6 + 32 * (ib / 4) + 4 * k) >> (2 * (ib % 4))) & 0x03030303u) | shift;
        return table_unit<2>(ld_f16_row_scale(row) * small_int_to_float(l), idx, t);
    }
};

struct IQ2KL {
    static constexpr int BLOCK_BYTES = 86;
    static constexpr int ROWS_PER_GROUP = 1;
    static constexpr bool SPLIT_SCALE = false;

    static __device__ __forceinline__ Unit unit(const uint8_t* __restrict__ row, int, int u) {
        const uint8_t* b = row + 2 + (u >> 3) * BLOCK_BYTES;
        const int ib = u & 7;
        const uint32_t scales_h = __ldg(reinterpret_cast<const uint16_t*>(b));
        const int l = int(((__ldg(b + 2 + ib % 4) >> (4 * (ib / 4))) & 15) | ((scales_h >> (2 * ib)) & 3) << 4) - 32;
        // the 32 grid pairs as 64 bytes: pair g = (first, second) at bytes 2g, 2g + 1
        const uint32_t t[16] = {
            0x0dc1e9c1u, 0xf6d8c1d8u, 0x2fd80dd8u, 0xe9e9d8e9u, 0x0de901e9u, 0xc1f61ce9u, 0x0df601f6u, 0xe9012ff6u,
            0x0101f601u, 0x1c010d01u, 0xe90dd80du, 0x010df60du, 0xc11c0d0du, 0x011ce91cu, 0x2f1c1c1cu, 0x0d2fe92fu,
        };
        // the 5-bit grid indices of 4 pairs per word (pairs 4i..4i+3, byte n = pair 4i + n)
        uint32_t g[4];
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const uint32_t qs = ld_u32_a2(b + 6 + 16 * (ib / 2) + 4 * i);
            const uint32_t qh = ld_u32_a2(b + 70 + 4 * i);
            g[i] = ((qs >> (4 * (ib % 2))) & 0x0F0F0F0Fu) | (((qh >> ib) & 0x01010101u) << 4);
        }
        // word k holds pairs 2k and 2k + 1: bytes 2g, 2g + 1 of each
        uint32_t idx[8];
#pragma unroll
        for (int k = 0; k < 8; ++k) {
            const uint32_t p = g[k / 2] >> (16 * (k % 2));  // the two pairs in the low bytes
            const uint32_t g0 = p & 0xFF, g1 = (p >> 8) & 0xFF;
            idx[k] = (2 * g0) | (2 * g0 + 1) << 8 | (2 * g1) << 16 | (2 * g1 + 1) << 24;
        }
        return table_unit<16>(ld_f16_row_scale(row) * small_int_to_float(l), idx, t);
    }
};

}  // namespace iqrs
