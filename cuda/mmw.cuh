// The fused matrix multiply on Hopper's warpgroup MMA (sm_90a only; cuda/mmw_sm90a.cu): `out =
// x · Wᵀ` for bf16 activations without writing the dequantized W to global memory, as mm.cuh
// does, but with `wgmma.mma_async`, which multiplies from shared memory asynchronously: the
// tensor cores work on one stage while the same threads decode the next.
//
// A block = two warpgroups; it computes a 128 x BN tile of the output (128 rows of W, BN = 128
// or 256 vectors), each warpgroup 64 rows x BN with m64nBNk16. A stage is 4 units of every row
// (128 weights): the W tile (128 x 128 bf16, decoded by every thread with the type's `unit()`,
// two units each: the values the bf16 dequantize kernel writes, bit for bit) and the x tile
// (BN x 128 bf16, by cp.async), both as two k-halves of 128-byte rows in the 128-byte swizzle
// wgmma reads. Two stages in shared memory (192 KB at BN = 256): while the MMAs of stage s run,
// stage s + 1 is loaded and decoded into the other buffers.
#pragma once
// Included at the end of kernels.cuh (IQRS_MMW_MODULE), whose helpers and mm.cuh's it uses.

namespace iqrs {

/// Weight rows per block of the warpgroup matrix multiply (two warpgroups of 64).
constexpr int MMW_BM = 128;
/// Threads per block: two warpgroups.
constexpr int MMW_THREADS = 256;
/// Units per stage: 128 weights, two 128-byte swizzle rows of bf16.
constexpr int MMW_KU = 4;

/// Shared memory of the kernel of width BN: two stages of the W and x tiles, and 1 KB to align
/// them on the swizzle pattern's 1024 bytes.
template <int BN>
struct MmwSmem {
    static constexpr int A = MMW_BM * MMW_KU * 64;  // W tile bytes (128 rows x 256 bytes)
    static constexpr int B = BN * MMW_KU * 64;      // x tile bytes
    static constexpr int BYTES = 2 * (A + B) + 1024;
};

/// Byte offset, in a stage tile of R rows, of 16-byte chunk `c` (0..15: the stage's weights 8c ..
/// 8c + 7) of row `r`: the tile is two k-halves of R rows x 128 bytes, and a row's 8 chunks are
/// permuted by XOR with r % 8 (the 128-byte swizzle; bank-conflict free for the decoders' stores,
/// 8 rows x 4 units a warp, and for cp.async).
template <int R>
__device__ __forceinline__ uint32_t mmw_offset(int r, int c) {
    return uint32_t((c >> 3) * (R * 128) + r * 128 + (((c & 7) ^ (r & 7)) << 4));
}

/// The wgmma descriptor of a K-major bf16 tile at shared address `a` in the 128-byte swizzle:
/// start address (bits 0-13, in 16 bytes), leading byte offset unused (1), stride byte offset
/// 1024 (8 rows of 128 bytes; bits 32-45, in 16 bytes), swizzle mode 1 = 128 bytes (bits 62-63).
__device__ __forceinline__ uint64_t wgmma_desc(uint32_t a) {
    return uint64_t((a & 0x3FFFF) >> 4) | uint64_t(1) << 16 | uint64_t(1024 >> 4) << 32 | uint64_t(1) << 62;
}

/// Orders the warpgroup's register accesses before the wgmmas that follow.
__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }
/// Closes the group of wgmmas issued since the last commit.
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory"); }
/// Waits until at most N committed groups are pending.
template <int N>
__device__ __forceinline__ void wgmma_wait() { asm volatile("wgmma.wait_group.sync.aligned %0;" ::"n"(N) : "memory"); }
/// Makes this thread's ordinary shared-memory writes (stores, cp.async) visible to wgmma.
__device__ __forceinline__ void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;" ::: "memory"); }

/// `d = A · B + (accumulate ? d : 0)` on the warpgroup's 64 x 128 f32 tile (m64n128k16; A and B
/// bf16 in shared memory, K-major, given by descriptors). Asynchronous: see `wgmma_commit`.
__device__ __forceinline__ void wgmma_m64n128k16(float (&d)[64], uint64_t a, uint64_t b, int accumulate) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
        "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
        "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
        "}, %64, %65, p, 1, 1, 0, 0;\n}\n"
        :
          "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
          "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
          "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
          "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
          "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
          "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
          "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
        : "l"(a), "l"(b), "r"(accumulate));
}

/// `d = A · B + (accumulate ? d : 0)` on the warpgroup's 64 x 256 f32 tile (m64n256k16; A and B
/// bf16 in shared memory, K-major, given by descriptors). Asynchronous: see `wgmma_commit`.
__device__ __forceinline__ void wgmma_m64n256k16(float (&d)[128], uint64_t a, uint64_t b, int accumulate) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %130, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
        "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
        "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, "
        "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, "
        "%80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, "
        "%96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, "
        "%112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127"
        "}, %128, %129, p, 1, 1, 0, 0;\n}\n"
        :
          "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
          "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
          "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
          "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
          "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
          "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
          "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]),
          "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]),
          "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]),
          "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]),
          "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]),
          "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]),
          "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]),
          "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]),
          "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127])
        : "l"(a), "l"(b), "r"(accumulate));
}

template <int BN>
__device__ __forceinline__ void wgmma_tile(float (&d)[BN / 2], uint64_t a, uint64_t b, int accumulate) {
    if constexpr (BN == 256) {
        wgmma_m64n256k16(d, a, b, accumulate);
    } else {
        static_assert(BN == 128);
        wgmma_m64n128k16(d, a, b, accumulate);
    }
}

/// `out[v][row] = Σ_k W[row, k] · x[v, k]`, as `mm` (mm.cuh) computes it: the same arguments,
/// grid (⌈n / BN⌉, ⌈rows / 128⌉, splits), f32 partial sums per split. Dynamic shared memory:
/// `MmwSmem<BN>::BYTES`.
template <class T, int BN>
__device__ __forceinline__ void mmw(const uint8_t* __restrict__ w, size_t row_bytes, int rows, int units, const __nv_bfloat16* __restrict__ x,
                                    int n, void* __restrict__ out, int out_dtype, int split_units) {
    using S = MmwSmem<BN>;
    constexpr int B_CHUNKS = BN * 4 * MMW_KU / MMW_THREADS;  // x chunks (16 bytes) per thread and stage
    constexpr int DECODES = MMW_BM * MMW_KU / MMW_THREADS;   // units per thread and stage
    extern __shared__ uint8_t smem_raw[];
    const uint32_t raw = smem_addr(smem_raw), base = (raw + 1023) & ~1023u;
    uint8_t* const sm = smem_raw + (base - raw);
    // Stage buffer b: W tile at b·A, x tile at 2·A + b·B (all 1024-byte aligned).
    auto a_tile = [&](int b) { return sm + b * S::A; };
    auto b_tile = [&](int b) { return sm + 2 * S::A + b * S::B; };

    const int tid = threadIdx.x, wg = tid >> 7;
    const int row0 = blockIdx.y * MMW_BM, v0 = blockIdx.x * BN;
    const size_t cols = size_t(units) * UNIT;
    const size_t group_bytes = row_bytes * T::ROWS_PER_GROUP;
    const int nb = units / 8;

    // x: the stage's BN x 128 activations, 16 chunks a vector, by cp.async (zeros past n).
    auto load_x = [&](int s, int b) {
#pragma unroll
        for (int i = 0; i < B_CHUNKS; ++i) {
            const int c = tid + i * MMW_THREADS, v = c >> 4, k = c & 15;
            const bool ok = v0 + v < n;
            const __nv_bfloat16* src = x + size_t(ok ? v0 + v : 0) * cols + size_t(s) * MMW_KU * UNIT + 8 * k;
            cp_async16(b_tile(b) + mmw_offset<BN>(v, k), src, ok ? 16 : 0);
        }
        cp_async_commit();
    };
    // W: unit i = tid + 256·m of the stage is unit i % 4 of tile row i / 4 (a warp: 8 rows'
    // consecutive units). Rows past the last store zeros.
    auto decode_w = [&](int s, int b) {
#pragma unroll
        for (int m = 0; m < DECODES; ++m) {
            const int i = tid + m * MMW_THREADS, r = i >> 2, u = i & 3, row = row0 + r;
            uint4 c[4] = {};
            if (row < rows) {
                const Unit xu = T::unit(group_of<T>(w, row_bytes, row), row % T::ROWS_PER_GROUP, s * MMW_KU + u);
#pragma unroll
                for (int j = 0; j < 4; ++j) c[j] = bf16_chunk(xu, j);
                // As mm.cuh: ask L2 for the block after next when a stage starts a block.
                const int blk = (s * MMW_KU) / 8 + 2;
                if ((s * MMW_KU) % 8 == 0 && u == 0 && blk < nb) {
                    const uint8_t* g = group_of<T>(w, row_bytes, row);
                    const size_t lo = size_t(blk) * group_bytes / nb, hi = min(group_bytes, size_t(blk + 1) * group_bytes / nb + 16);
                    for (size_t o = lo & ~size_t(127); o < hi; o += 128) prefetch_l2(g + o);
                }
            }
#pragma unroll
            for (int j = 0; j < 4; ++j) *reinterpret_cast<uint4*>(a_tile(b) + mmw_offset<MMW_BM>(r, 4 * u + j)) = c[j];
        }
    };

    float acc[BN / 2];
#pragma unroll
    for (int i = 0; i < BN / 2; ++i) acc[i] = 0.0f;

    const int s0 = blockIdx.z * (split_units / MMW_KU), s1 = min(units, int(blockIdx.z + 1) * split_units) / MMW_KU;
    load_x(s0, 0);
    decode_w(s0, 0);
    cp_async_wait<0>();
    fence_proxy_async();
    __syncthreads();
    for (int s = s0; s < s1; ++s) {
        const int b = (s - s0) & 1;
        if (s + 1 < s1) load_x(s + 1, b ^ 1);  // that buffer's MMAs were waited for last stage
        wgmma_fence();
        const uint32_t a_addr = smem_addr(a_tile(b)) + wg * 64 * 128, b_addr = smem_addr(b_tile(b));
#pragma unroll
        for (int kk = 0; kk < 2 * MMW_KU; ++kk) {
            // k16 step kk: k-half kk / 4, 32 bytes further into the 128-byte rows per step.
            const uint32_t k_off = (kk & 3) * 32;
            wgmma_tile<BN>(acc, wgmma_desc(a_addr + (kk >> 2) * MMW_BM * 128 + k_off), wgmma_desc(b_addr + (kk >> 2) * BN * 128 + k_off), 1);
        }
        wgmma_commit();
        if (s + 1 < s1) decode_w(s + 1, b ^ 1);  // while the tensor cores multiply stage s
        cp_async_wait<0>();
        fence_proxy_async();
        wgmma_wait<0>();
        __syncthreads();
    }

    // acc[i]: row 16·warp + lane / 4 + 8·(i / 2 % 2) of the warpgroup's 64, vector 8·(i / 4) +
    // 2·(lane % 4) + i % 2.
    const int lane = tid & 31, warp = (tid >> 5) & 3;
    float* part = gridDim.z > 1 ? static_cast<float*>(out) + size_t(blockIdx.z) * n * rows : nullptr;
#pragma unroll
    for (int i = 0; i < BN / 2; ++i) {
        const int row = row0 + wg * 64 + warp * 16 + (lane >> 2) + 8 * ((i >> 1) & 1);
        const int v = v0 + 8 * (i >> 2) + 2 * (lane & 3) + (i & 1);
        if (row < rows && v < n) {
            if (part) {
                part[size_t(v) * rows + row] = acc[i];
            } else {
                store_elem(out, out_dtype, size_t(v) * rows + row, acc[i]);
            }
        }
    }
}

}  // namespace iqrs

#define IQRS_MMW_ENTRY(name, T, bn)                                                                                          \
    extern "C" __global__ void __launch_bounds__(iqrs::MMW_THREADS, 1)                                                      \
        iqrs_mmw_##name##_##bn(const uint8_t* w, unsigned long long row_bytes, int rows, int units, const __nv_bfloat16* x, \
                               int n, void* out, int out_dtype, int split_units) {                                           \
        iqrs::mmw<T, bn>(w, row_bytes, rows, units, x, n, out, out_dtype, split_units);                                      \
    }

/// The warpgroup matrix multiply of a type: `iqrs_mmw_<name>_{128,256}` (vectors per block).
#define IQRS_MMW_KERNELS(name, T) \
    IQRS_MMW_ENTRY(name, T, 128)  \
    IQRS_MMW_ENTRY(name, T, 256)
