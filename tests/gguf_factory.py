"""Builds small synthetic GGUF models for the tests: realistic tensor names, shapes and types
(F32 norms, BF16/F16/Q8_0/F32 weights, stacked experts, awkward shapes) and typical metadata."""

from __future__ import annotations

import numpy as np

from iqrs import _legacy, gguf
from iqrs.gguf import MetaValue, ValueType

EMBD, FF, VOCAB, EXPERTS = 256, 512, 320, 4


def _weights(rng: np.random.Generator, shape) -> np.ndarray:
    """Gaussian weights with per-row scales and a few outliers, like trained matrices."""
    rows = int(np.prod(shape[:-1]))
    s = rng.uniform(0.01, 0.1, size=(rows, 1))
    x = s * rng.standard_normal((rows, shape[-1])) * np.where(rng.uniform(size=(rows, shape[-1])) < 0.005, 8.0, 1.0)
    return x.reshape(shape).astype(np.float32)


def tensor_specs():
    """(name, shape, type) of every tensor of the test model, in file order."""
    return [
        ("token_embd.weight", (VOCAB, EMBD), "f16"),
        ("blk.0.attn_norm.weight", (EMBD,), "f32"),
        ("blk.0.attn_q.weight", (EMBD, EMBD), "bf16"),
        ("blk.0.attn_k.weight", (64, EMBD), "q8_0"),
        ("blk.0.attn_v.weight", (64, EMBD), "f32"),
        ("blk.0.attn_output.weight", (EMBD, EMBD), "bf16"),
        ("blk.0.attn_kv_a_mqa.weight", (66, EMBD), "bf16"),  # rows not a multiple of 4
        ("blk.0.ffn_norm.weight", (EMBD,), "f32"),
        ("blk.0.ffn_gate.weight", (FF, EMBD), "bf16"),
        ("blk.0.ffn_up.weight", (FF, EMBD), "f16"),
        ("blk.0.ffn_down.weight", (EMBD, FF), "bf16"),
        ("blk.0.ffn_gate_inp.weight", (EXPERTS, EMBD), "f32"),  # MoE router: never quantized
        ("blk.0.ffn_up_exps.weight", (EXPERTS, 128, EMBD), "bf16"),  # stacked experts
        ("blk.0.ffn_down_exps.weight", (EXPERTS, EMBD, 128), "bf16"),  # 128 columns: no 256-blocks
        ("output_norm.weight", (EMBD,), "f32"),
        ("output.weight", (VOCAB, EMBD), "q8_0"),
    ]


def encode(values: np.ndarray, type_name: str) -> np.ndarray:
    """The bytes of float32 values stored as ``type_name`` (f32, f16, bf16, q8_0)."""
    return _legacy.encode(type_name, values)


def metadata():
    """Typical model metadata, covering every GGUF value type (except nested arrays, which are
    valid GGUF but which ggml's reader, and so ik_llama.cpp, rejects)."""
    return {
        "general.architecture": "llama",
        "general.name": "iqrs test model",
        "general.file_type": MetaValue(ValueType.UINT32, 32),
        "llama.block_count": MetaValue(ValueType.UINT32, 1),
        "llama.embedding_length": MetaValue(ValueType.UINT32, EMBD),
        "llama.rope.freq_base": MetaValue(ValueType.FLOAT32, 500000.0),
        "llama.attention.layer_norm_rms_epsilon": MetaValue(ValueType.FLOAT32, 1e-5),
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.tokens": MetaValue(ValueType.ARRAY, [f"tok{i}" for i in range(VOCAB)], ValueType.STRING),
        "tokenizer.ggml.token_type": MetaValue(ValueType.ARRAY, np.ones(VOCAB, np.int32), ValueType.INT32),
        "tokenizer.ggml.scores": MetaValue(ValueType.ARRAY, np.linspace(-1, 0, VOCAB, dtype=np.float32), ValueType.FLOAT32),
        "tokenizer.ggml.add_bos_token": True,
        "test.u8": MetaValue(ValueType.UINT8, 200),
        "test.i8": MetaValue(ValueType.INT8, -100),
        "test.u16": MetaValue(ValueType.UINT16, 60000),
        "test.i16": MetaValue(ValueType.INT16, -30000),
        "test.i32": MetaValue(ValueType.INT32, -2_000_000_000),
        "test.u64": MetaValue(ValueType.UINT64, 2**63 + 5),
        "test.i64": MetaValue(ValueType.INT64, -(2**62)),
        "test.f64": MetaValue(ValueType.FLOAT64, 3.141592653589793),
        "test.bools": MetaValue(ValueType.ARRAY, [True, False, True], ValueType.BOOL),
        "test.u8s": MetaValue(ValueType.ARRAY, np.arange(7, dtype=np.uint8), ValueType.UINT8),
        "test.empty": "",
        "test.unicode": "Grüße ✓",
    }


def make_model(path, seed: int = 0, specs=None, fields=None):
    """Write the test model to ``path``; returns ``{name: float32 values as stored}`` (the values
    the file decodes to, so tests can compare against them)."""
    rng = np.random.default_rng(seed)
    specs = tensor_specs() if specs is None else specs
    values = {}
    data = {}
    for name, shape, ty in specs:
        x = np.abs(_weights(rng, shape)) + 1.0 if name.endswith("norm.weight") else _weights(rng, shape)
        raw = encode(x.reshape(-1), ty)
        data[name] = raw
        values[name] = _legacy.decode(ty, raw).reshape(shape)
    with gguf.GGUFWriter(path, metadata() if fields is None else fields) as w:
        for name, shape, ty in specs:
            w.add_tensor_info(name, shape, ty)
        for name, _, _ in specs:
            w.write_tensor(name, data[name])
    return values
