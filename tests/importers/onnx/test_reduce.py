"""ONNX reductions, ArgMax/ArgMin, CumSum and TopK through clawdbot, compared with onnxruntime.

Reduce* are tried in their attribute-axes form (opset 11) and input-axes form (opset 18; ReduceSum from 13), with
default / explicit / negative / empty axes, keepdims and noop_with_empty_axes, and over empty tensors.
conftest.py sets CLAWDBOT_CHECK=1, so kernel output dtypes/shapes are checked against inference.
"""
from __future__ import annotations

from functools import partial

import numpy as np
import pytest
from claw_testing import assert_matches_ort, one_node_model

RNG = np.random.default_rng(2)
REDUCE_OPS = ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
              "ReduceSumSquare", "ReduceLogSum", "ReduceLogSumExp"]
model = partial(one_node_model, opset=18)
check = partial(assert_matches_ort, rtol=1e-5, atol=1e-5)


def data(shape, dtype="float32") -> np.ndarray:
    if np.dtype(dtype).kind in "iu":
        return RNG.integers(0 if np.dtype(dtype).kind == "u" else -5, 6, shape).astype(dtype)
    # Positive values keep ReduceLogSum finite; ReduceProd stays moderate.
    return np.asarray(RNG.uniform(0.2, 2.0, shape).astype(dtype))


def reduce_model(op, x, axes, opset, **attrs):
    """`axes` None: not given. Attribute before the opset that made it an input, constant input after."""
    since = 13 if op == "ReduceSum" else 18
    if opset < since:
        if axes is not None:
            attrs["axes"] = list(axes)
        return model(op, {"x": x}, opset=opset, **attrs)
    consts = {} if axes is None else {"axes": np.array(axes, np.int64)}
    return model(op, {"x": x}, opset=opset, consts=consts, **attrs)


@pytest.mark.parametrize("op", REDUCE_OPS)
@pytest.mark.parametrize("opset", [11, 18])
@pytest.mark.parametrize("axes", [None, (1,), (-1, 0), (0, 1, 2)])
@pytest.mark.parametrize("keepdims", [0, 1])
def test_reduce(op, opset, axes, keepdims):
    x = data((3, 4, 5))
    check(reduce_model(op, x, axes, opset, keepdims=keepdims), {"x": x})


@pytest.mark.parametrize("op", REDUCE_OPS)
@pytest.mark.parametrize("noop", [0, 1])
def test_reduce_empty_axes_input(op, noop):
    x = data((2, 3)) - 1.0  # negative entries: with noop, reduce_l1 still takes |x|
    m = model(op, {"x": x}, opset=18, consts={"axes": np.zeros((0,), np.int64)}, noop_with_empty_axes=noop)
    check(m, {"x": x})


def test_reduce_axes_as_runtime_input():
    x, axes = data((2, 3, 4)), np.array([0, 2], np.int64)
    for keepdims in (0, 1):
        check(model("ReduceMean", {"x": x, "axes": axes}, opset=18, keepdims=keepdims), {"x": x, "axes": axes})


@pytest.mark.parametrize("op", REDUCE_OPS)
@pytest.mark.parametrize("dtype", ["int32", "int64", "float16", "float64"])
def test_reduce_dtypes(op, dtype):
    x = data((4, 6), dtype)
    if op == "ReduceLogSum":
        x = np.abs(x) + np.ones((), dtype)  # the log of a negative sum has no integer value
    tol = {"rtol": 3e-3, "atol": 3e-3} if dtype == "float16" else {}
    check(reduce_model(op, x, (1,), 18), {"x": x}, **tol)


@pytest.mark.parametrize("op", ["ReduceMax", "ReduceMin"])
def test_reduce_max_min_int8_and_bool(op):
    x = data((3, 5), "int8")
    check(reduce_model(op, x, (0,), 18), {"x": x})
    b = RNG.random((3, 5)) < 0.4
    check(reduce_model(op, b, (1,), 20), {"x": b})


@pytest.mark.parametrize("op", ["ReduceSum", "ReduceProd", "ReduceMax", "ReduceMin", "ReduceL1", "ReduceL2",
                                "ReduceSumSquare", "ReduceLogSum", "ReduceLogSumExp"])
def test_reduce_over_empty_set(op):
    x = np.zeros((2, 0, 4), np.float32)
    check(reduce_model(op, x, (1,), 18), {"x": x})
    check(reduce_model(op, x, (2,), 18, keepdims=0), {"x": x})


def test_reduce_log_sum_exp_is_stable():
    x = np.array([[1000.0, 1000.0, -5.0], [-1000.0, -1001.0, -np.inf]], np.float32)
    check(reduce_model("ReduceLogSumExp", x, (1,), 18), {"x": x})


# -- ArgMax / ArgMin -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("keepdims", [0, 1])
@pytest.mark.parametrize("last", [0, 1])
def test_arg_reduce(op, axis, keepdims, last):
    x = RNG.integers(0, 3, (3, 4, 5)).astype(np.float32)  # many ties
    check(model(op, {"x": x}, opset=13, axis=axis, keepdims=keepdims, select_last_index=last), {"x": x})


@pytest.mark.parametrize("dtype", ["int32", "float64", "uint8", "float16"])
def test_arg_reduce_dtypes_and_old_opset(dtype):
    x = data((4, 7), dtype)
    check(model("ArgMax", {"x": x}, opset=11), {"x": x})
    check(model("ArgMin", {"x": x}, opset=12, axis=1, keepdims=0), {"x": x})


# -- CumSum ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("exclusive", [0, 1])
@pytest.mark.parametrize("reverse", [0, 1])
@pytest.mark.parametrize("axis_dtype", ["int32", "int64"])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_cumsum(exclusive, reverse, axis_dtype, axis):
    x = data((3, 4, 2))
    m = model("CumSum", {"x": x}, opset=14, consts={"axis": np.array(axis, axis_dtype)}, exclusive=exclusive,
              reverse=reverse)
    check(m, {"x": x})


@pytest.mark.parametrize("dtype", ["int32", "int64", "float64"])
def test_cumsum_dtypes_and_runtime_axis(dtype):
    x, axis = data((5, 3), dtype), np.array(1, np.int64)
    check(model("CumSum", {"x": x, "axis": axis}, opset=14, exclusive=1), {"x": x, "axis": axis})


# -- TopK ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("k", [1, 3, 5])
@pytest.mark.parametrize("largest", [0, 1])
@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_topk(k, largest, axis):
    x = RNG.integers(0, 4, (5, 6, 5)).astype(np.float32)  # ties: lower index first
    m = model("TopK", {"x": x}, n_out=2, opset=11, consts={"k": np.array([k], np.int64)}, axis=axis,
              largest=largest)
    check(m, {"x": x})


def test_topk_k_attribute_before_opset_10_and_dtypes():
    x = data((4, 9))
    check(model("TopK", {"x": x}, n_out=2, opset=9, k=4), {"x": x})
    for dtype in ("int64", "int32", "float64"):
        xi, k = data((3, 8), dtype), np.array([8], np.int64)
        check(model("TopK", {"x": xi, "k": k}, n_out=2, opset=11), {"x": xi, "k": k})
