"""ONNX -> claw: pooling (MaxPool, AveragePool, LpPool and their Global forms), all opsets."""
from __future__ import annotations

from ..builder import Unsupported
from .conv import spatial_sizes, window_attrs


def _window(b, n) -> dict:
    kernel = [int(k) for k in n.attr("kernel_shape", None) or []]
    if not kernel:
        raise Unsupported("kernel_shape is required")
    attrs = window_attrs(n, kernel, spatial_sizes(b, n.input(0), len(kernel)))
    return {"kernel_shape": kernel, "ceil_mode": bool(n.attr("ceil_mode", 0)), **attrs}


def max_pool(b, n):
    b.emit("max_pool", [n.input(0)], n.outputs, storage_order=int(n.attr("storage_order", 0)), **_window(b, n))


def avg_pool(b, n):
    b.emit("avg_pool", [n.input(0)], n.outputs, count_include_pad=bool(n.attr("count_include_pad", 0)),
           **_window(b, n))


def _p(n) -> int:
    p = n.attr("p", 2)
    if float(p) != int(p):  # LpPool-1 declared p as a float
        raise Unsupported(f"non-integer p {p}")
    return int(p)


def lp_pool(b, n):
    b.emit("lp_pool", [n.input(0)], n.outputs, p=_p(n), **_window(b, n))


def global_avg_pool(b, n):
    b.emit("global_avg_pool", [n.input(0)], n.outputs)


def global_max_pool(b, n):
    b.emit("global_max_pool", [n.input(0)], n.outputs)


def global_lp_pool(b, n):
    b.emit("global_lp_pool", [n.input(0)], n.outputs, p=_p(n))


def register(reg):
    reg.insert("MaxPool", max_pool, since=1)
    reg.insert("AveragePool", avg_pool, since=1)
    reg.insert("LpPool", lp_pool, since=1)
    reg.insert("GlobalAveragePool", global_avg_pool, since=1)
    reg.insert("GlobalMaxPool", global_max_pool, since=1)
    reg.insert("GlobalLpPool", global_lp_pool, since=1)
