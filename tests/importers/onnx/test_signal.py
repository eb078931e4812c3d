"""ONNX signal ops through clawdbot, compared with onnxruntime on one-node models: DFT (opset 17 with the axis
as an attribute and opset 20 with it as an input; real and complex inputs, onesided, inverse, cropped and
zero-padded lengths, a length only known at run time), STFT (with and without a window or frame length,
onesided or not), the Hann/Hamming/Blackman windows (periodic and symmetric, several output types) and
MelWeightMatrix."""
from __future__ import annotations

from functools import partial

import numpy as np
import onnx
import pytest
from claw_testing import assert_matches_ort, one_node_model, ort_run, randn
from onnx import TensorProto

RNG = np.random.default_rng(0)
model = partial(one_node_model)


def check(m: onnx.ModelProto, feeds: dict, rel: float) -> None:
    """assert_matches_ort with values within rel x the largest reference magnitude, or rel where that is below
    1 (onnxruntime's own float32 FFT is only that accurate)."""
    ref = ort_run(m, feeds)
    peak = float(np.max(np.abs(ref[0].astype(np.float64)), initial=1.0))
    assert_matches_ort(m, feeds, atol=rel * peak, oracle=lambda *_: ref)


# -- DFT ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("onesided,inverse", [(0, 0), (1, 0), (0, 1), (1, 1)])
@pytest.mark.parametrize("axis", [1, 2, -2])
def test_dft_opset17(axis, onesided, inverse):
    x = randn(RNG, (2, 8, 6, 2 if inverse or not onesided else 1))
    if inverse and onesided:   # an irfft input: the onesided half of a spectrum
        x = randn(RNG, (2, 8 if axis == 1 else 5, 6 if axis == 1 else 4, 2))
    check(model("DFT", {"x": x}, axis=axis, onesided=onesided, inverse=inverse), {"x": x}, rel=1e-4)


@pytest.mark.parametrize("length", [None, 5, 16])
@pytest.mark.parametrize("axis", [-2, -3, 0])
@pytest.mark.parametrize("last", [1, 2])
def test_dft_opset20_lengths(length, axis, last):
    x = randn(RNG, (6, 7, last))
    consts = {"length": None if length is None else np.array(length, np.int64), "axis": np.array(axis, np.int64)}
    check(model("DFT", {"x": x}, consts, opset=20), {"x": x}, rel=1e-4)


@pytest.mark.parametrize("inverse", [0, 1])
def test_dft_float64_and_onesided(inverse):
    # An inverse onesided transform of length 9 reads the 9 // 2 + 1 = 5 bins of the half spectrum.
    x = randn(RNG, (3, 5 if inverse else 9, 1 + inverse), dtype="float64")
    consts = {"length": np.array(9, np.int64), "axis": np.array(1, np.int64)}
    check(model("DFT", {"x": x}, consts, opset=20, onesided=1, inverse=inverse), {"x": x}, rel=1e-7)


def test_dft_length_known_only_at_run_time():
    x = randn(RNG, (2, 10, 1))
    feeds = {"x": x, "length": np.array(12, np.int64)}
    check(model("DFT", feeds, {"axis": np.array(1, np.int64)}, opset=20, onesided=1), feeds, rel=1e-4)


# -- STFT --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("with_window,with_length", [(True, False), (True, True), (False, True)])
@pytest.mark.parametrize("onesided", [0, 1])
def test_stft(with_window, with_length, onesided):
    x = randn(RNG, (2, 100, 1))
    frame = 16
    consts = {"step": np.array(6, np.int64),
              "window": np.hanning(frame).astype(np.float32) if with_window else None,
              "length": np.array(frame, np.int64) if with_length else None}
    check(model("STFT", {"x": x}, consts, onesided=onesided), {"x": x}, rel=1e-4)


def test_stft_step_and_window_at_run_time():
    feeds = {"x": randn(RNG, (1, 64, 1)), "step": np.array(4, np.int32), "window": randn(RNG, 10)}
    check(model("STFT", feeds), feeds, rel=1e-4)


# -- windows -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("op", ["HannWindow", "HammingWindow", "BlackmanWindow"])
@pytest.mark.parametrize("periodic", [0, 1])
@pytest.mark.parametrize("dtype", [TensorProto.FLOAT, TensorProto.DOUBLE])
def test_windows(op, periodic, dtype):
    m = model(op, {}, {"size": np.array(11, np.int64)}, periodic=periodic, output_datatype=dtype)
    check(m, {}, rel=1e-6)


@pytest.mark.parametrize("op", ["HannWindow", "BlackmanWindow"])
def test_window_size_at_run_time(op):
    feeds = {"size": np.array(33, np.int32)}
    check(model(op, feeds), feeds, rel=1e-6)


# -- MelWeightMatrix ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bins,length,rate,lo,hi", [(8, 16, 8192, 0.0, 8192 / 2), (40, 512, 16000, 20.0, 7600.0),
                                                   (10, 64, 22050, 300.0, 8000.0)])
def test_mel_weight_matrix(bins, length, rate, lo, hi):
    consts = {"bins": np.array(bins, np.int64), "length": np.array(length, np.int64),
              "rate": np.array(rate, np.int64), "lo": np.array(lo, np.float32), "hi": np.array(hi, np.float32)}
    check(model("MelWeightMatrix", {}, consts), {}, rel=1e-6)
