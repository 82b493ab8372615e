// The fused matrix multiply, written once over a type's `unit()` decoder: `out = x · Wᵀ` for bf16
// activations without ever writing the dequantized W to global memory. A block computes a
// MM_BM x BN tile of the output (BM weight rows x BN activation vectors); per stage of KU units
// (KU·32 weights) the threads decode the tile's units of W into shared memory as bf16 — the
// values the bf16 dequantize kernel writes, bit for bit — while the stage's activations arrive
// by cp.async, and eight warps multiply with bf16 tensor-core MMA (m16n8k16, f32 accumulation).
// Shared rows are swizzled (`swz`) so that ldmatrix reads and the decoders' stores do not
// conflict on banks.
#pragma once
// Included at the end of kernels.cuh, whose helpers it uses.

namespace iqrs {

/// Weight rows per block of the fused matrix multiply.
constexpr int MM_BM = 128;
/// Threads per block: 8 warps, 2 along the rows (64 each) x 4 along the vectors (BN/4 each).
constexpr int MM_THREADS = 256;

__device__ __forceinline__ uint32_t smem_addr(const void* p) { return uint32_t(__cvta_generic_to_shared(p)); }

/// 16 bytes global → shared, asynchronously; `bytes` = 0 fills zeros (vectors past the last).
__device__ __forceinline__ void cp_async16(void* dst, const void* src, int bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(smem_addr(dst)), "l"(src), "r"(bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;" ::"n"(N)); }

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p)));
}

/// `c += a · b` on a 16x8 f32 tile: a 16x16 (rows x k), b 16x8 (k x vectors), bf16.
__device__ __forceinline__ void mma_bf16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/// Asks L2 for the line at `p` (the bytes of a later stage, so that its decode does not wait).
__device__ __forceinline__ void prefetch_l2(const void* p) { asm volatile("prefetch.global.L2 [%0];" ::"l"(p)); }

/// 16-byte chunk `j` (weights 8j..8j+7) of a unit as bf16: the values of `unit_chunk`, bit for
/// bit (`d · v` rounded once to f32, then to bf16), without the quarter-rate int→float unit:
/// byte v ^ 0x80 = v + 128 is placed in the mantissa of 1.5·2^23 by one `prmt`, and subtracting
/// 1.5·2^23 + 128 leaves v exactly.
__device__ __forceinline__ uint4 bf16_chunk(const Unit& x, int j) {
    const float d = x.d[j >> 1];
    uint32_t o[4];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        const uint32_t w = uint32_t(x.q[2 * j + h]) ^ 0x80808080u;
        float f[4];
#pragma unroll
        for (int b = 0; b < 4; ++b) f[b] = d * (__uint_as_float(prmt(w, 0x4B400000u, 0x7650u | b)) - 12583040.0f);
        o[2 * h] = pack2(f[0], f[1], static_cast<__nv_bfloat16*>(nullptr));
        o[2 * h + 1] = pack2(f[2], f[3], static_cast<__nv_bfloat16*>(nullptr));
    }
    return make_uint4(o[0], o[1], o[2], o[3]);
}

/// The chunk of a shared row of `C` 16-byte chunks where logical chunk `c` of row `r` lives: the
/// 8 rows an ldmatrix reads (same c) land on 8 different bank groups, and so do the 8 chunks of
/// one row that 8 decoding threads store at once (c = 4u + j, u = 0..7).
template <int C>
__device__ __forceinline__ int swz(int r, int c) { return r * C + (c ^ (((c >> 3) + r) & 7)); }

/// `out[v][row] = Σ_k W[row, k] · x[v, k]` for `n` bf16 vectors `x` (n x 32·units, row-major,
/// 16-byte aligned), `out` of `out_dtype` (n x rows). Grid: (⌈n / BN⌉, ⌈rows / MM_BM⌉, splits);
/// the blocks of one row tile are adjacent in launch order, so W is read from DRAM about once.
/// With splits > 1 (more blocks than row tiles: the decode is latency-bound, and few blocks
/// leave the SMs idle), block z takes the `split_units` units from z·split_units (whole
/// 256-weight blocks) and writes its partial sums as f32 to `out + z·n·rows` floats, which
/// `iqrs_sum_partials` adds up in order.
template <class T, int BN, int KU>
__device__ __forceinline__ void mm(const uint8_t* __restrict__ w, size_t row_bytes, int rows, int units, const __nv_bfloat16* __restrict__ x,
                                   int n, void* __restrict__ out, int out_dtype, int split_units) {
    constexpr int NT = BN / 32;                          // 8-vector MMA tiles per warp
    constexpr int C = 4 * KU;                            // 16-byte chunks per shared row (KU units)
    constexpr int B_CHUNKS = BN * C / MM_THREADS;        // activation chunks per thread and stage
    constexpr int DECODES = MM_BM * KU / MM_THREADS;     // units each thread decodes per stage
    __shared__ __align__(128) uint4 sa[MM_BM * C];       // W tile, bf16
    __shared__ __align__(128) uint4 sb[BN * C];          // x tile, bf16

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int wm = warp >> 2, wn = warp & 3;             // warp's 64 rows, BN/4 vectors
    const int row0 = blockIdx.y * MM_BM, v0 = blockIdx.x * BN;
    const size_t cols = size_t(units) * UNIT;
    const size_t group_bytes = row_bytes * T::ROWS_PER_GROUP;
    const int nb = units / 8;

    float acc[4][NT][4];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < NT; ++j)
#pragma unroll
            for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.0f;

    const int s0 = blockIdx.z * (split_units / KU), stages = min(units, int(blockIdx.z + 1) * split_units) / KU;
    for (int s = s0; s < stages; ++s) {
        __syncthreads();  // every warp is done with sa and sb of the last stage
        // x: cp.async, in flight while this stage's units are decoded.
#pragma unroll
        for (int i = 0; i < B_CHUNKS; ++i) {
            const int c = tid + i * MM_THREADS, v = c / C, k = c % C;
            const bool ok = v0 + v < n;
            const __nv_bfloat16* src = x + size_t(ok ? v0 + v : 0) * cols + size_t(s) * KU * UNIT + 8 * k;
            cp_async16(&sb[swz<C>(v, k)], src, ok ? 16 : 0);
        }
        cp_async_commit();
        // W: unit i = tid + 256·m of the stage is unit i % KU of tile row i / KU, so a warp
        // decodes 32 / KU rows' consecutive units (fewer cache lines per load). Rows past the
        // last store zeros.
#pragma unroll
        for (int m = 0; m < DECODES; ++m) {
            const int i = tid + m * MM_THREADS, r = i / KU, u = i % KU, row = row0 + r;
            uint4 c[4] = {};
            if (row < rows) {
                const Unit x = T::unit(group_of<T>(w, row_bytes, row), row % T::ROWS_PER_GROUP, s * KU + u);
#pragma unroll
                for (int j = 0; j < 4; ++j) c[j] = bf16_chunk(x, j);
                // The bytes of block b of a row group lie in [b·gb/nb, (b+1)·gb/nb + 16) for any
                // type (gb = group bytes, nb = blocks, row heads ≤ 16 bytes): ask L2 for the
                // block after next when a stage starts a block.
                const int b = (s * KU + u) / 8 + 2;
                if ((s * KU) % 8 == 0 && u == 0 && b < nb) {
                    const uint8_t* g = group_of<T>(w, row_bytes, row);
                    const size_t lo = size_t(b) * group_bytes / nb, hi = min(group_bytes, size_t(b + 1) * group_bytes / nb + 16);
                    for (size_t o = lo & ~size_t(127); o < hi; o += 128) prefetch_l2(g + o);
                }
            }
#pragma unroll
            for (int j = 0; j < 4; ++j) sa[swz<C>(r, 4 * u + j)] = c[j];
        }
        cp_async_wait<0>();
        __syncthreads();
#pragma unroll
        for (int ks = 0; ks < KU * 2; ++ks) {
            uint32_t af[4][4], bf[NT][2];
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                const int r = wm * 64 + i * 16 + (lane & 15);
                ldmatrix_x4(af[i], &sa[swz<C>(r, 2 * ks + (lane >> 4))]);
            }
#pragma unroll
            for (int p = 0; p < NT / 2; ++p) {
                const int v = wn * (BN / 4) + p * 16 + (lane & 7) + ((lane >> 4) << 3);
                uint32_t t[4];
                ldmatrix_x4(t, &sb[swz<C>(v, 2 * ks + ((lane >> 3) & 1))]);
                bf[2 * p][0] = t[0];
                bf[2 * p][1] = t[1];
                bf[2 * p + 1][0] = t[2];
                bf[2 * p + 1][1] = t[3];
            }
#pragma unroll
            for (int i = 0; i < 4; ++i)
#pragma unroll
                for (int j = 0; j < NT; ++j) mma_bf16(acc[i][j], af[i], bf[j][0], bf[j][1]);
        }
    }

    const int g = lane >> 2, t4 = lane & 3;
    float* part = gridDim.z > 1 ? static_cast<float*>(out) + size_t(blockIdx.z) * n * rows : nullptr;
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < NT; ++j)
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const int row = row0 + wm * 64 + i * 16 + g + 8 * (e >> 1);
                const int v = v0 + wn * (BN / 4) + j * 8 + 2 * t4 + (e & 1);
                if (row < rows && v < n) {
                    if (part) {
                        part[size_t(v) * rows + row] = acc[i][j][e];
                    } else {
                        store_elem(out, out_dtype, size_t(v) * rows + row, acc[i][j][e]);
                    }
                }
            }
}

}  // namespace iqrs

// Stages of 4 units for the narrow kernel (48 KB of shared memory), 2 for the wide one (32 KB);
// two blocks an SM.
#define IQRS_MM_ENTRY(name, T, bn)                                                                                           \
    extern "C" __global__ void __launch_bounds__(iqrs::MM_THREADS, 2)                                                       \
        iqrs_mm_##name##_##bn(const uint8_t* w, unsigned long long row_bytes, int rows, int units, const __nv_bfloat16* x,  \
                              int n, void* out, int out_dtype, int split_units) {                                            \
        iqrs::mm<T, bn, bn == 64 ? 4 : 2>(w, row_bytes, rows, units, x, n, out, out_dtype, split_units);                                       \
    }

/// The fused matrix multiply of a type: `iqrs_mm_<name>_{64,128}` (vectors per block).
#define IQRS_MM_KERNELS(name, T) \
    IQRS_MM_ENTRY(name, T, 64)   \
    IQRS_MM_ENTRY(name, T, 128)
