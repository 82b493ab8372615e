// Kernels of the IQ4_KS family.
#include "kernels.cuh"
#include "ks.cuh"

IQRS_TYPE_KERNELS(iq4_ks, iqrs::IQ4KS)
IQRS_TYPE_KERNELS(iq4_kss, iqrs::IQ4KSS)
