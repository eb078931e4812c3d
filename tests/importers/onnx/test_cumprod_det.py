"""ONNX CumProd and Det through clawdbot, compared with onnxruntime on one-node models: CumProd along every
axis, exclusive and reverse, int32/int64/float/double, an int32 axis and an axis known only at run time; Det of
single and batched matrices (singular ones too) in float32 and float64 (float64 against the onnx
ReferenceEvaluator: onnxruntime has no kernel for it)."""
from __future__ import annotations

from functools import partial

import numpy as np
import pytest
from claw_testing import assert_matches_ort, one_node_model, ort_run, rand, randn, reference_run

RNG = np.random.default_rng(0)
model = partial(one_node_model, opset=26)
check = partial(assert_matches_ort, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("exclusive,reverse", [(0, 0), (1, 0), (0, 1), (1, 1)])
@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int64"])
def test_cumprod(axis, exclusive, reverse, dtype):
    if dtype.startswith("float"):
        x = rand(RNG, (3, 4, 5), dtype, 0.5, 1.5)
    else:
        x = RNG.integers(-3, 4, (3, 4, 5)).astype(dtype)
    m = model("CumProd", {"x": x}, {"axis": np.array(axis, np.int32)}, exclusive=exclusive, reverse=reverse)
    check(m, {"x": x})


def test_cumprod_axis_at_run_time():
    feeds = {"x": rand(RNG, (4, 6), lo=0.5, hi=1.5), "axis": np.array(1, np.int64)}
    check(model("CumProd", feeds, exclusive=1), feeds)


@pytest.mark.parametrize("shape", [(3, 3), (2, 4, 5, 5), (1, 1)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_det(shape, dtype):
    x = randn(RNG, shape, dtype)
    if len(shape) == 4:
        x[0, 1, :, 0] = x[0, 1, :, 1]   # a singular matrix
    # onnxruntime's Det has no float64 kernel: the reference evaluator checks that one.
    check(model("Det", {"x": x}, opset=22), {"x": x}, rtol=1e-4, atol=1e-5,
          oracle=ort_run if dtype == "float32" else reference_run)
