"""The CPU HAL driver: numpy/OpenBLAS and Cython kernels on the host's cores."""
from __future__ import annotations

import os

from ...ir.dtypes import DTYPES
from ...ir.graph import Graph
from ..driver import Driver, DriverCapabilities, register_driver
from .executor import CpuProgram
from .kernels import KERNELS
from .kernels.registry import memory_traits


@register_driver("cpu")
class CpuDriver(Driver):
    def __init__(self, *, check: bool | None = None):
        # CLAWDBOT_CHECK=1 turns on per-kernel dtype/shape checks (slower; for debugging and tests).
        self.check = os.environ.get("CLAWDBOT_CHECK") == "1" if check is None else check

    def capabilities(self) -> DriverCapabilities:
        return DriverCapabilities("cpu", frozenset(KERNELS), frozenset(DTYPES), None, None)

    def memory_traits(self, node, in_types, out_types):
        return memory_traits(node, in_types, out_types)

    def compile(self, graph: Graph, plan=None) -> CpuProgram:
        return CpuProgram(graph, check=self.check, plan=plan)
