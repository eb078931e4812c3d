"""ONNX activations through clawdbot, compared with onnxruntime on one-node models.

Pointwise activations over float dtypes and attribute values; PRelu's slope broadcasting; Softmax, LogSoftmax
and Hardmax in both their opset < 13 form (normalise the input coerced to 2-D at `axis`) and their opset >= 13
form (one axis). conftest.py sets CLAWDBOT_CHECK=1, so kernel output dtypes/shapes are checked too.
"""
from __future__ import annotations

from functools import partial

import numpy as np
import pytest
from claw_testing import assert_matches_ort, one_node_model, ort_run, rand

import clawdbot
from clawdbot.errors import UnsupportedOpsError

RNG = np.random.default_rng(1)
model = partial(one_node_model, opset=18)
check = partial(assert_matches_ort, rtol=1e-5, atol=1e-6)


def tol(dtype) -> dict:
    return {"rtol": 2e-3, "atol": 2e-3} if dtype == "float16" else {"rtol": 1e-5, "atol": 1e-6}


# op -> (opset, list of attribute sets to try)
POINTWISE = {
    "Relu": (14, [{}]),
    "LeakyRelu": (16, [{}, {"alpha": 0.3}]),
    "Sigmoid": (13, [{}]),
    "HardSigmoid": (6, [{}, {"alpha": 0.5, "beta": 0.1}]),
    "HardSwish": (14, [{}]),
    "Tanh": (13, [{}]),
    "Elu": (6, [{}, {"alpha": 0.4}]),
    "Selu": (6, [{}, {"alpha": 1.5, "gamma": 2.0}]),
    "Celu": (12, [{}, {"alpha": 2.5}]),
    "Gelu": (20, [{}, {"approximate": "tanh"}, {"approximate": "none"}]),
    "Softplus": (1, [{}]),
    "Softsign": (1, [{}]),
    "Mish": (18, [{}]),
    "Swish": (24, [{}, {"alpha": 0.6}]),
    "ThresholdedRelu": (10, [{}, {"alpha": 0.2}]),
    "Shrink": (9, [{}, {"lambd": 1.5, "bias": 0.7}]),
}


def check_pointwise(op, attrs, opset, x):
    m = model(op, {"x": x}, opset=max(opset, 7), **attrs)
    cast = None
    try:
        ort_run(m, {"x": x})
    except Exception as e:  # noqa: BLE001 - onnxruntime lacks some float64/float16 kernels or type constraints
        if "NOT_IMPLEMENTED" not in str(e) and "Type Error" not in str(e):
            raise
        cast = (x.dtype.name, "float32")  # ... so for those the oracle runs in float32.
    check(m, {"x": x}, cast_for_ort=cast, **tol(x.dtype.name))


@pytest.mark.parametrize("op", sorted(POINTWISE))
@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
def test_pointwise(op, dtype):
    opset, attr_sets = POINTWISE[op]
    x = rand(RNG, (3, 4, 5), dtype, -4, 4)
    x.flat[:3] = [0, 0.5, -0.5]  # the branch points of relu-likes and shrink
    for attrs in attr_sets:
        check_pointwise(op, attrs, opset, x)


@pytest.mark.parametrize("op", ["Sigmoid", "Softplus", "Mish", "Elu", "Selu", "Celu", "Swish", "Gelu"])
def test_pointwise_large_magnitudes(op):
    x = np.array([-100.0, -30.0, -9.0, 0.0, 9.0, 30.0, 100.0], np.float32)
    check(model(op, {"x": x}, opset=max(POINTWISE[op][0], 7)), {"x": x})


def test_pointwise_scalar_and_empty():
    for x in (np.array(-0.3, np.float32), np.zeros((2, 0), np.float32)):
        for op in ("Relu", "Sigmoid", "Softplus"):
            check(model(op, {"x": x}, opset=13), {"x": x})


@pytest.mark.parametrize("dtype", ["int32", "int8"])
def test_relu_integers(dtype):
    x = RNG.integers(-50, 50, (4, 6)).astype(dtype)
    check(model("Relu", {"x": x}, opset=14), {"x": x})


@pytest.mark.parametrize("slope_shape", [(1,), (5,), (4, 1), (3, 1, 1), (1, 4, 5), (3, 4, 5)])
@pytest.mark.parametrize("opset", [7, 9, 16])
def test_prelu_slope_broadcasting(slope_shape, opset):
    x = rand(RNG, (3, 4, 5), lo=-4, hi=4)
    slope = rand(RNG, slope_shape, lo=-1, hi=1)
    check(model("PRelu", {"x": x}, opset=opset, consts={"slope": slope}), {"x": x})


def test_prelu_runtime_slope_and_int():
    x, slope = rand(RNG, (2, 3, 4), lo=-4, hi=4), rand(RNG, (3, 1), lo=-1, hi=1)
    check(model("PRelu", {"x": x, "slope": slope}, opset=16), {"x": x, "slope": slope})
    xi, si = RNG.integers(-9, 9, (2, 5)).astype(np.int32), RNG.integers(-3, 3, (5,)).astype(np.int32)
    check(model("PRelu", {"x": xi, "slope": si}, opset=16), {"x": xi, "slope": si})


# -- softmax family ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax", "Hardmax"])
@pytest.mark.parametrize("axis", [None, 0, 1, 2, -1, -2])
@pytest.mark.parametrize("opset", [11, 13])
def test_softmax_family(op, axis, opset):
    x = rand(RNG, (2, 3, 5), lo=-4, hi=4)
    x[0, 1, :2] = x[0, 1, 3]  # ties for hardmax
    attrs = {} if axis is None else {"axis": axis}
    check(model(op, {"x": x}, opset=opset, **attrs), {"x": x})


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("dtype", ["float64", "float16"])
def test_softmax_dtypes_and_large_values(op, dtype):
    x = (rand(RNG, (4, 7), lo=-4, hi=4) * 30).astype(dtype)
    check(model(op, {"x": x}, opset=13), {"x": x}, **tol(dtype))
    check(model(op, {"x": x}, opset=11, axis=0), {"x": x}, **tol(dtype))


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax", "Hardmax"])
def test_softmax_family_coerced_2d_with_dynamic_batch(op):
    """Opset < 13 flattens at `axis` and reshapes back to the run-time shape: a symbolic batch dim works."""
    x = rand(RNG, (3, 2, 4, 2), lo=-4, hi=4)
    m = model(op, {"x": x}, opset=11, axis=1)
    m.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    check(m, {"x": x})
    check(m, {"x": x[:1]})


def test_hardmax_rank4_and_all_equal():
    x = rand(RNG, (2, 3, 4, 5), lo=-4, hi=4)
    check(model("Hardmax", {"x": x}, opset=13, axis=2), {"x": x})
    same = np.ones((3, 4), np.float32)
    check(model("Hardmax", {"x": same}, opset=13), {"x": same})


def test_gelu_rejects_unknown_approximation():
    m = model("Gelu", {"x": rand(RNG, (2,), lo=-4, hi=4)}, opset=20, approximate="cubic")
    with pytest.raises(UnsupportedOpsError, match="gelu_node"):
        clawdbot.load(m)
