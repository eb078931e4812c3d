"""ONNX normalisation ops through clawdbot, compared with onnxruntime on one-node models: BatchNormalization
(opsets 9/15, 2-D to 5-D inputs, float16/float64), InstanceNormalization, LayerNormalization (every axis, with
and without bias, the optional mean / inv_std_dev outputs), GroupNormalization (opset 18 per-group and opset
21 per-channel parameters), RMSNormalization, MeanVarianceNormalization, LRN and LpNormalization; and the
training-mode BatchNormalization clawdbot refuses."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from claw_testing import ort_run
from onnx import helper, numpy_helper

from clawdbot.errors import UnsupportedOpsError
from clawdbot.importers.onnx import import_onnx
from clawdbot.session import Session

RNG = np.random.default_rng(0)


def model(op: str, inputs: dict, consts: dict | None = None, *, n_out: int = 1, opset: int = 17,
          **attrs) -> onnx.ModelProto:
    """One node reading `inputs` (graph inputs) then `consts` (initializers; None: omitted)."""
    consts = consts or {}
    names = [*inputs, *(n if v is not None else "" for n, v in consts.items())]
    node = helper.make_node(op, names, [f"y{i}" for i in range(n_out)], **attrs)
    graph = helper.make_graph(
        [node], op,
        [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
         for n, v in inputs.items()],
        [helper.make_value_info(f"y{i}", onnx.TypeProto()) for i in range(n_out)],
        [numpy_helper.from_array(v, n) for n, v in consts.items() if v is not None])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def check(m: onnx.ModelProto, feeds: dict, monkeypatch, rtol: float = 1e-4, atol: float = 1e-5) -> None:
    monkeypatch.setenv("CLAWDBOT_CHECK", "1")
    ref = ort_run(m, feeds)
    ours = Session(import_onnx(m)).run(feeds)
    for r, (name, o) in zip(ref, ours.items()):
        assert o.dtype == r.dtype and o.shape == r.shape, f"{name}: {o.dtype}{o.shape} vs ORT {r.dtype}{r.shape}"
        np.testing.assert_allclose(o, r, rtol=rtol, atol=atol, err_msg=name)


def rand(*shape, dtype="float32", lo=None):
    x = RNG.standard_normal(shape) if lo is None else RNG.uniform(lo, lo + 1, shape)
    return x.astype(dtype)


def tol(dtype) -> dict:
    return {"rtol": 5e-3, "atol": 5e-3} if dtype == "float16" else {}


@pytest.mark.parametrize("x_shape", [(3, 5), (2, 5, 7), (2, 5, 13, 7), (1, 5, 3, 4, 2)])
@pytest.mark.parametrize("opset", [9, 15])
def test_batch_norm(x_shape, opset, monkeypatch):
    c = x_shape[1]
    params = {"scale": rand(c), "bias": rand(c), "mean": rand(c), "var": rand(c, lo=0.5)}
    x = rand(*x_shape)
    check(model("BatchNormalization", {"x": x}, params, opset=opset, epsilon=1e-3), {"x": x}, monkeypatch)


@pytest.mark.parametrize("dtype", ["float16", "float64"])
def test_batch_norm_dtypes_runtime_params(dtype, monkeypatch):
    feeds = {"x": rand(2, 3, 5, 4, dtype=dtype), "scale": rand(3, dtype=dtype), "bias": rand(3, dtype=dtype),
             "mean": rand(3, dtype=dtype), "var": rand(3, dtype=dtype, lo=0.5)}
    check(model("BatchNormalization", feeds, opset=15), feeds, monkeypatch, **tol(dtype))


def test_batch_norm_training_mode_is_unsupported():
    x = rand(2, 3, 4)
    params = {"scale": rand(3), "bias": rand(3), "mean": rand(3), "var": rand(3, lo=0.5)}
    with pytest.raises(UnsupportedOpsError, match="BatchNormalization"):
        import_onnx(model("BatchNormalization", {"x": x}, params, n_out=3, opset=15, training_mode=1))


@pytest.mark.parametrize("x_shape", [(2, 3, 13), (2, 3, 13, 7), (1, 2, 3, 4, 5)])
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_instance_norm(x_shape, dtype, monkeypatch):
    feeds = {"x": rand(*x_shape, dtype=dtype), "scale": rand(x_shape[1], dtype=dtype),
             "bias": rand(x_shape[1], dtype=dtype)}
    check(model("InstanceNormalization", feeds, epsilon=1e-4), feeds, monkeypatch, **tol(dtype))


@pytest.mark.parametrize("axis", [-1, -2, 1, 0])
@pytest.mark.parametrize("with_bias", [False, True])
def test_layer_norm(axis, with_bias, monkeypatch):
    x_shape = (2, 3, 13, 7)
    tail = x_shape[axis % 4:]
    feeds = {"x": rand(*x_shape), "scale": rand(*tail)} | ({"bias": rand(*tail)} if with_bias else {})
    check(model("LayerNormalization", feeds, n_out=3, axis=axis, epsilon=1e-3), feeds, monkeypatch)


def test_layer_norm_broadcast_scale_and_float64(monkeypatch):
    x = rand(4, 13, 7, dtype="float64")
    consts = {"scale": rand(7, dtype="float64"), "bias": rand(1, dtype="float64")}
    check(model("LayerNormalization", {"x": x}, consts, axis=-2), {"x": x}, monkeypatch)


@pytest.mark.parametrize("opset,per_group", [(18, True), (21, False)])
@pytest.mark.parametrize("groups", [1, 2, 6])
def test_group_norm(opset, per_group, groups, monkeypatch):
    c = 6
    n_params = groups if per_group else c
    feeds = {"x": rand(2, c, 5, 3), "scale": rand(n_params), "bias": rand(n_params)}
    check(model("GroupNormalization", feeds, opset=opset, num_groups=groups, epsilon=1e-3), feeds, monkeypatch)


@pytest.mark.parametrize("axis", [-1, 1, 0])
def test_rms_norm(axis, monkeypatch):
    x_shape = (2, 3, 13, 7)
    feeds = {"x": rand(*x_shape), "scale": rand(*x_shape[axis % 4:])}
    check(model("RMSNormalization", feeds, opset=23, axis=axis, epsilon=1e-3), feeds, monkeypatch)


@pytest.mark.parametrize("axes", [None, [1], [0, 1, 2, 3], [2, 3]])
def test_mean_variance_norm(axes, monkeypatch):
    x = rand(2, 3, 13, 7)
    attrs = {} if axes is None else {"axes": axes}
    check(model("MeanVarianceNormalization", {"x": x}, opset=13, **attrs), {"x": x}, monkeypatch)


# onnxruntime's LRN takes odd sizes on 4-D inputs only.
@pytest.mark.parametrize("size", [1, 3, 5])
@pytest.mark.parametrize("x_shape", [(2, 7, 13, 3), (1, 2, 5, 1)])
def test_lrn(size, x_shape, monkeypatch):
    x = rand(*x_shape)
    check(model("LRN", {"x": x}, size=size, alpha=1e-2, beta=0.6, bias=1.5), {"x": x}, monkeypatch)


@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_lp_norm(p, axis, monkeypatch):
    x = rand(3, 13, 7)
    x[0, 0] = 0  # a zero vector along the last axis
    check(model("LpNormalization", {"x": x}, p=p, axis=axis), {"x": x}, monkeypatch)
