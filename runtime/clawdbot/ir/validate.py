"""The IR validator: run it after import and after every pass (tests do). Errors name the offending node.

Control-flow subgraphs (ir/ops/control.py) are validated too, recursively; an error inside one names the node
and attribute holding it, outermost first.
"""
from __future__ import annotations

import numpy as np

from ..errors import GraphValidationError
from .dtypes import DTYPES
from .graph import Dim, Graph, Node, TensorType
from .infer import infer_node
from .ops import registry
from .ops.control import subgraphs
from .ops.registry import InferenceError


def _validate_subgraphs(node: Node, values: dict[str, np.ndarray]) -> None:
    """Validate the node's subgraphs, telling each which of its inputs have values known at conversion time (those
    capturing a constant), as the importer's inference knew them."""
    try:
        found = subgraphs(node)
    except InferenceError as e:
        raise GraphValidationError(f"{node}: {e}") from None
    for attr, sub, bound in found:
        known = {inner: values[outer] for inner, outer in bound.items() if outer in values}
        try:
            validate(sub, known)
        except GraphValidationError as e:
            raise GraphValidationError(f"{node}: subgraph {attr!r}: {e}") from None


def validate(graph: Graph, known: dict[str, np.ndarray] | None = None) -> None:
    """Check names, topological order, op signatures, attributes, dtypes and shapes; raise on the first error.

    `known`: values of graph inputs known at conversion time (a subgraph input capturing a constant)."""
    defined: set[str] = set()
    for name in graph.inputs:
        if name in defined:
            raise GraphValidationError(f"graph input {name!r} is declared twice")
        if name not in graph.types:
            raise GraphValidationError(f"graph input {name!r} has no type")
        defined.add(name)
    for name, c in graph.constants.items():
        if name in defined:
            raise GraphValidationError(f"constant {name!r} has the same name as a graph input")
        if c.dtype.name not in DTYPES:
            raise GraphValidationError(f"constant {name!r} has unsupported dtype {c.dtype}")
        defined.add(name)
    syms: dict[str, list[Dim]] = {}
    values = {**known, **graph.constants} if known else graph.constants
    types = dict(graph.types)
    for name, c in graph.constants.items():
        types[name] = TensorType.of(c)
    for node in graph.nodes:
        if node.op not in registry.OPS:
            raise GraphValidationError(f"{node}: unknown op {node.op!r}")
        opdef = registry.OPS[node.op]
        lo, hi = opdef.inputs
        if len(node.inputs) < lo or (hi != -1 and len(node.inputs) > hi):
            raise GraphValidationError(f"{node}: takes {lo}..{hi if hi >= 0 else 'n'} inputs, got {len(node.inputs)}")
        lo, hi = opdef.outputs
        if len(node.outputs) < lo or (hi != -1 and len(node.outputs) > hi):
            raise GraphValidationError(f"{node}: has {lo}..{hi if hi >= 0 else 'n'} outputs, got {len(node.outputs)}")
        if set(node.attrs) != set(opdef.attrs):
            raise GraphValidationError(f"{node}: attributes {sorted(node.attrs)} differ from the op's "
                                       f"{sorted(opdef.attrs)}")
        for i in node.inputs:
            if i and i not in defined:
                raise GraphValidationError(f"{node}: input {i!r} is used before it is produced "
                                           f"(graph not in topological order, or dangling)")
        _validate_subgraphs(node, values)
        inferred = infer_node(node, types, values, syms)
        for name, t in zip(node.outputs, inferred):
            if not name:
                continue
            if name in defined:
                raise GraphValidationError(f"{node}: output {name!r} is produced twice")
            defined.add(name)
            recorded = graph.types.get(name)
            if recorded is None:
                raise GraphValidationError(f"{node}: output {name!r} has no recorded type")
            if not recorded.compatible(t):
                raise GraphValidationError(f"{node}: output {name!r} is recorded as {recorded} but the op "
                                           f"produces {t}")
            types[name] = recorded
    for name in graph.outputs:
        if name not in defined:
            raise GraphValidationError(f"graph output {name!r} is never produced")
