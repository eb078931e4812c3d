"""The element types claw_ir knows, by their numpy names. The .claw file and every API use these strings."""
from __future__ import annotations

import numpy as np

DTYPES: tuple[str, ...] = (
    "float32", "float16", "float64",
    "int8", "int16", "int32", "int64",
    "uint8", "uint16", "uint32", "uint64",
    "bool",
)
FLOAT_TYPES = frozenset({"float32", "float16", "float64"})
INT_TYPES = frozenset({"int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"})
NUMERIC_TYPES = FLOAT_TYPES | INT_TYPES


def to_numpy(dtype: str) -> np.dtype:
    if dtype not in DTYPES:
        raise ValueError(f"unknown claw dtype {dtype!r}; known: {', '.join(DTYPES)}")
    return np.dtype(dtype)


def from_numpy(dtype) -> str:
    name = np.dtype(dtype).name
    if name not in DTYPES:
        raise ValueError(f"numpy dtype {name!r} has no claw_ir equivalent; supported: {', '.join(DTYPES)}")
    return name


def itemsize(dtype: str) -> int:
    return np.dtype(dtype).itemsize
