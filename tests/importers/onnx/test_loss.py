"""ONNX NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss through clawdbot, compared with onnxruntime.

Both are expanded into claw ops by the importer. Covered: reductions none / sum / mean, class weights,
ignore_index (a valid class, negative, and out of range), the optional log_prob output, inputs of rank 2 to 5,
int32 / int64 targets, float32 / float64 / float16 and opsets 12, 13 and 22. conftest.py sets CLAWDBOT_CHECK=1,
so kernel output dtypes/shapes are checked too.
"""
from __future__ import annotations

from functools import partial

import numpy as np
import pytest
from claw_testing import assert_matches_ort, one_node_model

import clawdbot
from clawdbot.errors import UnsupportedOpsError

RNG = np.random.default_rng(11)
CLASSES = 5
OPS = ("NegativeLogLikelihoodLoss", "SoftmaxCrossEntropyLoss")
model = partial(one_node_model, opset=13)
check = partial(assert_matches_ort, rtol=1e-5, atol=1e-6)


def make_inputs(shape, *, weight=False, ignore_index=None, dtype="float32", target_dtype="int64"):
    """scores/log-probabilities [N, C, d...], targets [N, d...] (some equal to ignore_index), weights [C]."""
    n, *rest = shape
    x = RNG.standard_normal((n, CLASSES, *rest)).astype(dtype)
    target = RNG.integers(0, CLASSES, (n, *rest))
    if ignore_index is not None:
        target.flat[::3] = ignore_index
    inputs = {"x": x, "target": target.astype(target_dtype)}
    if weight:
        inputs["weight"] = RNG.uniform(0.2, 2.0, CLASSES).astype(dtype)
    return inputs


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("weight", [False, True])
@pytest.mark.parametrize("ignore_index", [None, 2, -1, 17])
def test_reductions_weights_ignore_index(op, reduction, weight, ignore_index):
    inputs = make_inputs((4, 3), weight=weight, ignore_index=ignore_index)
    attrs = {"reduction": reduction} if ignore_index is None else {"reduction": reduction,
                                                                    "ignore_index": ignore_index}
    check(model(op, inputs, outputs=["loss"], **attrs), inputs)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("shape", [(6,), (2, 3), (2, 3, 4), (2, 2, 3, 2)])
def test_ranks(op, shape):
    inputs = make_inputs(shape, weight=True, ignore_index=1)
    for reduction in ("none", "mean"):
        check(model(op, inputs, outputs=["loss"], reduction=reduction, ignore_index=1), inputs)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_softmax_cross_entropy_log_prob_output(reduction):
    inputs = make_inputs((3, 4), weight=True, ignore_index=0)
    check(model("SoftmaxCrossEntropyLoss", inputs, outputs=["loss", "log_prob"], reduction=reduction, ignore_index=0),
          inputs)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("opset", [12, 13, 22])
def test_opsets_and_default_reduction(op, opset):
    """reduction defaults to mean in every version."""
    inputs = make_inputs((3, 2), weight=True)
    check(model(op, inputs, outputs=["loss"], opset=opset), inputs)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("dtype", ["float64", "float16"])
def test_float_dtypes_and_int32_targets(op, dtype):
    inputs = make_inputs((4, 3), weight=True, ignore_index=3, dtype=dtype, target_dtype="int32")
    tolerance = {"rtol": 2e-3, "atol": 2e-3} if dtype == "float16" else {"rtol": 1e-12, "atol": 1e-12}
    for reduction in ("none", "mean"):
        check(model(op, inputs, outputs=["loss"], reduction=reduction, ignore_index=3), inputs, **tolerance)


def test_large_scores_are_stable():
    inputs = make_inputs((4,), weight=False)
    inputs["x"] *= 200
    check(model("SoftmaxCrossEntropyLoss", inputs, outputs=["loss", "log_prob"], reduction="sum"), inputs, rtol=1e-5)


def test_unknown_reduction_is_unsupported():
    inputs = make_inputs((2,))
    with pytest.raises(UnsupportedOpsError, match="negativeloglikelihoodloss_node"):
        clawdbot.load(model("NegativeLogLikelihoodLoss", inputs, outputs=["loss"], reduction="max"))
