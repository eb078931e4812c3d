"""ONNX Conv / ConvTranspose through clawdbot, compared with onnxruntime on one-node models: 1-D/2-D/3-D,
strides, dilations, asymmetric pads, groups (incl. depthwise and channel multipliers), auto_pad (resolved at
import, and at run time when the spatial sizes are symbolic), constant and run-time weights, batches, and
ConvTranspose's output_padding / output_shape."""
from __future__ import annotations

from functools import partial

import numpy as np
import onnx
import pytest
from claw_testing import assert_matches_ort, one_node_model, randn

from clawdbot.importers.onnx import import_onnx

RNG = np.random.default_rng(0)
check = partial(assert_matches_ort, rtol=1e-4, atol=1e-4)


def model(op: str, x: np.ndarray, w: np.ndarray, bias: np.ndarray | None = None, *, const_weights: bool = True,
          x_dims=None, **attrs) -> onnx.ModelProto:
    """One conv node on graph input x (declared with `x_dims`, default its shape); the weight and bias are
    initializers or, with const_weights=False, graph inputs."""
    params = {"w": w} | ({} if bias is None else {"b": bias})
    inputs, consts = ({"x": x}, params) if const_weights else ({"x": x} | params, None)
    return one_node_model(op, inputs, consts, input_shapes={"x": x_dims} if x_dims else None, **attrs)


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
def test_conv(x_shape, w_shape, attrs, bias):
    x = randn(RNG, x_shape)
    m = model("Conv", x, randn(RNG, w_shape), randn(RNG, w_shape[0]) if bias else None, **attrs)
    check(m, {"x": x})


def test_conv_runtime_weights():
    x, w, b = randn(RNG, (2, 4, 13, 7)), randn(RNG, (6, 2, 3, 3)), randn(RNG, 6)
    m = model("Conv", x, w, b, const_weights=False, group=2, strides=[2, 1], pads=[1, 0, 0, 1])
    check(m, {"x": x, "w": w, "b": b})


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER", "VALID"])
def test_conv_auto_pad_with_symbolic_sizes(auto_pad):
    # The spatial sizes are unknown at import, so the kernel resolves auto_pad per call; two image sizes.
    like = np.zeros((1, 3, 13, 7), np.float32)  # x's dtype and rank
    m = model("Conv", like, randn(RNG, (4, 3, 3, 4)), randn(RNG, 4), x_dims=["N", 3, "H", "W"], auto_pad=auto_pad,
              strides=[2, 3])
    for shape in [(1, 3, 13, 7), (2, 3, 8, 11)]:
        check(m, {"x": randn(RNG, shape)})


@pytest.mark.parametrize("dtype", ["float16", "float64"])
@pytest.mark.parametrize("op,w_shape,attrs", [("Conv", (4, 3, 3, 3), {"pads": [1, 0, 1, 1], "strides": [2, 1]}),
                                              ("Conv", (3, 1, 3, 3), {"group": 3, "pads": [1, 1, 1, 1]}),
                                              ("ConvTranspose", (3, 2, 3, 3), {"strides": [2, 2]})])
def test_conv_dtypes(op, w_shape, attrs, dtype):
    x, w = randn(RNG, (1, 3, 13, 7)), randn(RNG, w_shape)
    b = randn(RNG, w_shape[1] if op == "ConvTranspose" else w_shape[0])
    # onnxruntime has float16 but no float64 convolutions: the oracle runs the same values in float32
    # (float16's own rounding of the inputs included).
    m = model(op, x.astype(dtype), w.astype(dtype), b.astype(dtype), **attrs)
    tolerance = 1e-2 if dtype == "float16" else 1e-5
    check(m, {"x": x.astype(dtype)}, rtol=tolerance, atol=tolerance, cast_for_ort=(dtype, "float32"))


def test_conv_shape_inference_is_static():
    m = model("Conv", np.zeros((1, 3, 13, 7), np.float32), randn(RNG, (4, 3, 3, 3)), strides=[2, 2],
              pads=[1, 0, 2, 1])
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
def test_conv_transpose(x_shape, w_shape, attrs, bias):
    x = randn(RNG, x_shape)
    group = attrs.get("group", 1)
    m = model("ConvTranspose", x, randn(RNG, w_shape), randn(RNG, w_shape[1] * group) if bias else None, **attrs)
    check(m, {"x": x})


@pytest.mark.parametrize("attrs,shapes", [({"output_padding": [1, 0]}, [(1, 2, 5, 4), (2, 2, 6, 5)]),
                                          ({"output_shape": [11, 9]}, [(1, 2, 5, 4), (3, 2, 5, 4)]),
                                          ({"auto_pad": "SAME_UPPER"}, [(1, 2, 5, 4), (2, 2, 6, 5)])])
def test_conv_transpose_symbolic_sizes_and_runtime_weights(attrs, shapes):
    # Sizes unknown at import: output_shape / auto_pad are resolved by the kernel for each input.
    w = randn(RNG, (2, 3, 4, 3))
    like = np.zeros((1, 2, 5, 4), np.float32)  # x's dtype and rank
    m = model("ConvTranspose", like, w, const_weights=False, x_dims=["N", 2, "H", "W"], strides=[2, 2], **attrs)
    for shape in shapes:
        check(m, {"x": randn(RNG, shape), "w": w})
