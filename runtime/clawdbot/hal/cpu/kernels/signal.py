"""CPU kernels: signal family (dft, stft, cosine windows, mel_weight_matrix).

Transforms run numpy's pocketfft in the input's precision (complex64 for float16/float32, complex128 for
float64); real inputs take the real-input transforms, which do half the work. Windows and the mel filter bank
are computed in float64 and cast, so every output dtype gets the correctly rounded values.
"""
from __future__ import annotations

import numpy as np

from ....ir.ops.signal import WINDOW_COEFFS, stft_frame_length
from .registry import kernel


def _scalar(v) -> int:
    return int(np.asarray(v).reshape(-1)[0])


def _work(dtype) -> np.dtype:
    """The real dtype the transform computes in (numpy's FFT has no float16)."""
    return np.dtype(np.float64 if dtype == np.float64 else np.float32)


def _as_signal(x):
    """x [..., 1] -> the real array x[..., 0]; x [..., 2] -> the complex array re + j im."""
    work = _work(x.dtype)
    if x.shape[-1] == 1:
        return x[..., 0].astype(work, copy=False)
    z = np.empty(x.shape[:-1], dtype=np.result_type(work, np.complex64))
    z.real, z.imag = x[..., 0], x[..., 1]
    return z


def _as_pairs(z, dtype):
    """Complex z -> [..., 2] real/imag pairs of `dtype`."""
    out = np.empty(z.shape + (2,), dtype=dtype)
    out[..., 0], out[..., 1] = z.real, z.imag
    return out


def _forward(sig, n: int, axis: int, onesided: bool):
    if np.iscomplexobj(sig):
        z = np.fft.fft(sig, n=n, axis=axis)
        return np.take(z, np.arange(n // 2 + 1), axis=axis) if onesided else z
    if onesided:
        return np.fft.rfft(sig, n=n, axis=axis)
    # The full spectrum of a real signal: rfft's half and its mirrored conjugate (cheaper than a complex fft).
    half = np.fft.rfft(sig, n=n, axis=axis)
    mirror = np.conj(np.flip(np.take(half, np.arange(1, (n + 1) // 2), axis=axis), axis=axis))
    return np.concatenate([half, mirror], axis=axis)


@kernel("dft")
def dft(x, axis, length=None, *, inverse, onesided):
    ax = _scalar(axis) % x.ndim
    sig = _as_signal(x)
    if length is not None:
        n = _scalar(length)
    else:
        n = 2 * (x.shape[ax] - 1) if inverse and onesided else x.shape[ax]
    if inverse and onesided:
        # Hermitian input (the first n//2+1 bins) -> the real signal of length n.
        return np.fft.irfft(sig, n=n, axis=ax)[..., None].astype(x.dtype)
    z = np.fft.ifft(sig, n=n, axis=ax) if inverse else _forward(sig, n, ax, onesided)
    return _as_pairs(z, x.dtype)


@kernel("stft")
def stft(signal, frame_step, window=None, frame_length=None, *, onesided):
    step = _scalar(frame_step)
    frame = stft_frame_length(None if frame_length is None else _scalar(frame_length),
                              None if window is None else window.shape, signal.shape[1])
    sig = _as_signal(signal)                                         # [batch, length]
    n_frames = (sig.shape[1] - frame) // step + 1
    frames = np.lib.stride_tricks.sliding_window_view(sig, frame, axis=1)[:, ::step][:, :n_frames]
    if window is not None:
        frames = frames * window.astype(_work(signal.dtype), copy=False)
    return _as_pairs(_forward(frames, frame, -1, onesided), signal.dtype)


def _cosine_window(coeffs):
    a0, a1, a2 = coeffs

    def run(size, *, periodic, dtype):
        n = _scalar(size)
        m = n if periodic else n - 1
        if m == 0:   # a symmetric window of one point: [1] as numpy, scipy and PyTorch give it (not 0 / 0)
            return np.ones(n, dtype=dtype)
        phase = 2 * np.pi * np.arange(n, dtype=np.float64) / m
        w = a0 - a1 * np.cos(phase) + a2 * np.cos(2 * phase)
        return w.astype(dtype)
    return run


for _name, _coeffs in WINDOW_COEFFS.items():
    kernel(_name)(_cosine_window(_coeffs))


def _hz_to_mel(hz):
    return 2595.0 * np.log10(1.0 + hz / 700.0)


def _mel_to_hz(mel):
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


@kernel("mel_weight_matrix")
def mel_weight_matrix(num_mel_bins, dft_length, sample_rate, lower_edge_hertz, upper_edge_hertz, *, dtype):
    n_mel, length, rate = _scalar(num_mel_bins), _scalar(dft_length), _scalar(sample_rate)
    lo = _hz_to_mel(float(np.asarray(lower_edge_hertz).reshape(-1)[0]))
    hi = _hz_to_mel(float(np.asarray(upper_edge_hertz).reshape(-1)[0]))
    # n_mel + 2 equally spaced mel points (the step divides by n_mel + 2, as ONNX's reference does), each
    # mapped to the spectrogram bin that holds it.
    mels = lo + np.arange(n_mel + 2) * ((hi - lo) / (n_mel + 2))
    edges = np.floor((length + 1) * _mel_to_hz(mels) / rate).astype(np.int64)
    left, center, right = edges[:-2], edges[1:-1], edges[2:]         # [n_mel] each
    j = np.arange(length // 2 + 1)[:, None]                          # spectrogram bin, [bins, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        rise = np.where((j >= left) & (j <= center), (j - left) / (center - left), 0.0)
        fall = np.where((j >= center) & (j < right), (right - j) / (right - center), 0.0)
    # Degenerate triangles: an empty rising edge puts a single 1 at the centre.
    w = np.where(center > left, rise, (j == center).astype(np.float64))
    w = np.where(right > center, np.maximum(w, fall), w)
    return w.astype(dtype)
