"""docs/opset.md is generated from the op registry and must not drift from it."""
from pathlib import Path

from clawdbot.hal.cpu.kernels import KERNELS
from clawdbot.ir.ops import OPS
from clawdbot.ir.ops.doc import render_markdown

DOC = Path(__file__).resolve().parents[2] / "docs" / "opset.md"


def test_opset_doc_is_current():
    assert DOC.read_text() == render_markdown(), "regenerate: python -m clawdbot.ir.ops.doc > docs/opset.md"


def test_every_op_is_documented_and_has_a_cpu_kernel():
    assert [name for name, op in OPS.items() if not op.doc] == []
    assert sorted(set(OPS) - set(KERNELS)) == []
    assert sorted(set(KERNELS) - set(OPS)) == []
