"""ONNX CumProd and Det through clawdbot, compared with onnxruntime on one-node models: CumProd along every
axis, exclusive and reverse, int32/int64/float/double, an int32 axis and an axis known only at run time; Det of
single and batched matrices (singular ones too) in float32 and float64 (float64 against the onnx
ReferenceEvaluator: onnxruntime has no kernel for it)."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

import clawdbot

RNG = np.random.default_rng(0)


def model(op: str, inputs: dict, consts: dict | None = None, *, opset: int, **attrs) -> onnx.ModelProto:
    """One node reading `inputs` (graph inputs) then `consts` (initializers)."""
    consts = consts or {}
    node = helper.make_node(op, [*inputs, *consts], ["y"], **attrs)
    graph = helper.make_graph(
        [node], op,
        [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
         for n, v in inputs.items()],
        [helper.make_value_info("y", onnx.TypeProto())],
        [numpy_helper.from_array(np.asarray(v), n) for n, v in consts.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def check(m: onnx.ModelProto, feeds: dict, rtol: float = 1e-5, atol: float = 1e-6, oracle: str = "ort") -> None:
    if oracle == "onnx":
        ref = ReferenceEvaluator(m).run(None, feeds)[0]
    else:
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        ref = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    ours = clawdbot.load(m).run(feeds)["y"]
    assert ours.dtype == ref.dtype and ours.shape == ref.shape, f"{ours.dtype}{ours.shape} vs {ref.dtype}{ref.shape}"
    np.testing.assert_allclose(ours, ref, rtol=rtol, atol=atol)


@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("exclusive,reverse", [(0, 0), (1, 0), (0, 1), (1, 1)])
@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int64"])
def test_cumprod(axis, exclusive, reverse, dtype):
    if dtype.startswith("float"):
        x = RNG.uniform(0.5, 1.5, (3, 4, 5)).astype(dtype)
    else:
        x = RNG.integers(-3, 4, (3, 4, 5)).astype(dtype)
    m = model("CumProd", {"x": x}, {"axis": np.array(axis, np.int32)}, opset=26, exclusive=exclusive, reverse=reverse)
    check(m, {"x": x})


def test_cumprod_axis_at_run_time():
    feeds = {"x": RNG.uniform(0.5, 1.5, (4, 6)).astype(np.float32), "axis": np.array(1, np.int64)}
    check(model("CumProd", feeds, opset=26, exclusive=1), feeds)


@pytest.mark.parametrize("shape", [(3, 3), (2, 4, 5, 5), (1, 1)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_det(shape, dtype):
    x = RNG.standard_normal(shape).astype(dtype)
    if len(shape) == 4:
        x[0, 1, :, 0] = x[0, 1, :, 1]   # a singular matrix
    # onnxruntime's Det has no float64 kernel: the reference evaluator checks that one.
    check(model("Det", {"x": x}, opset=22), {"x": x}, rtol=1e-4, atol=1e-5,
          oracle="ort" if dtype == "float32" else "onnx")
