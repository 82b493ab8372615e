// Kernels of Q8_K as a weight type.
#include "kernels.cuh"
#include "q8k.cuh"

IQRS_TYPE_KERNELS(q8_k, iqrs::Q8K, LDG)
