"""SqueezeNet 1.1 (torchvision layout) with random weights.

The small-and-fast CNN benchmark: Fire modules (1x1 squeeze, parallel 1x1 and
3x3 expands joined by Concat), convs with bias and no BatchNorm, ceil-mode
max pooling and a convolutional classifier. ~1.2M parameters.
"""

from __future__ import annotations

import onnx
from onnx import TensorProto

from ._builder import BATCH, GraphBuilder

# features index -> (squeeze, expand1x1, expand3x3) for each Fire module; the
# indices skipped in between are torchvision's max pools.
FIRES = {
    3: (16, 64, 64),
    4: (16, 64, 64),
    6: (32, 128, 128),
    7: (32, 128, 128),
    9: (48, 192, 192),
    10: (48, 192, 192),
    11: (64, 256, 256),
    12: (64, 256, 256),
}
POOL_BEFORE = (3, 6, 9)


def _conv_relu(b: GraphBuilder, x: str, cin: int, cout: int, kernel: int, name: str, **kw) -> str:
    # No BatchNorm here, so filters are centred (see GraphBuilder.conv).
    y = b.conv(x, cin, cout, kernel, bias=True, centred=True, name=name, **kw)
    return b.act(y, "relu", name=f"{name}_activation")


def _fire(b: GraphBuilder, x: str, cin: int, squeeze: int, e1: int, e3: int) -> tuple[str, int]:
    s = _conv_relu(b, x, cin, squeeze, 1, "squeeze")
    left = _conv_relu(b, s, squeeze, e1, 1, "expand1x1")
    right = _conv_relu(b, s, squeeze, e3, 3, "expand3x3")
    y = b.op("Concat", [left, right], axis=1)
    # Both halves have the same statistics by construction; the Concat does too.
    return b.track(y, b.stats(left)), e1 + e3


def squeezenet1_1(*, seed: int = 0, num_classes: int = 1000) -> onnx.ModelProto:
    """SqueezeNet 1.1: Fire modules, no BatchNorm, ~1.24M params."""
    b = GraphBuilder("squeezenet1_1", seed=seed, doc="SqueezeNet 1.1 (random weights, clawdbot zoo)")
    x = b.add_input("input", TensorProto.FLOAT, [BATCH, 3, 224, 224])
    with b.scope("features"):
        y = b.act(b.conv(x, 3, 64, 3, stride=2, padding=0, bias=True, centred=True, name="0"), "relu", name="1")
        channels = 64
        for index, (squeeze, e1, e3) in FIRES.items():
            if index in POOL_BEFORE:
                # ceil_mode is what makes the feature maps 111 -> 55 -> 27 -> 13.
                y = b.maxpool(y, 3, 2, ceil_mode=True)
            with b.scope(index):
                y, channels = _fire(b, y, channels, squeeze, e1, e3)
    with b.scope("classifier"):
        # Dropout (classifier.0) is a no-op at inference. The final conv + ReLU
        # + average pool is the classifier; its ReLU makes every logit >= 0.
        y = b.act(b.conv(y, channels, num_classes, 1, bias=True, centred=True, name="1"), "relu", name="2")
    logits = b.op("Flatten", [b.op("GlobalAveragePool", [y], name="avgpool")], axis=1)
    b.add_output(logits, "logits", TensorProto.FLOAT, [BATCH, num_classes])
    return b.finish()
