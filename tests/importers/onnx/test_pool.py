"""ONNX MaxPool / AveragePool / LpPool and the Global pools through clawdbot, compared with onnxruntime on
one-node models: 1-D/2-D/3-D windows, strides, dilations, asymmetric pads, ceil_mode, count_include_pad,
auto_pad (also with symbolic sizes), MaxPool's indices output in both storage orders, integer and float16
inputs."""
from __future__ import annotations

from functools import partial

import numpy as np
import onnx
import pytest
from claw_testing import assert_matches_ort, one_node_model, randn

RNG = np.random.default_rng(0)
check = partial(assert_matches_ort, rtol=1e-5, atol=1e-5)


def model(op: str, x: np.ndarray, *, x_dims=None, opset: int = 19, **attrs) -> onnx.ModelProto:
    """One pool node on graph input x (declared with `x_dims`, default its shape)."""
    return one_node_model(op, {"x": x}, opset=opset, input_shapes={"x": x_dims} if x_dims else None, **attrs)


# (x shape, attributes)
WINDOWS = [
    ((1, 2, 13, 7), {"kernel_shape": [3, 3]}),
    ((2, 3, 13, 7), {"kernel_shape": [3, 2], "strides": [2, 2], "pads": [1, 0, 1, 1]}),
    ((1, 2, 13, 7), {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1}),
    ((1, 2, 13, 7), {"kernel_shape": [2, 3], "strides": [3, 2], "pads": [1, 1, 0, 1], "ceil_mode": 1}),
    ((1, 2, 13, 7), {"kernel_shape": [3, 3], "auto_pad": "SAME_UPPER", "strides": [2, 2]}),
    ((1, 2, 13, 7), {"kernel_shape": [4, 2], "auto_pad": "SAME_LOWER", "strides": [2, 3]}),
    ((1, 2, 13, 7), {"kernel_shape": [3, 3], "auto_pad": "VALID", "strides": [2, 1]}),
    ((1, 1, 1, 1), {"kernel_shape": [1, 1]}),
    ((2, 3, 13), {"kernel_shape": [3], "strides": [2], "pads": [1, 2]}),                       # 1-D
    ((1, 2, 7, 6, 5), {"kernel_shape": [3, 2, 2], "strides": [2, 1, 2], "pads": [1, 0, 0, 0, 1, 1]}),
]
DILATED = [
    ((1, 2, 13, 7), {"kernel_shape": [3, 2], "dilations": [2, 3], "pads": [1, 1, 2, 0]}),
    ((1, 2, 13, 7), {"kernel_shape": [2, 2], "dilations": [2, 2], "strides": [2, 1], "ceil_mode": 1}),
    ((1, 1, 7, 6, 5), {"kernel_shape": [2, 2, 2], "dilations": [2, 1, 2], "strides": [2, 2, 1]}),
]


@pytest.mark.parametrize("x_shape,attrs", WINDOWS + DILATED)
def test_max_pool(x_shape, attrs):
    check(model("MaxPool", randn(RNG, x_shape), **attrs), {"x": randn(RNG, x_shape)})


@pytest.mark.parametrize("storage_order", [0, 1])
@pytest.mark.parametrize("x_shape,attrs", [w for w in WINDOWS + DILATED if "auto_pad" not in w[1]])
def test_max_pool_indices(x_shape, attrs, storage_order):
    x = randn(RNG, x_shape)
    check(model("MaxPool", x, n_out=2, storage_order=storage_order, **attrs), {"x": x})


@pytest.mark.parametrize("dtype", ["uint8", "int8", "float16", "float64"])
def test_max_pool_dtypes(dtype):
    x = (RNG.uniform(0, 100, (2, 3, 13, 7))).astype(dtype)
    check(model("MaxPool", x, kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]), {"x": x})


@pytest.mark.parametrize("include_pad", [0, 1])
@pytest.mark.parametrize("x_shape,attrs", WINDOWS + DILATED)
def test_avg_pool(x_shape, attrs, include_pad):
    x = randn(RNG, x_shape)
    check(model("AveragePool", x, count_include_pad=include_pad, **attrs), {"x": x})


@pytest.mark.parametrize("opset", [7, 10, 11])
def test_avg_pool_older_opsets(opset):
    x = randn(RNG, (1, 3, 13, 7))
    attrs = {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 0, 1], "count_include_pad": 1}
    if opset >= 10:
        attrs["ceil_mode"] = 1
    check(model("AveragePool", x, opset=opset, **attrs), {"x": x})


def test_avg_pool_float16():
    x = randn(RNG, (1, 3, 13, 7), "float16")
    check(model("AveragePool", x, kernel_shape=[3, 3], pads=[1, 1, 1, 1]), {"x": x}, rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize("p", [1, 2, 3])
@pytest.mark.parametrize("x_shape,attrs", [WINDOWS[1], WINDOWS[4], WINDOWS[8], WINDOWS[9], DILATED[0]])
def test_lp_pool(x_shape, attrs, p):
    x = randn(RNG, x_shape)
    check(model("LpPool", x, p=p, opset=18, **attrs), {"x": x}, rtol=1e-4)


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
def test_pool_auto_pad_with_symbolic_sizes(op):
    m = model(op, randn(RNG, (1, 2, 13, 7)), x_dims=["N", 2, "H", "W"], kernel_shape=[3, 2], auto_pad="SAME_UPPER",
              strides=[2, 3])
    for shape in [(1, 2, 13, 7), (2, 2, 6, 8)]:
        check(m, {"x": randn(RNG, shape)})


@pytest.mark.parametrize("x_shape", [(2, 3, 13), (2, 3, 13, 7), (1, 2, 5, 4, 3)])
@pytest.mark.parametrize("op,attrs", [("GlobalAveragePool", {}), ("GlobalMaxPool", {}), ("GlobalLpPool", {}),
                                      ("GlobalLpPool", {"p": 1}), ("GlobalLpPool", {"p": 3})])
def test_global_pools(op, attrs, x_shape):
    x = randn(RNG, x_shape)
    check(model(op, x, **attrs), {"x": x}, rtol=1e-4)
