"""ONNX op handlers, one module per family. Each module's `register(reg)` inserts its handlers."""
from ..registry import OnnxOpRegistry
from . import (activation, conv, elementwise, index, linalg, movement, norm, pool, quant, reduce, resize,
               shape)

FAMILIES = (elementwise, activation, reduce, linalg, conv, pool, norm, resize, movement, index, shape, quant)


def build_registry() -> OnnxOpRegistry:
    reg = OnnxOpRegistry()
    for family in FAMILIES:
        family.register(reg)
    return reg


REGISTRY = build_registry()
