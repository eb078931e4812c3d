"""Registry of CPU kernels, keyed by claw op name.

A kernel *factory* is called once per node at compile time with the node and its inferred input/output types,
and returns the callable the per-inference loop calls with the input arrays (None for an omitted optional
input). That callable returns one array for single-output ops, or a tuple with one entry per node output.
Most kernels need no compile-time work: `@kernel` registers a plain `fn(*inputs, **attrs)` and binds the
node's attributes once.

Writing into planned memory: a callable marked with `writes_out` takes `out=` (an array of the output's
shape and dtype inside the session's arena) and fills it, returning it; with scratch traits it also takes
`scratch=` (a uint8 array of the declared size). Unmarked kernels return a new array, which the executor
copies into the arena. An op's `traits(node, in_types, out_types) -> MemoryTraits` tells the planner what
the kernel allows: views, in-place reuse of a dying input, scratch. Only `writes_out` kernels may declare
in-place inputs or scratch, since only they are handed the memory.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

from ....ir.graph import Node, TensorType
from ...driver import NO_TRAITS, MemoryTraits

Factory = Callable[[Node, Sequence["TensorType | None"], Sequence[TensorType]], Callable[..., Any]]
Traits = Callable[[Node, Sequence["TensorType | None"], Sequence[TensorType]], MemoryTraits]
KERNELS: dict[str, Factory] = {}
TRAITS: dict[str, Traits] = {}


def writes_out(fn):
    """Mark a kernel callable as filling the `out=` array it is given."""
    fn.writes_out = True
    return fn


def _static_traits(traits: MemoryTraits) -> Traits:
    return lambda node, in_types, out_types: traits


def kernel_factory(op: str, *, traits: Traits | MemoryTraits | None = None):
    def deco(factory: Factory) -> Factory:
        if op in KERNELS:
            raise ValueError(f"CPU kernel for {op!r} registered twice")
        KERNELS[op] = factory
        if traits is not None:
            TRAITS[op] = _static_traits(traits) if isinstance(traits, MemoryTraits) else traits
        return factory
    return deco


def kernel(op: str, *, out: bool = False, inplace: tuple[int, ...] = (), view_of: int | None = None):
    """Register `fn(*inputs, **attrs)`; the node's attributes are bound at compile time. out=True: fn takes
    `out=`; inplace: inputs it may overwrite (an out kernel must be safe with out aliasing them); view_of:
    the output is that input reshaped (the executor makes the view; fn runs only outside a plan)."""
    if inplace and not out:
        raise ValueError(f"{op}: in-place kernels must write into out=")
    traits = MemoryTraits(view_of=view_of, inplace=inplace) if (inplace or view_of is not None) else None

    def deco(fn):
        @kernel_factory(op, traits=traits)
        def factory(node, in_types, out_types):
            bound = functools.partial(fn, **node.attrs) if node.attrs else fn
            if out:
                bound = writes_out(functools.partial(bound) if bound is fn else bound)
            return bound
        return fn
    return deco


def memory_traits(node: Node, in_types, out_types) -> MemoryTraits:
    t = TRAITS.get(node.op)
    return NO_TRAITS if t is None else t(node, in_types, out_types)
