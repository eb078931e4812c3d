"""Fixtures the emulated-board tests share (test_flash_board, test_power_loss_board): the rpi4 target, a
build key, and two tiny releases. Session-scoped here, not in one test module, so each bundle is built once
(30-35 s) however many modules use it."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from clawdbot.deploy import signing

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / "artifacts" / "cache"


@pytest.fixture(scope="session")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    signing.generate_keypair(d / "build.pem", d / "build.pub.pem")
    return d


@pytest.fixture(scope="session")
def rpi4():
    from clawdbot.crossbuild.targets import load_target
    return load_target("rpi4", ROOT / "targets")


def _tiny_model(path: Path, seed: int = 0) -> Path:
    """A 3x3 conv + relu + global pool + gemm: tens of KB, so the model part crosses the line in seconds."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(seed)
    w = numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "w")
    fc = numpy_helper.from_array(rng.standard_normal((8, 10)).astype(np.float32), "fc")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("GlobalAveragePool", ["r"], ["g"], name="pool"),
             helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
             helper.make_node("MatMul", ["f", "fc"], ["logits"], name="fc")]
    graph = helper.make_graph(nodes, f"tiny{seed}", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])], [w, fc])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)
    return path


@pytest.fixture(scope="session")
def tiny_bundle(cross_tools, tmp_path_factory):
    from clawdbot.crossbuild.build import BuildOptions, build
    from clawdbot.crossbuild.progress import Progress
    d = tmp_path_factory.mktemp("tiny")
    return build(BuildOptions(root=ROOT, target="rpi4", model=str(_tiny_model(d / "tiny.onnx")), toolchain="docker",
                              out=d, cache=CACHE), Progress())


@pytest.fixture(scope="session")
def tiny_update(cross_tools, tmp_path_factory):
    """The next release: other weights, the same runtime (so the same wheel bytes, by reproducibility)."""
    from clawdbot.crossbuild.build import BuildOptions, build
    from clawdbot.crossbuild.progress import Progress
    d = tmp_path_factory.mktemp("tiny2")
    return build(BuildOptions(root=ROOT, target="rpi4", model=str(_tiny_model(d / "tiny.onnx", seed=1)),
                              toolchain="docker", out=d, cache=CACHE), Progress())
