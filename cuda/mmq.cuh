// The quantized matrix multiply, written once over a type's `unit()` decoder: `out = x · Wᵀ` for
// activations quantized to int8, with int8 tensor-core MMA (`mma.sync … .s8.s8.s32`) and no
// dequantized W anywhere, not even in shared memory as floats.
//
// A block takes MMQ_ROWS rows of W and 8·NT activation vectors; its MMQ_WARPS warps split the
// columns of W (steps of KU units, dealt round-robin) and add their partial sums at the end.
// Per step a warp decodes its rows' units (unit i = 32j + lane of the step is unit i % KU of row
// i / KU), stores the int8 words to its own slice of shared memory, and reads them back with
// ldmatrix as MMA fragments — the transpose that gives each thread of an MMA quad a word of the
// *same* 16-weight half (all of whose weights share one scale). So no block-wide barrier sits
// between decode and multiply: the warps of an SM run independently and hide each other's load
// latency, as the mat-vec warps do.
//
// Every type's scale is a float factor times a small integer (`Unit::db`, `Unit::l`), the factor
// the same for the 8 units of a 256-weight block. The MMA sums exactly in int32 per 16-weight half
// (SPLIT_SCALE types: m16n8k16, one product per half) or per unit (m16n8k32); those sums times the
// integer scales add up in int32 over 4 units, and only then does f32 come in, once per 4 units:
// acc += (db · dy) · Σ_u (l0·s0 + l1·s1). That takes one scale for each 128 activations (not one
// per 32 as Q8_1 has): on an H200, 7-23% faster than applying float scales per unit at 32-64
// vectors (`scripts/cuda_lab.py time --mmq`, cuda/NOTES.md).
//
// Activations come in the *MMQ layout* (`iqrs_quantize_q8_mmq128`): within every 128 values of a
// vector, value 32u + 16h + 4t + b (unit u, half h, word t, byte b) sits at byte
// 32t + 4(2u + h) + b, so the words a thread needs for 4 units are 32 contiguous bytes.
#pragma once
// Included at the end of kernels.cuh, after mm.cuh, whose helpers it uses.

namespace iqrs {

#ifndef IQRS_MMQ_WARPS
#define IQRS_MMQ_WARPS 4
#endif
/// Warps of a block (the same rows, the columns of W split among them).
constexpr int MMQ_WARPS = IQRS_MMQ_WARPS;
/// 16-row MMA tiles per warp; a block's rows (the launch code in rust/src/cuda/kernels.rs
/// mirrors MMQ_ROWS and MMQ_WARPS).
constexpr int MMQ_MT = 2, MMQ_ROWS = 16 * MMQ_MT;

/// Units a warp's step takes for type `T` (4 or 8): `T::MMQ_UNITS` where the type sets it, else
/// 4. The more units a step, the fewer rows a load instruction of the decode touches (32 / KU):
/// the decode is bound by L1 wavefronts (cuda/NOTES.md), and the heavier decoders of IQ2_K,
/// IQ3_K, IQ5_K and IQ6_K measured 10-30% faster with 8; the others slower.
IQRS_TYPE_KNOB(MmqUnits, MMQ_UNITS, 4)

/// `c = a · b` on a 16x8 int32 tile: a 16x16 (rows x k), b 16x8, int8.
__device__ __forceinline__ void mma_s8_k16(int (&c)[4], uint32_t a0, uint32_t a1, uint32_t b0) {
    asm("mma.sync.aligned.m16n8k16.row.col.s32.s8.s8.s32 {%0, %1, %2, %3}, {%4, %5}, {%6}, {%7, %7, %7, %7};"
        : "=r"(c[0]), "=r"(c[1]), "=r"(c[2]), "=r"(c[3])
        : "r"(a0), "r"(a1), "r"(b0), "r"(0));
}

/// `c = a · b` on a 16x8 int32 tile: a 16x32 (rows x k), b 32x8, int8.
__device__ __forceinline__ void mma_s8_k32(int (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%10, %10, %10, %10};"
        : "=r"(c[0]), "=r"(c[1]), "=r"(c[2]), "=r"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1), "r"(0));
}

/// The chunk (16 bytes) of a warp's staged row `r` (KU units: 2·KU chunks) holding logical chunk
/// `c`: rows XOR-swizzled so that the 8 rows an ldmatrix reads fall on different banks.
template <int KU>
__device__ __forceinline__ int mmq_swz(int r, int c) { return 2 * KU * r + (c ^ (r & 7)); }

/// `out[v][row] = Σ_k W[row, k] · x[v, k]` for `n` vectors quantized to int8 in the MMQ layout
/// (`yq`: n x 32·units int8, `yd`: n x units/4 f32 scales, one per 128 values), `out` of
/// `out_dtype` (n x rows). Grid (⌈n / 8NT⌉, ⌈rows / MMQ_ROWS⌉), block (32, MMQ_WARPS).
template <class T, int NT>
__device__ __forceinline__ void mmq(const uint8_t* __restrict__ w, size_t row_bytes, int rows, int units, const int8_t* __restrict__ yq,
                                    const float* __restrict__ yd, int n, void* __restrict__ out, int out_dtype) {
    constexpr int MT = MMQ_MT, KU = MmqUnits<T>::value;
    __shared__ __align__(128) uint4 sw[MMQ_WARPS][MMQ_ROWS * 2 * KU];  // decoded words, per warp
    __shared__ int2 sl[MMQ_WARPS][MMQ_ROWS * KU];                       // their integer scales (l0, l1)
    __shared__ float sdb[MMQ_WARPS][MMQ_ROWS * KU / 4];                 // their float factors, one per 4 units
    __shared__ float red[MT * NT * 4][32];                              // the warps' partial sums

    const int lane = threadIdx.x, warp = threadIdx.y, g = lane >> 2, q = lane & 3;
    const int row0 = blockIdx.y * MMQ_ROWS, v0 = blockIdx.x * 8 * NT;
    const size_t cols = size_t(units) * UNIT;
    uint4* stw = sw[warp];
    int2* wl = sl[warp];
    float* wdb = sdb[warp];

    // This lane's activation words (vector g of each 8-vector tile) and scales (vectors 2q, 2q + 1);
    // vectors past the last read the last one, and their sums are dropped.
    const int8_t* yb[NT];
    const float* ydl[NT][2];
#pragma unroll
    for (int t = 0; t < NT; ++t) {
        yb[t] = yq + size_t(min(v0 + 8 * t + g, n - 1)) * cols + 32 * q;
#pragma unroll
        for (int e = 0; e < 2; ++e) ydl[t][e] = yd + size_t(min(v0 + 8 * t + 2 * q + e, n - 1)) * (units / 4);
    }

    float acc[MT][NT][4];
#pragma unroll
    for (int m = 0; m < MT; ++m)
#pragma unroll
        for (int t = 0; t < NT; ++t)
#pragma unroll
            for (int e = 0; e < 4; ++e) acc[m][t][e] = 0.0f;

    // Rows past the last repeat it (their sums are dropped).
    constexpr int DEC = MMQ_ROWS * KU / 32;  // units a lane decodes per step
    const int steps = units / KU;
    for (int s = warp; s < steps; s += MMQ_WARPS) {
        const int u0 = s * KU;
#pragma unroll
        for (int j = 0; j < DEC; ++j) {
            const int i = 32 * j + lane, r = i / KU, u = i % KU, row = min(row0 + r, rows - 1);
            const Unit x = T::unit(group_of<T>(w, row_bytes, row), row % T::ROWS_PER_GROUP, u0 + u);
            stw[mmq_swz<KU>(r, 2 * u)] = make_uint4(x.q[0], x.q[1], x.q[2], x.q[3]);
            stw[mmq_swz<KU>(r, 2 * u + 1)] = make_uint4(x.q[4], x.q[5], x.q[6], x.q[7]);
            wl[r * KU + u] = make_int2(x.l[0], x.l[1]);
            if ((u & 3) == 0) wdb[r * (KU / 4) + u / 4] = x.db;  // the same for the 4 units (one block)
        }
        __syncwarp();
        // The step's units 4 at a time (one 128-weight chunk of the activations, one scale).
#pragma unroll
        for (int c = 0; c < KU / 4; ++c) {
            uint32_t a[MT][4][4];
            int2 l[MT][4][2];
            float db[MT][2];
#pragma unroll
            for (int m = 0; m < MT; ++m) {
#pragma unroll
                for (int u = 0; u < 4; ++u) {
                    ldmatrix_x4(a[m][u], &stw[mmq_swz<KU>(16 * m + (lane & 15), 2 * (4 * c + u) + (lane >> 4))]);
#pragma unroll
                    for (int h = 0; h < 2; ++h) l[m][u][h] = wl[(16 * m + g + 8 * h) * KU + 4 * c + u];
                }
#pragma unroll
                for (int h = 0; h < 2; ++h) db[m][h] = wdb[(16 * m + g + 8 * h) * (KU / 4) + c];
            }
#pragma unroll
            for (int t = 0; t < NT; ++t) {
                const uint8_t* yc = reinterpret_cast<const uint8_t*>(yb[t]) + size_t(u0 + 4 * c) * UNIT;
                const uint4 b0 = __ldg(reinterpret_cast<const uint4*>(yc)), b1 = __ldg(reinterpret_cast<const uint4*>(yc + 16));
                const uint32_t bw[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
                const float dy[2] = {__ldg(ydl[t][0] + u0 / 4 + c), __ldg(ydl[t][1] + u0 / 4 + c)};
                // Σ over the 4 units of (exact MMA sum) · l, in int32: |Σ| <= 4 · 32 · 128 · 127 · 128 < 2^28
                int is[MT][4] = {};
#pragma unroll
                for (int u = 0; u < 4; ++u)
#pragma unroll
                    for (int m = 0; m < MT; ++m) {
                        if constexpr (T::SPLIT_SCALE) {
                            int c0[4], c1[4];
                            mma_s8_k16(c0, a[m][u][0], a[m][u][1], bw[2 * u]);
                            mma_s8_k16(c1, a[m][u][2], a[m][u][3], bw[2 * u + 1]);
#pragma unroll
                            for (int e = 0; e < 4; ++e) is[m][e] += c0[e] * l[m][u][e >> 1].x + c1[e] * l[m][u][e >> 1].y;
                        } else {
                            int cs[4];
                            mma_s8_k32(cs, a[m][u], bw[2 * u], bw[2 * u + 1]);
#pragma unroll
                            for (int e = 0; e < 4; ++e) is[m][e] += cs[e] * l[m][u][e >> 1].x;
                        }
                    }
#pragma unroll
                for (int m = 0; m < MT; ++m)
#pragma unroll
                    for (int e = 0; e < 4; ++e) acc[m][t][e] = fmaf(db[m][e >> 1] * dy[e & 1], __int2float_rn(is[m][e]), acc[m][t][e]);
            }
        }
        __syncwarp();  // the next step's stores wait for this step's reads
    }

    // The warps' sums, added in warp order.
#pragma unroll 1
    for (int k = 1; k < MMQ_WARPS; ++k) {
        if (warp == k) {
#pragma unroll
            for (int m = 0; m < MT; ++m)
#pragma unroll
                for (int t = 0; t < NT; ++t)
#pragma unroll
                    for (int e = 0; e < 4; ++e) {
                        float& r = red[(m * NT + t) * 4 + e][lane];
                        r = k == 1 ? acc[m][t][e] : r + acc[m][t][e];
                    }
        }
        __syncthreads();
    }
    if (warp != 0) return;
#pragma unroll
    for (int m = 0; m < MT; ++m)
#pragma unroll
        for (int t = 0; t < NT; ++t)
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const int row = row0 + 16 * m + g + 8 * (e >> 1), v = v0 + 8 * t + 2 * q + (e & 1);
                const float sum = MMQ_WARPS > 1 ? acc[m][t][e] + red[(m * NT + t) * 4 + e][lane] : acc[m][t][e];
                if (row < rows && v < n) store_elem(out, out_dtype, size_t(v) * rows + row, sum);
            }
}

}  // namespace iqrs

// Up to 16 vectors a block (tiles 1 and 2) the registers are capped so that an SM holds 4
// blocks (3 for some types at 16): measured faster (H200: iq4_ks 28672x8192 n=8 85 -> 77 µs,
// n=16 114 -> 95); with 4 tiles the cap spills and is slower (iq4_k n=32 207 -> 339 µs).
namespace iqrs {
/// Blocks an SM the 16-vector kernel of type `T` is compiled for: `T::MMQ_BLOCKS_16` where the
/// type sets it, else 4 (128 registers). IQ2_K and IQ5_K spill at 128 (276 and 184 bytes) and
/// take 3 (H200, 28672x8192 n=16: iq2_k 144 -> 123 µs, iq5_k 193 -> 182; for IQ3_K and IQ6_K,
/// which spill less, 3 was no faster and up to 18% slower on 14336x4096).
IQRS_TYPE_KNOB(MmqBlocks16, MMQ_BLOCKS_16, 4)
/// The launch bounds' blocks an SM: 4 up to 16 vectors; 1 at 32 (a tighter cap spills). One is
/// not the same as none: ptxas then picks other register counts (the measured build asks for 1).
template <class T>
constexpr int mmq_min_blocks(int nt) {
    return nt == 1 ? 4 : nt == 2 ? MmqBlocks16<T>::value : 1;
}
}  // namespace iqrs

#define IQRS_MMQ_ENTRY(name, T, nt)                                                                                          \
    extern "C" __global__ void __launch_bounds__(32 * iqrs::MMQ_WARPS, iqrs::mmq_min_blocks<T>(nt))                          \
        iqrs_mmq_##name##_##nt(const uint8_t* w, unsigned long long row_bytes, int rows, int units, const int8_t* yq,       \
                               const float* yd, int n, void* out, int out_dtype) {                                           \
        iqrs::mmq<T, nt>(w, row_bytes, rows, units, yq, yd, n, out, out_dtype);                                              \
    }

/// The quantized matrix multiply of a type: `iqrs_mmq_<name>_{1,2}` (8-vector tiles per block);
/// the 4-tile one, `iqrs_mmq_<name>_4`, comes from `IQRS_MMQ4_<LDG|PLAIN>` (kernels.cuh).
#define IQRS_MMQ_KERNELS(name, T) \
    IQRS_MMQ_ENTRY(name, T, 1)    \
    IQRS_MMQ_ENTRY(name, T, 2)
