"""ONNX MatMul / Gemm / Einsum through clawdbot, compared with onnxruntime on one-node models: batched and
broadcast matmul incl. the 1-D promotions, every Gemm attribute and bias shape (opsets 9 and 13), and
einsum equations with implicit outputs, ellipses, diagonals and reductions."""
from __future__ import annotations

from functools import partial

import numpy as np
import pytest
from claw_testing import assert_matches_ort, one_node_model, rand

RNG = np.random.default_rng(0)
model = partial(one_node_model, opset=13)
check = partial(assert_matches_ort, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("a,b", [((13, 7), (7, 1)), ((3, 1, 4, 5), (2, 5, 3)), ((7,), (7, 13)), ((2, 3, 7), (7,)),
                                 ((7,), (7,)), ((1, 7), (3, 7, 2)), ((5, 2, 3), (5, 3, 4))])
@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int64"])
def test_matmul(a, b, dtype):
    feeds = {"a": rand(RNG, a, dtype, -3, 3), "b": rand(RNG, b, dtype, -3, 3)}
    check(model("MatMul", feeds), feeds)


def test_matmul_constant_weight():
    x = rand(RNG, (4, 13), lo=-3, hi=3)
    check(model("MatMul", {"x": x}, {"w": rand(RNG, (13, 7), lo=-3, hi=3)}), {"x": x})


@pytest.mark.parametrize("bias", [None, (), (1,), (7,), (1, 7), (13, 1), (13, 7)])
@pytest.mark.parametrize("trans_a,trans_b", [(0, 0), (1, 0), (0, 1), (1, 1)])
def test_gemm(bias, trans_a, trans_b):
    a = rand(RNG, (5, 13) if trans_a else (13, 5), lo=-3, hi=3)
    b = rand(RNG, (7, 5) if trans_b else (5, 7), lo=-3, hi=3)
    feeds = {"a": a, "b": b} | ({} if bias is None else {"c": rand(RNG, bias, lo=-3, hi=3)})
    check(model("Gemm", feeds, alpha=0.75, beta=-1.5, transA=trans_a, transB=trans_b), feeds)


@pytest.mark.parametrize("opset", [9, 11, 13])
def test_gemm_opsets_and_constant_weights(opset):
    x = rand(RNG, (1, 13), lo=-3, hi=3)
    consts = {"w": rand(RNG, (7, 13), lo=-3, hi=3), "c": rand(RNG, (7,), lo=-3, hi=3)}
    check(model("Gemm", {"x": x}, consts, opset=opset, transB=1), {"x": x})


def test_gemm_integer():
    # onnxruntime has no integer Gemm: the oracle is its float64 Gemm on the same (small, exact) values.
    feeds = {"a": rand(RNG, (3, 4), "int32", -3, 3), "b": rand(RNG, (4, 5), "int32", -3, 3),
             "c": rand(RNG, (5,), "int32", -3, 3)}
    check(model("Gemm", feeds), feeds, rtol=0, atol=0, cast_for_ort=("int32", "float64"))


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
def test_einsum(equation, shapes):
    feeds = {f"x{i}": rand(RNG, s, lo=-3, hi=3) for i, s in enumerate(shapes)}
    check(model("Einsum", feeds, opset=12, equation=equation), feeds, rtol=1e-4)


def test_einsum_float64_and_int():
    for dtype in ("float64", "int64"):
        feeds = {"a": rand(RNG, (3, 4), dtype, -3, 3), "b": rand(RNG, (4, 2), dtype, -3, 3)}
        check(model("Einsum", feeds, opset=12, equation="ij,jk->ik"), feeds)
