"""ONNX QuantizeLinear / DequantizeLinear / DynamicQuantizeLinear through clawdbot, compared with onnxruntime:
per-tensor, per-axis and blocked scales, every supported integer type, omitted zero points, output_dtype, and
the configurations clawdbot refuses (float8 and 4-bit types).

conftest.py sets CLAWDBOT_CHECK=1 (each kernel's output is checked against inference); the helper asserts that
it is on.
"""
from __future__ import annotations

from functools import partial

import numpy as np
import onnx
import pytest
from claw_testing import assert_matches_ort, graph_model, one_node_model
from onnx import TensorProto, helper, numpy_helper

from clawdbot.errors import UnsupportedOpsError
from clawdbot.importers.onnx import import_onnx

RNG = np.random.default_rng(0)
X = RNG.uniform(-6, 6, (2, 3, 4, 4)).astype(np.float32)
# Exact ties (k + 0.5 quanta) exercise round-half-to-even.
X[0, 0, 0, :] = np.array([0.5, 1.5, -2.5, 3.5], np.float32) * 0.25
model = partial(one_node_model, opset=21, ir_version=10)
check = partial(assert_matches_ort, rtol=1e-6)


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
def test_quantize_per_tensor(dtype, with_zp):
    scale, zp = params(dtype)
    attrs = {} if with_zp else {"output_dtype": helper.np_dtype_to_tensor_dtype(np.dtype(dtype))}
    m = model("QuantizeLinear", {"x": X}, {"scale": scale, "zp": zp if with_zp else None}, **attrs)
    check(m, {"x": X})


def test_quantize_defaults_to_uint8():
    m = model("QuantizeLinear", {"x": X}, {"scale": np.array(0.05, np.float32)}, opset=13)
    check(m, {"x": X})


@pytest.mark.parametrize("axis", [1, -3, 2, 3])
@pytest.mark.parametrize("dtype", ["uint8", "int8"])
def test_quantize_per_axis(axis, dtype):
    scale, zp = params(dtype, (X.shape[axis],))
    check(model("QuantizeLinear", {"x": X}, {"scale": scale, "zp": zp}, opset=13, axis=axis), {"x": X})


@pytest.mark.parametrize("axis, block", [(3, 2), (1, 2), (2, 3)])
def test_quantize_blocked(axis, block):
    shape = list(X.shape)
    shape[axis] = -(-shape[axis] // block)
    scale, zp = params("int8", tuple(shape))
    m = model("QuantizeLinear", {"x": X}, {"scale": scale, "zp": zp}, axis=axis, block_size=block)
    check(m, {"x": X})


def test_quantize_runtime_scale():
    scale, zp = params("uint8")
    feeds = {"x": X, "scale": scale, "zp": zp}
    check(model("QuantizeLinear", feeds), feeds)


# -- dequantize -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["uint8", "int8", "uint16", "int16", "int32"])
@pytest.mark.parametrize("with_zp", [True, False])
def test_dequantize_per_tensor(dtype, with_zp):
    info = np.iinfo(dtype)
    q = RNG.integers(max(info.min, -2**20), min(info.max, 2**20), (3, 5)).astype(dtype)
    scale, zp = params(dtype) if dtype != "int32" else (np.array(0.003, np.float32), np.array(-7, np.int32))
    check(model("DequantizeLinear", {"q": q}, {"scale": scale, "zp": zp if with_zp else None}), {"q": q})


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_dequantize_per_axis(axis):
    q = RNG.integers(-128, 128, (3, 4, 5)).astype(np.int8)
    scale, zp = params("int8", (q.shape[axis],))
    check(model("DequantizeLinear", {"q": q}, {"scale": scale, "zp": zp}, opset=13, axis=axis), {"q": q})


def test_dequantize_blocked():
    q = RNG.integers(0, 256, (4, 6)).astype(np.uint8)
    scale, zp = params("uint8", (4, 2))
    m = model("DequantizeLinear", {"q": q}, {"scale": scale, "zp": zp}, axis=1, block_size=3)
    check(m, {"q": q})


def test_dequantize_float16_scale():
    q = RNG.integers(-128, 128, (6,)).astype(np.int8)
    m = model("DequantizeLinear", {"q": q}, {"scale": np.array(0.125, np.float16), "zp": np.array(3, np.int8)},
              opset=19)
    check(m, {"q": q}, rtol=1e-3)


def test_quantize_dequantize_round_trip():
    scale, zp = params("int8", (3,))
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], axis=1),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], axis=1)]
    check(graph_model(nodes, {"x": X}, {"s": scale, "z": zp}, opset=13, ir_version=9), {"x": X})


# -- dynamic quantization ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("lo, hi", [(-6, 6), (0.5, 3), (-4, -1), (0, 0)])
def test_dynamic_quantize_linear(lo, hi):
    x = RNG.uniform(lo, hi, (3, 7)).astype(np.float32)
    check(model("DynamicQuantizeLinear", {"x": x}, n_out=3, opset=11), {"x": x})


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
