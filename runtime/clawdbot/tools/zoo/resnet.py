"""ResNet-50 (torchvision v1.5 layout) built with random weights.

The benchmark workhorse: 53 convolutions, unfused BatchNorm, residual Adds and
one Gemm, ~25.6M parameters. The stride-2 sits on the 3x3 conv of each
bottleneck (v1.5), which is what torchvision and most exported models use.
"""

from __future__ import annotations

import onnx
from onnx import TensorProto

from ._builder import BATCH, GraphBuilder

# Bottleneck blocks per stage and the width of each stage's 3x3 conv.
STAGES = ((3, 64), (4, 128), (6, 256), (3, 512))
EXPANSION = 4
# The last BN of every residual branch is scaled down so the 16 residual sums
# keep activations O(1) instead of growing with depth.
RESIDUAL_GAMMA = 0.3


def _bottleneck(b: GraphBuilder, x: str, cin: int, width: int, stride: int) -> tuple[str, int]:
    cout = width * EXPANSION
    y = b.conv_bn_act(x, cin, width, 1, conv_name="conv1", bn_name="bn1")
    y = b.conv_bn_act(y, width, width, 3, stride=stride, conv_name="conv2", bn_name="bn2")
    y = b.conv_bn_act(y, width, cout, 1, act=None, gamma=RESIDUAL_GAMMA, conv_name="conv3", bn_name="bn3")
    shortcut = x
    if stride != 1 or cin != cout:
        with b.scope("downsample"):
            shortcut = b.batchnorm(b.conv(x, cin, cout, 1, stride=stride, name="0"), cout, name="1")
    return b.act(b.add(y, shortcut), "relu"), cout


def resnet50(*, seed: int = 0, num_classes: int = 1000) -> onnx.ModelProto:
    """ResNet-50: bottlenecks [3, 4, 6, 3], 224x224 input, ~25.6M params."""
    b = GraphBuilder("resnet50", seed=seed, doc="ResNet-50 (random weights, clawdbot zoo)")
    x = b.add_input("input", TensorProto.FLOAT, [BATCH, 3, 224, 224])
    # Stem: 7x7/2 conv, BN, ReLU, 3x3/2 max pool.
    y = b.conv(x, 3, 64, 7, stride=2, name="conv1")
    y = b.act(b.batchnorm(y, 64, name="bn1"), "relu", name="relu")
    y = b.maxpool(y, 3, 2, padding=1, name="maxpool")
    channels = 64
    for stage, (blocks, width) in enumerate(STAGES, start=1):
        with b.scope(f"layer{stage}"):
            for i in range(blocks):
                stride = 2 if i == 0 and stage > 1 else 1
                with b.scope(i):
                    y, channels = _bottleneck(b, y, channels, width, stride)
    logits = b.linear(b.pool_flatten(y), channels, num_classes, name="fc")
    b.add_output(logits, "logits", TensorProto.FLOAT, [BATCH, num_classes])
    return b.finish()
