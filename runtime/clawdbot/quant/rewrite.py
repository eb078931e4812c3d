"""Weight-only quantization as a pass, graph -> graph: matmul, gemm, conv and gather nodes whose weight is a
constant become matmul_wq, conv_wq and gather_wq (ir/ops/wquant.py) with int8 or int4 weights.

Every value keeps its name (a gemm becomes a matmul_wq into a new value plus an add into the gemm's output),
so the quantized model has the fp32 model's inputs and outputs and its intermediates can be compared one for
one (report.py). Weights too small to be worth a scale per group, and nodes the user keeps in fp32, stay.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import ClawError
from ..ir.graph import Graph, Node, TensorType
from .weights import QuantizedMatrix, quantize_rows


@dataclass(frozen=True)
class QuantOptions:
    bits: int = 8
    group_size: int = 0            # 0: per row (output channel) for int8; int4 defaults to 64
    keep_fp32: tuple[str, ...] = ()  # node names (or output names) left in fp32
    min_elements: int = 1024       # smaller weights stay fp32: their scales would cost more than they save
    dynamic: bool = True           # 8-bit matmul/gemm: quantize activations on the fly, int8 x int8 -> int32
    ops: tuple[str, ...] = ("matmul", "gemm", "conv", "gather")

    def __post_init__(self):
        if self.bits not in (8, 4):
            raise ClawError(f"quantization bits must be 8 or 4, got {self.bits!r}")
        if self.group_size < 0:
            raise ClawError(f"group_size must be >= 0, got {self.group_size}")

    @property
    def group(self) -> int:
        return self.group_size or (64 if self.bits == 4 else 0)


@dataclass
class RewriteResult:
    graph: Graph
    quantized: list[str] = field(default_factory=list)        # nodes rewritten
    kept: dict[str, str] = field(default_factory=dict)        # node -> why it stayed fp32


def quantize_weights(graph: Graph, options: QuantOptions) -> RewriteResult:
    """A new graph with the eligible nodes' weights quantized; `graph` is not changed."""
    known = {n.name for n in graph.nodes} | {o for n in graph.nodes for o in n.outputs}
    unknown = [k for k in options.keep_fp32 if k not in known]
    if unknown:
        raise ClawError(f"keep_fp32 names no node or value of this model: {', '.join(unknown)}")
    consts = dict(graph.constants)
    types = dict(graph.types)
    users: dict[str, int] = {}
    for n in graph.nodes:
        for i in n.inputs:
            users[i] = users.get(i, 0) + 1
    result = RewriteResult(graph)
    nodes: list[Node] = []
    for node in graph.nodes:
        label = node.name or node.outputs[0]
        why = _ineligible(node, graph, options)
        if why:
            if node.op in options.ops:
                result.kept[label] = why
            nodes.append(node)
            continue
        new = _REWRITES[node.op](node, graph, options, consts, types)
        nodes.extend(new)
        result.quantized.append(label)
        w = node.inputs[0] if node.op == "gather" else node.inputs[1]
        users[w] -= 1
        if users[w] == 0 and w not in graph.outputs:
            consts.pop(w, None)   # no fp32 copy of a weight nothing reads any more
            types.pop(w, None)
    result.graph = Graph(graph.name, list(graph.inputs), list(graph.outputs), nodes, consts, types,
                         {**graph.metadata, "quantization": {"bits": options.bits, "group_size": options.group,
                                                             "weights": "weight-only"}})
    return result


def _ineligible(node: Node, graph: Graph, options: QuantOptions) -> str | None:
    if node.op not in options.ops:
        return "not a quantizable op"
    if node.name in options.keep_fp32 or any(o in options.keep_fp32 for o in node.outputs):
        return "kept in fp32 (--keep-fp32)"
    w_name = node.inputs[0] if node.op == "gather" else node.inputs[1]
    w = graph.constants.get(w_name)
    if w is None:
        return "its weight is computed at run time"
    if w.dtype != np.float32:
        return f"weight is {w.dtype}, not float32"
    if w.size < options.min_elements:
        return f"weight has {w.size} elements (< {options.min_elements})"
    x = node.inputs[1] if node.op == "gather" else node.inputs[0]
    if node.op != "gather" and graph.types.get(x, TensorType("?", None)).dtype != "float32":
        return "input is not float32"
    check = {"matmul": _matmul_ok, "gemm": _gemm_ok, "conv": _conv_ok, "gather": _gather_ok}[node.op]
    return check(node, w, graph)


def _matmul_ok(node, w, graph):
    return None if w.ndim == 2 else f"weight has rank {w.ndim}, not 2"


def _gemm_ok(node, w, graph):
    if node.attrs["trans_a"]:
        return "trans_a gemm"
    return None


def _conv_ok(node, w, graph):
    return None if w.ndim == 4 else f"{w.ndim - 2}-D conv"


def _gather_ok(node, w, graph):
    return None if node.attrs["axis"] == 0 and w.ndim == 2 else "gather not along rows of a 2-D table"


def _add_weight(base: str, m: QuantizedMatrix, consts: dict, types: dict) -> list[str]:
    """Constants for `m`, named after the fp32 weight; returns [q, scale, zero point or '']."""
    names = [f"{base}__q{m.bits}", f"{base}__scale"]
    arrays = [m.q, m.scale]
    if m.zero_point is not None:
        names.append(f"{base}__zp")
        arrays.append(m.zero_point)
    for n, a in zip(names, arrays):
        consts[n] = a
        types[n] = TensorType.of(a)
    return names + ([""] if m.zero_point is None else [])


def _q_attrs(m: QuantizedMatrix) -> dict:
    return {"bits": m.bits, "group_size": m.group_size, "cols": m.cols}


def _mm_attrs(m: QuantizedMatrix, options: QuantOptions) -> dict:
    dynamic = options.dynamic and m.bits == 8 and m.group_size == m.cols
    return {**_q_attrs(m), "activations": "int8" if dynamic else "float"}


def _matmul(node, graph, options, consts, types):
    x, w = node.inputs
    m = quantize_rows(graph.constants[w].T, options.bits, options.group)   # rows = output columns
    q = _add_weight(w, m, consts, types)
    return [Node("matmul_wq", [x, *q[:2]] + ([q[2]] if q[2] else []), list(node.outputs), _mm_attrs(m, options),
                 node.name)]


def _gemm(node, graph, options, consts, types):
    a, w = node.inputs[:2]
    c = node.inputs[2] if len(node.inputs) > 2 else ""
    wt = graph.constants[w]
    rows = wt if node.attrs["trans_b"] else wt.T                     # [N, K]
    m = quantize_rows(rows * np.float32(node.attrs["alpha"]), options.bits, options.group)
    q = _add_weight(w, m, consts, types)
    y = node.outputs[0]
    mm = Node("matmul_wq", [a, *q[:2]] + ([q[2]] if q[2] else []), [y if not c else f"{y}__wq"],
              _mm_attrs(m, options), node.name)
    if not c:
        return [mm]
    types[f"{y}__wq"] = TensorType("float32", graph.types[y].shape)
    beta = node.attrs["beta"]
    if beta != 1.0:
        if c not in graph.constants:
            raise ClawError(f"{node}: gemm with beta {beta} and a computed C is not quantized")
        consts[f"{c}__beta"] = (graph.constants[c] * np.float32(beta)).astype(np.float32)
        types[f"{c}__beta"] = TensorType.of(consts[f"{c}__beta"])
        c = f"{c}__beta"
    return [mm, Node("add", [f"{y}__wq", c], [y], {}, f"{node.name}__bias" if node.name else "")]


def _conv(node, graph, options, consts, types):
    x, w = node.inputs[:2]
    b = node.inputs[2] if len(node.inputs) > 2 else ""
    wt = graph.constants[w]
    m = quantize_rows(wt.reshape(wt.shape[0], -1), options.bits, options.group)
    q = _add_weight(w, m, consts, types)
    attrs = {**{k: node.attrs[k] for k in ("strides", "dilations", "pads", "auto_pad", "group")},
             "kernel_shape": [int(d) for d in wt.shape[2:]], **_mm_attrs(m, options)}
    if node.attrs["group"] != 1:
        attrs["activations"] = "float"
    return [Node("conv_wq", [x, *q, *([b] if b else [])], list(node.outputs), attrs, node.name)]


def _gather(node, graph, options, consts, types):
    w, idx = node.inputs
    m = quantize_rows(graph.constants[w], options.bits, options.group)
    q = _add_weight(w, m, consts, types)
    return [Node("gather_wq", [*q, idx], list(node.outputs), _q_attrs(m), node.name)]


_REWRITES = {"matmul": _matmul, "gemm": _gemm, "conv": _conv, "gather": _gather}
