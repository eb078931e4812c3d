"""A Session runs a claw_ir graph on a HAL driver. `clawdbot.load` returns one.

The graph is validated and compiled once, at construction. `run` checks the feeds against the model's
declared inputs (names, dtypes, ranks, static dims, and that a named symbolic dim has one size across all
inputs) and says what was expected when they do not match.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from .errors import InputError
from .hal import get_driver
from .ir.graph import Dim, Graph
from .ir.validate import validate


@dataclass(frozen=True)
class IOSpec:
    name: str
    dtype: str
    shape: tuple[Dim, ...] | None

    def __str__(self) -> str:
        dims = "?" if self.shape is None else ", ".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.name}: {self.dtype}[{dims}]"


class Session:
    def __init__(self, graph: Graph, *, driver: str = "cpu", validate_graph: bool = True, plan=None):
        if validate_graph:
            validate(graph)
        self.graph = graph
        self.driver = get_driver(driver)
        self.inputs = [IOSpec(n, t.dtype, t.shape) for n, t in graph.input_types()]
        self.outputs = [IOSpec(n, t.dtype, t.shape) for n, t in graph.output_types()]
        # A plan made for another driver does not apply; the driver plans for itself on first run.
        self._program = self.driver.compile(graph, plan if plan is not None and plan.driver == driver else None)

    def _expected(self) -> str:
        return "; ".join(str(s) for s in self.inputs)

    def _check_inputs(self, feeds: Mapping[str, object]) -> list[np.ndarray]:
        if not isinstance(feeds, Mapping):
            raise InputError(f"run() takes a dict of input name -> array; expected inputs: {self._expected()}")
        names = [s.name for s in self.inputs]
        unknown = [k for k in feeds if k not in names]
        missing = [n for n in names if n not in feeds]
        if unknown or missing:
            parts = []
            if missing:
                parts.append(f"missing input(s) {missing}")
            if unknown:
                parts.append(f"unknown input(s) {unknown}")
            raise InputError(f"{' and '.join(parts)}; the model expects: {self._expected()}")
        out: list[np.ndarray] = []
        bound: dict[str, tuple[int, str]] = {}
        for spec in self.inputs:
            x = feeds[spec.name]
            if not isinstance(x, np.ndarray):
                try:
                    x = np.asarray(x, dtype=spec.dtype)
                except (TypeError, ValueError) as e:
                    raise InputError(f"input {spec.name!r}: cannot convert to {spec.dtype}: {e}") from None
            if x.dtype.name != spec.dtype:
                raise InputError(f"input {spec.name!r} has dtype {x.dtype.name}, expected {spec.dtype} "
                                 f"(expected {spec})")
            if spec.shape is not None:
                if x.ndim != len(spec.shape):
                    raise InputError(f"input {spec.name!r} has shape {x.shape} (rank {x.ndim}), expected rank "
                                     f"{len(spec.shape)}: {spec}")
                for axis, (d, n) in enumerate(zip(spec.shape, x.shape)):
                    if isinstance(d, int) and d != n:
                        raise InputError(f"input {spec.name!r} has shape {x.shape}; axis {axis} must be {d} "
                                         f"(expected {spec})")
                    if isinstance(d, str):
                        if d in bound and bound[d][0] != n:
                            raise InputError(f"dimension {d!r} is {bound[d][0]} in input {bound[d][1]!r} but "
                                             f"{n} in input {spec.name!r}")
                        bound[d] = (n, spec.name)
            out.append(x)
        return out

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        feeds = self._check_inputs(inputs)
        results = self._program.run(feeds)
        return dict(zip((s.name for s in self.outputs), results))
