"""ONNX indexing ops (gathers, scatters, OneHot, NonZero, Trilu, Unique, NonMaxSuppression) through clawdbot,
compared with onnxruntime on one-node models: negative indices, int32/int64 indices, every scatter reduction,
batch_dims, and the deprecated Scatter.

conftest.py sets CLAWDBOT_CHECK=1 (each kernel's output is checked against inference); the helper asserts that
it is on.
"""
from __future__ import annotations

from functools import partial

import numpy as np
import pytest
from claw_testing import assert_matches_ort, one_node_model

RNG = np.random.default_rng(0)
model = partial(one_node_model, opset=18, ir_version=9)


def check(op, inputs: dict, consts=None, **kwargs) -> None:
    """`op` on graph inputs `inputs` (and initializers `consts`) gives exactly onnxruntime's outputs: indexing
    moves values without arithmetic."""
    assert_matches_ort(model(op, inputs, consts, **kwargs), inputs)


X = RNG.standard_normal((3, 4, 5)).astype(np.float32)


def indices(shape, dim, dtype="int64") -> np.ndarray:
    """Random valid indices into an axis of length `dim`, negative ones included."""
    return RNG.integers(-dim, dim, shape).astype(dtype)


# -- gathers ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("axis", [0, 1, 2, -1])
@pytest.mark.parametrize("idx_shape", [(), (2,), (2, 3)])
@pytest.mark.parametrize("idx_dtype", ["int64", "int32"])
def test_gather(axis, idx_shape, idx_dtype):
    idx = indices(idx_shape, X.shape[axis], idx_dtype)
    check("Gather", {"x": X}, consts={"idx": idx}, axis=axis)


def test_gather_runtime_indices_int():
    x = RNG.integers(-50, 50, (6, 2)).astype(np.int32)
    check("Gather", {"x": x, "idx": indices((4,), 6)})


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_gather_elements(axis):
    shape = list(X.shape)
    shape[axis] = 2
    check("GatherElements", {"x": X, "idx": indices(shape, X.shape[axis], "int32")}, axis=axis)


@pytest.mark.parametrize("batch_dims, idx_shape", [(0, (2, 1)), (0, (4, 2)), (0, (2, 2, 3)), (1, (3, 2, 1)),
                                                   (1, (3, 2)), (2, (3, 4, 1))])
def test_gather_nd(batch_dims, idx_shape):
    k = idx_shape[-1]
    idx = np.stack([RNG.integers(0, X.shape[batch_dims + j], idx_shape[:-1]) for j in range(k)], -1)
    if batch_dims == 1:
        idx = np.broadcast_to(idx, idx_shape).copy()
    check("GatherND", {"x": X}, consts={"idx": idx.astype(np.int64)}, batch_dims=batch_dims)


# -- scatters --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("reduction", ["none", "add", "mul", "max", "min"])
@pytest.mark.parametrize("axis", [0, -1])
def test_scatter_elements(reduction, axis):
    shape = list(X.shape)
    shape[axis] = 2
    if reduction == "none":  # distinct targets: with duplicates, which update wins is unspecified
        along = [1] * X.ndim
        along[axis] = 2
        idx = np.broadcast_to(np.array([-1, 0]).reshape(along), shape).astype(np.int64)
    else:
        idx = indices(shape, X.shape[axis])
    upd = RNG.standard_normal(shape).astype(np.float32)
    check("ScatterElements", {"x": X, "idx": idx, "upd": upd}, axis=axis, reduction=reduction)


@pytest.mark.parametrize("opset", [9, 10])
def test_deprecated_scatter(opset):
    idx = np.array([[1, 0, 2, 3, 4], [0, 2, 1, 4, 3]], np.int64)
    x = RNG.standard_normal((4, 5)).astype(np.float32)
    upd = RNG.standard_normal((2, 5)).astype(np.float32)
    check("Scatter", {"x": x, "idx": idx, "upd": upd}, opset=opset, axis=1)


@pytest.mark.parametrize("reduction", ["none", "add", "mul", "max", "min"])
@pytest.mark.parametrize("idx", [[[1], [-3]], [[0, 1], [2, 3]], [[1, 2, 0]]])
def test_scatter_nd(reduction, idx):
    idx = np.array(idx, np.int64)
    upd = RNG.standard_normal(idx.shape[:-1] + X.shape[idx.shape[-1]:]).astype(np.float32)
    if reduction != "none" and idx.shape[0] == 2:
        idx = np.concatenate([idx[:1], idx[:1]])  # repeated targets: each update must contribute
    if reduction == "none" and idx.shape[-1] == 1:
        idx = np.array([[1], [-1]], np.int64)
    check("ScatterND", {"x": X, "idx": idx, "upd": upd}, reduction=reduction)


# -- one_hot / non_zero / trilu -------------------------------------------------------------------------------
@pytest.mark.parametrize("axis", [-1, 0, 1, -2])
@pytest.mark.parametrize("idx_dtype", ["int64", "int32", "float32"])
def test_one_hot(axis, idx_dtype):
    idx = np.array([[0, 3, -1], [7, -5, 2]]).astype(idx_dtype)  # 7 and -5 are out of range for depth 5
    # onnxruntime implements only some index/depth dtype pairs; matching ones are among them.
    consts = {"depth": np.array([5], idx_dtype), "values": np.array([-1, 4], np.float32)}
    check("OneHot", {"idx": idx}, consts=consts, axis=axis)


@pytest.mark.parametrize("shape", [(5,), (3, 4), (2, 3, 2)])
@pytest.mark.parametrize("dtype", ["float32", "int32", "bool"])
def test_non_zero(shape, dtype):
    x = (RNG.integers(-1, 2, shape)).astype(dtype)
    check("NonZero", {"x": x})


@pytest.mark.parametrize("upper", [0, 1])
@pytest.mark.parametrize("k", [None, 0, 2, -1, -9])
@pytest.mark.parametrize("shape", [(4, 4), (2, 3, 5), (5, 2)])
def test_trilu(upper, k, shape):
    x = RNG.integers(1, 9, shape).astype(np.int64)
    check("Trilu", {"x": x}, consts=None if k is None else {"k": np.array(k, np.int64)},
          upper=upper)


# -- unique / non_max_suppression -----------------------------------------------------------------------------
@pytest.mark.parametrize("axis", [None, 0, 1, -1])
@pytest.mark.parametrize("sorted_", [1, 0])
def test_unique(axis, sorted_):
    x = np.array([[2, 1, 2], [0, 3, 0], [2, 1, 2], [5, 5, 5]], np.float32)
    attrs = {"sorted": sorted_} | ({} if axis is None else {"axis": axis})
    check("Unique", {"x": x}, n_out=4, **attrs)


@pytest.mark.parametrize("center", [0, 1])
@pytest.mark.parametrize("params", [(3, 0.5, None), (10, 0.3, 0.2), (1, 0.0, None), (0, 0.5, None)])
def test_non_max_suppression(center, params):
    limit, iou, score = params
    corner = RNG.uniform(0, 10, (2, 8, 2)).astype(np.float32)
    boxes = np.concatenate([corner, corner + RNG.uniform(1, 4, (2, 8, 2)).astype(np.float32)], -1)
    scores = RNG.uniform(0, 1, (2, 3, 8)).astype(np.float32)
    consts = {"max": np.array([limit], np.int64), "iou": np.array([iou], np.float32)}
    if score is not None:
        consts["score"] = np.array([score], np.float32)
    check("NonMaxSuppression", {"boxes": boxes, "scores": scores}, consts=consts,
          center_point_box=center)


# -- tensor_scatter (KV-cache update, opset 24) ------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["linear", "circular"])
@pytest.mark.parametrize("axis, with_indices", [(-2, True), (2, False), (1, True)])
def test_tensor_scatter(mode, axis, with_indices):
    past = RNG.standard_normal((2, 3, 5, 4)).astype(np.float32)
    shape = list(past.shape)
    shape[axis] = 2
    feeds = {"past": past, "update": RNG.standard_normal(shape).astype(np.float32)}
    if with_indices:
        # 2 slots from 1 always fit; from 4 they wrap in circular mode (linear mode must not overflow).
        feeds["write"] = np.array([1, 4 if mode == "circular" else 0], np.int64)
    check("TensorScatter", feeds, opset=24, axis=axis, mode=mode)
