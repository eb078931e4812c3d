"""ONNX shape ops (Shape, Size, ConstantOfShape, Range, EyeLike) through clawdbot, compared with onnxruntime,
and the symbolic values that let shape-computing subgraphs keep dynamic dims through to a Reshape/Expand.

conftest.py sets CLAWDBOT_CHECK=1 (each kernel's output is checked against inference); the helper asserts that
it is on.
"""
from __future__ import annotations

from functools import partial

import numpy as np
import onnx
import pytest
from claw_testing import assert_matches_ort, graph_model, i64, one_node_model
from onnx import TensorProto, helper, numpy_helper

from clawdbot.importers.onnx import import_onnx

RNG = np.random.default_rng(0)
node_model = partial(one_node_model, opset=18, ir_version=9)
check = assert_matches_ort  # exact unless told

X = RNG.standard_normal((2, 3, 4, 5)).astype(np.float32)


# -- shape / size -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("start, end", [(None, None), (1, None), (-1, None), (None, -1), (1, 3), (-10, 10),
                                        (3, 1)])
def test_shape(start, end):
    attrs = {k: v for k, v in (("start", start), ("end", end)) if v is not None}
    check(node_model("Shape", {"x": X}, opset=15, **attrs), {"x": X})


@pytest.mark.parametrize("shape", [(2, 3, 4), (), (0, 5)])
def test_size(shape):
    x = np.zeros(shape, np.int32)
    check(node_model("Size", {"x": x}), {"x": x})


# -- constant_of_shape / range / eye_like ---------------------------------------------------------------------
@pytest.mark.parametrize("value", [None, np.array([1.5], np.float32), np.array([-7], np.int32),
                                   np.array([True]), np.array([9], np.int64)])
@pytest.mark.parametrize("shape", [(2, 3), (0,), (4,)])
def test_constant_of_shape(value, shape):
    attrs = {} if value is None else {"value": numpy_helper.from_array(value)}
    feeds = {"shape": i64(*shape)}
    check(node_model("ConstantOfShape", feeds, **attrs), feeds)


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int64", "int16"])
@pytest.mark.parametrize("start, limit, delta", [(0, 10, 3), (10, -3, -2), (1, 1, 1), (5, 0, 1), (-2.5, 4, 0.5)])
def test_range(dtype, start, limit, delta):
    if np.dtype(dtype).kind == "i" and any(v != int(v) for v in (start, limit, delta)):
        pytest.skip("fractional bounds need a float dtype")
    feeds = {k: np.array(v, dtype) for k, v in (("start", start), ("limit", limit), ("delta", delta))}
    check(node_model("Range", feeds), feeds, rtol=1e-6)


@pytest.mark.parametrize("shape", [(3, 3), (2, 5), (5, 2)])
@pytest.mark.parametrize("k", [0, 1, -2, 7])
@pytest.mark.parametrize("dtype", [None, TensorProto.FLOAT, TensorProto.INT32])
def test_eye_like(shape, k, dtype):
    x = np.zeros(shape, np.int64)
    attrs = {"k": k} | ({} if dtype is None else {"dtype": dtype})
    check(node_model("EyeLike", {"x": x}, **attrs), {"x": x})


# -- symbolic shape values ---------------------------------------------------------------------------------------
def _heads_model() -> onnx.ModelProto:
    """[batch, 128, 384] -> [batch, 128, 12, 32] with the target computed from the input's own shape, the way
    exported transformers split attention heads (Shape -> Gather -> Unsqueeze -> Concat -> Reshape)."""
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "zero"], ["b"], axis=0),
        helper.make_node("Unsqueeze", ["b", "axis0"], ["b1"]),
        helper.make_node("Slice", ["s", "one", "two"], ["seq"]),
        helper.make_node("Concat", ["b1", "seq", "heads"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["y"]),
        helper.make_node("Transpose", ["y"], ["t"], perm=[0, 2, 1, 3]),
        helper.make_node("ConstantOfShape", ["s"], ["ones"], value=numpy_helper.from_array(np.ones(1, np.float32))),
        helper.make_node("Split", ["t"], ["t0", "t1"], axis=1, num_outputs=2),
    ]
    consts = {"zero": np.array(0, np.int64), "axis0": i64(0), "one": i64(1), "two": i64(2),
              "heads": i64(12, 32)}
    x = np.zeros((1, 128, 384), np.float32)
    return graph_model(nodes, {"x": x}, consts, outputs=("y", "t", "ones", "t0", "t1"), opset=18, ir_version=9,
                       input_shapes={"x": ["batch", 128, 384]})


def test_reshape_target_from_shape_keeps_batch_symbolic():
    g = import_onnx(_heads_model())
    assert g.types["target"].shape == (4,)
    assert g.types["y"].shape == ("batch", 128, 12, 32)
    assert g.types["t"].shape == ("batch", 12, 128, 32)
    assert g.types["ones"].shape == ("batch", 128, 384)
    assert g.types["t0"].shape == ("batch", 6, 128, 32)


@pytest.mark.parametrize("batch", [1, 3])
def test_reshape_target_from_shape_runs(batch):
    x = RNG.standard_normal((batch, 128, 384)).astype(np.float32)
    check(_heads_model(), {"x": x})


def test_symbolic_values_through_squeeze_split_and_expand():
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Split", ["s"], ["s0", "s1", "s2"], axis=0, num_outputs=3),
        helper.make_node("Squeeze", ["s2", "axis0"], ["last"]),
        helper.make_node("Unsqueeze", ["last", "axis0"], ["last1"]),
        helper.make_node("Concat", ["s0", "s1", "two", "last1"], ["target"], axis=0),
        helper.make_node("Expand", ["x4", "target"], ["y"]),
        helper.make_node("Size", ["x"], ["n"]),
    ]
    x, x4 = np.zeros((1, 3, 5), np.float32), np.zeros((1, 1, 1, 1), np.float32)
    m = graph_model(nodes, {"x": x, "x4": x4}, {"axis0": i64(0), "two": i64(2)}, outputs=("y", "n"), opset=18,
                    ir_version=9, input_shapes={"x": ["batch", "seq", 5]})
    g = import_onnx(m)
    assert g.types["y"].shape == ("batch", "seq", 2, 5)
