"""The claw op set: one OpDef per operator, registered by the family modules beside this file.

An OpDef is the specification of an op: its group, how many inputs/outputs it takes, its attributes with
defaults, its documentation and its shape/dtype inference. Kernels (hal/) and importers (importers/) refer to
ops by these names only. `claw ops` and docs/opset.md are generated from this registry.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from ..graph import Dim, Node, TensorType

GROUPS = ("elementwise", "activation", "linalg", "conv", "pool", "norm", "reduce", "resize", "movement", "index",
          "shape", "generate", "quant", "attention", "recurrent", "control", "signal", "sampling",
          "misc")

_REQUIRED = object()


@dataclass(frozen=True)
class Attr:
    """An attribute: its Python type (int, float, str, bool, list) and default (REQUIRED when none)."""

    type: type
    default: Any = _REQUIRED
    doc: str = ""

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED


REQUIRED = _REQUIRED


class InferCtx:
    """What an op's inference function sees: input types, known constant/symbolic input values, attributes.

    `value(i)` is the input's value when known at conversion time (a constant, or a small integer tensor whose
    entries were all propagated, e.g. a Shape result on a static input). `sym(i)` is the symbolic value of a
    0-D/1-D integer input: a list of Dims (ints, named symbolic dims, or None). Shape-driven reshapes in
    transformer graphs stay inferable with a dynamic batch dimension this way.
    """

    def __init__(self, node: Node, in_types: Sequence[TensorType | None], values: Sequence[np.ndarray | None],
                 syms: Sequence[list[Dim] | None]):
        self.node = node
        self.in_types = list(in_types)
        self._values = list(values)
        self._syms = list(syms)
        self.out_syms: dict[int, list[Dim]] = {}

    @property
    def attrs(self) -> dict[str, Any]:
        return self.node.attrs

    def attr(self, name: str) -> Any:
        return self.node.attrs[name]

    def has_input(self, i: int) -> bool:
        return i < len(self.in_types) and self.in_types[i] is not None

    def type(self, i: int) -> TensorType:
        t = self.in_types[i]
        if t is None:
            raise InferenceError(f"input {i} is required")
        return t

    def shape(self, i: int):
        return self.type(i).shape

    def dtype(self, i: int) -> str:
        return self.type(i).dtype

    def value(self, i: int) -> np.ndarray | None:
        if i >= len(self._values):
            return None
        v = self._values[i]
        if v is not None:
            return v
        s = self.sym(i)
        t = self.in_types[i]
        if s is not None and t is not None and all(isinstance(d, int) for d in s) and t.shape is not None:
            return np.array(s, dtype=t.dtype).reshape([int(d) for d in t.shape])
        return None

    def sym(self, i: int) -> list[Dim] | None:
        if i >= len(self._syms):
            return None
        if self._syms[i] is not None:
            return self._syms[i]
        v = self._values[i] if i < len(self._values) else None
        if v is not None and v.dtype.kind in "iu" and v.ndim <= 1:
            return [int(x) for x in v.reshape(-1)]
        return None

    def set_sym(self, out: int, dims: list[Dim]) -> None:
        self.out_syms[out] = list(dims)


class InferenceError(Exception):
    """Raised by inference functions; the caller adds the node's name to the message."""


InferFn = Callable[[InferCtx], Sequence[TensorType]]


@dataclass(frozen=True)
class OpDef:
    name: str
    group: str
    doc: str
    infer: InferFn
    inputs: tuple[int, int] = (1, 1)     # min, max count (max -1: variadic)
    outputs: tuple[int, int] = (1, 1)
    attrs: dict[str, Attr] = field(default_factory=dict)

    @property
    def multi_output(self) -> bool:
        return self.outputs[1] != 1

    def complete_attrs(self, given: dict[str, Any], where: str = "") -> dict[str, Any]:
        """Fill in defaults and reject unknown or missing attributes, naming the node."""
        unknown = set(given) - set(self.attrs)
        if unknown:
            raise ValueError(f"{where}: op {self.name!r} has no attribute(s) {sorted(unknown)}; "
                             f"it takes {sorted(self.attrs) or 'none'}")
        out = {}
        for k, spec in self.attrs.items():
            if k in given:
                out[k] = given[k]
            elif spec.required:
                raise ValueError(f"{where}: op {self.name!r} requires attribute {k!r}")
            else:
                out[k] = spec.default
        return out


OPS: dict[str, OpDef] = {}


def register(name: str, group: str, doc: str, *, inputs=(1, 1), outputs=(1, 1),
             attrs: dict[str, Attr] | None = None):
    """Decorator for an inference function that declares op `name`."""
    if group not in GROUPS:
        raise ValueError(f"unknown op group {group!r}")

    def deco(fn: InferFn) -> InferFn:
        if name in OPS:
            raise ValueError(f"op {name!r} registered twice")
        OPS[name] = OpDef(name, group, doc.strip(), fn, tuple(inputs), tuple(outputs), dict(attrs or {}))
        return fn

    return deco


def get(name: str) -> OpDef:
    try:
        return OPS[name]
    except KeyError:
        raise KeyError(f"{name!r} is not a claw op; known ops: {', '.join(sorted(OPS))}") from None
