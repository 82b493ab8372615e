// Kernels of the row-scale types (IQ4_KS family, IQ5_KS, IQ2_KS, IQ3_KS, IQ2_KL).
#include "kernels.cuh"
#include "ks.cuh"

IQRS_TYPE_KERNELS(iq4_ks, iqrs::IQ4KS, PLAIN)
IQRS_TYPE_KERNELS(iq4_kss, iqrs::IQ4KSS, PLAIN)
IQRS_TYPE_KERNELS(iq5_ks, iqrs::IQ5KS, PLAIN)
IQRS_TYPE_KERNELS(iq2_ks, iqrs::IQ2KS, LDG)
IQRS_TYPE_KERNELS(iq3_ks, iqrs::IQ3KS, PLAIN)
IQRS_TYPE_KERNELS(iq2_kl, iqrs::IQ2KL, LDG)
