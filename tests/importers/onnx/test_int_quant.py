"""ONNX integer ops through clawdbot, compared with onnxruntime on one-node models: MatMulInteger and
QLinearMatMul (int8/uint8 mixes, omitted, scalar and per-column zero points, batched operands, a reduction
long enough to need float64 accumulation, float16 scales), ConvInteger and QLinearConv (padding, strides,
dilation, auto_pad, groups, 1-D and 3-D, per-channel weight parameters, int32 bias). Results must match
exactly: the integer ops are exact and the requantization rounds half to even in float32 like onnxruntime.

The data are 7-bit unless a test says otherwise: onnxruntime's x86 u8s8 kernels add products pairwise in
saturating int16 (without VNNI), so full-range operands can make its results inexact. The full-range tests and
the per-channel ConvInteger zero point onnxruntime refuses use the onnx ReferenceEvaluator, which is exact."""
from __future__ import annotations

from functools import partial

import numpy as np
import pytest
from claw_testing import assert_matches_ort, one_node_model, rand, reference_run

RNG = np.random.default_rng(0)
model = partial(one_node_model, opset=10)
check = assert_matches_ort        # exact: the default tolerances are 0


def q(dtype: str, *shape, full: bool = False):
    """Random quantized values: 7-bit ones unless `full`. onnxruntime's x86 u8s8 kernels (without VNNI) add
    products pairwise in saturating int16, so full-range operands make *its* results inexact."""
    if full:
        info = np.iinfo(dtype)
        return RNG.integers(info.min, int(info.max) + 1, shape).astype(dtype)
    return RNG.integers(0, 128, shape).astype(dtype) if dtype == "uint8" else \
        RNG.integers(-64, 64, shape).astype(dtype)


def zp(dtype: str, *shape):
    """A zero point away from the extremes (as calibrated models have)."""
    return RNG.integers(-20, 20, shape).astype(dtype) if dtype == "int8" else \
        RNG.integers(100, 150, shape).astype(dtype)


def scale(*shape, dtype="float32"):
    return rand(RNG, shape, dtype, 0.002, 0.02)


# -- MatMulInteger -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("a_dt,b_dt", [("uint8", "uint8"), ("int8", "int8"), ("uint8", "int8"), ("int8", "uint8")])
@pytest.mark.parametrize("zps", ["none", "scalar", "per_column"])
def test_matmul_integer(a_dt, b_dt, zps):
    feeds = {"a": q(a_dt, 2, 5, 7), "b": q(b_dt, 7, 6)}
    consts = {} if zps == "none" else {"a_zp": zp(a_dt), "b_zp": zp(b_dt, *(() if zps == "scalar" else (6,)))}
    check(model("MatMulInteger", feeds, consts), feeds)


def test_matmul_integer_long_reduction_and_only_b_zero_point():
    feeds = {"a": q("uint8", 4, 700), "b": q("uint8", 700, 3)}   # K > 256: accumulates in float64
    check(model("MatMulInteger", feeds, {"a_zp": None, "b_zp": zp("uint8")}), feeds)


@pytest.mark.parametrize("op", ["MatMulInteger", "ConvInteger"])
def test_full_range_is_exact(op):
    # Full-range u8 x s8 operands, where onnxruntime's saturating kernels may differ: the reference evaluator
    # computes the exact int32 result.
    shapes = {"MatMulInteger": ((3, 64), (64, 5)), "ConvInteger": ((1, 8, 6, 6), (4, 8, 3, 3))}[op]
    x = q("uint8", *shapes[0], full=True)
    consts = {"w": q("int8", *shapes[1], full=True), "x_zp": np.uint8(3), "w_zp": np.int8(-2)}
    check(model(op, {"x": x}, consts), {"x": x}, oracle=reference_run)


# -- QLinearMatMul -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dt", ["uint8", "int8"])
@pytest.mark.parametrize("a_shape,b_shape", [((4, 9), (9, 5)), ((2, 3, 9), (9, 5)), ((2, 3, 300), (2, 300, 4))])
def test_qlinear_matmul(dt, a_shape, b_shape):
    feeds = {"a": q(dt, *a_shape), "b": q(dt, *b_shape)}
    k = a_shape[-1]
    params = {"a_s": scale(), "a_zp": zp(dt), "b_s": scale(), "b_zp": zp(dt), "y_s": np.float32(0.05 * k ** 0.5),
              "y_zp": zp(dt)}
    m = model("QLinearMatMul", {"a": feeds["a"]}, {k: params[k] for k in ("a_s", "a_zp")} | {"b": feeds["b"]} |
              {k: params[k] for k in ("b_s", "b_zp", "y_s", "y_zp")})
    check(m, {"a": feeds["a"]})


@pytest.mark.parametrize("opset,scale_dtype", [(10, "float32"), (21, "float16")])
def test_qlinear_matmul_per_column_b(opset, scale_dtype):
    a = q("uint8", 6, 16)
    consts = {"a_s": scale(dtype=scale_dtype), "a_zp": zp("uint8"), "b": q("int8", 16, 5),
              "b_s": scale(5, dtype=scale_dtype), "b_zp": np.zeros(5, np.int8),
              "y_s": np.array(0.2, scale_dtype), "y_zp": zp("uint8")}
    check(model("QLinearMatMul", {"a": a}, consts, opset=opset), {"a": a})


# -- ConvInteger -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("x_dt,w_dt", [("uint8", "uint8"), ("int8", "int8"), ("uint8", "int8")])
@pytest.mark.parametrize("attrs", [{}, {"pads": [1, 2, 1, 0], "strides": [2, 1]}, {"dilations": [2, 2], "group": 2},
                                   {"auto_pad": "SAME_UPPER", "strides": [2, 2]}])
def test_conv_integer(x_dt, w_dt, attrs):
    g = attrs.get("group", 1)
    x = q(x_dt, 2, 4, 9, 8)
    consts = {"w": q(w_dt, 6, 4 // g, 3, 3), "x_zp": zp(x_dt), "w_zp": zp(w_dt)}
    check(model("ConvInteger", {"x": x}, consts, **attrs), {"x": x})


@pytest.mark.parametrize("x_shape,w_shape", [((1, 3, 20), (4, 3, 5)), ((1, 2, 5, 6, 4), (3, 2, 2, 3, 2))])
def test_conv_integer_1d_3d(x_shape, w_shape):
    x = q("uint8", *x_shape)
    check(model("ConvInteger", {"x": x}, {"w": q("uint8", *w_shape), "x_zp": zp("uint8")}), {"x": x})


def test_conv_integer_per_channel_weight_zero_point():
    x = q("uint8", 1, 3, 7, 7)
    consts = {"w": q("uint8", 4, 3, 3, 3), "x_zp": zp("uint8"), "w_zp": zp("uint8", 4)}
    check(model("ConvInteger", {"x": x}, consts, pads=[1, 1, 1, 1]), {"x": x}, oracle=reference_run)


# -- QLinearConv -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dt", ["uint8", "int8"])
@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("attrs", [{}, {"pads": [1, 1, 1, 1], "strides": [2, 2]}, {"group": 4, "dilations": [1, 2]}])
@pytest.mark.parametrize("with_bias", [False, True])
def test_qlinear_conv(dt, per_channel, attrs, with_bias):
    g = attrs.get("group", 1)
    x = q(dt, 2, 4, 9, 10)
    m_out = 8
    w_dt = "int8" if per_channel else dt   # onnxruntime takes per-channel weights as int8 (zero point 0)
    consts = {"x_s": scale(), "x_zp": zp(dt), "w": q(w_dt, m_out, 4 // g, 3, 3),
              "w_s": scale(m_out) if per_channel else scale(),
              "w_zp": np.zeros(m_out, np.int8) if per_channel else zp(dt),
              "y_s": np.float32(0.1), "y_zp": zp(dt),
              "b": RNG.integers(-2000, 2000, m_out).astype(np.int32) if with_bias else None}
    check(model("QLinearConv", {"x": x}, consts, **attrs), {"x": x})
