// Kernels of the row-scale types with small tables: IQ5_KS, IQ3_KS, IQ2_KS, IQ2_KL.
#include "kernels.cuh"
#include "rowscale.cuh"

IQRS_TYPE_KERNELS(iq5_ks, iqrs::IQ5KS)
IQRS_TYPE_KERNELS(iq3_ks, iqrs::IQ3KS)
IQRS_TYPE_KERNELS(iq2_ks, iqrs::IQ2KS)
IQRS_TYPE_KERNELS(iq2_kl, iqrs::IQ2KL)
