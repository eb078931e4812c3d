"""Renders the op set as Markdown (docs/opset.md) from the registry, so the documentation is the code.

    python -m clawdbot.ir.ops.doc > docs/opset.md
"""
from __future__ import annotations

from . import OPS
from .registry import GROUPS


def _arity(lo: int, hi: int) -> str:
    if hi == -1:
        return f"{lo}+"
    return str(lo) if lo == hi else f"{lo}–{hi}"


def _attrs(op) -> str:
    parts = []
    for name, spec in op.attrs.items():
        default = "required" if spec.required else repr(spec.default)
        parts.append(f"`{name}`={default}")
    return ", ".join(parts) or "—"


def render_markdown() -> str:
    lines = ["# The claw op set", "",
             "Generated from `runtime/clawdbot/ir/ops/` by `python -m clawdbot.ir.ops.doc`; a test keeps it "
             "current. Importers translate framework ops into these; kernels implement exactly these.", "",
             f"{len(OPS)} ops in {len({o.group for o in OPS.values()})} groups.", ""]
    for group in GROUPS:
        ops = sorted((o for o in OPS.values() if o.group == group), key=lambda o: o.name)
        if not ops:
            continue
        lines += [f"## {group}", "", "| op | inputs | outputs | attributes | semantics |", "|---|---|---|---|---|"]
        for o in ops:
            doc = " ".join(o.doc.split()).replace("|", "\\|")
            lines.append(f"| `{o.name}` | {_arity(*o.inputs)} | {_arity(*o.outputs)} | {_attrs(o)} | {doc} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(render_markdown(), end="")
