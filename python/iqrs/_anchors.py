"""Reference numbers: ik_llama.cpp 8337e4cd3 measured on this kind of machine (2 vCPUs,
AVX-512 VNNI), copied from the project's anchor table (cpu_ik_llama.md). Units: quantize in
weights/s, dequantize in GB/s of float32 written, mat-vec (cold) in GB/s of weights read,
mat-mat (14336x4096 by 512 columns) in GFLOP/s, keyed by thread count."""

READ_BANDWIDTH_GBPS = {1: 16.793, 2: 33.762}

REFERENCE = {
    'q8_k': {'quantize_noimat_1': 1467670000.0, 'quantize_noimat_2': 4628070000.0, 'dequantize_1': 19.1026, 'dequantize_2': 40.5434, 'wrmse_noimat': 0.00114019814},
    'iq2_k': {'quantize_noimat_1': 2569980.0, 'quantize_noimat_2': 4984980.0, 'quantize_imat_1': 2482550.0, 'quantize_imat_2': 4941790.0, 'dequantize_1': 6.87434, 'matvec_1': 8.12178, 'matmat_1': 251.546, 'dequantize_2': 13.0966, 'matvec_2': 16.3773, 'matmat_2': 507.055, 'wrmse_noimat': 0.0231867586, 'wrmse_imat': 0.0208307818},
    'iq3_k': {'quantize_noimat_1': 6088440.0, 'quantize_noimat_2': 12078700.0, 'quantize_imat_1': 5953160.0, 'quantize_imat_2': 11732200.0, 'dequantize_1': 3.96182, 'matvec_1': 6.71337, 'matmat_1': 247.357, 'dequantize_2': 7.83448, 'matvec_2': 13.3371, 'matmat_2': 479.601, 'wrmse_noimat': 0.0108963335, 'wrmse_imat': 0.0101034364},
    'iq4_k': {'quantize_noimat_1': 3885910.0, 'quantize_noimat_2': 7639410.0, 'quantize_imat_1': 3848200.0, 'quantize_imat_2': 7541070.0, 'dequantize_1': 5.62154, 'matvec_1': 8.99912, 'matmat_1': 247.87, 'dequantize_2': 12.1382, 'matvec_2': 18.5865, 'matmat_2': 494.29, 'wrmse_noimat': 0.00527522095, 'wrmse_imat': 0.0048617362},
    'iq5_k': {'quantize_noimat_1': 3703150.0, 'quantize_noimat_2': 7136560.0, 'quantize_imat_1': 3675110.0, 'quantize_imat_2': 7349580.0, 'dequantize_1': 3.88343, 'matvec_1': 8.82826, 'matmat_1': 251.389, 'dequantize_2': 8.852, 'matvec_2': 17.9545, 'matmat_2': 489.427, 'wrmse_noimat': 0.00272124918, 'wrmse_imat': 0.00260492729},
    'iq6_k': {'quantize_noimat_1': 2240930.0, 'quantize_noimat_2': 4486670.0, 'quantize_imat_1': 2223640.0, 'quantize_imat_2': 4412790.0, 'dequantize_1': 6.47073, 'matvec_1': 8.06119, 'matmat_1': 240.772, 'dequantize_2': 12.9431, 'matvec_2': 15.9442, 'matmat_2': 478.826, 'wrmse_noimat': 0.00126051663, 'wrmse_imat': 0.00119219421},
    'iq2_ks': {'quantize_noimat_1': 824001, 'quantize_noimat_2': 1663010.0, 'quantize_imat_1': 812997, 'quantize_imat_2': 1612580.0, 'dequantize_1': 6.36591, 'matvec_1': 5.33616, 'matmat_1': 252.253, 'dequantize_2': 13.5494, 'matvec_2': 10.8261, 'matmat_2': 508.081, 'wrmse_noimat': 0.0278067469, 'wrmse_imat': 0.0248299479},
    'iq3_ks': {'quantize_noimat_1': 4390520.0, 'quantize_noimat_2': 8762910.0, 'quantize_imat_1': 4354550.0, 'quantize_imat_2': 8574670.0, 'dequantize_1': 3.80503, 'matvec_1': 5.94809, 'matmat_1': 248.64, 'dequantize_2': 7.70151, 'matvec_2': 11.5755, 'matmat_2': 499.564, 'wrmse_noimat': 0.0148937346, 'wrmse_imat': 0.0134307494},
    'iq4_ks': {'quantize_noimat_1': 4122540.0, 'quantize_noimat_2': 8195230.0, 'quantize_imat_1': 4133250.0, 'quantize_imat_2': 8081210.0, 'dequantize_1': 7.92661, 'matvec_1': 7.45912, 'matmat_1': 249.233, 'dequantize_2': 15.6234, 'matvec_2': 14.7295, 'matmat_2': 497.239, 'wrmse_noimat': 0.0066395441, 'wrmse_imat': 0.00622584423},
    'iq5_ks': {'quantize_noimat_1': 3652190.0, 'quantize_noimat_2': 7094230.0, 'quantize_imat_1': 3607510.0, 'quantize_imat_2': 7182450.0, 'dequantize_1': 4.26443, 'matvec_1': 7.88642, 'matmat_1': 237.436, 'dequantize_2': 8.90961, 'matvec_2': 15.4248, 'matmat_2': 491.901, 'wrmse_noimat': 0.0034125577, 'wrmse_imat': 0.00326561206},
    'iq4_kss': {'quantize_noimat_1': 1357130.0, 'quantize_noimat_2': 2655750.0, 'quantize_imat_1': 1337680.0, 'quantize_imat_2': 2646560.0, 'dequantize_1': 5.19654, 'matvec_1': 5.50576, 'matmat_1': 248.267, 'dequantize_2': 6.24693, 'matvec_2': 10.4624, 'matmat_2': 488.689, 'wrmse_noimat': 0.00985381432, 'wrmse_imat': 0.00751182657},
    'iq2_kl': {'quantize_noimat_1': 3373220.0, 'quantize_noimat_2': 6759540.0, 'quantize_imat_1': 3361810.0, 'quantize_imat_2': 6630480.0, 'dequantize_1': 5.8228, 'matvec_1': 5.01571, 'matmat_1': 249.626, 'dequantize_2': 11.2907, 'matvec_2': 9.72132, 'matmat_2': 497.974, 'wrmse_noimat': 0.0182867877, 'wrmse_imat': 0.0169599289},
    'iq2_k_r4': {'quantize_noimat_1': 2492000.0, 'quantize_noimat_2': 4916970.0, 'quantize_imat_1': 2490590.0, 'quantize_imat_2': 4873370.0, 'dequantize_1': 7.08754, 'matvec_1': 6.70005, 'matmat_1': 137.391, 'dequantize_2': 13.6063, 'matvec_2': 13.1164, 'matmat_2': 269.09, 'wrmse_noimat': 0.0231867586, 'wrmse_imat': 0.0208307818},
    'iq3_k_r4': {'quantize_noimat_1': 5967470.0, 'quantize_noimat_2': 11649300.0, 'quantize_imat_1': 5838290.0, 'quantize_imat_2': 11368000.0, 'dequantize_1': 3.10945, 'matvec_1': 6.22919, 'matmat_1': 133.323, 'dequantize_2': 5.98144, 'matvec_2': 12.3985, 'matmat_2': 263.466, 'wrmse_noimat': 0.0108963335, 'wrmse_imat': 0.0101034364},
    'iq4_k_r4': {'quantize_noimat_1': 3859190.0, 'quantize_noimat_2': 7614370.0, 'quantize_imat_1': 3792990.0, 'quantize_imat_2': 7472450.0, 'dequantize_1': 6.14261, 'matvec_1': 8.68079, 'matmat_1': 141.773, 'dequantize_2': 13.7434, 'matvec_2': 16.7362, 'matmat_2': 280.024, 'wrmse_noimat': 0.00527522095, 'wrmse_imat': 0.0048617362},
    'iq5_k_r4': {'quantize_noimat_1': 3576920.0, 'quantize_noimat_2': 7034840.0, 'quantize_imat_1': 3523740.0, 'quantize_imat_2': 7205780.0, 'dequantize_1': 4.62683, 'matvec_1': 6.99608, 'matmat_1': 134.798, 'dequantize_2': 9.2047, 'matvec_2': 12.522, 'matmat_2': 265.788, 'wrmse_noimat': 0.00272124918, 'wrmse_imat': 0.00260492729},
    'iq4_ks_r4': {'quantize_noimat_1': 4179600.0, 'quantize_noimat_2': 8023070.0, 'quantize_imat_1': 4129460.0, 'quantize_imat_2': 8179900.0, 'dequantize_1': 7.99428, 'matvec_1': 9.20839, 'matmat_1': 125.526, 'dequantize_2': 14.965, 'matvec_2': 18.2154, 'matmat_2': 246.532, 'wrmse_noimat': 0.0066395441, 'wrmse_imat': 0.00622584423},
    'iq5_ks_r4': {'quantize_noimat_1': 3783920.0, 'quantize_noimat_2': 7243650.0, 'quantize_imat_1': 3691050.0, 'quantize_imat_2': 7457270.0, 'dequantize_1': 4.85458, 'matvec_1': 7.28273, 'matmat_1': 109.675, 'dequantize_2': 9.49816, 'matvec_2': 13.0103, 'matmat_2': 219.403, 'wrmse_noimat': 0.0034125577, 'wrmse_imat': 0.00326561206},
    'iq2_kt': {'quantize_noimat_1': 1007090.0, 'quantize_noimat_2': 2004120.0, 'quantize_imat_1': 1034060.0, 'quantize_imat_2': 2065040.0, 'dequantize_1': 3.23949, 'matvec_1': 1.74638, 'matmat_1': 188.889, 'dequantize_2': 6.12491, 'matvec_2': 3.6442, 'matmat_2': 364.727, 'wrmse_noimat': 0.0298182129, 'wrmse_imat': 0.022972993},
    'iq3_kt': {'quantize_noimat_1': 415429, 'quantize_noimat_2': 845229, 'quantize_imat_1': 402424, 'quantize_imat_2': 812262, 'dequantize_1': 0.700144, 'matvec_1': 2.1058, 'matmat_1': 180.564, 'dequantize_2': 1.36327, 'matvec_2': 4.16231, 'matmat_2': 352.981, 'wrmse_noimat': 0.0153716929, 'wrmse_imat': 0.0123051127},
    'iq4_kt': {'quantize_noimat_1': 458624, 'quantize_noimat_2': 950131, 'quantize_imat_1': 459680, 'quantize_imat_2': 939505, 'dequantize_1': 2.02678, 'matvec_1': 2.5549, 'matmat_1': 181.187, 'dequantize_2': 3.93216, 'matvec_2': 5.0505, 'matmat_2': 358.385, 'wrmse_noimat': 0.00763089564, 'wrmse_imat': 0.00621819418},
    'f16': {'quantize_noimat_1': 2524110000.0, 'quantize_noimat_2': 8419640000.0, 'dequantize_1': 6.85095, 'matvec_1': 13.2064, 'matmat_1': 106.907, 'dequantize_2': 11.4708, 'matvec_2': 23.6555, 'matmat_2': 217.702, 'wrmse_noimat': 1.43904023e-05},
    'bf16': {'quantize_noimat_1': 2085850000.0, 'quantize_noimat_2': 8244920000.0, 'dequantize_1': 17.0194, 'matvec_1': 14.0087, 'matmat_1': 84.3597, 'dequantize_2': 33.0845, 'matvec_2': 27.919, 'matmat_2': 166.665, 'wrmse_noimat': 0.000115097777},
    'q8_0': {'quantize_noimat_1': 211368000.0, 'quantize_noimat_2': 338977000.0, 'dequantize_1': 20.1201, 'matvec_1': 9.21497, 'matmat_1': 184.979, 'dequantize_2': 37.9052, 'matvec_2': 18.1375, 'matmat_2': 364.982, 'wrmse_noimat': 0.00052199243},
    'q4_0': {'quantize_noimat_1': 621688000.0, 'quantize_noimat_2': 1217320000.0, 'quantize_imat_1': 14818100.0, 'quantize_imat_2': 29522600.0, 'dequantize_1': 5.57599, 'matvec_1': 6.77026, 'matmat_1': 186.054, 'dequantize_2': 7.58493, 'matvec_2': 13.2193, 'matmat_2': 368.265, 'wrmse_noimat': 0.00827302346, 'wrmse_imat': 0.00797558036},
    'q2_k': {'quantize_noimat_1': 16018700.0, 'quantize_noimat_2': 31993900.0, 'quantize_imat_1': 8954290.0, 'quantize_imat_2': 17692100.0, 'dequantize_1': 5.70033, 'matvec_1': 7.98163, 'matmat_1': 243.207, 'dequantize_2': 11.0895, 'matvec_2': 15.8381, 'matmat_2': 478.805, 'wrmse_noimat': 0.0221273029, 'wrmse_imat': 0.0188590916},
}


# GPU: ik_llama.cpp 8337e4cd3 (CUDA, sm_90) on an H100 80GB HBM3, from the project's gpu_h100.md:
# microseconds per `ggml_mul_mat(W, X)` call (X float32 with N columns, quantized to Q8_1 inside
# the call), median of 20 after 3 warm-ups, keyed by type, then (rows, cols) of W, then N.
# "bf16" is the same library's bf16 (cuBLAS) path.
GPU_H100_US = {
    'iq4_kss': {
        (14336, 4096): {1: 27.4, 8: 55.5, 512: 316.7, 4096: 2376.0},
        (28672, 8192): {1: 71.3, 8: 160.2, 512: 1130.4, 4096: 9416.0},
    },
    'iq2_kl': {
        (14336, 4096): {1: 33.6, 8: 74.4, 512: 330.2, 4096: 2368.0},
        (28672, 8192): {1: 94.3, 8: 224.3, 512: 1179.3, 4096: 9292.0},
    },
    'iq4_k_r4': {
        (14336, 4096): {1: 24.2, 8: 51.6, 512: 490.7, 4096: 3530.0},
        (28672, 8192): {1: 71.4, 8: 148.7, 512: 1792.8, 4096: 13862.0},
    },
    'iq2_k_r4': {
        (14336, 4096): {1: 17.7, 8: 36.1, 512: 410.5, 4096: 2897.0},
        (28672, 8192): {1: 47.4, 8: 99.9, 512: 1444.7, 4096: 11543.0},
    },
    'iq4_ks': {
        (14336, 4096): {1: 27.3, 8: 56.4, 512: 312.8, 4096: 2307.0},
        (28672, 8192): {1: 64.1, 8: 156.3, 512: 1109.2, 4096: 9045.0},
    },
    'iq2_k': {
        (14336, 4096): {1: 26.9, 8: 64.1, 512: 407.2, 4096: 2849.0},
        (28672, 8192): {1: 61.7, 8: 190.0, 512: 1453.0, 4096: 11278.0},
    },
    'iq4_k': {
        (14336, 4096): {1: 38.0, 8: 78.6, 512: 466.8, 4096: 3427.0},
        (28672, 8192): {1: 116.2, 8: 240.8, 512: 1692.3, 4096: 13429.0},
    },
    'q4_0': {
        (14336, 4096): {1: 23.8, 8: 46.3, 512: 325.5, 4096: 2455.0},
        (28672, 8192): {1: 61.2, 8: 131.3, 512: 1162.4, 4096: 9538.0},
    },
    'bf16': {
        (14336, 4096): {1: 53.2, 8: 54.1, 512: 128.0, 4096: 836.0},
        (28672, 8192): {1: 172.7, 8: 176.6, 512: 372.4, 4096: 2846.0},
    },
}
# Device-to-device copy on that card, bytes read + written (GB/s).
GPU_H100_COPY_GBPS = 3000.0
