"""ONNX normalisation ops through clawdbot, compared with onnxruntime on one-node models: BatchNormalization
(opsets 9/15, 2-D to 5-D inputs, float16/float64), InstanceNormalization, LayerNormalization (every axis, with
and without bias, the optional mean / inv_std_dev outputs), GroupNormalization (opset 18 per-group and opset
21 per-channel parameters), RMSNormalization, MeanVarianceNormalization, LRN and LpNormalization; and the
training-mode BatchNormalization clawdbot refuses."""
from __future__ import annotations

from functools import partial

import numpy as np
import pytest
from claw_testing import assert_matches_ort, one_node_model, rand, randn

from clawdbot.errors import UnsupportedOpsError
from clawdbot.importers.onnx import import_onnx

RNG = np.random.default_rng(0)
check = partial(assert_matches_ort, rtol=1e-4, atol=1e-5)


def tol(dtype) -> dict:
    return {"rtol": 5e-3, "atol": 5e-3} if dtype == "float16" else {}


@pytest.mark.parametrize("x_shape", [(3, 5), (2, 5, 7), (2, 5, 13, 7), (1, 5, 3, 4, 2)])
@pytest.mark.parametrize("opset", [9, 15])
def test_batch_norm(x_shape, opset):
    c = x_shape[1]
    params = {"scale": randn(RNG, c), "bias": randn(RNG, c), "mean": randn(RNG, c), "var": rand(RNG, c, lo=0.5, hi=1.5)}
    x = randn(RNG, x_shape)
    check(one_node_model("BatchNormalization", {"x": x}, params, opset=opset, epsilon=1e-3), {"x": x})


@pytest.mark.parametrize("dtype", ["float16", "float64"])
def test_batch_norm_dtypes_runtime_params(dtype):
    feeds = {"x": randn(RNG, (2, 3, 5, 4), dtype), "scale": randn(RNG, 3, dtype), "bias": randn(RNG, 3, dtype),
             "mean": randn(RNG, 3, dtype), "var": rand(RNG, 3, dtype, 0.5, 1.5)}
    check(one_node_model("BatchNormalization", feeds, opset=15), feeds, **tol(dtype))


def test_batch_norm_training_mode_is_unsupported():
    x = randn(RNG, (2, 3, 4))
    params = {"scale": randn(RNG, 3), "bias": randn(RNG, 3), "mean": randn(RNG, 3), "var": rand(RNG, 3, lo=0.5, hi=1.5)}
    with pytest.raises(UnsupportedOpsError, match="BatchNormalization"):
        import_onnx(one_node_model("BatchNormalization", {"x": x}, params, n_out=3, opset=15, training_mode=1))


@pytest.mark.parametrize("x_shape", [(2, 3, 13), (2, 3, 13, 7), (1, 2, 3, 4, 5)])
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_instance_norm(x_shape, dtype):
    feeds = {"x": randn(RNG, x_shape, dtype), "scale": randn(RNG, x_shape[1], dtype),
             "bias": randn(RNG, x_shape[1], dtype)}
    check(one_node_model("InstanceNormalization", feeds, epsilon=1e-4), feeds, **tol(dtype))


@pytest.mark.parametrize("axis", [-1, -2, 1, 0])
@pytest.mark.parametrize("with_bias", [False, True])
def test_layer_norm(axis, with_bias):
    x_shape = (2, 3, 13, 7)
    tail = x_shape[axis % 4:]
    feeds = {"x": randn(RNG, x_shape), "scale": randn(RNG, tail)} | ({"bias": randn(RNG, tail)} if with_bias else {})
    check(one_node_model("LayerNormalization", feeds, n_out=3, axis=axis, epsilon=1e-3), feeds)


def test_layer_norm_broadcast_scale_and_float64():
    x = randn(RNG, (4, 13, 7), "float64")
    consts = {"scale": randn(RNG, 7, "float64"), "bias": randn(RNG, 1, "float64")}
    check(one_node_model("LayerNormalization", {"x": x}, consts, axis=-2), {"x": x})


@pytest.mark.parametrize("opset,per_group", [(18, True), (21, False)])
@pytest.mark.parametrize("groups", [1, 2, 6])
def test_group_norm(opset, per_group, groups):
    c = 6
    n_params = groups if per_group else c
    feeds = {"x": randn(RNG, (2, c, 5, 3)), "scale": randn(RNG, n_params), "bias": randn(RNG, n_params)}
    check(one_node_model("GroupNormalization", feeds, opset=opset, num_groups=groups, epsilon=1e-3), feeds)


@pytest.mark.parametrize("axis", [-1, 1, 0])
def test_rms_norm(axis):
    x_shape = (2, 3, 13, 7)
    feeds = {"x": randn(RNG, x_shape), "scale": randn(RNG, x_shape[axis % 4:])}
    check(one_node_model("RMSNormalization", feeds, opset=23, axis=axis, epsilon=1e-3), feeds)


@pytest.mark.parametrize("axes", [None, [1], [0, 1, 2, 3], [2, 3]])
def test_mean_variance_norm(axes):
    x = randn(RNG, (2, 3, 13, 7))
    attrs = {} if axes is None else {"axes": axes}
    check(one_node_model("MeanVarianceNormalization", {"x": x}, opset=13, **attrs), {"x": x})


# onnxruntime's LRN takes odd sizes on 4-D inputs only.
@pytest.mark.parametrize("size", [1, 3, 5])
@pytest.mark.parametrize("x_shape", [(2, 7, 13, 3), (1, 2, 5, 1)])
def test_lrn(size, x_shape):
    x = randn(RNG, x_shape)
    check(one_node_model("LRN", {"x": x}, size=size, alpha=1e-2, beta=0.6, bias=1.5), {"x": x})


@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_lp_norm(p, axis):
    x = randn(RNG, (3, 13, 7))
    x[0, 0] = 0  # a zero vector along the last axis
    check(one_node_model("LpNormalization", {"x": x}, p=p, axis=axis), {"x": x})
