"""clawdbot as an `onnx.backend.base.Backend`, so the onnx package's own backend test suite can run it."""
from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx.backend.base import Backend, BackendRep

from ...ir.validate import validate
from ...session import Session
from .importer import import_onnx


class ClawBackendRep(BackendRep):
    def __init__(self, session: Session):
        self.session = session

    def run(self, inputs: Any, **kwargs: Any) -> tuple[np.ndarray, ...]:
        if isinstance(inputs, dict):
            feeds = inputs
        else:
            if isinstance(inputs, np.ndarray):
                inputs = [inputs]
            feeds = {spec.name: x for spec, x in zip(self.session.inputs, inputs)}
        out = self.session.run(feeds)
        return tuple(out[s.name] for s in self.session.outputs)


class ClawBackend(Backend):
    @classmethod
    def is_compatible(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs: Any) -> bool:
        return device == "CPU"

    @classmethod
    def prepare(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs: Any) -> ClawBackendRep:
        graph = import_onnx(model)
        validate(graph)
        return ClawBackendRep(Session(graph, validate_graph=False))

    @classmethod
    def run_node(cls, node, inputs, device="CPU", outputs_info=None, **kwargs):
        raise NotImplementedError("clawdbot runs whole models; use prepare()")

    @classmethod
    def supports_device(cls, device: str) -> bool:
        return device == "CPU"
