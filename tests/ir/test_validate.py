"""The validator names the offending node for every kind of inconsistency."""
from __future__ import annotations

import numpy as np
import pytest

from clawdbot.errors import GraphValidationError
from clawdbot.ir.graph import Graph, Node, TensorType
from clawdbot.ir.infer import infer_graph
from clawdbot.ir.validate import validate

F = TensorType("float32", ("N", 4))


def graph(nodes, types=None) -> Graph:
    g = Graph(name="t", inputs=["x"], outputs=[nodes[-1].outputs[0]], nodes=nodes,
              constants={"w": np.ones(4, np.float32)}, types={"x": F, **(types or {})})
    return g


def test_valid_graph_passes_and_infers_symbolic_dims():
    g = infer_graph(graph([Node("add", ["x", "w"], ["a"], name="n1"), Node("relu", ["a"], ["y"], name="n2")]))
    validate(g)
    assert g.types["y"] == TensorType("float32", ("N", 4))


def test_out_of_order_names_node():
    g = graph([Node("relu", ["a"], ["y"], name="late"), Node("add", ["x", "w"], ["a"], name="early")],
              {"a": F, "y": F})
    with pytest.raises(GraphValidationError, match="late.*before it is produced"):
        validate(g)


def test_wrong_recorded_dtype_names_node():
    g = graph([Node("add", ["x", "w"], ["y"], name="adder")], {"y": TensorType("int64", ("N", 4))})
    with pytest.raises(GraphValidationError, match="adder.*int64"):
        validate(g)


def test_wrong_recorded_shape_names_node():
    g = graph([Node("add", ["x", "w"], ["y"], name="adder")], {"y": TensorType("float32", ("N", 5))})
    with pytest.raises(GraphValidationError, match="adder.*float32"):
        validate(g)


def test_mismatched_operand_dtypes():
    g = graph([Node("add", ["x", "i"], ["y"], name="mixed")])
    g.constants["i"] = np.ones(4, np.int64)
    with pytest.raises(GraphValidationError, match="mixed.*dtypes differ"):
        infer_graph(g)


def test_unknown_op_and_arity():
    with pytest.raises(GraphValidationError, match="unknown op 'frobnicate'"):
        validate(graph([Node("frobnicate", ["x"], ["y"], name="f")], {"y": F}))
    with pytest.raises(GraphValidationError, match="takes 2..2 inputs"):
        validate(graph([Node("add", ["x"], ["y"], name="one")], {"y": F}))


def test_output_produced_twice():
    g = graph([Node("relu", ["x"], ["y"], name="a"), Node("relu", ["x"], ["y"], name="b")], {"y": F})
    with pytest.raises(GraphValidationError, match="'b'.*produced twice"):
        validate(g)


def test_missing_graph_output():
    g = infer_graph(graph([Node("relu", ["x"], ["y"], name="a")]))
    g.outputs.append("nowhere")
    with pytest.raises(GraphValidationError, match="'nowhere' is never produced"):
        validate(g)
