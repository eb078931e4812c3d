"""claw_ir: the typed graph every importer produces and every pass, planner and driver consumes.

A Graph holds its nodes in topological order. Every value (graph input, constant, node output) has a
TensorType: a dtype and a shape whose dims are ints (static), strings (named symbolic dims such as "batch",
shared across values) or None (unknown until run time). Node attributes are plain JSON-able Python values;
tensors never live in attributes — importers turn them into constants — so a graph serialises to JSON plus
one blob of constants (see clawfile.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Union

import numpy as np

from .dtypes import from_numpy

Dim = Union[int, str, None]


@dataclass(frozen=True)
class QuantParams:
    """Affine quantization of a value: real = (q - zero_point) * scale, per tensor or along `axis`."""

    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    axis: int | None = None

    def to_dict(self) -> dict:
        return {"scale": list(self.scale), "zero_point": list(self.zero_point), "axis": self.axis}

    @classmethod
    def from_dict(cls, d: dict) -> "QuantParams":
        return cls(tuple(d["scale"]), tuple(d["zero_point"]), d.get("axis"))


@dataclass(frozen=True)
class TensorType:
    dtype: str
    shape: tuple[Dim, ...] | None  # None: rank unknown
    quant: QuantParams | None = None

    @property
    def rank(self) -> int | None:
        return None if self.shape is None else len(self.shape)

    @property
    def is_static(self) -> bool:
        return self.shape is not None and all(isinstance(d, int) for d in self.shape)

    def compatible(self, other: "TensorType") -> bool:
        """Same dtype and no contradicting static dim: an unknown rank, or a symbolic/unknown dim, fits anything."""
        if self.dtype != other.dtype:
            return False
        if self.shape is None or other.shape is None:
            return True
        return len(self.shape) == len(other.shape) and all(
            not (isinstance(a, int) and isinstance(b, int) and a != b) for a, b in zip(self.shape, other.shape))

    def numel(self) -> int | None:
        if not self.is_static:
            return None
        return int(np.prod(self.shape, dtype=np.int64))

    def __str__(self) -> str:
        dims = "?" if self.shape is None else ", ".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.dtype}[{dims}]"

    def to_dict(self) -> dict:
        d: dict[str, Any] = {"dtype": self.dtype, "shape": None if self.shape is None else list(self.shape)}
        if self.quant is not None:
            d["quant"] = self.quant.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TensorType":
        shape = None if d["shape"] is None else tuple(d["shape"])
        quant = QuantParams.from_dict(d["quant"]) if d.get("quant") else None
        return cls(d["dtype"], shape, quant)

    @classmethod
    def of(cls, array: np.ndarray) -> "TensorType":
        return cls(from_numpy(array.dtype), tuple(int(s) for s in array.shape))


@dataclass
class Node:
    """One operation. `inputs` may contain "" for an omitted optional input; `attrs` holds every attribute
    the op declares (defaults filled in by the op set), so kernels never look defaults up."""

    op: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    name: str = ""

    def __str__(self) -> str:
        return f"{self.op} node {self.name!r}" if self.name else f"{self.op} node producing {self.outputs}"

    def to_dict(self) -> dict:
        return {"op": self.op, "name": self.name, "inputs": list(self.inputs), "outputs": list(self.outputs),
                "attrs": self.attrs}

    @classmethod
    def from_dict(cls, d: dict) -> "Node":
        return cls(d["op"], list(d["inputs"]), list(d["outputs"]), dict(d.get("attrs", {})), d.get("name", ""))


@dataclass
class Graph:
    name: str = "graph"
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    nodes: list[Node] = field(default_factory=list)
    constants: dict[str, np.ndarray] = field(default_factory=dict)
    types: dict[str, TensorType] = field(default_factory=dict)  # every named value's type
    metadata: dict[str, Any] = field(default_factory=dict)     # producer, source opsets, … (JSON-able)

    def input_types(self) -> list[tuple[str, TensorType]]:
        return [(n, self.types[n]) for n in self.inputs]

    def output_types(self) -> list[tuple[str, TensorType]]:
        return [(n, self.types[n]) for n in self.outputs]

    def producers(self) -> dict[str, Node]:
        return {o: n for n in self.nodes for o in n.outputs if o}

    def consumers(self) -> dict[str, list[Node]]:
        out: dict[str, list[Node]] = {}
        for n in self.nodes:
            for i in n.inputs:
                if i:
                    out.setdefault(i, []).append(n)
        return out

    def iter_ops(self) -> Iterator[str]:
        return (n.op for n in self.nodes)

    def param_count(self) -> int:
        return int(sum(c.size for c in self.constants.values()))

    def param_bytes(self) -> int:
        return int(sum(c.nbytes for c in self.constants.values()))

    def to_dict(self) -> dict:
        """Everything but the constants' bytes (their types are in `types`)."""
        return {
            "name": self.name,
            "inputs": list(self.inputs),
            "outputs": list(self.outputs),
            "nodes": [n.to_dict() for n in self.nodes],
            "constants": sorted(self.constants),
            "types": {k: v.to_dict() for k, v in self.types.items()},
            "metadata": self.metadata,
        }

    @classmethod
    def from_dict(cls, d: dict, constants: dict[str, np.ndarray]) -> "Graph":
        return cls(
            name=d["name"],
            inputs=list(d["inputs"]),
            outputs=list(d["outputs"]),
            nodes=[Node.from_dict(n) for n in d["nodes"]],
            constants=constants,
            types={k: TensorType.from_dict(v) for k, v in d["types"].items()},
            metadata=dict(d.get("metadata", {})),
        )
