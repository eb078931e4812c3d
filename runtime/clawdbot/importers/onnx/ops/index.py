"""ONNX -> claw: gathers, scatters (incl. the KV-cache TensorScatter) and other index-driven ops."""
from __future__ import annotations

import numpy as np

from ..builder import Unsupported


def _trim(ins):
    ins = list(ins)
    while ins and not ins[-1]:
        ins.pop()
    return ins


def gather(b, n):
    b.emit("gather", [n.input(0), n.input(1)], n.outputs, axis=n.attr("axis", 0))


def gather_elements(b, n):
    b.emit("gather_elements", [n.input(0), n.input(1)], n.outputs, axis=n.attr("axis", 0))


def gather_nd(b, n):
    b.emit("gather_nd", [n.input(0), n.input(1)], n.outputs, batch_dims=n.attr("batch_dims", 0))


def scatter_elements(b, n):
    """ScatterElements, and the deprecated Scatter (9..10) that it renamed."""
    b.emit("scatter_elements", n.inputs[:3], n.outputs, axis=n.attr("axis", 0),
           reduction=n.attr("reduction", "none"))


def scatter_nd(b, n):
    b.emit("scatter_nd", n.inputs[:3], n.outputs, reduction=n.attr("reduction", "none"))


def one_hot(b, n):
    b.emit("one_hot", n.inputs[:3], n.outputs, axis=n.attr("axis", -1))


def non_zero(b, n):
    b.emit("non_zero", [n.input(0)], n.outputs)


def trilu(b, n):
    b.emit("trilu", _trim([n.input(0), n.input(1)]), n.outputs, upper=bool(n.attr("upper", 1)))


def unique(b, n):
    x, axis = n.input(0), n.attr("axis")
    if axis is None:  # no axis: unique elements of the flattened input
        x = b.emit1("reshape", [x, b.const(np.array([-1], np.int64), "flat")])
        axis = 0
    b.emit("unique", [x], _trim(n.outputs), axis=axis, sorted=bool(n.attr("sorted", 1)))


def non_max_suppression(b, n):
    if b.dtype(n.input(0)) != "float32":
        raise Unsupported("NonMaxSuppression needs float32 boxes and scores")
    b.emit("non_max_suppression", _trim(n.inputs[:5]), n.outputs,
           center_point_box=bool(n.attr("center_point_box", 0)))


def tensor_scatter(b, n):
    b.emit("tensor_scatter", _trim(n.inputs[:3]), n.outputs, axis=n.attr("axis", -2),
           mode=n.attr("mode", "linear"))


def register(reg):
    reg.insert("Gather", gather)
    reg.insert("GatherElements", gather_elements, since=11)
    reg.insert("GatherND", gather_nd, since=11)
    reg.insert("Scatter", scatter_elements, since=9)
    reg.insert("ScatterElements", scatter_elements, since=11)
    reg.insert("ScatterND", scatter_nd, since=11)
    reg.insert("OneHot", one_hot, since=9)
    reg.insert("NonZero", non_zero, since=9)
    reg.insert("Trilu", trilu, since=14)
    reg.insert("Unique", unique, since=11)
    reg.insert("NonMaxSuppression", non_max_suppression, since=10)
    reg.insert("TensorScatter", tensor_scatter, since=24)
