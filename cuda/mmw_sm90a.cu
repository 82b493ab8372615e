// The fused matrix multiply on warpgroup MMA (mmw.cuh) of every type, in a module of its own:
// wgmma needs sm_90a, whose cubin runs on compute capability 9.0 alone (build.rs compiles the
// `*_sm90a.cu` files for that target only; rust/src/cuda/ops.rs uses them where it can).
#define IQRS_MMW_MODULE 1
// The producers decode from shared memory through generic pointers: plain loads, not __ldg.
#define IQRS_GENERIC_LD 1

#include "k.cu"
#include "ks.cu"
#include "q8k.cu"
#include "r4.cu"
