"""ONNX MaxPool / AveragePool / LpPool and the Global pools through clawdbot, compared with onnxruntime on
one-node models: 1-D/2-D/3-D windows, strides, dilations, asymmetric pads, ceil_mode, count_include_pad,
auto_pad (also with symbolic sizes), MaxPool's indices output in both storage orders, integer and float16
inputs."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from claw_testing import ort_run
from onnx import helper

from clawdbot.importers.onnx import import_onnx
from clawdbot.session import Session

RNG = np.random.default_rng(0)


def model(op: str, x: np.ndarray, *, n_out: int = 1, x_dims=None, opset: int = 19, **attrs) -> onnx.ModelProto:
    node = helper.make_node(op, ["x"], [f"y{i}" for i in range(n_out)], **attrs)
    graph = helper.make_graph(
        [node], op, [helper.make_tensor_value_info("x", helper.np_dtype_to_tensor_dtype(x.dtype),
                                                   list(x_dims or x.shape))],
        [helper.make_value_info(f"y{i}", onnx.TypeProto()) for i in range(n_out)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def check(m: onnx.ModelProto, x: np.ndarray, monkeypatch, rtol: float = 1e-5, atol: float = 1e-5) -> None:
    monkeypatch.setenv("CLAWDBOT_CHECK", "1")
    ref = ort_run(m, {"x": x})
    ours = Session(import_onnx(m)).run({"x": x})
    for r, (name, o) in zip(ref, ours.items()):
        assert o.dtype == r.dtype and o.shape == r.shape, f"{name}: {o.dtype}{o.shape} vs ORT {r.dtype}{r.shape}"
        np.testing.assert_allclose(o, r, rtol=rtol, atol=atol, err_msg=name)


def rand(*shape, dtype="float32"):
    return RNG.standard_normal(shape).astype(dtype)


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
def test_max_pool(x_shape, attrs, monkeypatch):
    check(model("MaxPool", rand(*x_shape), **attrs), rand(*x_shape), monkeypatch)


@pytest.mark.parametrize("storage_order", [0, 1])
@pytest.mark.parametrize("x_shape,attrs", [w for w in WINDOWS + DILATED if "auto_pad" not in w[1]])
def test_max_pool_indices(x_shape, attrs, storage_order, monkeypatch):
    x = rand(*x_shape)
    check(model("MaxPool", x, n_out=2, storage_order=storage_order, **attrs), x, monkeypatch)


@pytest.mark.parametrize("dtype", ["uint8", "int8", "float16", "float64"])
def test_max_pool_dtypes(dtype, monkeypatch):
    x = (RNG.uniform(0, 100, (2, 3, 13, 7))).astype(dtype)
    check(model("MaxPool", x, kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]), x, monkeypatch)


@pytest.mark.parametrize("include_pad", [0, 1])
@pytest.mark.parametrize("x_shape,attrs", WINDOWS + DILATED)
def test_avg_pool(x_shape, attrs, include_pad, monkeypatch):
    x = rand(*x_shape)
    check(model("AveragePool", x, count_include_pad=include_pad, **attrs), x, monkeypatch)


@pytest.mark.parametrize("opset", [7, 10, 11])
def test_avg_pool_older_opsets(opset, monkeypatch):
    x = rand(1, 3, 13, 7)
    attrs = {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 0, 1], "count_include_pad": 1}
    if opset >= 10:
        attrs["ceil_mode"] = 1
    check(model("AveragePool", x, opset=opset, **attrs), x, monkeypatch)


def test_avg_pool_float16(monkeypatch):
    x = rand(1, 3, 13, 7, dtype="float16")
    check(model("AveragePool", x, kernel_shape=[3, 3], pads=[1, 1, 1, 1]), x, monkeypatch, rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize("p", [1, 2, 3])
@pytest.mark.parametrize("x_shape,attrs", [WINDOWS[1], WINDOWS[4], WINDOWS[8], WINDOWS[9], DILATED[0]])
def test_lp_pool(x_shape, attrs, p, monkeypatch):
    x = rand(*x_shape)
    check(model("LpPool", x, p=p, opset=18, **attrs), x, monkeypatch, rtol=1e-4)


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
def test_pool_auto_pad_with_symbolic_sizes(op, monkeypatch):
    m = model(op, rand(1, 2, 13, 7), x_dims=["N", 2, "H", "W"], kernel_shape=[3, 2], auto_pad="SAME_UPPER",
              strides=[2, 3])
    for shape in [(1, 2, 13, 7), (2, 2, 6, 8)]:
        check(m, rand(*shape), monkeypatch)


@pytest.mark.parametrize("x_shape", [(2, 3, 13), (2, 3, 13, 7), (1, 2, 5, 4, 3)])
@pytest.mark.parametrize("op,attrs", [("GlobalAveragePool", {}), ("GlobalMaxPool", {}), ("GlobalLpPool", {}),
                                      ("GlobalLpPool", {"p": 1}), ("GlobalLpPool", {"p": 3})])
def test_global_pools(op, attrs, x_shape, monkeypatch):
    x = rand(*x_shape)
    check(model(op, x, **attrs), x, monkeypatch, rtol=1e-4)
