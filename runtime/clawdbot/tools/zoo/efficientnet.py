"""EfficientNet-B0 (torchvision layout) with random weights.

The MBConv benchmark: depthwise convs with 3x3 and 5x5 kernels, SiLU written
as Sigmoid + Mul (torch has no ONNX SiLU), and a squeeze-excite block in every
stage built on GlobalAveragePool. ~5.3M parameters.
"""

from __future__ import annotations

import onnx
from onnx import TensorProto

from ._builder import BATCH, GraphBuilder, make_divisible

# (expand ratio, kernel, first stride, input channels, output channels, repeats).
B0_STAGES = (
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
)
BN_EPS = 1e-3  # torchvision's EfficientNet BatchNorm epsilon
HEAD_CHANNELS = 1280
# Projection BNs feeding a residual Add are scaled down so the sums stay O(1).
RESIDUAL_GAMMA = 0.5


def _mbconv(b: GraphBuilder, x: str, cin: int, cout: int, expand: int, kernel: int, stride: int) -> str:
    expanded = make_divisible(cin * expand, 8)
    residual = stride == 1 and cin == cout
    h = x
    if expanded != cin:
        with b.scope("expand"):
            h = b.conv_bn_act(h, cin, expanded, 1, act="silu", eps=BN_EPS)
    with b.scope("dw"):
        h = b.conv_bn_act(h, expanded, expanded, kernel, stride=stride, groups=expanded, act="silu", eps=BN_EPS)
    # EfficientNet squeezes to a quarter of the block's *input* width.
    h = b.squeeze_excite(h, expanded, max(1, cin // 4), inner="silu", gate="sigmoid")
    with b.scope("project"):
        h = b.conv_bn_act(h, expanded, cout, 1, act=None, eps=BN_EPS, gamma=RESIDUAL_GAMMA if residual else 1.0)
    # Stochastic depth is the identity at inference, so the skip is a plain Add.
    return b.add(x, h) if residual else h


def efficientnet_b0(*, seed: int = 0, num_classes: int = 1000) -> onnx.ModelProto:
    """EfficientNet-B0: MBConv + SE + SiLU, 224x224 input, ~5.3M params."""
    b = GraphBuilder("efficientnet_b0", seed=seed, doc="EfficientNet-B0 (random weights, clawdbot zoo)")
    x = b.add_input("input", TensorProto.FLOAT, [BATCH, 3, 224, 224])
    with b.scope("features"), b.scope(0):
        y = b.conv_bn_act(x, 3, 32, 3, stride=2, act="silu", eps=BN_EPS)
    for stage, (expand, kernel, stride, cin, cout, repeats) in enumerate(B0_STAGES, start=1):
        for i in range(repeats):
            with b.scope("features"), b.scope(stage), b.scope(i):
                y = _mbconv(b, y, cin if i == 0 else cout, cout, expand, kernel, stride if i == 0 else 1)
    with b.scope("features"), b.scope(len(B0_STAGES) + 1):
        y = b.conv_bn_act(y, B0_STAGES[-1][4], HEAD_CHANNELS, 1, act="silu", eps=BN_EPS)
    # Dropout before the classifier is a no-op at inference and is not exported.
    logits = b.linear(b.pool_flatten(y), HEAD_CHANNELS, num_classes, name="classifier.1")
    b.add_output(logits, "logits", TensorProto.FLOAT, [BATCH, num_classes])
    return b.finish()
