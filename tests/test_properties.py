"""Property tests (hypothesis): error bounds, the product's definition, SIMD == scalar."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import iqrs
from conftest import TYPES, q8k_values

# Relative RMSE bound (error RMS / row RMS) per type on the distributions below.
REL_BOUND = {"q8_k": 0.02, "iq4_ks": 0.2, "iq4_kss": 0.25, "iq2_k": 0.6, "iq3_k": 0.3, "iq4_k": 0.15, "iq5_k": 0.08,
             "iq6_k": 0.04, "iq2_ks": 0.65, "iq3_ks": 0.35, "iq5_ks": 0.1, "iq2_kl": 0.5}
# An _r4 type has exactly its base type's error (its bytes are the base bytes interleaved).
R4 = {t.name: t.name[: -len("_r4")] for t in iqrs.types() if t.rows_per_group == 4}
REL_BOUND.update({r4: REL_BOUND[base] for r4, base in R4.items() if base in REL_BOUND})

DISTS = ["gaussian", "heavy", "outliers", "zero", "constant", "tiny", "huge"]


def make(dist, rows, cols, seed):
    rng = np.random.default_rng(seed)
    if dist == "gaussian":
        x = rng.standard_normal((rows, cols))
    elif dist == "heavy":
        x = rng.standard_t(2, (rows, cols))
    elif dist == "outliers":
        x = rng.standard_normal((rows, cols)) * np.where(rng.uniform(size=(rows, cols)) < 0.01, 30.0, 1.0)
    elif dist == "zero":
        x = np.zeros((rows, cols))
    elif dist == "constant":
        x = np.full((rows, cols), rng.uniform(-2, 2))
    elif dist == "tiny":
        x = rng.standard_normal((rows, cols)) * 1e-20
    else:
        x = rng.standard_normal((rows, cols)) * 1e3
    return (x * rng.uniform(0.01, 1.0, size=(rows, 1))).astype(np.float32)


shapes = st.tuples(st.sampled_from([4, 8, 12]), st.integers(1, 6).map(lambda k: 256 * k))
common = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@common
@given(name=st.sampled_from(TYPES), shape=shapes, dist=st.sampled_from(DISTS), seed=st.integers(0, 2**32 - 1),
       use_im=st.booleans())
def test_round_trip_error_bounded(name, shape, dist, seed, use_im):
    x = make(dist, *shape, seed)
    im = np.exp(np.random.default_rng(seed + 1).standard_normal(shape[1])).astype(np.float32) if use_im else None
    d = iqrs.quantize(x, name, imatrix=im).dequantize()
    assert np.all(np.isfinite(d))
    rms = np.sqrt((x.astype(np.float64) ** 2).mean(axis=1))
    err = np.sqrt(((x.astype(np.float64) - d) ** 2).mean(axis=1))
    if dist == "zero":
        assert np.all(d == 0)
    elif name == "q8_k":
        # a uniform 8-bit grid per block of 256 with step amax/127: every value within half a step
        blocks = x.reshape(shape[0], -1, 256).astype(np.float64)
        half_step = np.abs(blocks).max(axis=2, keepdims=True) / 254
        assert np.all(np.abs(blocks - d.reshape(blocks.shape)) <= half_step * (1 + 1e-5) + np.abs(blocks) * 1e-6)
    elif dist == "constant":
        # A constant block leaves its sub-block scales no room to absorb the rounding of a 16-bit
        # float block scale: below ~1 that scale is an f16 subnormal (step 2^-24), so allow half a
        # step times the largest |sub-block scale x grid value| (127 x 127) on top of the bound.
        assert np.all(err <= REL_BOUND.get(name, 0.7) * rms + 2.0**-25 * 127 * 127), (err / rms).max()
    else:
        # tiny rows may lose everything below float resolution; others stay within the bound
        bound = REL_BOUND.get(name, 0.7) * 1.6
        assert np.all(err <= bound * rms + (1e-15 if dist == "tiny" else 0)), (err / rms).max()


@common
@given(name=st.sampled_from(TYPES), shape=shapes, n=st.integers(1, 4), seed=st.integers(0, 2**32 - 1))
def test_matmul_is_dequantized_weights_times_q8k(name, shape, n, seed):
    rng = np.random.default_rng(seed)
    q = iqrs.quantize(make("outliers", *shape, seed), name)
    x = (rng.standard_normal((shape[1], n)) * rng.uniform(0.1, 10)).astype(np.float32)
    out = q @ x
    w = q.dequantize().astype(np.float64)
    xq = q8k_values(x.T).T.astype(np.float64)
    ref = w @ xq
    tol = 1e-5 * (np.abs(w) @ np.abs(xq))
    assert np.all(np.abs(out - ref) <= tol + 1e-35)


@common
@given(name=st.sampled_from(TYPES), shape=shapes, seed=st.integers(0, 2**32 - 1), garbage=st.booleans())
def test_every_isa_equals_scalar_bit_for_bit(name, shape, seed, garbage):
    rng = np.random.default_rng(seed)
    info = iqrs.type_info(name)
    if garbage:  # any byte pattern with finite scales is a valid encoding
        q = iqrs.quantize(make("gaussian", *shape, seed), name)
        raw = rng.integers(0, 256, q.nbytes, dtype=np.uint8)
        keep = q.data.reshape(shape[0], -1)[:, : info.row_meta_bytes]
        raw.reshape(shape[0], -1)[:, : info.row_meta_bytes] = keep
        q = iqrs.QTensor.from_bytes(raw, name, shape)
    else:
        q = iqrs.quantize(make("outliers", *shape, seed), name)
    x = rng.standard_normal((shape[1], 3)).astype(np.float32)
    results = {}
    for isa in iqrs.available_isas():
        iqrs.set_isa(isa)
        results[isa] = (q.dequantize(), q @ x)
    def bits(a):  # garbage scales may be inf/nan: every NaN is one NaN (payloads are not specified)
        return np.where(np.isnan(a), np.float32(np.nan), a).view(np.uint32)

    base_d, base_m = results["scalar"]
    for isa, (d, m) in results.items():
        np.testing.assert_array_equal(bits(d), bits(base_d), err_msg=isa)
        np.testing.assert_array_equal(bits(m), bits(base_m), err_msg=isa)


@pytest.mark.parametrize("name", TYPES)
def test_quantize_is_deterministic_and_chunking_invariant(name):
    x = make("outliers", 16, 1024, 5)
    full = iqrs.quantize(x, name).to_bytes()
    g = iqrs.type_info(name).rows_per_group
    parts = b"".join(iqrs.quantize(x[i:i + g], name).to_bytes() for i in range(0, 16, g))
    assert full == parts
    iqrs.set_num_threads(1)
    assert iqrs.quantize(x, name).to_bytes() == full


@common
@given(name=st.sampled_from(sorted(R4)), shape=shapes, dist=st.sampled_from(DISTS), seed=st.integers(0, 2**32 - 1),
       use_im=st.booleans())
def test_r4_is_the_base_type_repacked(name, shape, dist, seed, use_im):
    base = R4[name]
    x = make(dist, *shape, seed)
    im = np.exp(np.random.default_rng(seed + 1).standard_normal(shape[1])).astype(np.float32) if use_im else None
    q = iqrs.quantize(x, base, imatrix=im)
    r = q.repack(name)
    assert (r.type, r.shape, r.nbytes) == (name, q.shape, q.nbytes)
    assert r == iqrs.quantize(x, name, imatrix=im)
    assert r.repack(base) == q
    assert r.repack(name) == r
    np.testing.assert_array_equal(r.dequantize().view(np.uint32), q.dequantize().view(np.uint32))
    y = np.random.default_rng(seed + 2).standard_normal((shape[1], 3)).astype(np.float32)
    np.testing.assert_array_equal((r @ y).view(np.uint32), (q @ y).view(np.uint32))


@common
@given(name=st.sampled_from(sorted(R4)), groups=st.integers(1, 5), blocks=st.integers(1, 6), seed=st.integers(0, 2**32 - 1))
def test_repack_round_trips_any_bytes(name, groups, blocks, seed):
    """Every bit has one place in either layout, so any byte pattern survives both directions."""
    base = R4[name]
    shape = (4 * groups, 256 * blocks)
    raw = np.random.default_rng(seed).integers(0, 256, shape[0] * iqrs.type_info(base).row_size(shape[1]), dtype=np.uint8)
    q = iqrs.QTensor.from_bytes(raw, base, shape)
    r = q.repack(name)
    assert r.repack(base).to_bytes() == raw.tobytes()
    assert iqrs.QTensor.from_bytes(r.to_bytes(), name, shape).repack(base) == q
    assert r.to_bytes() != raw.tobytes()
