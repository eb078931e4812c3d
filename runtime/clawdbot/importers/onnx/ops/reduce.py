"""ONNX -> claw: reductions, ArgMax/ArgMin, CumSum, CumProd, TopK.

Opset history folded into one claw form:
- Reduce*: `axes` was an attribute until opset 13 (ReduceSum) / 18 (the others), then an optional input; the
  attribute becomes a constant int64 input. `noop_with_empty_axes` exists only with the input form.
- ArgMax/ArgMin: `select_last_index` appears in opset 12 (absent means False).
- TopK: `k` is an attribute before opset 10, then an input; `largest`/`sorted` appear in opset 11.
- CumSum, CumProd: the axis input may be int32; the claw ops take int64.
"""
from __future__ import annotations

import numpy as np

from .elementwise import cast_to

_REDUCE = {"ReduceSum": "reduce_sum", "ReduceMean": "reduce_mean", "ReduceMax": "reduce_max",
           "ReduceMin": "reduce_min", "ReduceProd": "reduce_prod", "ReduceL1": "reduce_l1",
           "ReduceL2": "reduce_l2", "ReduceSumSquare": "reduce_sum_square", "ReduceLogSum": "reduce_log_sum",
           "ReduceLogSumExp": "reduce_log_sum_exp"}


def _reduce_attr_axes(op: str):
    """Reduce* with `axes` as an attribute (absent: every axis)."""
    def handler(b, n):
        ins = [n.inputs[0]]
        axes = n.attr("axes")
        if axes is not None:
            ins.append(b.const(np.array(axes, dtype=np.int64), "axes"))
        b.emit(op, ins, n.outputs, keepdims=bool(n.attr("keepdims", 1)))
    handler.__name__ = f"onnx_to_{op}_axes_attr"
    return handler


def _reduce_input_axes(op: str):
    """Reduce* with `axes` as an optional input."""
    def handler(b, n):
        ins = [n.inputs[0]] + ([n.input(1)] if n.has_input(1) else [])
        b.emit(op, ins, n.outputs, keepdims=bool(n.attr("keepdims", 1)),
               noop_with_empty_axes=bool(n.attr("noop_with_empty_axes", 0)))
    handler.__name__ = f"onnx_to_{op}_axes_input"
    return handler


def _arg(op: str):
    def handler(b, n):
        b.emit(op, n.inputs[:1], n.outputs, axis=int(n.attr("axis", 0)), keepdims=bool(n.attr("keepdims", 1)),
               select_last_index=bool(n.attr("select_last_index", 0)))
    handler.__name__ = f"onnx_to_{op}"
    return handler


def _scan(op: str):
    def handler(b, n):
        axis = cast_to(b, n.inputs[1], "int64")
        b.emit(op, [n.inputs[0], axis], n.outputs, exclusive=bool(n.attr("exclusive", 0)),
               reverse=bool(n.attr("reverse", 0)))
    handler.__name__ = f"onnx_to_{op}"
    return handler


def _topk(b, n, k: str):
    b.emit("topk", [n.inputs[0], k], n.outputs, axis=int(n.attr("axis", -1)),
           largest=bool(n.attr("largest", 1)), sorted=bool(n.attr("sorted", 1)))


def topk_1(b, n):
    _topk(b, n, b.const(np.array([n.attr("k")], dtype=np.int64), "k"))


def topk_10(b, n):
    _topk(b, n, n.inputs[1])


def register(reg):
    for onnx_op, op in _REDUCE.items():
        reg.insert(onnx_op, _reduce_attr_axes(op), since=1)
        reg.insert(onnx_op, _reduce_input_axes(op), since=13 if onnx_op == "ReduceSum" else 18)
    reg.insert("ArgMax", _arg("argmax"))
    reg.insert("ArgMin", _arg("argmin"))
    reg.insert("CumSum", _scan("cumsum"), since=11)
    reg.insert("CumProd", _scan("cumprod"), since=26)
    reg.insert("TopK", topk_1, since=1)
    reg.insert("TopK", topk_10, since=10)
