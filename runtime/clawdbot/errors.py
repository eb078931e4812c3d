"""Every error clawdbot raises on purpose derives from ClawError, so callers (and the CLI) can tell a user
mistake or a bad file from a bug. Messages name the file, node or field at fault."""


class ClawError(Exception):
    """Base of all deliberate clawdbot errors."""


class ClawFileError(ClawError):
    """A .claw file is truncated, corrupted, of another version, or not a .claw file at all."""


class ModelImportError(ClawError):
    """A source model cannot be read (missing, truncated, malformed)."""


class UnsupportedOpsError(ModelImportError):
    """The model uses operators clawdbot cannot run. Lists every one at once, with the nodes using it."""

    def __init__(self, source: str, unsupported: dict[str, list[str]], detail: dict[str, str] | None = None):
        self.unsupported = unsupported
        lines = [f"{source}: {len(unsupported)} unsupported operator type(s):"]
        for op, nodes in sorted(unsupported.items()):
            shown = ", ".join(nodes[:8]) + (f", … ({len(nodes)} nodes)" if len(nodes) > 8 else "")
            why = f" [{detail[op]}]" if detail and op in detail else ""
            lines.append(f"  {op}{why}: {shown}")
        super().__init__("\n".join(lines))


class GraphValidationError(ClawError):
    """The IR is inconsistent: wrong order, dtype or shape. Names the offending node."""


class InputError(ClawError):
    """Inputs passed to Session.run do not match what the model expects."""


class BuildError(ClawError):
    """A cross-build step failed or cannot start: says which step, and what to install or change."""
