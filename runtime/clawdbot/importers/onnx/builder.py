"""What an ONNX op handler works with: a read-only view of the ONNX node, and a builder that emits claw nodes.

Handlers are `handler(b: Builder, n: OnnxNode) -> None`. They emit one or more claw nodes whose final outputs
are `n.outputs`, using `b.emit`. Each emitted node is inferred at once, so a handler can ask `b.type(name)` and
`b.value(name)` (the value when known at conversion time) of anything emitted before it. A handler that meets
a configuration clawdbot cannot run raises `Unsupported("why")`; the importer collects these for every node
and reports them together.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from ...errors import GraphValidationError
from ...ir.graph import Dim, Graph, Node, TensorType
from ...ir.infer import infer_node
from ...ir.ops import registry as opset


class Unsupported(Exception):
    """Raised by a handler: this node's configuration is not supported (the message says why)."""


class OnnxNode:
    """`attrs` are the node's attributes as Python values; `graphs` its subgraph attributes (If, Loop, Scan
    bodies) as raw onnx.GraphProto, which control-flow handlers import with `Builder.subgraph`."""

    __slots__ = ("op_type", "domain", "name", "inputs", "outputs", "attrs", "graphs")

    def __init__(self, op_type: str, domain: str, name: str, inputs: list[str], outputs: list[str],
                 attrs: dict[str, Any], graphs: dict[str, Any] | None = None):
        self.op_type, self.domain, self.name = op_type, domain, name
        self.inputs, self.outputs, self.attrs = inputs, outputs, attrs
        self.graphs = graphs or {}

    def attr(self, name: str, default: Any = None) -> Any:
        return self.attrs.get(name, default)

    def input(self, i: int) -> str:
        """Name of input i, or "" when it is omitted."""
        return self.inputs[i] if i < len(self.inputs) else ""

    def has_input(self, i: int) -> bool:
        return bool(self.input(i))

    def __str__(self) -> str:
        return f"{self.op_type} node {self.name!r}"


class Builder:
    def __init__(self, graph: Graph, opset: int, reserved_names: set[str]):
        self.graph = graph
        self.opset = opset
        self._reserved = reserved_names
        self._counter = 0
        self._root = self  # the model's main-graph builder: one name counter for every (sub)graph
        self._syms: dict[str, list[Dim]] = {}
        self.current: OnnxNode | None = None
        self._emitted_for_current = 0
        # Set by the importer: imports an ONNX subgraph in this builder's scope (see `subgraph`).
        self.subgraph_importer: Callable[..., Any] | None = None

    def child(self, graph: Graph) -> "Builder":
        """A builder for a subgraph (a control-flow body) of this one's graph. It shares the name counter, so
        generated names are unique across the whole model and never clash with a value captured from outside."""
        kid = Builder(graph, self.opset, self._reserved)
        kid._root = self._root
        return kid

    # -- queries -----------------------------------------------------------------------------------------
    def type(self, name: str) -> TensorType:
        return self.graph.types[name]

    def shape(self, name: str):
        return self.graph.types[name].shape

    def dtype(self, name: str) -> str:
        return self.graph.types[name].dtype

    def rank(self, name: str) -> int:
        r = self.graph.types[name].rank
        if r is None:
            raise Unsupported(f"rank of {name!r} is unknown at conversion time")
        return r

    def value(self, name: str) -> np.ndarray | None:
        """The tensor's value when known at conversion time (a constant or a fully known shape value)."""
        if not name:
            return None
        if name in self.graph.constants:
            return self.graph.constants[name]
        s = self._syms.get(name)
        t = self.graph.types.get(name)
        if s is not None and t is not None and t.shape is not None and all(isinstance(d, int) for d in s):
            return np.array(s, dtype=t.dtype).reshape([int(d) for d in t.shape])
        return None

    def const_value(self, name: str, what: str) -> np.ndarray:
        v = self.value(name)
        if v is None:
            raise Unsupported(f"{what} ({name!r}) must be known at conversion time")
        return v

    # -- emitting ----------------------------------------------------------------------------------------
    def fresh(self, hint: str = "t") -> str:
        root = self._root
        while True:
            root._counter += 1
            name = f"_claw_{hint}_{root._counter}"
            if name not in self._reserved and name not in self.graph.types:
                return name

    def const(self, array, hint: str = "const", dtype: str | None = None) -> str:
        arr = np.asarray(array, dtype=dtype) if dtype else np.asarray(array)
        name = self.fresh(hint)
        self.graph.constants[name] = np.asarray(arr, order="C")  # keeps 0-d as 0-d
        self.graph.types[name] = TensorType.of(arr)
        return name

    def emit(self, op: str, inputs: Sequence[str], outputs: Sequence[str] | int | None = None,
             **attrs: Any) -> list[str]:
        """Append a claw node; returns its output names (fresh ones when `outputs` is a count or None)."""
        opdef = opset.get(op)
        if outputs is None:
            outputs = 1
        if isinstance(outputs, int):
            outputs = [self.fresh(op) for _ in range(outputs)]
        where = str(self.current) if self.current else op
        try:
            full = opdef.complete_attrs(attrs, where)
        except ValueError as e:
            raise GraphValidationError(str(e)) from None
        base = self.current.name if self.current and self.current.name else (outputs[0] if outputs else op)
        name = base if self._emitted_for_current == 0 else f"{base}/{op}_{self._emitted_for_current}"
        self._emitted_for_current += 1
        node = Node(op, list(inputs), list(outputs), full, name)
        out_types = infer_node(node, self.graph.types, self.graph.constants, self._syms)
        for o, t in zip(node.outputs, out_types):
            if o:
                self.graph.types[o] = t
        self.graph.nodes.append(node)
        return list(node.outputs)

    def emit1(self, op: str, inputs: Sequence[str], output: str | None = None, **attrs: Any) -> str:
        return self.emit(op, inputs, [output] if output else 1, **attrs)[0]

    def alias(self, src: str, dst: str) -> None:
        """Make ONNX value `dst` the same tensor as `src` (an identity node, removed by later passes)."""
        self.emit("identity", [src], [dst])

    def subgraph(self, proto: Any, input_types: Sequence[TensorType]):
        """Import ONNX subgraph `proto` (an onnx.GraphProto) as a claw graph whose formal inputs have
        `input_types`, reading enclosing values as captures; returns the importer's Subgraph (its `graph`, and
        `close()` to hoist its constants and get the names the node passes in). Unsupported nodes inside are
        reported with the rest of the model's."""
        if self.subgraph_importer is None:
            raise Unsupported("subgraphs can only be imported by the ONNX importer")
        return self.subgraph_importer(proto, list(input_types))

    def begin(self, node: OnnxNode) -> None:
        self.current = node
        self._emitted_for_current = 0
