"""claw ops: signal processing for audio front-ends — the discrete Fourier transform, the short-time Fourier
transform, cosine windows and the mel filter bank.

There is no complex dtype: as in ONNX, a complex tensor is a float tensor whose last axis has size 2 (real,
imaginary), and a real signal may carry a last axis of size 1. Lengths, steps and axes are int64 scalar inputs,
so inference can size the outputs whenever they are constants (they nearly always are).
"""
from __future__ import annotations

from ..dtypes import DTYPES, FLOAT_TYPES
from ..graph import Dim, TensorType
from .registry import Attr, InferenceError, register


def _scalar(ctx, i: int, what: str) -> int | None:
    """The value of int64 scalar input i when known (None when unknown or omitted)."""
    if not ctx.has_input(i):
        return None
    if ctx.dtype(i) != "int64":
        raise InferenceError(f"{what} must be int64, got {ctx.dtype(i)}")
    v = ctx.value(i)
    if v is None:
        return None
    if v.size != 1:
        raise InferenceError(f"{what} must be a scalar, got {v.size} values")
    return int(v.reshape(-1)[0])


def _require_float(ctx, i: int, what: str) -> str:
    dtype = ctx.dtype(i)
    if dtype not in FLOAT_TYPES:
        raise InferenceError(f"{what} must be a float tensor, got {dtype}")
    return dtype


def _check_complex_axis(shape, what: str) -> None:
    if shape is not None:
        if not shape:
            raise InferenceError(f"{what} needs a last axis of size 1 (real) or 2 (complex), got a scalar")
        if isinstance(shape[-1], int) and shape[-1] not in (1, 2):
            raise InferenceError(f"{what}'s last axis must be 1 (real) or 2 (complex), got {shape[-1]}")


# -- DFT --------------------------------------------------------------------------------------------------------
def dft_axis(axis: int, rank: int) -> int:
    """The transformed axis: [-rank, -2] or [0, rank - 2] (the last axis holds real/imaginary parts)."""
    if not (-rank <= axis <= -2 or 0 <= axis <= rank - 2):
        raise InferenceError(f"DFT axis {axis} out of range for rank {rank} (the last axis is real/imag)")
    return axis % rank


def dft_sizes(n_in: Dim, length: int | None, inverse: bool, onesided: bool) -> tuple[Dim, Dim]:
    """(transform length, output size along the axis) for an input of n_in entries along it."""
    if length is None:
        if not isinstance(n_in, int):
            return None, None
        length = 2 * (n_in - 1) if inverse and onesided else n_in
    if length < 1:
        raise InferenceError(f"DFT length {length} must be >= 1")
    return length, (length // 2 + 1 if onesided and not inverse else length)


@register("dft", "signal", "Discrete Fourier transform of x [..., 1 or 2] (real or real/imag pairs) along the "
          "axis given by input 1 (int64 scalar). Input 2 (optional int64 scalar) is the transform length: the "
          "signal is cropped or zero-padded to it (default: its size, or 2*(size-1) for an inverse onesided "
          "transform). `inverse` computes the inverse transform (scaled by 1/length); `onesided` returns the "
          "first length//2+1 bins of a forward transform, or takes them and returns a real signal [..., 1] "
          "for an inverse one.", inputs=(2, 3),
          attrs={"inverse": Attr(bool, False), "onesided": Attr(bool, False)})
def _dft(ctx):
    dtype = _require_float(ctx, 0, "dft input")
    shape = ctx.shape(0)
    _check_complex_axis(shape, "dft input")
    inverse, onesided = ctx.attr("inverse"), ctx.attr("onesided")
    axis = _scalar(ctx, 1, "dft axis")
    length = _scalar(ctx, 2, "dft length")
    last = 1 if inverse and onesided else 2
    if shape is None:
        return [TensorType(dtype, None)]
    if axis is None:
        return [TensorType(dtype, (None,) * (len(shape) - 1) + (last,))]
    axis = dft_axis(axis, len(shape))
    if ctx.has_input(2) and length is None:  # a length computed at run time
        n_out = None
    else:
        _, n_out = dft_sizes(shape[axis], length, inverse, onesided)
    out = list(shape)
    out[axis], out[-1] = n_out, last
    return [TensorType(dtype, tuple(out))]


# -- STFT -------------------------------------------------------------------------------------------------------
def stft_frame_length(length: int | None, window_shape, signal_len: Dim) -> Dim:
    """ONNX's rule: the explicit frame length, else the window's length, else the whole signal."""
    if length is not None:
        return length
    if window_shape is not None:
        return window_shape[0]
    return signal_len


@register("stft", "signal", "Short-time Fourier transform of signal [batch, length, 1 or 2]: frames of "
          "frame_length samples every frame_step (input 1) samples, each multiplied by the window (input 2, "
          "optional; default all ones) and transformed. frame_length (input 3, optional) defaults to the "
          "window's length, else the signal's. Output [batch, frames, bins, 2] with frames = (length - "
          "frame_length) // frame_step + 1 and bins = frame_length // 2 + 1 when onesided, else frame_length.",
          inputs=(2, 4), attrs={"onesided": Attr(bool, True)})
def _stft(ctx):
    dtype = _require_float(ctx, 0, "stft signal")
    shape = ctx.shape(0)
    _check_complex_axis(shape, "stft signal")
    if shape is not None and len(shape) != 3:
        raise InferenceError(f"stft signal must be [batch, length, 1 or 2], got rank {len(shape)}")
    window_shape = None
    if ctx.has_input(2):
        if ctx.dtype(2) != dtype:
            raise InferenceError(f"window dtype {ctx.dtype(2)} differs from the signal's {dtype}")
        window_shape = ctx.shape(2)
        if window_shape is not None and len(window_shape) != 1:
            raise InferenceError(f"window must be 1-D, got rank {len(window_shape)}")
    step = _scalar(ctx, 1, "frame_step")
    if step is not None and step < 1:
        raise InferenceError(f"frame_step {step} must be >= 1")
    batch, n = (None, None) if shape is None else shape[:2]
    length = _scalar(ctx, 3, "frame_length")
    frame = None if ctx.has_input(3) and length is None else stft_frame_length(length, window_shape, n)
    frames = bins = None
    if isinstance(frame, int):
        bins = frame // 2 + 1 if ctx.attr("onesided") else frame
        if isinstance(n, int) and step is not None:
            if frame > n:
                raise InferenceError(f"frame length {frame} exceeds the signal length {n}")
            frames = (n - frame) // step + 1
    return [TensorType(dtype, (batch, frames, bins, 2))]


# -- windows ----------------------------------------------------------------------------------------------------
WINDOW_ATTRS = {
    "periodic": Attr(bool, True, "periodic (for spectral analysis: length N of a period-N window) or symmetric"),
    "dtype": Attr(str, "float32", "output dtype"),
}
# The windows are generalised cosine windows: w[n] = a0 - a1 cos(2 pi n / M) + a2 cos(4 pi n / M), with
# M = size (periodic) or size - 1 (symmetric).
WINDOW_COEFFS = {
    "hann_window": (0.5, 0.5, 0.0),
    "hamming_window": (25 / 46, 21 / 46, 0.0),
    "blackman_window": (0.42, 0.5, 0.08),
}


def _window(ctx):
    dtype = ctx.attr("dtype")
    if dtype not in DTYPES or dtype == "bool":
        raise InferenceError(f"window dtype {dtype!r} is not numeric")
    if ctx.shape(0) not in (None, (), (1,)):
        raise InferenceError(f"window size must be a scalar, got shape {ctx.shape(0)}")
    size = _scalar(ctx, 0, "window size")
    if size is not None and size < 0:
        raise InferenceError(f"window size {size} is negative")
    return [TensorType(dtype, (size,))]


for _name, (_a0, _a1, _a2) in WINDOW_COEFFS.items():
    register(_name, "signal", f"Window of `size` (int64 scalar input) points: w[n] = {_a0:.6g} - {_a1:.6g} "
             f"cos(2 pi n / M)" + (f" + {_a2:.6g} cos(4 pi n / M)" if _a2 else "") +
             ", M = size (periodic) or size - 1 (symmetric).", attrs=WINDOW_ATTRS)(_window)


# -- mel filter bank --------------------------------------------------------------------------------------------
@register("mel_weight_matrix", "signal", "Triangular mel filter bank [dft_length // 2 + 1, num_mel_bins] that "
          "maps a onesided spectrum to mel bands between lower_edge_hertz and upper_edge_hertz (mel(f) = 2595 "
          "log10(1 + f / 700); each triangle peaks at 1). Inputs: num_mel_bins, dft_length, sample_rate "
          "(int64 scalars), lower_edge_hertz, upper_edge_hertz (float scalars).", inputs=(5, 5),
          attrs={"dtype": Attr(str, "float32", "output dtype")})
def _mel_weight_matrix(ctx):
    dtype = ctx.attr("dtype")
    if dtype not in DTYPES or dtype == "bool":
        raise InferenceError(f"mel_weight_matrix dtype {dtype!r} is not numeric")
    for i in (3, 4):
        _require_float(ctx, i, "mel band edge")
    bins = _scalar(ctx, 0, "num_mel_bins")
    length = _scalar(ctx, 1, "dft_length")
    _scalar(ctx, 2, "sample_rate")
    return [TensorType(dtype, (None if length is None else length // 2 + 1, bins))]
