"""ONNX op handlers, one module per family. Each module's `register(reg)` inserts its handlers."""
from ..registry import OnnxOpRegistry
from . import (activation, attention, conv, elementwise, index, linalg, loss, movement, norm, pool, quant,
               recurrent, reduce, resize, shape)

FAMILIES = (elementwise, activation, reduce, linalg, conv, pool, norm, resize, movement, index, shape, quant,
            attention, recurrent, loss)


def build_registry() -> OnnxOpRegistry:
    reg = OnnxOpRegistry()
    for family in FAMILIES:
        family.register(reg)
    return reg


REGISTRY = build_registry()
