"""ONNX op handlers, one module per family. Each module's `register(reg)` inserts its handlers."""
from ..registry import OnnxOpRegistry
from . import (activation, attention, control, conv, elementwise, index, linalg, loss, movement, norm, pool, quant,
               recurrent, reduce, resize, sampling, shape, signal)

FAMILIES = (elementwise, activation, reduce, linalg, conv, pool, norm, resize, movement, index, shape, quant,
            attention, recurrent, loss, control, signal, sampling)


def build_registry() -> OnnxOpRegistry:
    reg = OnnxOpRegistry()
    for family in FAMILIES:
        family.register(reg)
    return reg


REGISTRY = build_registry()
