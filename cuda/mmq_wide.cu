// The 4-tile quantized matrix multiply (17 and more vectors, `iqrs_mmq_<type>_4`) of the types
// whose family's file says `PLAIN` (kernels.cuh), in a module of its own so that their decoders
// read W through plain loads instead of `__ldg` (IQRS_GENERIC_LD, common.cuh). On an H100 those
// types' kernels measured 1.00-1.19x faster so (iq4_ks_r4 28672x8192 n=32 138.8 -> 121.4 µs,
// iq4_k 178.3 -> 162.2), the others' 0.95-1.00x (cuda/NOTES.md); other kernels lost more.
#ifndef IQRS_GENERIC_LD
#define IQRS_GENERIC_LD 1
#endif
#define IQRS_MMQ_WIDE_MODULE 1

#include "k.cu"
#include "ks.cu"
#include "q8k.cu"
#include "r4.cu"
