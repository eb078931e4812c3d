"""The HAL driver contract. A driver says what it can run and turns a graph into an executable program.

Drivers register themselves by name with `register_driver` (the CPU driver does so when clawdbot.hal.cpu is
imported). A session asks a driver to `compile` a validated graph once; the returned Executable is what runs
per inference, so drivers do all graph walking and lookup at compile time.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..ir.graph import Graph


@dataclass(frozen=True)
class DriverCapabilities:
    name: str
    ops: frozenset[str]            # claw ops this driver has kernels for
    dtypes: frozenset[str]
    memory_bytes: int | None       # device memory, None when it is host memory
    host_transfer_gbps: float | None  # None: shares host memory (no copies)


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

    @abc.abstractmethod
    def compile(self, graph: Graph) -> Executable: ...


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
