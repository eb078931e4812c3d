"""ONNX Resize (opsets 10/11/13/18/19) and Upsample (7/9) through clawdbot, compared with onnxruntime on
one-node models: nearest (every nearest_mode) / linear / cubic, every coordinate_transformation_mode, up- and
downsampling by scales or to sizes, antialias, exclude_outside, axes, keep_aspect_ratio_policy,
tf_crop_and_resize with extrapolation, integer inputs, and scales/sizes known only at run time."""
from __future__ import annotations

from functools import partial

import numpy as np
import onnx
import pytest
from claw_testing import assert_matches_ort, one_node_model

RNG = np.random.default_rng(0)
X = RNG.standard_normal((2, 3, 13, 7)).astype(np.float32)
UP, DOWN = [1, 1, 2.0, 1.5], [1, 1, 0.5, 0.75]
# align_corners divides by the output length minus one; with a fractional in_len * scale the ONNX reference
# uses that unrounded length and onnxruntime the rounded one, so these tests use whole output lengths.
WHOLE = [[1, 1, 2.0, 3.0], [1, 1, 3 / 13, 4 / 7]]
check = partial(assert_matches_ort, rtol=1e-4, atol=1e-5)


def model(op: str, x: np.ndarray, params: dict, *, runtime: tuple = (), opset: int = 19,
          **attrs) -> onnx.ModelProto:
    """One node on graph input x; `params` (name -> array or None for an omitted input) are initializers
    unless named in `runtime`, then graph inputs."""
    return one_node_model(op, {"x": x} | {n: params[n] for n in runtime},
                          {n: v for n, v in params.items() if n not in runtime},
                          node_inputs=["x", *(n if v is not None else "" for n, v in params.items())], opset=opset,
                          **attrs)


def scales(values) -> dict:
    return {"roi": None, "scales": np.array(values, np.float32)}


def sizes(values) -> dict:
    return {"roi": None, "scales": None, "sizes": np.array(values, np.int64)}


@pytest.mark.parametrize("factors", [UP, DOWN, [1, 1, 3.0, 0.6]])
@pytest.mark.parametrize("nearest_mode", ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"])
@pytest.mark.parametrize("ctm", ["half_pixel", "asymmetric", "pytorch_half_pixel"])
def test_nearest(ctm, nearest_mode, factors):
    m = model("Resize", X, scales(factors), mode="nearest", nearest_mode=nearest_mode,
              coordinate_transformation_mode=ctm)
    check(m, {"x": X})


@pytest.mark.parametrize("factors", [UP, DOWN, [1, 1, 3.0, 0.6]])
@pytest.mark.parametrize("ctm", ["half_pixel", "asymmetric", "pytorch_half_pixel", "half_pixel_symmetric"])
@pytest.mark.parametrize("mode", ["linear", "cubic"])
def test_linear_and_cubic(mode, ctm, factors):
    m = model("Resize", X, scales(factors), mode=mode, coordinate_transformation_mode=ctm)
    check(m, {"x": X})


@pytest.mark.parametrize("factors", WHOLE)
@pytest.mark.parametrize("mode,nearest_mode", [("nearest", "round_prefer_floor"), ("nearest", "round_prefer_ceil"),
                                               ("nearest", "floor"), ("nearest", "ceil"), ("linear", None),
                                               ("cubic", None)])
def test_align_corners(mode, nearest_mode, factors):
    attrs = {"nearest_mode": nearest_mode} if nearest_mode else {}
    m = model("Resize", X, scales(factors), mode=mode, coordinate_transformation_mode="align_corners", **attrs)
    check(m, {"x": X})


@pytest.mark.parametrize("a", [-0.5, -0.75])
@pytest.mark.parametrize("factors", [UP, DOWN])
def test_cubic_coefficient_and_exclude_outside(a, factors):
    m = model("Resize", X, scales(factors), mode="cubic", cubic_coeff_a=a, exclude_outside=1)
    check(m, {"x": X})


@pytest.mark.parametrize("target", [[2, 3, 5, 3], [2, 3, 4, 6], [2, 3, 27, 7]])
@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
def test_sizes(mode, target):
    check(model("Resize", X, sizes(target), mode=mode), {"x": X})


@pytest.mark.parametrize("mode", ["linear", "cubic"])
@pytest.mark.parametrize("factors", [[1, 1, 0.5, 0.75], [1, 1, 0.3, 0.6], [1, 1, 2.0, 0.5]])
def test_antialias(mode, factors):
    m = model("Resize", X, scales(factors), mode=mode, antialias=1)
    check(m, {"x": X})


@pytest.mark.parametrize("policy", ["stretch", "not_larger", "not_smaller"])
@pytest.mark.parametrize("axes", [[2, 3], [3, 2]])
def test_axes_and_aspect_ratio_policy(axes, policy):
    m = model("Resize", X, sizes([9, 4]), mode="nearest", axes=axes, keep_aspect_ratio_policy=policy)
    check(m, {"x": X})


def test_negative_axes():
    # (onnxruntime ignores keep_aspect_ratio_policy with negative axes, so only stretch is compared.)
    check(model("Resize", X, sizes([9, 4]), mode="linear", axes=[-1, -2]), {"x": X})


def test_axes_with_scales():
    check(model("Resize", X, scales([1.5, 0.5]), mode="linear", axes=[3, 2]), {"x": X})


@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
def test_tf_crop_and_resize(mode):
    params = {"roi": np.array([0, 0, 0.2, -0.1, 1, 1, 0.9, 1.3], np.float32), "scales": None,
              "sizes": np.array([2, 3, 8, 9], np.int64)}
    m = model("Resize", X, params, mode=mode, coordinate_transformation_mode="tf_crop_and_resize",
              extrapolation_value=-7.0)
    check(m, {"x": X})


@pytest.mark.parametrize("opset", [11, 13])
def test_runtime_scales_and_sizes(opset):
    params = scales(UP) | {"sizes": None}
    params["roi"] = np.zeros(0, np.float32)  # Resize-11 requires a roi input even when unused
    m = model("Resize", X, params, runtime=("scales",), opset=opset, mode="linear")
    check(m, {"x": X, "scales": params["scales"]})
    params = {"roi": np.zeros(0, np.float32), "scales": np.zeros(0, np.float32),
              "sizes": np.array([2, 3, 6, 10], np.int64)}
    m = model("Resize", X, params, runtime=("sizes",), opset=opset, mode="nearest")
    check(m, {"x": X, "sizes": params["sizes"]})


def test_tf_half_pixel_for_nn():
    params = {"roi": np.zeros(0, np.float32), "scales": np.array(DOWN, np.float32)}
    m = model("Resize", X, params, opset=11, mode="nearest", coordinate_transformation_mode="tf_half_pixel_for_nn")
    check(m, {"x": X})


@pytest.mark.parametrize("dtype", ["uint8", "int8"])
@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_integer_inputs(mode, dtype):
    x = RNG.integers(0, 100, (1, 2, 13, 7)).astype(dtype)
    # clawdbot rounds interpolated integers (the ONNX reference's rule), onnxruntime truncates: 1 apart at most.
    check(model("Resize", x, scales(UP), mode=mode), {"x": x}, atol=1)


@pytest.mark.parametrize("mode", ["nearest", "linear"])
@pytest.mark.parametrize("factors", [UP, [1, 1, 2, 3], DOWN])
def test_resize_10(mode, factors):
    check(model("Resize", X, {"scales": np.array(factors, np.float32)}, opset=10, mode=mode), {"x": X})


@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_upsample(mode):
    check(model("Upsample", X, {"scales": np.array([1, 1, 2, 3], np.float32)}, opset=9, mode=mode), {"x": X})
    check(model("Upsample", X, {}, opset=7, mode=mode, scales=[1.0, 1.0, 2.0, 1.5]), {"x": X})
