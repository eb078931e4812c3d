"""clawdbot: an edge AI inference runtime.

    import clawdbot
    sess = clawdbot.load("model.claw")        # or an .onnx file, converted in memory
    outputs = sess.run({"input": x})

The package reads in pipeline order: importers -> ir -> passes -> plan -> hal (drivers) -> session.
"""
from __future__ import annotations

import os
from pathlib import Path

from .errors import ClawError, ClawFileError, InputError, ModelImportError, UnsupportedOpsError

__version__ = "0.1.0"


def _is_claw(path: Path) -> bool:
    from .ir import clawfile
    try:
        with open(path, "rb") as f:
            return f.read(len(clawfile.MAGIC)) == clawfile.MAGIC
    except OSError:
        return False


def load(model, *, driver: str = "cpu"):
    """Load a .claw file (memory-mapped, zero-copy weights, its stored memory plan) or convert an ONNX model in
    memory; return a Session."""
    from .session import Session
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if not path.exists():
            raise ClawError(f"{path}: no such file")
        if path.suffix == ".claw" or _is_claw(path):
            from .ir.clawfile import load_model
            from .plan.memory import from_stored
            graph, plan = load_model(path)
            return Session(graph, driver=driver, plan=from_stored(plan, str(path), driver))
    from .converter import ModelConverter
    graph = ModelConverter(source_framework="onnx").convert(model).graph
    return Session(graph, driver=driver, validate_graph=False)


__all__ = ["load", "ClawError", "ClawFileError", "InputError", "ModelImportError", "UnsupportedOpsError",
           "__version__"]
