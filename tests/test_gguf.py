"""GGUF reading and writing, ggml's legacy block formats, importance matrices."""

import os
import struct

import numpy as np
import pytest

import iqrs
from iqrs import _legacy, gguf, imatrix
from iqrs.gguf import GGUFError, MetaValue, ValueType

from conftest import TYPES
from gguf_factory import make_model, metadata, tensor_specs


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    p = tmp_path_factory.mktemp("gguf") / "model.gguf"
    values = make_model(p)
    return p, values


def f16(x):
    return np.float32(np.frombuffer(struct.pack("<e", x) if isinstance(x, float) else x, "<f2")[0])


# --------------------------------------------------------------------------------------------
# legacy formats: the vectorized decoders against a slow per-value decoder written from the
# block layouts (ggml-common.h) and ggml-quants.c's arithmetic
# --------------------------------------------------------------------------------------------


def _h(b, at):
    """f16 at byte ``at`` as a Python float."""
    return float(np.frombuffer(bytes(b[at : at + 2]), "<f2")[0])


def _f32(v):
    return float(np.float32(v))


def _i8(v):
    return (v + 128) % 256 - 128


def slow_value(type_name, b, i):
    """Value ``i`` of one block ``b`` (a list of byte values), decoded element by element."""
    if type_name == "q4_0":
        q = (b[2 + i % 16] >> (4 * (i // 16))) & 15
        return _f32((q - 8) * _h(b, 0))
    if type_name == "q4_1":
        q = (b[4 + i % 16] >> (4 * (i // 16))) & 15
        return _f32(q * _h(b, 0) + _h(b, 2))  # one rounding: the reference's FMA
    if type_name in ("q5_0", "q5_1"):
        o = 2 if type_name == "q5_0" else 4
        qh = int.from_bytes(bytes(b[o : o + 4]), "little")
        q = ((b[o + 4 + i % 16] >> (4 * (i // 16))) & 15) | (((qh >> i) & 1) << 4)
        return _f32((q - 16) * _h(b, 0)) if type_name == "q5_0" else _f32(q * _h(b, 0) + _h(b, 2))
    if type_name == "q8_0":
        return _f32(_i8(b[2 + i]) * _h(b, 0))
    if type_name == "q2_k":
        h, j, r = i // 128, (i % 128) // 32, i % 32
        q = (b[16 + 32 * h + r] >> (2 * j)) & 3
        sc = b[i // 16]
        dl, ml = _f32(_h(b, 80) * (sc & 15)), _f32(_h(b, 82) * (sc >> 4))
        return _f32(dl * q - ml)
    if type_name == "q3_k":
        h, j, r = i // 128, (i % 128) // 32, i % 32
        low = (b[32 + 32 * h + r] >> (2 * j)) & 3
        high = (b[r] >> (4 * h + j)) & 1
        s = i // 16  # 6-bit scale s: low 4 bits from byte s%8 (nibble s//8), high 2 from byte 8 + s%4 (bits 2*(s//4))
        sc = ((b[96 + s % 8] >> (4 * (s // 8))) & 15) | (((b[96 + 8 + s % 4] >> (2 * (s // 4))) & 3) << 4)
        return _f32(_f32(_h(b, 108) * (sc - 32)) * (low - (0 if high else 4)))
    if type_name in ("q4_k", "q5_k"):
        s = i // 32
        sb = b[4:16]
        if s < 4:
            sc, mn = sb[s] & 63, sb[s + 4] & 63
        else:
            sc = (sb[s + 4] & 15) | ((sb[s - 4] >> 6) << 4)
            mn = (sb[s + 4] >> 4) | ((sb[s] >> 6) << 4)
        qo = 16 if type_name == "q4_k" else 48
        q = (b[qo + 32 * (s // 2) + i % 32] >> (4 * (s % 2))) & 15
        if type_name == "q5_k":
            q += 16 * ((b[16 + i % 32] >> s) & 1)
        return _f32(_f32(_h(b, 0) * sc) * q - _f32(_h(b, 2) * mn))
    if type_name == "q6_k":
        h, c, r = i // 128, (i % 128) // 32, i % 32
        low = (b[64 * h + 32 * (c % 2) + r] >> (4 * (c // 2))) & 15
        high = (b[128 + 32 * h + r] >> (2 * c)) & 3
        sc = _i8(b[192 + i // 16])
        return _f32(_f32(_h(b, 208) * sc) * ((low | (high << 4)) - 32))
    raise AssertionError(type_name)


LEGACY = {"q4_0": (32, 18, [0]), "q4_1": (32, 20, [0, 2]), "q5_0": (32, 22, [0]), "q5_1": (32, 24, [0, 2]),
          "q8_0": (32, 34, [0]), "q2_k": (256, 84, [80, 82]), "q3_k": (256, 110, [108]),
          "q4_k": (256, 144, [0, 2]), "q5_k": (256, 176, [0, 2]), "q6_k": (256, 210, [208])}  # fmt: skip


@pytest.mark.parametrize("name", sorted(LEGACY))
def test_legacy_decoder_matches_per_value_decoder(name):
    block, nbytes, f16_at = LEGACY[name]
    rng = np.random.default_rng(len(name) + nbytes)
    nb = 6 if block == 256 else 40
    raw = rng.integers(0, 256, size=(nb, nbytes), dtype=np.uint8)
    for at in f16_at:  # finite scales of realistic and extreme magnitudes, both signs
        d = (rng.standard_normal(nb) * 10.0 ** rng.integers(-6, 2, nb)).astype("<f2")
        raw[:, at : at + 2] = d.view(np.uint8).reshape(nb, 2)
    got = _legacy.decode(name, raw.reshape(-1))
    blocks = [[int(v) for v in raw[k]] for k in range(nb)]
    want = np.array([slow_value(name, blocks[k], i) for k in range(nb) for i in range(block)], np.float32)
    assert got.dtype == np.float32 and got.shape == want.shape
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))  # bit for bit, sign of zero too
    assert gguf.ggml_type(name).block_bytes == nbytes and gguf.ggml_type(name).block_size == block


def test_legacy_known_values():
    # Q8_0: d = 0.5, q = -16..15 → values -8..7.5
    b = np.zeros(34, np.uint8)
    b[0:2] = np.array([0.5], "<f2").view(np.uint8)
    b[2:] = np.arange(-16, 16, dtype=np.int8).view(np.uint8)
    assert np.array_equal(_legacy.decode("q8_0", b), np.arange(-16, 16) * np.float32(0.5))
    # Q4_0: d = 2, nibble j = j (low) and 15 - j (high) → (j - 8) * 2 then (7 - j) * 2
    b = np.zeros(18, np.uint8)
    b[0:2] = np.array([2.0], "<f2").view(np.uint8)
    b[2:] = np.arange(16, dtype=np.uint8) | ((15 - np.arange(16, dtype=np.uint8)) << 4)
    assert np.array_equal(_legacy.decode("q4_0", b), np.concatenate([(np.arange(16) - 8) * 2.0, (7 - np.arange(16)) * 2.0]).astype(np.float32))
    # BF16 and F16
    assert np.array_equal(_legacy.decode("bf16", np.array([0x3F80, 0xC000], "<u2").view(np.uint8)), np.float32([1.0, -2.0]))
    assert np.array_equal(_legacy.decode("f16", np.array([0.25, -3.5], "<f2").view(np.uint8)), np.float32([0.25, -3.5]))


def slow_q8_0(x):
    """quantize_row_q8_0_ref, one value at a time: d = amax/127, q = roundf(x * (1/d))."""
    out = bytearray()
    for blk in x.reshape(-1, 32):
        amax = np.float32(max(abs(float(v)) for v in blk))
        d = np.float32(amax / np.float32(127))
        inv = np.float32(1) / d if d != 0 else np.float32(0)
        qs = []
        for v in blk:
            p = float(np.float32(v * inv))
            qs.append(int(np.sign(p) * np.floor(abs(p) + 0.5)))  # roundf: ties away from zero
        out += np.array([d], "<f2").tobytes() + np.array(qs, np.int8).tobytes()
    return np.frombuffer(bytes(out), np.uint8)


def test_plain_encoders():
    rng = np.random.default_rng(5)
    x = (rng.standard_normal(32 * 12) * 3).astype(np.float32)
    x[:32] = 0.0  # an all-zero block (d = 0)
    x[32:64] = np.resize(np.float32([127, 2.5, -2.5, 0.5, -0.5, 126.5]), 32)  # d = 1: ties round away from zero
    assert np.array_equal(_legacy.encode("q8_0", x), slow_q8_0(x))
    # BF16: round to nearest even, NaN stays NaN
    u = np.array([0x3F808000, 0x3F818000, 0x3F80FFFF, 0x7FC00001, 0xFF800000], np.uint32)
    got = _legacy.encode("bf16", u.view(np.float32)).view("<u2")
    assert list(got) == [0x3F80, 0x3F82, 0x3F81, 0x7FC0, 0xFF80]
    assert np.array_equal(_legacy.decode("f16", _legacy.encode("f16", x)), x.astype(np.float16).astype(np.float32))
    assert np.array_equal(_legacy.decode("f32", _legacy.encode("f32", x)), x)


# --------------------------------------------------------------------------------------------
# types and sizes
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", TYPES)
def test_registered_type_sizes_are_row_size_aware(name):
    info = iqrs.type_info(name)
    t = gguf.ggml_type(name)
    assert (t.id, t.block_size, t.block_bytes, t.row_meta_bytes, t.rows_per_group, t.iqk) == (
        info.ggml_id, info.block_size, info.block_bytes, info.row_meta_bytes, info.rows_per_group, True)
    assert gguf.ggml_type(info.ggml_id) is t
    rows = 4 * info.rows_per_group
    x = np.random.default_rng(0).standard_normal((rows, 512)).astype(np.float32)
    q = iqrs.quantize(x, name)
    assert t.nbytes((rows, 512)) == q.nbytes == rows * (info.row_meta_bytes + 2 * info.block_bytes)
    assert t.nbytes((2, rows, 512)) == 2 * q.nbytes


def test_type_lookup_errors():
    with pytest.raises(GGUFError, match="unknown tensor type 'nope'"):
        gguf.ggml_type("nope")
    with pytest.raises(GGUFError, match="unknown GGML type id 4"):
        gguf.ggml_type(4)
    with pytest.raises(GGUFError, match="not a whole number of 32-value blocks"):
        gguf.ggml_type("q8_0").row_size(48)


# --------------------------------------------------------------------------------------------
# reader and writer
# --------------------------------------------------------------------------------------------


def copy_model(src, dst, **kw):
    m = gguf.read(src)
    with gguf.GGUFWriter(dst, m.fields, **kw) as w:
        for t in m.tensors:
            w.add_tensor_info(t.name, t.shape, t.type)
        for t in m.tensors:
            w.write_tensor(t.name, t.data)
    return m


def test_reader_sees_what_was_written(model_path):
    path, values = model_path
    m = gguf.read(path)
    assert m.version == 3 and m.alignment == 32
    assert [(t.name, t.shape, t.type_name) for t in m.tensors] == [(n, s, ty) for n, s, ty in tensor_specs()]
    assert m.fields == {k: MetaValue.of(v) for k, v in metadata().items()}
    md = m.metadata
    assert md["general.architecture"] == "llama" and md["test.u64"] == 2**63 + 5 and md["test.unicode"] == "Grüße ✓"
    assert md["tokenizer.ggml.tokens"][5] == "tok5" and md["test.bools"] == [True, False, True]
    assert m.fields["llama.rope.freq_base"].type == ValueType.FLOAT32
    for t in m.tensors:
        assert t.offset % 32 == 0 and t.file_offset == m.data_offset + t.offset
        assert t.ne == tuple(reversed(t.shape))
        assert np.array_equal(t.dequantize(), values[t.name])
        assert np.shares_memory(t.data, m._map)  # zero copy
    assert m["blk.0.attn_v.weight"].numpy().dtype == np.float32 and np.shares_memory(m["blk.0.attn_v.weight"].numpy(), m._map)
    assert m["token_embd.weight"].numpy().dtype == np.float16
    assert m["blk.0.attn_q.weight"].numpy().dtype == np.float32  # bf16 decoded
    assert m["blk.0.ffn_up_exps.weight"].dequantize().shape == (4, 128, 256)
    with pytest.raises(GGUFError, match=r"has 256 rows; rows 250:260 requested"):
        m["blk.0.attn_q.weight"].rows(250, 260)
    with pytest.raises(KeyError, match="no tensor 'nope'"):
        m["nope"]
    with pytest.raises(GGUFError, match="not a type iqrs implements"):
        m["token_embd.weight"].qtensor()


def test_round_trip_is_identical(model_path, tmp_path):
    path, _ = model_path
    a = copy_model(path, tmp_path / "copy.gguf")
    b = gguf.read(tmp_path / "copy.gguf")
    assert a.fields == b.fields and list(a.fields) == list(b.fields)
    for ta, tb in zip(a.tensors, b.tensors):
        assert (ta.name, ta.shape, ta.type, ta.offset) == (tb.name, tb.shape, tb.type, tb.offset)
        assert np.array_equal(ta.data, tb.data)
    assert (tmp_path / "copy.gguf").read_bytes() == path.read_bytes()
    assert os.listdir(tmp_path) == ["copy.gguf"]  # no temporary file left
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(tmp_path / "copy.gguf").st_mode & 0o777 == 0o666 & ~umask  # not the temporary file's 0600


@pytest.mark.parametrize("name", TYPES)
def test_iqk_tensors_round_trip_and_read_without_copy(tmp_path, name):
    info = iqrs.type_info(name)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((8, 512)).astype(np.float32)
    x3 = rng.standard_normal((2, 4, 256)).astype(np.float32)
    q, q3 = iqrs.quantize(x, name), iqrs.quantize(x3.reshape(8, 256), name)
    with gguf.GGUFWriter(tmp_path / "q.gguf", {"general.architecture": "test"}, alignment=64) as w:
        w.add_tensor_info("a.weight", x.shape, name)
        w.add_tensor_info("b.weight", x3.shape, info.ggml_id)
        w.write_tensor("a.weight", q.data)
        w.write_tensor("b.weight", q3.to_bytes())
    m = gguf.read(tmp_path / "q.gguf")
    assert m.alignment == 64 and m.data_offset % 64 == 0 and all(t.offset % 64 == 0 for t in m.tensors)
    a, b = m["a.weight"], m["b.weight"]
    assert a.type_name == name and a.qtensor() == q and b.qtensor() == q3
    assert np.shares_memory(a.qtensor().data, m._map)
    assert np.array_equal(a.dequantize(), q.dequantize())
    assert np.array_equal(b.dequantize(), q3.dequantize().reshape(2, 4, 256))
    g = info.rows_per_group
    assert np.array_equal(a.decode_rows(g, 2 * g), q.dequantize()[g : 2 * g])


def test_writer_streams_chunks_and_checks_sizes(tmp_path):
    x = np.arange(1024, dtype=np.float32).reshape(4, 256)
    with gguf.GGUFWriter(tmp_path / "c.gguf") as w:
        w.add_tensor_info("t", x.shape, "f32")
        w.write_tensor("t", (x[i] for i in range(4)))  # an iterable of chunks
    assert np.array_equal(gguf.read(tmp_path / "c.gguf")["t"].numpy(), x)

    w = gguf.GGUFWriter(tmp_path / "bad.gguf")
    w.add_tensor_info("t", x.shape, "f32")
    with pytest.raises(GGUFError, match=r"tensor 't': 3072 bytes given, a f32 tensor of shape \(4, 256\) has 4096"):
        w.write_tensor("t", x[:3])
    assert os.listdir(tmp_path) == ["c.gguf"]  # the failed output and its temporary file are gone

    with pytest.raises(GGUFError, match="in the declared order: expected 'a', got 'b'"):
        with gguf.GGUFWriter(tmp_path / "o.gguf") as w:
            w.add_tensor_info("a", (256,), "f32")
            w.add_tensor_info("b", (256,), "f32")
            w.write_tensor("b", x[0])
    with pytest.raises(GGUFError, match="tensor 'b' and 0 more have no data"):
        with gguf.GGUFWriter(tmp_path / "o.gguf") as w:
            w.add_tensor_info("a", (256,), "f32")
            w.add_tensor_info("b", (256,), "f32")
            w.write_tensor("a", x[0])
    with pytest.raises(RuntimeError):
        with gguf.GGUFWriter(tmp_path / "o.gguf") as w:
            w.add_tensor_info("a", (256,), "f32")
            raise RuntimeError("interrupted")
    assert os.listdir(tmp_path) == ["c.gguf"]
    w = gguf.GGUFWriter(tmp_path / "o.gguf")
    w.add_tensor_info("a", (256,), "f32")
    with pytest.raises(GGUFError, match="duplicate tensor name 'a'"):
        w.add_tensor_info("a", (256,), "f32")
    w.abort()
    with pytest.raises(GGUFError, match="power of two"):
        gguf.GGUFWriter(tmp_path / "o.gguf", alignment=48)
    with pytest.raises(GGUFError, match="cannot write .*No such file or directory"):
        gguf.GGUFWriter(tmp_path / "missing" / "o.gguf")
    assert os.listdir(tmp_path) == ["c.gguf"]


@pytest.mark.parametrize("name", TYPES)
def test_writer_checks_row_groups(tmp_path, name):
    g = iqrs.type_info(name).rows_per_group
    w = gguf.GGUFWriter(tmp_path / "o.gguf")
    assert w.add_tensor_info("a", (2 * g, 256), name) == 2 * g * iqrs.type_info(name).row_size(256)
    if g > 1:
        with pytest.raises(GGUFError, match=f"needs a multiple of {g} rows"):
            w.add_tensor_info("b", (g + 1, 256), name)
    else:
        assert w.add_tensor_info("b", (3, 256), name) == 3 * iqrs.type_info(name).row_size(256)
    w.abort()
    assert os.listdir(tmp_path) == []


def test_nested_arrays_round_trip(tmp_path):
    nested = MetaValue(ValueType.ARRAY, [MetaValue.of(["a", "b"]), MetaValue.of([1, 2, 3]), MetaValue.of([])], ValueType.ARRAY)
    with gguf.GGUFWriter(tmp_path / "n.gguf", {"n": nested, "after": 5}):
        pass
    m = gguf.read(tmp_path / "n.gguf")
    assert m.fields["n"] == nested and m.metadata["after"] == 5 and m.tensors == []
    assert m.metadata["n"][0] == ["a", "b"] and list(m.metadata["n"][1]) == [1, 2, 3]


def test_metavalue_inference_and_limits():
    assert MetaValue.of(True).type == ValueType.BOOL
    assert MetaValue.of(7).type == ValueType.INT32 and MetaValue.of(2**40).type == ValueType.INT64
    assert MetaValue.of(2**64 - 1).type == ValueType.UINT64
    assert MetaValue.of(1.5).type == ValueType.FLOAT32 and MetaValue.of("s").type == ValueType.STRING
    assert MetaValue.of(["a", "b"]).item_type == ValueType.STRING
    assert MetaValue.of([1, 2]).item_type == ValueType.INT32 and MetaValue.of([1, 2.5]).item_type == ValueType.FLOAT32
    assert MetaValue.of(np.arange(3, dtype=np.uint16)).item_type == ValueType.UINT16
    with pytest.raises(GGUFError, match="items of one kind"):
        MetaValue.of(["a", 1])
    with pytest.raises(GGUFError, match="cannot store a dict"):
        MetaValue.of({})
    with pytest.raises(GGUFError, match="does not fit GGUF type UINT8"):
        gguf._pack_value(MetaValue(ValueType.UINT8, 300))


# --------------------------------------------------------------------------------------------
# bad files
# --------------------------------------------------------------------------------------------


def header(version=3, n_tensors=0, kvs=b"", n_kv=0):
    return b"GGUF" + struct.pack("<IQQ", version, n_tensors, n_kv) + kvs


def kv(key, vt, payload):
    k = key.encode()
    return struct.pack("<Q", len(k)) + k + struct.pack("<I", vt) + payload


def tinfo(name, ne, type_id, offset):
    n = name.encode()
    return struct.pack("<Q", len(n)) + n + struct.pack("<I", len(ne)) + struct.pack(f"<{len(ne)}Q", *ne) + struct.pack("<IQ", type_id, offset)


def test_bad_files(tmp_path, model_path):
    path, _ = model_path
    good = path.read_bytes()
    cases = {
        "empty": (b"", "empty file, not a GGUF file"),
        "text": (b"hello world, not a model", r"not a GGUF file \(starts with b'hell'"),
        "v1": (header(version=1), "GGUF version 1 is not supported"),
        "bigendian": (b"GGUF" + struct.pack(">IQQ", 3, 0, 0), "big-endian GGUF file"),
        "truncated_header": (good[:100], "truncated GGUF file"),
        "truncated_data": (good[: len(good) - 1000], r"truncated GGUF file: tensor 'output.weight' ends at byte"),
        "bad_value_type": (header(kvs=kv("a", 99, b""), n_kv=1), "metadata 'a' has unknown value type 99"),
        "dup_key": (header(kvs=kv("a", 4, b"\1\0\0\0") * 2, n_kv=2), "duplicate metadata key 'a'"),
        "bad_alignment": (header(kvs=kv("general.alignment", 4, struct.pack("<I", 48)), n_kv=1), "general.alignment must be a power of two"),
        "five_dims": (header(n_tensors=1) + tinfo("t", [1] * 5, 0, 0), "tensor 't' has 5 dimensions"),
        "dup_tensor": (header(n_tensors=2) + tinfo("t", [32], 0, 0) + tinfo("t", [32], 0, 128), "duplicate tensor name 't'"),
        "misaligned": (header(n_tensors=1) + tinfo("t", [32], 0, 8), "offset 8, not a multiple of the alignment 32"),
        "bad_blocks": (header(n_tensors=1) + tinfo("t", [48], 8, 0) + bytes(200), "rows of 48 values, not a multiple of 32"),
        "huge_array": (header(kvs=kv("a", 9, struct.pack("<IQ", 0, 2**60)), n_kv=1), "truncated GGUF file: metadata 'a'"),
        "bad_utf8": (header(kvs=kv("a", 8, struct.pack("<Q", 2) + b"\xff\xfe"), n_kv=1), "metadata 'a' is not valid UTF-8"),
    }
    for name, (data, msg) in cases.items():
        p = tmp_path / f"{name}.gguf"
        p.write_bytes(data)
        with pytest.raises(GGUFError, match=msg):
            gguf.read(p)
    with pytest.raises(GGUFError, match="No such file or directory"):
        gguf.read(tmp_path / "missing.gguf")
    with pytest.raises(GGUFError, match="is a directory"):
        gguf.read(tmp_path)
    # an unknown tensor type can be listed but not used
    p = tmp_path / "unknown.gguf"
    p.write_bytes(header(n_tensors=1) + tinfo("t", [32], 4000, 0) + bytes(64))
    t = gguf.read(p)["t"]
    assert t.type_name == "type4000"
    with pytest.raises(GGUFError, match="GGML type id 4000, which iqrs does not know"):
        t.data


# --------------------------------------------------------------------------------------------
# importance matrices
# --------------------------------------------------------------------------------------------


def dat_bytes(entries, chunks=None, dataset=None):
    """A legacy imatrix file as ik_llama.cpp's llama-imatrix writes it."""
    out = struct.pack("<i", len(entries))
    for name, ncall, vals in entries:
        out += struct.pack("<i", len(name)) + name.encode() + struct.pack("<ii", ncall, len(vals)) + np.asarray(vals, "<f4").tobytes()
    if chunks is not None:
        out += struct.pack("<ii", chunks, len(dataset)) + dataset.encode()
    return out


def test_imatrix_dat_read_write(tmp_path):
    rng = np.random.default_rng(2)
    a, b = rng.uniform(0, 50, 256).astype(np.float32), rng.uniform(0, 50, 4 * 256).astype(np.float32)
    p = tmp_path / "im.dat"
    p.write_bytes(dat_bytes([("blk.0.ffn_up.weight", 10, a), ("blk.0.ffn_up_exps.weight", 0, b)], 42, "wiki.train.raw"))
    im = imatrix.read(p)
    assert list(im) == ["blk.0.ffn_up.weight", "blk.0.ffn_up_exps.weight"]
    assert np.array_equal(im["blk.0.ffn_up.weight"], a / np.float32(10))  # values / ncall, in f32
    assert np.array_equal(im["blk.0.ffn_up_exps.weight"], b)  # ncall 0: as stored
    assert im.chunk_count == 42 and im.datasets == ["wiki.train.raw"]
    imatrix.write_dat(tmp_path / "out.dat", im)
    assert (tmp_path / "out.dat").read_bytes() == p.read_bytes()
    # without the trailing dataset record (older files)
    p.write_bytes(dat_bytes([("x.weight", 1, a)]))
    assert imatrix.read(p).chunk_count == 0 and np.array_equal(imatrix.read(p)["x.weight"], a)


def test_imatrix_gguf_read_write(tmp_path):
    rng = np.random.default_rng(3)
    sums = rng.uniform(0, 1000, (4, 256)).astype(np.float32)
    counts = np.array([[100.0], [0.0], [7.0], [512.0]], np.float32)
    fields = {"general.type": "imatrix", "imatrix.datasets": ["a.txt", "b.txt"],
              "imatrix.chunk_count": MetaValue(ValueType.UINT32, 12), "imatrix.chunk_size": MetaValue(ValueType.UINT32, 512)}  # fmt: skip
    with gguf.GGUFWriter(tmp_path / "im.gguf", fields) as w:
        for n, arr in [("e.weight.in_sum2", sums), ("e.weight.counts", counts), ("m.weight.in_sum2", sums[:1]), ("m.weight.counts", counts[:1])]:
            w.add_tensor_info(n, arr.shape, "f32")
        for n, arr in [("e.weight.in_sum2", sums), ("e.weight.counts", counts), ("m.weight.in_sum2", sums[:1]), ("m.weight.counts", counts[:1])]:
            w.write_tensor(n, arr)
    im = imatrix.read(tmp_path / "im.gguf")
    assert im.datasets == ["a.txt", "b.txt"] and im.chunk_count == 12 and im.chunk_size == 512
    with np.errstate(divide="ignore", invalid="ignore"):
        want = sums / counts
    want[1] = 1.0  # an expert that saw no tokens: ones, as llama.cpp does
    assert np.array_equal(im["e.weight"], want.reshape(-1))
    assert np.array_equal(im.for_tensor("e.weight", (4, 64, 256)), want)
    assert np.array_equal(im.for_tensor("m.weight", (64, 256)), sums[:1] / counts[:1])
    # write both formats and read them back: the same importance values
    imatrix.write_gguf(tmp_path / "again.gguf", im)
    imatrix.write_dat(tmp_path / "again.dat", im)
    for p in ("again.gguf", "again.dat"):
        back = imatrix.read(tmp_path / p)
        assert list(back) == list(im)
        for name in im:
            assert np.array_equal(back[name], im[name]), (p, name)


def test_imatrix_lookup_and_mismatch(tmp_path):
    im = imatrix.Imatrix({
        "blk.0.ffn_up.weight": imatrix.ImatrixEntry(np.ones(256, np.float32), np.ones(1, np.float32)),
        "blk.0.ffn_gate_up_exps.weight": imatrix.ImatrixEntry(np.ones(4 * 256, np.float32), np.ones(1, np.float32)),
        "blk.0.attn_kv_b.weight": imatrix.ImatrixEntry(np.ones(512, np.float32), np.ones(1, np.float32)),
    }, path="im.dat")  # fmt: skip
    assert im.lookup("blk.0.ffn_gate.weight") == "blk.0.ffn_up.weight"
    assert im.lookup("blk.0.ffn_up_exps.weight") == "blk.0.ffn_gate_up_exps.weight"
    assert im.lookup("blk.0.attn_v_b.weight") == "blk.0.attn_kv_b.weight"
    assert im.lookup("blk.0.attn_q.weight") is None and im.for_tensor("blk.0.attn_q.weight", (8, 256)) is None
    with pytest.raises(ValueError, match=r"imatrix entry 'blk.0.ffn_up.weight' \(from im.dat\) has 256 values but the tensor needs 512; is the imatrix for another model\?"):
        im.for_tensor("blk.0.ffn_up.weight", (8, 512))
    with pytest.raises(ValueError, match=r"has 1024 values but the tensor needs 8 x 256 = 2048"):
        im.for_tensor("blk.0.ffn_up_exps.weight", (8, 16, 256))
    im.entries["bad.weight"] = imatrix.ImatrixEntry(np.full(256, np.nan, np.float32), np.ones(1, np.float32))
    with pytest.raises(ValueError, match="non-finite"):
        im.for_tensor("bad.weight", (1, 256))


def test_bad_imatrix_files(tmp_path):
    good = dat_bytes([("x.weight", 1, np.ones(256))], 1, "d")
    cases = {
        "empty": (b"", "truncated imatrix file: the entry count"),
        "zero": (struct.pack("<i", 0), "not an imatrix file"),
        "truncated": (good[:200], "truncated imatrix file: the values of 'x.weight'"),
        "garbage": (b"\x05\x00\x00\x00\xff\xff\xff\x7f", "not an imatrix file"),
    }
    for name, (data, msg) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ValueError, match=msg):
            imatrix.read(tmp_path / name)
    with gguf.GGUFWriter(tmp_path / "model.gguf") as w:
        w.add_tensor_info("x.weight", (256,), "f32")
        w.write_tensor("x.weight", np.ones(256, np.float32))
    with pytest.raises(ValueError, match="a GGUF file without imatrix data"):
        imatrix.read(tmp_path / "model.gguf")
    with gguf.GGUFWriter(tmp_path / "nocounts.gguf") as w:
        w.add_tensor_info("x.weight.in_sum2", (256,), "f32")
        w.write_tensor("x.weight.in_sum2", np.ones(256, np.float32))
    with pytest.raises(ValueError, match="'x.weight' has sums but no counts"):
        imatrix.read(tmp_path / "nocounts.gguf")
    with pytest.raises(OSError):
        imatrix.read(tmp_path / "missing.dat")
