"""ONNX -> claw: DFT (opsets 17 and 20), STFT, HannWindow, HammingWindow, BlackmanWindow, MelWeightMatrix.

Opset history folded into one claw form:
- DFT-17 takes the axis as an attribute (default 1), DFT-20 as an optional int64 input (default -2); the claw
  op always has it as input 1, with the optional length after it.
- Lengths, steps and sizes may be int32 in ONNX; the claw ops take int64 (a cast is inserted).
- The windows and MelWeightMatrix give their output type as a TensorProto code (`output_datatype`, default
  float32).
"""
from __future__ import annotations

import numpy as np

from ..builder import Unsupported
from .elementwise import cast_to
from .shape import onnx_dtype


def _int64(b, name: str) -> str:
    """An optional integer input as int64 ("" stays omitted)."""
    return cast_to(b, name, "int64") if name else ""


def _dft(b, n, axis: str):
    ins = [n.input(0), axis] + ([_int64(b, n.input(1))] if n.has_input(1) else [])
    b.emit("dft", ins, n.outputs, inverse=bool(n.attr("inverse", 0)), onesided=bool(n.attr("onesided", 0)))


def dft_17(b, n):
    _dft(b, n, b.const(np.array(int(n.attr("axis", 1)), dtype=np.int64), "axis"))


def dft_20(b, n):
    axis = n.input(2) if n.has_input(2) else b.const(np.array(-2, dtype=np.int64), "axis")
    _dft(b, n, axis)


def stft(b, n):
    if n.has_input(2) and b.dtype(n.input(2)) != b.dtype(n.input(0)):
        raise Unsupported(f"window dtype {b.dtype(n.input(2))} differs from the signal's {b.dtype(n.input(0))}")
    ins = [n.input(0), _int64(b, n.input(1)), n.input(2), _int64(b, n.input(3))]
    while ins and not ins[-1]:  # trailing omitted inputs are left off
        ins.pop()
    b.emit("stft", ins, n.outputs, onesided=bool(n.attr("onesided", 1)))


def _output_dtype(n, what: str) -> str:
    return onnx_dtype(int(n.attr("output_datatype", 1)), f"{what} output_datatype")


def _window(op: str):
    def handler(b, n):
        b.emit(op, [_int64(b, n.input(0))], n.outputs, periodic=bool(n.attr("periodic", 1)),
               dtype=_output_dtype(n, n.op_type))
    handler.__name__ = f"onnx_to_{op}"
    return handler


def mel_weight_matrix(b, n):
    lo, hi = n.input(3), n.input(4)
    if b.dtype(lo) != b.dtype(hi):
        raise Unsupported(f"lower/upper edge dtypes differ: {b.dtype(lo)} vs {b.dtype(hi)}")
    ins = [_int64(b, n.input(i)) for i in range(3)] + [lo, hi]
    b.emit("mel_weight_matrix", ins, n.outputs, dtype=_output_dtype(n, "MelWeightMatrix"))


def register(reg):
    reg.insert("DFT", dft_17, since=17)
    reg.insert("DFT", dft_20, since=20)
    reg.insert("STFT", stft, since=17)
    reg.insert("HannWindow", _window("hann_window"), since=17)
    reg.insert("HammingWindow", _window("hamming_window"), since=17)
    reg.insert("BlackmanWindow", _window("blackman_window"), since=17)
    reg.insert("MelWeightMatrix", mel_weight_matrix, since=17)
