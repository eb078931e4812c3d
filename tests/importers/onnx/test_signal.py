"""ONNX signal ops through clawdbot, compared with onnxruntime on one-node models: DFT (opset 17 with the axis
as an attribute and opset 20 with it as an input; real and complex inputs, onesided, inverse, cropped and
zero-padded lengths, a length only known at run time), STFT (with and without a window or frame length,
onesided or not), the Hann/Hamming/Blackman windows (periodic and symmetric, several output types) and
MelWeightMatrix."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import clawdbot

RNG = np.random.default_rng(0)


def model(op: str, inputs: dict, consts: dict | None = None, *, opset: int, **attrs) -> onnx.ModelProto:
    """One node reading `inputs` (graph inputs) then `consts` (initializers; None: an omitted input)."""
    consts = consts or {}
    names = [*inputs, *(n if v is not None else "" for n, v in consts.items())]
    node = helper.make_node(op, names, ["y"], **attrs)
    graph = helper.make_graph(
        [node], op,
        [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
         for n, v in inputs.items()],
        [helper.make_value_info("y", onnx.TypeProto())],
        [numpy_helper.from_array(np.asarray(v), n) for n, v in consts.items() if v is not None])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def check(m: onnx.ModelProto, feeds: dict, rel: float = 1e-5) -> None:
    """Same dtype and shape as onnxruntime, values within rel x the largest reference magnitude (onnxruntime's
    own float32 FFT is only that accurate)."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    ref = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    ours = clawdbot.load(m).run(feeds)["y"]
    assert ours.dtype == ref.dtype and ours.shape == ref.shape, f"{ours.dtype}{ours.shape} vs {ref.dtype}{ref.shape}"
    scale = float(np.max(np.abs(ref.astype(np.float64)), initial=1.0))
    np.testing.assert_allclose(ours.astype(np.float64), ref.astype(np.float64), rtol=0, atol=rel * scale)


def signal(*shape, dtype="float32"):
    return RNG.standard_normal(shape).astype(dtype)


# -- DFT ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("onesided,inverse", [(0, 0), (1, 0), (0, 1), (1, 1)])
@pytest.mark.parametrize("axis", [1, 2, -2])
def test_dft_opset17(axis, onesided, inverse):
    x = signal(2, 8, 6, 2 if inverse or not onesided else 1)
    if inverse and onesided:   # an irfft input: the onesided half of a spectrum
        x = signal(2, 8 if axis == 1 else 5, 6 if axis == 1 else 4, 2)
    check(model("DFT", {"x": x}, opset=17, axis=axis, onesided=onesided, inverse=inverse), {"x": x}, rel=1e-4)


@pytest.mark.parametrize("length", [None, 5, 16])
@pytest.mark.parametrize("axis", [-2, -3, 0])
@pytest.mark.parametrize("last", [1, 2])
def test_dft_opset20_lengths(length, axis, last):
    x = signal(6, 7, last)
    consts = {"length": None if length is None else np.array(length, np.int64), "axis": np.array(axis, np.int64)}
    check(model("DFT", {"x": x}, consts, opset=20), {"x": x}, rel=1e-4)


@pytest.mark.parametrize("inverse", [0, 1])
def test_dft_float64_and_onesided(inverse):
    # An inverse onesided transform of length 9 reads the 9 // 2 + 1 = 5 bins of the half spectrum.
    x = signal(3, 5 if inverse else 9, 1 + inverse, dtype="float64")
    consts = {"length": np.array(9, np.int64), "axis": np.array(1, np.int64)}
    check(model("DFT", {"x": x}, consts, opset=20, onesided=1, inverse=inverse), {"x": x}, rel=1e-7)


def test_dft_length_known_only_at_run_time():
    x = signal(2, 10, 1)
    feeds = {"x": x, "length": np.array(12, np.int64)}
    check(model("DFT", feeds, {"axis": np.array(1, np.int64)}, opset=20, onesided=1), feeds, rel=1e-4)


# -- STFT --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("with_window,with_length", [(True, False), (True, True), (False, True)])
@pytest.mark.parametrize("onesided", [0, 1])
def test_stft(with_window, with_length, onesided):
    x = signal(2, 100, 1)
    frame = 16
    consts = {"step": np.array(6, np.int64),
              "window": np.hanning(frame).astype(np.float32) if with_window else None,
              "length": np.array(frame, np.int64) if with_length else None}
    check(model("STFT", {"x": x}, consts, opset=17, onesided=onesided), {"x": x}, rel=1e-4)


def test_stft_step_and_window_at_run_time():
    feeds = {"x": signal(1, 64, 1), "step": np.array(4, np.int32), "window": signal(10)}
    check(model("STFT", feeds, opset=17), feeds, rel=1e-4)


# -- windows -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("op", ["HannWindow", "HammingWindow", "BlackmanWindow"])
@pytest.mark.parametrize("periodic", [0, 1])
@pytest.mark.parametrize("dtype", [TensorProto.FLOAT, TensorProto.DOUBLE])
def test_windows(op, periodic, dtype):
    m = model(op, {}, {"size": np.array(11, np.int64)}, opset=17, periodic=periodic, output_datatype=dtype)
    check(m, {}, rel=1e-6)


@pytest.mark.parametrize("op", ["HannWindow", "BlackmanWindow"])
def test_window_size_at_run_time(op):
    feeds = {"size": np.array(33, np.int32)}
    check(model(op, feeds, opset=17), feeds, rel=1e-6)


# -- MelWeightMatrix ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bins,length,rate,lo,hi", [(8, 16, 8192, 0.0, 8192 / 2), (40, 512, 16000, 20.0, 7600.0),
                                                   (10, 64, 22050, 300.0, 8000.0)])
def test_mel_weight_matrix(bins, length, rate, lo, hi):
    consts = {"bins": np.array(bins, np.int64), "length": np.array(length, np.int64),
              "rate": np.array(rate, np.int64), "lo": np.array(lo, np.float32), "hi": np.array(hi, np.float32)}
    check(model("MelWeightMatrix", {}, consts, opset=17), {}, rel=1e-6)
