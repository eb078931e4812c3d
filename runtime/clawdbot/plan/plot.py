"""A picture of a memory plan: the arena over time, one rectangle per buffer (`claw info --memory-plot`).

matplotlib is an optional extra (`clawdbot[plot]`): a board running models never needs it, so it is imported
only when a plot is asked for.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..atomic import atomic_open
from ..errors import ClawError
from .memory import MemoryPlan

INSTALL_HINT = "pip install 'clawdbot[plot]'"
COLOURS = {"tensor": "#4c72b0", "scratch": "#dd8452", "subgraph": "#8c8c8c"}
LABELS = {"tensor": "tensors", "scratch": "kernel scratch", "subgraph": "subgraph peak (reserved)"}


def plot_plan(plan: MemoryPlan, path: str | os.PathLike, title: str) -> Path:
    """Draw `plan` as a PNG at `path` (written whole or not at all): x is the step, y the byte offset; each
    buffer spans (first, offset) to (last + 1, offset + size). Returns the path."""
    path = Path(path)
    fig = _figure(plan, title)
    try:
        with atomic_open(path) as f:
            fig.savefig(f, format="png", dpi=110)
    except OSError as e:  # no such folder, a full disk, a directory where the file should go
        raise ClawError(f"cannot write {path}: {e.strerror or e}") from None
    return path


def require_matplotlib() -> None:
    """Fail with the one line that says what to install, before any work that would be wasted without it."""
    _matplotlib()


def _matplotlib():
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ClawError(f"drawing a memory plan needs matplotlib: {INSTALL_HINT}") from None
    return Figure, FigureCanvasAgg


def _figure(plan: MemoryPlan, title: str):
    Figure, FigureCanvasAgg = _matplotlib()
    # A Figure on its own Agg canvas, not pyplot: no global figure registry, no GUI backend chosen by the host.
    fig = Figure(figsize=(10, 6), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    scale, unit = _unit(max(plan.arena_bytes, 1))
    for kind, boxes in _boxes(plan).items():
        if boxes:
            ax.bar([b[0] for b in boxes], [b[3] / scale for b in boxes], width=[b[1] - b[0] for b in boxes],
                   bottom=[b[2] / scale for b in boxes], align="edge", color=COLOURS[kind], edgecolor="white",
                   linewidth=0.3, label=LABELS[kind])
    ax.axhline(plan.lower_bound / scale, color="#c44e52", linestyle="--", linewidth=1.2,
               label=f"lower bound {_human(plan.lower_bound)}")
    ax.set_xlim(0, max(plan.steps, 1))
    ax.set_ylim(0, max(plan.arena_bytes, plan.lower_bound, 1) / scale * 1.05)
    ax.set_xlabel("step (node)")
    ax.set_ylabel(f"offset in the arena ({unit})")
    ax.set_title(f"{title}: arena {_human(plan.arena_bytes)}, efficiency {plan.efficiency:.3f} (arena / lower bound)")
    ax.legend(loc="upper right", fontsize="small")
    return fig


def _boxes(plan: MemoryPlan) -> dict[str, list[tuple[int, int, int, int]]]:
    """(x0, x1, offset, size) of every buffer with bytes, by kind."""
    out: dict[str, list[tuple[int, int, int, int]]] = {k: [] for k in COLOURS}
    for b in plan.buffers:
        if b.size:
            kind = b.name.split(":", 1)[0] if b.name.startswith(("scratch:", "subgraph:")) else "tensor"
            out[kind].append((b.first, b.last + 1, plan.arena.offsets[b.name], b.size))
    return out


def _unit(n: int) -> tuple[int, str]:
    for scale, unit in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if n >= 4 * scale:
            return scale, unit
    return 1, "B"


def _human(n: int) -> str:
    scale, unit = _unit(n)
    return f"{n} B" if scale == 1 else f"{n / scale:.1f} {unit}"
