"""Dynamic int8 matmuls: activations quantized per row to uint8 on the fly, int8 weights, int32 sums.

The int8 GEMM (hal/cpu/_cython/qgemm_impl.h, AVX-512 VNNI when the CPU has it) must be exact against numpy's
int64 product, through every tail (rows not a multiple of 4, columns not of 16, depth not of 4), and so must
its numpy fallback. The kernel is then checked against its definition computed in float64.
"""
from __future__ import annotations

import numpy as np
import pytest

from clawdbot.converter import ModelConverter
from clawdbot.hal.cpu import fast
from clawdbot.hal.cpu.kernels import wquant
from clawdbot.quant.rewrite import QuantOptions
from clawdbot.quant.weights import quantize_rows
from clawdbot.tools import zoo

RNG = np.random.default_rng(8)
SHAPES = [(1, 1, 1), (3, 5, 7), (4, 4, 16), (5, 33, 17), (9, 64, 48), (128, 384, 384), (130, 1536, 390)]


def _padded(a: np.ndarray) -> np.ndarray:
    out = np.zeros((a.shape[0], -(-a.shape[1] // 4) * 4), np.uint8)
    out[:, :a.shape[1]] = a
    return out


@pytest.mark.parametrize("m, k, n", SHAPES)
@pytest.mark.parametrize("backend", ["compiled", "numpy"])
def test_int8_gemm_is_exact(m, k, n, backend, monkeypatch):
    if backend == "numpy":
        monkeypatch.setattr(fast, "int8_gemm_backend", lambda: "numpy")
    elif fast.int8_gemm_backend() == "numpy":
        pytest.skip("the compiled int8 GEMM is not built")
    a = RNG.integers(0, 256, (m, k), dtype=np.uint8)
    a[0, :] = 255                                     # the extremes: 255 * -128 * k must not overflow
    w = RNG.integers(-128, 128, (n, k), dtype=np.int8)
    w[0, :] = -128
    got = fast.int8_gemm(_padded(a), fast.pack_int8_weights(w), w)
    np.testing.assert_array_equal(got, a.astype(np.int64) @ w.T.astype(np.int64))


def test_the_dynamic_kernel_computes_its_definition():
    x = (RNG.standard_normal((2, 7, 96)) * RNG.uniform(0.1, 4, size=(2, 7, 1))).astype(np.float32)
    x[0, 3] = 0.0                                     # an all-zero row: scale 1, zero point 0
    w = RNG.standard_normal((40, 96)).astype(np.float32)
    m = quantize_rows(w, 8, 0)
    got = wquant._matmul_dynamic(96)(x, m.q, m.scale)
    # the definition: per-row uint8 of x (range widened to hold 0), int8 rows of w, exact sums
    x2 = x.reshape(-1, 96).astype(np.float64)
    lo, hi = np.minimum(x2.min(1), 0), np.maximum(x2.max(1), 0)
    sx = np.where(hi > lo, (hi - lo) / 255, 1.0)
    zx = np.rint(-lo / sx)
    xq = np.clip(np.rint(x2 / sx[:, None]) + zx[:, None], 0, 255)
    want = (((xq - zx[:, None]) @ m.q.T.astype(np.float64)) * sx[:, None] * m.scale[:, 0]).reshape(2, 7, 40)
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=2e-6 * np.abs(want).max())


def test_only_whole_row_int8_matmuls_go_dynamic():
    model = zoo.build("bert_encoder", num_layers=1)
    kinds = {n.attrs["activations"] for n in ModelConverter(quantization_bits=8).convert(model).graph.nodes
             if n.op == "matmul_wq"}
    assert kinds == {"int8"}
    grouped = ModelConverter(quant_options=QuantOptions(bits=8, group_size=32)).convert(model).graph
    assert {n.attrs["activations"] for n in grouped.nodes if n.op == "matmul_wq"} == {"float"}
    int4 = ModelConverter(quantization_bits=4).convert(model).graph
    assert {n.attrs["activations"] for n in int4.nodes if n.op == "matmul_wq"} == {"float"}


def _fake_quant_image(x: np.ndarray) -> np.ndarray:
    """Each image through the dynamic conv's uint8 round trip (its range widened to hold 0)."""
    out = np.empty_like(x)
    for i, img in enumerate(x.astype(np.float64)):
        lo, hi = min(img.min(), 0.0), max(img.max(), 0.0)
        s = (hi - lo) / 255 if hi > lo else 1.0
        z = np.rint(-lo / s)
        out[i] = (np.clip(np.rint(img / s) + z, 0, 255) - z) * s
    return out


@pytest.mark.parametrize("kernel, stride, pad", [(3, 1, 1), (1, 1, 0), (3, 2, 1), (5, 1, 2)])
def test_the_dynamic_conv_is_the_conv_of_its_round_tripped_input_and_weight(kernel, stride, pad):
    """Checked against onnxruntime's fp32 conv on the input and weight as the kernel sees them after their
    round trips (every input pixel is used by these windows, so the image's range is the unrolled one's)."""
    from claw_testing import graph_model, ort_run
    from onnx import helper
    x = RNG.standard_normal((2, 6, 9, 9)).astype(np.float32) + 0.5
    w = RNG.standard_normal((10, 6, kernel, kernel)).astype(np.float32)
    b = RNG.standard_normal(10).astype(np.float32)
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], kernel_shape=[kernel, kernel], strides=[stride] * 2,
                            pads=[pad] * 4)
    model = graph_model([node], {"x": x}, {"w": w, "b": b})
    q = ModelConverter(quant_options=QuantOptions(bits=8, min_elements=1)).convert(model)
    assert next(n for n in q.graph.nodes if n.op == "conv_wq").attrs["activations"] == "int8"
    got = q.session().run({"x": x})["y"]
    m = quantize_rows(w.reshape(10, -1), 8, 0)
    w_rt = (m.q.astype(np.float32) * m.scale).reshape(w.shape)
    ref = ort_run(graph_model([node], {"x": x}, {"w": w_rt, "b": b}), {"x": _fake_quant_image(x)})[0]
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


@pytest.mark.parametrize("kernel, stride, dilation", [(3, 1, 1), (1, 1, 1), (3, 2, 1), (3, 1, 2), (5, 2, 1)])
def test_the_uint8_unrolling_matches_its_numpy_twin(kernel, stride, dilation, monkeypatch):
    from clawdbot.hal.cpu.kernels.conv import Window
    xp = RNG.integers(0, 256, (5, 13, 11), dtype=np.uint8)
    oh = (13 - (kernel - 1) * dilation - 1) // stride + 1
    ow = (11 - (kernel - 1) * dilation - 1) // stride + 1
    win = Window((kernel, kernel), (stride, stride), (dilation, dilation), (0, 0, 0, 0), (oh, ow))
    compiled = fast.im2row_u8(xp, win, np.zeros((oh * ow, 5 * kernel * kernel + 3), np.uint8))
    monkeypatch.setattr(fast, "BACKEND", "numpy")
    twin = fast.im2row_u8(xp, win, np.zeros((oh * ow, 5 * kernel * kernel + 3), np.uint8))
    np.testing.assert_array_equal(compiled, twin)
    # and the definition, for one output pixel
    oy, ox = oh - 1, ow // 2
    want = xp[:, oy * stride:oy * stride + (kernel - 1) * dilation + 1:dilation,
              ox * stride:ox * stride + (kernel - 1) * dilation + 1:dilation].reshape(-1)
    np.testing.assert_array_equal(twin[oy * ow + ox, :want.size], want)


@pytest.mark.parametrize("m, c, k, stride, size", [(4, 3, 3, 1, 6), (21, 16, 3, 2, 9), (64, 64, 1, 1, 7),
                                                   (5, 2, 5, 1, 8)])
def test_the_conv_gemm_is_exact(m, c, k, stride, size):
    """Weights x every window of a padded uint8 image, int32, against numpy's int64 (compiled path, or its
    numpy twin where the kernels are not built); pixel counts not a multiple of 16 exercise the panel tails."""
    from clawdbot.hal.cpu.kernels.conv import Window
    xp = RNG.integers(0, 256, (c, size, size), dtype=np.uint8)
    o = (size - k) // stride + 1
    win = Window((k, k), (stride, stride), (1, 1), (0, 0, 0, 0), (o, o))
    kp = -(-c * k * k // 4) * 4
    w = np.zeros((m, kp), np.int8)
    w[:, :c * k * k] = RNG.integers(-128, 128, (m, c * k * k), dtype=np.int8)
    got = fast.int8_conv_gemm(w, xp, win)
    rows = np.stack([xp[:, oy * stride:oy * stride + k, ox * stride:ox * stride + k].reshape(-1)
                     for oy in range(o) for ox in range(o)]).astype(np.int64)
    np.testing.assert_array_equal(got, w[:, :c * k * k].astype(np.int64) @ rows.T)
