"""Registry of CPU kernels, keyed by claw op name.

A kernel *factory* is called once per node at compile time with the node and its inferred input/output types,
and returns the callable the per-inference loop calls with the input arrays (None for an omitted optional
input). That callable returns one array for single-output ops, or a tuple with one entry per node output.
Most kernels need no compile-time work: `@kernel` registers a plain `fn(*inputs, **attrs)` and binds the
node's attributes once.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

from ....ir.graph import Node, TensorType

Factory = Callable[[Node, Sequence["TensorType | None"], Sequence[TensorType]], Callable[..., Any]]
KERNELS: dict[str, Factory] = {}


def kernel_factory(op: str):
    def deco(factory: Factory) -> Factory:
        if op in KERNELS:
            raise ValueError(f"CPU kernel for {op!r} registered twice")
        KERNELS[op] = factory
        return factory
    return deco


def kernel(op: str):
    """Register `fn(*inputs, **attrs)`; the node's attributes are bound at compile time."""
    def deco(fn):
        @kernel_factory(op)
        def factory(node, in_types, out_types):
            return functools.partial(fn, **node.attrs) if node.attrs else fn
        return fn
    return deco
