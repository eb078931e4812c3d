"""ONNX Conv / ConvTranspose through clawdbot, compared with onnxruntime on one-node models: 1-D/2-D/3-D,
strides, dilations, asymmetric pads, groups (incl. depthwise and channel multipliers), auto_pad (resolved at
import, and at run time when the spatial sizes are symbolic), constant and run-time weights, batches, and
ConvTranspose's output_padding / output_shape."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from claw_testing import ort_run
from onnx import helper, numpy_helper

from clawdbot.importers.onnx import import_onnx
from clawdbot.session import Session

RNG = np.random.default_rng(0)


def model(op: str, x_shape, w: np.ndarray, bias: np.ndarray | None = None, *, const_weights: bool = True,
          x_dims=None, opset: int = 17, **attrs) -> onnx.ModelProto:
    """One conv node on graph input x (declared with `x_dims`, default its shape; the weight's dtype); the
    weight and bias are initializers or, with const_weights=False, graph inputs."""
    params = {"w": w} | ({} if bias is None else {"b": bias})
    dtype = helper.np_dtype_to_tensor_dtype(w.dtype)
    inputs = [helper.make_tensor_value_info("x", dtype, list(x_dims or x_shape))]
    if not const_weights:
        inputs += [helper.make_tensor_value_info(n, dtype, v.shape) for n, v in params.items()]
    node = helper.make_node(op, ["x", *params], ["y"], **attrs)
    graph = helper.make_graph([node], op, inputs, [helper.make_value_info("y", onnx.TypeProto())],
                              [numpy_helper.from_array(v, n) for n, v in params.items()] if const_weights else [])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def check(m: onnx.ModelProto, feeds: dict, monkeypatch, rtol: float = 1e-4, atol: float = 1e-4) -> None:
    monkeypatch.setenv("CLAWDBOT_CHECK", "1")
    ref = ort_run(m, feeds)[0]
    ours = Session(import_onnx(m)).run(feeds)["y"]
    assert ours.dtype == ref.dtype and ours.shape == ref.shape, f"{ours.dtype}{ours.shape} vs {ref.dtype}{ref.shape}"
    np.testing.assert_allclose(ours, ref, rtol=rtol, atol=atol)


def rand(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


# (x shape, weight shape, attributes)
CONV_CASES = [
    ((1, 3, 13, 7), (4, 3, 3, 3), {"pads": [1, 1, 1, 1]}),
    ((2, 3, 13, 7), (5, 3, 3, 3), {"strides": [2, 2], "pads": [1, 0, 2, 1]}),
    ((1, 2, 13, 7), (3, 2, 3, 2), {"dilations": [2, 3], "pads": [2, 1, 0, 3]}),
    ((1, 4, 13, 7), (6, 2, 3, 3), {"group": 2, "strides": [1, 2]}),
    ((2, 5, 13, 7), (5, 1, 3, 3), {"group": 5, "pads": [1, 1, 1, 1]}),                       # depthwise
    ((1, 5, 13, 7), (5, 1, 3, 3), {"group": 5, "strides": [2, 2], "dilations": [2, 1], "pads": [0, 1, 2, 0]}),
    ((1, 3, 13, 7), (6, 1, 3, 3), {"group": 3, "pads": [1, 1, 1, 1]}),                       # multiplier 2
    ((1, 8, 13, 7), (5, 8, 1, 1), {}),                                                       # pointwise
    ((3, 8, 13, 7), (5, 8, 1, 1), {"strides": [2, 2]}),
    ((3, 2, 1, 1), (4, 2, 1, 1), {}),
    ((1, 2, 13, 7), (3, 2, 5, 1), {"pads": [2, 0, 2, 0]}),
    ((1, 3, 13, 7), (4, 3, 3, 3), {"auto_pad": "SAME_UPPER", "strides": [2, 2]}),
    ((1, 3, 13, 7), (4, 3, 4, 2), {"auto_pad": "SAME_LOWER", "strides": [2, 3]}),
    ((1, 3, 13, 7), (4, 3, 3, 3), {"auto_pad": "VALID", "strides": [2, 2]}),
    ((1, 3, 13), (4, 3, 3), {"strides": [2], "dilations": [2], "pads": [1, 2]}),             # 1-D
    ((2, 4, 13), (4, 2, 5), {"group": 2, "auto_pad": "SAME_UPPER"}),
    ((1, 2, 7, 6, 5), (3, 2, 3, 2, 3), {"strides": [2, 1, 2], "pads": [1, 0, 1, 1, 1, 0]}),    # 3-D
    ((1, 4, 7, 6, 5), (4, 2, 2, 3, 2), {"group": 2, "dilations": [2, 1, 2]}),
]


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("x_shape,w_shape,attrs", CONV_CASES)
def test_conv(x_shape, w_shape, attrs, bias, monkeypatch):
    x = rand(*x_shape)
    m = model("Conv", x_shape, rand(*w_shape), rand(w_shape[0]) if bias else None, **attrs)
    check(m, {"x": x}, monkeypatch)


def test_conv_runtime_weights(monkeypatch):
    x, w, b = rand(2, 4, 13, 7), rand(6, 2, 3, 3), rand(6)
    m = model("Conv", x.shape, w, b, const_weights=False, group=2, strides=[2, 1], pads=[1, 0, 0, 1])
    check(m, {"x": x, "w": w, "b": b}, monkeypatch)


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER", "VALID"])
def test_conv_auto_pad_with_symbolic_sizes(auto_pad, monkeypatch):
    # The spatial sizes are unknown at import, so the kernel resolves auto_pad per call; two image sizes.
    m = model("Conv", None, rand(4, 3, 3, 4), rand(4), x_dims=["N", 3, "H", "W"], auto_pad=auto_pad,
              strides=[2, 3])
    for shape in [(1, 3, 13, 7), (2, 3, 8, 11)]:
        check(m, {"x": rand(*shape)}, monkeypatch)


@pytest.mark.parametrize("dtype", ["float16", "float64"])
@pytest.mark.parametrize("op,w_shape,attrs", [("Conv", (4, 3, 3, 3), {"pads": [1, 0, 1, 1], "strides": [2, 1]}),
                                              ("Conv", (3, 1, 3, 3), {"group": 3, "pads": [1, 1, 1, 1]}),
                                              ("ConvTranspose", (3, 2, 3, 3), {"strides": [2, 2]})])
def test_conv_dtypes(op, w_shape, attrs, dtype, monkeypatch):
    monkeypatch.setenv("CLAWDBOT_CHECK", "1")
    x, w = rand(1, 3, 13, 7), rand(*w_shape)
    b = rand(w_shape[1] if op == "ConvTranspose" else w_shape[0])
    ours = Session(import_onnx(model(op, x.shape, w.astype(dtype), b.astype(dtype), **attrs))).run(
        {"x": x.astype(dtype)})["y"]
    # onnxruntime has float16 but no float64 convolutions: the oracle runs the same values in float32
    # (float16's own rounding of the inputs included).
    cast = (lambda a: a.astype(dtype).astype(np.float32))
    ref = ort_run(model(op, x.shape, cast(w), cast(b), **attrs), {"x": cast(x)})[0]
    assert ours.dtype == np.dtype(dtype) and ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=1e-2 if dtype == "float16" else 1e-5, atol=1e-2 if dtype ==
                               "float16" else 1e-5)


def test_conv_shape_inference_is_static():
    m = model("Conv", (1, 3, 13, 7), rand(4, 3, 3, 3), strides=[2, 2], pads=[1, 0, 2, 1])
    assert import_onnx(m).types["y"].shape == (1, 4, 7, 3)


# (x shape, weight shape, attributes); weights are [C_in, C_out / group, k...]
TRANSPOSE_CASES = [
    ((1, 2, 5, 4), (2, 3, 3, 3), {}),
    ((2, 2, 5, 4), (2, 3, 3, 3), {"strides": [2, 3], "output_padding": [1, 2], "pads": [1, 0, 0, 1]}),
    ((1, 2, 5, 4), (2, 2, 2, 3), {"dilations": [2, 2], "strides": [2, 1]}),
    ((1, 4, 5, 4), (4, 3, 3, 3), {"group": 2, "strides": [2, 2], "pads": [1, 1, 1, 1]}),
    ((1, 4, 5, 4), (4, 1, 3, 3), {"group": 4, "strides": [2, 2]}),
    ((1, 2, 5, 4), (2, 3, 3, 3), {"strides": [3, 2], "output_shape": [17, 9]}),
    ((1, 2, 5, 4), (2, 3, 3, 3), {"strides": [3, 2], "output_shape": [13, 7]}),
    ((1, 2, 5, 4), (2, 3, 4, 3), {"strides": [2, 2], "output_shape": [11, 8]}),                    # odd crops
    ((1, 2, 5, 4), (2, 3, 4, 4), {"strides": [2, 2], "auto_pad": "SAME_UPPER"}),
    ((1, 2, 5, 4), (2, 3, 4, 4), {"strides": [2, 2], "auto_pad": "SAME_LOWER"}),
    ((1, 2, 5, 4), (2, 3, 3, 3), {"strides": [2, 2], "auto_pad": "SAME_UPPER"}),                    # odd crops
    ((1, 2, 5, 4), (2, 3, 3, 3), {"strides": [2, 2], "auto_pad": "SAME_LOWER"}),
    ((1, 2, 13), (2, 3, 3), {"strides": [2], "pads": [1, 0], "output_padding": [1]}),                # 1-D
    ((1, 2, 3, 4, 5), (2, 2, 3, 2, 3), {"strides": [2, 1, 2], "pads": [1, 0, 0, 0, 1, 1]}),           # 3-D
]


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("x_shape,w_shape,attrs", TRANSPOSE_CASES)
def test_conv_transpose(x_shape, w_shape, attrs, bias, monkeypatch):
    x = rand(*x_shape)
    group = attrs.get("group", 1)
    m = model("ConvTranspose", x_shape, rand(*w_shape), rand(w_shape[1] * group) if bias else None, **attrs)
    check(m, {"x": x}, monkeypatch)


@pytest.mark.parametrize("attrs,shapes", [({"output_padding": [1, 0]}, [(1, 2, 5, 4), (2, 2, 6, 5)]),
                                          ({"output_shape": [11, 9]}, [(1, 2, 5, 4), (3, 2, 5, 4)]),
                                          ({"auto_pad": "SAME_UPPER"}, [(1, 2, 5, 4), (2, 2, 6, 5)])])
def test_conv_transpose_symbolic_sizes_and_runtime_weights(attrs, shapes, monkeypatch):
    # Sizes unknown at import: output_shape / auto_pad are resolved by the kernel for each input.
    w = rand(2, 3, 4, 3)
    m = model("ConvTranspose", None, w, const_weights=False, x_dims=["N", 2, "H", "W"], strides=[2, 2], **attrs)
    for shape in shapes:
        check(m, {"x": rand(*shape), "w": w}, monkeypatch)
