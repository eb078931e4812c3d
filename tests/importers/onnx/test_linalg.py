"""ONNX MatMul / Gemm / Einsum through clawdbot, compared with onnxruntime on one-node models: batched and
broadcast matmul incl. the 1-D promotions, every Gemm attribute and bias shape (opsets 9 and 13), and
einsum equations with implicit outputs, ellipses, diagonals and reductions."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from claw_testing import ort_run
from onnx import helper, numpy_helper

from clawdbot.importers.onnx import import_onnx
from clawdbot.session import Session

RNG = np.random.default_rng(0)


def model(op: str, inputs: dict, consts: dict | None = None, opset: int = 13, **attrs) -> onnx.ModelProto:
    """One node reading `inputs` (graph inputs) then `consts` (initializers)."""
    consts = consts or {}
    node = helper.make_node(op, [*inputs, *consts], ["y"], **attrs)
    graph = helper.make_graph(
        [node], op,
        [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
         for n, v in inputs.items()],
        [helper.make_value_info("y", onnx.TypeProto())],
        [numpy_helper.from_array(v, n) for n, v in consts.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def check(m: onnx.ModelProto, feeds: dict, monkeypatch, rtol: float = 1e-5, atol: float = 1e-5) -> None:
    monkeypatch.setenv("CLAWDBOT_CHECK", "1")
    ref = ort_run(m, feeds)
    ours = Session(import_onnx(m)).run(feeds)
    for r, (name, o) in zip(ref, ours.items()):
        assert o.dtype == r.dtype and o.shape == r.shape, f"{name}: {o.dtype}{o.shape} vs ORT {r.dtype}{r.shape}"
        np.testing.assert_allclose(o, r, rtol=rtol, atol=atol, err_msg=name)


def rand(shape, dtype="float32"):
    x = RNG.uniform(-3, 3, shape)
    return x.astype(dtype) if np.dtype(dtype).kind == "f" else np.round(x).astype(dtype)


@pytest.mark.parametrize("a,b", [((13, 7), (7, 1)), ((3, 1, 4, 5), (2, 5, 3)), ((7,), (7, 13)), ((2, 3, 7), (7,)),
                                 ((7,), (7,)), ((1, 7), (3, 7, 2)), ((5, 2, 3), (5, 3, 4))])
@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int64"])
def test_matmul(a, b, dtype, monkeypatch):
    feeds = {"a": rand(a, dtype), "b": rand(b, dtype)}
    check(model("MatMul", feeds), feeds, monkeypatch)


def test_matmul_constant_weight(monkeypatch):
    x = rand((4, 13))
    check(model("MatMul", {"x": x}, {"w": rand((13, 7))}), {"x": x}, monkeypatch)


@pytest.mark.parametrize("bias", [None, (), (1,), (7,), (1, 7), (13, 1), (13, 7)])
@pytest.mark.parametrize("trans_a,trans_b", [(0, 0), (1, 0), (0, 1), (1, 1)])
def test_gemm(bias, trans_a, trans_b, monkeypatch):
    a = rand((5, 13) if trans_a else (13, 5))
    b = rand((7, 5) if trans_b else (5, 7))
    feeds = {"a": a, "b": b} | ({} if bias is None else {"c": rand(bias)})
    check(model("Gemm", feeds, alpha=0.75, beta=-1.5, transA=trans_a, transB=trans_b), feeds, monkeypatch)


@pytest.mark.parametrize("opset", [9, 11, 13])
def test_gemm_opsets_and_constant_weights(opset, monkeypatch):
    x = rand((1, 13))
    consts = {"w": rand((7, 13)), "c": rand((7,))}
    check(model("Gemm", {"x": x}, consts, opset=opset, transB=1), {"x": x}, monkeypatch)


def test_gemm_integer(monkeypatch):
    # onnxruntime has no integer Gemm: the oracle is its float64 Gemm on the same (small, exact) values.
    monkeypatch.setenv("CLAWDBOT_CHECK", "1")
    feeds = {"a": rand((3, 4), "int32"), "b": rand((4, 5), "int32"), "c": rand((5,), "int32")}
    ref = ort_run(model("Gemm", {k: v.astype(np.float64) for k, v in feeds.items()}, transB=0),
                  {k: v.astype(np.float64) for k, v in feeds.items()})[0]
    ours = Session(import_onnx(model("Gemm", feeds))).run(feeds)["y"]
    assert ours.dtype == np.int32
    np.testing.assert_array_equal(ours, ref.astype(np.int32))


@pytest.mark.parametrize("equation,shapes", [
    ("ij,jk->ik", [(3, 4), (4, 5)]),
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("ij,jk", [(3, 4), (4, 5)]),                 # implicit output
    ("ij->ji", [(3, 4)]),
    ("ij->i", [(3, 4)]),
    ("ii->i", [(4, 4)]),
    ("...ii->...i", [(2, 3, 5, 5)]),
    ("i,i", [(7,), (7,)]),
    ("i,j->ij", [(3,), (5,)]),
    ("...ij,...jk->...ik", [(2, 1, 3, 4), (1, 5, 4, 2)]),
    ("bhqd, bhkd -> bhqk", [(1, 2, 3, 4), (1, 2, 5, 4)]),
    ("abc,cd,de->ae", [(2, 3, 4), (4, 5), (5, 6)]),
    ("->", [()]),
])
def test_einsum(equation, shapes, monkeypatch):
    feeds = {f"x{i}": rand(s) for i, s in enumerate(shapes)}
    check(model("Einsum", feeds, opset=12, equation=equation), feeds, monkeypatch, rtol=1e-4)


def test_einsum_float64_and_int(monkeypatch):
    for dtype in ("float64", "int64"):
        feeds = {"a": rand((3, 4), dtype), "b": rand((4, 2), dtype)}
        check(model("Einsum", feeds, opset=12, equation="ij,jk->ik"), feeds, monkeypatch)
