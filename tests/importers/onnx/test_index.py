"""ONNX indexing ops (gathers, scatters, OneHot, NonZero, Trilu, Unique, NonMaxSuppression) through clawdbot,
compared with onnxruntime on one-node models: negative indices, int32/int64 indices, every scatter reduction,
batch_dims, and the deprecated Scatter.

conftest.py sets CLAWDBOT_CHECK=1 (each kernel's output is checked against inference); the helper sets it too.
"""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from claw_testing import ort_run
from onnx import helper, numpy_helper

import clawdbot

RNG = np.random.default_rng(0)


def model(op: str, inputs: dict, consts: dict | None = None, n_out: int = 1, opset: int = 18,
          **attrs) -> onnx.ModelProto:
    """One node whose inputs are `inputs` (graph inputs) then `consts` (initializers), in order."""
    consts = consts or {}
    node = helper.make_node(op, [*inputs, *consts], [f"y{i}" for i in range(n_out)], **attrs)
    graph = helper.make_graph(
        [node], op,
        [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
         for n, v in inputs.items()],
        [helper.make_value_info(f"y{i}", onnx.TypeProto()) for i in range(n_out)],
        [numpy_helper.from_array(v, n) for n, v in consts.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=9)


def check(op, inputs: dict, monkeypatch, consts=None, n_out=1, opset=18, **attrs) -> None:
    monkeypatch.setenv("CLAWDBOT_CHECK", "1")
    m = model(op, inputs, consts, n_out, opset, **attrs)
    ref = ort_run(m, inputs)
    ours = clawdbot.load(m).run(inputs)
    for r, (name, o) in zip(ref, ours.items()):
        assert o.dtype == r.dtype and o.shape == r.shape, f"{name}: {o.dtype}{o.shape} vs ORT {r.dtype}{r.shape}"
        np.testing.assert_array_equal(o, r, err_msg=name)


X = RNG.standard_normal((3, 4, 5)).astype(np.float32)


def indices(shape, dim, dtype="int64") -> np.ndarray:
    """Random valid indices into an axis of length `dim`, negative ones included."""
    return RNG.integers(-dim, dim, shape).astype(dtype)


# -- gathers ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("axis", [0, 1, 2, -1])
@pytest.mark.parametrize("idx_shape", [(), (2,), (2, 3)])
@pytest.mark.parametrize("idx_dtype", ["int64", "int32"])
def test_gather(axis, idx_shape, idx_dtype, monkeypatch):
    idx = indices(idx_shape, X.shape[axis], idx_dtype)
    check("Gather", {"x": X}, monkeypatch, consts={"idx": idx}, axis=axis)


def test_gather_runtime_indices_int(monkeypatch):
    x = RNG.integers(-50, 50, (6, 2)).astype(np.int32)
    check("Gather", {"x": x, "idx": indices((4,), 6)}, monkeypatch)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_gather_elements(axis, monkeypatch):
    shape = list(X.shape)
    shape[axis] = 2
    check("GatherElements", {"x": X, "idx": indices(shape, X.shape[axis], "int32")}, monkeypatch, axis=axis)


@pytest.mark.parametrize("batch_dims, idx_shape", [(0, (2, 1)), (0, (4, 2)), (0, (2, 2, 3)), (1, (3, 2, 1)),
                                                   (1, (3, 2)), (2, (3, 4, 1))])
def test_gather_nd(batch_dims, idx_shape, monkeypatch):
    k = idx_shape[-1]
    idx = np.stack([RNG.integers(0, X.shape[batch_dims + j], idx_shape[:-1]) for j in range(k)], -1)
    if batch_dims == 1:
        idx = np.broadcast_to(idx, idx_shape).copy()
    check("GatherND", {"x": X}, monkeypatch, consts={"idx": idx.astype(np.int64)}, batch_dims=batch_dims)


# -- scatters --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("reduction", ["none", "add", "mul", "max", "min"])
@pytest.mark.parametrize("axis", [0, -1])
def test_scatter_elements(reduction, axis, monkeypatch):
    shape = list(X.shape)
    shape[axis] = 2
    if reduction == "none":  # distinct targets: with duplicates, which update wins is unspecified
        along = [1] * X.ndim
        along[axis] = 2
        idx = np.broadcast_to(np.array([-1, 0]).reshape(along), shape).astype(np.int64)
    else:
        idx = indices(shape, X.shape[axis])
    upd = RNG.standard_normal(shape).astype(np.float32)
    check("ScatterElements", {"x": X, "idx": idx, "upd": upd}, monkeypatch, axis=axis, reduction=reduction)


@pytest.mark.parametrize("opset", [9, 10])
def test_deprecated_scatter(opset, monkeypatch):
    idx = np.array([[1, 0, 2, 3, 4], [0, 2, 1, 4, 3]], np.int64)
    x = RNG.standard_normal((4, 5)).astype(np.float32)
    upd = RNG.standard_normal((2, 5)).astype(np.float32)
    check("Scatter", {"x": x, "idx": idx, "upd": upd}, monkeypatch, opset=opset, axis=1)


@pytest.mark.parametrize("reduction", ["none", "add", "mul", "max", "min"])
@pytest.mark.parametrize("idx", [[[1], [-3]], [[0, 1], [2, 3]], [[1, 2, 0]]])
def test_scatter_nd(reduction, idx, monkeypatch):
    idx = np.array(idx, np.int64)
    upd = RNG.standard_normal(idx.shape[:-1] + X.shape[idx.shape[-1]:]).astype(np.float32)
    if reduction != "none" and idx.shape[0] == 2:
        idx = np.concatenate([idx[:1], idx[:1]])  # repeated targets: each update must contribute
    if reduction == "none" and idx.shape[-1] == 1:
        idx = np.array([[1], [-1]], np.int64)
    check("ScatterND", {"x": X, "idx": idx, "upd": upd}, monkeypatch, reduction=reduction)


# -- one_hot / non_zero / trilu -------------------------------------------------------------------------------
@pytest.mark.parametrize("axis", [-1, 0, 1, -2])
@pytest.mark.parametrize("idx_dtype", ["int64", "int32", "float32"])
def test_one_hot(axis, idx_dtype, monkeypatch):
    idx = np.array([[0, 3, -1], [7, -5, 2]]).astype(idx_dtype)  # 7 and -5 are out of range for depth 5
    # onnxruntime implements only some index/depth dtype pairs; matching ones are among them.
    consts = {"depth": np.array([5], idx_dtype), "values": np.array([-1, 4], np.float32)}
    check("OneHot", {"idx": idx}, monkeypatch, consts=consts, axis=axis)


@pytest.mark.parametrize("shape", [(5,), (3, 4), (2, 3, 2)])
@pytest.mark.parametrize("dtype", ["float32", "int32", "bool"])
def test_non_zero(shape, dtype, monkeypatch):
    x = (RNG.integers(-1, 2, shape)).astype(dtype)
    check("NonZero", {"x": x}, monkeypatch)


@pytest.mark.parametrize("upper", [0, 1])
@pytest.mark.parametrize("k", [None, 0, 2, -1, -9])
@pytest.mark.parametrize("shape", [(4, 4), (2, 3, 5), (5, 2)])
def test_trilu(upper, k, shape, monkeypatch):
    x = RNG.integers(1, 9, shape).astype(np.int64)
    check("Trilu", {"x": x}, monkeypatch, consts=None if k is None else {"k": np.array(k, np.int64)},
          upper=upper)


# -- unique / non_max_suppression -----------------------------------------------------------------------------
@pytest.mark.parametrize("axis", [None, 0, 1, -1])
@pytest.mark.parametrize("sorted_", [1, 0])
def test_unique(axis, sorted_, monkeypatch):
    x = np.array([[2, 1, 2], [0, 3, 0], [2, 1, 2], [5, 5, 5]], np.float32)
    attrs = {"sorted": sorted_} | ({} if axis is None else {"axis": axis})
    check("Unique", {"x": x}, monkeypatch, n_out=4, **attrs)


@pytest.mark.parametrize("center", [0, 1])
@pytest.mark.parametrize("params", [(3, 0.5, None), (10, 0.3, 0.2), (1, 0.0, None), (0, 0.5, None)])
def test_non_max_suppression(center, params, monkeypatch):
    limit, iou, score = params
    corner = RNG.uniform(0, 10, (2, 8, 2)).astype(np.float32)
    boxes = np.concatenate([corner, corner + RNG.uniform(1, 4, (2, 8, 2)).astype(np.float32)], -1)
    scores = RNG.uniform(0, 1, (2, 3, 8)).astype(np.float32)
    consts = {"max": np.array([limit], np.int64), "iou": np.array([iou], np.float32)}
    if score is not None:
        consts["score"] = np.array([score], np.float32)
    check("NonMaxSuppression", {"boxes": boxes, "scores": scores}, monkeypatch, consts=consts,
          center_point_box=center)


# -- tensor_scatter (KV-cache update, opset 24) ------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["linear", "circular"])
@pytest.mark.parametrize("axis, with_indices", [(-2, True), (2, False), (1, True)])
def test_tensor_scatter(mode, axis, with_indices, monkeypatch):
    past = RNG.standard_normal((2, 3, 5, 4)).astype(np.float32)
    shape = list(past.shape)
    shape[axis] = 2
    feeds = {"past": past, "update": RNG.standard_normal(shape).astype(np.float32)}
    if with_indices:
        # 2 slots from 1 always fit; from 4 they wrap in circular mode (linear mode must not overflow).
        feeds["write"] = np.array([1, 4 if mode == "circular" else 0], np.int64)
    check("TensorScatter", feeds, monkeypatch, opset=24, axis=axis, mode=mode)
