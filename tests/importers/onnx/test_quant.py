"""ONNX QuantizeLinear / DequantizeLinear / DynamicQuantizeLinear through clawdbot, compared with onnxruntime:
per-tensor, per-axis and blocked scales, every supported integer type, omitted zero points, output_dtype, and
the configurations clawdbot refuses (float8 and 4-bit types).

conftest.py sets CLAWDBOT_CHECK=1 (each kernel's output is checked against inference); the helper sets it too.
"""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from claw_testing import ort_run
from onnx import TensorProto, helper, numpy_helper

import clawdbot
from clawdbot.errors import UnsupportedOpsError
from clawdbot.importers.onnx import import_onnx

RNG = np.random.default_rng(0)
X = RNG.uniform(-6, 6, (2, 3, 4, 4)).astype(np.float32)
# Exact ties (k + 0.5 quanta) exercise round-half-to-even.
X[0, 0, 0, :] = np.array([0.5, 1.5, -2.5, 3.5], np.float32) * 0.25


def model(op: str, inputs: dict, consts: dict | None = None, n_out: int = 1, opset: int = 21,
          **attrs) -> onnx.ModelProto:
    """One node whose inputs are `inputs` (graph inputs) then `consts` (initializers; None: omitted)."""
    consts = consts or {}
    names = [*inputs, *(n if v is not None else "" for n, v in consts.items())]
    node = helper.make_node(op, names, [f"y{i}" for i in range(n_out)], **attrs)
    graph = helper.make_graph(
        [node], op,
        [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
         for n, v in inputs.items()],
        [helper.make_value_info(f"y{i}", onnx.TypeProto()) for i in range(n_out)],
        [numpy_helper.from_array(v, n) for n, v in consts.items() if v is not None])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=10)


def check(m: onnx.ModelProto, feeds: dict, monkeypatch, rtol=1e-6) -> None:
    monkeypatch.setenv("CLAWDBOT_CHECK", "1")
    ref = ort_run(m, feeds)
    ours = clawdbot.load(m).run(feeds)
    for r, (name, o) in zip(ref, ours.items()):
        assert o.dtype == r.dtype and o.shape == r.shape, f"{name}: {o.dtype}{o.shape} vs ORT {r.dtype}{r.shape}"
        np.testing.assert_allclose(o, r, rtol=rtol, err_msg=name)


def params(dtype: str, shape=(), lo: float = 0.01, hi: float = 0.1):
    """A positive scale and a zero point of `dtype` (mid-range, so that both sides saturate sometimes)."""
    info = np.iinfo(dtype)
    scale = RNG.uniform(lo, hi, shape).astype(np.float32)
    mid = (int(info.min) + int(info.max)) // 2
    zp = RNG.integers(mid - 20, mid + 20, shape).astype(dtype)
    return scale, zp


# -- quantize ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["uint8", "int8", "uint16", "int16"])
@pytest.mark.parametrize("with_zp", [True, False])
def test_quantize_per_tensor(dtype, with_zp, monkeypatch):
    scale, zp = params(dtype)
    attrs = {} if with_zp else {"output_dtype": helper.np_dtype_to_tensor_dtype(np.dtype(dtype))}
    m = model("QuantizeLinear", {"x": X}, {"scale": scale, "zp": zp if with_zp else None}, **attrs)
    check(m, {"x": X}, monkeypatch)


def test_quantize_defaults_to_uint8(monkeypatch):
    m = model("QuantizeLinear", {"x": X}, {"scale": np.array(0.05, np.float32)}, opset=13)
    check(m, {"x": X}, monkeypatch)


@pytest.mark.parametrize("axis", [1, -3, 2, 3])
@pytest.mark.parametrize("dtype", ["uint8", "int8"])
def test_quantize_per_axis(axis, dtype, monkeypatch):
    scale, zp = params(dtype, (X.shape[axis],))
    check(model("QuantizeLinear", {"x": X}, {"scale": scale, "zp": zp}, opset=13, axis=axis), {"x": X},
          monkeypatch)


@pytest.mark.parametrize("axis, block", [(3, 2), (1, 2), (2, 3)])
def test_quantize_blocked(axis, block, monkeypatch):
    shape = list(X.shape)
    shape[axis] = -(-shape[axis] // block)
    scale, zp = params("int8", tuple(shape))
    m = model("QuantizeLinear", {"x": X}, {"scale": scale, "zp": zp}, axis=axis, block_size=block)
    check(m, {"x": X}, monkeypatch)


def test_quantize_runtime_scale(monkeypatch):
    scale, zp = params("uint8")
    feeds = {"x": X, "scale": scale, "zp": zp}
    check(model("QuantizeLinear", feeds), feeds, monkeypatch)


# -- dequantize -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["uint8", "int8", "uint16", "int16", "int32"])
@pytest.mark.parametrize("with_zp", [True, False])
def test_dequantize_per_tensor(dtype, with_zp, monkeypatch):
    info = np.iinfo(dtype)
    q = RNG.integers(max(info.min, -2**20), min(info.max, 2**20), (3, 5)).astype(dtype)
    scale, zp = params(dtype) if dtype != "int32" else (np.array(0.003, np.float32), np.array(-7, np.int32))
    check(model("DequantizeLinear", {"q": q}, {"scale": scale, "zp": zp if with_zp else None}), {"q": q},
          monkeypatch)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_dequantize_per_axis(axis, monkeypatch):
    q = RNG.integers(-128, 128, (3, 4, 5)).astype(np.int8)
    scale, zp = params("int8", (q.shape[axis],))
    check(model("DequantizeLinear", {"q": q}, {"scale": scale, "zp": zp}, opset=13, axis=axis), {"q": q},
          monkeypatch)


def test_dequantize_blocked(monkeypatch):
    q = RNG.integers(0, 256, (4, 6)).astype(np.uint8)
    scale, zp = params("uint8", (4, 2))
    m = model("DequantizeLinear", {"q": q}, {"scale": scale, "zp": zp}, axis=1, block_size=3)
    check(m, {"q": q}, monkeypatch)


def test_dequantize_float16_scale(monkeypatch):
    q = RNG.integers(-128, 128, (6,)).astype(np.int8)
    m = model("DequantizeLinear", {"q": q}, {"scale": np.array(0.125, np.float16), "zp": np.array(3, np.int8)},
              opset=19)
    check(m, {"q": q}, monkeypatch, rtol=1e-3)


def test_quantize_dequantize_round_trip(monkeypatch):
    scale, zp = params("int8", (3,))
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], axis=1),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], axis=1)]
    graph = helper.make_graph(nodes, "qdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, X.shape)],
                              [helper.make_value_info("y", onnx.TypeProto())],
                              [numpy_helper.from_array(scale, "s"), numpy_helper.from_array(zp, "z")])
    check(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=9), {"x": X},
          monkeypatch)


# -- dynamic quantization ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("lo, hi", [(-6, 6), (0.5, 3), (-4, -1), (0, 0)])
def test_dynamic_quantize_linear(lo, hi, monkeypatch):
    x = RNG.uniform(lo, hi, (3, 7)).astype(np.float32)
    check(model("DynamicQuantizeLinear", {"x": x}, n_out=3, opset=11), {"x": x}, monkeypatch)


# -- refused configurations -------------------------------------------------------------------------------------
@pytest.mark.parametrize("elem", [TensorProto.FLOAT8E4M3FN, TensorProto.INT4, TensorProto.UINT4])
def test_low_bit_types_are_unsupported(elem):
    zp = helper.make_tensor("zp", elem, [], [0])
    node = helper.make_node("QuantizeLinear", ["x", "scale", "zp"], ["y"])
    graph = helper.make_graph([node], "q", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                              [helper.make_value_info("y", onnx.TypeProto())],
                              [numpy_helper.from_array(np.array(0.1, np.float32), "scale"), zp])
    with pytest.raises(UnsupportedOpsError):
        import_onnx(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)]))


def test_output_dtype_int4_is_unsupported():
    node = helper.make_node("QuantizeLinear", ["x", "scale"], ["y"], output_dtype=TensorProto.INT4)
    graph = helper.make_graph([node], "q", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                              [helper.make_value_info("y", onnx.TypeProto())],
                              [numpy_helper.from_array(np.array(0.1, np.float32), "scale")])
    with pytest.raises(UnsupportedOpsError, match="QuantizeLinear"):
        import_onnx(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)]))
