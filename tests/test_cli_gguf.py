"""``iqrs quantize / repack / info / stats`` on synthetic GGUF models: every output tensor checked
against ``iqrs.quantize`` of its data, the per-tensor rules, metadata, and every bad input."""

import os
import subprocess
import sys

import numpy as np
import pytest

import iqrs
from iqrs import _legacy, convert, gguf, imatrix
from iqrs.cli import main

from conftest import TYPES
from gguf_factory import EMBD, EXPERTS, make_model, metadata, tensor_specs

# A smaller model for the per-type runs (CI has 2 cores): every kind of tensor, fewer weights.
SMALL = [s for s in tensor_specs() if s[0] in {
    "token_embd.weight", "blk.0.attn_norm.weight", "blk.0.attn_q.weight", "blk.0.attn_k.weight",
    "blk.0.attn_kv_a_mqa.weight", "blk.0.ffn_gate_inp.weight", "blk.0.ffn_up_exps.weight",
    "blk.0.ffn_down_exps.weight", "output.weight"}]  # fmt: skip


def base_of(name):
    """The registered base type of an interleaved type (itself otherwise)."""
    g = iqrs.type_info(name).rows_per_group
    return name[: -len(f"_r{g}")] if g > 1 else name


def expected_target(tname, shape, src_type, default):
    """The type ik_llama.cpp's rules give a tensor of the test model (no custom rules)."""
    if tname.endswith("norm.weight") or "ffn_gate_inp" in tname or shape[-1] % 256:
        return src_type
    g = iqrs.type_info(default).rows_per_group
    if tname == "token_embd.weight" or shape[-2] % g:
        return base_of(default)
    return default


def quantized(x, type_name, im=None):
    """What the output must hold: iqrs.quantize of the data (expert by expert), or the encoder."""
    if type_name not in TYPES:
        return _legacy.encode(type_name, x.reshape(-1))
    if x.ndim == 3:
        return np.concatenate([iqrs.quantize(x[e], type_name, imatrix=None if im is None else im[e]).data for e in range(x.shape[0])])
    return iqrs.quantize(x, type_name, imatrix=None if im is None else im[0]).data


def run(capsys, *args):
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def assert_clean_error(rc, err, pattern, tmp_path, keep=()):
    """One line on stderr, exit 2, no traceback, and nothing written (no output, no temp file)."""
    import re

    assert rc == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip() and not re.match(r"\w+ \[\s*\d+/\d+\] ", ln)]  # minus progress lines
    assert len(lines) == 1 and lines[0].startswith("iqrs: error: "), err
    assert re.search(pattern, lines[0]), lines[0]
    assert "Traceback" not in err
    left = sorted(set(os.listdir(tmp_path)) - set(keep))
    assert left == [], left


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    p = tmp_path_factory.mktemp("small") / "small.gguf"
    return p, make_model(p, seed=1, specs=SMALL)


@pytest.mark.parametrize("name", TYPES)
def test_quantize_every_tensor_matches_iqrs_quantize(small, tmp_path, capsys, name):
    src, values = small
    out = tmp_path / "out.gguf"
    rc, stdout, err = run(capsys, "quantize", src, out, name, "--threads", 2)
    assert rc == 0, err
    m_in, m = gguf.read(src), gguf.read(out)
    assert [t.name for t in m.tensors] == [t.name for t in m_in.tensors]
    for t_in, t in zip(m_in.tensors, m.tensors):
        want = expected_target(t.name, t.shape, t_in.type_name, name)
        assert t.type_name == want and t.shape == t_in.shape, t.name
        if want == t_in.type_name:
            assert np.array_equal(t.data, t_in.data), t.name  # kept as is
        else:
            assert np.array_equal(t.data, quantized(values[t.name], want)), t.name
    # metadata: copied, plus the quantization keys
    ft = convert.file_type_of(name)
    assert m.get("general.file_type") == ft and ("general.file_type" in m.fields) == (ft is not None)
    assert m.fields["general.quantization_version"] == gguf.MetaValue(gguf.ValueType.UINT32, 2)
    for k, v in m_in.fields.items():
        if k != "general.file_type":
            assert m.fields[k] == v, k
    assert f"{name} " in stdout and "tensors/s" in stdout and "M weights/s" in stdout
    assert "quantizing [1/9] token_embd.weight 320 x 256 (0.16 MiB) f16 -> " in err  # progress without a terminal
    assert sorted(os.listdir(tmp_path)) == ["out.gguf"]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    p = tmp_path_factory.mktemp("model") / "model.gguf"
    return p, make_model(p, seed=2)


def imatrix_entries(values, rng):
    """Importance vectors for some tensors of the test model (experts: one per expert)."""
    e = {
        "blk.0.attn_q.weight": rng.uniform(0.1, 5, (1, EMBD)),
        "blk.0.ffn_up.weight": rng.uniform(0.1, 5, (1, EMBD)),  # ffn_gate uses ffn_up's, as the reference does
        "blk.0.ffn_up_exps.weight": rng.uniform(0.1, 5, (EXPERTS, EMBD)),
        "blk.0.ffn_down.weight": rng.uniform(0.1, 5, (1, 512)),
        "token_embd.weight": rng.uniform(0.1, 5, (1, 7)),  # wrong length: ignored for token_embd only
    }
    return {k: v.astype(np.float32) for k, v in e.items()}


def _uses_imatrix(name):
    x = np.random.default_rng(0).standard_normal((4, 256)).astype(np.float32)
    w = np.random.default_rng(1).uniform(0.1, 5, 256).astype(np.float32)
    return iqrs.quantize(x, name) != iqrs.quantize(x, name, imatrix=w)


# the first registered (non-interleaved) type whose result depends on the importance matrix
IMATRIX_TYPE = next(t for t in TYPES if iqrs.type_info(t).rows_per_group == 1 and _uses_imatrix(t))


@pytest.mark.parametrize("fmt", ["dat", "gguf"])
def test_quantize_with_imatrix(model, tmp_path, capsys, fmt):
    src, values = model
    name = IMATRIX_TYPE
    ent = imatrix_entries(values, np.random.default_rng(4))
    im = imatrix.Imatrix({k: imatrix.ImatrixEntry(v.reshape(-1) * 3, np.float32([3])) for k, v in ent.items()}, ["calib.txt"], 17, 512)
    im_path = tmp_path / f"im.{fmt}"
    (imatrix.write_dat if fmt == "dat" else imatrix.write_gguf)(im_path, im)
    out = tmp_path / "out.gguf"
    rc, stdout, err = run(capsys, "quantize", src, out, name, "--imatrix", im_path)
    assert rc == 0, err
    m = gguf.read(out)
    used = {"blk.0.attn_q.weight": "blk.0.attn_q.weight", "blk.0.ffn_gate.weight": "blk.0.ffn_up.weight",
            "blk.0.ffn_up.weight": "blk.0.ffn_up.weight", "blk.0.ffn_up_exps.weight": "blk.0.ffn_up_exps.weight",
            "blk.0.ffn_down.weight": "blk.0.ffn_down.weight"}  # fmt: skip
    reread = imatrix.read(im_path)
    for t in m.tensors:
        if t.type_name != name:
            continue
        key = used.get(t.name)
        vec = None if key is None else reread[key].reshape(ent[key].shape)
        assert np.array_equal(t.data, quantized(values[t.name], name, vec)), t.name
    # the imatrix changes the result where it is used
    assert not np.array_equal(m["blk.0.attn_q.weight"].data, quantized(values["blk.0.attn_q.weight"], name))
    md = m.metadata
    assert md["quantize.imatrix.file"] == str(im_path) and md["quantize.imatrix.entries_count"] == 5
    assert md["quantize.imatrix.chunks_count"] == 17 and md["quantize.imatrix.dataset"] == "calib.txt"
    assert m.fields["quantize.imatrix.entries_count"].type == gguf.ValueType.INT32
    assert "no imatrix entry for" in err  # e.g. attn_k


def test_custom_rules_and_plain_targets(model, tmp_path, capsys):
    src, values = model
    a = base_of(TYPES[0])
    b = next((base_of(t) for t in TYPES if base_of(t) != a), a)
    out = tmp_path / "out.gguf"
    rules = f"attn_q={b},token_embd=bf16,up_exps=f16,down_exps=q8_0,^output\\.=q8_0"
    rc, stdout, err = run(capsys, "quantize", src, out, a, "--custom-q", rules, "--custom-q", "attn_v=f32")
    assert rc == 0, err
    m = gguf.read(out)
    want = {"blk.0.attn_q.weight": b, "token_embd.weight": "bf16", "blk.0.ffn_up_exps.weight": "f16",
            "blk.0.ffn_down_exps.weight": "q8_0",  # 128 columns: not 256-blocks, but q8_0's 32-blocks fit
            "output.weight": "q8_0", "blk.0.attn_v.weight": "f32", "blk.0.attn_k.weight": a,
            "blk.0.attn_norm.weight": "f32", "blk.0.ffn_gate_inp.weight": "f32"}  # fmt: skip
    for name, ty in want.items():
        assert m[name].type_name == ty, name
    assert np.array_equal(m["output.weight"].data, gguf.read(src)["output.weight"].data)  # already q8_0: copied
    assert np.array_equal(m["blk.0.attn_v.weight"].data, gguf.read(src)["blk.0.attn_v.weight"].data)
    for name in ("blk.0.attn_q.weight", "token_embd.weight", "blk.0.ffn_up_exps.weight", "blk.0.ffn_down_exps.weight", "blk.0.attn_k.weight"):
        assert np.array_equal(m[name].data, quantized(values[name], want[name])), name


def test_dry_run_writes_nothing(model, tmp_path, capsys):
    src, _ = model
    rc, out, err = run(capsys, "quantize", src, tmp_path / "out.gguf", TYPES[0], "--dry-run")
    assert rc == 0, err
    assert os.listdir(tmp_path) == []
    assert "128 columns do not fit" in out and "expert router" in out and "norm" in out and "dry run: nothing written" in out
    for name, _, _ in tensor_specs():
        assert name in out


def test_split_models_are_refused(tmp_path, capsys):
    fields = dict(metadata(), **{"split.no": gguf.MetaValue(gguf.ValueType.UINT16, 0), "split.count": gguf.MetaValue(gguf.ValueType.UINT16, 3)})
    make_model(tmp_path / "part.gguf", specs=SMALL[:3], fields=fields)
    rc, out, err = run(capsys, "quantize", tmp_path / "part.gguf", tmp_path / "out.gguf", TYPES[0])
    assert_clean_error(rc, err, r"part 1 of a 3-file split model; merge the parts first", tmp_path, keep=["part.gguf"])


def test_bad_inputs(small, tmp_path, capsys):
    src, values = small
    good = src.read_bytes()
    (tmp_path / "trunc.gguf").write_bytes(good[: len(good) // 2])
    (tmp_path / "text.gguf").write_bytes(b"not a model at all")
    keep = ["trunc.gguf", "text.gguf", "other.dat", "none.dat", "bad.dat", "outdir"]
    other = imatrix.Imatrix({"blk.0.attn_q.weight": imatrix.ImatrixEntry(np.ones(512, np.float32), np.ones(1, np.float32))})
    imatrix.write_dat(tmp_path / "other.dat", other)
    none = imatrix.Imatrix({"model.layers.0.mlp.weight": imatrix.ImatrixEntry(np.ones(256, np.float32), np.ones(1, np.float32))})
    imatrix.write_dat(tmp_path / "none.dat", none)
    (tmp_path / "bad.dat").write_bytes((tmp_path / "other.dat").read_bytes()[:50])
    os.mkdir(tmp_path / "outdir")
    out = tmp_path / "out.gguf"
    t = TYPES[0]
    cases = [
        (["quantize", tmp_path / "missing.gguf", out, t], r"missing.gguf: No such file or directory"),
        (["quantize", tmp_path / "trunc.gguf", out, t], r"truncated GGUF file"),
        (["quantize", tmp_path / "text.gguf", out, t], r"not a GGUF file"),
        (["quantize", src, out, "iq9_zz"], r"unknown quantization type 'iq9_zz'; iqrs can write: .*q8_0"),
        (["quantize", src, out, t, "--custom-q", "attn_q[=" + t], r"bad regex 'attn_q\['"),
        (["quantize", src, out, t, "--custom-q", "attn_q"], r"bad --custom-q rule 'attn_q': expected regex=type"),
        (["quantize", src, out, t, "--custom-q", "attn_q=q4_K"], r"unknown quantization type 'q4_K'"),
        (["quantize", src, out, t, "--imatrix", tmp_path / "other.dat"], r"imatrix entry 'blk.0.attn_q.weight' .* has 512 values but the tensor needs 256; is the imatrix for another model\?"),
        (["quantize", src, out, t, "--imatrix", tmp_path / "none.dat"], r"has no entry for any tensor of .*; is it for another model\?"),
        (["quantize", src, out, t, "--imatrix", tmp_path / "bad.dat"], r"truncated imatrix file"),
        (["quantize", src, out, t, "--imatrix", tmp_path / "missing.dat"], r"missing.dat: No such file or directory"),
        (["quantize", src, tmp_path / "nodir" / "out.gguf", t], r"cannot write .*nodir/out.gguf: No such file or directory"),
        (["quantize", src, tmp_path / "outdir", t], r"outdir: is a directory"),
        (["quantize", src, out, t, "--threads", 0], r"--threads must be >= 1"),
        (["info", tmp_path / "text.gguf"], r"not a GGUF file"),
        (["stats", src, "--types", "nope"], r"unknown quantization type 'nope'"),
        (["stats", src, "--types", t, "--tensors", "(("], r"bad regex '\(\('"),
        (["stats", src, "--types", t, "--tensors", "nothing_like_this"], r"no quantizable tensor matches"),
        (["repack", tmp_path / "text.gguf", out], r"not a GGUF file"),
    ]
    for args, pattern in cases:
        rc, _, err = run(capsys, *args)
        assert_clean_error(rc, err, pattern, tmp_path, keep)


def test_failure_mid_run_leaves_no_output(tmp_path, capsys, monkeypatch):
    specs = [("a.weight", (64, 256), "f32"), ("b.weight", (64, 256), "f32"), ("c.weight", (64, 256), "f32")]
    make_model(tmp_path / "in.gguf", specs=specs, fields={"general.architecture": "test"})
    m = gguf.read(tmp_path / "in.gguf")
    bad = np.array(m["b.weight"].numpy())
    bad[5, 17] = np.nan
    with gguf.GGUFWriter(tmp_path / "nan.gguf", m.fields) as w:
        for t in m.tensors:
            w.add_tensor_info(t.name, t.shape, t.type)
        for t in m.tensors:
            w.write_tensor(t.name, bad if t.name == "b.weight" else t.data)
    keep = ["in.gguf", "nan.gguf"]
    rc, _, err = run(capsys, "quantize", tmp_path / "nan.gguf", tmp_path / "out.gguf", TYPES[0])
    assert_clean_error(rc, err, r"tensor 'b.weight' \(rows 0..63\): x contains a non-finite value .* at row 5, column 17", tmp_path, keep)

    calls = []

    def interrupt(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return iqrs.quantize(*a, **k)

    monkeypatch.setattr(convert, "quantize", interrupt)
    rc, _, err = run(capsys, "quantize", tmp_path / "in.gguf", tmp_path / "out.gguf", TYPES[0])
    assert rc == 130 and "interrupted; no output written" in err and "Traceback" not in err
    assert sorted(os.listdir(tmp_path)) == keep


def test_info(model, tmp_path, capsys):
    src, _ = model
    rc, out, err = run(capsys, "info", src)
    assert rc == 0, err
    assert "GGUF v3, 24 metadata keys, 16 tensors, alignment 32" in out
    assert "tokenizer.ggml.tokens" in out and "[320 x string] 'tok0'" in out
    for name, shape, ty in tensor_specs():
        assert any(ln.split()[:2] == [name, ty] for ln in out.splitlines()), name
    assert any(ln.split() == ["blk.0.ffn_up_exps.weight", "bf16", "4", "x", "128", "x", "256", "0.25", "16.0000"] for ln in out.splitlines())
    t = TYPES[0]
    run(capsys, "quantize", src, tmp_path / "q.gguf", t)
    rc, out, _ = run(capsys, "info", tmp_path / "q.gguf", "--no-metadata")
    assert rc == 0 and "tokenizer" not in out
    q = gguf.read(tmp_path / "q.gguf")["blk.0.attn_q.weight"]
    assert any(ln.split() == ["blk.0.attn_q.weight", q.type_name, "256", "x", "256", f"{q.nbytes / 2**20:.2f}", f"{q.bpw:.4f}"] for ln in out.splitlines())


def test_stats(model, tmp_path, capsys, monkeypatch):
    src, values = model
    names = [base_of(t) for t in TYPES][:2]
    rc, out, err = run(capsys, "stats", src, "--types", ",".join(names), "--tensors", "attn_q|ffn_down")
    assert rc == 0, err
    x = values["blk.0.attn_q.weight"]
    for t in names:
        d = iqrs.quantize(x, t).dequantize()
        rmse = float(np.sqrt(((x.astype(np.float64) - d) ** 2).mean()))
        assert any(ln.split()[:2] == ["blk.0.attn_q.weight", t] and f"{rmse:.4e}" in ln for ln in out.splitlines()), t
    assert "blk.0.ffn_down_exps.weight" not in out.split("\n\n")[0] or "-" in out  # 128 columns: no 256-blocks
    # --plot: a PNG with matplotlib, a clear error without it
    try:
        import matplotlib  # noqa: F401

        rc, out, err = run(capsys, "stats", src, "--types", names[0], "--tensors", "attn_k", "--max-rows", 16, "--plot", tmp_path / "p.png")
        assert rc == 0 and (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    except ImportError:
        pass
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    rc, _, err = run(capsys, "stats", src, "--types", names[0], "--plot", tmp_path / "q.png")
    assert_clean_error(rc, err, r"--plot needs matplotlib", tmp_path, keep=["p.png"])


def test_stats_with_imatrix_and_row_sampling(model, tmp_path, capsys):
    src, values = model
    t = base_of(TYPES[0])
    w = np.random.default_rng(9).uniform(0.1, 4, EMBD).astype(np.float32)
    imatrix.write_dat(tmp_path / "im.dat", imatrix.Imatrix({"blk.0.attn_q.weight": imatrix.ImatrixEntry(w, np.ones(1, np.float32))}))
    res = convert.stats_model(src, [t], imatrix.read(tmp_path / "im.dat"), pattern="attn_q", max_rows=64)
    s = res["blk.0.attn_q.weight"][t]
    assert s.n == 64 * EMBD
    x = values["blk.0.attn_q.weight"][convert._sample_rows(EMBD, 64, iqrs.type_info(t).rows_per_group)]
    d = iqrs.quantize(x, t, imatrix=w).dequantize()
    e = (x.astype(np.float64) - d) ** 2
    assert s.rmse == pytest.approx(np.sqrt(e.mean()), rel=1e-12)
    w64 = w.astype(np.float64)
    assert s.wrmse == pytest.approx(np.sqrt((e * w64).sum() / (w64.sum() * 64)), rel=1e-12)
    assert s.bpw == pytest.approx(8 * iqrs.type_info(t).row_size(EMBD) / EMBD)


def test_repack(small, tmp_path, capsys):
    src, _ = small
    pairs = [(t, t + "_r4") for t in TYPES if t + "_r4" in TYPES]
    base = pairs[0][0] if pairs else TYPES[0]
    run(capsys, "quantize", src, tmp_path / "q.gguf", base)
    rc, out, err = run(capsys, "repack", tmp_path / "q.gguf", tmp_path / "r.gguf")
    if not pairs:
        assert_clean_error(rc, err, r"nothing to repack", tmp_path, keep=["q.gguf"])
        return
    assert rc == 0, err
    q, r = gguf.read(tmp_path / "q.gguf"), gguf.read(tmp_path / "r.gguf")
    for tq, tr in zip(q.tensors, r.tensors):
        if tq.type_name == base and tq.name != "token_embd.weight" and tq.shape[-2] % 4 == 0:
            assert tr.type_name == base + "_r4", tq.name
            assert np.array_equal(tr.dequantize(), tq.dequantize()), tq.name  # lossless
        else:
            assert tr.type_name == tq.type_name and np.array_equal(tr.data, tq.data), tq.name
    rc, out, err = run(capsys, "repack", tmp_path / "r.gguf", tmp_path / "u.gguf", "--unpack")
    assert rc == 0, err
    assert (tmp_path / "u.gguf").read_bytes() == (tmp_path / "q.gguf").read_bytes()


def test_entry_point_error_is_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "iqrs", "quantize", str(tmp_path / "nope.gguf"), str(tmp_path / "o.gguf"), TYPES[0]],
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "Traceback" not in r.stderr
    assert r.stderr.startswith("iqrs: error: ") and "nope.gguf: No such file or directory" in r.stderr
    assert os.listdir(tmp_path) == []


def test_progress_bar_on_a_terminal(small, monkeypatch):
    import io

    from iqrs.cli import ProgressBar

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setenv("COLUMNS", "160")
    src, _ = small
    term = Terminal()
    bar = ProgressBar("quantizing", stream=term)
    m = gguf.read(src)
    bar.start(len(m.tensors), 1000)
    bar.tensor(2, convert.TensorPlan(m["blk.0.attn_q.weight"], gguf.ggml_type(TYPES[0]), "quantize", "default"))
    bar.last = 0.0  # redraws are at most 10 per second
    bar.advance(500)
    text = term.getvalue()
    assert text.startswith("\r[3/9] blk.0.attn_q.weight 256 x 256 (0.12 MiB) bf16 -> " + TYPES[0])
    assert "|##########..........|  50.0%" in text and "Mw/s ETA" in text
    bar.done()
    assert term.getvalue().endswith("\r")
