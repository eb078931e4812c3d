"""The onnx package's own backend test suite, run through clawdbot's `onnx.backend.base.Backend`.

Node cases: only those listed in onnx_node_passing.txt run here, so any regression fails CI; `invoke
conformance` runs all of them and `--write` updates the list. Real-model cases: the nine `light_*` models
bundled with the onnx package (ResNet-50, DenseNet-121, Inception v1/v2, VGG-19, ShuffleNet, SqueezeNet,
AlexNet, ZFNet-512), compared with their stored reference outputs.
"""
from __future__ import annotations

import re
from pathlib import Path

import onnx.backend.test

from clawdbot.importers.onnx.backend import ClawBackend

PASSING_LIST = Path(__file__).with_name("onnx_node_passing.txt")
PASSING = [ln.strip() for ln in PASSING_LIST.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
REAL_MODELS = ["bvlc_alexnet", "densenet121", "inception_v1", "inception_v2", "resnet50", "shufflenet",
               "squeezenet", "vgg19", "zfnet512"]

_backend_test = onnx.backend.test.BackendTest(ClawBackend, __name__)
_names = [re.escape(n) for n in PASSING] + [f"test_{m}" for m in REAL_MODELS]
_backend_test.include("^(" + "|".join(_names) + ")_cpu$")
globals().update(_backend_test.test_cases)
