"""Bad input: every case raises a clear ValueError/TypeError, never a crash or garbage."""

import threading

import numpy as np
import pytest

import iqrs
from conftest import TYPES


def good(rows=4, cols=512):
    return np.random.default_rng(0).standard_normal((rows, cols)).astype(np.float32)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("name", TYPES)
def test_non_finite_weights_named_by_position(bad, name):
    x = good()
    x[2, 300] = bad
    x[3, 5] = bad
    with pytest.raises(ValueError, match=r"x contains a non-finite value .* at row 2, column 300"):
        iqrs.quantize(x, name)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_imatrix(bad):
    im = np.ones(512, np.float32)
    im[77] = bad
    with pytest.raises(ValueError, match=r"imatrix contains a non-finite value .* at index 77"):
        iqrs.quantize(good(), "iq4_ks", imatrix=im)


def test_negative_imatrix():
    im = np.ones(512, np.float32)
    im[9] = -0.5
    with pytest.raises(ValueError, match=r"negative value \(-0.5\) at index 9"):
        iqrs.quantize(good(), "iq4_kss", imatrix=im)


@pytest.mark.parametrize("n", [511, 128, 300])
def test_imatrix_wrong_length(n):
    with pytest.raises(ValueError, match=rf"imatrix length .*expected 512, got {n}"):
        iqrs.quantize(good(), "iq4_ks", imatrix=np.ones(n, np.float32))


def test_imatrix_not_1d():
    with pytest.raises(ValueError, match="imatrix must be 1-D"):
        iqrs.quantize(good(), "iq4_ks", imatrix=np.ones((2, 256), np.float32))


@pytest.mark.parametrize("cols", [100, 255, 257, 300])
@pytest.mark.parametrize("name", TYPES)
def test_columns_not_multiple_of_256(cols, name):
    with pytest.raises(ValueError, match=rf"number of columns \({cols}\) must be a positive multiple of 256"):
        iqrs.quantize(good(4, cols), name)


@pytest.mark.parametrize("shape", [(512,), (2, 2, 512), ()])
def test_not_2d(shape):
    with pytest.raises(ValueError, match="x must be 2-D"):
        iqrs.quantize(np.zeros(shape, np.float32), "iq4_ks")


def test_empty_matrix():
    with pytest.raises(ValueError):
        iqrs.quantize(np.zeros((0, 512), np.float32), "iq4_ks")


def test_integer_input_is_a_type_error():
    with pytest.raises(TypeError, match="floating-point"):
        iqrs.quantize(np.ones((2, 512), np.int32), "iq4_ks")


def test_unknown_type_lists_known():
    with pytest.raises(ValueError, match="unknown quantization type 'iq9_xx'; known types: .*iq4_kss"):
        iqrs.quantize(good(), "iq9_xx")
    with pytest.raises(TypeError):
        iqrs.quantize(good(), 144)


@pytest.mark.parametrize("name", TYPES)
def test_from_bytes_wrong_size(name):
    b = iqrs.quantize(good(), name).to_bytes()
    for cut in (b[:-1], b[: len(b) // 2], b + b"\0", b""):
        with pytest.raises(ValueError, match=r"buffer has \d+ bytes but a .* tensor of shape \(4, 512\) needs \d+"):
            iqrs.QTensor.from_bytes(cut, name, (4, 512))


def test_from_bytes_bad_shape_and_type():
    b = iqrs.quantize(good(), "iq4_ks").to_bytes()
    with pytest.raises(ValueError, match="cols must be a positive multiple of 256"):
        iqrs.QTensor.from_bytes(b, "iq4_ks", (8, 256 + 16))
    with pytest.raises(ValueError, match="shape must be"):
        iqrs.QTensor.from_bytes(b, "iq4_ks", (4,))
    with pytest.raises(TypeError):
        iqrs.QTensor.from_bytes([1, 2, 3], "iq4_ks", (4, 512))


def test_matmul_mismatched_dimensions():
    q = iqrs.quantize(good(), "iq4_ks")
    with pytest.raises(ValueError, match=r"the matrix has 512 columns but x has shape \(256,\)"):
        q @ np.ones(256, np.float32)
    with pytest.raises(ValueError, match=r"the matrix has 512 columns but x has shape \(3, 512\)"):
        q @ np.ones((3, 512), np.float32)
    with pytest.raises(ValueError, match="x must have shape"):
        q @ np.ones((512, 2, 2), np.float32)
    x = np.ones(512, np.float32)
    x[10] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        q @ x


def test_dequantize_out_is_checked():
    q = iqrs.quantize(np.ones((4, 512), np.float32), "iq4_ks")
    with pytest.raises(TypeError, match="float32"):
        q.dequantize(out=np.zeros((4, 512), np.float64))
    with pytest.raises(TypeError, match="out must be"):
        q.dequantize(out=[0.0] * 2048)
    with pytest.raises(ValueError, match="shape"):
        q.dequantize(out=np.zeros((4, 256), np.float32))
    with pytest.raises(ValueError, match="C-contiguous"):
        q.dequantize(out=np.zeros((512, 4), np.float32).T)
    ro = np.zeros((4, 512), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        q.dequantize(out=ro)


def test_native_layer_checks_sizes_too():
    from iqrs import _iqrs

    with pytest.raises(ValueError, match="buffer size"):
        _iqrs.dequantize(np.zeros(10, np.uint8), "iq4_ks", 4, 512)
    with pytest.raises(ValueError, match="output buffer size"):
        _iqrs.quantize_into(np.ones((4, 512), np.float32), "iq4_ks", None, np.zeros(10, np.uint8))
    x = np.ones((4, 512), np.float32)
    x[3, 7] = np.inf
    with pytest.raises(ValueError, match="row 3, column 7"):
        _iqrs.quantize_into(x, "iq4_ks", None, np.zeros(4 * iqrs.type_info("iq4_ks").row_size(512), np.uint8))
    with pytest.raises(ValueError, match="buffer size"):
        _iqrs.dequantize_into(np.zeros(10, np.uint8), "iq4_ks", 4, 512, np.zeros(2048, np.float32))
    with pytest.raises(ValueError, match="out has 10 elements"):
        _iqrs.dequantize_into(np.zeros(10, np.uint8), "iq4_ks", 4, 512, np.zeros(10, np.float32))
    with pytest.raises(ValueError, match="buffer size"):
        _iqrs.matmul(np.zeros(10, np.uint8), "iq4_ks", 4, 512, np.ones((1, 512), np.float32))


def test_rust_panic_becomes_runtime_error():
    from iqrs import _iqrs

    with pytest.raises(RuntimeError, match="internal error"):
        _iqrs._panic_for_test()


def test_gil_is_released_during_quantize():
    """With a huge switch interval the main thread only runs while the worker releases the GIL."""
    import sys

    x = np.random.default_rng(0).standard_normal((1024, 4096)).astype(np.float32)
    iqrs.set_num_threads(1)
    old = sys.getswitchinterval()
    sys.setswitchinterval(30.0)
    ticks = 0
    try:
        t = threading.Thread(target=iqrs.quantize, args=(x, "iq4_kss"))
        t.start()
        while t.is_alive():
            ticks += 1
        t.join()
    finally:
        sys.setswitchinterval(old)
    assert ticks > 1000


R4 = [t.name for t in iqrs.types() if t.rows_per_group == 4]


@pytest.mark.parametrize("rows", [1, 2, 3, 5, 6, 10])
@pytest.mark.parametrize("name", R4)
def test_r4_rows_not_a_multiple_of_4(name, rows):
    msg = rf"type {name} interleaves 4 rows, but the number of rows \({rows}\) is not a positive multiple of 4"
    with pytest.raises(ValueError, match=msg):
        iqrs.quantize(good(rows, 512), name)
    q = iqrs.quantize(good(rows, 512), name[: -len("_r4")])
    with pytest.raises(ValueError, match=msg):
        q.repack(name)
    with pytest.raises(ValueError, match="rows a positive multiple of 4"):
        iqrs.QTensor.from_bytes(q.to_bytes(), name, (rows, 512))


def test_repack_only_between_a_type_and_its_r4_form():
    q = iqrs.quantize(good(), "iq4_k")
    for other in ("iq5_k_r4", "iq4_ks", "iq4_ks_r4", "q8_k"):
        with pytest.raises(ValueError, match=rf"cannot repack iq4_k as {other}: .*iq4_k <-> iq4_k_r4"):
            q.repack(other)
    with pytest.raises(ValueError, match="cannot repack iq4_k_r4 as iq5_k"):
        q.repack("iq4_k_r4").repack("iq5_k")
    with pytest.raises(ValueError, match="unknown quantization type"):
        q.repack("iq9_k_r4")
    with pytest.raises(TypeError):
        q.repack(139)


def test_native_repack_checks_sizes():
    from iqrs import _iqrs

    with pytest.raises(ValueError, match="buffer size"):
        _iqrs.repack(np.zeros(10, np.uint8), "iq4_k", "iq4_k_r4", 4, 512)


@pytest.mark.parametrize("name", TYPES)
def test_values_beyond_the_scale_format_raise(name):
    # f16 scales overflow near 65504 times the grid's reach; f32 ones only near 3.4e38
    # a finite tensor never decodes to inf/nan or collapses to zeros: it quantizes well or is refused
    for scale in (1e4, 1e6, 1e8, 1e10, 1e12, 1e14, 1e16, 1e20, 3e37):
        x = good() * scale
        try:
            q = iqrs.quantize(x, name)
        except ValueError as e:
            assert "too large" in str(e) and name in str(e)
        else:
            d = q.dequantize().astype(np.float64)
            rel = np.sqrt(((x - d) ** 2).mean() / (x.astype(np.float64) ** 2).mean())
            assert np.all(np.isfinite(d)) and rel < 0.8, (scale, rel)


@pytest.mark.parametrize("name", [t for t in TYPES if t in ("iq2_k", "iq3_k", "iq4_k", "iq5_k", "iq6_k", "iq2_ks", "iq3_ks", "iq2_kl")])
def test_f16_scaled_types_reject_huge_values(name):
    with pytest.raises(ValueError, match="too large"):
        iqrs.quantize(good() * 1e10, name)
    q = iqrs.quantize(good() * 1e3, name)  # well inside the format: fine
    assert np.all(np.isfinite(q.dequantize()))


def test_q8k_takes_any_finite_value_and_weight_types_refuse_beyond_the_limit():
    d = iqrs.quantize(good() * 1e30, "q8_k").dequantize()
    assert np.all(np.isfinite(d)) and np.abs(d).max() > 1e29
    for name in [t for t in TYPES if t != "q8_k"]:
        with pytest.raises(ValueError, match="too large"):
            iqrs.quantize(good() * 1e20, name)
    d = iqrs.quantize(good() * 1e9, "iq5_ks").dequantize()  # f32 row scale: fine here
    assert np.all(np.isfinite(d)) and np.abs(d).max() > 1e8
