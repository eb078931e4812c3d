"""The claw op set. Each family module declares its ops into `registry.OPS` on import.

Order of the family list is the documentation order (docs/opset.md, `claw ops`).
"""
from . import registry
from .registry import OPS, Attr, InferCtx, InferenceError, OpDef, get, register

FAMILIES = ("elementwise", "activation", "reduce", "linalg", "conv", "pool", "norm", "resize",
            "movement", "index", "shape", "quant", "wquant", "attention", "recurrent", "control", "signal",
            "sampling")

from . import (activation, attention, control, conv, elementwise, index, linalg, movement,  # noqa: E402,F401
               norm, pool, quant, recurrent, reduce, resize, sampling, shape, signal, wquant)

__all__ = ["OPS", "Attr", "InferCtx", "InferenceError", "OpDef", "get", "register", "registry", "FAMILIES"]
