"""MobileNet v2 and MobileNet v3-small (torchvision layouts) with random weights.

These are the depthwise-convolution benchmarks. v2 exercises ReLU6 written as
``Clip(0, 6)`` and linear bottlenecks; v3-small adds squeeze-excite blocks and
the hard activations, written the way exporters decompose them, so the
runtime's pattern matching and fusion see realistic graphs.
"""

from __future__ import annotations

import onnx
from onnx import TensorProto

from ._builder import BATCH, GraphBuilder, make_divisible

# (expand ratio t, output channels c, repeats n, first stride s) - the v2 paper's table.
V2_SETTINGS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)

# (kernel, expanded channels, output channels, squeeze-excite, activation, stride).
V3_SMALL_SETTINGS = (
    (3, 16, 16, True, "relu", 2),
    (3, 72, 24, False, "relu", 2),
    (3, 88, 24, False, "relu", 1),
    (5, 96, 40, True, "hardswish", 2),
    (5, 240, 40, True, "hardswish", 1),
    (5, 240, 40, True, "hardswish", 1),
    (5, 120, 48, True, "hardswish", 1),
    (5, 144, 48, True, "hardswish", 1),
    (5, 288, 96, True, "hardswish", 2),
    (5, 576, 96, True, "hardswish", 1),
    (5, 576, 96, True, "hardswish", 1),
)

# Projection BNs that feed a residual Add get a smaller gamma so the sums of
# linear bottlenecks do not grow block after block.
RESIDUAL_GAMMA = 0.5


def _image_input(b: GraphBuilder) -> str:
    return b.add_input("input", TensorProto.FLOAT, [BATCH, 3, 224, 224])


def mobilenet_v2(*, seed: int = 0, num_classes: int = 1000) -> onnx.ModelProto:
    """MobileNet v2 (width 1.0): inverted residuals, ReLU6 as Clip, ~3.5M params."""
    b = GraphBuilder("mobilenet_v2", seed=seed, doc="MobileNet v2 (random weights, clawdbot zoo)")
    x = _image_input(b)
    with b.scope("features"), b.scope(0):
        y = b.conv_bn_act(x, 3, 32, 3, stride=2, act="relu6")
    cin, index = 32, 1
    for t, c, n, s in V2_SETTINGS:
        for i in range(n):
            stride = s if i == 0 else 1
            hidden = cin * t
            residual = stride == 1 and cin == c
            with b.scope("features"), b.scope(index), b.scope("conv"):
                h = y
                if t != 1:
                    with b.scope("expand"):
                        h = b.conv_bn_act(h, cin, hidden, 1, act="relu6")
                with b.scope("dw"):
                    h = b.conv_bn_act(h, hidden, hidden, 3, stride=stride, groups=hidden, act="relu6")
                with b.scope("project"):
                    h = b.conv_bn_act(h, hidden, c, 1, act=None, gamma=RESIDUAL_GAMMA if residual else 1.0)
                y = b.add(y, h) if residual else h
            cin, index = c, index + 1
    with b.scope("features"), b.scope(index):
        y = b.conv_bn_act(y, cin, 1280, 1, act="relu6")
    # Dropout is a no-op at inference; exporters drop it, and so do we.
    logits = b.linear(b.pool_flatten(y), 1280, num_classes, name="classifier.1")
    b.add_output(logits, "logits", TensorProto.FLOAT, [BATCH, num_classes])
    return b.finish()


def mobilenet_v3_small(
    *, seed: int = 0, num_classes: int = 1000, hardswish: str = "hardsigmoid_mul"
) -> onnx.ModelProto:
    """MobileNet v3-small: SE blocks, HardSwish/HardSigmoid, ~2.5M params.

    ``hardswish`` selects how HardSwish is written: ``"hardsigmoid_mul"``
    (default, x * HardSigmoid(x)), ``"op"`` (the HardSwish op) or ``"clip"``
    (x * Clip(x + 3, 0, 6) / 6).
    """
    b = GraphBuilder("mobilenet_v3_small", seed=seed, doc="MobileNet v3-small (random weights, clawdbot zoo)")
    eps = 1e-3  # torchvision's MobileNetV3 BatchNorm epsilon
    x = _image_input(b)
    with b.scope("features"), b.scope(0):
        y = b.conv_bn_act(x, 3, 16, 3, stride=2, act="hardswish", eps=eps, hardswish=hardswish)
    cin = 16
    for index, (k, expanded, cout, use_se, act, stride) in enumerate(V3_SMALL_SETTINGS, start=1):
        residual = stride == 1 and cin == cout
        with b.scope("features"), b.scope(index), b.scope("block"):
            h = y
            if expanded != cin:
                with b.scope("expand"):
                    h = b.conv_bn_act(h, cin, expanded, 1, act=act, eps=eps, hardswish=hardswish)
            with b.scope("dw"):
                h = b.conv_bn_act(
                    h, expanded, expanded, k, stride=stride, groups=expanded, act=act, eps=eps, hardswish=hardswish
                )
            if use_se:
                squeezed = make_divisible(expanded // 4, 8)
                h = b.squeeze_excite(h, expanded, squeezed, inner="relu", gate="hardsigmoid", hardswish=hardswish)
            with b.scope("project"):
                h = b.conv_bn_act(
                    h, expanded, cout, 1, act=None, eps=eps, gamma=RESIDUAL_GAMMA if residual else 1.0
                )
            y = b.add(y, h) if residual else h
        cin = cout
    last_conv = 6 * cin
    with b.scope("features"), b.scope(len(V3_SMALL_SETTINGS) + 1):
        y = b.conv_bn_act(y, cin, last_conv, 1, act="hardswish", eps=eps, hardswish=hardswish)
    y = b.pool_flatten(y)
    with b.scope("classifier"):
        y = b.act(b.linear(y, last_conv, 1024, name="0"), "hardswish", hardswish=hardswish)
        logits = b.linear(y, 1024, num_classes, name="3")
    b.add_output(logits, "logits", TensorProto.FLOAT, [BATCH, num_classes])
    return b.finish()
