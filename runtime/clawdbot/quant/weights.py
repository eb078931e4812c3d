"""Weight-only quantization of one matrix into the row-quantized form of ir/ops/wquant.py, and back.

int8: symmetric per group, scale = max|w| / 127, q = round(w / scale) — the zero point is 0, so the int8
values keep their sign and an int8 GEMM can use them as they are. int4: asymmetric per group (weights are
rarely centred at zero inside a small group), scale = (max - min) / 15, zero point = round(-min / scale) in
0..15, q = clamp(round(w / scale) + zero point, 0, 15), packed two per byte (column 2i low nibble).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class QuantizedMatrix:
    q: np.ndarray                  # int8 [R, C] or packed uint8 [R, ceil(C/2)]
    scale: np.ndarray              # float32 [R, C / group]
    zero_point: np.ndarray | None  # uint8 [R, C / group] (int4), None (int8)
    bits: int
    group_size: int
    cols: int

    @property
    def nbytes(self) -> int:
        return self.q.nbytes + self.scale.nbytes + (0 if self.zero_point is None else self.zero_point.nbytes)


def group_for(cols: int, group_size: int) -> int:
    """The group actually used: `group_size` when it divides the row, else the whole row (one scale)."""
    return group_size if 0 < group_size <= cols and cols % group_size == 0 else cols


def quantize_rows(w: np.ndarray, bits: int, group_size: int) -> QuantizedMatrix:
    """Quantize the rows of the float matrix `w` [R, C]; `group_size` 0 means one group per row."""
    w = np.asarray(w, dtype=np.float32)
    rows, cols = w.shape
    group = group_for(cols, group_size)
    g = w.reshape(rows, cols // group, group).astype(np.float64)
    if bits == 8:
        amax = np.abs(g).max(axis=2)
        scale = np.where(amax > 0, amax / 127.0, 1.0)
        q = np.clip(np.rint(g / scale[..., None]), -127, 127).astype(np.int8).reshape(rows, cols)
        return QuantizedMatrix(q, scale.astype(np.float32), None, 8, group, cols)
    if bits != 4:
        raise ValueError(f"bits must be 8 or 4, got {bits}")
    lo, hi = np.minimum(g.min(axis=2), 0.0), np.maximum(g.max(axis=2), 0.0)  # zero stays exact
    scale = np.where(hi > lo, (hi - lo) / 15.0, 1.0)
    zp = np.clip(np.rint(-lo / scale), 0, 15)
    q = np.clip(np.rint(g / scale[..., None]) + zp[..., None], 0, 15).astype(np.uint8).reshape(rows, cols)
    return QuantizedMatrix(pack4(q), scale.astype(np.float32), zp.astype(np.uint8), 4, group, cols)


def pack4(q: np.ndarray) -> np.ndarray:
    """uint8 values 0..15 [R, C] -> [R, ceil(C/2)], column 2i in the low nibble, 2i+1 in the high one."""
    rows, cols = q.shape
    if cols % 2:
        q = np.concatenate([q, np.zeros((rows, 1), np.uint8)], axis=1)
    return (q[:, 0::2] | (q[:, 1::2] << 4)).astype(np.uint8)


def unpack4(packed: np.ndarray, cols: int) -> np.ndarray:
    rows = packed.shape[0]
    out = np.empty((rows, packed.shape[1] * 2), np.uint8)
    out[:, 0::2] = packed & 0x0F
    out[:, 1::2] = packed >> 4
    return out[:, :cols]


def dequantize_rows(m: QuantizedMatrix, r0: int = 0, r1: int | None = None,
                    out: np.ndarray | None = None) -> np.ndarray:
    """Rows r0..r1 of the float32 matrix (the reference the kernels are tested against)."""
    r1 = m.q.shape[0] if r1 is None else r1
    q = m.q[r0:r1] if m.bits == 8 else unpack4(m.q[r0:r1], m.cols)
    rows = r1 - r0
    y = np.empty((rows, m.cols), np.float32) if out is None else out
    y3 = y.reshape(rows, m.cols // m.group_size, m.group_size)
    np.copyto(y3, q.reshape(y3.shape), casting="unsafe")
    if m.zero_point is not None:
        y3 -= m.zero_point[r0:r1, :, None]
    y3 *= m.scale[r0:r1, :, None]
    return y
