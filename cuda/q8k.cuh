// Q8_K (FORMATS.md §4) as a weight type: blocks of 256 weights, `f32 d; f32 sum; i8 qs[256];
// i16 bsums[16]` (296 bytes); weight = d·qs (the sums are not needed).
#pragma once

#include "common.cuh"

namespace iqrs {

struct Q8K {
    static constexpr int BLOCK_BYTES = 296;
    static constexpr int ROWS_PER_GROUP = 1;
    static constexpr bool SPLIT_SCALE = false;

    static __device__ __forceinline__ Unit unit(const uint8_t* __restrict__ row, int, int u) {
        const uint8_t* b = row + (u >> 3) * BLOCK_BYTES;
        Unit x;
#pragma unroll
        for (int k = 0; k < 8; ++k) x.q[k] = int(ld_u32(b + 8 + 32 * (u & 7) + 4 * k));
        set_scale(x, ld_f32(b), 1);
        return x;
    }
};

}  // namespace iqrs
