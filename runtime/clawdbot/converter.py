"""The seed API: ModelConverter turns a framework model into a claw_ir model that can be saved as .claw.

    model = ModelConverter(source_framework="onnx", target_format="claw_ir").convert("resnet50.onnx")
    model.save("resnet50.claw")

quantization_bits=8 or 4 quantizes the weights of matmul/gemm/conv/gather nodes (weight-only: int8 per
output channel, int4 in groups of 64; quant/rewrite.py); `quant_options=QuantOptions(...)` sets the rest.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import ClawError
from .ir.graph import Graph
from .ir.validate import validate

SOURCE_FRAMEWORKS = ("onnx", "pytorch", "tflite", "tensorflow")
IMPLEMENTED_SOURCES = ("onnx",)
TARGET_FORMATS = ("claw_ir",)


@dataclass
class ClawModel:
    """A converted model: the validated graph, ready to save or to run."""

    graph: Graph
    source: str = ""
    quantization: object = None  # quant.rewrite.RewriteResult: what was quantized and what kept fp32, and why

    def save(self, path: str | os.PathLike, dims: dict[str, int] | None = None, plan=None) -> Path:
        """Write the .claw file with the CPU driver's memory plan for `dims` (symbolic dims not given are 1),
        so loading it needs no planning. `plan`: one already made for this graph and these dims."""
        from .ir.clawfile import save_graph
        from .plan.memory import plan_if_possible
        path = Path(path)
        plan = plan if plan is not None else plan_if_possible(self.graph, dims)
        save_graph(path, self.graph, None if plan is None else plan.to_dict())
        return path

    def session(self, driver: str = "cpu"):
        from .session import Session
        return Session(self.graph, driver=driver, validate_graph=False)

    def summary(self) -> dict:
        ops: dict[str, int] = {}
        for op in self.graph.iter_ops():
            ops[op] = ops.get(op, 0) + 1
        return {"nodes": len(self.graph.nodes), "ops": dict(sorted(ops.items())),
                "params": self.graph.param_count(), "param_bytes": self.graph.param_bytes()}


class ModelConverter:
    def __init__(self, source_framework: str = "onnx", target_format: str = "claw_ir",
                 quantization_bits: int | None = None, quant_options=None):
        if source_framework not in SOURCE_FRAMEWORKS:
            raise ClawError(f"source_framework {source_framework!r} is not one of {', '.join(SOURCE_FRAMEWORKS)}")
        if source_framework not in IMPLEMENTED_SOURCES:
            raise ClawError(f"source_framework {source_framework!r} is not supported yet; this version imports "
                            f"{', '.join(IMPLEMENTED_SOURCES)} (export your model to ONNX meanwhile)")
        if target_format not in TARGET_FORMATS:
            raise ClawError(f"target_format {target_format!r} is not one of {', '.join(TARGET_FORMATS)}")
        if quantization_bits not in (None, 32, 8, 4):
            raise ClawError(f"quantization_bits={quantization_bits!r}: choose 8 or 4 (weight-only int8/int4), or "
                            f"None for an fp32 model")
        self.source_framework = source_framework
        self.target_format = target_format
        self.quantization_bits = quantization_bits
        from .quant.rewrite import QuantOptions
        if quant_options is not None and quantization_bits not in (None, 32, quant_options.bits):
            raise ClawError(f"quantization_bits={quantization_bits} but quant_options.bits={quant_options.bits}")
        self.quant_options = quant_options or (QuantOptions(bits=quantization_bits)
                                               if quantization_bits in (8, 4) else None)

    def convert(self, model) -> ClawModel:
        """Import `model` (a path, or an in-memory model of the source framework) and validate the result."""
        from .importers.onnx import import_onnx
        graph = import_onnx(model)
        validate(graph)
        quantized = None
        if self.quant_options is not None:
            from .quant.rewrite import quantize_weights
            quantized = quantize_weights(graph, self.quant_options)
            graph = quantized.graph
            validate(graph)
        return ClawModel(graph, str(model) if isinstance(model, (str, os.PathLike)) else "<in-memory>", quantized)
