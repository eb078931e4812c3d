"""The IR validator: run it after import and after every pass (tests do). Errors name the offending node."""
from __future__ import annotations

from ..errors import GraphValidationError
from .dtypes import DTYPES
from .graph import Dim, Graph, TensorType
from .infer import infer_node
from .ops import registry


def _compatible(recorded: TensorType, inferred: TensorType) -> bool:
    if recorded.dtype != inferred.dtype:
        return False
    if recorded.shape is None or inferred.shape is None:
        return True
    if len(recorded.shape) != len(inferred.shape):
        return False
    return all(not (isinstance(a, int) and isinstance(b, int) and a != b)
               for a, b in zip(recorded.shape, inferred.shape))


def validate(graph: Graph) -> None:
    """Check names, topological order, op signatures, attributes, dtypes and shapes; raise on the first error."""
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
        inferred = infer_node(node, types, graph.constants, syms)
        for name, t in zip(node.outputs, inferred):
            if not name:
                continue
            if name in defined:
                raise GraphValidationError(f"{node}: output {name!r} is produced twice")
            defined.add(name)
            recorded = graph.types.get(name)
            if recorded is None:
                raise GraphValidationError(f"{node}: output {name!r} has no recorded type")
            if not _compatible(recorded, t):
                raise GraphValidationError(f"{node}: output {name!r} is recorded as {recorded} but the op "
                                           f"produces {t}")
            types[name] = recorded
    for name in graph.outputs:
        if name not in defined:
            raise GraphValidationError(f"graph output {name!r} is never produced")
