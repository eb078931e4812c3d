"""ONNX sampling ops through clawdbot, compared with onnxruntime on one-node models (with the onnx
ReferenceEvaluator where onnxruntime has no kernel: cubic 3-D and integer GridSample): GridSample (every mode,
padding mode and align_corners on 4-D inputs, linear/nearest on 5-D, opset 16 mode names, float64),
AffineGrid (2-D and 3-D), RoiAlign (opsets 10 and 16, avg and max, fixed and adaptive sampling, ROIs past the
border), MaxUnpool (after a MaxPool, with and without output_shape) and DeformConv (mask, bias, groups,
offset groups, strides, padding, dilation)."""
from __future__ import annotations

from functools import partial

import numpy as np
import onnx
import pytest
from claw_testing import assert_matches_ort, graph_model, one_node_model, rand, reference_run
from onnx import helper

RNG = np.random.default_rng(0)
model = partial(one_node_model, opset=22)
check = partial(assert_matches_ort, rtol=1e-5, atol=1e-5)


# -- GridSample --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["linear", "nearest", "cubic"])
@pytest.mark.parametrize("padding", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("align", [0, 1])
def test_grid_sample_2d(mode, padding, align):
    # The grid reaches well past [-1, 1] so that every padding mode is exercised, reflection more than once.
    feeds = {"x": rand(RNG, (2, 3, 5, 7)), "grid": rand(RNG, (2, 4, 6, 2), lo=-2.5, hi=2.5)}
    check(model("GridSample", feeds, mode=mode, padding_mode=padding, align_corners=align), feeds)


@pytest.mark.parametrize("mode", ["linear", "nearest"])
@pytest.mark.parametrize("padding", ["zeros", "border", "reflection"])
def test_grid_sample_3d(mode, padding):
    feeds = {"x": rand(RNG, (1, 2, 4, 5, 3)), "grid": rand(RNG, (1, 3, 2, 4, 3), lo=-1.6, hi=1.6)}
    check(model("GridSample", feeds, mode=mode, padding_mode=padding), feeds)


@pytest.mark.parametrize("mode", ["bilinear", "nearest", "bicubic"])
def test_grid_sample_opset16_names(mode):
    feeds = {"x": rand(RNG, (1, 2, 6, 4)), "grid": rand(RNG, (1, 5, 5, 2), lo=-1.2, hi=1.2)}
    check(model("GridSample", feeds, opset=16, mode=mode, align_corners=1), feeds)


def test_grid_sample_float64():
    feeds = {"x": rand(RNG, (1, 2, 6, 4), "float64"), "grid": rand(RNG, (1, 5, 5, 2), "float64", -1.2, 1.2)}
    check(model("GridSample", feeds, mode="cubic", padding_mode="border"), feeds, rtol=1e-12, atol=1e-12)


def test_grid_sample_cubic_3d_and_integer_nearest():
    # onnxruntime samples neither 3-D cubic nor integer tensors; the reference evaluator does (zero padding, where
    # its coordinate clamping cannot differ from per-tap padding).
    feeds = {"x": rand(RNG, (1, 2, 3, 4, 5)), "grid": rand(RNG, (1, 2, 3, 2, 3), lo=-1.3, hi=1.3)}
    check(model("GridSample", feeds, mode="cubic"), feeds, oracle=reference_run, rtol=1e-4, atol=1e-5)
    feeds = {"x": RNG.integers(0, 20, (1, 2, 4, 4)).astype(np.int32),
             "grid": rand(RNG, (1, 3, 3, 2), lo=-1.2, hi=1.2)}
    check(model("GridSample", feeds, mode="nearest"), feeds, oracle=reference_run)


def test_grid_sample_1d_and_float16_x():
    # Neither is in onnxruntime; a float16 x keeps its float32 grid (coordinates are not cast down).
    feeds = {"x": rand(RNG, (2, 3, 9)), "grid": rand(RNG, (2, 5, 1), lo=-1.3, hi=1.3)}
    check(model("GridSample", feeds, mode="cubic"), feeds, oracle=reference_run)
    feeds = {"x": rand(RNG, (1, 2, 5, 6), dtype="float16"), "grid": rand(RNG, (1, 4, 3, 2), lo=-1.1, hi=1.1)}
    check(model("GridSample", feeds), feeds, oracle=reference_run, rtol=2e-3, atol=2e-3)


# -- AffineGrid --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [(2, 3, 5, 7), (2, 1, 3, 4, 5)])
@pytest.mark.parametrize("align", [0, 1])
def test_affine_grid(size, align):
    r = len(size) - 2
    feeds = {"theta": rand(RNG, (size[0], r, r + 1))}
    check(model("AffineGrid", feeds, {"size": np.array(size, np.int64)}, opset=20, align_corners=align), feeds)


# -- RoiAlign ----------------------------------------------------------------------------------------------------
def _rois(n: int, h: int, w: int):
    """Random boxes (x1, y1, x2, y2), some tiny and some past the image border, in input coordinates x 2."""
    xy = RNG.uniform(-0.2, 1.1, (n, 2)) * [w * 2, h * 2]
    size = RNG.uniform(0.1, 0.8, (n, 2)) * [w * 2, h * 2]
    size[0] = [0.3, 0.2]
    return np.concatenate([xy, xy + size], axis=1).astype(np.float32)


@pytest.mark.parametrize("opset,ctm", [(10, None), (16, "half_pixel"), (16, "output_half_pixel")])
@pytest.mark.parametrize("mode", ["avg", "max"])
@pytest.mark.parametrize("ratio", [0, 2])
def test_roi_align(opset, ctm, mode, ratio):
    x = rand(RNG, (2, 3, 12, 10))
    consts = {"rois": _rois(7, 12, 10), "batch": RNG.integers(0, 2, 7).astype(np.int64)}
    attrs = {"coordinate_transformation_mode": ctm} if ctm else {}
    m = model("RoiAlign", {"x": x}, consts, opset=opset, mode=mode, output_height=3, output_width=4,
              sampling_ratio=ratio, spatial_scale=0.5, **attrs)
    check(m, {"x": x})


# -- MaxUnpool ---------------------------------------------------------------------------------------------------
def _pool_unpool(x: np.ndarray, kernel, strides, pads, with_shape: bool) -> onnx.ModelProto:
    """MaxPool -> MaxUnpool, optionally told the pooled input's shape (the normal use)."""
    attrs = {"kernel_shape": kernel, "strides": strides, "pads": pads}
    nodes = [helper.make_node("MaxPool", ["x"], ["p", "i"], **attrs)]
    unpool_in = ["p", "i"]
    if with_shape:
        nodes.append(helper.make_node("Shape", ["x"], ["s"]))
        unpool_in.append("s")
    nodes.append(helper.make_node("MaxUnpool", unpool_in, ["y"], **attrs))
    return graph_model(nodes, {"x": x}, opset=22, name="unpool")


# Without output_shape the output is the smallest input that pools to x, which holds every index only when the
# windows tile the pooled input exactly (the first two cases).
@pytest.mark.parametrize("x_shape,kernel,strides,pads,with_shape", [
    ((2, 3, 8, 6), [2, 2], [2, 2], [0, 0, 0, 0], False),
    ((1, 2, 9, 7), [3, 2], [2, 2], [1, 0, 1, 1], False),
    ((2, 3, 8, 6), [2, 2], [2, 2], [0, 0, 0, 0], True),
    ((2, 2, 11), [3], [3], [0, 0], True),
    ((1, 2, 5, 4, 6), [2, 2, 2], [2, 1, 2], [0] * 6, True)])
def test_max_unpool(x_shape, kernel, strides, pads, with_shape):
    x = rand(RNG, x_shape)
    check(_pool_unpool(x, kernel, strides, pads, with_shape), {"x": x})


# -- DeformConv --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("with_mask,with_bias", [(False, False), (True, True), (True, False)])
@pytest.mark.parametrize("group,offset_group", [(1, 1), (2, 1), (1, 2), (2, 4)])
def test_deform_conv(with_mask, with_bias, group, offset_group):
    n, c, m, kh, kw = 2, 4, 6, 3, 2
    x = rand(RNG, (n, c, 7, 8))
    attrs = {"strides": [2, 1], "pads": [1, 0, 1, 1], "dilations": [1, 2], "group": group,
             "offset_group": offset_group}
    oh, ow = (7 + 2 - 3) // 2 + 1, (8 + 1 - 3) // 1 + 1       # the 2-wide kernel dilated by 2 spans 3
    feeds = {"x": x, "w": rand(RNG, (m, c // group, kh, kw)),
             "offset": rand(RNG, (n, offset_group * kh * kw * 2, oh, ow), lo=-2, hi=2)}
    consts = {"b": rand(RNG, m) if with_bias else None,
              "mask": rand(RNG, (n, offset_group * kh * kw, oh, ow), lo=0, hi=1) if with_mask else None}
    check(model("DeformConv", feeds, consts, **attrs), feeds, rtol=1e-4, atol=1e-5)
