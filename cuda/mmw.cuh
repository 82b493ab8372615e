// The fused matrix multiply on Hopper's warpgroup MMA (sm_90a only; cuda/mmw_sm90a.cu): `out =
// x · Wᵀ` for bf16 activations without writing the dequantized W to global memory, as mm.cuh
// does, but with `wgmma.mma_async`, which multiplies from shared memory asynchronously.
//
// A block computes a 128 x BN tile of the output (128 rows of W, BN = 128 or 256 vectors) in
// stages of 64 weights (two units of every row); its four warpgroups specialize:
// * two producers, 64 rows each. The raw bytes of their rows' next 256-weight block are copied
//   into shared memory by the bulk-copy engine a block ahead (`cp.async.bulk`, one copy per row
//   group), so the decode reads shared memory and never waits on global memory: a stage's unit
//   is decoded by the type's `unit()` (+ `bf16_chunk`: the values the bf16 dequantize kernel
//   writes, bit for bit) from a copy of the row laid out as `unit()` reads a row — the header
//   (row scales) just before the block, at the block's address modulo 16 — into the stage's
//   W tile (128 x 64 bf16). The stage's x tile (BN x 64 bf16) is loaded by the tensor-memory
//   accelerator (one `cp.async.bulk.tensor` a stage, in the 128-byte swizzle, zeros past n).
// * two consumers, 64 rows each: m64n128k16 (two a k-step at BN = 256) from the stage's tiles
//   once it is full; the stage is released when their MMAs on it are done.
// Stages and raw blocks are handed over with mbarriers; the producers give up registers to the
// consumers (`setmaxnreg`), which hold BN / 2 f32 accumulators a thread (m64n128k16 tiles).
#pragma once
// Included at the end of kernels.cuh (IQRS_MMW_MODULE), whose helpers and mm.cuh's it uses.

namespace iqrs {

/// Weight rows per block of the warpgroup matrix multiply: two producer/consumer pairs of 64.
constexpr int MMW_BM = 128;
/// Threads per block: two producer and two consumer warpgroups.
constexpr int MMW_THREADS = 512;
/// Dynamic shared memory of every warpgroup kernel (the most an sm_90 block may have); what a
/// type's raw blocks leave of it holds the stages.
constexpr int MMW_SMEM = 227 * 1024;
/// Registers a thread of a producer / consumer warpgroup keeps after `setmaxnreg` (together the
/// SM's 65536: 128 a thread at launch).
constexpr int MMW_PRODUCER_REGS = 88, MMW_CONSUMER_REGS = 168;
static_assert(2 * 128 * (MMW_PRODUCER_REGS + MMW_CONSUMER_REGS) == 65536);

/// The bytes of one 256-weight block of a row group: `T::GROUP_BLOCK_BYTES` where the type sets
/// it (the interleaved types), else its `BLOCK_BYTES`.
template <class T, class = void>
struct GroupBlockBytes : std::integral_constant<int, T::BLOCK_BYTES> {};
template <class T>
struct GroupBlockBytes<T, std::void_t<decltype(T::GROUP_BLOCK_BYTES)>> : std::integral_constant<int, T::GROUP_BLOCK_BYTES> {};

/// Shared memory of the kernel of type T and width BN: the stages (W tile then x tile, each
/// 1024-byte aligned), the raw blocks (two a producer), then the mbarriers.
template <class T, int BN>
struct MmwSmem {
    static constexpr int RPG = T::ROWS_PER_GROUP;
    static constexpr int GBB = GroupBlockBytes<T>::value;
    static constexpr int SLOTS = 64 / RPG;  // row groups a producer copies
    /// A row group's raw block: 16 bytes for its header, then the block's 16-byte chunks; an odd
    /// number of 16 bytes, so that the 16 rows a decoding warp reads are spread over the banks
    /// (a multiple of 128 bytes put them all on the same banks: IQ6_K's 256 took 2x as long).
    static constexpr int SLOT0 = 16 + (GBB + 15 + 15) / 16 * 16;
    static constexpr int SLOT = SLOT0 / 16 % 2 ? SLOT0 : SLOT0 + 16;
    static constexpr int RAW = SLOTS * SLOT;  // one raw block of a producer
    static constexpr int A = MMW_BM * 128;    // W tile bytes (128 rows x 64 bf16)
    static constexpr int B = BN * 128;        // x tile bytes
    static constexpr int STAGE = A + B;
    static constexpr int BARRIER_BYTES = 128;
    static constexpr int STAGES = (MMW_SMEM - 1024 - 4 * RAW - BARRIER_BYTES) / STAGE < 4 ? (MMW_SMEM - 1024 - 4 * RAW - BARRIER_BYTES) / STAGE : 4;
    static_assert(STAGES >= 2, "two stages at least");
    static constexpr int RAW0 = STAGES * STAGE;
    static constexpr int BARRIERS = RAW0 + 4 * RAW;
    static_assert(BARRIERS + BARRIER_BYTES + 1024 <= MMW_SMEM);
};

/// Byte offset of 16-byte chunk `c` (0..7: the stage's weights 8c .. 8c + 7) of row `r` in a stage
/// tile: 128-byte rows whose chunks are permuted by XOR with r % 8 (the 128-byte swizzle, as the
/// tensor-memory accelerator writes the x tile; bank-conflict free for the decoders' stores).
__device__ __forceinline__ uint32_t mmw_offset(int r, int c) { return uint32_t(r * 128 + ((c ^ (r & 7)) << 4)); }

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
/// Orders this thread's ordinary shared-memory accesses with those of the async proxy (wgmma,
/// bulk copies).
__device__ __forceinline__ void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;" ::: "memory"); }

/// An mbarrier at shared address `bar` expecting `count` arrivals a phase.
__device__ __forceinline__ void mbar_init(uint32_t bar, int count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(bar), "r"(count) : "memory");
}
/// This thread's arrival on the mbarrier (release: its earlier writes are seen by the waiters).
__device__ __forceinline__ void mbar_arrive(uint32_t bar) {
    asm volatile("{\n.reg .b64 state;\nmbarrier.arrive.shared::cta.b64 state, [%0];\n}\n" ::"r"(bar) : "memory");
}
/// An arrival that also expects `bytes` more of asynchronous copies in this phase.
__device__ __forceinline__ void mbar_arrive_expect(uint32_t bar, uint32_t bytes) {
    asm volatile("{\n.reg .b64 state;\nmbarrier.arrive.expect_tx.shared::cta.b64 state, [%0], %1;\n}\n" ::"r"(bar), "r"(bytes) : "memory");
}
/// Waits until the mbarrier's phase of parity `parity` has completed (acquire).
__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
    uint32_t done;
    do {
        asm volatile("{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
                     : "=r"(done)
                     : "r"(bar), "r"(parity)
                     : "memory");
    } while (!done);
}
/// `bytes` (a multiple of 16) global → shared by the bulk-copy engine, completing on `bar`.
__device__ __forceinline__ void bulk_copy(uint32_t dst, const void* src, uint32_t bytes, uint32_t bar) {
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(dst), "l"(src), "r"(bytes), "r"(bar)
                 : "memory");
}
/// The box at (k, v) of the 2-D tensor map `map` → shared `dst`, completing on `bar`.
__device__ __forceinline__ void tensor_copy_2d(uint32_t dst, const void* map, int k, int v, uint32_t bar) {
    asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];" ::"r"(dst), "l"(map), "r"(k), "r"(v),
                 "r"(bar)
                 : "memory");
}
/// A barrier of the `count` threads that name `id` (1..15; 0 is `__syncthreads`).
__device__ __forceinline__ void named_barrier(int id, int count) { asm volatile("bar.sync %0, %1;" ::"r"(id), "r"(count) : "memory"); }
/// The warpgroup's register budget from here on: `setmaxnreg`, down or up.
template <int N>
__device__ __forceinline__ void regs_down() { asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;" ::"n"(N)); }
template <int N>
__device__ __forceinline__ void regs_up() { asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;" ::"n"(N)); }

/// A CUtensorMap (cuda.h), passed by value as a `__grid_constant__` kernel parameter.
struct alignas(64) TensorMap {
    uint64_t opaque[16];
};

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

/// `out[v][row] = Σ_k W[row, k] · x[v, k]`, as `mm` (mm.cuh) computes it, x given by `x_map`
/// (bf16, `cols` x n, boxes of 64 x BN, 128-byte swizzle): grid (⌈n / BN⌉, ⌈rows / 128⌉, splits),
/// f32 partial sums per split (`split_units` a multiple of 8). Dynamic shared memory: MMW_SMEM.
template <class T, int BN>
__device__ __forceinline__ void mmw(const uint8_t* __restrict__ w, size_t row_bytes, int rows, int units, const TensorMap& x_map, int n,
                                    void* __restrict__ out, int out_dtype, int split_units) {
    using S = MmwSmem<T, BN>;
    constexpr int RPG = S::RPG, GBB = S::GBB, ST = S::STAGES;
    extern __shared__ uint8_t smem_raw[];
    const uint32_t raw = smem_addr(smem_raw), base = (raw + 1023) & ~1023u;
    uint8_t* const sm = smem_raw + (base - raw);
    // mbarriers: full[ST], empty[ST], then raw_full[producer][2].
    const uint32_t full = base + S::BARRIERS, empty = full + 8 * ST, raw_full = empty + 8 * ST;

    const int tid = threadIdx.x, wg = tid >> 7;
    if (tid == 0) {
        for (int i = 0; i < ST; ++i) {
            mbar_init(full + 8 * i, 2 * 128 + 1);  // the producers' threads and the x tile's expect_tx
            mbar_init(empty + 8 * i, 2 * 128);     // the consumers' threads
        }
        for (int i = 0; i < 4; ++i) mbar_init(raw_full + 8 * i, S::SLOTS);  // a producer's copying threads
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    }
    __syncthreads();

    const int row0 = blockIdx.y * MMW_BM, v0 = blockIdx.x * BN;
    // Stages of 2 units: s0 .. s1 - 1 for this split (whole 256-weight blocks); stage j of the
    // block uses buffer j % ST.
    const int s0 = blockIdx.z * (split_units / 2), s1 = min(units, int(blockIdx.z + 1) * split_units) / 2;
    const int count = s1 - s0;

    if (wg < 2) {
        regs_down<MMW_PRODUCER_REGS>();
        const int c = wg, pt = tid & 127;
        const size_t group_bytes = row_bytes * RPG;
        const int nb = units / 8;
        const int header = int(group_bytes - size_t(nb) * GBB);  // row scales before the blocks: 0, 2, 4 or 16 bytes
        const uint32_t raw_base = base + S::RAW0 + c * 2 * S::RAW;
        // Row group `slot` of this producer (rows past the last read the last group).
        auto group_ptr = [&](int slot) { return w + size_t(min(row0 + 64 * c + slot * RPG, rows - RPG) / RPG) * group_bytes; };

        // The copying thread of slot pt: its header, and the bytes of a block past its last whole
        // 16 (copied by plain loads, so that no copy reads past the block).
        uint32_t head[8] = {}, tail[8] = {};
        const uint8_t* my_group = group_ptr(min(pt, S::SLOTS - 1));
        if (pt < S::SLOTS) {
#pragma unroll
            for (int i = 0; i < 8; ++i)
                if (2 * i < header) head[i] = ld_u16(my_group + 2 * i);
        }
        // Starts the copy of block `blk` of slot pt into raw buffer `b`; its tail into `tail`.
        auto copy_block = [&](int blk, int b) {
            const uint8_t* start = my_group + header + size_t(blk) * GBB;
            const uintptr_t a0 = reinterpret_cast<uintptr_t>(start) & ~uintptr_t(15);
            const uintptr_t a1 = (reinterpret_cast<uintptr_t>(start) + GBB) & ~uintptr_t(15);
            const uint32_t bar = raw_full + 8 * (2 * c + b);
            mbar_arrive_expect(bar, uint32_t(a1 - a0));
            if (a1 > a0) bulk_copy(raw_base + b * S::RAW + pt * S::SLOT + 16, reinterpret_cast<const void*>(a0), uint32_t(a1 - a0), bar);
            const int tail_bytes = int(reinterpret_cast<uintptr_t>(start) + GBB - a1);
#pragma unroll
            for (int i = 0; i < 8; ++i)
                if (2 * i < tail_bytes) tail[i] = ld_u16(reinterpret_cast<const uint8_t*>(a1) + 2 * i);
        };
        // Where slot `slot`'s copy of block `blk` starts in raw buffer `b`, as a row-group pointer
        // for `unit()`: the block at the address of its bytes modulo 16, the header before it.
        auto raw_group = [&](int slot, int blk, int b) {
            const uintptr_t start = reinterpret_cast<uintptr_t>(group_ptr(slot)) + header + size_t(blk) * GBB;
            return sm + (S::RAW0 + (2 * c + b) * S::RAW + slot * S::SLOT + 16 + int(start & 15) - header);
        };

        const int blk0 = s0 / 4;
        if (pt < S::SLOTS && count > 0) copy_block(blk0, 0);
        // ILP stages at a time: their units' decodes are independent, so one thread's latency
        // chains overlap (a decode from shared memory is a long chain; one a thread at a time
        // left the tensor cores waiting). Fewer than the buffers, so the consumers keep one.
        constexpr int ILP = ST >= 3 ? 2 : 1;
        for (int j = 0; j < count; j += ILP) {
            const int bl = j / 4, b = bl & 1;
            if (j % 4 == 0) {
                // A new block: its raw bytes are here; write its header and tail beside them.
                mbar_wait(raw_full + 8 * (2 * c + b), (bl >> 1) & 1);
                if (pt < S::SLOTS) {
                    uint8_t* g = raw_group(pt, blk0 + bl, b);
                    const uintptr_t start = reinterpret_cast<uintptr_t>(my_group) + header + size_t(blk0 + bl) * GBB;
                    const int tail_at = int(((start + GBB) & ~uintptr_t(15)) - start);
#pragma unroll
                    for (int i = 0; i < 8; ++i) {
                        if (2 * i < header) *reinterpret_cast<uint16_t*>(g + 2 * i) = uint16_t(head[i]);
                        if (2 * i < GBB - tail_at) *reinterpret_cast<uint16_t*>(g + header + tail_at + 2 * i) = uint16_t(tail[i]);
                    }
                }
                fence_proxy_async();  // this producer's reads of the other buffer, before it is refilled
                named_barrier(1 + c, 128);
                if (pt < S::SLOTS && 4 * (bl + 1) < count) copy_block(blk0 + bl + 1, b ^ 1);
            }
            // Unit pt % 2 of each stage in row pt / 2 of this producer's 64.
            const int r = pt >> 1, u = pt & 1;
            const uint8_t* const g = raw_group(r / RPG, blk0 + bl, b);
            Unit xu[ILP];
#pragma unroll
            for (int e = 0; e < ILP; ++e) xu[e] = T::unit(g, r % RPG, (2 * (s0 + j + e) + u) & 7);
#pragma unroll
            for (int e = 0; e < ILP; ++e) {
                const int buf = (j + e) % ST;
                mbar_wait(empty + 8 * buf, (((j + e) / ST) & 1) ^ 1);  // the first use passes at once
                if (tid == 0) {
                    mbar_arrive_expect(full + 8 * buf, S::B);
                    tensor_copy_2d(base + buf * S::STAGE + S::A, &x_map, (s0 + j + e) * 64, v0, full + 8 * buf);
                }
                uint8_t* const at = sm + buf * S::STAGE;
#pragma unroll
                for (int q = 0; q < 4; ++q) *reinterpret_cast<uint4*>(at + mmw_offset(64 * c + r, 4 * u + q)) = bf16_chunk(xu[e], q);
                fence_proxy_async();
                mbar_arrive(full + 8 * buf);
            }
        }
        return;
    }

    regs_up<MMW_CONSUMER_REGS>();
    const int c = wg - 2;  // rows 64·c .. + 63 of the tile
    // BN / 128 accumulator tiles of 64 x 128 (one m64n256k16 needs more registers than a
    // thread of a 512-thread block is compiled with).
    constexpr int NT = BN / 128;
    float acc[NT][64];
#pragma unroll
    for (int t = 0; t < NT; ++t)
#pragma unroll
        for (int i = 0; i < 64; ++i) acc[t][i] = 0.0f;

    for (int j = 0; j < count; ++j) {
        const int buf = j % ST;
        mbar_wait(full + 8 * buf, (j / ST) & 1);
        wgmma_fence();
        const uint32_t a_addr = base + buf * S::STAGE + c * 64 * 128, b_addr = base + buf * S::STAGE + S::A;
#pragma unroll
        for (int kk = 0; kk < 4; ++kk)  // k16 step kk: 32 bytes further into the 128-byte rows
#pragma unroll
            for (int t = 0; t < NT; ++t) wgmma_m64n128k16(acc[t], wgmma_desc(a_addr + kk * 32), wgmma_desc(b_addr + t * 128 * 128 + kk * 32), 1);
        wgmma_commit();
        wgmma_wait<1>();  // stage j - 1's MMAs are done: its buffer may be refilled
        if (j > 0) mbar_arrive(empty + 8 * ((j - 1) % ST));
    }
    wgmma_wait<0>();

    // acc[t][i]: row 16·warp + lane / 4 + 8·(i / 2 % 2) of the warpgroup's 64, vector 128·t +
    // 8·(i / 4) + 2·(lane % 4) + i % 2.
    const int lane = tid & 31, warp = (tid >> 5) & 3;
    float* part = gridDim.z > 1 ? static_cast<float*>(out) + size_t(blockIdx.z) * n * rows : nullptr;
#pragma unroll
    for (int t = 0; t < NT; ++t)
#pragma unroll
        for (int i = 0; i < 64; ++i) {
            const int row = row0 + c * 64 + warp * 16 + (lane >> 2) + 8 * ((i >> 1) & 1);
            const int v = v0 + 128 * t + 8 * (i >> 2) + 2 * (lane & 3) + (i & 1);
            if (row < rows && v < n) {
                if (part) {
                    part[size_t(v) * rows + row] = acc[t][i];
                } else {
                    store_elem(out, out_dtype, size_t(v) * rows + row, acc[t][i]);
                }
            }
        }
}

}  // namespace iqrs

#define IQRS_MMW_ENTRY(name, T, bn)                                                                                            \
    extern "C" __global__ void __launch_bounds__(iqrs::MMW_THREADS, 1)                                                        \
        iqrs_mmw_##name##_##bn(const uint8_t* w, unsigned long long row_bytes, int rows, int units,                           \
                               const __grid_constant__ iqrs::TensorMap x_map, int n, void* out, int out_dtype, int split_units) { \
        iqrs::mmw<T, bn>(w, row_bytes, rows, units, x_map, n, out, out_dtype, split_units);                                    \
    }

/// The warpgroup matrix multiply of a type: `iqrs_mmw_<name>_{128,256}` (vectors per block).
#define IQRS_MMW_KERNELS(name, T) \
    IQRS_MMW_ENTRY(name, T, 128)  \
    IQRS_MMW_ENTRY(name, T, 256)
