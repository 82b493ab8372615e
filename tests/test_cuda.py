"""The GPU side. Tests marked ``gpu`` need a CUDA GPU and PyTorch (run ``pytest -m gpu``); they
skip where either is missing. The unmarked ones check the no-GPU behaviour everywhere.

References are float64 on the CPU: the weights as the CPU decodes them (bit-exact, tested in
test_golden.py), the activations as given or, for the mat-vec kernels, as Q8_1 makes them
(blocks of 32, ``d = amax/127``, ``q = round_half_even(x·127/amax)``), so the error bound says
what the kernels add beyond that rounding. Every output is poisoned (NaN) before the launch and
every input is freshly drawn.
"""

import numpy as np
import pytest

import iqrs
from conftest import TYPES, golden_cases, q8k_values, read_case

try:
    import torch
except ImportError:  # the CPU CI has no PyTorch; the GPU machine has
    torch = None

HAVE_GPU = torch is not None and iqrs.cuda.is_available() and torch.cuda.is_available()


def on_gpu(test):
    """Marks a test `gpu` and skips it where there is no GPU (or no PyTorch)."""
    return pytest.mark.gpu(pytest.mark.skipif(not HAVE_GPU, reason="needs a CUDA GPU, PyTorch, and iqrs built with CUDA")(test))


DTYPES = ["float32", "float16", "bfloat16"]
# Relative error of rounding one output to the type (half an ulp).
ROUNDING = {"float32": 2.0**-24, "float16": 2.0**-11, "bfloat16": 2.0**-8}
_seed = iter(range(10_000, 10**9))


def rng():
    return np.random.default_rng(next(_seed))


def tdtype(name):
    return getattr(torch, name)


def weights(name, rows=None, cols=1024, scale=0.05):
    """Fresh gaussian weights with 0.5% outliers x8, quantized; rows not a multiple of the
    mat-vec block (4) where the type allows."""
    info = iqrs.type_info(name)
    rows = rows or (99 if info.rows_per_group == 1 else 100)
    r = rng()
    w = r.standard_normal((rows, cols)) * np.where(r.uniform(size=(rows, cols)) < 0.005, 8.0, 1.0) * scale
    return iqrs.quantize(w.astype(np.float32), name)


def activations(shape, dtype, scale=1.0):
    x = rng().standard_normal(shape).astype(np.float32) * scale
    return torch.from_numpy(x).to(device="cuda", dtype=tdtype(dtype))


def poisoned(shape, dtype):
    return torch.full(shape, float("nan"), dtype=tdtype(dtype), device="cuda")


def q8_1(x, group=32):
    """Q8_1 values of activation rows (float32 in), as the GPU quantizes them, in float64; with
    `group=128`, as it quantizes them for the quantized matrix multiply (one scale per 128)."""
    x = np.asarray(x, np.float32)
    b = x.reshape(x.shape[0], -1, group)
    amax = np.abs(b).max(axis=-1, keepdims=True)
    with np.errstate(divide="ignore"):
        inv = np.where(amax > 0, np.float32(127) / amax, np.float32(0)).astype(np.float32)
    q = np.rint(b * inv)
    d = (amax / np.float32(127)).astype(np.float32)
    return (q.astype(np.float64) * d.astype(np.float64)).reshape(x.shape)


def rounded_activations(x, name, method, n, shape=(4096, 4096)):
    """The activations as the path `method` (auto resolved for W of `shape` on this GPU)
    quantizes them, in float64."""
    path = iqrs.cuda.auto_method(name, n, shape) if method == "auto" else method
    return q8_1(x, group=128 if path == "mmq" else 32)


def rel_err(got, ref):
    got = got.detach().to("cpu", torch.float64).numpy() if torch.is_tensor(got) else np.asarray(got, np.float64)
    assert np.isfinite(got).all(), "NaN/Inf in the output (an element was not written, or overflowed)"
    return float(np.linalg.norm(got - ref) / np.linalg.norm(ref))


# -- everywhere ----------------------------------------------------------------------------


def test_import_and_status_without_needing_a_gpu():
    info = iqrs.cuda.build_info()
    assert isinstance(iqrs.cuda.is_available(), bool)
    assert iqrs.cuda.device_count() >= 0
    if info["compiled"]:
        assert info["archs"] == ["sm_80", "sm_86", "sm_89", "sm_90"] and info["nvcc"] is not None
        major, minor = (int(v) for v in info["nvcc"].split("."))
        assert (major, minor) <= (13, 0), "the PTX must load on a CUDA 13.0 driver"
    if not iqrs.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA|cuda"):
            iqrs.cuda.device_info()
        with pytest.raises(RuntimeError):
            iqrs.quantize(np.ones((4, 256), np.float32), "iq4_ks").cuda()
        assert iqrs.cuda.device_count() == 0


def test_auto_method_names_a_path_for_every_type_and_count():
    for t in iqrs.types():
        for shape in [(4096, 4096), (28672, 8192)]:
            paths = [iqrs.cuda.auto_method(t.name, n, shape) for n in range(1, 600)]
            assert paths[0] == "mmv" and paths[-1] == "gemm_bf16" and "mmq" in paths
            # one hand-over each: mat-vec, then mmq, then (compute capability 9.0) fused, then GEMM
            assert paths == sorted(paths, key=["mmv", "mmq", "fused", "gemm_bf16"].index)
    with pytest.raises(ValueError, match="n must be"):
        iqrs.cuda.auto_method("iq4_ks", 0)
    with pytest.raises(ValueError, match="shape must be"):
        iqrs.cuda.auto_method("iq4_ks", 4, (4096,))
    with pytest.raises(ValueError, match="iq9_k"):
        iqrs.cuda.auto_method("iq9_k", 4)


# -- on a GPU ------------------------------------------------------------------------------


@on_gpu
def test_device_info():
    info = iqrs.cuda.device_info(0)
    assert info["device"] == 0 and isinstance(info["name"], str) and info["name"]
    assert tuple(info["compute_capability"]) >= (8, 0)
    assert info["total_memory"] > 1 << 30 and info["multiprocessors"] > 0 and info["driver_version"] >= 12000
    cc = info["compute_capability"]
    if cc[0] * 10 + cc[1] in (80, 86, 89, 90):
        assert info["kernels"] == f"sm_{cc[0]}{cc[1]}"
    assert iqrs.cuda.device_info("cuda:0") == info


@on_gpu
@pytest.mark.parametrize("name", TYPES)
def test_upload_and_back(name):
    q = weights(name)
    cq = q.cuda()
    assert isinstance(cq, iqrs.CudaQTensor) and cq.type == name and cq.shape == q.shape and cq.nbytes == q.nbytes
    assert cq.device == torch.device("cuda", 0) and cq.data.dtype == torch.uint8
    assert name in repr(cq) and "cuda:0" in repr(cq)
    assert cq.cpu() == q
    assert cq.cuda(0) is cq


@on_gpu
@pytest.mark.parametrize("name", TYPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cols", [256, 768, 1024])
def test_dequantize_matches_the_cpu_bit_for_bit(name, dtype, cols):
    # An odd number of blocks per row (768) starts every other row of the 2-byte aligned types
    # (IQ3_K, IQ2_KS, IQ3_KS, IQ2_KL) off a 4-byte boundary; 256 gives rows of fewer units than a warp.
    q = weights(name, cols=cols)
    ref = torch.from_numpy(q.dequantize())
    out = poisoned(q.shape, dtype)
    got = q.cuda().dequantize(tdtype(dtype), out=out)
    assert got is out
    want = ref.to(tdtype(dtype))  # round to nearest-even, as the kernels do
    assert torch.equal(got.cpu().view(torch.int16 if dtype != "float32" else torch.int32), want.view(torch.int16 if dtype != "float32" else torch.int32))


@on_gpu
@pytest.mark.parametrize("case", golden_cases())
def test_dequantize_reference_bytes_on_the_gpu(case):
    c = read_case(case)
    cq = iqrs.QTensor.from_bytes(c["quant"], c["type"], c["shape"]).cuda()
    got = cq.dequantize(out=poisoned(c["shape"], "float32")).cpu().numpy()
    np.testing.assert_array_equal(got.view(np.uint32), c["dequant"].view(np.uint32))


@on_gpu
@pytest.mark.parametrize("case", golden_cases())
@pytest.mark.parametrize("method", ["mmv", "mmq"])
def test_matvec_on_reference_bytes(case, method):
    # The reference's bytes (every layout detail of the _R4 interleaves included) through the
    # kernels on Q8_1 activations, with the case's activation vector and fresh ones.
    c = read_case(case)
    cq = iqrs.QTensor.from_bytes(c["quant"], c["type"], c["shape"]).cuda()
    rows, cols = c["shape"]
    w64 = c["dequant"].astype(np.float64)
    for n in (1, 4, 8) if method == "mmv" else (1, 12, 40):
        x = np.concatenate([c["y"].reshape(1, cols), rng().standard_normal((n - 1, cols))]).astype(np.float32)
        got = iqrs.linear(torch.from_numpy(x).cuda(), cq, out=poisoned((n, rows), "float32"), method=method)
        assert rel_err(got, rounded_activations(x, c["type"], method, n) @ w64.T) <= 1e-5


@on_gpu
@pytest.mark.parametrize("name", TYPES)
@pytest.mark.parametrize("n", [1, 4])
def test_matvec_with_odd_block_counts(name, n):
    q = weights(name, cols=768)
    rows, cols = q.shape
    x = activations((n, cols), "float32")
    got = iqrs.linear(x, q.cuda(), out=poisoned((n, rows), "float32"))
    assert rel_err(got, q8_1(x.cpu().numpy()) @ q.dequantize().astype(np.float64).T) <= 1e-5


@on_gpu
@pytest.mark.parametrize("name", TYPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 13])
def test_matvec_error_beyond_q8_1_rounding(name, dtype, n):
    q = weights(name)
    rows, cols = q.shape
    w64 = q.dequantize().astype(np.float64)
    x = activations((n, cols), dtype)
    x32 = x.float().cpu().numpy()
    out = poisoned((n, rows), dtype)
    method = "auto" if n <= 8 else "mmv"
    got = iqrs.linear(x, q.cuda(), out=out, method=method)
    assert got is out
    err = rel_err(got, rounded_activations(x32, name, method, n) @ w64.T)
    assert err <= (1e-5 if dtype == "float32" else 1e-3 + ROUNDING[dtype]), err
    if dtype == "float32":
        # Q8_1 (32-value blocks) is finer than the CPU's Q8_K (256): the GPU is at least as close
        # to the exact product as the CPU's `q @ x`.
        exact = x32.astype(np.float64) @ w64.T
        cpu = (q @ x32.T).T
        assert rel_err(got, exact) <= 1.25 * rel_err(cpu, exact) + 1e-7, (rel_err(got, exact), rel_err(cpu, exact))


@on_gpu
@pytest.mark.parametrize("name", TYPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,cols", [(1, 256), (9, 1024), (16, 768), (17, 1024), (32, 512), (70, 1024)])
def test_mmq_error_beyond_q8_rounding(name, dtype, n, cols):
    # The quantized matrix multiply: int8 tensor-core products of W's grid values and the int8
    # activations (one scale per 128) are exact, and so are their sums times W's integer
    # sub-block scales over 4 units; the float factors apply in f32, so against the product of
    # the rounded activations the error is f32 rounding and summation (and the output's
    # rounding). Rows (99/100) are not a multiple of the kernel's 32; n covers 1, 2 and 4 tiles
    # of 8 and several blocks along the vectors (70); 256 columns give the block's 4 warps 2
    # steps (two idle), 768 three of 4 units.
    q = weights(name, cols=cols)
    rows = q.shape[0]
    w64 = q.dequantize().astype(np.float64)
    x = activations((n, cols), dtype)
    out = poisoned((n, rows), dtype)
    got = iqrs.linear(x, q.cuda(), out=out, method="mmq")
    assert got is out
    err = rel_err(got, q8_1(x.float().cpu().numpy(), group=128) @ w64.T)
    assert err <= (1e-5 if dtype == "float32" else 1e-3 + ROUNDING[dtype]), err


@on_gpu
@pytest.mark.parametrize("name", TYPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method,n", [("auto", 9), ("auto", 100), ("auto", 300), ("gemm_f16", 40), ("gemm_bf16", 3), ("fused", 130)])
def test_matmul_within_bf16_error(name, dtype, method, n):
    q = weights(name)
    rows, cols = q.shape
    w64 = q.dequantize().astype(np.float64)
    x = activations((n, cols), dtype)
    out = poisoned((n, rows), dtype)
    got = iqrs.linear(x, q.cuda(), out=out, method=method)
    assert got is out
    assert rel_err(got, x.double().cpu().numpy() @ w64.T) <= 1e-2


@on_gpu
@pytest.mark.parametrize("name", TYPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 17, 64, 65, 200, 300])
def test_fused_is_a_bf16_product(name, dtype, n):
    # The fused kernel decodes W into shared memory as the bf16 dequantize kernel does and
    # multiplies bf16 x with f32 accumulation: against that exact product, the only error is f32
    # summation order and the output's rounding. Rows (99/100 or 300) and n are not multiples
    # of the kernels' tiles (128 x 64/128 for mm.cuh, 128 x 128/256 for the warpgroup kernel
    # on compute capability 9.0); one 256-weight block per row (n = 17) is the only case
    # without a split of the columns over several blocks.
    q = weights(name, rows=300 if n == 65 else None, cols=256 if n == 17 else 1024)
    rows, cols = q.shape
    w_bf = q.cuda().dequantize(torch.bfloat16).double().cpu().numpy()
    x = activations((n, cols), dtype)
    out = poisoned((n, rows), dtype)
    got = iqrs.linear(x, q.cuda(), out=out, method="fused")
    assert got is out
    exact = x.to(torch.bfloat16).double().cpu().numpy() @ w_bf.T
    assert rel_err(got, exact) <= 1e-5 + ROUNDING[dtype], rel_err(got, exact)


@on_gpu
@pytest.mark.parametrize("name", ["q8_k", "iq6_k", "iq2_ks", "iq4_kss", "iq3_k_r4", "iq4_ks_r4"])
def test_fused_over_long_rows_and_many_tiles(name):
    # The warpgroup kernel copies each row's next 256-weight block ahead of its decode and hands
    # stages and blocks over by mbarrier phases: 16 blocks a row wrap both rings many times, and
    # 260 rows x 300 vectors take several row and vector tiles. Types with 2 to 16 bytes of row
    # scales, blocks not 16-byte aligned and the fewest stage buffers (q8_k).
    q = weights(name, rows=260, cols=4096)
    w_bf = q.cuda().dequantize(torch.bfloat16).double().cpu().numpy()
    x = activations((300, 4096), "bfloat16")
    got = iqrs.linear(x, q.cuda(), out=poisoned((300, 260), "bfloat16"), method="fused")
    exact = x.double().cpu().numpy() @ w_bf.T
    assert rel_err(got, exact) <= 1e-5 + ROUNDING["bfloat16"]


@on_gpu
def test_auto_takes_the_fused_kernel_where_it_runs():
    # Compute capability 9.0 runs the warpgroup kernel, which Auto prefers between the quantized
    # matrix multiply and the GEMM; other GPUs go from mmq to the GEMM.
    major, minor = iqrs.cuda.device_info()["compute_capability"]
    want = "fused" if (major, minor) == (9, 0) else "gemm_bf16"
    assert iqrs.cuda.auto_method("iq4_k", 100) == want
    assert iqrs.cuda.auto_method("iq4_k", 200, (28672, 8192)) == want
    assert iqrs.cuda.auto_method("iq4_k", 200, (4096, 4096)) == "gemm_bf16"
    assert iqrs.cuda.auto_method("iq4_ks", 64) == ("mmq" if want == "fused" else "gemm_bf16")


@on_gpu
@pytest.mark.parametrize("name", TYPES)
@pytest.mark.parametrize("method,n", [("auto", 4), ("auto", 64), ("gemm_bf16", 8), ("fused", 40), ("mmq", 9), ("mmq", 40)])
def test_large_values_stay_finite(name, method, n):
    # Weights near 1e5 do not fit in float16 (max 65504) and products reach ~1e9: the default
    # paths (Q8_1 + f32 sums; bf16 GEMM with f32 accumulation) must stay finite and accurate.
    q = weights(name, scale=2e4)
    rows, cols = q.shape
    w64 = q.dequantize().astype(np.float64)
    assert np.abs(w64).max() > 65504
    x = activations((n, cols), "float32", scale=30.0)
    got = iqrs.linear(x, q.cuda(), out=poisoned((n, rows), "float32"), method=method)
    x64 = x.cpu().numpy()
    assert np.abs(x64.astype(np.float64) @ w64.T).max() > 1e6
    path = iqrs.cuda.auto_method(name, n, (rows, cols)) if method == "auto" else method
    if path in ("mmv", "mmq"):  # exact up to f32 sums, given the int8 activations
        assert rel_err(got, rounded_activations(x64, name, path, n) @ w64.T) <= 1e-5
    else:
        assert rel_err(got, x64.astype(np.float64) @ w64.T) <= 1e-2


@on_gpu
def test_shapes_operator_bias_and_streams():
    q = weights("iq4_ks", rows=64, cols=512)
    cq = q.cuda()
    w = torch.from_numpy(q.dequantize()).cuda().double()
    x = activations((2, 6, 512), "float32")
    bias = torch.randn(64, device="cuda")
    y = iqrs.linear(x, cq, bias)
    assert y.shape == (2, 6, 64) and y.dtype == torch.float32
    assert rel_err(y, (x.double() @ w.T + bias.double()).cpu().numpy()) <= 1e-2
    v = x[0, 0]
    assert torch.equal((cq @ v), iqrs.linear(v, cq)) and (cq @ v).shape == (64,)
    xc = x[0].t()  # (512, 6), not contiguous
    assert (cq @ xc).shape == (64, 6)
    assert rel_err(cq @ xc, (rounded_activations(x[0].cpu().numpy(), "iq4_ks", "auto", 6) @ q.dequantize().astype(np.float64).T).T) <= 1e-5
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        xs = activations((300, 512), "bfloat16")
        ys = iqrs.linear(xs, cq)
    s.synchronize()
    assert rel_err(ys, (xs.double() @ w.T).cpu().numpy()) <= 1e-2
    e = torch.empty(0, 512, device="cuda")
    assert iqrs.linear(e, cq).shape == (0, 64)


@on_gpu
def test_errors_are_exceptions():
    q = weights("iq4_kss", rows=32, cols=512)
    cq = q.cuda()
    x = activations((2, 512), "float32")
    with pytest.raises(ValueError, match="cuda:0|cpu"):
        iqrs.linear(x.cpu(), cq)
    with pytest.raises(TypeError, match="float32"):
        iqrs.linear(x.double(), cq)
    with pytest.raises(ValueError, match="512"):
        iqrs.linear(x[:, :256], cq)
    with pytest.raises(ValueError, match="out"):
        iqrs.linear(x, cq, out=torch.empty(2, 31, device="cuda"))
    with pytest.raises(ValueError, match="method"):
        iqrs.linear(x, cq, method="fast")
    with pytest.raises(TypeError):
        iqrs.linear(x, q)
    with pytest.raises(ValueError, match="cuda:0"):
        cq.dequantize(torch.float32, out=torch.empty(32, 512))
    with pytest.raises(ValueError, match="aligned"):
        cq.dequantize(torch.float32, out=torch.empty(32 * 512 + 1, device="cuda")[1:].view(32, 512))
    # The core checks raw addresses against their allocations.
    y = torch.empty(2, 32, device="cuda")
    args = ("iq4_kss", 32, 512, cq.data.data_ptr(), 0, x.data_ptr(), "float32", 2)
    with pytest.raises(ValueError, match="not CUDA device memory"):
        iqrs._iqrs.cuda_linear("iq4_kss", 32, 512, cq.data.data_ptr(), 0, 4096, "float32", 2, y.data_ptr(), 0, "auto")
    with pytest.raises(ValueError, match="allocation ends"):  # 260 MB of weights claimed in a small buffer
        iqrs._iqrs.cuda_linear("iq4_kss", 1_000_000, 512, cq.data.data_ptr(), 0, x.data_ptr(), "float32", 2, y.data_ptr(), 0, "auto")
    with pytest.raises(ValueError, match="device 7 does not exist|does not exist"):
        iqrs._iqrs.cuda_linear(*args[:4], 7, *args[5:], y.data_ptr(), 0, "auto")
    with pytest.raises(ValueError, match="multiple of 256"):
        iqrs._iqrs.cuda_dequantize("iq4_kss", 32, 500, cq.data.data_ptr(), 0, y.data_ptr(), "float32", 0)
    # The interleaved types' kernels read a row group's words in 16 bytes, IQ4_K's and IQ5_K's
    # their blocks' index bytes; 4-byte alignment is not enough for them (it is for IQ4_KSS).
    for name in ["iq4_k_r4", "iq4_k", "iq5_k"]:
        w16 = weights(name, rows=32, cols=512).cuda()
        with pytest.raises(ValueError, match="16-byte aligned"):
            iqrs._iqrs.cuda_linear(name, 28, 512, w16.data.data_ptr() + 4, 0, x.data_ptr(), "float32", 2, y.data_ptr(), 0, "auto")
        with pytest.raises(ValueError, match="16-byte aligned"):
            iqrs._iqrs.cuda_dequantize(name, 28, 512, w16.data.data_ptr() + 4, 0, y.data_ptr(), "float32", 0)
    iqrs._iqrs.cuda_linear("iq4_kss", 28, 512, cq.data.data_ptr() + 4, 0, x.data_ptr(), "float32", 2, y.data_ptr(), 0, "auto")


@on_gpu
@pytest.mark.parametrize("name", TYPES)
def test_nn_linear_on_gpu_and_cpu(name):
    import iqrs.nn

    lin = torch.nn.Linear(512, 48).cuda()
    layer = iqrs.nn.Linear.from_linear(lin, name)
    assert layer.qweight.is_cuda and layer.qtype == name and name in repr(layer)
    w = torch.from_numpy(iqrs.quantize(lin.weight.detach().cpu().numpy(), name).dequantize()).double()
    b = lin.bias.detach().cpu().double()
    for shape in [(1, 512), (5, 512), (3, 40, 512)]:
        x = activations(shape, "float32")
        x2 = x.reshape(-1, 512).cpu().numpy()
        got = layer(x)
        assert got.shape == shape[:-1] + (48,) and got.is_cuda
        if x2.shape[0] <= 32:  # mat-vec or mmq on int8 activations
            assert rel_err(got.reshape(-1, 48), rounded_activations(x2, name, "auto", x2.shape[0]) @ w.numpy().T + b.numpy()) <= 1e-5
        else:  # bf16 GEMM
            assert rel_err(got.reshape(-1, 48), x2.astype(np.float64) @ w.numpy().T + b.numpy()) <= 1e-2
        got_cpu = layer.cpu()(x.cpu())  # Q8_K activations, as QTensor @ x
        layer.cuda()
        assert got_cpu.shape == got.shape and not got_cpu.is_cuda
        assert rel_err(got_cpu.reshape(-1, 48), q8k_values(x2).astype(np.float64) @ w.numpy().T + b.numpy()) <= 1e-5
    state = layer.state_dict()
    again = iqrs.nn.Linear(iqrs.QTensor.from_bytes(state["qweight"].cpu().numpy(), name, (48, 512)), state["bias"]).cuda()
    x = activations((3, 512), "bfloat16")
    assert torch.equal(again(x), layer(x))
    with pytest.raises(ValueError, match="on cpu|cuda"):
        layer(x.cpu())
