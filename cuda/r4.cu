// Kernels of the row-interleaved _R4 types.
#include "kernels.cuh"
#include "r4.cuh"

IQRS_TYPE_KERNELS(iq2_k_r4, iqrs::IQ2KR4, PLAIN)
IQRS_TYPE_KERNELS(iq3_k_r4, iqrs::IQ3KR4, PLAIN)
IQRS_TYPE_KERNELS(iq4_k_r4, iqrs::IQ4KR4, PLAIN)
IQRS_TYPE_KERNELS(iq5_k_r4, iqrs::IQ5KR4, LDG)
IQRS_TYPE_KERNELS(iq4_ks_r4, iqrs::IQ4KSR4, PLAIN)
IQRS_TYPE_KERNELS(iq5_ks_r4, iqrs::IQ5KSR4, PLAIN)
