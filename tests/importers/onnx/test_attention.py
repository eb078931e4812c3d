"""ONNX Attention and RotaryEmbedding through clawdbot, compared with onnxruntime on one-node models.

Attention: 3-D and 4-D Q/K/V, multi-head / grouped / multi-query heads, scale, softcap, causal masking, boolean
and additive masks of several ranks (also shorter than the keys), past/present KV cache, every
qk_matmul_output_mode, float16, softmax_precision, nonpad_kv_seqlen (opset 24). The opset-25 sliding window is
checked against the onnx reference evaluator (onnxruntime has no Attention-25), as are masks shorter than
the keys and float64 (which onnxruntime rejects). RotaryEmbedding: 3-D / 4-D
input, interleaved or split halves, partial rotary_embedding_dim, with and without position_ids.
conftest.py sets CLAWDBOT_CHECK=1, so kernel output dtypes/shapes are checked too.
"""
from __future__ import annotations

from functools import partial

import numpy as np
import pytest
from claw_testing import assert_matches_ort, one_node_model, ort_run, randn, reference_run

import clawdbot
from clawdbot.errors import UnsupportedOpsError

RNG = np.random.default_rng(7)
OUTPUTS = ["y", "present_key", "present_value", "qk"]
model = partial(one_node_model, opset=23)
check = partial(assert_matches_ort, rtol=1e-5, atol=1e-5)


def tol(dtype) -> dict:
    return {"rtol": 3e-3, "atol": 3e-3} if np.dtype(dtype) == np.float16 else {"rtol": 1e-5, "atol": 1e-5}


def qkv(layout: str, heads: tuple[int, int], dtype="float32", batch=2, q_len=4, kv_len=6, size=8, v_size=8):
    """Q, K, V in `layout` ("3d" or "4d") and the attributes the layout needs."""
    hq, hkv = heads
    if layout == "4d":
        return (randn(RNG, (batch, hq, q_len, size), dtype), randn(RNG, (batch, hkv, kv_len, size), dtype),
                randn(RNG, (batch, hkv, kv_len, v_size), dtype), {})
    return (randn(RNG, (batch, q_len, hq * size), dtype), randn(RNG, (batch, kv_len, hkv * size), dtype),
            randn(RNG, (batch, kv_len, hkv * v_size), dtype), {"q_num_heads": hq, "kv_num_heads": hkv})


HEADS = {"mha": (3, 3), "gqa": (6, 2), "mqa": (4, 1)}


@pytest.mark.parametrize("layout", ["3d", "4d"])
@pytest.mark.parametrize("heads", sorted(HEADS))
@pytest.mark.parametrize("attrs", [{}, {"is_causal": 1}, {"scale": 0.3}, {"softcap": 1.5},
                                   {"is_causal": 1, "softcap": 2.0, "scale": 0.2}])
def test_attention_options(layout, heads, attrs):
    q, k, v, head_attrs = qkv(layout, HEADS[heads], v_size=5)
    inputs = {"q": q, "k": k, "v": v}
    check(model("Attention", inputs, **head_attrs, **attrs), inputs, **tol(q.dtype))


MASKS = {  # name -> (shape for [batch=2, heads, q=4, total=6], dtype)
    "float_2d": ((4, 6), "float32"),
    "float_4d_heads_broadcast": ((2, 1, 4, 6), "float32"),
    "float_3d": ((1, 4, 6), "float32"),
    "bool_2d": ((4, 6), "bool"),
    "bool_4d": ((2, 3, 4, 6), "bool"),
    "bool_short": ((4, 4), "bool"),      # shorter than the keys: the rest counts as masked
    "float_short": ((2, 1, 4, 5), "float32"),
}


def make_mask(name: str, dtype="float32") -> np.ndarray:
    shape, kind = MASKS[name]
    if kind == "bool":
        mask = RNG.random(shape) > 0.3
        mask[..., 0] = True  # every row attends at least one key: onnxruntime then agrees on every row
        return mask
    return randn(RNG, shape, dtype)


@pytest.mark.parametrize("mask", sorted(MASKS))
@pytest.mark.parametrize("causal", [0, 1])
def test_attention_masks(mask, causal):
    q, k, v, _ = qkv("4d", (3, 3))
    inputs = {"q": q, "k": k, "v": v, "mask": make_mask(mask)}
    m = model("Attention", inputs, is_causal=causal)
    # onnxruntime rejects masks shorter than the keys, which ONNX allows: the reference evaluator judges those.
    check(m, inputs, oracle=reference_run if mask.endswith("short") else ort_run)


@pytest.mark.parametrize("layout", ["3d", "4d"])
@pytest.mark.parametrize("heads", ["mha", "gqa"])
@pytest.mark.parametrize("causal", [0, 1])
def test_attention_kv_cache(layout, heads, causal):
    """past_key/past_value are prepended; presents are 4-D; causal masking is offset by the past length."""
    hq, hkv = HEADS[heads]
    q, k, v, head_attrs = qkv(layout, (hq, hkv), q_len=3, kv_len=3)
    past_k, past_v = randn(RNG, (2, hkv, 5, 8)), randn(RNG, (2, hkv, 5, 8))
    inputs = {"q": q, "k": k, "v": v, "mask": randn(RNG, (3, 8)), "past_key": past_k, "past_value": past_v}
    m = model("Attention", inputs, outputs=OUTPUTS[:3], is_causal=causal, **head_attrs)
    check(m, inputs)


@pytest.mark.parametrize("mode", [0, 1, 2, 3])
@pytest.mark.parametrize("layout", ["3d", "4d"])
def test_attention_qk_output_modes(mode, layout):
    q, k, v, head_attrs = qkv(layout, (4, 2))
    inputs = {"q": q, "k": k, "v": v, "mask": randn(RNG, (4, 8)), "past_key": randn(RNG, (2, 2, 2, 8)),
              "past_value": randn(RNG, (2, 2, 2, 8))}
    m = model("Attention", inputs, outputs=OUTPUTS, qk_matmul_output_mode=mode, softcap=3.0, **head_attrs)
    check(m, inputs)


def test_attention_only_qk_output_requested():
    q, k, v, _ = qkv("4d", (2, 2))
    inputs = {"q": q, "k": k, "v": v}
    check(model("Attention", inputs, outputs=["y", "", "", "qk"], qk_matmul_output_mode=3), inputs)


@pytest.mark.parametrize("layout", ["3d", "4d"])
@pytest.mark.parametrize("precision", [None, 1, 11])
def test_attention_float16_and_softmax_precision(layout, precision):
    q, k, v, head_attrs = qkv(layout, (4, 2), dtype="float16")
    q *= 4  # large scores: a half-precision softmax would lose its small terms
    inputs = {"q": q, "k": k, "v": v, "mask": make_mask("float_2d", "float16")}
    extra = {} if precision is None else {"softmax_precision": precision}
    m = model("Attention", inputs, outputs=["y", "", "", "qk"], is_causal=1, qk_matmul_output_mode=3, **head_attrs,
              **extra)
    check(m, inputs, **tol("float16"))


def test_attention_float64():
    q, k, v, _ = qkv("4d", (2, 1), dtype="float64")
    inputs = {"q": q, "k": k, "v": v}
    m = model("Attention", inputs, is_causal=1)
    # onnxruntime has no float64 Attention kernel
    check(m, inputs, oracle=reference_run, rtol=1e-10, atol=1e-12)


def test_attention_large_scores_are_stable():
    q, k, v, _ = qkv("4d", (2, 2))
    inputs = {"q": q * 300, "k": k * 300, "v": v}
    check(model("Attention", inputs), inputs, rtol=1e-4, atol=1e-4)


def test_attention_fully_masked_rows_are_zero():
    """A query row that may attend no key gives zeros (ONNX errata), also in the softmax output."""
    q, k, v, _ = qkv("4d", (2, 2), q_len=3, kv_len=3)
    mask = np.ones((3, 3), bool)
    mask[1] = False
    m = model("Attention", {"q": q, "k": k, "v": v, "mask": mask}, outputs=["y", "", "", "qk"], qk_matmul_output_mode=3)
    out = clawdbot.load(m).run({"q": q, "k": k, "v": v, "mask": mask})
    assert np.all(out["y"][:, :, 1] == 0) and np.all(out["qk"][:, :, 1] == 0)
    assert np.all(np.isfinite(out["y"]))
    ref = reference_run(m, {"q": q, "k": k, "v": v, "mask": mask})
    np.testing.assert_allclose(out["y"], ref[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("causal", [0, 1])
@pytest.mark.parametrize("with_mask", [False, True])
def test_attention_nonpad_kv_seqlen(causal, with_mask):
    """Opset 24: keys at or past nonpad_kv_seqlen[b] are masked; causal is aligned to the valid length."""
    q, k, v, _ = qkv("4d", (4, 2), q_len=2, kv_len=6)
    lens = np.array([6, 4], np.int64)
    inputs = {"q": q, "k": k, "v": v, "mask": make_mask("float_2d")[:2] if with_mask else None,
              "past_key": None, "past_value": None, "nonpad_kv_seqlen": lens}
    m = model("Attention", inputs, opset=24, is_causal=causal)
    check(m, inputs)


@pytest.mark.parametrize("window", [(2, -1), (1, 1), (-1, 0), (0, 2)])
@pytest.mark.parametrize("causal", [0, 1])
def test_attention_sliding_window_opset25(window, causal):
    left, right = window
    q, k, v, head_attrs = qkv("3d", (4, 2), q_len=4, kv_len=2)
    inputs = {"q": q, "k": k, "v": v, "mask": None, "past_key": randn(RNG, (2, 2, 4, 8)),
              "past_value": randn(RNG, (2, 2, 4, 8))}
    m = model("Attention", inputs, outputs=OUTPUTS[:3], opset=25, is_causal=causal, left_window_size=left,
              right_window_size=right, **head_attrs)
    check(m, inputs, oracle=reference_run, rtol=1e-5, atol=1e-6)


def test_attention_dynamic_batch_and_sequence():
    q, k, v, head_attrs = qkv("3d", (4, 2))
    m = model("Attention", {"q": q, "k": k, "v": v}, is_causal=1, **head_attrs)
    for vi, dims in zip(m.graph.input, (("b", "s"), ("b", "t"), ("b", "t"))):
        for d, name in zip(vi.type.tensor_type.shape.dim, dims):
            d.dim_param = name
    check(m, {"q": q, "k": k, "v": v})
    check(m, {"q": q[:1, :2], "k": k[:1, :3], "v": v[:1, :3]})


def test_attention_3d_without_heads_is_unsupported():
    q, k, v, _ = qkv("3d", (2, 2))
    with pytest.raises(UnsupportedOpsError, match="attention_node"):
        clawdbot.load(model("Attention", {"q": q, "k": k, "v": v}))


# -- RotaryEmbedding ---------------------------------------------------------------------------------------------
def rotary_inputs(layout: str, rotary_dim: int, positions: bool, dtype="float32", heads=3, size=8):
    batch, seq = 2, 5
    x = randn(RNG, (batch, heads, seq, size) if layout == "4d" else (batch, seq, heads * size), dtype)
    half = (rotary_dim or size) // 2
    table = (16,) if positions else (batch, seq)
    angles = RNG.uniform(0, 6.3, table + (half,))
    inputs = {"x": x, "cos": np.cos(angles).astype(dtype), "sin": np.sin(angles).astype(dtype)}
    if positions:
        inputs["position_ids"] = RNG.integers(0, 16, (batch, seq)).astype(np.int64)
    return inputs, ({"num_heads": heads} if layout == "3d" else {})


@pytest.mark.parametrize("layout", ["3d", "4d"])
@pytest.mark.parametrize("interleaved", [0, 1])
@pytest.mark.parametrize("rotary_dim", [0, 4])
@pytest.mark.parametrize("positions", [True, False])
def test_rotary_embedding(layout, interleaved, rotary_dim, positions):
    inputs, attrs = rotary_inputs(layout, rotary_dim, positions)
    if rotary_dim:
        attrs["rotary_embedding_dim"] = rotary_dim
    m = model("RotaryEmbedding", inputs, interleaved=interleaved, **attrs)
    check(m, inputs)


@pytest.mark.parametrize("layout", ["3d", "4d"])
def test_rotary_embedding_float16(layout):
    inputs, attrs = rotary_inputs(layout, 0, True, dtype="float16")
    check(model("RotaryEmbedding", inputs, interleaved=1, **attrs), inputs, **tol("float16"))


def test_rotary_embedding_3d_without_heads_is_unsupported():
    inputs, _ = rotary_inputs("3d", 0, True)
    with pytest.raises(UnsupportedOpsError, match="rotaryembedding_node"):
        clawdbot.load(model("RotaryEmbedding", inputs))
