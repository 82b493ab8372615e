// Kernels of the IQ*_K types.
#include "kernels.cuh"
#include "k.cuh"

IQRS_TYPE_KERNELS(iq2_k, iqrs::IQ2K, PLAIN)
IQRS_TYPE_KERNELS(iq3_k, iqrs::IQ3K, LDG)
IQRS_TYPE_KERNELS(iq4_k, iqrs::IQ4K, PLAIN)
IQRS_TYPE_KERNELS(iq5_k, iqrs::IQ5K, PLAIN)
IQRS_TYPE_KERNELS(iq6_k, iqrs::IQ6K, LDG)
