"""The HAL driver contract. A driver says what it can run and turns a graph into an executable program.

Drivers register themselves by name with `register_driver` (the CPU driver does so when clawdbot.hal.cpu is
imported). A session asks a driver to `compile` a validated graph once; the returned Executable is what runs
per inference, so drivers do all graph walking and lookup at compile time.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ..ir.graph import Graph, Node, TensorType


@dataclass(frozen=True)
class DriverCapabilities:
    name: str
    ops: frozenset[str]            # claw ops this driver has kernels for
    dtypes: frozenset[str]
    memory_bytes: int | None       # device memory, None when it is host memory
    host_transfer_gbps: float | None  # None: shares host memory (no copies)


@dataclass(frozen=True)
class MemoryTraits:
    """How a driver's kernel for one node uses memory; the arena planner (plan/memory.py) reads these.

    A driver that declares nothing gets a buffer of its own for every output and no scratch, which is always
    correct; declaring traits lets the plan share memory."""
    view_of: int | None = None     # output 0 is input `view_of` seen with another shape: same bytes, no work
    inplace: tuple[int, ...] = ()  # inputs whose buffer output 0 may overwrite when nothing reads them later
    scratch_bytes: int = 0         # working memory the kernel needs while the node runs


NO_TRAITS = MemoryTraits()


class Executable(abc.ABC):
    """A compiled graph: run() takes inputs in graph-input order and returns outputs in graph-output order."""

    @abc.abstractmethod
    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]: ...


class Driver(abc.ABC):
    name: str = ""

    @abc.abstractmethod
    def capabilities(self) -> DriverCapabilities: ...

    def unsupported_nodes(self, graph: Graph) -> list[str]:
        """Names of nodes this driver cannot run (empty when it runs the whole graph)."""
        ops = self.capabilities().ops
        return [n.name or n.outputs[0] for n in graph.nodes if n.op not in ops]

    def memory_traits(self, node: Node, in_types: Sequence[TensorType | None],
                      out_types: Sequence[TensorType]) -> MemoryTraits:
        """How this driver's kernel for `node` (with static types) uses memory."""
        return NO_TRAITS

    @abc.abstractmethod
    def compile(self, graph: Graph, plan=None) -> Executable:
        """An executable for `graph`; with a MemoryPlan (plan/memory.py) made for this driver, intermediates
        live in one arena laid out by it."""


_DRIVERS: dict[str, Callable[[], Driver]] = {}


def register_driver(name: str):
    """Class decorator: make a driver constructible by name."""
    def deco(cls):
        cls.name = name
        _DRIVERS[name] = cls
        return cls
    return deco


def list_drivers() -> list[str]:
    return sorted(_DRIVERS)


def get_driver(name: str) -> Driver:
    if name not in _DRIVERS and name == "cpu":
        from . import cpu  # noqa: F401  (registers itself)
    try:
        return _DRIVERS[name]()
    except KeyError:
        raise KeyError(f"no HAL driver {name!r}; registered: {', '.join(list_drivers()) or 'none'}") from None
