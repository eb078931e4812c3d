"""Shape and dtype inference over a whole graph, with symbolic values for shape-computing subgraphs."""
from __future__ import annotations

import numpy as np

from ..errors import GraphValidationError
from .graph import Dim, Graph, Node, TensorType
from .ops import registry
from .ops.registry import InferCtx, InferenceError


def infer_node(node: Node, types: dict[str, TensorType], constants: dict[str, np.ndarray],
               syms: dict[str, list[Dim]]) -> list[TensorType]:
    """Infer `node`'s output types, record symbolic values it produces in `syms`, return the types."""
    opdef = registry.get(node.op)
    in_types, values, in_syms = [], [], []
    for name in node.inputs:
        if not name:
            in_types.append(None), values.append(None), in_syms.append(None)
            continue
        if name not in types:
            raise GraphValidationError(f"{node}: input {name!r} is not produced before it is used")
        in_types.append(types[name])
        values.append(constants.get(name))
        in_syms.append(syms.get(name))
    ctx = InferCtx(node, in_types, values, in_syms)
    try:
        out = list(opdef.infer(ctx))
    except InferenceError as e:
        raise GraphValidationError(f"{node}: {e}") from None
    if len(out) < len(node.outputs):
        raise GraphValidationError(f"{node}: op returned {len(out)} output types for {len(node.outputs)} outputs")
    for i, name in enumerate(node.outputs):
        if name and i in ctx.out_syms:
            syms[name] = ctx.out_syms[i]
    return out[: len(node.outputs)]


def merge(declared: TensorType | None, inferred: TensorType) -> TensorType:
    """Prefer inferred facts, but keep a declared static/symbolic dim where inference only knows None."""
    if declared is None or declared.shape is None:
        return inferred
    if inferred.shape is None:
        return TensorType(inferred.dtype, declared.shape, inferred.quant or declared.quant)
    if len(declared.shape) != len(inferred.shape):
        return inferred
    dims = tuple(i if i is not None else d for d, i in zip(declared.shape, inferred.shape))
    return TensorType(inferred.dtype, dims, inferred.quant or declared.quant)


def infer_graph(graph: Graph) -> Graph:
    """Fill graph.types for every node output, in place, and return the graph."""
    syms: dict[str, list[Dim]] = {}
    for name, c in graph.constants.items():
        graph.types[name] = TensorType.of(c)
    for node in graph.nodes:
        outs = infer_node(node, graph.types, graph.constants, syms)
        for name, t in zip(node.outputs, outs):
            if name:
                graph.types[name] = merge(graph.types.get(name) if name in graph.outputs else None, t)
    return graph
