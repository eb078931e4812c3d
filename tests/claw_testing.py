"""Helpers for tests: the onnxruntime oracle, the whole-model error criterion, tiny ONNX models."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def ort_run(model, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    data = model if isinstance(model, (str, bytes)) else model.SerializeToString()
    sess = ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def assert_matches_range(ours: np.ndarray, ref: np.ndarray, rel: float = 1e-4) -> None:
    """max |ours - ref| <= rel * range(ref): the fp32 criterion for whole models."""
    span = float(np.max(ref) - np.min(ref)) or 1.0
    err = float(np.max(np.abs(ours.astype(np.float64) - ref.astype(np.float64))))
    assert err <= rel * span, f"max abs error {err:.3g} > {rel:g} x output range {span:.3g}"


def add_relu(batch="N", opset: int = 17) -> onnx.ModelProto:
    w = numpy_helper.from_array(np.linspace(-2, 2, 4, dtype=np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["s"], name="add0"),
         helper.make_node("Relu", ["s"], ["y"], name="relu0")],
        "add_relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 4])],
        [w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def with_unknown_ops() -> onnx.ModelProto:
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="ok"),
             helper.make_node("FancyOp", ["a"], ["b"], name="fancy1"),
             helper.make_node("FancyOp", ["x"], ["c"], name="fancy2"),
             helper.make_node("Add", ["b", "c"], ["d"], name="after"),
             helper.make_node("WeirdOp", ["d"], ["y"], name="weird")]
    graph = helper.make_graph(nodes, "bad", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
