"""The Python contract: names, attributes, conversions, interop."""

import pickle

import numpy as np
import pytest

import iqrs
from conftest import TYPES, q8k_values


def rand(rows=8, cols=512, seed=0):
    return np.random.default_rng(seed).standard_normal((rows, cols)).astype(np.float32) * 0.05


def test_types_contract():
    ts = iqrs.types()
    names = [t.name for t in ts]
    assert len(set(names)) == len(names)
    by = {t.name: t for t in ts}
    assert by["iq4_ks"].ggml_id == 144 and by["iq4_kss"].ggml_id == 146 and by["q8_k"].ggml_id == 15
    assert by["iq4_kss"].bpw == 4.0 and by["iq4_ks"].bpw == 4.25
    assert by["q8_k"].block_bytes == 296
    for t in ts:
        assert isinstance(t, iqrs.TypeInfo)
        assert t.block_size == 256 and t.rows_per_group in (1, 4)
        assert t.row_size(512) == t.row_meta_bytes + 2 * t.block_bytes
        assert t.bpw == pytest.approx(8 * t.block_bytes / t.block_size)


@pytest.mark.parametrize("name", TYPES)
def test_qtensor_attributes(name):
    x = rand()
    q = iqrs.quantize(x, name)
    info = iqrs.type_info(name)
    assert q.type == name and q.shape == (8, 512) and len(q) == 8
    assert q.nbytes == 8 * info.row_size(512) == len(q.to_bytes()) == q.data.size
    assert q.bpw == pytest.approx(8 * q.nbytes / x.size)
    assert q.data.dtype == np.uint8 and not q.data.flags.writeable
    assert np.shares_memory(q.data, q.data) and q.data.base is not None or q.data.flags.owndata
    r = repr(q)
    assert name in r and "(8, 512)" in r and "bpw" in r
    d = q.dequantize()
    assert d.shape == (8, 512) and d.dtype == np.float32
    np.testing.assert_array_equal(np.asarray(q), d)
    buf = np.full((8, 512), np.nan, np.float32)
    assert q.dequantize(out=buf) is buf
    np.testing.assert_array_equal(buf, d)


@pytest.mark.parametrize("name", TYPES)
def test_bytes_round_trip(name):
    q = iqrs.quantize(rand(), name)
    b = q.to_bytes()
    q2 = iqrs.QTensor.from_bytes(b, name, q.shape)
    assert q2 == q and q2.to_bytes() == b
    q3 = iqrs.QTensor.from_bytes(np.frombuffer(b, np.uint8), name.upper(), list(q.shape))
    assert q3 == q
    assert pickle.loads(pickle.dumps(q)) == q


def test_data_is_zero_copy():
    q = iqrs.quantize(rand(), "iq4_ks")
    assert np.shares_memory(q.data, q.data)
    a, b = q.data, q.data
    assert a.__array_interface__["data"][0] == b.__array_interface__["data"][0]


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_input_dtypes_agree(dtype):
    x = rand().astype(np.float16)
    ref = iqrs.quantize(x.astype(np.float32), "iq4_kss")
    assert iqrs.quantize(x.astype(dtype), "iq4_kss") == ref
    # non-contiguous input is accepted (copied)
    xt = np.asfortranarray(x.astype(dtype))
    assert iqrs.quantize(xt, "iq4_kss") == ref


def test_imatrix_changes_the_result_and_lowers_weighted_error():
    x = rand(16, 1024, seed=3)
    w = np.exp(2.0 * np.random.default_rng(4).standard_normal(1024)).astype(np.float32)
    a = iqrs.quantize(x, "iq4_ks")
    b = iqrs.quantize(x, "iq4_ks", imatrix=w)
    assert a != b
    err = lambda q: float(((x - q.dequantize()) ** 2 * w).sum())  # noqa: E731
    assert err(b) < err(a)


@pytest.mark.parametrize("name", TYPES)
def test_matmul_shapes_and_definition(name):
    x = rand(8, 512, seed=1)
    q = iqrs.quantize(x, name)
    rng = np.random.default_rng(2)
    v = rng.standard_normal(512).astype(np.float32)
    m = rng.standard_normal((512, 3)).astype(np.float32)
    w = q.dequantize().astype(np.float64)
    out_v = q @ v
    assert out_v.shape == (8,) and out_v.dtype == np.float32
    out_m = q @ m
    assert out_m.shape == (8, 3)
    ref_v = w @ q8k_values(v)[0].astype(np.float64)
    ref_m = w @ q8k_values(m.T).T.astype(np.float64)
    tol = 1e-5 * np.abs(w) @ np.abs(q8k_values(m.T).T)
    assert np.all(np.abs(out_m - ref_m) <= tol + 1e-30)
    np.testing.assert_allclose(out_v, ref_v, rtol=0, atol=1e-5 * float(np.abs(w).sum(axis=1).max() * np.abs(v).max()))
    np.testing.assert_array_equal(q.matmul(m[:, 1]), out_m[:, 1])
    assert (q @ np.zeros((512, 0), np.float32)).shape == (8, 0)


def test_threads_setting():
    iqrs.set_num_threads(1)
    assert iqrs.get_num_threads() == 1
    x = rand(64, 1024)
    a = iqrs.quantize(x, "iq4_ks")
    iqrs.set_num_threads(2)
    assert iqrs.get_num_threads() == 2
    assert iqrs.quantize(x, "iq4_ks") == a
    with pytest.raises(ValueError, match="n must be >= 1"):
        iqrs.set_num_threads(0)
    with pytest.raises(TypeError):
        iqrs.set_num_threads("2")


def test_two_threads_give_the_one_thread_results_past_the_thresholds():
    # 2048 x 1024 weights: past the work from which dequantize, mat-vec and (3 vectors) the tiled
    # matrix multiply go to two threads; every product row is computed the same way on either
    x = rand(2048, 1024, seed=3)
    v, m = rand(1024, seed=4), rand(1024, 3, seed=5)
    saved = iqrs.get_num_threads()
    try:
        results = []
        for th in (1, 2):
            iqrs.set_num_threads(th)
            q = iqrs.quantize(x, "iq4_k")
            results.append((q.to_bytes(), q.dequantize(), q @ v, q @ m))
    finally:
        iqrs.set_num_threads(saved)
    (b1, d1, v1, m1), (b2, d2, v2, m2) = results
    assert b1 == b2
    np.testing.assert_array_equal(d1, d2)
    np.testing.assert_array_equal(v1, v2)
    np.testing.assert_array_equal(m1, m2)


def _pool_threads():
    import os
    names = []
    for t in os.listdir("/proc/self/task"):
        try:
            names.append(open(f"/proc/self/task/{t}/comm").read().strip())
        except OSError:  # the thread ended meanwhile
            pass
    return sum(n.startswith("iqrs-") for n in names)


def test_concurrent_calls_from_python_threads_share_one_pool():
    # several Python threads at once: the same results as one at a time, on the one pool
    import os
    import threading

    iqrs.set_num_threads(2)
    xs = [rand(96, 1024, seed=s) for s in range(6)]
    ys = [rand(1024, 5, seed=10 + s) for s in range(6)]
    want = [(iqrs.quantize(x, "iq4_kss").to_bytes(), iqrs.quantize(x, "iq4_kss") @ y) for x, y in zip(xs, ys)]
    got = [None] * 6

    def work(i):
        for _ in range(3):
            q = iqrs.quantize(xs[i], "iq4_kss")
            got[i] = (q.to_bytes(), q @ ys[i])

    linux = os.path.isdir("/proc/self/task")
    baseline = _pool_threads() if linux else 0
    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    most = 0
    while any(t.is_alive() for t in threads):
        if linux:
            most = max(most, _pool_threads())
    for t in threads:
        t.join()
    for (wb, wm), (gb, gm) in zip(want, got):
        assert wb == gb
        np.testing.assert_array_equal(wm, gm)
    if linux:  # no thread per caller: the pool's workers are all there are
        assert 1 <= baseline <= 2 + 2 and most <= baseline


def test_isa_selection():
    isas = iqrs.available_isas()
    assert isas[0] == "scalar"
    for isa in isas:
        assert iqrs.set_isa(isa) == isa and iqrs.get_isa() == isa
    with pytest.raises(ValueError, match="unknown ISA"):
        iqrs.set_isa("sse9")


def test_torch_cpu_interop():
    torch = pytest.importorskip("torch")
    x = rand()
    q = iqrs.quantize(torch.from_numpy(x), "iq4_ks")
    assert q == iqrs.quantize(x, "iq4_ks")
    assert iqrs.quantize(torch.from_numpy(x).to(torch.bfloat16), "iq4_ks") == iqrs.quantize(
        torch.from_numpy(x).to(torch.bfloat16).float().numpy(), "iq4_ks")
    v = torch.randn(512)
    out = q @ v
    assert isinstance(out, torch.Tensor) and out.shape == (8,)
    np.testing.assert_array_equal(out.numpy(), q @ v.numpy())


@pytest.mark.parametrize("n", [0, 1, 127, 128, 129, 3 << 20 | 77])
def test_byte_sum_probe_reads_every_byte(n):
    # the benchmark's read-bandwidth probe: every byte counted, on one thread and on several
    data = np.random.default_rng(n).integers(0, 256, n, dtype=np.uint8)
    saved = iqrs.get_num_threads()
    try:
        for th in (1, 2):
            iqrs.set_num_threads(th)
            assert iqrs._iqrs.byte_sum(data) == int(data.sum(dtype=np.uint64))
    finally:
        iqrs.set_num_threads(saved)
