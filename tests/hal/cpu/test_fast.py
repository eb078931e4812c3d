"""Tests for clawdbot.hal.cpu.fast: the Cython kernels and their numpy fallbacks.

Every kernel runs through both backends (the public dispatcher, which uses the
compiled code when it is built, and fast.numpy_impl) and is checked against
an independent oracle: onnxruntime on a one-node ONNX model where the op is an
ONNX op and ORT implements it for the dtype (MaxPool, AveragePool, Conv with
group=C in float32; MaxPool in float64), otherwise plain Python loops written
here. The loop references are themselves checked against ORT in float32, and
im2col is additionally checked by doing a dense convolution as im2col + GEMM.

Build first: python setup.py build_ext --inplace
Run: PYTHONPATH=runtime python -m pytest tests/hal/cpu/test_fast.py -q
"""

import glob
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from clawdbot.hal.cpu import fast

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
CYTHON_DIR = os.path.join(REPO, "runtime", "clawdbot", "hal", "cpu", "_cython")
# Under emulation the kernels under test come from an installed bundle, not from this checkout:
# CLAWDBOT_EXPECT_COMPILED=1 says they must be compiled all the same (a broken .so must not pass as "skipped").
CYTHON_BUILT = os.environ.get("CLAWDBOT_EXPECT_COMPILED", "").strip() == "1" or all(
    glob.glob(os.path.join(CYTHON_DIR, f"{name}.*.so"))
    or glob.glob(os.path.join(CYTHON_DIR, f"{name}.*.pyd"))
    for name in ("im2col", "pool", "depthwise", "mathfn", "qgemm")
)
# Built, and not switched off for this run: the dispatcher must then use it.
CYTHON_EXPECTED = CYTHON_BUILT and os.environ.get("CLAWDBOT_PURE_PYTHON", "").strip() != "1"

# (H, W, kernel, stride, dilation, pads (top, left, bottom, right), ceil_mode)
# Odd and degenerate sizes, strides 1-3, dilations 1-2, asymmetric pads, and
# ceil_mode windows that run past the declared padding. Pads stay below the
# kernel size because ORT's pooling insists on it.
CASES = [
    (13, 7, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1), 0),
    (13, 7, (3, 2), (2, 3), (2, 1), (1, 0, 2, 1), 1),
    (7, 13, (2, 3), (3, 2), (1, 2), (0, 2, 1, 0), 1),
    (1, 7, (1, 3), (1, 2), (1, 1), (0, 1, 0, 2), 0),
    (13, 1, (3, 1), (2, 1), (2, 1), (2, 0, 1, 0), 1),
    (13, 13, (5, 5), (3, 3), (1, 2), (2, 1, 3, 4), 1),
    (7, 7, (7, 7), (1, 1), (1, 1), (0, 0, 0, 0), 0),
    (1, 1, (1, 1), (1, 1), (1, 1), (0, 0, 0, 0), 0),
    (13, 7, (2, 2), (2, 2), (1, 1), (0, 0, 1, 1), 1),
    (7, 13, (3, 3), (3, 1), (2, 2), (2, 2, 0, 1), 0),
    # ceil_mode windows that end beyond the declared padding: with
    # count_include_pad the divisor must stop at the padded extent.
    (6, 8, (3, 3), (2, 3), (1, 1), (0, 1, 0, 1), 1),
    (12, 9, (3, 3), (2, 2), (1, 2), (1, 0, 1, 1), 1),
]
CASE_IDS = [f"case{i}" for i in range(len(CASES))]
DTYPES = [np.float32, np.float64]
N, C = 2, 3

BACKENDS = [
    pytest.param("cython", marks=pytest.mark.skipif(
        not CYTHON_EXPECTED, reason="Cython extensions not built in place, or disabled")),
    "numpy",
]


def kernels(backend):
    # The public dispatcher is the Cython path whenever the extensions are
    # built (test_cython_backend_in_use makes sure it does not fall back).
    return fast if backend == "cython" else fast.numpy_impl


def tol(dtype):
    return dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)


def data(shape, dtype, seed):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# --- onnxruntime oracle -------------------------------------------------------

def run_onnx(op, inputs, **attrs):
    """Run a single ONNX node on CPU; returns its only output."""
    elem = {np.dtype(np.float32): TensorProto.FLOAT,
            np.dtype(np.float64): TensorProto.DOUBLE}[inputs[0].dtype]
    names = [f"in{i}" for i in range(len(inputs))]
    graph = helper.make_graph(
        [helper.make_node(op, names, ["out"], **attrs)], "single",
        [helper.make_tensor_value_info(n, elem, a.shape) for n, a in zip(names, inputs)],
        [helper.make_tensor_value_info("out", elem, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
    return sess.run(None, dict(zip(names, inputs)))[0]


def onnx_pads(pads):
    top, left, bottom, right = pads
    return [top, left, bottom, right]  # ONNX: x1_begin, x2_begin, x1_end, x2_end


# --- plain-loop references ----------------------------------------------------

def window(oy, ox, kernel, stride, dilation, pads):
    """(ky, kx, iy, ix) for every tap of output (oy, ox), padding included."""
    for ky in range(kernel[0]):
        for kx in range(kernel[1]):
            yield (ky, kx, oy * stride[0] + ky * dilation[0] - pads[0],
                   ox * stride[1] + kx * dilation[1] - pads[1])


def ref_im2col(x, kernel, stride, dilation, pads, out_hw):
    c_, h, w = x.shape
    kh, kw = kernel
    oh, ow = out_hw
    out = np.zeros((c_, kh, kw, oh, ow), dtype=x.dtype)
    for oy in range(oh):
        for ox in range(ow):
            for ky, kx, iy, ix in window(oy, ox, kernel, stride, dilation, pads):
                if 0 <= iy < h and 0 <= ix < w:
                    out[:, ky, kx, oy, ox] = x[:, iy, ix]
    return out.reshape(c_ * kh * kw, oh * ow)


def ref_max_pool(x, kernel, stride, dilation, pads, out_hw):
    h, w = x.shape[2:]
    out = np.empty(x.shape[:2] + tuple(out_hw), dtype=x.dtype)
    for oy in range(out_hw[0]):
        for ox in range(out_hw[1]):
            vals = [x[:, :, iy, ix]
                    for _, _, iy, ix in window(oy, ox, kernel, stride, dilation, pads)
                    if 0 <= iy < h and 0 <= ix < w]
            out[:, :, oy, ox] = np.max(vals, axis=0)
    return out


def ref_avg_pool(x, kernel, stride, pads, out_hw, count_include_pad):
    h, w = x.shape[2:]
    top, left, bottom, right = pads
    out = np.empty(x.shape[:2] + tuple(out_hw), dtype=x.dtype)
    for oy in range(out_hw[0]):
        for ox in range(out_hw[1]):
            total = np.zeros(x.shape[:2], dtype=x.dtype)
            count = 0
            for _, _, iy, ix in window(oy, ox, kernel, stride, (1, 1), pads):
                if 0 <= iy < h and 0 <= ix < w:
                    total += x[:, :, iy, ix]
                if count_include_pad:
                    count += (-top <= iy < h + bottom) and (-left <= ix < w + right)
                else:
                    count += (0 <= iy < h) and (0 <= ix < w)
            out[:, :, oy, ox] = total / count
    return out


def ref_depthwise(x, wt, bias, stride, dilation, pads, out_hw):
    h, w = x.shape[2:]
    out = np.zeros(x.shape[:2] + tuple(out_hw), dtype=x.dtype)
    if bias is not None:
        out += bias[None, :, None, None]
    for oy in range(out_hw[0]):
        for ox in range(out_hw[1]):
            for ky, kx, iy, ix in window(oy, ox, wt.shape[2:], stride, dilation, pads):
                if 0 <= iy < h and 0 <= ix < w:
                    out[:, :, oy, ox] += wt[None, :, 0, ky, kx] * x[:, :, iy, ix]
    return out


def out_size(n, k, s, d, p0, p1, ceil_mode):
    span = n + p0 + p1 - ((k - 1) * d + 1)
    return (math.ceil(span / s) if ceil_mode else span // s) + 1


# --- the kernels against the oracles -------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_max_pool2d(case, backend, dtype):
    h, w, kernel, stride, dilation, pads, ceil_mode = case
    x = data((N, C, h, w), dtype, seed=h * 31 + w)
    want = run_onnx("MaxPool", [x], kernel_shape=list(kernel), strides=list(stride),
                    dilations=list(dilation), pads=onnx_pads(pads), ceil_mode=ceil_mode)
    got = kernels(backend).max_pool2d(x, kernel, stride, dilation, pads, want.shape[2:])
    assert got.dtype == dtype and got.flags.c_contiguous
    np.testing.assert_array_equal(got, want)  # max is exact


@pytest.mark.parametrize("count_include_pad", [0, 1])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_avg_pool2d(case, backend, dtype, count_include_pad):
    h, w, kernel, stride, _, pads, ceil_mode = case
    x = data((N, C, h, w), dtype, seed=h * 17 + w)
    want = run_onnx("AveragePool", [x.astype(np.float32)], kernel_shape=list(kernel),
                    strides=list(stride), pads=onnx_pads(pads), ceil_mode=ceil_mode,
                    count_include_pad=count_include_pad)
    # ORT decides the ceil_mode output size (it drops a last window that would
    # start beyond the padding); it has no float64 AveragePool, so float64 is
    # checked against the loop reference at that size.
    out_hw = want.shape[2:]
    if dtype == np.float64:
        want = ref_avg_pool(x, kernel, stride, pads, out_hw, count_include_pad)
    got = kernels(backend).avg_pool2d(x, kernel, stride, pads, out_hw, count_include_pad)
    assert got.dtype == dtype and got.flags.c_contiguous
    assert np.isfinite(got).all()  # every window counts at least one position
    np.testing.assert_allclose(got, want, **tol(dtype))


@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_depthwise_conv2d(case, backend, dtype, with_bias):
    h, w, kernel, stride, dilation, pads, _ = case
    x = data((N, C, h, w), dtype, seed=h * 7 + w)
    wt = data((C, 1) + kernel, dtype, seed=1)
    bias = data((C,), dtype, seed=2) if with_bias else None
    inputs = [x, wt] + ([bias] if with_bias else [])
    want = run_onnx("Conv", [a.astype(np.float32) for a in inputs], kernel_shape=list(kernel),
                    strides=list(stride), dilations=list(dilation), pads=onnx_pads(pads),
                    group=C)
    out_hw = want.shape[2:]
    if dtype == np.float64:  # ORT has no float64 Conv
        want = ref_depthwise(x, wt, bias, stride, dilation, pads, out_hw)
    got = kernels(backend).depthwise_conv2d(x, wt, bias, stride, dilation, pads, out_hw)
    assert got.dtype == dtype and got.flags.c_contiguous
    np.testing.assert_allclose(got, want, **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_im2col(case, backend, dtype):
    h, w, kernel, stride, dilation, pads, ceil_mode = case
    x = data((C, h, w), dtype, seed=h * 5 + w)
    out_hw = (out_size(h, kernel[0], stride[0], dilation[0], pads[0], pads[2], ceil_mode),
              out_size(w, kernel[1], stride[1], dilation[1], pads[1], pads[3], ceil_mode))
    got = kernels(backend).im2col(x, kernel, stride, dilation, pads, out_hw)
    assert got.dtype == dtype and got.flags.c_contiguous
    np.testing.assert_array_equal(got, ref_im2col(x, kernel, stride, dilation, pads, out_hw))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CASES[:6], ids=CASE_IDS[:6])
def test_im2col_gemm_matches_onnx_conv(case, backend):
    # A dense convolution done the way the driver does it, against ORT.
    h, w, kernel, stride, dilation, pads, _ = case
    x = data((1, C, h, w), np.float32, seed=3)
    wt = data((4, C) + kernel, np.float32, seed=4)
    want = run_onnx("Conv", [x, wt], kernel_shape=list(kernel), strides=list(stride),
                    dilations=list(dilation), pads=onnx_pads(pads))
    cols = kernels(backend).im2col(x[0], kernel, stride, dilation, pads, want.shape[2:])
    got = (wt.reshape(4, -1) @ cols).reshape(want.shape)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", CASES[:6], ids=CASE_IDS[:6])
def test_loop_references_match_onnx(case):
    # The float64 tests trust these loops; make sure they agree with ORT.
    h, w, kernel, stride, dilation, pads, ceil_mode = case
    x = data((N, C, h, w), np.float32, seed=5)
    for cip in (0, 1):
        want = run_onnx("AveragePool", [x], kernel_shape=list(kernel), strides=list(stride),
                        pads=onnx_pads(pads), ceil_mode=ceil_mode, count_include_pad=cip)
        got = ref_avg_pool(x, kernel, stride, pads, want.shape[2:], cip)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    wt = data((C, 1) + kernel, np.float32, seed=6)
    want = run_onnx("Conv", [x, wt], kernel_shape=list(kernel), strides=list(stride),
                    dilations=list(dilation), pads=onnx_pads(pads), group=C)
    got = ref_depthwise(x, wt, None, stride, dilation, pads, want.shape[2:])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


# --- dispatch ---------------------------------------------------------------------

def test_fallback_for_other_layouts_and_dtypes():
    # Strided views, float16 and integers take the numpy path through the
    # public functions and still give the right answer.
    base = data((N, C, 13, 14), np.float32, seed=7)
    x = base[:, :, :, ::2]
    assert not x.flags.c_contiguous
    args = ((3, 3), (2, 1), (1, 1), (1, 1, 1, 1))
    want = run_onnx("MaxPool", [np.ascontiguousarray(x)], kernel_shape=[3, 3],
                    strides=[2, 1], pads=[1, 1, 1, 1])
    np.testing.assert_array_equal(fast.max_pool2d(x, *args, want.shape[2:]), want)

    half = x.astype(np.float16)
    got = fast.avg_pool2d(half, (3, 3), (2, 1), (1, 1, 1, 1), want.shape[2:], 1)
    assert got.dtype == np.float16
    ref = ref_avg_pool(half.astype(np.float64), (3, 3), (2, 1), (1, 1, 1, 1),
                       want.shape[2:], 1)
    np.testing.assert_allclose(got, ref, rtol=2e-3, atol=2e-3)

    ints = (x * 20).astype(np.int8)
    got = fast.max_pool2d(ints, *args, want.shape[2:])
    assert got.dtype == np.int8
    np.testing.assert_array_equal(got, ref_max_pool(ints, *args, want.shape[2:]))


def test_rejects_bad_arguments():
    x = np.zeros((1, 2, 5, 5), np.float32)
    with pytest.raises(ValueError):
        fast.max_pool2d(x, (3, 3), (0, 1), (1, 1), (0, 0, 0, 0), (3, 3))
    with pytest.raises(ValueError):
        fast.max_pool2d(x, (3, 3), (1, 1), (1, 1), (0, -1, 0, 0), (3, 3))
    with pytest.raises(ValueError):
        fast.max_pool2d(x[0], (3, 3), (1, 1), (1, 1), (0, 0, 0, 0), (3, 3))
    with pytest.raises(ValueError):
        fast.depthwise_conv2d(x, np.zeros((3, 1, 3, 3), np.float32), None,
                              1, 1, 0, (3, 3))


@pytest.mark.skipif(not CYTHON_EXPECTED,
                    reason="Cython extensions not built in place, or disabled")
def test_cython_backend_in_use(monkeypatch):
    assert fast.BACKEND == "cython", fast.IMPORT_ERROR
    assert fast.IMPORT_ERROR is None

    def refuse(*args, **kwargs):
        raise AssertionError("float32 C-contiguous input went to the numpy fallback")

    for name in ("im2col", "max_pool2d", "avg_pool2d", "depthwise_conv2d"):
        monkeypatch.setattr(fast.numpy_impl, name, refuse)
    # Read-only inputs (weights from a mapped model file) must not need a copy.
    x = data((1, 2, 7, 7), np.float32, seed=8)
    wt = data((2, 1, 3, 3), np.float32, seed=9)
    x.setflags(write=False)
    wt.setflags(write=False)
    fast.im2col(x[0], (3, 3), 1, 1, 1, (7, 7))
    fast.max_pool2d(x, (3, 3), 1, 1, 1, (7, 7))
    fast.avg_pool2d(x, (3, 3), 1, 1, (7, 7), True)
    fast.depthwise_conv2d(x, wt, None, 1, 1, 1, (7, 7))


def _backend_in_subprocess(env_value):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [os.path.join(REPO, "runtime")] + [p for p in [env.get("PYTHONPATH")] if p])
    env.pop("CLAWDBOT_PURE_PYTHON", None)
    if env_value is not None:
        env["CLAWDBOT_PURE_PYTHON"] = env_value
    result = subprocess.run(
        [sys.executable, "-c", "from clawdbot.hal.cpu import fast; print(fast.BACKEND)"],
        env=env, capture_output=True, text=True, timeout=60, check=True)
    return result.stdout.strip().splitlines()[-1]


def test_pure_python_env_selects_numpy():
    assert _backend_in_subprocess("1") == "numpy"
    if CYTHON_BUILT:
        assert _backend_in_subprocess(None) == "cython"
